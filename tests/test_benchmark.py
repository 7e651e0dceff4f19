"""benchmarks/benchmark.py in its quick mode: every measurement runs and lands in the table."""

import logging
import os
import re
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
              "loop between validations vs the bare step, 1-shot", "wall clock of 2 log windows",
              "loop part: each step's loss and accuracy read", "at the loop's",
              "float32 matmul [7500,128]x[128,128], 1 thread", "float32 matmul [60,640]",
              "1-shot step with oneDNN off", "oneDNN on vs off, 1-shot",
              "README's first command (--preset=icons_1shot), whole process",
              "not compared with the README"):
    assert row in table, row
  assert os.path.exists(tmp_path / "miniImageNet" / "center" / "test_embeddings.pkl")


@pytest.mark.slow
def test_quick_cost_growth_and_study_throughput_print_their_rows(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "benchmark.py"), "--quick",
       "--nodefault_rows", "--cost_growth", "--study_throughput", f"--data_dir={tmp_path}"],
      capture_output=True, text=True, timeout=900, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-3000:]
  table = result.stdout
  for row in ("cost growth: 5-way 1-shot, 64-d", "cost growth: 20-way 5-shot, 640-d",
              "FLOPs x", "scoring N x Q x N x D x", "pairs (N K)² x",
              "tieredImageNet-sized data loaded and validated", "351/97/160 classes x 40 x 640-d",
              "s/GB; miniImageNet-sized", "GFLOP/s); test x",
              "peak resident memory, tieredImageNet-sized", "x the embeddings",
              "tieredImageNet- vs miniImageNet-sized",
              "study of 2 trials x 4 steps, 1 tuner process ", "2 tuner processes",
              "two tuners vs one", "load average at the end"):
    assert row in table, row
  assert re.search(r"GFLOP/s\); test x\d+\.\d\d \(scoring", table), table
  assert "meta-train step, 5-way 1-shot, vectorised" not in table  # --nodefault_rows.


def test_the_first_commands_line_is_read_from_the_readme():
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import benchmark  # pylint: disable=g-import-not-at-top
  line = benchmark.readme_metatest_line()
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as readme:
    text = readme.read()
  # The line the README says its first command ends with, before any other.
  assert line.startswith("Metatest accuracy: ") and "5-way 1-shot" in line
  assert text.index(line) < text.index("## Classify your images")


class FakeClock:
  """time.perf_counter for a test: it moves only when told."""

  def __init__(self):
    self.now = 0.0

  def __call__(self):
    return self.now


def test_the_loop_is_timed_between_log_lines_beside_bare_blocks(monkeypatch):
  """Bare blocks of 2 steps of 1 s run at each log line but the last; a window opens when a
  block ends and closes at the next log line, unless a validation fell in it."""
  sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
  import benchmark  # pylint: disable=g-import-not-at-top
  clock = FakeClock()
  monkeypatch.setattr(benchmark.time, "perf_counter", clock)

  def bare_step():
    clock.now += 1.0
    return 0.0

  watch = benchmark.InterleavedLoop(bare_step, block_steps=2)
  for now, message in ((0, "Step: 0 meta-valid accuracy: 20.00%"),
                       (10, "Step: 100/400 9.0 steps/s ETA"),  # Block: 10-12.
                       (17, "Step: 200/400 9.0 steps/s ETA"),  # Window 12-17; block 17-19.
                       (25, "Step: 200 meta-valid accuracy: 21.00%"),  # Drops 19-...
                       (30, "Step: 300/400 9.0 steps/s ETA"),  # Block 30-32.
                       (40, "Step: 400/400 9.0 steps/s ETA")):  # Window 32-40; no block.
    clock.now = now
    watch.emit(logging.LogRecord("absl", logging.INFO, __file__, 0, message, (), None))
  assert watch.windows == [(100, 5.0), (100, 8.0)]
  assert watch.blocks == [(2, 2.0), (2, 2.0)]
  assert watch.block_seconds == 6.0
  assert watch.rate(watch.windows) == 200 / 13
  assert watch.rate(watch.blocks) == 1.0


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
