"""benchmarks/benchmark.py in its quick mode: every measurement runs and lands in the table."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_benchmark_prints_the_whole_table(tmp_path):
  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "benchmarks", "benchmark.py"), "--quick",
       f"--data_dir={tmp_path}"], capture_output=True, text=True, timeout=600,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-3000:]
  table = result.stdout
  for row in ("meta-train step, 5-way 1-shot, vectorised", "per-task map_fn",
              "speed-up of the vectorised step, 5-shot", "episode sampling alone",
              "meta-validation", "meta-test, 20 tasks 5-shot", "595 queries/class",
              "projected full default 1-shot run", "peak resident memory"):
    assert row in table, row
  assert os.path.exists(tmp_path / "miniImageNet" / "center" / "test_embeddings.pkl")
