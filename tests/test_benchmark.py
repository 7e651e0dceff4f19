"""benchmarks/benchmark.py in its quick mode: every measurement runs and lands in the table."""

import os
import subprocess
import sys
from unittest import mock

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_quick_benchmark_prints_the_whole_table(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "benchmark.py"), "--quick",
       f"--data_dir={tmp_path}"], capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-3000:]
  table = result.stdout
  for row in ("meta-train step, 5-way 1-shot, vectorised", "per-task map_fn",
              "speed-up of the vectorised step, 5-shot", "episode sampling alone",
              "meta-validation", "meta-test, 20 tasks 5-shot", "35 queries/class",
              "gathered episodes (before)", "speed-up of the evaluation, 5-shot",
              "10,000-task meta-test, 1-shot", "projected from 20 tasks",
              "projected full default 1-shot run", "peak resident memory",
              "meta-train step, 5-way 5-shot, 2 replica(s)", "2 replicas vs 1, 1-shot",
              "| CPU ", "Intra-op threads: ", "float32 matmul rate", "compute floor, 5-shot",
              "floor: ", "1-shot step with 1 intra-op thread(s)", "load average at the end",
              "meta-train step, 5-way 1-shot, one per call (the runner's)",
              "meta-train step, 5-way 5-shot, 2 per call",
              "2 steps per call vs one, 5-shot", "runner's train(), 4 steps 1-shot",
              "float32 matmul [7500,128]x[128,128], 1 thread", "float32 matmul [60,640]",
              "1-shot step with oneDNN off", "oneDNN on vs off, 1-shot"):
    assert row in table, row
  assert os.path.exists(tmp_path / "miniImageNet" / "center" / "test_embeddings.pkl")


def test_the_reference_formulation_computes_what_leo_computes():
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import benchmark  # pylint: disable=g-import-not-at-top
  import config  # pylint: disable=g-import-not-at-top
  import model  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import test_model  # pylint: disable=g-import-not-at-top
  inner = config.InnerModelConfig(num_latents=8, inner_unroll_length=2,
                                  finetuning_unroll_length=2)
  problem = test_model.random_problem(tasks=2, num_classes=3, shots=2, dim=64, queries=4)
  leo = model.LEO(inner, use_64bits_dtype=True)
  original = benchmark.original_formulation_leo()(inner, use_64bits_dtype=True)
  leo(problem, False)
  original(problem, False)
  for mine, theirs in zip(leo.trainable_variables, original.trainable_variables):
    theirs.assign(mine)
  seed = tf.constant([1, 2], tf.int64)
  for training in (False, True):
    expected = leo(problem, training, seed)
    # The arithmetic is compared with the same masks: leo draws its masks from fewer bits.
    with mock.patch.object(type(original), "_dropout", model.LEO._dropout):
      actual = original(problem, training, seed)
    for a, b in zip(actual, expected):
      np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_the_reference_keeps_the_float_uniform_dropout_masks():
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import benchmark  # pylint: disable=g-import-not-at-top
  import config  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  original = benchmark.original_formulation_leo()(config.InnerModelConfig(dropout_rate=0.3),
                                                  use_64bits_dtype=True)
  original.is_meta_training = True
  inputs = tf.ones([1, 5, 200, 8], tf.float64)
  tf.random.set_seed(0)
  outputs = original._dropout(inputs).numpy()  # pylint: disable=protected-access
  uniform = tf.random.stateless_uniform(  # The generator's next seed, drawn again.
      [1, 5, 200, 8], tf.random.Generator.from_seed(0).make_seeds(1)[:, 0], dtype=tf.float64)
  np.testing.assert_allclose(outputs, np.where(uniform >= 0.3, 1 / 0.7, 0.0), rtol=1e-12)
