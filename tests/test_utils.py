"""utils.py: confidence intervals, atomic files, the best checkpoint, the run lock."""

import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import utils


def test_confidence_interval_is_1_96_standard_errors():
  values = [0.2, 0.4, 0.6, 0.8]
  mean, half_width = utils.mean_and_confidence_interval(values)
  std = math.sqrt(sum((v - 0.5) ** 2 for v in values) / 3)  # Sample std, ddof=1.
  assert mean == pytest.approx(0.5)
  assert half_width == pytest.approx(1.959963984540054 * std / 2)
  assert utils.mean_and_confidence_interval([0.7]) == (0.7, 0.0)
  with pytest.raises(ValueError):
    utils.mean_and_confidence_interval([])


def test_atomic_json_write_replaces_and_leaves_no_temporary(tmp_path):
  path = str(tmp_path / "a.json")
  utils.atomic_write_json(path, {"x": 1})
  utils.atomic_write_json(path, {"x": 2})
  assert json.load(open(path)) == {"x": 2}
  assert os.listdir(tmp_path) == ["a.json"]


def test_best_checkpoint_commits_replaces_and_deletes_the_old_files(tmp_path):
  best = utils.BestCheckpoint(str(tmp_path / "best_checkpoint"))
  assert best.info is None and best.accuracy == -math.inf
  weights = tf.Variable([1.0, 2.0])
  checkpoint = tf.train.Checkpoint(weights=weights)
  best.save(checkpoint, 3, 0.5, {"config": "a"})
  assert best.info["step"] == 3 and best.accuracy == 0.5 and best.info["config"] == "a"
  weights.assign([5.0, 6.0])
  best.save(checkpoint, 7, 0.75, {})
  names = sorted(os.listdir(best.folder))
  assert names == ["best.json", "checkpoint", "model.ckpt-7.data-00000-of-00001",
                   "model.ckpt-7.index"]
  assert tf.train.latest_checkpoint(best.folder) == best.prefix
  restored = tf.Variable([0.0, 0.0])
  tf.train.Checkpoint(weights=restored).read(best.prefix).assert_consumed()
  np.testing.assert_array_equal(restored.numpy(), [5.0, 6.0])


def test_an_interrupted_best_write_leaves_the_old_best_and_is_cleaned(tmp_path):
  best = utils.BestCheckpoint(str(tmp_path))
  checkpoint = tf.train.Checkpoint(weights=tf.Variable([1.0]))
  best.save(checkpoint, 2, 0.4, {})
  # A crash after the new files were written but before best.json was replaced:
  checkpoint.write(os.path.join(best.folder, "model.ckpt-5"))
  open(os.path.join(best.folder, "best.json.tmp-123"), "w").write("{")
  assert best.info["step"] == 2  # Still the old, complete best.
  best.clean()
  assert sorted(os.listdir(best.folder)) == ["best.json", "checkpoint",
                                             "model.ckpt-2.data-00000-of-00001",
                                             "model.ckpt-2.index"]


def test_run_lock_refuses_a_second_holder_and_releases(tmp_path):
  with utils.RunLock(str(tmp_path)):
    with pytest.raises(utils.LeoError, match=r"another leo run \(pid \d+\) is using"):
      with utils.RunLock(str(tmp_path)):
        pass
  with utils.RunLock(str(tmp_path)):  # Released: a later run may take it.
    pass
