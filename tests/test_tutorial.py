# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""docs/tutorial.ipynb: committed without outputs, and it runs top to bottom (the slow group:
it trains and evaluates, about two minutes)."""

import os

import nbformat
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "docs", "tutorial.ipynb")
SHIPPED_MODELS = os.path.join(ROOT, "datasets", "models")


def _code_cells(notebook):
  return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_the_tutorial_is_committed_without_outputs():
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(notebook)
  cells = _code_cells(notebook)
  assert cells and all(cell.outputs == [] and cell.execution_count is None for cell in cells)


@pytest.mark.slow
def test_the_tutorial_runs_top_to_bottom_writing_only_into_its_work_folder(tmp_path):
  from nbclient import NotebookClient  # pylint: disable=g-import-not-at-top
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  shipped = sorted(os.walk(SHIPPED_MODELS))
  NotebookClient(notebook, timeout=600, kernel_name="python3",
                 resources={"metadata": {"path": os.path.join(ROOT, "docs")}}).execute(
                     env=dict(os.environ, TMPDIR=str(tmp_path)))  # A cell that fails raises.
  texts = ["".join(output.get("text", "") for output in cell.outputs)
           for cell in _code_cells(notebook)]
  assert sum("query" in text and "predicted" in text for text in texts) == 1  # The table.
  assert any("| R1 − R2 | paired | leo − nearest_centroid | test | 5-way 1-shot | 41 | 300 |"
             in text for text in texts)
  assert any("Training done: 300 steps" in text and "Metatest accuracy:" in text
             for text in texts)
  figures = [output for cell in _code_cells(notebook) for output in cell.outputs
             if "image/png" in output.get("data", {})]
  assert len(figures) == 2  # The queries with their predictions, and the learning curves.
  assert sorted(os.walk(SHIPPED_MODELS)) == shipped  # Nothing written into the checkout's.
  assert [name for name in os.listdir(tmp_path) if name.startswith("leo-tutorial-")]
