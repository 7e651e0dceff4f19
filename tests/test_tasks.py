# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""tasks.py: portable tasks written and read back, and the files it refuses, in one line."""

import json

import numpy as np
import pytest

import data
import tasks


def _split():
  """Three classes of three images: rows 0-2 are class a, 3-5 b, 6-8 c."""
  keys = [f"test-{c}-{c}_{i}" for c in "abc" for i in range(3)]
  return data.validate_embeddings({"embeddings": np.ones((9, 4), np.float32),
                                   "keys": np.asarray(keys)}, "<test>")


def test_written_tasks_read_back_as_the_same_rows(tmp_path):
  split = _split()
  rows = np.array([[[4, 3, 5], [0, 2, 1]], [[8, 6, 7], [3, 4, 5]]])  # 2-way 1-shot, 2 queries.
  writer = tasks.TaskWriter(str(tmp_path / "tasks.jsonl"), split, shots=1)
  writer.update(rows)
  writer.close()
  first = json.loads((tmp_path / "tasks.jsonl").read_text().splitlines()[0])
  assert first == {"classes": ["b", "a"], "support": [["test-b-b_1"], ["test-a-a_0"]],
                   "query": [["test-b-b_0", "test-b-b_2"], ["test-a-a_2", "test-a-a_1"]]}
  given = tasks.read_tasks(str(tmp_path / "tasks.jsonl"), split, "<test>")
  np.testing.assert_array_equal(given.rows, rows)
  assert given.shape == (2, 2, 1, 2)


@pytest.mark.parametrize("lines, expected", [
    ([{"classes": ["a", "b"], "support": [["test-b-b_0"], ["test-b-b_1"]],
       "query": [["test-a-a_0"], ["test-b-b_2"]]}],
     "line 1: key 'test-b-b_0' is of class 'b', listed under 'a'"),
    ([{"classes": ["a", "b"], "support": [["test-a-a_0"], ["test-b-b_0"]],
       "query": [["test-a-a_1"], ["test-b-b_1"]]},
      {"classes": ["a", "b", "c"], "support": [["test-a-a_0"], ["test-b-b_0"], ["test-c-c_0"]],
       "query": [["test-a-a_1"], ["test-b-b_1"], ["test-c-c_1"]]}],
     'line 2: expected "classes": a list of 2 strings'),
    ([{"classes": ["a", "b"], "support": [["test-a-a_0"]], "query": [["test-a-a_1"]]}],
     'line 1: expected "support": 2 lists of keys, one per class'),
])
def test_a_task_of_the_wrong_class_or_shape_is_one_line_naming_the_line(tmp_path, lines,
                                                                         expected):
  path = tmp_path / "tasks.jsonl"
  path.write_text("".join(json.dumps(line) + "\n" for line in lines))
  with pytest.raises(tasks.TasksError) as error:
    tasks.read_tasks(str(path), _split(), "<test>")
  assert expected in str(error.value) and "\n" not in str(error.value)


def test_exporting_into_a_missing_folder_is_refused_before_any_evaluation(tmp_path):
  with pytest.raises(tasks.TasksError, match=r"--export_tasks=.*: cannot write there"):
    tasks.TaskWriter(str(tmp_path / "missing" / "tasks.jsonl"), _split(), shots=1)
