# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Small helpers shared by the modules of leo."""

import fcntl
import json
import math
import os
import shutil
from typing import Sequence, Tuple

import numpy as np

# Two-sided 95% quantile of the standard normal: tasks are many (thousands), so the normal
# approximation of the mean's sampling distribution is what papers report.
Z_95 = 1.959963984540054


class LeoError(Exception):
  """An error a user can act on: the runner prints its message as one line and exits."""


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


# ---- Files that must survive a crash at any instant. ----

def atomic_write_json(path: str, contents) -> None:
  """Writes JSON so that `path` holds either its old or its new contents, never a mix."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(contents, f, indent=2, sort_keys=True)
    f.write("\n")
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_json(path: str):
  with open(path) as f:
    return json.load(f)


class RunLock:
  """An exclusive lock on a run folder, released when the process ends however it ends."""

  def __init__(self, folder: str):
    self.path = os.path.join(folder, ".lock")
    self._file = None

  def __enter__(self):
    self._file = open(self.path, "a+")
    try:
      fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      self._file.seek(0)
      holder = self._file.read().strip() or "another process"
      self._file.close()
      raise LeoError(f"--checkpoint_path={os.path.dirname(self.path)}: another leo run "
                     f"({holder}) is using this folder; wait for it or choose another "
                     "folder") from None
    self._file.seek(0)
    self._file.truncate()
    self._file.write(f"pid {os.getpid()}")
    self._file.flush()
    return self

  def __exit__(self, *unused_exc):
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()


class BestCheckpoint:
  """`<run>/best_checkpoint`: the weights with the best validation accuracy so far.

  The folder holds TF checkpoint files `model.ckpt-<step>.*` and `best.json` (step, accuracy,
  checkpoint prefix, configuration). `best.json` is the commit point: new files are written
  under a new prefix, then `best.json` is replaced atomically, then older files are deleted.
  A crash at any instant leaves the old best or the new best, never neither nor a mix, and
  `clean()` removes what an interrupted write left behind.
  """

  INFO = "best.json"

  def __init__(self, folder: str):
    self.folder = folder

  @property
  def info(self):
    """The committed `best.json`, or None."""
    path = os.path.join(self.folder, self.INFO)
    return read_json(path) if os.path.exists(path) else None

  @property
  def accuracy(self) -> float:
    info = self.info
    return info["accuracy"] if info else -math.inf

  @property
  def prefix(self) -> str:
    return os.path.join(self.folder, self.info["checkpoint"])

  def clean(self):
    """Removes files that no committed best refers to (interrupted writes)."""
    if not os.path.isdir(self.folder):
      return
    info = self.info
    keep = {self.INFO, "checkpoint"}
    for name in os.listdir(self.folder):
      committed = info and name.startswith(info["checkpoint"] + ".")
      if name not in keep and not committed and (name.startswith("model.ckpt-")
                                                 or ".tmp-" in name):
        remove_path(os.path.join(self.folder, name))

  def save(self, checkpoint, step: int, accuracy: float, extra) -> None:
    """Writes `checkpoint` as the new best (the caller checked that it is better)."""
    os.makedirs(self.folder, exist_ok=True)
    self.clean()
    name = f"model.ckpt-{step}"
    if self.info and self.info["checkpoint"] == name:
      return  # The same step is already the committed best.
    checkpoint.write(os.path.join(self.folder, name))
    atomic_write_json(os.path.join(self.folder, self.INFO),
                      dict(extra, step=int(step), accuracy=float(accuracy), checkpoint=name))
    # TF's own index, so that tf.train.latest_checkpoint(best_checkpoint) works too.
    with open(os.path.join(self.folder, "checkpoint.tmp-index"), "w") as f:
      f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    os.replace(os.path.join(self.folder, "checkpoint.tmp-index"),
               os.path.join(self.folder, "checkpoint"))
    self.clean()


def remove_path(path: str):
  """Deletes a file or a folder tree."""
  if os.path.isdir(path):
    shutil.rmtree(path, ignore_errors=True)
  else:
    os.remove(path)
