# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""tools/study/inspect_leo.py: its figures on hand-made matrices and on a tiny run's checkpoints."""

import os

import numpy as np
import pytest

import data
import evaluation
import fixtures
import inprocess
import training
from tools.study import inspect_leo

tf = inspect_leo.tf
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--dataset_name=tiny", "--inner_unroll_length=2", "--finetuning_unroll_length=2",
        "--num_val_examples_per_class=3", "--metatrain_batch_size=4",
        "--metavalid_batch_size=4", "--num_latents=4", "--log_steps=2",
        "--num_steps_limit=2", "--checkpoint_steps=2", "--evaluate_after_training=false",
        "--finetuning_lr_init=0.5"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  root = tmp_path_factory.mktemp("inspect")
  data_path = fixtures.make_dataset(str(root / "data"))
  folder = str(root / "run")
  done = inprocess.run([os.path.join(ROOT, "runner.py"), *TINY, f"--data_path={data_path}",
                        f"--checkpoint_path={folder}"], cwd=ROOT)
  assert done.returncode == 0, done.stderr[-2000:]
  return folder


def test_subspace_share_and_effective_rank_by_hand():
  basis = np.array([[2.0, 0.0, 0.0]])  # The x axis, not of unit length.
  assert inspect_leo.subspace_share(basis, np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]])) == (
      pytest.approx(1.0 / 6.0))
  assert inspect_leo.effective_rank(np.diag([3.0, 3.0])) == pytest.approx(2.0)
  assert inspect_leo.effective_rank(np.diag([1.0, 0.0])) == pytest.approx(1.0)
  # σ² = 4, 1: (5)² / (16 + 1).
  assert inspect_leo.effective_rank(np.diag([2.0, 1.0])) == pytest.approx(25.0 / 17.0)


def test_between_class_directions_are_the_centred_means_of_unit_embeddings():
  embeddings = inspect_leo.data.validate_embeddings(
      {"keys": ["train-a-a_1", "train-a-a_2", "train-b-b_1"],
       "embeddings": np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 2.0]], np.float32)}, "<made>")
  directions = inspect_leo.between_class_directions(embeddings)
  np.testing.assert_allclose(directions, [[0.25, -0.25], [-0.25, 0.25]], atol=1e-7)


def test_the_untrained_model_is_the_runs_step_0_checkpoint(run):
  found = inspect_leo.checkpoints_of_run(run)
  assert [(name, step) for name, step, _ in found][:3] == [
      ("untrained", 0), ("model.ckpt-0", 0), ("model.ckpt-2", 2)]
  assert found[-1][0].startswith("best (step ")
  configs = inspect_leo.configs_of_run(run)
  episodes = data.Episodes(configs, need_train=True)
  rebuilt, _ = training.build_model(configs, episodes.embedding_dim)
  reader = tf.train.load_checkpoint(found[1][2])
  saved = {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(found[1][2])
           if name.startswith("model/")}
  values = [v.numpy() for v in rebuilt.trainable_variables]
  assert len(values) == 7
  for value in values:  # Each variable is one of the saved ones, bit for bit.
    assert any(saved_value.shape == value.shape and np.array_equal(saved_value, value)
               for saved_value in saved.values())


def test_figures_of_a_tiny_run_agree_with_the_model(run):
  results = inspect_leo.inspect(run, num_tasks=8, batch_size=4, log=lambda line: None)
  untrained, step0, step2 = results[:3]
  assert untrained.inner_lr.shape == (4,) and untrained.finetuning_lr.shape == (16,)
  np.testing.assert_allclose(untrained.finetuning_lr, 0.5)
  assert untrained.stages == step0.stages  # Rebuilt and saved: the same model.
  assert not np.allclose(step2.finetuning_lr, 0.5)  # Meta-trained.
  for result in results:
    for split in ("train", "val"):
      assert set(result.stages[split]) == {"decoded", "latent steps", "fine-tuned",
                                           "nearest centroid"}
      assert 0.0 < result.outside_span[split] < 1.0  # Fine-tuning leaves the 4-d span.
    assert 0.0 < result.decoder_share["val"] < 1.0 and 1.0 <= result.decoder_rank <= 4.0
  # The fine-tuned stage is the model's own evaluation accuracy on those tasks.
  configs = inspect_leo.configs_of_run(run)
  episodes = data.Episodes(configs, need_train=True)
  leo, _ = training.build_model(configs, episodes.embedding_dim)
  batch = episodes.valid.get_batch(4, 5, 1, episodes.valid_queries)
  stages, _ = inspect_leo.stage_accuracies(leo, [batch])
  _, accuracy, _ = leo(batch, is_meta_training=False)
  assert stages["fine-tuned"] == pytest.approx(float(accuracy), abs=1e-7)
  text = inspect_leo.table(results, 4, 16)
  assert "| untrained | val | " in text and "chance (a random 4-d subspace of 16): 25.0%" in text


def test_not_a_run_folder_is_a_one_line_error(tmp_path):
  done = inprocess.run(["-m", "tools.study.inspect_leo", f"--run={tmp_path}"], cwd=ROOT)
  assert done.returncode == 2
  assert done.stderr.strip() == (f"tools.study.inspect_leo: error: --run={tmp_path}: expected "
                                 "a run folder (with config.json)")
