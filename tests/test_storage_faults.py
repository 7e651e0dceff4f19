"""runner.py when the storage itself fails: truncated and bit-flipped checkpoints, damaged
commit files, and a whole run on a remote (here TF's in-memory) file system."""

import glob
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

import fixtures
import test_runner
from test_runner import TINY, run

FLAGS_OF_RUN = ["--noevaluate_after_training"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  return fixtures.make_dataset(str(tmp_path_factory.mktemp("embeddings")), dim=16)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
  """A finished 6-step run (checkpoints 0, 3, 6, a best and a test record), copied per test."""
  run_dir = str(tmp_path_factory.mktemp("trained") / "run")
  result = run(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY)
  assert result.returncode == 0, result.stderr[-3000:]
  return run_dir


@pytest.fixture
def run_copy(trained, tmp_path):
  copy = str(tmp_path / "run")
  shutil.copytree(trained, copy)
  return copy


def _train(dataset, run_dir, *flags):
  return run(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY, *flags)


def _truncate(path):
  contents = open(path, "rb").read()
  open(path, "wb").write(contents[:len(contents) // 2])


def _flip(path):
  contents = bytearray(open(path, "rb").read())
  for i in range(0, len(contents), 5):
    contents[i] ^= 0x5A
  open(path, "wb").write(bytes(contents))


def _data(run_dir, name):
  (path,) = glob.glob(os.path.join(run_dir, f"{name}.data-*"))
  return path


def _snapshot(folder):
  return {path: open(path, "rb").read()
          for path in glob.glob(os.path.join(folder, "**"), recursive=True)
          if os.path.isfile(path) and not path.endswith(".lock")}


def _one_line_error(result):
  assert result.returncode == 2, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("runner.py: error: "), result.stderr[-3000:]
  return lines[0]


@pytest.mark.parametrize("damage", [_truncate, _flip], ids=["truncated", "bit-flipped"])
def test_a_damaged_latest_checkpoint_resumes_from_the_previous_one(dataset, run_copy, damage):
  damaged = _data(run_copy, "model.ckpt-6")
  damage(damaged)
  damaged_bytes = open(damaged, "rb").read()
  result = _train(dataset, run_copy, "--num_steps_limit=8", *FLAGS_OF_RUN)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Damaged checkpoint model.ckpt-6" in result.stderr
  assert "resuming from model.ckpt-3" in result.stderr and "at step 3" in result.stderr
  kept = os.path.join(run_copy, "damaged", os.path.basename(damaged))
  assert open(kept, "rb").read() == damaged_bytes
  assert tf.train.latest_checkpoint(run_copy).endswith("model.ckpt-8")


def test_every_checkpoint_damaged_is_one_line_and_changes_no_file(dataset, run_copy):
  for step in (0, 3, 6):
    _truncate(_data(run_copy, f"model.ckpt-{step}"))
  before = _snapshot(run_copy)
  error = _one_line_error(_train(dataset, run_copy, *FLAGS_OF_RUN))
  assert "every checkpoint is damaged" in error
  assert all(f"model.ckpt-{step} (" in error for step in (0, 3, 6))
  assert _snapshot(run_copy) == before


def test_a_damaged_best_is_one_line_for_evaluation_and_replaced_by_training(dataset, run_copy):
  best = json.load(open(os.path.join(run_copy, "best_checkpoint", "best.json")))
  damaged = _data(os.path.join(run_copy, "best_checkpoint"), best["checkpoint"])
  _truncate(damaged)
  error = _one_line_error(run(f"--checkpoint_path={run_copy}", "--evaluation_mode"))
  assert f"best_checkpoint/{best['checkpoint']}: damaged checkpoint" in error
  assert f"--checkpoint_path={run_copy}/model.ckpt-6" in error  # An intact one to evaluate.
  result = _train(dataset, run_copy, "--num_steps_limit=9", *FLAGS_OF_RUN)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "the next validation elects a new best" in result.stderr
  assert glob.glob(os.path.join(run_copy, "damaged", "best_checkpoint*", "best.json"))
  elected = json.load(open(os.path.join(run_copy, "best_checkpoint", "best.json")))
  assert elected["step"] in (6, 9)  # Validated again after the damage: a new best.
  assert run(f"--checkpoint_path={run_copy}", "--evaluation_mode",
             "--num_test_tasks=10").returncode == 0


@pytest.mark.parametrize("name,mode", [("config.json", "train"), ("checkpoint", "train"),
                                       ("best_checkpoint/best.json", "evaluate"),
                                       ("config.json", "evaluate-prefix")])
def test_a_damaged_commit_file_is_one_line_naming_it(dataset, run_copy, name, mode):
  path = os.path.join(run_copy, name)
  open(path, "w").write(open(path).read()[:11])
  if mode == "train":
    result = _train(dataset, run_copy, *FLAGS_OF_RUN)
  elif mode == "evaluate":
    result = run(f"--checkpoint_path={run_copy}", "--evaluation_mode")
  else:
    result = run(f"--checkpoint_path={run_copy}/model.ckpt-3", "--evaluation_mode")
  error = _one_line_error(result)
  assert path in error and ("remove it" in error or "restore it" in error
                            or "move" in error), error


def test_a_whole_run_on_a_remote_file_system_writes_nothing_locally(dataset, tmp_path):
  """Training and evaluation on ram:// (in one process: ram:// lives in its memory)."""
  scratch, home = tmp_path / "scratch", tmp_path / "home"
  scratch.mkdir()
  home.mkdir()
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {test_runner.ROOT!r})
      import tensorflow as tf
      import config, evaluation, training
      for split in ("train", "val", "test"):
        tf.io.gfile.makedirs("ram://data/tiny/center")
        tf.io.gfile.copy({dataset!r} + f"/tiny/center/{{split}}_embeddings.pkl",
                         f"ram://data/tiny/center/{{split}}_embeddings.pkl")
      def configs(*flags):
        config.FLAGS.unparse_flags()
        config.FLAGS(["runner.py", *flags])
        return config.get_configs()
      training.train(configs("--data_path=ram://data", "--checkpoint_path=ram://run",
                           *{TINY!r}))
      evaluation.evaluate_checkpoint(configs("--checkpoint_path=ram://run/model.ckpt-3",
                                         "--evaluation_mode", "--eval_split=val"))
      print(sorted(tf.io.gfile.listdir("ram://run")))
      print(sorted(tf.io.gfile.listdir("ram://run/results")))
      """)
  before = set(os.listdir(test_runner.ROOT))
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=str(scratch),
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TMPDIR=str(scratch),
                                   HOME=str(home)))
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.strip().splitlines()
  assert "Metatest accuracy:" in lines[0] and "Metavalid accuracy:" in lines[1]
  listed = eval(lines[2])  # pylint: disable=eval-used
  assert {"config.json", "flags.txt", "versions.json", "train.log", "validations.jsonl",
          "checkpoint", "best_checkpoint", "results", "model.ckpt-6.index"} <= set(listed)
  assert any(name.startswith("events.out.tfevents") for name in listed)
  assert len(eval(lines[3])) == 2  # pylint: disable=eval-used
  assert "not locked (this file system has no locks)" in result.stderr
  # Nothing in the working folder or TMPDIR (HOME gets the libraries' own caches, e.g.
  # ~/.keras from tf_keras at import: not the run's files),
  assert os.listdir(scratch) == []
  assert set(os.listdir(test_runner.ROOT)) == before  # nor in the checkout.
