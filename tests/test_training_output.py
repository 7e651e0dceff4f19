"""What training and evaluation tell while they work: the ETA, the training window means, evaluation
progress (in-process, on the fixture data)."""

import json
import logging
import math
import os
import re

import pytest

import tensorflow as tf

import baselines
import config
import data
import evaluation
import fixtures
import records
import runfolder
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


def test_a_log_window_reads_back_each_steps_metrics_as_the_step_gave_them(monkeypatch):
  """Kept as tensors, read in one transfer: the float32 values the per-step reads gave (0.1 in
  float32 is 0.10000000149011612), NaN included; timed from the end of the step before,
  the session's first (tracing) step left out."""
  steps = [(0.1, 0.5), (float("nan"), 0.25), (3.3, 1.0)]
  window = training.LogWindow()
  for index, (loss, accuracy) in enumerate(steps):
    window.add(training.StepResult(tf.constant(loss), tf.constant(accuracy), []),
               seconds=0.25, timed=index > 0)
  metrics = window.metrics
  assert metrics[0] == (0.10000000149011612, 0.5)
  assert math.isnan(metrics[1][0]) and metrics[1][1] == 0.25
  assert metrics[2] == (float(tf.constant(3.3)), 1.0)
  assert window.steps_per_second == 2 / 0.5


def test_a_long_evaluation_logs_progress_and_fingerprints_its_tasks(tmp_path, monkeypatch,
                                                                    caplog):
  root = fixtures.make_dataset(str(tmp_path), dim=16)
  provider = data.DataProvider("test", config.DataConfig(data_path=root,
                                                                dataset_name="tiny"))
  evaluate = evaluation.Evaluator(
      evaluation.GatheredScores(
          lambda batch: (tf.constant(0.0), baselines.nearest_centroid(batch))),
      provider, batch_size=4, num_classes=5, shots=1, queries=3)
  monkeypatch.setattr(utils, "PROGRESS_SECONDS", 0.0)
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


def test_log_lines_validations_and_checkpoints_fall_on_their_steps(tmp_path, caplog):
  run_dir = str(tmp_path / "run")
  configs = config.Configs(
      data=config.DataConfig(data_path=fixtures.make_dataset(str(tmp_path), dim=16),
                             dataset_name="tiny"),
      inner=config.InnerModelConfig(num_latents=8, inner_unroll_length=1,
                                    finetuning_unroll_length=1),
      outer=config.OuterModelConfig(num_val_examples_per_class=3, metatrain_batch_size=4,
                                    metavalid_batch_size=4, num_steps_limit=10),
      run=config.RunConfig(checkpoint_path=run_dir, log_steps=3, checkpoint_steps=4,
                           evaluate_after_training=False))
  with caplog.at_level(logging.INFO, logger="absl"):
    training.train(configs)
  assert [json.loads(line)["step"] for line in open(os.path.join(run_dir, "validations.jsonl"))
         ] == [0, 4, 8, 10]
  saved = (re.fullmatch(r"model\.ckpt-(\d+)\.index", name) for name in os.listdir(run_dir))
  assert sorted(int(match[1]) for match in saved if match) == [
      0, 4, 8, 10][-runfolder.MAX_CHECKPOINTS_TO_KEEP:]
  logged = (re.search(r"Step: (\d+)/10 .* \(mean of (\d+) steps\)", record.getMessage())
            for record in caplog.records)
  assert [match.groups() for match in logged if match] == [
      ("3", "3"), ("6", "3"), ("9", "3"), ("10", "1")]
