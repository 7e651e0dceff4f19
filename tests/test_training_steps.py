"""Several training steps per compiled call: the numbers of one step per call, and the loop's
log lines, validations and checkpoints at the steps where they always were."""

import json
import logging
import os
import re

import numpy as np

import tensorflow as tf

import config
import evaluation
import fixtures
import runfolder
import training


def _configs(root, run_dir="unused", **run):
  return config.Configs(
      data=config.DataConfig(data_path=root, dataset_name="tiny"),
      inner=config.InnerModelConfig(num_latents=8, inner_unroll_length=1,
                                    finetuning_unroll_length=1),
      outer=config.OuterModelConfig(num_val_examples_per_class=3, metatrain_batch_size=4,
                                    metavalid_batch_size=4, metatest_batch_size=10,
                                    num_test_tasks=20, outer_lr=1e-3,
                                    num_steps_limit=run.pop("num_steps_limit", 10)),
      run=config.RunConfig(checkpoint_path=run_dir, **run))


def _train(configs, make, splits):
  """Per-step losses and accuracies, and every variable after, of `sum(splits)` steps taken
  `splits[i]` per call."""
  episodes = evaluation.Episodes(configs, need_train=True)  # Same seed: same episodes.
  leo, meta_optimizer = training.build_model(configs, episodes.embedding_dim)
  step = tf.Variable(0, dtype=tf.int64)
  train = make(leo, meta_optimizer, episodes.train, configs.outer, step)
  metrics = []
  for steps in splits:
    if make is training.make_train_step:
      result = [train() for _ in range(steps)]
      metrics += [(float(r.loss), float(r.accuracy)) for r in result]
    else:
      result = train(tf.constant(steps))
      metrics += zip(result.losses.numpy().tolist(), result.accuracies.numpy().tolist())
  variables = [v.numpy() for v in (*leo.variables, *meta_optimizer.variables, step,
                                   episodes.train.generator.state)]
  return metrics, variables


def test_steps_per_call_do_not_change_a_bit(tmp_path):
  configs = _configs(fixtures.make_dataset(str(tmp_path), dim=64))
  one_per_call = _train(configs, training.make_train_steps, [1] * 5)
  for splits in ([5], [2, 3]):
    metrics, variables = _train(configs, training.make_train_steps, splits)
    assert metrics == one_per_call[0]
    assert len(variables) == len(one_per_call[1])
    for actual, expected in zip(variables, one_per_call[1]):
      np.testing.assert_array_equal(actual, expected)


def test_the_loop_takes_the_step_of_make_train_step(tmp_path):
  # The same math; float32 rounding differs (the loop's body is optimised otherwise).
  configs = _configs(fixtures.make_dataset(str(tmp_path), dim=64))
  results = []
  for make in (training.make_train_steps, training.make_train_step):
    episodes = evaluation.Episodes(configs, need_train=True)
    leo, meta_optimizer = training.build_model(configs, episodes.embedding_dim)
    train = make(leo, meta_optimizer, episodes.train, configs.outer)
    results.append(train(tf.constant(1)) if make is training.make_train_steps else train())
  (losses, accuracies, gradients), (loss, accuracy, expected) = results
  np.testing.assert_allclose(losses, [loss], rtol=1e-6)
  np.testing.assert_array_equal(accuracies, [accuracy])
  for actual, wanted in zip(gradients, expected):
    np.testing.assert_allclose(actual, wanted, atol=1e-5 * np.abs(wanted).max())


def test_log_lines_validations_and_checkpoints_stay_at_their_steps(tmp_path, caplog):
  run_dir = str(tmp_path / "run")
  with caplog.at_level(logging.INFO, logger="absl"):  # absl's logger may sit at WARNING.
    training.train(_configs(fixtures.make_dataset(str(tmp_path), dim=16), run_dir,
                            num_steps_limit=10, log_steps=3, checkpoint_steps=4,
                            evaluate_after_training=False))
  validations = [json.loads(line)["step"]
                 for line in open(os.path.join(run_dir, "validations.jsonl"))]
  assert validations == [0, 4, 8, 10]
  assert sorted(int(match[1]) for match in map(
      re.compile(r"model\.ckpt-(\d+)\.index$").match, os.listdir(run_dir)) if match) == [
          0, 4, 8, 10][-runfolder.MAX_CHECKPOINTS_TO_KEEP:]
  logged = [re.search(r"Step: (\d+)/10 .* \(mean of (\d+) steps\)", record.getMessage())
            for record in caplog.records]
  assert [match.groups() for match in logged if match] == [
      ("3", "3"), ("6", "3"), ("9", "3"), ("10", "1")]
