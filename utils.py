# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Small helpers shared by the modules of leo."""

import functools
import logging
import math
import os
import sys
import textwrap
import time
from typing import Callable, List, Sequence, Tuple

from absl import app
from absl import flags
from absl import logging as absl_logging
import numpy as np

# The checkout leo runs from: its bundled data, shipped models and commands are found from here.
REPOSITORY = os.path.dirname(os.path.abspath(__file__))
# Two-sided 95% quantile of the standard normal: tasks are many (thousands), so the normal
# approximation of the mean's sampling distribution is what papers report.
Z_95 = 1.959963984540054
# Exit statuses of every command: a usage error or an error a user can act on (as argparse and
# the shells report misuse), and a command stopped by Ctrl-C (128 + SIGINT, as a shell reports).
ERROR_STATUS = 2
INTERRUPTED_STATUS = 130
HELP_ARGUMENTS = ("-h", "--help", "-help", "-?", "--helpshort", "-helpshort")
FULL_HELP_ARGUMENTS = ("--helpfull", "-helpfull")  # absl's: every flag of the process.
HELP_WIDTH = 100
PROGRESS_SECONDS = 5  # Between progress lines of a long loop.


class LeoError(Exception):
  """An error a user can act on: the runner prints its message as one line and exits."""


class Interrupted(LeoError):
  """The user stopped the command (Ctrl-C) at a safe point; the message says how to resume."""


class OwnLinesOrWarnings(logging.Filter):
  """Keeps leo's own log lines and anyone's warnings: TF's checkpointing logs at INFO too
  (and a virtual environment inside the checkout puts TF's files below leo's folder)."""

  def filter(self, record):
    own = record.pathname.startswith(REPOSITORY + os.sep) and "site-packages" not in record.pathname
    return record.levelno >= logging.WARNING or own


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


def first_line(error: BaseException, default: str = None) -> str:
  """An exception's message as one line (its first), or `default` (its type's name)."""
  lines = str(error).strip().splitlines()
  return lines[0] if lines else (default or type(error).__name__)


def percent(value: float) -> str:
  return "none yet" if value == -float("inf") else f"{value:.2%}"


def duration(seconds: float) -> str:
  """`1h02m03s`; "unknown" for an infinite or NaN time."""
  if not math.isfinite(seconds):
    return "unknown"
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def cpu_model() -> str:
  """The processor's model name (what a speed figure must be quoted with)."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  import platform  # pylint: disable=g-import-not-at-top
  return platform.processor() or platform.machine() or "unknown"


@functools.cache
def import_tensorflow():
  """Imports and returns TensorFlow with its start-up chatter silenced (once: later calls
  return the module).

  TF 2.21 prints `I0000 ...` lines at import and a `failed call to cuInit` error on machines
  without a GPU whatever TF_CPP_MIN_LOG_LEVEL says, so file descriptor 2 points at /dev/null
  while TF is imported and looks for its devices, then comes back (later errors still show).
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  stderr = os.dup(2)
  with open(os.devnull, "w") as devnull:
    os.dup2(devnull.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top
      tensorflow.config.list_physical_devices()
    finally:
      os.dup2(stderr, 2)
      os.close(stderr)
  tensorflow.get_logger().setLevel("ERROR")
  return tensorflow


class Progress:
  """Logs `<verb> <done>/<total> <unit>, <rate> <unit>/s, ETA <time>` while a long loop runs,
  at most every PROGRESS_SECONDS: a loop done sooner logs nothing.

      progress = utils.Progress("Embedded", len(images), "images")
      for ...: ...; progress(done)
  """

  def __init__(self, verb: str, total: int, unit: str,
               clock: Callable[[], float] = time.monotonic):
    self.verb, self.total, self.unit, self._clock = verb, total, unit, clock
    self._start = self._last = clock()

  def __call__(self, done: int):
    now = self._clock()
    if now - self._last < PROGRESS_SECONDS or done >= self.total:
      return
    self._last = now
    rate = done / max(now - self._start, 1e-9)
    absl_logging.info("%s %d/%d %s, %.0f %s/s, ETA %s", self.verb, done, self.total, self.unit,
                      rate, self.unit, duration((self.total - done) / rate if rate else math.inf))


# ---- Every command's `__main__`. ----

def run_command(main: Callable[[List[str]], None], arguments: str = ""):
  """Runs a command's `main(argv)` as its process, the same way for every leo command.

  `-h`, `--help` (absl's `--helpshort` and `-?` too) print the command's own flags, grouped, and
  exit 0: the flags its module defines or declares key (`flags.declare_key_flag`,
  `flags.adopt_module_key_flags`); another module's flags are grouped as its `FLAG_GROUPS`
  (title -> flag names) says, e.g. config.py's. `--helpfull` is absl's list of every flag.
  A usage error (an unknown flag, a bad value, an argument the command does not take) and a
  `LeoError` of `main` are one line, `<command>: error: <what>`, and exit status 2; Ctrl-C is
  one line and status 130 (`Interrupted` says how to resume). Only leo's own log lines and
  anyone's warnings are logged (`OwnLinesOrWarnings`).

  Args:
    main: the command; `argv[1:]` are its positional arguments.
    arguments: the positional arguments as the usage line shows them (e.g. "PATH..."); ""
      for a command that takes none: any is a usage error.
  """
  module = main.__globals__
  spec = module.get("__spec__")
  command = spec.name if spec else os.path.basename(module["__file__"])
  usage = " ".join(filter(None, ["python", "-m" if spec else "", command, "[flags]", arguments]))

  def fail(message: str, status: int = ERROR_STATUS, prefix: str = "error: "):
    sys.stderr.write(f"{command}: {prefix}{' '.join(message.strip().splitlines())}\n")
    sys.exit(status)

  def parse(argv: List[str]) -> List[str]:
    options = argv[1:argv.index("--")] if "--" in argv else argv[1:]
    if any(option in HELP_ARGUMENTS for option in options):
      sys.stdout.write(command_help(usage, module.get("__doc__") or ""))
      sys.exit(0)
    if any(option in FULL_HELP_ARGUMENTS for option in options):
      app.usage(writeto_stdout=True, exitcode=0)
    try:
      argv = flags.FLAGS(argv)
    except flags.Error as e:
      fail(f"{e} (--help lists the flags)")
    if len(argv) > 1 and not arguments:
      fail(f"unexpected arguments {argv[1:]}: every option is a --flag (--help lists them)")
    return argv

  def guarded(argv: List[str]):
    absl_logging.get_absl_handler().addFilter(OwnLinesOrWarnings())
    try:
      main(argv)
    except Interrupted as e:
      fail(str(e), INTERRUPTED_STATUS, prefix="")
    except KeyboardInterrupt:
      fail("interrupted (Ctrl-C)", INTERRUPTED_STATUS, prefix="")
    except LeoError as e:
      fail(str(e))

  app.run(guarded, flags_parser=parse)


def command_help(usage: str, doc: str) -> str:
  """A command's `--help`: its usage line and docstring, then its own flags (those it defines
  first, in their order), then those of other modules by their `FLAG_GROUPS`, in its order."""
  placed = []
  for order, flag in enumerate(flags.FLAGS.get_key_flags_for_module(sys.argv[0])):
    defining = sys.modules.get(flags.FLAGS.find_module_defining_flag(flag.name))
    groups = getattr(defining, "FLAG_GROUPS", {})
    title = next((title for title, names in groups.items() if flag.name in names), None)
    rank = (-1, order) if title is None else (list(groups).index(title), order)
    placed.append((rank, title or "flags", flag))
  lines, current = [f"usage: {usage}", "", doc.strip()], None
  for _, title, flag in sorted(placed, key=lambda item: item[0]):
    if title != current:
      lines += ["", f"{title}:"]
      current = title
    lines.append(_flag_line(flag))
  lines += ["", "absl's own flags (--flagfile, --verbosity, --logtostderr, ...): --helpfull"]
  return "\n".join(lines) + "\n"


def _flag_line(flag: flags.Flag) -> str:
  """`  --name: help (default: value)`, wrapped at HELP_WIDTH (an enum's help starts with its
  values, `<a|b>: `, as absl writes it)."""
  name = f"--[no]{flag.name}" if flag.boolean else f"--{flag.name}"
  default = "none" if flag.default is None else (
      repr(flag.default) if isinstance(flag.default, str) else flag.default_as_str.strip("'"))
  return textwrap.fill(f"{name}: {flag.help} (default: {default})", HELP_WIDTH,
                       initial_indent="  ", subsequent_indent="      ",
                       break_long_words=False, break_on_hyphens=False)
