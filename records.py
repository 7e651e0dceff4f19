# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Results as records: what was measured, on which tasks, by what.

    <folder>/results/<method>-<split>-<N>way<K>shot-q<Q>-t<tasks>-seed<seed>[-step<step>].json
    <run>/validations.jsonl   one line per validation of a training run

A result record holds the per-task accuracies and a fingerprint of the tasks (the split's
keys, the task shape and every task's sampled images), so two records are proved to be on
identical tasks before they are compared pairwise (tools/study/compare.py). The same evaluation
repeated replaces only its own record. `<folder>` is the run folder for LEO and
`--checkpoint_path` for a baseline.
"""

import hashlib
import json
from typing import List, Optional

import numpy as np

RECORD_KIND = "leo-result"
RECORD_VERSION = 1
RESULTS_FOLDER = "results"
VALIDATIONS_FILE = "validations.jsonl"


class TaskFingerprint:
  """SHA-256 of a sequence of tasks: equal digests mean identical tasks.

  Covers the split's keys (which images the rows index), the task shape and, task by task,
  the rows `[classes, shots + queries]` of the images sampled, classes in episode order and
  each class's support images first.
  """

  def __init__(self, keys_digest: str, num_classes: int, shots: int, queries: int):
    self._digest = hashlib.sha256(
        f"{keys_digest}:{num_classes}-way:{shots}-shot:{queries}-queries".encode("ascii"))
    self._shape = (num_classes, shots + queries)

  def update(self, rows: np.ndarray):
    """Adds the tasks of `rows` `[tasks, classes, shots + queries]`, in order."""
    rows = np.asarray(rows)
    if rows.shape[1:] != self._shape:
      raise ValueError(f"rows of shape {rows.shape}, expected [tasks, {self._shape[0]}, "
                       f"{self._shape[1]}]")
    self._digest.update(np.ascontiguousarray(rows, dtype="<i8").tobytes())

  def hexdigest(self) -> str:
    return self._digest.hexdigest()


def record_name(method: str, split: str, num_classes: int, shots: int, queries: int,
                num_tasks: int, seed: int, step: Optional[int] = None) -> str:
  name = f"{method}-{split}-{num_classes}way{shots}shot-q{queries}-t{num_tasks}-seed{seed}"
  return name + (f"-step{step}" if step is not None else "")


# storage (and so TensorFlow) is imported by the functions that read or write files, not at
# import: tools that read local records (tools/study/compare.py, tools/tune.py) start in a second.

def write_record(folder: str, record) -> str:
  """Writes `record` as `<folder>/results/<its name>.json` (durably, atomically)."""
  import storage  # pylint: disable=g-import-not-at-top
  results = storage.join(folder, RESULTS_FOLDER)
  storage.makedirs(results)
  trained = record.get("trained") or {}
  path = storage.join(results, record_name(
      record["method"], record["split"], record["num_classes"],
      record["num_tr_examples_per_class"], record["queries_per_class"], record["num_tasks"],
      record["seed"], trained.get("step")) + ".json")
  storage.atomic_write_json(path, dict(record, record=RECORD_KIND, version=RECORD_VERSION))
  return path


def read_record(path: str):
  """A result record; a damaged file or a JSON object of another kind is a one-line error."""
  import storage  # pylint: disable=g-import-not-at-top
  record = storage.read_json(path, "a result record: rerun the evaluation that made it")
  if record.get("record") != RECORD_KIND:
    raise storage.StorageError(f"{path}: not a leo result record (no \"record\": "
                               f"\"{RECORD_KIND}\")")
  return record


def append_validation(folder: str, entry):
  import storage  # pylint: disable=g-import-not-at-top
  storage.append_line(storage.join(folder, VALIDATIONS_FILE), json.dumps(entry, sort_keys=True))


def read_validations(folder: str):
  """The validations of a run, by step (see `parse_validations`)."""
  import storage  # pylint: disable=g-import-not-at-top
  path = storage.join(folder, VALIDATIONS_FILE)
  if not storage.exists(path):
    return []
  return parse_validations(storage.read_bytes(path).decode("utf-8", "replace"))


def parse_validations(text: str) -> List[dict]:
  """The entries of a validations.jsonl text in step order: a re-validated step (a resumed
  run appends it again) keeps its last line, and a torn line (a crash mid-append) is
  skipped."""
  by_step = {}
  for line in text.splitlines():
    try:
      entry = json.loads(line)
    except ValueError:
      continue
    if isinstance(entry, dict) and isinstance(entry.get("step"), int):
      by_step[entry["step"]] = entry
  return [by_step[step] for step in sorted(by_step)]
