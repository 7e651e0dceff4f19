# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Portable evaluation tasks: one JSON line per task, by class names and image keys.

    {"classes": ["n01", "n02", ...], "support": [[key, ...], ...], "query": [[key, ...], ...]}

`classes` in the task's order (class i has label i); `support[i]` and `query[i]` are class
i's support and query images, by their keys in the split's embeddings pickle. Lines are in
the order the tasks were evaluated. `--export_tasks=FILE` writes the tasks an evaluation
scored (`TaskWriter`; FILE appears whole when the evaluation ends, and replaces only a tasks
file), so that code outside leo can be scored on identical tasks;
`--tasks=FILE` evaluates on the tasks of such a file (`read_tasks`), written by leo or not.
The rows the keys name are the rows `records.TaskFingerprint` digests, so a file read back
gives the fingerprint of the evaluation that wrote it.
"""

import json
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

import data
import runfolder
import storage
import utils

# The form of a task line (`storage.field_problem`); `_task_rows` checks the rest.
TASK_SPEC = {"classes": [str], "support": [[str]], "query": [[str]]}


class TasksError(utils.LeoError):
  """A tasks file that cannot be written or read."""


def _class_of_rows(split: data.SplitIndex) -> np.ndarray:
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


def _not_replaceable(path: str) -> Optional[str]:
  """Why the tasks file `path` may not be written, or None: what is there is not a tasks file
  (a folder, a file whose first line is not a task), or it is a name leo writes in a run
  folder (`config.json`, `results/...`)."""
  folder, name = os.path.split(path)
  parent, sub_folder = os.path.split(folder)
  for run, own, kind in ((folder, name, "a file"), (parent, sub_folder, "a folder")):
    if runfolder.is_own(own) and storage.exists(os.path.join(run, runfolder.CONFIG_FILE)):
      return f"{own} is {kind} of the run folder {run or os.curdir}"
  if not storage.exists(path) or storage.is_link(path):
    return None  # A link is refused by the writer, in its own words.
  if storage.isdir(path):
    return "a folder, expected a file name"
  try:
    with storage.reading(path) as file:
      storage.parse_json(file.readline(), path, "", TASK_SPEC)
  except (*storage.io_errors(), storage.StorageError):
    return "a file that is not a tasks file (its first line is no task)"
  return None


class TaskWriter:
  """Writes tasks given as rows of a split, `[tasks, classes, shots + queries]`, as lines,
  into a file that appears whole at `close` (`storage.AtomicFile`); `discard` drops them.
  Raises TasksError (or StorageError: a symbolic link) before any task is written if the file
  cannot be written, or would replace what is not a tasks file."""

  def __init__(self, path: str, split: data.SplitIndex, shots: int):
    self.path, self._split, self._shots = path, split, shots
    self._class_of_row = _class_of_rows(split)
    problem = _not_replaceable(path)
    if problem:
      raise TasksError(f"--export_tasks={path}: {problem}; leo writes tasks only where there "
                       "is no file, or over a tasks file: choose another file")
    try:
      self._file = storage.AtomicFile(path)
    except storage.io_errors() as error:
      raise TasksError(f"--export_tasks={path}: cannot write there "
                       f"({storage.reason(error)})") from None

  def update(self, rows: np.ndarray):
    """Appends the tasks of `rows` `[tasks, classes, shots + queries]`, in order."""
    keys = self._split.keys
    for task in np.asarray(rows):
      line = {"classes": [self._split.class_names[self._class_of_row[images[0]]]
                          for images in task],
              "support": [[keys[row] for row in images[:self._shots]] for images in task],
              "query": [[keys[row] for row in images[self._shots:]] for images in task]}
      self._file.write((json.dumps(line) + "\n").encode("utf-8"))

  def close(self):
    """Completes the file: until then `path` is as it was."""
    self._file.commit()

  def discard(self):
    self._file.discard()


def _strings(value: List[str], count: int, what: str) -> List[str]:
  if len(value) != count:
    raise ValueError(f"expected {what}: a list of {count} strings")
  return value


def _task_rows(line: dict, row_of_key: dict, class_of_row: np.ndarray,
               class_names: Sequence[str], shape) -> Tuple[np.ndarray, tuple]:
  """The rows `[classes, shots + queries]` of one task line (of the form TASK_SPEC) and its
  shape (N, K, Q), which must be `shape` unless that is None (the first line)."""
  classes = line["classes"]
  num_classes = shape[0] if shape else len(classes)
  _strings(classes, num_classes, '"classes"')
  if num_classes < 2 or len(set(classes)) != num_classes:
    raise ValueError(f'expected 2 or more distinct "classes", found {classes}')
  for part in ("support", "query"):
    if len(line[part]) != num_classes or not all(line[part]):
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


def read_tasks(path: str, split: data.SplitIndex, split_path: str) -> Tasks:
  """The tasks of a tasks file as rows of `split` (at `split_path`). Every task must have
  the shape of the first."""
  try:
    text = storage.read_bytes(path).decode("utf-8")
  except (*storage.io_errors(), UnicodeDecodeError) as error:
    raise TasksError(f"--tasks={path}: cannot read it ({storage.reason(error)})") from None
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
      line = storage.parse_json(text_line, f"--tasks={path}: line {number}", "a task line",
                                TASK_SPEC)
      rows, shape = _task_rows(line, row_of_key, class_of_row, split.class_names, shape)
    except ValueError as error:
      raise TasksError(f"--tasks={path}: line {number}: {utils.first_line(error)} "
                       f"({split_path})") from None
    tasks.append(rows)
  if not tasks:
    raise TasksError(f"--tasks={path}: no task in it (expected one JSON line per task)")
  return Tasks(np.stack(tasks), shape[1])
