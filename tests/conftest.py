"""Test set-up shared by every test module: quiet TF, the repository on sys.path, and TF's
threads as a runner.py process on this machine sets them."""

import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session", autouse=True)
def runner_threads():
  """Before any test runs an op (TF fixes its threads then): tests/inprocess.py runs commands
  in the test process, which must find the threads their own process would have set. A
  fixture, not an import here: the process that only hands out the tests never loads TF."""
  import distribute  # pylint: disable=g-import-not-at-top
  distribute.configure_threads()
