"""runner.py when the storage itself fails: truncated and bit-flipped checkpoints, damaged
commit files, and a whole run on a remote (here TF's in-memory) file system."""

import glob
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time

from absl.testing import flagsaver
import pytest
import tensorflow as tf

import config
import evaluation
import fixtures
import runfolder
import sizes
import storage
import test_runner
import training
import utils
from test_runner import TINY, run

FLAGS_OF_RUN = ["--noevaluate_after_training"]


@pytest.fixture(scope="module")
def dataset(tiny_run):
  return tiny_run[0]


@pytest.fixture
def run_copy(tiny_run, tmp_path):
  """The session's finished 6-step run (checkpoints 0, 3, 6, a best and a test record;
  conftest.py), copied for one test."""
  copy = str(tmp_path / "run")
  shutil.copytree(tiny_run[1], copy)
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


def _configs(*flags):
  """The configs of runner.py's command line `flags`."""
  with flagsaver.flagsaver():
    config.FLAGS.unparse_flags()
    config.FLAGS(["runner.py", *flags])
    return config.get_configs()


def test_a_whole_run_on_a_remote_file_system_writes_nothing_locally(dataset, tmp_path,
                                                                   monkeypatch, capsys, caplog):
  """Training and evaluation on ram://, TF's in-memory file system, from a working folder and
  TMPDIR of their own."""
  scratch = tmp_path / "scratch"
  scratch.mkdir()
  monkeypatch.chdir(scratch)
  monkeypatch.setenv("TMPDIR", str(scratch))
  monkeypatch.setattr(tempfile, "tempdir", None)
  for split in ("train", "val", "test"):
    tf.io.gfile.makedirs("ram://data/tiny/center")
    tf.io.gfile.copy(f"{dataset}/tiny/center/{split}_embeddings.pkl",
                     f"ram://data/tiny/center/{split}_embeddings.pkl", overwrite=True)
  before = set(os.listdir(test_runner.ROOT))
  try:
    with caplog.at_level("WARNING"):
      training.train(_configs("--data_path=ram://data", "--checkpoint_path=ram://run", *TINY))
      evaluation.evaluate_checkpoint(_configs("--checkpoint_path=ram://run/model.ckpt-3",
                                              "--evaluation_mode", "--eval_split=val"))
    listed = set(tf.io.gfile.listdir("ram://run"))
    results = tf.io.gfile.listdir("ram://run/results")
  finally:
    for folder in ("ram://data", "ram://run"):
      if tf.io.gfile.exists(folder):
        tf.io.gfile.rmtree(folder)
  lines = capsys.readouterr().out.strip().splitlines()
  assert "Metatest accuracy:" in lines[0] and "Metavalid accuracy:" in lines[1]
  assert {"config.json", "flags.txt", "versions.json", "train.log", "validations.jsonl",
          "checkpoint", "best_checkpoint", "results", "model.ckpt-6.index"} <= listed
  assert any(name.startswith("events.out.tfevents") for name in listed)
  assert len(results) == 2
  assert "not locked (this file system has no locks)" in caplog.text
  # Nothing in the working folder or TMPDIR, nor in the checkout.
  assert os.listdir(scratch) == []
  assert set(os.listdir(test_runner.ROOT)) == before


# ---- The run folder owns exactly its files. ----

USER_FILES = {"notes.tmp.txt": "notes", "thesis.tmp": "x", "model.ckpt-7.my-backup": "m"}


def test_files_a_user_put_in_a_run_folder_survive_its_commands(dataset, run_copy):
  for name, text in USER_FILES.items():
    with open(os.path.join(run_copy, name), "w") as f:
      f.write(text)
  shorter = _train(dataset, run_copy, "--num_steps_limit=3", *FLAGS_OF_RUN)
  assert shorter.returncode == 0, shorter.stderr[-3000:]
  assert ("holds files leo did not write, left as they are: model.ckpt-7.my-backup, "
          "notes.tmp.txt, thesis.tmp") in open(os.path.join(run_copy, "train.log")).read()
  for flags in (["--evaluation_mode", "--num_test_tasks=10"],
                [f"--data_path={dataset}", "--dataset_name=tiny", "--num_test_tasks=10",
                 "--baseline=nearest_centroid"]):
    result = run(f"--checkpoint_path={run_copy}", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
  for name, text in USER_FILES.items():
    assert open(os.path.join(run_copy, name)).read() == text


def _train_here(dataset, run_dir, *flags):
  """`training.train` itself: its exceptions, not the runner's one-line report of them."""
  training.train(_configs(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY,
                          *flags))


def test_a_best_checkpoint_linked_elsewhere_is_refused_and_untouched(dataset, run_copy,
                                                                    tmp_path):
  shared = str(tmp_path / "shared-models")
  shutil.move(os.path.join(run_copy, "best_checkpoint"), shared)
  os.symlink(shared, os.path.join(run_copy, "best_checkpoint"))
  before = _snapshot(shared)
  with pytest.raises(utils.LeoError) as error:
    _train_here(dataset, run_copy, "--num_steps_limit=9", *FLAGS_OF_RUN)
  assert str(error.value) == (
      f"--checkpoint_path={run_copy}: best_checkpoint is a symbolic link (to {shared}); leo "
      "writes only inside its run folder: replace the link by a copy, or use another "
      "--checkpoint_path")
  assert _snapshot(shared) == before


def test_a_resume_on_other_embeddings_is_refused(run_copy, tmp_path):
  other = fixtures.make_dataset(str(tmp_path / "other"), dim=16, seed=1)  # Same shape.
  before = _snapshot(run_copy)
  with pytest.raises(utils.LeoError, match="holds a run of another configuration: other "
                     "embeddings at --data_path .*: the path may change, the data may not"):
    _train_here(other, run_copy, "--num_steps_limit=9", *FLAGS_OF_RUN)
  assert _snapshot(run_copy) == before


def test_a_run_made_before_the_data_digest_adopts_it(dataset, run_copy):
  path = os.path.join(run_copy, "config.json")
  saved = json.load(open(path))
  del saved["data_digest"], saved["checksum"]
  with open(path, "w") as f:
    json.dump(saved, f)
  _train_here(dataset, run_copy, *FLAGS_OF_RUN)  # Done already: it validates step 6 again.
  assert "names no data digest (written before leo kept one): adopting" in open(
      os.path.join(run_copy, "train.log")).read()
  assert json.load(open(path))["data_digest"]


@pytest.mark.parametrize("flags, expected", [
    (["--num_latents=1000000"], "--num_latents=1000000: a relation network weight would hold "
     "4,000,000,000,000 elements"),
    # An evaluation call adapts at least 101 tasks: 101 * (5 * 19)^2 pairs of 2 * 2000 numbers.
    (["--num_tr_examples_per_class=19", "--num_val_examples_per_class=1", "--num_latents=2000",
      "--metavalid_batch_size=20", "--num_test_tasks=200"],
     "^--num_classes=5, --num_tr_examples_per_class=19, --num_latents=2000: the relation "
     "network's pairs of an evaluation call would hold 3,646,100,000 elements")],
    ids=["latents", "evaluation call"])
def test_what_cannot_fit_is_refused_before_the_folder_is_claimed(dataset, tmp_path, flags,
                                                                 expected):
  with pytest.raises(sizes.SizeError, match=expected):
    _train_here(dataset, str(tmp_path / "run"), *flags)
  assert not os.path.exists(tmp_path / "run")


def test_ctrl_c_stops_at_a_safe_point_and_says_how_to_resume(dataset, tmp_path):
  run_dir = str(tmp_path / "run")

  def press_ctrl_c():
    """A SIGINT to this process, as a terminal sends it, once the run has checkpointed."""
    deadline = time.time() + 180
    while not os.path.exists(os.path.join(run_dir, "model.ckpt-3.index")):
      if time.time() > deadline:
        return  # The run failed first: its assertion below says how.
      time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGINT)

  presser = threading.Thread(target=press_ctrl_c)
  presser.start()
  result = run(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY,
               "--num_steps_limit=100000")
  presser.join()
  assert result.returncode == 130, result.stderr[-3000:]
  last = result.stderr.strip().splitlines()[-1]
  assert re.fullmatch(r"runner.py: stopped at step \d+ \(Ctrl-C\): rerun the same command to "
                      rf"resume from {re.escape(run_dir)}/model.ckpt-\d+", last), last
  assert "Traceback" not in result.stderr
  assert not [name for name in os.listdir(run_dir) if "leo-tmp" in name or "pending" in name]


def test_an_evaluation_whose_best_is_replaced_under_it_evaluates_the_new_best(
    run_copy, monkeypatch, caplog):
  best = runfolder.BestCheckpoint(os.path.join(run_copy, "best_checkpoint"))
  old, info = best.prefix, best.info
  damage = runfolder.damage

  def a_training_elects_a_new_best(prefix):
    """What a run training beside the evaluation does between its read of best.json and
    its restore: commits a new best (here checkpoint 6 as step 99) and deletes the old."""
    if prefix == old:
      for path in runfolder.checkpoint_files(os.path.join(run_copy, "model.ckpt-6")):
        shutil.copy(path, os.path.join(best.folder, os.path.basename(path).replace("-6.",
                                                                                   "-99.")))
      storage.atomic_write_checked_json(os.path.join(best.folder, "best.json"),
                                        dict(info, step=99, checkpoint="model.ckpt-99"))
      for path in runfolder.checkpoint_files(old):
        os.remove(path)
    return damage(prefix)

  monkeypatch.setattr(runfolder, "damage", a_training_elects_a_new_best)
  with flagsaver.flagsaver():
    config.FLAGS.unparse_flags()
    config.FLAGS(["runner.py", f"--checkpoint_path={run_copy}", "--evaluation_mode",
                  "--num_test_tasks=10"])
    with caplog.at_level("WARNING"):
      evaluation.evaluate_checkpoint(config.get_configs())
  assert (f"{old} was replaced while it was read (a run training in {run_copy} elected a new "
          f"best): using {best.folder}/model.ckpt-99 instead") in caplog.text
  assert glob.glob(os.path.join(run_copy, "results", "leo-test-*-step99-*.json"))
