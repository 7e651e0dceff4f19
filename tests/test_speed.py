# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""The runner's speed options: --jit_compile computes what the plain path computes (on CPU),
and the intra-op threads are chosen once, as measured, or as asked."""

from unittest import mock

import numpy as np
import pytest

import config
import fixtures
import runner


def _configs(root, jit_compile=False, **run):
  return runner.Configs(
      data=config.DataConfig(data_path=root, dataset_name="tiny"),
      inner=config.InnerModelConfig(num_latents=8, inner_unroll_length=2,
                                    finetuning_unroll_length=2),
      outer=config.OuterModelConfig(num_val_examples_per_class=3, metatrain_batch_size=4,
                                    metavalid_batch_size=4, outer_lr=1e-3),
      run=config.RunConfig(checkpoint_path="unused", jit_compile=jit_compile, **run))


def test_jit_compiled_training_and_evaluation_compute_the_plain_numbers(tmp_path):
  fixtures.make_dataset(str(tmp_path))
  runner.import_tensorflow()
  results = []
  for jit_compile in (False, True):
    configs = _configs(str(tmp_path), jit_compile)
    episodes = runner.Episodes(configs, need_train=True)  # Same seed: same episodes.
    leo, meta_optimizer = runner.build_model(configs, episodes)
    step = runner.make_train_step(leo, meta_optimizer, episodes.train, configs.outer,
                                  jit_compile=jit_compile)
    losses = [float(step()[0]) for _ in range(3)]
    evaluate = runner.Evaluator(runner.leo_task_accuracies(leo, jit_compile), episodes.valid,
                                4, 5, 1, episodes.valid_queries)
    loss, accuracies = evaluate(8)
    results.append((losses, loss, accuracies, [v.numpy() for v in leo.trainable_variables]))
  (losses, loss, accuracies, variables), expected = results
  np.testing.assert_allclose(losses, expected[0], rtol=1e-5)
  np.testing.assert_allclose(loss, expected[1], rtol=1e-5)
  np.testing.assert_allclose(accuracies, expected[2], atol=1e-6)
  for actual, wanted in zip(variables, expected[3]):
    np.testing.assert_allclose(actual, wanted, atol=1e-4)  # Adam's updates, as distributed.


def _choose(configs, cores=2, gpus=()):
  runner.import_tensorflow()
  with mock.patch.object(runner.os, "cpu_count", return_value=cores), \
       mock.patch.object(runner.tf.config, "list_physical_devices", return_value=list(gpus)), \
       mock.patch.object(runner.tf.config.threading,
                         "set_intra_op_parallelism_threads") as set_threads:
    line = runner.configure_threads(configs)
  calls = [call.args[0] for call in set_threads.call_args_list]
  return line, calls


def test_threads_follow_the_measured_table_by_shot_count(capsys):
  configs = _configs("unused")
  line, calls = _choose(configs)
  assert calls == [runner.MEASURED_INTRA_OP_THREADS[1]]
  assert capsys.readouterr().out == line + "\n"  # Printed once.
  assert "measured for 1-shot" in line
  # 3 shots take the nearest measured shape (1 or 5: 1 is as near as 5, the first wins).
  three = runner.Configs(configs.data, configs.inner,
                         config.OuterModelConfig(num_tr_examples_per_class=4), configs.run)
  line, calls = _choose(three)
  assert calls == [runner.MEASURED_INTRA_OP_THREADS[5]] and "5-shot" in line


def test_threads_as_asked_or_tf_default_where_nothing_was_measured():
  line, calls = _choose(_configs("unused", intra_op_threads=3))
  assert calls == [3] and "--intra_op_threads" in line
  line, calls = _choose(_configs("unused"), cores=64)
  assert calls == [] and "64 cores, not measured" in line
  line, calls = _choose(_configs("unused"), gpus=["a GPU"])
  assert calls == []


@pytest.mark.parametrize("field, value", [("jit_compile", "yes"), ("intra_op_threads", -1),
                                          ("intra_op_threads", 1.5)])
def test_speed_flags_are_validated(field, value):
  with pytest.raises(config.ConfigError, match=f"--{field}="):
    config.RunConfig(**{field: value})
