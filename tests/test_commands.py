# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Every command behaves by one convention (utils.run_command): `--help` and `-h` list its own
flags, grouped, and exit 0; a usage error or an error of leo is one line,
`<command>: error: ...`, and exit status 2.

The commands run in this process (tests/inprocess.py); tools/tune.py runs as a process, since
its flags share names with config.py's, which this process has defined."""

import ast
import os
import re
import subprocess
import sys

from absl import flags
from absl.testing import flagsaver
import pytest

import config
import inprocess
import utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each command (as `python` is given it) and the flags of other modules it declares its own.
COMMANDS = {
    "runner.py": {flag.name for flag in flags.FLAGS.get_flags_for_module(config)},
    "predict.py": {"checkpoint_path", "image_fit"},
    "-m tools.data.build_glyphs": set(),
    "-m tools.data.build_icons": set(),
    "-m tools.data.embed_images": {"dataset_name", "seed", "image_fit"},
    "-m tools.data.pretrain_embeddings": {"dataset_name", "seed", "distribution_strategy",
                                          "image_fit"},
    "-m tools.study.helps": set(),
    "-m tools.study.inspect_leo": set(),
    "-m tools.study.nearest_centroid": {"seed"},
    "-m tools.study.compare": set(),
    "-m tools.tune": set(),
    "-m tools.export": {"checkpoint_path"},
}
NOT_YET_CONVERTED = set()
ABSL_FLAGS = ("flagfile", "verbosity", "logtostderr", "only_check_args", "helpfull")


def _source(command: str) -> str:
  module = command.split()[-1]
  return os.path.join(ROOT, module if module.endswith(".py")
                      else module.replace(".", os.sep) + ".py")


def _defined_flags(command: str) -> set:
  """The names of the flags the command's file defines (`flags.DEFINE_*("name", ...)`)."""
  with open(_source(command)) as f:
    tree = ast.parse(f.read())
  return {node.args[0].value for node in ast.walk(tree)
          if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
          and node.func.attr.startswith("DEFINE_") and node.args
          and isinstance(node.args[0], ast.Constant)}


def run(command: str, *arguments):
  words = command.split() + list(arguments)
  if command == "-m tools.tune":
    return subprocess.run([sys.executable, *words], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=120)
  return inprocess.run(words, cwd=ROOT)


def _params():
  return [pytest.param(command, marks=pytest.mark.xfail(
      strict=True, reason="calls app.run, not utils.run_command")
                       if command in NOT_YET_CONVERTED else ()) for command in COMMANDS]


def listed_flags(help_text: str) -> list:
  """The flags a --help lists, one `  --name: ...` (or `  --[no]name: ...`) line each."""
  return re.findall(r"^  --(?:\[no\])?(\w+):", help_text, flags=re.MULTILINE)


def test_every_command_of_the_repository_is_checked_here():
  found = set()
  for folder in (ROOT, os.path.join(ROOT, "tools"), os.path.join(ROOT, "tools", "data"),
                 os.path.join(ROOT, "tools", "study")):
    for name in os.listdir(folder):
      path = os.path.join(folder, name)
      if name.endswith(".py") and 'if __name__ == "__main__":' in open(path).read():
        relative = os.path.relpath(path, ROOT)
        found.add(relative if folder == ROOT
                  else "-m " + relative[:-len(".py")].replace(os.sep, "."))
  assert found == set(COMMANDS)


@pytest.mark.parametrize("command", _params())
@pytest.mark.parametrize("option", ["--help", "-h"])
def test_help_lists_the_commands_own_flags_and_exits_0(command, option):
  result = run(command, option)
  assert (result.returncode, result.stderr.strip()) == (0, ""), result.stderr[-2000:]
  name = command.split()[-1]
  assert result.stdout.startswith(f"usage: python {command} [flags]")
  listed = listed_flags(result.stdout)
  assert len(listed) == len(set(listed))  # Each once.
  assert set(listed) == _defined_flags(command) | COMMANDS[command], name
  assert not set(listed) & set(ABSL_FLAGS)


def test_the_runners_help_groups_configs_flags_as_config_does():
  result = run("runner.py", "--help")
  titles = re.findall(r"^(\S[^:\n]*):$", result.stdout, flags=re.MULTILINE)
  assert titles == list(config.FLAG_GROUPS)[:-1]  # Not the image flags: it reads no image.
  assert titles[1:6] == ["data", "model (LEO's inner loop)", "outer loop and tasks",
                         "run and evaluation", "distribution and speed"]
  sections = re.split(r"^\S[^:\n]*:$", result.stdout, flags=re.MULTILINE)[1:]
  for title, section in zip(titles, sections):
    assert listed_flags(section) == list(config.FLAG_GROUPS[title]), title
  assert "  --data_path: Root folder" in sections[1]
  assert "  --[no]train_on_val: Meta-train on the train and val classes. (default: false)" in (
      sections[1])
  assert "  --num_latents: Dimensionality of the latent space. (default: 64)" in sections[2]
  assert "  --jit_compile" not in sections[4] and "  --[no]jit_compile" in sections[5]


def test_config_puts_each_of_its_flags_in_one_group():
  grouped = [name for names in config.FLAG_GROUPS.values() for name in names]
  with flagsaver.flagsaver():  # The image flags exist only in the commands that define them.
    config.define_image_flags()
    defined = [flag.name for flag in flags.FLAGS.get_flags_for_module(config)]
  assert sorted(grouped) == sorted(defined)
  assert "image_fit" not in flags.FLAGS


@pytest.mark.parametrize("command", _params())
def test_an_unknown_flag_is_one_line_and_exit_status_2(command):
  result = run(command, "--no_such_flag=1")
  name = command.split()[-1]
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr == (f"{name}: error: Unknown command line flag 'no_such_flag' "
                           "(--help lists the flags)\n")


@pytest.mark.parametrize("arguments, error", [
    (["--num_steps_limit=many"], "flag --num_steps_limit=many: invalid literal for int() with "
                                 "base 10: 'many' (--help lists the flags)"),
    (["--baseline=knn"], "flag --baseline=knn: value should be one of <none|nearest_centroid|"
                         "logistic_regression|whitened_nearest_centroid|simpleshot> (--help "
                         "lists the flags)"),
    (["runs/mine"], "unexpected arguments ['runs/mine']: every option is a --flag (--help "
                    "lists them)"),
    (["--num_classes=1"], "--num_classes=1: expected an integer >= 2")])  # leo's own.
def test_usage_errors_and_leos_errors_are_one_line_and_exit_status_2(arguments, error):
  result = run("runner.py", *arguments)
  assert (result.returncode, result.stdout, result.stderr) == (
      2, "", f"runner.py: error: {error}\n")


def test_a_required_flag_missing_is_one_line_naming_it():
  result = run("-m tools.study.inspect_leo")
  assert (result.returncode, result.stdout) == (2, "")
  assert result.stderr == ("tools.study.inspect_leo: error: flag --run=None: Flag --run must "
                           "have a value other than None. (--help lists the flags)\n")


def test_a_command_that_takes_arguments_shows_them_in_its_usage_and_needs_them():
  result = run("-m tools.study.helps", "-h")
  assert result.stdout.startswith(
      f"usage: python -m tools.study.helps [flags] {'<label>=<path>[,<path>...] ...'}\n")
  result = run("-m tools.study.helps")
  assert (result.returncode, result.stderr) == (
      2, "tools.study.helps: error: no <label>=<path>[,<path>...] ... given\n")


def test_helpfull_is_absls_list_of_every_flag_and_exits_0():
  result = run("predict.py", "--helpfull")
  assert result.returncode == 0
  assert "--verbosity" in result.stdout and "--support" in result.stdout


def test_progress_logs_at_most_every_progress_seconds_with_rate_and_time_left(monkeypatch):
  now = [100.0]
  lines = []
  monkeypatch.setattr(utils.absl_logging, "info", lambda fmt, *args: lines.append(fmt % args))
  progress = utils.Progress("Read", 1000, "images", clock=lambda: now[0])
  for done, seconds in ((100, 2), (250, 3), (300, 1), (500, 4), (1000, 9)):
    now[0] += seconds
    progress(done)
  # At 5 s: 250 done, 50/s, 750 left: 15 s; at 10 s (5 s later): 500, 50/s, 10 s. Not at 6 s
  # (1 s after a line), nor at the end.
  assert lines == ["Read 250/1000 images, 50 images/s, ETA 0h00m15s",
                   "Read 500/1000 images, 50 images/s, ETA 0h00m10s"]
