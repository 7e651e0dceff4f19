# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""The runner's speed options: --jit_compile computes what the plain path computes (on CPU),
and the intra-op threads are chosen once, as measured, or as asked."""

from unittest import mock

import numpy as np
import pytest

import tensorflow as tf

import config
import data
import distribute
import evaluation
import fixtures
import model
import training
from test_model import random_problem


def _configs(root, jit_compile=False, **run):
  return config.Configs(
      data=config.DataConfig(data_path=root, dataset_name="tiny"),
      inner=config.InnerModelConfig(num_latents=8, inner_unroll_length=2,
                                    finetuning_unroll_length=2),
      outer=config.OuterModelConfig(num_val_examples_per_class=3, metatrain_batch_size=4,
                                    metavalid_batch_size=4, outer_lr=1e-3),
      run=config.RunConfig(checkpoint_path="unused", jit_compile=jit_compile, **run))


def test_jit_compiled_training_and_evaluation_compute_the_plain_numbers(tmp_path):
  fixtures.make_dataset(str(tmp_path))
  results = []
  for jit_compile in (False, True):
    configs = _configs(str(tmp_path), jit_compile)
    episodes = data.Episodes(configs, need_train=True)  # Same seed: same episodes.
    leo, meta_optimizer = training.build_model(configs, episodes.embedding_dim)
    step = training.make_train_step(leo, meta_optimizer, episodes.train, configs.outer,
                                  jit_compile=jit_compile)
    loss, accuracy, gradients = step()
    evaluate = evaluation.Evaluator(evaluation.LEOScores(leo, jit_compile), episodes.valid,
                                4, 5, 1, episodes.valid_queries)
    results.append((loss, accuracy, gradients, evaluate(8)))
  # One step: the same loss and gradients from the same variables and noise (the updates
  # then differ by float32 rounding, which Adam's sign-like steps on tiny gradients amplify,
  # so the evaluations run on the updated variables of each and are compared as accuracies).
  (loss, accuracy, gradients, (eval_loss, accuracies)), expected = results
  np.testing.assert_allclose(loss, expected[0], rtol=1e-5)
  np.testing.assert_allclose(accuracy, expected[1], atol=1e-6)
  for actual, wanted in zip(gradients, expected[2]):  # float32 second order: see below.
    np.testing.assert_allclose(actual, wanted, atol=1e-2 * np.abs(wanted).max())
  np.testing.assert_allclose(eval_loss, expected[3][0], rtol=1e-4)
  np.testing.assert_allclose(accuracies, expected[3][1], atol=1e-6)


@pytest.mark.parametrize("training", [False, True])
def test_xla_computes_the_models_float64_numbers(training):
  # The arithmetic itself, in float64: loss and second-order outer gradients to 1e-9.
  problem = random_problem(tasks=3, num_classes=4, shots=2, dim=64, queries=5)
  leo = model.LEO(config.InnerModelConfig(inner_unroll_length=2, finetuning_unroll_length=2,
                                          num_latents=8), use_64bits_dtype=True)
  leo(problem, False)
  seed = tf.constant([3, 4], tf.int64)

  def loss_and_gradients():
    with tf.GradientTape() as tape:
      loss, _, per_task = leo(problem, training, seed)
    return loss, per_task, tape.gradient(loss, leo.trainable_variables)

  plain = tf.function(loss_and_gradients, autograph=False)()
  compiled = tf.function(loss_and_gradients, autograph=False, jit_compile=True)()
  for actual, expected in zip(tf.nest.flatten(compiled), tf.nest.flatten(plain)):
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12)


def _choose(configs, cores=2, gpus=(), model="AMD EPYC 7B13"):
  with mock.patch.object(distribute.os, "cpu_count", return_value=cores), \
       mock.patch.object(distribute.utils, "cpu_model", return_value=model), \
       mock.patch.object(tf.config, "list_physical_devices", return_value=list(gpus)), \
       mock.patch.object(tf.config.threading,
                         "set_intra_op_parallelism_threads") as set_threads:
    distribute.configure_threads(configs)
    line = distribute.threads_line(configs)
  calls = [call.args[0] for call in set_threads.call_args_list]
  return line, calls


def test_threads_follow_the_measured_table_by_maker_and_shot_count():
  configs = _configs("unused")
  line, calls = _choose(configs)
  assert calls == [distribute.MEASURED_INTRA_OP_THREADS["AMD"][1]]
  assert "measured for 1-shot tasks on <= 4 AMD cores" in line
  # 3 shots take the nearest measured shape (1 or 5: 1 is as near as 5, the first wins).
  three = config.Configs(configs.data, configs.inner,
                         config.OuterModelConfig(num_tr_examples_per_class=4), configs.run)
  line, calls = _choose(three)
  assert calls == [distribute.MEASURED_INTRA_OP_THREADS["AMD"][5]] and "5-shot" in line
  five = config.Configs(configs.data, configs.inner,
                        config.OuterModelConfig(num_tr_examples_per_class=5), configs.run)
  intel = "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz"
  assert _choose(five, model=intel)[1] == [distribute.MEASURED_INTRA_OP_THREADS["Intel"][5]] == [2]
  assert _choose(five)[1] == [1]  # The same shape on an AMD EPYC: one thread measured faster.


def test_threads_fixed_before_the_command_are_kept_with_a_warning(caplog):
  with mock.patch.object(tf.config.threading, "set_intra_op_parallelism_threads",
                         side_effect=RuntimeError("cannot be modified after initialization")), \
       caplog.at_level("WARNING"):
    distribute.configure_threads(_configs("unused", intra_op_threads=3))
  assert "Intra-op threads: TF runs with " in caplog.text and "not the 3 chosen" in caplog.text


def test_threads_as_asked_or_tf_default_where_nothing_was_measured():
  line, calls = _choose(_configs("unused", intra_op_threads=3))
  assert calls == [3] and "--intra_op_threads" in line
  line, calls = _choose(_configs("unused"), cores=64)
  assert calls == [] and "64 cores of AMD EPYC 7B13, not measured" in line
  line, calls = _choose(_configs("unused"), gpus=["a GPU"])
  assert calls == []
  line, calls = _choose(_configs("unused"), model="Neoverse-N1")  # A maker nobody measured.
  assert calls == [] and "2 cores of Neoverse-N1, not measured" in line


@pytest.mark.parametrize("field, value", [("jit_compile", "yes"), ("intra_op_threads", -1),
                                          ("intra_op_threads", 1.5)])
def test_speed_flags_are_validated(field, value):
  with pytest.raises(config.ConfigError, match=f"--{field}="):
    config.RunConfig(**{field: value})


def _gathered_leo_scores(leo):
  """The plain reference of LEOScores: LEO on the gathered episodes, queries included (the
  evaluation of leo before LEOScores, and the way the baselines are scored)."""
  def task_accuracies(batch):
    batch = batch._replace(tr_input=tf.cast(batch.tr_input, tf.float64),
                           val_input=tf.cast(batch.val_input, tf.float64))
    loss, _, per_task_accuracy = leo(batch, is_meta_training=False)
    return loss, per_task_accuracy
  return evaluation.GatheredScores(task_accuracies)


@pytest.mark.parametrize("shots,queries", [(1, None), (5, None), (1, 12), (5, 3)])
def test_leo_scores_are_the_gathered_episodes_numbers_on_the_same_tasks(shots, queries):
  # Classes of 18 to 22 images, rows out of class order: all remaining queries (a subset of
  # the larger classes), a fixed count scored in place, and a few (gathered).
  from test_data import _unequal_classes_out_of_order  # pylint: disable=g-import-not-at-top
  embeddings = _unequal_classes_out_of_order()
  leo = model.LEO(config.InnerModelConfig(num_latents=8, inner_unroll_length=2,
                                          finetuning_unroll_length=2), use_64bits_dtype=True)
  leo(random_problem(num_classes=5, shots=shots, dim=8, queries=1), is_meta_training=False)
  fast = evaluation.LEOScores(leo)
  fast.tasks_per_call = 12  # 2 chunks of 6 per call: 5 chunks make a call with a dummy chunk.
  results = []
  for scores in (_gathered_leo_scores(leo), fast):
    provider = data.DataProvider(
        "test", config.DataConfig(data_path="<memory>", dataset_name="tiny"), seed=3,
        embeddings=embeddings)
    evaluate = evaluation.Evaluator(scores, provider, 6, 5, shots,
                                provider.remaining_examples_per_class(shots, queries))
    fingerprint = evaluate.fingerprint()
    loss, accuracies = evaluate(27, fingerprint)
    results.append((loss, accuracies, fingerprint.hexdigest(), provider.generator.state.numpy()))
  (loss, accuracies, fingerprint, state), expected = results[1], results[0]
  assert fingerprint == expected[2]
  np.testing.assert_array_equal(state, expected[3])  # The next evaluation's tasks, too.
  assert len(accuracies) == 27 and 0 < np.mean(accuracies) < 1
  np.testing.assert_allclose(accuracies, expected[1], rtol=0, atol=1e-12)
  np.testing.assert_allclose(loss, expected[0], rtol=1e-12)
