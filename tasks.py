# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Portable evaluation tasks: one JSON line per task, by class names and image keys.

    {"classes": ["n01", "n02", ...], "support": [[key, ...], ...], "query": [[key, ...], ...]}

`classes` in the task's order (class i has label i); `support[i]` and `query[i]` are class
i's support and query images, by their keys in the split's embeddings pickle. Lines are in
the order the tasks were evaluated. `--export_tasks=FILE` writes the tasks an evaluation
scored (`TaskWriter`), so that code outside leo can be scored on identical tasks;
`--tasks=FILE` evaluates on the tasks of such a file (`read_tasks`), written by leo or not.
The rows the keys name are the rows `records.TaskFingerprint` digests, so a file read back
gives the fingerprint of the evaluation that wrote it.
"""

import json
from typing import List, NamedTuple, Sequence, Tuple

import numpy as np
import tensorflow as tf

import data
import storage
import utils

PARTIAL_SUFFIX = ".partial"  # The file being written; renamed to its name when complete.


class TasksError(utils.LeoError):
  """A tasks file that cannot be written or read."""


def _class_of_rows(split: data.Embeddings) -> np.ndarray:
  """Each row's class index `[images]`."""
  class_of_row = np.empty(len(split.keys), dtype=np.int64)
  for c, rows in enumerate(split.rows_by_class):
    class_of_row[rows] = c
  return class_of_row


class Tasks(NamedTuple):
  """Tasks read from a file, as rows of a split."""
  rows: np.ndarray  # [tasks, classes, shots + queries]
  shots: int

  @property
  def shape(self):
    """(tasks, classes, shots, queries)."""
    tasks, classes, examples = self.rows.shape
    return tasks, classes, self.shots, examples - self.shots


class TaskWriter:
  """Writes tasks given as rows of a split, `[tasks, classes, shots + queries]`, as lines."""

  def __init__(self, path: str, split: data.Embeddings, shots: int):
    self.path, self._split, self._shots = path, split, shots
    self._class_of_row = _class_of_rows(split)
    try:
      self._file = tf.io.gfile.GFile(path + PARTIAL_SUFFIX, "w")
      self._file.write("")  # A folder that is not there fails now, not after the evaluation.
      self._file.flush()
    except (tf.errors.OpError, OSError) as error:
      raise TasksError(f"--export_tasks={path}: cannot write there "
                       f"({utils.first_line(error)})") from None

  def update(self, rows: np.ndarray):
    """Appends the tasks of `rows` `[tasks, classes, shots + queries]`, in order."""
    keys = self._split.keys
    for task in np.asarray(rows):
      line = {"classes": [self._split.class_names[self._class_of_row[images[0]]]
                          for images in task],
              "support": [[keys[row] for row in images[:self._shots]] for images in task],
              "query": [[keys[row] for row in images[self._shots:]] for images in task]}
      self._file.write(json.dumps(line) + "\n")

  def close(self):
    """Completes the file: until then it is `<path>.partial`."""
    self._file.close()
    storage.sync(self.path + PARTIAL_SUFFIX)
    storage.rename(self.path + PARTIAL_SUFFIX, self.path)


def _strings(value, count, what: str) -> List[str]:
  if (not isinstance(value, list) or len(value) != count
      or not all(isinstance(item, str) for item in value)):
    raise ValueError(f"expected {what}: a list of {count} strings")
  return value


def _task_rows(line: dict, row_of_key: dict, class_of_row: np.ndarray,
               class_names: Sequence[str], shape) -> Tuple[np.ndarray, tuple]:
  """The rows `[classes, shots + queries]` of one task line and its shape (N, K, Q), which
  must be `shape` unless that is None (the first line)."""
  if not isinstance(line, dict) or not {"classes", "support", "query"} <= set(line):
    raise ValueError('expected a JSON object with "classes", "support" and "query"')
  classes = line["classes"]
  num_classes = shape[0] if shape else len(classes) if isinstance(classes, list) else 0
  _strings(classes, num_classes, '"classes"')
  if num_classes < 2 or len(set(classes)) != num_classes:
    raise ValueError(f'expected 2 or more distinct "classes", found {classes}')
  for part in ("support", "query"):
    if not isinstance(line[part], list) or len(line[part]) != num_classes or not all(
        isinstance(keys, list) and keys for keys in line[part]):
      raise ValueError(f'expected "{part}": {num_classes} lists of keys, one per class')
  shots, queries = shape[1:] if shape else (len(line["support"][0]), len(line["query"][0]))
  rows = np.empty((num_classes, shots + queries), dtype=np.int64)
  for i, name in enumerate(classes):
    keys = (_strings(line["support"][i], shots, f'"support"[{i}]')
            + _strings(line["query"][i], queries, f'"query"[{i}]'))
    if len(set(keys)) != len(keys):
      raise ValueError(f"class {name!r} lists an image twice")
    for j, key in enumerate(keys):
      if key not in row_of_key:
        raise ValueError(f"key {key!r} is not in the split")
      rows[i, j] = row_of_key[key]
      if class_names[class_of_row[rows[i, j]]] != name:
        raise ValueError(f"key {key!r} is of class "
                         f"{class_names[class_of_row[rows[i, j]]]!r}, listed under {name!r}")
  return rows, (num_classes, shots, queries)


def read_tasks(path: str, split: data.Embeddings, split_path: str) -> Tasks:
  """The tasks of a tasks file as rows of `split` (at `split_path`). Every task must have
  the shape of the first."""
  try:
    text = storage.read_bytes(path).decode("utf-8")
  except (tf.errors.OpError, OSError, UnicodeDecodeError) as error:
    raise TasksError(f"--tasks={path}: cannot read it ({utils.first_line(error)})") from None
  row_of_key = {key: row for row, key in enumerate(split.keys)}
  if len(row_of_key) != len(split.keys):
    raise TasksError(f"--tasks={path}: {split_path} names an image twice, so its keys cannot "
                     "name tasks")
  class_of_row = _class_of_rows(split)
  tasks, shape = [], None
  for number, text_line in enumerate(text.splitlines(), start=1):
    if not text_line.strip():
      continue
    try:
      rows, shape = _task_rows(json.loads(text_line), row_of_key, class_of_row,
                               split.class_names, shape)
    except ValueError as error:  # json.JSONDecodeError is one.
      raise TasksError(f"--tasks={path}: line {number}: {utils.first_line(error)} "
                       f"({split_path})") from None
    tasks.append(rows)
  if not tasks:
    raise TasksError(f"--tasks={path}: no task in it (expected one JSON line per task)")
  return Tasks(np.stack(tasks), shape[1])
