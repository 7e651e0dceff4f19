# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Training steps/s of this checkout's runner.py against another checkout's, side by side.

Measures what the run-folder protocol (train.log, validations.jsonl, windowed training
summaries every --log_steps, hparams, fsynced commits) costs a training step:

    git worktree add /tmp/leo-before <commit>
    python -m benchmarks.logging_overhead --other=/tmp/leo-before

Both runners train the same configuration on the bundled icons benchmark, alternately
(`--repeats` times each, so a change of machine load hits both). Each run is timed whole
(start-up, tracing, the three validations and every write included: what a user waits for),
and the table gives each runner's median and their ratio.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

import utils

flags.DEFINE_string("other", None, "Checkout of leo to compare with (e.g. a git worktree).")
flags.DEFINE_integer("repeats", 2, "Runs of each runner.")
flags.DEFINE_integer("steps", 1000, "Training steps per run.")
FLAGS = flags.FLAGS

_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_seconds(checkout: str, folder: str) -> float:
  """Wall-clock seconds of one training run of `checkout`'s runner.py."""
  start = time.perf_counter()
  subprocess.run(
      [sys.executable, os.path.join(checkout, "runner.py"), "--dataset_name=icons",
       f"--num_steps_limit={FLAGS.steps}", f"--checkpoint_steps={FLAGS.steps // 2}",
       "--noevaluate_after_training", f"--checkpoint_path={folder}"],
      capture_output=True, check=True, cwd=checkout,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  return time.perf_counter() - start


def main(argv):
  del argv
  seconds = {"this checkout": [], "other": []}
  with tempfile.TemporaryDirectory() as scratch:
    for repeat in range(FLAGS.repeats):
      for name, checkout in (("this checkout", _HERE), ("other", FLAGS.other)):
        seconds[name].append(run_seconds(checkout, os.path.join(scratch, f"{name}-{repeat}")))
  this, other = (statistics.median(seconds[n]) for n in ("this checkout", "other"))
  print(f"CPU: {utils.cpu_model()}; load average {os.getloadavg()[0]:.1f}; {FLAGS.steps} "
        f"steps, validations at 0, {FLAGS.steps // 2}, {FLAGS.steps}")
  print("| runner | seconds per run (median) | runs |\n|---|---|---|")
  runs = {name: ", ".join(f"{x:.1f}" for x in values) for name, values in seconds.items()}
  print(f"| this checkout | {this:.1f} | {runs['this checkout']} |")
  print(f"| other ({FLAGS.other}) | {other:.1f} | {runs['other']} |")
  print(f"| ratio this / other | {this / other:.3f} | |")


if __name__ == "__main__":
  flags.mark_flag_as_required("other")
  app.run(main)
