# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Small helpers shared by the modules of leo."""

import functools
import logging
import math
import os
from typing import Sequence, Tuple

import numpy as np

# The checkout leo runs from: its bundled data, shipped models and commands are found from here.
REPOSITORY = os.path.dirname(os.path.abspath(__file__))
# Two-sided 95% quantile of the standard normal: tasks are many (thousands), so the normal
# approximation of the mean's sampling distribution is what papers report.
Z_95 = 1.959963984540054


class LeoError(Exception):
  """An error a user can act on: the runner prints its message as one line and exits."""


class Interrupted(LeoError):
  """The user stopped the command (Ctrl-C) at a safe point; the message says how to resume."""


class OwnLinesOrWarnings(logging.Filter):
  """Keeps leo's own log lines and anyone's warnings: TF's checkpointing logs at INFO too
  (and a virtual environment inside the checkout puts TF's files below leo's folder)."""

  def filter(self, record):
    own = record.pathname.startswith(REPOSITORY + os.sep) and "site-packages" not in record.pathname
    return record.levelno >= logging.WARNING or own


def mean_and_confidence_interval(values: Sequence[float]) -> Tuple[float, float]:
  """Mean and half-width of its 95% confidence interval (normal approximation).

  Args:
    values: one number per task, e.g. per-task query accuracies.

  Returns:
    (mean, half_width) with half_width = 1.96 * std(ddof=1) / sqrt(len(values)); the
    half-width is 0 for a single value.
  """
  values = np.asarray(values, dtype=np.float64)
  if values.ndim != 1 or values.size == 0:
    raise ValueError(f"expected a non-empty 1-D sequence, got shape {values.shape}")
  if values.size == 1:
    return float(values[0]), 0.0
  return float(values.mean()), float(Z_95 * values.std(ddof=1) / math.sqrt(values.size))


def first_line(error: BaseException, default: str = None) -> str:
  """An exception's message as one line (its first), or `default` (its type's name)."""
  lines = str(error).strip().splitlines()
  return lines[0] if lines else (default or type(error).__name__)


def percent(value: float) -> str:
  return "none yet" if value == -float("inf") else f"{value:.2%}"


def duration(seconds: float) -> str:
  """`1h02m03s`; "unknown" for an infinite or NaN time."""
  if not math.isfinite(seconds):
    return "unknown"
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def cpu_model() -> str:
  """The processor's model name (what a speed figure must be quoted with)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  import platform  # pylint: disable=g-import-not-at-top
  return platform.processor() or platform.machine() or "unknown"


@functools.cache
def import_tensorflow():
  """Imports and returns TensorFlow with its start-up chatter silenced (once: later calls
  return the module).

  TF 2.21 prints `I0000 ...` lines at import and a `failed call to cuInit` error on machines
  without a GPU whatever TF_CPP_MIN_LOG_LEVEL says, so file descriptor 2 points at /dev/null
  while TF is imported and looks for its devices, then comes back (later errors still show).
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  stderr = os.dup(2)
  with open(os.devnull, "w") as devnull:
    os.dup2(devnull.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top
      tensorflow.config.list_physical_devices()
    finally:
      os.dup2(stderr, 2)
      os.close(stderr)
  tensorflow.get_logger().setLevel("ERROR")
  return tensorflow
