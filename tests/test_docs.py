# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""The documents' commands and links, checked against the checkout: every `--flag` a
`runner.py`, `predict.py`, `python -m tools...` or benchmark command of a user document gives
is a flag that command defines, every module such a command runs exists, and every link to a
file or a heading finds it. Read from the sources (no TensorFlow), so a renamed flag or a
moved section fails here in milliseconds."""

import ast
import functools
import glob
import os
import re
import shlex
from typing import Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple

from absl import app  # pylint: disable=unused-import  # Defines absl's own flags.
from absl import flags
from absl import logging  # pylint: disable=unused-import  # Defines absl's own flags.
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
USER_DOCUMENTS = sorted(["README.md", "RESULTS.md", "BENCHMARKS.md", "datasets/README.md"]
                        + [os.path.relpath(path, ROOT)
                           for path in glob.glob(os.path.join(ROOT, "docs", "*.md"))])
# What absl accepts besides the flags a program defines: its file and undefok flags, the help
# flags app.run adds, and the flags of absl's own modules (logging, app).
ABSL_FLAGS = frozenset({"flagfile", "undefok", "help", "helpshort", "helpfull", "helpxml"} | {
    name for module, module_flags in flags.FLAGS.flags_by_module_dict().items()
    if module.startswith("absl.") for flag in module_flags
    for name in (flag.name, flag.short_name) if name})
# Commands whose arguments after a bare `--` are runner.py's (each trial's).
PASSES_TO_RUNNER = frozenset({"tools/tune.py"})
_COMMAND_PACKAGES = ("tools", "benchmarks")
_SHELL_SEPARATORS = frozenset({"|", "||", "&&", ";", ">", ">>", "<", "2>", "&"})


# ---- The flags a command defines, read from its source. ----

class Flag(NamedTuple):
  name: str
  boolean: bool  # absl also takes --no<name>.


def _module_file(dotted: str) -> Optional[str]:
  """The checkout's file of a dotted module name (tools.data.x -> tools/data/x.py), if any."""
  path = os.path.join(ROOT, *dotted.split(".")) + ".py"
  return path if os.path.isfile(path) else None


def _is_main_block(node: ast.stmt) -> bool:
  return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
          and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__")


def _import_time_statements(body: Sequence[ast.stmt], as_command: bool) -> Iterator[ast.stmt]:
  """The statements that run when a module is imported (or, `as_command`, run as a program):
  the module body with its if/try/with blocks, not the bodies of functions and classes."""
  for node in body:
    if _is_main_block(node) and not as_command:
      continue
    yield node
    for field in ("body", "orelse", "finalbody", "handlers"):
      children = getattr(node, field, None)
      if children and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                            ast.ClassDef)):
        yield from _import_time_statements(
            [child for child in children if isinstance(child, ast.stmt)]
            + [stmt for handler in children if isinstance(handler, ast.ExceptHandler)
               for stmt in handler.body], as_command)


def _imported_files(statements: Sequence[ast.stmt]) -> List[str]:
  """The checkout's modules that `statements` import (`import x`, `from tools.data import y`)."""
  files = []
  for node in statements:
    if isinstance(node, ast.Import):
      files += [_module_file(alias.name) for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      files += [_module_file(node.module)]
      files += [_module_file(f"{node.module}.{alias.name}") for alias in node.names]
  return [path for path in files if path]


def _defines(nodes: Sequence[ast.AST]) -> Dict[str, Flag]:
  """The flags `flags.DEFINE_*("name", ...)` calls among `nodes` (and below them) define."""
  defined = {}
  for node in (child for top in nodes for child in ast.walk(top)):
    if not isinstance(node, ast.Call):
      continue
    function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(
        node.func, "id", "")
    if not function.startswith("DEFINE"):
      continue
    name = node.args[0] if node.args else next(
        (keyword.value for keyword in node.keywords if keyword.arg == "name"), None)
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
      defined[name.value] = Flag(name.value, function in ("DEFINE_boolean", "DEFINE_bool"))
  return defined


@functools.lru_cache(maxsize=None)  # Each program's sources are read once.
def command_flags(command_file: str) -> Dict[str, Flag]:
  """Every flag absl accepts from the program `command_file` (a path in the checkout): those
  its own file defines anywhere (its `define_flags()` and `__main__` block run when it is the
  program), and those defined at import time by the checkout's modules it imports, in turn."""
  with open(os.path.join(ROOT, command_file)) as f:
    tree = ast.parse(f.read())
  defined = _defines([tree])
  seen, to_read = set(), _imported_files(list(_import_time_statements(tree.body, True)))
  while to_read:
    path = to_read.pop()
    if path in seen:
      continue
    seen.add(path)
    with open(path) as f:
      statements = list(_import_time_statements(ast.parse(f.read()).body, False))
    # Their simple statements only: a DEFINE in a function runs when that function is called.
    defined.update(_defines([node for node in statements
                             if isinstance(node, (ast.Expr, ast.Assign, ast.AnnAssign))]))
    to_read += _imported_files(statements)
  defined.update({name: Flag(name, False) for name in ABSL_FLAGS})
  return defined


def accepts(defined: Dict[str, Flag], name: str) -> bool:
  if name in defined:
    return True
  negated = defined.get(name[2:]) if name.startswith("no") else None
  return bool(negated and negated.boolean)


# ---- The commands a document shows. ----

class Command(NamedTuple):
  document: str
  line: int  # 1-based, where the command starts.
  program: str  # The command's file in the checkout, e.g. "runner.py", "tools/tune.py".
  arguments: Tuple[str, ...]


def _command_lines(text: str) -> Iterator[Tuple[int, str]]:
  """(line number, text) of each shell line in fenced code blocks, continuations joined, and
  of each inline code span outside them."""
  fenced, pending, start = False, "", 0
  for number, line in enumerate(text.splitlines(), 1):
    if line.lstrip().startswith("```"):
      fenced, pending = not fenced, ""
      continue
    if not fenced:
      for span in re.findall(r"`([^`]+)`", line):
        yield number, span
      continue
    if not pending:
      start = number
    if line.rstrip().endswith("\\"):
      pending += line.rstrip()[:-1] + " "
      continue
    yield start, pending + line
    pending = ""


def _words(line: str) -> List[str]:
  try:
    return shlex.split(line, comments=True)
  except ValueError:  # An apostrophe in prose or Python: the line's words are enough.
    return line.split("#")[0].split()


def _program(words: Sequence[str], i: int) -> Tuple[Optional[str], int]:
  """The program words[i] starts (and the index of its first argument), if it is one of
  leo's: `runner.py`, `predict.py`, `-m tools.x`, `-m benchmarks.x`, or a path to one."""
  word = words[i]
  if word in ("runner.py", "predict.py") or re.fullmatch(r"(\./)?(tools|benchmarks)/\S+\.py",
                                                        word):
    return word[2:] if word.startswith("./") else word, i + 1
  if word == "-m" and i + 1 < len(words) and words[i + 1].split(".")[0] in _COMMAND_PACKAGES:
    return words[i + 1].replace(".", "/") + ".py", i + 2
  return None, i + 1


def commands(document: str, text: str) -> List[Command]:
  """Every command of leo's that `text` (the markdown of `document`) shows."""
  found = []
  for number, line in _command_lines(text):
    words, i = _words(line), 0
    while i < len(words):
      program, i = _program(words, i)
      if program is None:
        continue
      end = next((j for j in range(i, len(words)) if words[j] in _SHELL_SEPARATORS),
                 len(words))
      found.append(Command(document, number, program, tuple(words[i:end])))
      i = end
  return found


def problems(command: Command) -> List[str]:
  """What is wrong with `command`: a program that does not exist, or a flag it does not
  define (after a bare `--` of the tuner: a flag runner.py does not define)."""
  where = f"{command.document}:{command.line}: {command.program}"
  if not os.path.isfile(os.path.join(ROOT, command.program)):
    return [f"{where}: no such command in the checkout"]
  defined, found = command_flags(command.program), []
  for argument in command.arguments:
    if argument == "--" and command.program in PASSES_TO_RUNNER:
      where, defined = f"{where} (runner.py after --)", command_flags("runner.py")
      continue
    match = re.match(r"\[?--([A-Za-z_]\w*)", argument)
    if match and not accepts(defined, match.group(1)):
      found.append(f"{where}: --{match.group(1)} is not one of its flags")
  return found


# ---- The documents' links. ----

def anchor(heading: str) -> str:
  """GitHub's anchor of a markdown heading: lower case, punctuation dropped, spaces -> '-'."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set:
  return {anchor(line.lstrip("#")) for line in text.splitlines()
          if re.match(r"#{1,6} ", line)}


def broken_links(document: str, text: str) -> List[str]:
  """Each relative link of `text` whose file or heading does not exist."""
  broken = []
  for number, line in enumerate(text.splitlines(), 1):
    for target in re.findall(r"\]\(([^)\s]+)\)", line):
      if re.match(r"[a-z]+://", target):
        continue
      path, _, heading = target.partition("#")
      file = os.path.normpath(os.path.join(os.path.dirname(document), path)) if path else (
          document)
      if not os.path.exists(os.path.join(ROOT, file)):
        broken.append(f"{document}:{number}: {target}: no such file")
      elif heading:
        with open(os.path.join(ROOT, file)) as f:
          if heading not in anchors(f.read()):
            broken.append(f"{document}:{number}: {target}: no such heading in {file}")
  return broken


def _read(document: str) -> str:
  with open(os.path.join(ROOT, document)) as f:
    return f.read()


# ---- The checks themselves, then the documents. ----

def test_command_flags_are_the_programs_own_and_those_of_what_it_imports():
  runner, predict = command_flags("runner.py"), command_flags("predict.py")
  assert {"num_steps_limit", "checkpoint_path", "preset", "flagfile", "verbosity"} <= set(runner)
  assert "support" not in runner and {"support", "queries", "output"} <= set(predict)
  assert "checkpoint_path" in predict  # config.py's, which predict.py imports.
  # The tuner's flags are defined in a function its __main__ block calls.
  tune = command_flags("tools/tune.py")
  assert {"study_dir", "num_trials", "sampler_seed"} <= set(tune) and "support" not in tune
  # compare.py defines its flags in __main__: a program importing it does not get them.
  assert "plot" in command_flags("tools/study/compare.py")
  assert "plot" not in command_flags("tools/study/helps.py")
  # embed_images.py defines --images; config.py (imported on the way) --dataset_name.
  assert {"images", "output_root", "dataset_name"} <= set(
      command_flags("tools/data/embed_images.py"))


def test_a_boolean_flag_is_also_accepted_negated():
  runner = command_flags("runner.py")
  assert accepts(runner, "train_on_val") and accepts(runner, "notrain_on_val")
  assert not accepts(runner, "nonum_steps_limit") and not accepts(runner, "num_steps_limt")


def test_commands_are_found_in_code_blocks_continued_lines_and_inline_code():
  text = "\n".join([
      "Run `python runner.py --evaluation_mode` or `predict.py --support=x`.",
      "```bash",
      "# python runner.py --in_a_comment",
      ".venv/bin/python runner.py --data_path=$E \\",
      "    --num_steps_limit=5   # and a --comment",
      "TF_CONFIG='{\"a\": 1}' python -m tools.tune --study_dir=s -- --dataset_name=icons",
      "python -m tools.study.compare runs/ --output=RESULTS.md | head",
      "python tools/data/embed_images.py [--split=my_split.json]",
      "```",
      "Outside the block: runner.py --not_code."])
  assert commands("doc.md", text) == [
      Command("doc.md", 1, "runner.py", ("--evaluation_mode",)),
      Command("doc.md", 1, "predict.py", ("--support=x",)),
      Command("doc.md", 4, "runner.py", ("--data_path=$E", "--num_steps_limit=5")),
      Command("doc.md", 6, "tools/tune.py", ("--study_dir=s", "--", "--dataset_name=icons")),
      Command("doc.md", 7, "tools/study/compare.py", ("runs/", "--output=RESULTS.md")),
      Command("doc.md", 8, "tools/data/embed_images.py", ("[--split=my_split.json]",))]


def test_a_misspelt_flag_a_runner_flag_given_to_the_tuner_and_a_missing_tool_are_named():
  text = "\n".join([
      "```bash",
      "python runner.py --num_steps_limt=5 --train_on_val --notrain_on_val",
      "python -m tools.tune --study_dir=s --dataset_name=icons -- --num_latnets=8 --seed=1",
      "python -m tools.study.no_such_tool --x=1",
      "python -m tools.data.embed_images --images=a --output_root=b --dataset_name=c",
      "```"])
  assert [problem for command in commands("doc.md", text) for problem in problems(command)] == [
      "doc.md:2: runner.py: --num_steps_limt is not one of its flags",
      "doc.md:3: tools/tune.py: --dataset_name is not one of its flags",
      "doc.md:3: tools/tune.py (runner.py after --): --num_latnets is not one of its flags",
      "doc.md:4: tools/study/no_such_tool.py: no such command in the checkout"]


def test_links_to_missing_files_and_headings_are_named(tmp_path):
  assert anchor("Where leo differs from the original, on purpose") == (
      "where-leo-differs-from-the-original-on-purpose")
  assert anchor("The bundled `icons` benchmark") == "the-bundled-icons-benchmark"
  text = ("[a](README.md#layout) [b](docs/none.md) [c](#two-commands) [d](#nowhere) "
          "[e](https://example.com/x#y)")
  assert broken_links("README.md", text) == [
      "README.md:1: docs/none.md: no such file",
      "README.md:1: #nowhere: no such heading in README.md"]


def test_the_documents_are_found_and_show_the_readmes_commands():
  assert {"README.md", "docs/flags.md", "docs/run-folder.md", "docs/tuning.md"} <= set(
      USER_DOCUMENTS)
  readme = commands("README.md", _read("README.md"))
  assert ("runner.py", ("--preset=icons_1shot", "--checkpoint_path=/tmp/leo-icons")) in [
      (command.program, command.arguments) for command in readme]
  assert {"runner.py", "predict.py", "tools/tune.py"} <= {
      command.program for document in USER_DOCUMENTS
      for command in commands(document, _read(document))}


@pytest.mark.parametrize("document", USER_DOCUMENTS)
def test_every_command_of_the_document_gives_only_flags_its_program_defines(document):
  found = [problem for command in commands(document, _read(document))
           for problem in problems(command)]
  assert found == []


@pytest.mark.parametrize("document", USER_DOCUMENTS)
def test_every_link_of_the_document_finds_its_file_and_heading(document):
  assert broken_links(document, _read(document)) == []
