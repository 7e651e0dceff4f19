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


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """test_runner.TINY's run, trained and tested by `python runner.py` on fixture data, made
  once per session for the tests that start from a trained run: by the first xdist worker to
  ask, while the others wait. (dataset root, run folder, what the command printed and its
  status as a CompletedProcess). Tests copy the folder before changing anything in it."""
  import fcntl  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import fixtures  # pylint: disable=g-import-not-at-top
  import test_runner  # pylint: disable=g-import-not-at-top
  base = tmp_path_factory.getbasetemp()
  shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "tiny-run"
  dataset, folder, done = shared / "embeddings", shared / "run", shared / "done.json"
  shared.mkdir(exist_ok=True)
  with open(shared / "lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
      fixtures.make_dataset(str(dataset), dim=16)
      result = test_runner.run(f"--data_path={dataset}", f"--checkpoint_path={folder}",
                               *test_runner.TINY)
      assert result.returncode == 0, result.stderr[-3000:]
      done.write_text(json.dumps([result.args, result.returncode, result.stdout,
                                  result.stderr]))
  return str(dataset), str(folder), subprocess.CompletedProcess(*json.loads(done.read_text()))


# The modules that train, compile or start processes, longest first. xdist hands whole files
# to its two workers in collection order (pytest.ini: --no-loadscope-reorder; by default it
# orders them by their number of tests), so that the long ones start early and the two
# workers end together.
LONG_FIRST = ("test_storage_faults", "test_speed", "test_runner", "test_tune", "test_tools",
              "test_model", "test_hostile_records", "test_reproducibility", "test_predict",
              "test_transforms",
              "test_export", "test_robustness", "test_glyphs", "test_tune_postgres",
              "test_inspect", "test_embed_images", "test_backbone", "test_analytic_gradients",
              "test_training_output")


def pytest_collection_modifyitems(items):
  rank = {name: index for index, name in enumerate(LONG_FIRST)}
  items.sort(key=lambda item: rank.get(item.path.stem, len(LONG_FIRST)))
