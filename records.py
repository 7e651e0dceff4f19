# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Results as records: what was measured, on which tasks, by what.

    <results>/<method>-<split>-<N>way<K>shot-q<Q>-t<tasks>-seed<seed>[-step<step>]-<identity>.json
    <run>/validations.jsonl   one line per validation of a training run

A result record holds the per-task accuracies and a fingerprint of the tasks (the split's
keys, the task shape and every task's sampled images), so two records are proved to be on
identical tasks before they are compared pairwise (tools/study/compare.py). Its name is its
identity: `<identity>` begins the digest of everything that makes two evaluations differ
(`identity_digest`, which evaluation.py feeds), so the same evaluation repeated replaces only
its own record and two others never share a name. A record carries a checksum of its
contents (storage.atomic_write_checked_json); one written before leo kept them is read as it
is. `<results>` is `<run>/results` for LEO, `<checkpoint_path>/results` for a baseline, or
`--results_path`. Records are read by their contents, never by their names.
"""

import hashlib
import json
import math
import os
from typing import List, Optional, Tuple

import numpy as np

import storage
import utils

RECORD_KIND = "leo-result"
RECORD_VERSION = 1
RESULTS_FOLDER = "results"
VALIDATIONS_FILE = "validations.jsonl"
IDENTITY_FIELD = "identity"  # A record's `identity_digest`.
NAME_DIGEST_CHARS = 12  # Of the identity digest in a record's name: 48 bits.
# A record's accuracy and ci95 are those of its task accuracies, which are stored to 7
# decimals (their mean moves by at most 5e-8): a larger gap is an edited record.
SUMMARY_TOLERANCE = 1e-6


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


def identity_digest(identity) -> str:
  """SHA-256 of a JSON-able description of an evaluation (what makes it differ from others)."""
  return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()


def record_name(record) -> str:
  """`<method>-<split>-<N>way<K>shot-q<Q>-t<tasks>-seed<seed>[-step<step>]-<identity>`."""
  step = (record.get("trained") or {}).get("step")
  name = (f"{record['method']}-{record['split']}-{record['num_classes']}way"
          f"{record['num_tr_examples_per_class']}shot-q{record['queries_per_class']}"
          f"-t{record['num_tasks']}-seed{record['seed']}")
  return (name + (f"-step{step}" if step is not None else "")
          + f"-{record[IDENTITY_FIELD][:NAME_DIGEST_CHARS]}")


def write_record(results: str, record, root: Optional[str] = None) -> str:
  """Writes `record` (with its IDENTITY_FIELD) as `<results>/<record_name>.json`, durably,
  atomically, with a checksum, and returns its path. It replaces only a record of the same
  identity: any other file of that name is refused and left as it is. `root`: the folder leo
  owns above `results` (a run folder, whose `results/` may be no link); default `results`."""
  root = root or results
  storage.makedirs(results, root)
  path = storage.join(results, record_name(record) + ".json")
  if storage.exists(path):
    try:
      existing = storage.read_json(path, _WHAT)
    except storage.StorageError:
      existing = {}
    if (existing.get("record"), existing.get(IDENTITY_FIELD)) != (RECORD_KIND,
                                                                  record[IDENTITY_FIELD]):
      held = ("the record of another evaluation" if existing.get("record") == RECORD_KIND
              else "a file leo did not write as a record")
      raise storage.StorageError(f"{path}: holds {held}; leo replaces only the record of the "
                                 "same evaluation there: move it aside, then rerun")
  storage.atomic_write_checked_json(path, dict(record, record=RECORD_KIND,
                                               version=RECORD_VERSION), root)
  return path


_WHAT = "a result record: rerun the evaluation that made it"
_DATA = (None, {"dataset_name": str, "embedding_crop": str, "data_path": (None, str)})
# The form of a record (`storage.field_problem`): what a comparison needs, and what it shows
# of the fields a record may lack (null).
_SPEC = {
    "method": str, "split": str, "num_classes": int, "num_tr_examples_per_class": int,
    "queries_per_class": int, "num_tasks": int, "seed": int, "accuracy": float,
    "ci95": float, "task_accuracies": list, "task_fingerprint": str, "config": dict,
    "dataset_name": (None, str), "tested_on": _DATA, "meta_trained_on": _DATA,
    "trained": (None, {"step": (None, int), "num_classes": (None, int),
                       "num_tr_examples_per_class": (None, int), "leo_commits": (None, [str])})}


def read_record(path: str):
  """The result record in `path`, checked: its checksum (if it has one), its version, the
  fields a comparison needs and their types, one accuracy per task, every accuracy a number
  in [0, 1], its accuracy and ci95 those of its task accuracies. A damaged file, a JSON
  object of another kind or a record that fails a check is a one-line StorageError."""
  record = storage.read_checked_json(path, _WHAT)
  if record.get("record") != RECORD_KIND:
    raise storage.StorageError(f"{path}: not a leo result record (no \"record\": "
                               f"\"{RECORD_KIND}\")")
  return _checked(path, record)


def find_records(folder: str) -> List[Tuple[str, dict]]:
  """(path, record) of every result record below `folder`, at any depth (hidden names
  aside), by path: each `*.json` file that is a JSON object of the record kind, checked as
  `read_record` checks it. Other JSON is passed over, and so is a file that does not
  parse, except in a `results/` folder: there it is a damaged record (a truncated one may
  have lost its kind)."""
  found = []
  for path in sorted(storage.join(below, name) for below, names in storage.walk(folder)
                     for name in names if name.endswith(".json")):
    try:
      record = storage.read_json(path, _WHAT)
    except storage.StorageError:
      if os.path.basename(os.path.dirname(path)) == RESULTS_FOLDER:
        raise
      continue
    if record.get("record") == RECORD_KIND:
      found.append((path, read_record(path)))
  return found


def _checked(path: str, record: dict) -> dict:
  problem = _problem(record)
  if problem:
    raise storage.StorageError(f"{path}: {problem}")
  return record


def _problem(record: dict) -> Optional[str]:
  """What is wrong with a record's fields (see `read_record`), or None."""
  if record.get("version") != RECORD_VERSION:
    return f"record version {record.get('version')!r}, leo reads version {RECORD_VERSION}"
  problem = storage.field_problem(record, _SPEC)
  if problem:
    return problem
  if record["num_tasks"] < 1 or len(record["task_accuracies"]) != record["num_tasks"]:
    return (f"{len(record['task_accuracies'])} task_accuracies for num_tasks="
            f"{record['num_tasks']}, expected one per task and at least one")
  for name, values in (("accuracy", [record["accuracy"]]), ("ci95", [record["ci95"]]),
                       ("task_accuracies", record["task_accuracies"])):
    bad = [value for value in values if not _is_accuracy(value)]
    if bad:
      return f"{name} holds {bad[0]!r:.40}, expected numbers in [0, 1]"
  for name, value, expected in zip(("accuracy", "ci95"), (record["accuracy"], record["ci95"]),
                                   utils.mean_and_confidence_interval(record["task_accuracies"])):
    if abs(value - expected) > SUMMARY_TOLERANCE:
      return (f"{name} is {value!r}, but its task_accuracies give {expected!r}: the record "
              "was edited")
  return None


def _is_a(value, kind) -> bool:
  """isinstance, a bool not being a number."""
  return isinstance(value, kind) and not isinstance(value, bool)


def _is_accuracy(value) -> bool:
  """A finite number in [0, 1] (an accuracy, or the half-width of its interval)."""
  return _is_a(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1


def append_validation(folder: str, entry):
  storage.append_line(storage.join(folder, VALIDATIONS_FILE), json.dumps(entry, sort_keys=True))


_VALIDATION_SPEC = {"step": int, "accuracy": float}


def read_validations(folder: str) -> List[dict]:
  """The validations of the run in `folder` in step order, [] before the first: a
  re-validated step (a resumed run appends it again) keeps its last line, and a torn line (a
  crash mid-append) or one without an integer step and a numeric accuracy is skipped."""
  path = storage.join(folder, VALIDATIONS_FILE)
  if not storage.exists(path):
    return []
  by_step = {}
  for line in storage.read_bytes(path).decode("utf-8", "replace").splitlines():
    try:
      entry = storage.parse_json(line, path, "a validation", _VALIDATION_SPEC)
    except storage.StorageError:
      continue
    by_step[entry["step"]] = entry
  return [by_step[step] for step in sorted(by_step)]

