"""What training and evaluation tell while they work: the ETA, the training window means, evaluation
progress (in-process, on the fixture data)."""

import logging
import math

import pytest

import tensorflow as tf

import baselines
import config
import data
import evaluation
import fixtures
import records
import training
import utils

def test_the_eta_counts_the_validations_still_to_come():
  # 250 steps at 50 steps/s, then the validations at 500, 750 (checkpoint_steps) and 800
  # (num_steps_limit) at their mean of 3 s.
  assert training.remaining_seconds(550, 800, 250, 50.0, [2.0, 4.0]) == pytest.approx(5 + 3 * 2)
  assert training.remaining_seconds(550, 750, 250, 50.0, [3.0]) == pytest.approx(4 + 3)
  assert training.remaining_seconds(10, 20, 5, 10.0, []) == pytest.approx(1.0)
  assert utils.duration(float("nan")) == "unknown"


def test_training_metrics_are_window_means_of_the_finite_losses():
  assert training.mean_training_metrics([(1.0, 0.5), (float("nan"), 0.25), (3.0, 0.75)]) == (
      2.0, 0.5)
  loss, accuracy = training.mean_training_metrics([(float("nan"), 0.2)])
  assert math.isnan(loss) and accuracy == pytest.approx(0.2)


def test_a_long_evaluation_logs_progress_and_fingerprints_its_tasks(tmp_path, monkeypatch,
                                                                    caplog):
  root = fixtures.make_dataset(str(tmp_path), dim=16)
  provider = data.DataProvider("test", config.DataConfig(data_path=root,
                                                                dataset_name="tiny"))
  evaluate = evaluation.Evaluator(
      evaluation.GatheredScores(
          lambda batch: (tf.constant(0.0), baselines.nearest_centroid(batch))),
      provider, batch_size=4, num_classes=5, shots=1, queries=3)
  monkeypatch.setattr(evaluation, "PROGRESS_SECONDS", 0.0)
  fingerprint = evaluate.fingerprint()
  with caplog.at_level(logging.INFO, logger="absl"):  # absl's logger may sit at WARNING.
    _, accuracies = evaluate(10, fingerprint, progress=True)
  assert len(accuracies) == 10
  progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Evaluated")]
  assert progress and progress[0].startswith("Evaluated 4/10 tasks,")
  assert "tasks/s, ETA" in progress[0]
  # The same seed and shape draw the same tasks: the same fingerprint; more tasks, another.
  again = evaluation.Evaluator(
      evaluation.GatheredScores(
          lambda batch: (tf.constant(0.0), baselines.nearest_centroid(batch))),
      data.DataProvider("test", config.DataConfig(data_path=root, dataset_name="tiny")),
      batch_size=4, num_classes=5, shots=1, queries=3)
  same, more = again.fingerprint(), records.TaskFingerprint(provider.keys_digest, 5, 1, 3)
  again(10, same)
  assert same.hexdigest() == fingerprint.hexdigest()
  assert more.hexdigest() != fingerprint.hexdigest()
