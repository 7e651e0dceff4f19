"""storage.py, runfolder.py and records.py: durable commits, verified checkpoints, run
identity, result records and fingerprints, on local disk and TF's in-memory file system."""

import json
import math
import os
import re
import threading
import subprocess
import sys

from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf

import config
import records
import runfolder
import storage
import utils

ROOTS = ["local", "ram"]
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(params=ROOTS)
def root(request, tmp_path):
  """A fresh folder on local disk, or on `ram://` (any TF file system must work)."""
  if request.param == "local":
    yield str(tmp_path)
    return
  folder = f"ram://{request.node.name.replace('[', '-').replace(']', '')}"
  storage.makedirs(folder)
  yield folder
  storage.remove(folder)


def _variables_checkpoint(values):
  return tf.train.Checkpoint(weights=tf.Variable(values, dtype=tf.float32))


def _overwrite(path, contents):
  storage.remove(path)  # TF's ram:// file system appends when "w" opens an existing file.
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(contents)


def _truncate(path):
  contents = storage.read_bytes(path)
  storage.remove(path)
  with tf.io.gfile.GFile(path, "wb") as f:
    f.write(contents[:len(contents) // 2])


def _flip_bytes(path):
  contents = bytearray(storage.read_bytes(path))
  for i in range(0, len(contents), 7):
    contents[i] ^= 0xFF
  _overwrite(path, bytes(contents))


def _data_file(prefix):
  return [p for p in runfolder.checkpoint_files(prefix) if ".data-" in p][0]


# ---- storage. ----

def test_atomic_write_replaces_and_leaves_no_temporary(root):
  path = storage.join(root, "a.json")
  storage.atomic_write_json(path, {"x": 1})
  storage.atomic_write_json(path, {"x": 2})
  assert storage.read_json(path, "a test file") == {"x": 2}
  assert storage.listdir(root) == ["a.json"]


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(root, monkeypatch):
  path = storage.join(root, "trials.md")
  storage.atomic_write_text(path, "old")
  def full_disk(source, target):
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(storage, "rename", full_disk)
  with pytest.raises(OSError, match="No space left"):
    storage.atomic_write_text(path, "new")
  assert storage.read_bytes(path) == b"old" and storage.listdir(root) == ["trials.md"]


def test_local_files_need_no_tensorflow_and_other_file_systems_load_it():
  """The foundation and the tools that read local records start without TF (seconds less
  per command); `file://` is local too, and `ram://` goes through TF."""
  script = (
      "import os, sys, tempfile\n"
      "import storage, records, runfolder\n"
      "import tools.tune, tools.study.compare\n"
      "folder = 'file://' + tempfile.mkdtemp()\n"
      "records.append_validation(folder, {'step': 1, 'accuracy': 0.5})\n"
      "with storage.RunLock(folder):\n"
      "  storage.atomic_write_json(storage.join(folder, 'a.json'), {'x': 1})\n"
      "print(sorted(storage.listdir(folder)), records.read_validations(folder))\n"
      "storage.remove(folder)\n"
      "loaded = lambda: [m for m in sys.modules if m.split('.')[0] == 'tensorflow']\n"
      "print(loaded(), storage.exists(folder))\n"
      "storage.makedirs('ram://x')\n"
      "print('tensorflow' in loaded())\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=REPOSITORY, capture_output=True,
                          text=True, timeout=120, check=True)
  assert result.stdout.splitlines() == [
      "['.lock', 'a.json', 'validations.jsonl'] [{'accuracy': 0.5, 'step': 1}]",
      "[] False", "True"]


def test_removing_a_tree_removes_its_links_never_what_they_point_to(tmp_path):
  (tmp_path / "thesis").mkdir()
  (tmp_path / "thesis" / "main.tex").write_text("years of work")
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "linked").symlink_to(tmp_path / "thesis")
  (tmp_path / "link").symlink_to(tmp_path / "thesis")
  storage.remove(str(tmp_path / "run"))
  storage.remove(str(tmp_path / "link"))
  assert sorted(os.listdir(tmp_path)) == ["thesis"]
  assert (tmp_path / "thesis" / "main.tex").read_text() == "years of work"


def test_atomic_write_syncs_the_data_before_the_rename_commits_it(tmp_path, monkeypatch):
  events = []
  monkeypatch.setattr(storage, "sync_observers", [lambda p: events.append(("sync", p))])
  rename = storage.rename
  monkeypatch.setattr(storage, "rename",
                      lambda a, b: (events.append(("rename", a, b)), rename(a, b)))
  path = str(tmp_path / "config.json")
  storage.atomic_write_json(path, {"a": 1})
  (tmp,) = [e[1] for e in events if e[0] == "rename"]
  kinds = [e[0] for e in events]
  assert events[0] == ("sync", tmp)  # The temporary's data first,
  assert kinds.index("rename") == 1  # then the rename that commits it,
  assert ("sync", path) in events[2:] and ("sync", str(tmp_path)) in events[2:]  # then names.


@pytest.mark.parametrize("contents", [b"", b'{"step": 3, "acc', b"\xff\xfe", b"[1, 2]"],
                         ids=["empty", "truncated", "not-utf8", "not-an-object"])
def test_a_damaged_json_file_is_one_line_naming_it(root, contents):
  path = storage.join(root, "best.json")
  _overwrite(path, contents)
  with pytest.raises(storage.StorageError) as error:
    storage.read_json(path, "the best checkpoint's commit record")
  message = str(error.value)
  assert message.startswith(f"{path}: ") and "\n" not in message
  assert "the best checkpoint's commit record" in message


def test_append_line_appends_on_every_file_system(root):
  path = storage.join(root, "log.txt")
  storage.append_line(path, "one")
  storage.append_line(path, "two\n")
  assert storage.read_bytes(path) == b"one\ntwo\n"


def test_an_unreachable_object_store_is_one_line(monkeypatch):
  def unreachable(path):
    raise tf.errors.FailedPreconditionError(None, None, "Error executing an HTTP request")
  monkeypatch.setattr(tf.io.gfile, "exists", unreachable)
  monkeypatch.setattr(tf.io.gfile, "isdir", unreachable)
  for query in (storage.exists, storage.isdir, storage.listdir):
    with pytest.raises(storage.StorageError, match=r"^gs://no-such-bucket/x: unreachable "
                       r"\(Error executing an HTTP request\)$"):
      query("gs://no-such-bucket/x")


def test_run_lock_refuses_a_second_holder_and_releases(tmp_path):
  with storage.RunLock(str(tmp_path)):
    with pytest.raises(utils.LeoError, match=r"another leo run \(pid \d+\) is using"):
      with storage.RunLock(str(tmp_path)):
        pass
  with storage.RunLock(str(tmp_path)):  # Released: a later run may take it.
    pass


def test_a_file_lock_is_held_once_names_its_holder_and_is_seen_by_others(tmp_path):
  path = str(tmp_path / "trial.lock")
  assert not storage.is_locked(path) and not os.path.exists(path)  # Looking makes no file.
  with storage.FileLock(path):
    assert storage.is_locked(path)
    with pytest.raises(storage.LockHeld, match=f"locked by pid {os.getpid()}$"):
      with storage.FileLock(path):
        pass
    assert storage.is_locked(path)  # The refused second holder released nothing.
  assert os.path.exists(path) and not storage.is_locked(path)


def test_a_waiting_file_lock_is_taken_once_its_holder_releases_it(tmp_path):
  path, order = str(tmp_path / "setup.lock"), []

  def wait_then_take():
    with storage.FileLock(path, wait=True):
      order.append("waiter took it")

  with storage.FileLock(path):
    waiter = threading.Thread(target=wait_then_take)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and order == []  # Blocked while the lock is held.
    order.append("holder released it")
  waiter.join(5)
  assert order == ["holder released it", "waiter took it"]


def test_run_lock_never_writes_through_a_symbolic_link(tmp_path):
  (tmp_path / "thesis.tex").write_text("years of work")
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / ".lock").symlink_to(tmp_path / "thesis.tex")
  with pytest.raises(utils.LeoError, match=r"run/.lock \(Too many levels of symbolic links\); "
                     "a symbolic link there is refused: remove it$"):
    with storage.RunLock(str(tmp_path / "run")):
      pass
  assert (tmp_path / "thesis.tex").read_text() == "years of work"


def test_run_lock_on_a_file_system_without_locks_warns_once(caplog):
  with caplog.at_level("WARNING"):
    with storage.RunLock("ram://unlocked"):
      pass
  (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
  assert "ram://unlocked: not locked" in warning and "not be detected" in warning
  assert "nothing written there (checkpoints, the best model, records) outlives" in warning


def test_run_lock_without_fcntl_says_why(tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(storage, "fcntl", None)
  with caplog.at_level("WARNING"):
    with storage.RunLock(str(tmp_path)):
      pass
  assert "has no fcntl" in caplog.text and not os.path.exists(tmp_path / ".lock")


# ---- Checkpoints. ----

def test_checkpoints_commit_keep_the_newest_and_restore_the_latest(root):
  checkpoint = _variables_checkpoint([1.0, 2.0])
  checkpoints = runfolder.Checkpoints(root, checkpoint, keep=2)
  for step in (0, 5, 10):
    checkpoint.weights.assign([step, step])
    checkpoints.save(step)
  assert checkpoints.committed() == ["model.ckpt-5", "model.ckpt-10"]
  assert not tf.io.gfile.glob(storage.join(root, "model.ckpt-0*"))
  assert tf.train.latest_checkpoint(root) == storage.join(root, "model.ckpt-10")
  checkpoint.weights.assign([0.0, 0.0])
  assert checkpoints.restore_latest() == storage.join(root, "model.ckpt-10")
  np.testing.assert_array_equal(checkpoint.weights.numpy(), [10.0, 10.0])


def test_a_checkpoint_is_fsynced_before_the_state_file_names_it(tmp_path, monkeypatch):
  events = []
  monkeypatch.setattr(storage, "sync_observers", [events.append])
  checkpoints = runfolder.Checkpoints(str(tmp_path), _variables_checkpoint([1.0]))
  checkpoints.save(7)
  prefix = str(tmp_path / "model.ckpt-7")
  state_tmp = next(i for i, p in enumerate(events) if os.path.basename(p).startswith(
      "checkpoint.leo-tmp-"))
  for path in runfolder.checkpoint_files(prefix):
    assert events.index(path) < state_tmp
  assert events.index(str(tmp_path)) < state_tmp  # The new names are durable too.


@pytest.mark.parametrize("damage", [_truncate, _flip_bytes])
def test_a_damaged_latest_checkpoint_is_moved_aside_and_the_previous_restored(root, damage,
                                                                             caplog):
  checkpoint = _variables_checkpoint([1.0, 2.0, 3.0])
  checkpoints = runfolder.Checkpoints(root, checkpoint)
  for step in (1, 2):
    checkpoint.weights.assign([step] * 3)
    checkpoints.save(step)
  damaged_file = _data_file(storage.join(root, "model.ckpt-2"))
  damage(damaged_file)
  damaged_bytes = storage.read_bytes(damaged_file)
  with caplog.at_level("WARNING"):
    assert checkpoints.restore_latest() == storage.join(root, "model.ckpt-1")
  np.testing.assert_array_equal(checkpoint.weights.numpy(), [1.0] * 3)
  assert "model.ckpt-2" in caplog.text and "resuming from model.ckpt-1" in caplog.text
  kept = storage.join(root, "damaged", os.path.basename(damaged_file))
  assert storage.read_bytes(kept) == damaged_bytes  # Kept, byte for byte.
  assert checkpoints.committed() == ["model.ckpt-1"]


def test_every_checkpoint_damaged_is_one_line_and_changes_nothing(root):
  checkpoints = runfolder.Checkpoints(root, _variables_checkpoint([1.0]))
  for step in (1, 2):
    checkpoints.save(step)
  for step in (1, 2):
    _truncate(_data_file(storage.join(root, f"model.ckpt-{step}")))
  before = {name: storage.read_bytes(storage.join(root, name)) for name in storage.listdir(root)}
  with pytest.raises(storage.StorageError) as error:
    checkpoints.restore_latest()
  message = str(error.value)
  assert "every checkpoint is damaged" in message and "\n" not in message
  assert "model.ckpt-1 (" in message and "model.ckpt-2 (" in message
  after = {name: storage.read_bytes(storage.join(root, name)) for name in storage.listdir(root)}
  assert after == before


@pytest.mark.parametrize("contents", [b"", b"model_checkpoint_p", b"\x00\x01garbage"],
                         ids=["empty", "truncated", "garbage"])
def test_a_damaged_state_file_is_one_line_saying_what_to_do(root, contents):
  checkpoints = runfolder.Checkpoints(root, _variables_checkpoint([1.0]))
  checkpoints.save(3)
  _overwrite(checkpoints.state_path, contents)
  with pytest.raises(storage.StorageError, match="remove it and rerun"):
    checkpoints.restore_latest()
  storage.remove(checkpoints.state_path)  # What the message says to do: then it resumes.
  assert checkpoints.restore_latest() == storage.join(root, "model.ckpt-3")
  assert checkpoints.committed() == ["model.ckpt-3"]


def test_clean_removes_an_interrupted_save_and_temporaries_and_nothing_else(root):
  checkpoint = _variables_checkpoint([1.0])
  checkpoints = runfolder.Checkpoints(root, checkpoint)
  checkpoints.save(1)
  # Killed before the commit, inside TF's write, and while replacing config.json (leo's
  # marker; `config.json.tmp-98`, unmarked, is a user's):
  runfolder.write_checkpoint(checkpoint, storage.join(root, "model.ckpt-2"), root)
  storage.atomic_write_text(storage.join(root, "model.ckpt-3.leo-pending"), "")
  storage.makedirs(storage.join(root, "model.ckpt-3_temp"))
  for name in ("config.json.leo-tmp-99", "config.json.tmp-98", "notes.tmp.txt", "thesis.tmp",
               "model.ckpt-7.my-backup", "model.ckpt-7.index"):
    _overwrite(storage.join(root, name), b"{")
  checkpoints.clean()
  assert sorted(storage.listdir(root)) == [
      "checkpoint", "config.json.tmp-98", "model.ckpt-1.data-00000-of-00001",
      "model.ckpt-1.index", "model.ckpt-7.index", "model.ckpt-7.my-backup", "notes.tmp.txt",
      "thesis.tmp"]


def test_clean_never_follows_a_symbolic_link_out_of_the_folder(tmp_path):
  shared = tmp_path / "shared"
  shared.mkdir()
  (shared / "model.ckpt-123.index").write_text("theirs")
  (shared / "model.ckpt-123.leo-pending").write_text("")
  run = tmp_path / "run"
  run.mkdir()
  (run / "best_checkpoint").symlink_to(shared)
  (run / "results").symlink_to(shared)
  checkpoints = runfolder.Checkpoints(str(run), _variables_checkpoint([1.0]))
  checkpoints.save(1)
  checkpoints.clean()
  assert sorted(os.listdir(shared)) == ["model.ckpt-123.index", "model.ckpt-123.leo-pending"]
  with pytest.raises(utils.LeoError, match=r"best_checkpoint, results are symbolic links .*"
                     r"leo writes only inside its run folder"):
    runfolder.claim(str(run), _configuration(), [])
  assert not (run / "config.json").exists()


def test_a_folder_with_files_of_others_is_claimed_and_they_are_named(root):
  _overwrite(storage.join(root, "notes.tmp.txt"), b"notes")
  notes = runfolder.claim(root, _configuration(), ["--seed=0"])
  assert notes == [f"--checkpoint_path={root} holds files leo did not write, left as they "
                   "are: notes.tmp.txt"]


def test_a_kill_during_the_first_save_starts_from_scratch_keeping_the_pieces(root):
  checkpoint = _variables_checkpoint([1.0])
  checkpoint.write(storage.join(root, "model.ckpt-0"))  # No state file was ever written.
  _truncate(_data_file(storage.join(root, "model.ckpt-0")))
  assert runfolder.Checkpoints(root, checkpoint).restore_latest() is None
  assert storage.listdir(storage.join(root, "damaged"))


# ---- The best checkpoint. ----

def test_best_checkpoint_commits_replaces_and_deletes_the_old_files(root):
  best = runfolder.BestCheckpoint(storage.join(root, "best_checkpoint"))
  assert best.info is None and best.accuracy == -math.inf
  checkpoint = _variables_checkpoint([1.0, 2.0])
  best.save(checkpoint, 3, 0.5, dict(_configuration(), note="a"))
  assert best.info["step"] == 3 and best.accuracy == 0.5 and best.info["note"] == "a"
  checkpoint.weights.assign([5.0, 6.0])
  best.save(checkpoint, 7, 0.75, _configuration())
  assert sorted(storage.listdir(best.folder)) == [
      "best.json", "checkpoint", "model.ckpt-7.data-00000-of-00001", "model.ckpt-7.index"]
  assert tf.train.latest_checkpoint(best.folder) == best.prefix
  restored = _variables_checkpoint([0.0, 0.0])
  restored.read(best.prefix).assert_consumed()
  np.testing.assert_array_equal(restored.weights.numpy(), [5.0, 6.0])
  assert best.damage() is None


def test_an_interrupted_best_write_leaves_the_old_best_and_is_cleaned(root):
  best = runfolder.BestCheckpoint(root)
  checkpoint = _variables_checkpoint([1.0])
  best.save(checkpoint, 2, 0.4, _configuration())
  # A crash after the new files were written but before best.json was replaced:
  runfolder.write_checkpoint(checkpoint, storage.join(root, "model.ckpt-5"), root)
  with tf.io.gfile.GFile(storage.join(root, "best.json.leo-tmp-123"), "w") as f:
    f.write("{")
  assert best.info["step"] == 2  # Still the old, complete best.
  best.clean()
  assert sorted(storage.listdir(root)) == ["best.json", "checkpoint",
                                           "model.ckpt-2.data-00000-of-00001",
                                           "model.ckpt-2.index"]


def test_the_best_checkpoint_data_is_durable_before_best_json_commits_it(tmp_path,
                                                                        monkeypatch):
  events = []
  monkeypatch.setattr(storage, "sync_observers", [events.append])
  best = runfolder.BestCheckpoint(str(tmp_path))
  best.save(_variables_checkpoint([1.0]), 4, 0.5, _configuration())
  commit = next(i for i, p in enumerate(events) if "best.json.leo-tmp-" in p)
  for path in runfolder.checkpoint_files(best.prefix):
    assert events.index(path) < commit


def test_a_truncated_best_is_detected(root):
  best = runfolder.BestCheckpoint(root)
  best.save(_variables_checkpoint([1.0] * 100), 4, 0.5, _configuration())
  _truncate(_data_file(best.prefix))
  assert best.damage()


# ---- Identity and flags. ----

def _configuration(**changes):
  sections = {"data_config": config.as_dict(config.DataConfig(dataset_name="tiny")),
              "inner_model_config": config.as_dict(config.InnerModelConfig()),
              "outer_model_config": config.as_dict(config.OuterModelConfig())}
  for name, value in changes.items():
    for section in sections.values():
      if name in section:
        section[name] = value
  return dict(sections, seed=changes.get("seed", 0), embedding_dim=16)


def test_identity_names_every_training_difference_and_ignores_run_extending_ones():
  saved = _configuration()
  assert runfolder.identity_differences(saved, _configuration(
      num_steps_limit=9, num_test_tasks=7, metatest_batch_size=5, data_path="/moved")) == []
  differences = runfolder.identity_differences(saved, _configuration(
      outer_lr=1e-3, kl_weight=0.5, dataset_name="other", seed=2, train_on_val=True))
  assert differences == ["--dataset_name='other' (saved: 'tiny')",
                         "--train_on_val=True (saved: False)",
                         "--kl_weight=0.5 (saved: 0.001)", "--outer_lr=0.001 (saved: 0.0001)",
                         "--seed=2 (saved: 0)"]


def test_claim_refuses_another_configuration_and_leaves_config_json_unchanged(root):
  runfolder.claim(root, _configuration(), ["--seed=0"])
  config_path = storage.join(root, "config.json")
  before = storage.read_bytes(config_path)
  with pytest.raises(utils.LeoError) as error:
    runfolder.claim(root, _configuration(outer_lr=3e-4), ["--seed=0"])
  assert "--outer_lr=0.0003 (saved: 0.0001)" in str(error.value)
  assert "use another --checkpoint_path" in str(error.value)
  assert storage.read_bytes(config_path) == before
  runfolder.claim(root, _configuration(num_steps_limit=7), ["--num_steps_limit=7"])
  assert storage.read_json(config_path, "")["outer_model_config"]["num_steps_limit"] == 7
  assert storage.read_bytes(storage.join(root, "flags.txt")) == b"--num_steps_limit=7\n"


def test_flagfile_lines_round_trip_through_absl(tmp_path):
  inner = config.InnerModelConfig(kl_weight=0.756143, dropout_rate=0.1 + 0.2)
  data = config.DataConfig(dataset_name="icons", train_on_val=True)
  run = config.RunConfig(checkpoint_path=str(tmp_path / "run"), seed=4, log_steps=7)
  outer = config.OuterModelConfig(num_classes=3, outer_lr=2.739071e-4)
  lines = config.flagfile_lines(data, inner, outer, run)
  assert "--train_on_val" in lines and "--dropout_rate=0.30000000000000004" in lines
  # Nor the run folder: a replay never writes into the run it replays.
  assert not any(line.startswith(("--data_path", "--evaluation_mode", "--baseline",
                                  "--eval_split", "--checkpoint_path")) for line in lines)
  flagfile = tmp_path / "flags.txt"
  flagfile.write_text("\n".join(lines) + "\n")
  with flagsaver.flagsaver():
    config.FLAGS.unparse_flags()
    config.FLAGS(["runner.py", f"--checkpoint_path={run.checkpoint_path}",
                  f"--flagfile={flagfile}"])
    assert config.get_data_config() == data and config.get_inner_model_config() == inner
    assert config.get_outer_model_config() == outer and config.get_run_config() == run


def test_versions_name_the_libraries_and_the_cpu():
  versions = runfolder.versions()
  assert versions["tensorflow"] == tf.__version__ and versions["cpu"]
  assert {"leo", "python", "sonnet", "tensorflow_probability", "numpy"} <= set(versions)


# ---- Records. ----

def test_a_fingerprint_is_equal_only_for_identical_tasks():
  rows = np.arange(2 * 3 * 4).reshape(2, 3, 4)

  def digest(keys="k", shape=(3, 1, 3), parts=(rows,)):
    fingerprint = records.TaskFingerprint(keys, *shape)
    for part in parts:
      fingerprint.update(part)
    return fingerprint.hexdigest()

  assert digest() == digest(parts=(rows[:1], rows[1:]))  # Chunking does not matter.
  assert digest() != digest(keys="other split")
  assert digest() != digest(shape=(3, 2, 2))
  assert digest() != digest(parts=(rows[::-1],))  # Order does.
  changed = rows.copy()
  changed[1, 2, 3] += 1
  assert digest() != digest(parts=(changed,))
  with pytest.raises(ValueError):
    records.TaskFingerprint("k", 3, 1, 2).update(rows)


def _record(**fields):
  """A result record's fields as evaluation.py writes them (but the provenance)."""
  return dict(dict(method="leo", split="val", num_classes=3, num_tr_examples_per_class=5,
                   queries_per_class=10, num_tasks=2, seed=2, trained={"step": 20},
                   accuracy=0.5, ci95=0.1 * utils.Z_95, task_accuracies=[0.4, 0.6],
                   task_fingerprint="f", config={}, identity="0123456789ab" + "c" * 52),
              **fields)


def test_records_are_named_after_what_they_measured_and_replaced_only_by_their_own(root):
  record = _record()
  results = storage.join(root, "results")
  path = records.write_record(results, record)
  assert path == storage.join(results, "leo-val-3way5shot-q10-t2-seed2-step20-0123456789ab.json")
  other = records.write_record(results, dict(record, method="nearest_centroid", trained=None))
  assert other.endswith("nearest_centroid-val-3way5shot-q10-t2-seed2-0123456789ab.json")
  # Another identity (other data, tasks, model ...) is another name.
  elsewhere = records.write_record(results, dict(record, identity="f" * 64))
  assert elsewhere.endswith("-step20-ffffffffffff.json")
  records.write_record(results, dict(record, accuracy=0.55, ci95=0.05 * utils.Z_95,
                                     task_accuracies=[0.5, 0.6]))
  assert records.read_record(path)["accuracy"] == 0.55
  assert records.read_record(other)["accuracy"] == 0.5
  assert records.read_record(elsewhere)["accuracy"] == 0.5
  assert records.read_record(path)["record"] == "leo-result"


@pytest.mark.parametrize("contents", [
    None, b'{"note": "mine"}', b"not json"], ids=["another-evaluation", "json", "text"])
def test_a_file_of_a_records_name_that_is_not_its_record_is_refused_and_kept(root, contents):
  results = storage.join(root, "results")
  path = records.write_record(results, _record())
  if contents is None:  # A record of another evaluation under this name (a 48-bit clash).
    contents = storage.read_bytes(path).replace(b'"0123456789abccc', b'"0123456789abddd')
  _overwrite(path, contents)
  with pytest.raises(storage.StorageError, match=re.escape(path) + ": holds .*move it aside"):
    records.write_record(results, _record())
  assert storage.read_bytes(path) == contents


def test_a_damaged_record_is_one_line(root):
  path = storage.join(root, "r.json")
  _overwrite(path, b'{"record": "leo-res')
  with pytest.raises(storage.StorageError, match="rerun the evaluation"):
    records.read_record(path)
  _overwrite(path, b'{"step": 1}')
  with pytest.raises(storage.StorageError, match="not a leo result record"):
    records.read_record(path)


def test_validations_keep_the_last_line_of_a_step_and_skip_a_torn_line(root):
  for step, accuracy in ((0, 0.2), (5, 0.3), (5, 0.35)):
    records.append_validation(root, {"step": step, "accuracy": accuracy})
  storage.append_line(storage.join(root, records.VALIDATIONS_FILE), '{"step": 10, "accu')
  assert records.read_validations(root) == [{"step": 0, "accuracy": 0.2},
                                            {"step": 5, "accuracy": 0.35}]
  assert json.loads(storage.read_bytes(
      storage.join(root, records.VALIDATIONS_FILE)).splitlines()[0]) == {"step": 0,
                                                                        "accuracy": 0.2}


def test_validations_are_none_before_the_first_and_a_line_torn_mid_file_is_skipped(root):
  assert records.read_validations(root) == []
  # A crash tore the line of step 3; the resumed run appended its first line to it.
  storage.append_line(storage.join(root, records.VALIDATIONS_FILE),
                      '{"step": 3, "acc' + json.dumps({"step": 3, "accuracy": 0.5}))
  for entry in ({"step": 6, "accuracy": 0.4}, {"step": 9, "accuracy": "0.9"},
                {"step": True, "accuracy": 0.9}):
    records.append_validation(root, entry)
  assert records.read_validations(root) == [{"step": 6, "accuracy": 0.4}]


# ---- Commit files are checked. ----

def _damage_json(path, old, new):
  text = storage.read_bytes(path).decode()
  assert old in text
  _overwrite(path, text.replace(old, new, 1).encode())


@pytest.mark.parametrize("old, new", [('"accuracy"', '"accurac}"'), ('"num_latents": 64',
                                                                      '"num_latents": 65'),
                                      ('"step": 4', '"step": 41')],
                         ids=["key", "num_latents", "step"])
def test_a_best_json_damaged_where_it_still_parses_is_one_line(root, old, new):
  runfolder.claim(root, _configuration(), [])
  best = runfolder.BestCheckpoint(storage.join(root, "best_checkpoint"))
  best.save(_variables_checkpoint([1.0]), 4, 0.5, _configuration())
  _damage_json(storage.join(best.folder, "best.json"), old, new)
  with pytest.raises(storage.StorageError, match="best.json: damaged .*checksum.*move .* aside"):
    best.info  # pylint: disable=pointless-statement


@pytest.mark.parametrize("old, new, why", [
    ('"accuracy": 0.5', '"accuracy": NaN', "'accuracy' is nan"),
    ('"num_classes": 5', '"num_classes": 4', "its configuration is not that of .*config.json: --num_classes=4"),
    ('"step": 4', '"step": 41', "'checkpoint' is 'model.ckpt-4', expected 'model.ckpt-41'"),
    ('"accuracy": 0.5', '"accurac}": 0.5', "'accuracy' is None")],
    ids=["nan", "num_classes", "step", "key"])
def test_a_best_json_without_checksum_is_checked_field_by_field(root, old, new, why):
  runfolder.claim(root, _configuration(), [])
  best = runfolder.BestCheckpoint(storage.join(root, "best_checkpoint"))
  best.save(_variables_checkpoint([1.0]), 4, 0.5, _configuration())
  path = storage.join(best.folder, "best.json")
  legacy = storage.read_json(path, "")
  del legacy["checksum"]  # Written before leo kept checksums.
  storage.atomic_write_json(path, legacy)
  assert best.info["step"] == 4
  _damage_json(path, old, new)
  with pytest.raises(storage.StorageError, match=f"best.json: damaged \\({why}"):
    best.info  # pylint: disable=pointless-statement


def test_a_config_json_damaged_where_it_still_parses_is_one_line(root):
  runfolder.claim(root, _configuration(), [])
  _damage_json(storage.join(root, "config.json"), '"num_latents": 64', '"num_latents": 65')
  with pytest.raises(storage.StorageError, match="config.json: damaged .*checksum"):
    runfolder.claim(root, _configuration(), [])


def test_a_flags_txt_that_is_not_utf8_is_rewritten(root):
  runfolder.claim(root, _configuration(), ["--seed=0"])
  _overwrite(storage.join(root, "flags.txt"), b"--seed=0\xff\n")
  runfolder.claim(root, _configuration(), ["--seed=0"])
  assert storage.read_bytes(storage.join(root, "flags.txt")) == b"--seed=0\n"


# ---- The data is part of the identity. ----

def test_a_resume_on_other_embeddings_is_refused_and_an_old_run_adopts_the_digest(root):
  legacy = _configuration()  # A run made before leo kept the data's digest.
  storage.atomic_write_json(storage.join(root, "config.json"), legacy)
  notes = runfolder.claim(root, dict(legacy, data_digest="a" * 64), [])
  assert notes == [f"{storage.join(root, 'config.json')} names no data digest (written before "
                   f"leo kept one): adopting {'a' * 12}..., the embeddings at --data_path"]
  assert runfolder.read_config(root)["data_digest"] == "a" * 64
  moved = dict(legacy, data_digest="a" * 64)
  moved["data_config"] = dict(moved["data_config"], data_path="/elsewhere")
  assert runfolder.claim(root, moved, []) == []  # The path may change ...
  with pytest.raises(utils.LeoError, match=r"other embeddings at --data_path \(digest "
                     r"bbbbbbbbbbbb, saved: aaaaaaaaaaaa\): the path may change, the data may "
                     r"not; use another --checkpoint_path"):
    runfolder.claim(root, dict(legacy, data_digest="b" * 64), [])  # ... the bytes may not.


def test_a_shipped_file_without_its_checksum_is_refused_and_elsewhere_read_as_it_is(
    tmp_path, monkeypatch):
  path = str(tmp_path / "config.json")
  with open(path, "w") as f:
    json.dump({"seed": 3}, f)
  assert runfolder.read_checked_json(path, "a file") == {"seed": 3}  # A user's older run.
  monkeypatch.setattr(runfolder, "SHIPPED", str(tmp_path))
  with pytest.raises(storage.StorageError, match=r"config.json: no checksum, but leo ships it "
                     r"with one: it was edited; restore it \(git checkout .*\); it is a file$"):
    runfolder.read_checked_json(path, "a file")
  storage.atomic_write_checked_json(path, {"seed": 3})
  assert runfolder.read_checked_json(path, "a file") == {"seed": 3}
