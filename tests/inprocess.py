"""A command run inside the test process, seen as a subprocess would be seen.

Starting Python with TF, Sonnet and TFP costs about 7 s a process, more than a tiny run's
whole work, so the tests of what a command does run its file here, as `__main__`, as
`python runner.py ...` or `python -m tools.study.compare ...` would: its own `app.run` parses the
flags from a fresh state, stdout and stderr are captured at the file descriptors as well as
in `sys.stdout`/`sys.stderr` (TF's C++ lines included), the exit status is taken from
`SystemExit`, and an exception that escapes is printed as the interpreter would, with status
1, so "one line on stderr and exit 2" is checked as strictly as from a process. No test
imports a command. The tests whose subject is a process (SIGKILL, several workers, a
resource limit, a lock another process holds) start one.
"""

import contextlib
import io
import logging as python_logging
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings

from absl import flags
from absl import logging
from absl.testing import flagsaver


@contextlib.contextmanager
def _captured_fd(fd: int, into: list):
  """Points file descriptor `fd` at a temporary file; appends what was written to `into`."""
  with tempfile.TemporaryFile() as file:
    saved = os.dup(fd)
    os.dup2(file.fileno(), fd)
    try:
      yield
    finally:
      os.dup2(saved, fd)
      os.close(saved)
      file.seek(0)
      into.append(file.read().decode(errors="replace"))


@contextlib.contextmanager
def _process_state(cwd, env):
  """Whatever a command may change for its own process, given back afterwards: flags, argv,
  the working directory, the environment (with `env` on top; `tempfile` reads TMPDIR again),
  the SIGINT handler, the root logger and the absl handler's filters and stream."""
  saved_flags, parsed = flagsaver.save_flag_values(), flags.FLAGS.is_parsed()
  saved_argv, saved_cwd, saved_environ = sys.argv, os.getcwd(), dict(os.environ)
  saved_sigint = signal.getsignal(signal.SIGINT)
  root = python_logging.root
  saved_root = list(root.handlers), root.level
  handler = logging.get_absl_handler()
  saved_filters, saved_stream = list(handler.filters), handler.python_handler.stream
  # A command's process logs through absl's handler alone (app.run removes the others).
  root.handlers[:] = [handler]
  try:
    if cwd is not None:
      os.chdir(cwd)
    os.environ.update(env or {})
    tempfile.tempdir = None
    yield
  finally:
    os.environ.clear()
    os.environ.update(saved_environ)
    tempfile.tempdir = None
    os.chdir(saved_cwd)
    sys.argv = saved_argv
    signal.signal(signal.SIGINT, saved_sigint)
    root.handlers[:], _ = saved_root
    root.setLevel(saved_root[1])
    handler.filters[:] = saved_filters
    handler.python_handler.stream = saved_stream
    flagsaver.restore_flag_values(saved_flags)
    if parsed:
      flags.FLAGS.mark_as_parsed()
    else:
      flags.FLAGS.unparse_flags()


def _status(exit_code) -> int:
  if exit_code is None:
    return 0
  if isinstance(exit_code, int):
    return exit_code
  sys.stderr.write(f"{exit_code}\n")  # As the interpreter reports sys.exit("message").
  return 1


def run(command, cwd=None, env=None) -> subprocess.CompletedProcess:
  """Runs `python *command` (a script and its arguments, or "-m", a module and its arguments)
  in this process, in `cwd` with the variables of `env` set, the script or module executed as
  `__main__` as the interpreter would; returns what it printed and its exit status, as
  `subprocess.run(..., capture_output=True, text=True)` does. A tool's flags, which its
  `__main__` defines, exist for this run only."""
  command = list(map(str, command))
  module = command[1] if command[0] == "-m" else None
  argv = command[1:] if module else command
  fd_out, fd_err = [], []
  stdout, stderr = io.StringIO(), io.StringIO()
  with _process_state(cwd, env):
    flags.FLAGS.unparse_flags()  # Every flag starts from its default, as in a new process,
    flags.FLAGS.set_default("verbosity", 0)  # and logs INFO, as app.run's first run sets.
    sys.argv = argv
    with _captured_fd(1, fd_out), _captured_fd(2, fd_err), \
        contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
      logging.get_absl_handler().python_handler.stream = stderr
      try:
        if module:
          with warnings.catch_warnings():  # The tests import the tools' functions too; as
            # `python -m` would, a fresh copy of the module runs as __main__.
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
          runpy.run_path(argv[0], run_name="__main__")
        status = 0
      except SystemExit as e:
        status = _status(e.code)
      except BaseException:  # pylint: disable=broad-except
        traceback.print_exc()  # What the interpreter prints for an uncaught exception.
        status = 1
  return subprocess.CompletedProcess(command, status, stdout.getvalue() + "".join(fd_out),
                                     stderr.getvalue() + "".join(fd_err))
