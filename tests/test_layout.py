# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""The shape of the checkout: libraries below commands, one loader of a trained LEO, results
without the scripts that made them."""

import ast
import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND_PACKAGES = ("tools", "benchmarks")  # Commands only; the top-level commands follow.
TOP_LEVEL_COMMANDS = ("runner", "predict")


def imported_modules(source: str):
  """The top-level package of every module `source` imports, anywhere (in functions too)."""
  names = set()
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      names.update(alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0:
      names.add(node.module.split(".")[0])
  return names


def test_imported_modules_sees_every_form_of_import():
  source = ("import a.b, c\nfrom d.e import f\nimport g as h\n"
            "def late():\n  from i import j as k\n  import tools.data.x\n")
  assert imported_modules(source) == {"a", "c", "d", "g", "i", "tools"}


def test_no_top_level_module_imports_a_command():
  """The libraries import neither tools/, benchmarks/ nor runner.py or predict.py; runner.py
  and predict.py import no other command either."""
  modules = sorted(glob.glob(os.path.join(ROOT, "*.py")))
  assert {"prediction.py", "backbone.py", "images.py", "runner.py"} <= {
      os.path.basename(path) for path in modules}
  offenders = {}
  for path in modules:
    with open(path) as f:
      imported = imported_modules(f.read())
    name = os.path.splitext(os.path.basename(path))[0]
    forbidden = set(COMMAND_PACKAGES) | (set(TOP_LEVEL_COMMANDS) - {name})
    if imported & forbidden:
      offenders[name] = sorted(imported & forbidden)
  assert offenders == {}


def _sources():
  """Every Python file of the checkout but the tests, relative to it."""
  for pattern in ("*.py", "tools/**/*.py", "benchmarks/*.py"):
    for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
      yield os.path.relpath(path, ROOT)


def test_a_trained_leo_is_restored_only_by_trained_restore():
  reads = re.compile(r"Checkpoint\(model=\w+\)\s*\.read\(")
  readers = []
  for path in _sources():
    with open(os.path.join(ROOT, path)) as f:
      if reads.search(f.read()):
        readers.append(path)
  assert readers == ["trained.py"]


def test_the_results_folder_holds_records_and_figures_not_scripts():
  assert glob.glob(os.path.join(ROOT, "results", "**", "*.sh"), recursive=True) == []
  assert sorted(os.listdir(os.path.join(ROOT, "experiments"))) == [
      "glyphs.sh", "helps.sh", "study.sh", "tables.sh", "transforms.sh", "when.sh"]


def test_the_layout_page_names_every_module_and_only_modules_that_exist():
  with open(os.path.join(ROOT, "docs", "layout.md")) as f:
    named = set(re.findall(r"^    ([\w/.]+\.py|[\w/]+/)\s", f.read(), re.MULTILINE))
  modules = {os.path.basename(path) for path in glob.glob(os.path.join(ROOT, "*.py"))}
  modules |= {os.path.relpath(path, ROOT) for path in glob.glob(os.path.join(ROOT, "tools", "*.py"))
              if not path.endswith("__init__.py")}
  folders = {name + "/" for name in os.listdir(ROOT)
             if os.path.isdir(os.path.join(ROOT, name)) and not name.startswith(".")
             and name not in ("tools", "__pycache__")}
  folders |= {f"tools/{name}/" for name in os.listdir(os.path.join(ROOT, "tools"))
              if os.path.isdir(os.path.join(ROOT, "tools", name)) and name != "__pycache__"}
  assert named == modules | folders
