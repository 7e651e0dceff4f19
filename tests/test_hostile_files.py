"""Hostile files and links: every attack is refused in one line naming the file or flag, or
survived, and no file of the user's (nor an earlier record) changes, byte for byte.

Two tables: attacks on leo's functions (one `utils.LeoError` subclass, or survival) and on its
commands (exit status 2 and one line, or success). Each row names what is planted and what
must come out; the test takes the sha256 of every watched file before and after.
"""

import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tracemalloc
import types

import numpy as np
import pytest
import tensorflow as tf

import backbone as backbone_lib
import config
import data
import fixtures
import images as images_lib
import inprocess
import prediction
import records
import runfolder
import sizes
import storage
import tasks
import test_runner
import utils
from tools import tune
from tools.study import compare

DEEP = "[" * 100_000 + "]" * 100_000  # RecursionError in Python's JSON parser.
TOO_DEEP = r"damaged or unreadable \(nested 10000[01] levels deep, more than the 32 leo reads\)"
REFUSED_LINK = r"a symbolic link \(to {tmp}/elsewhere\); leo never writes through a link: .*"
NOT_A_TASKS_FILE = ("leo writes tasks only where there is no file, or over a tasks file: "
                    "choose another file")


# ---- What the attacks are made of. ----

def _user_files(folder, *names):
  """Files of the user's in `folder` (made if missing): what no attack may change."""
  os.makedirs(folder, exist_ok=True)
  for name in names or ("thesis.tex",):
    with open(os.path.join(folder, name), "w") as f:
      f.write(f"years of work: {name}\n")
  return str(folder)


def _elsewhere(tmp):
  """The folder links point to, holding the user's files."""
  return _user_files(tmp / "elsewhere", "thesis.tex", "results.json")


def _configuration():
  sections = {"data_config": config.as_dict(config.DataConfig(dataset_name="tiny")),
              "inner_model_config": config.as_dict(config.InnerModelConfig()),
              "outer_model_config": config.as_dict(config.OuterModelConfig())}
  return dict(sections, seed=0, embedding_dim=16)


def _run_folder(tmp):
  run = str(tmp / "run")
  os.makedirs(run)
  runfolder.claim(run, _configuration(), ["--seed=0"])
  return run


def _record(**changes):
  """A result record as evaluation.record writes it (the fields a comparison reads)."""
  record = {
      "record": records.RECORD_KIND, "version": records.RECORD_VERSION, "method": "leo",
      "split": "test", "num_classes": 5, "num_tr_examples_per_class": 1,
      "queries_per_class": 15, "num_tasks": 2, "seed": 0, "accuracy": 0.7,
      "ci95": utils.mean_and_confidence_interval([0.8, 0.6])[1],
      "task_accuracies": [0.8, 0.6], "task_fingerprint": "f" * 64, "dataset_name": "icons",
      records.IDENTITY_FIELD: "1" * 64,
      "config": _configuration(),
      "trained": {"step": 3, "num_classes": 5, "num_tr_examples_per_class": 1}}
  record.update(changes)
  return record


def _write_json(path, contents):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write(contents if isinstance(contents, str) else json.dumps(contents))
  return str(path)


def _split():
  """Three classes of three images: rows 0-2 are class a, 3-5 b, 6-8 c."""
  keys = [f"test-{c}-{c}_{i}" for c in "abc" for i in range(3)]
  # Unit rows (LEO refuses rows it cannot L2-normalise): class a along 0, b along 1, c along 2.
  embeddings = np.repeat(np.eye(3, 4, dtype=np.float32), 3, axis=0)
  return data.validate_embeddings({"embeddings": embeddings,
                                   "keys": np.asarray(keys)}, "<test>")


def _export(path):
  """Exports one 2-way 1-shot task of `_split()` to `path` and reads it back."""
  writer = tasks.TaskWriter(str(path), _split(), shots=1)
  writer.update(np.array([[[4, 3], [0, 2]]]))
  writer.close()
  assert tasks.read_tasks(str(path), _split(), "<test>").shape == (1, 2, 1, 1)


class _ImageReader:
  """What `prediction.read_queries` asks of a predictor before it embeds: the image shape."""
  image_shape = (84, 84, 1)

  def embed(self, images):
    raise AssertionError(f"{len(images)} images were read")


def _queries(tmp, planted):
  """A queries folder of one image and `planted(path)` beside it."""
  folder = tmp / "queries"
  fixtures.write_png(str(folder / "a.png"), np.zeros([8, 8, 1], np.uint8))
  planted(str(folder / "b.png"))
  return str(folder)


def _events(run, accuracies):
  """An events file of `run` with a validation accuracy per step; its path."""
  writer = tf.summary.create_file_writer(run)
  with writer.as_default():
    for step, accuracy in enumerate(accuracies):
      tf.summary.scalar(compare.VALID_ACCURACY_TAG, accuracy, step=step)
  writer.close()
  [path] = [os.path.join(run, name) for name in os.listdir(run) if name.startswith("events")]
  return path


# ---- Attacks on leo's functions: (tmp, monkeypatch) -> (action, watched paths). ----

def _named(name, attack):
  """`attack`, named `name` (the test's id)."""
  attack.__name__ = name
  return attack


def export_through_links_at_its_temporaries(tmp, monkeypatch):
  elsewhere = _elsewhere(tmp)
  target = tmp / "tasks.jsonl"
  os.symlink(f"{elsewhere}/thesis.tex", f"{target}.partial")
  os.symlink(f"{elsewhere}/results.json", storage.temporary_name(str(target)))
  return lambda: _export(target), [elsewhere]


def export_into_an_existing_folder(tmp, monkeypatch):
  _user_files(tmp / "out")
  return lambda: _export(tmp / "out"), [str(tmp)]


def export_over_a_runs_configuration(tmp, monkeypatch):
  run = _run_folder(tmp)
  return lambda: _export(os.path.join(run, runfolder.CONFIG_FILE)), [str(tmp)]


def export_over_a_runs_missing_state_file(tmp, monkeypatch):
  run = _run_folder(tmp)
  return lambda: _export(os.path.join(run, runfolder.STATE_FILE)), [str(tmp)]


def export_into_a_runs_results(tmp, monkeypatch):
  run = _run_folder(tmp)
  return lambda: _export(os.path.join(run, records.RESULTS_FOLDER, "tasks.json")), [str(tmp)]


def export_over_a_users_file(tmp, monkeypatch):
  _user_files(tmp, "notes.jsonl")
  return lambda: _export(tmp / "notes.jsonl"), [str(tmp)]


def export_over_an_earlier_tasks_file(tmp, monkeypatch):
  _export(tmp / "tasks.jsonl")
  return lambda: _export(tmp / "tasks.jsonl"), [_elsewhere(tmp)]


def record_through_a_linked_results_folder(tmp, monkeypatch):
  run, elsewhere = _run_folder(tmp), _elsewhere(tmp)
  os.symlink(elsewhere, os.path.join(run, records.RESULTS_FOLDER))
  return (lambda: records.write_record(os.path.join(run, records.RESULTS_FOLDER), _record(),
                                      run), [str(tmp)])


def shipped_model_record_through_a_link_planted_in_tmp(tmp, monkeypatch):
  elsewhere, system_tmp = _elsewhere(tmp), tmp / "system-tmp"
  os.makedirs(system_tmp / "leo-results" / "icons_1shot")
  os.symlink(elsewhere, system_tmp / "leo-results" / "icons_1shot" / records.RESULTS_FOLDER)
  monkeypatch.setenv("TMPDIR", str(system_tmp))
  monkeypatch.setattr("tempfile.tempdir", None)

  def action():
    folder = runfolder.results_folder(prediction.SHIPPED_1SHOT)
    path = records.write_record(os.path.join(folder, records.RESULTS_FOLDER), _record(), folder)
    assert os.path.dirname(folder) == str(system_tmp) and "leo-results" in folder
    assert os.stat(folder).st_mode & 0o777 == 0o700
    assert os.path.realpath(path).startswith(folder + os.sep)
    assert records.read_record(path)["accuracy"] == 0.7
  return action, [elsewhere, str(system_tmp / "leo-results")]


def _checkpoint():
  return tf.train.Checkpoint(weights=tf.Variable([1.0]))


def best_checkpoint_through_tfs_temporary_folder(tmp, monkeypatch):
  run, elsewhere = _run_folder(tmp), _elsewhere(tmp)
  best = os.path.join(run, runfolder.BEST_FOLDER)
  os.makedirs(best)
  os.symlink(elsewhere, os.path.join(best, "model.ckpt-0" + runfolder.TF_TEMPORARY_SUFFIX))
  return (lambda: runfolder.BestCheckpoint(best).save(_checkpoint(), 0, 0.5, _configuration()),
          [str(tmp)])


def checkpoint_through_a_linked_index(tmp, monkeypatch):
  run, elsewhere = _run_folder(tmp), _elsewhere(tmp)
  os.symlink(f"{elsewhere}/thesis.tex", os.path.join(run, "model.ckpt-1.index"))
  return lambda: runfolder.Checkpoints(run, _checkpoint()).save(1), [str(tmp)]


def best_checkpoint_in_a_linked_folder(tmp, monkeypatch):
  run, elsewhere = _run_folder(tmp), _elsewhere(tmp)
  best = os.path.join(run, runfolder.BEST_FOLDER)
  os.symlink(elsewhere, best)
  return (lambda: runfolder.BestCheckpoint(best).save(_checkpoint(), 0, 0.5, _configuration()),
          [str(tmp)])


def clean_ups_meet_a_users_temporaries(tmp, monkeypatch):
  run = _run_folder(tmp)
  best = os.path.join(run, runfolder.BEST_FOLDER)
  users = [_user_files(run, "config.json.tmp-123", "train.log.tmp-1"),
           _user_files(best, "best.json.tmp-7")]
  ours = os.path.join(run, runfolder.CONFIG_FILE + storage.TEMPORARY_MARKER + "99")
  _write_json(ours, "{")

  def action():
    runfolder.Checkpoints(run, None).clean()
    runfolder.BestCheckpoint(best).clean()
    assert not os.path.exists(ours)  # leo's own, marked, is cleaned.
  return action, [os.path.join(users[0], "config.json.tmp-123"),
                  os.path.join(users[0], "train.log.tmp-1"),
                  os.path.join(users[1], "best.json.tmp-7")]


def tuning_in_a_folder_that_is_not_a_study(tmp, monkeypatch):
  folder = _user_files(tmp / "mine", tune.TABLE_FILE, tune.FLAGFILE)
  settings = tune.Settings(study_dir=folder, num_trials=1, num_steps_limit=1,
                           checkpoint_steps=1)
  return lambda: tune.open_study(settings), [str(tmp)]


def _tuner_flags(tmp, **changes):
  """tools/tune.py's flag values: its defaults, with `changes`."""
  return types.SimpleNamespace(**dict(
      dict(study_dir=str(tmp / "study"), num_trials=20, num_steps_limit=3000,
           checkpoint_steps=500, seed=0, params=list(tune.SPACE), storage=None,
           study_name="leo", sampler_seed=0, pruner_startup_trials=5, stale_seconds=300.0,
           seeds=0, objective="trained", importance=False), **changes))


def tuner_flag(**changes):
  def attack(tmp, monkeypatch):
    return lambda: tune.settings_from_flags(_tuner_flags(tmp, **changes), []), [str(tmp)]
  return _named("tuner_flag_" + "_".join(f"{k}={v}" for k, v in changes.items()), attack)


def tuner_journal(name, contents):
  def attack(tmp, monkeypatch):
    journal = _write_json(tmp / "journal.log", contents)
    settings = tune.settings_from_flags(_tuner_flags(tmp, storage=journal), [])
    return lambda: tune.open_study(settings), [journal]
  return _named(f"tuner_journal_{name}", attack)


def deep_json_in(reader):
  def attack(tmp, monkeypatch):
    return reader(tmp), [str(tmp)]
  return _named(f"deep_json_in{reader.__name__[len('_deep'):]}", attack)


def _deep_task_file(tmp):
  path = _write_json(tmp / "tasks.jsonl", DEEP + "\n")
  return lambda: tasks.read_tasks(path, _split(), "<test>")


def _deep_config(tmp):
  run = _run_folder(tmp)
  _write_json(os.path.join(run, runfolder.CONFIG_FILE), '{"seed": ' + DEEP + "}")
  return lambda: runfolder.read_config(run)


def config_of_the_wrong_form(tmp, monkeypatch):
  run = _run_folder(tmp)
  _write_json(os.path.join(run, runfolder.CONFIG_FILE), dict(_configuration(), data_config=[]))
  return lambda: runfolder.read_config(run), [str(tmp)]


def _deep_best(tmp):
  best = tmp / "run" / runfolder.BEST_FOLDER
  _write_json(best / runfolder.BestCheckpoint.INFO, DEEP)
  return lambda: runfolder.BestCheckpoint(str(best)).info


def _deep_provenance(tmp):
  _write_json(tmp / backbone_lib.PROVENANCE_FILE, '{"pickles": ' + DEEP + "}")
  return lambda: backbone_lib.read_provenance(str(tmp))


def _deep_record(tmp):
  path = _write_json(tmp / "run" / records.RESULTS_FOLDER / "leo.json", DEEP)
  return lambda: records.read_record(path)


def _deep_versions(tmp):
  _write_json(tmp / "run" / runfolder.VERSIONS_FILE, '{"sessions": ' + DEEP + "}")
  return lambda: runfolder.training_commits(str(tmp / "run"), 3)


def deep_validation_lines_are_skipped(tmp, monkeypatch):
  run = str(tmp / "run")
  lines = [{"step": 0, "accuracy": 0.2}, DEEP, {"step": 3, "accuracy": 0.5}]
  _write_json(os.path.join(run, records.VALIDATIONS_FILE),
              "".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                      for line in lines))

  def action():
    assert [v["step"] for v in records.read_validations(run)] == [0, 3]
  return action, [str(tmp)]


def provenance(name, contents, call):
  def attack(tmp, monkeypatch):
    _write_json(tmp / backbone_lib.PROVENANCE_FILE, contents)
    _user_files(tmp, backbone_lib.BACKBONE_FILE)
    return lambda: call(str(tmp)), [str(tmp)]
  return _named(f"provenance_{name}", attack)


def versions(name, contents):
  def attack(tmp, monkeypatch):
    _write_json(tmp / "run" / runfolder.VERSIONS_FILE, contents)
    return lambda: runfolder.training_commits(str(tmp / "run"), 3), [str(tmp)]
  return _named(f"versions_{name}", attack)


def compare_on_a_record_with(name, **changes):
  def attack(tmp, monkeypatch):
    _write_json(tmp / "run" / records.RESULTS_FOLDER / "a.json", _record())
    _write_json(tmp / "run" / records.RESULTS_FOLDER / "b.json", _record(seed=1, **changes))
    return lambda: compare.render_table(compare.load_records([str(tmp)])), [str(tmp)]
  return _named(f"compare_on_a_record_with_{name}", attack)


def compare_on_a_truncated_events_file(tmp, monkeypatch):
  run = str(tmp / "run")
  path = _events(run, [0.2, 0.4, 0.6])
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) - 5)  # A run killed while writing its last event.

  def action():
    assert compare.validation_curve(run) == pytest.approx({0: 0.2, 1: 0.4})
  return action, [str(tmp)]


def compare_on_a_fifo_named_like_a_record(tmp, monkeypatch):
  _write_json(tmp / "run" / records.RESULTS_FOLDER / "a.json", _record())
  os.mkfifo(tmp / "run" / records.RESULTS_FOLDER / "zz.json")
  return lambda: compare.load_records([str(tmp)]), [str(tmp)]


def compare_on_a_tree_with_links_to_its_parents(tmp, monkeypatch):
  path = _write_json(tmp / "run" / records.RESULTS_FOLDER / "a.json", _record())
  for name in "abc":
    os.symlink("..", tmp / "run" / name)

  def action():
    assert [record.path for record in compare.load_records([str(tmp)])] == [path]
    assert compare.find_runs([str(tmp)]) == []
  return action, [str(tmp)]


def queries_with(name, planted):
  def attack(tmp, monkeypatch):
    folder = _queries(tmp, planted)
    return lambda: prediction.read_queries(folder, _ImageReader()), [str(tmp)]
  return _named(f"queries_with_{name}", attack)


def queries_of_dev_zero(tmp, monkeypatch):
  return lambda: prediction.read_queries("/dev/zero", _ImageReader()), [str(tmp)]


def gzip_bomb(tmp, monkeypatch):
  monkeypatch.setattr(sizes, "memory_bytes", lambda: 64 * 2**20)  # Bound: 16 MB.
  path = tmp / "tiny" / "center" / "train_embeddings.pkl.gz"
  os.makedirs(path.parent)
  with gzip.open(path, "wb") as f:  # 32 kB that decompress to 256 MB of zeros.
    for _ in range(256):
      f.write(bytes(2**20))

  def action():
    tracemalloc.start()
    try:
      data.load_pickle(str(path))
    finally:
      peak = tracemalloc.get_traced_memory()[1]
      tracemalloc.stop()
      assert peak < 40 * 2**20, peak  # The bound and a block: never the 256 MB.
  return action, [str(tmp)]


def non_utf8_names(where):
  def attack(tmp, monkeypatch):
    folder = str(tmp / "images")
    fixtures.write_png(os.path.join(folder, "a", "1.png"), np.zeros([8, 8, 1], np.uint8))
    name = os.path.join(os.fsencode(folder), *([b"\xff"] if where == "class" else [b"a"]),
                        b"\xfe.png")
    os.makedirs(os.path.dirname(name), exist_ok=True)
    shutil.copy(os.path.join(folder, "a", "1.png"), name)
    read = (lambda: images_lib.read_image_folder(folder)) if where == "class" else (
        lambda: prediction.read_queries(folder, _ImageReader()))
    return read, [str(tmp)]
  return _named(f"non_utf8_{where}_name", attack)


ATTACKS = [
    (export_through_links_at_its_temporaries, None),
    (export_into_an_existing_folder, r"--export_tasks={tmp}/out: a folder, expected a file "
     "name; " + NOT_A_TASKS_FILE),
    (export_over_a_runs_configuration, r"--export_tasks={tmp}/run/config.json: config.json is "
     "a file of the run folder {tmp}/run; " + NOT_A_TASKS_FILE),
    (export_over_a_runs_missing_state_file, r"--export_tasks={tmp}/run/checkpoint: checkpoint "
     "is a file of the run folder {tmp}/run; " + NOT_A_TASKS_FILE),
    (export_into_a_runs_results, r"--export_tasks={tmp}/run/results/tasks.json: results is a "
     "folder of the run folder {tmp}/run; " + NOT_A_TASKS_FILE),
    (export_over_a_users_file, r"--export_tasks={tmp}/notes.jsonl: a file that is not a tasks "
     r"file \(its first line is no task\); " + NOT_A_TASKS_FILE),
    (export_over_an_earlier_tasks_file, None),
    (record_through_a_linked_results_folder, "{tmp}/run/results: " + REFUSED_LINK),
    (shipped_model_record_through_a_link_planted_in_tmp, None),
    (best_checkpoint_through_tfs_temporary_folder,
     "{tmp}/run/best_checkpoint/model.ckpt-0_temp: " + REFUSED_LINK),
    (checkpoint_through_a_linked_index,
     r"{tmp}/run/model.ckpt-1.index: a symbolic link \(to {tmp}/elsewhere/thesis.tex\); .*"),
    (best_checkpoint_in_a_linked_folder, "{tmp}/run/best_checkpoint: " + REFUSED_LINK),
    (clean_ups_meet_a_users_temporaries, None),
    (tuning_in_a_folder_that_is_not_a_study, r"tools/tune.py: --study_dir={tmp}/mine: holds "
     r"best_flags.txt, trials.md but no trials/ folder, so it is not a leo study: choose a new "
     "or empty folder"),
    (tuner_flag(stale_seconds=float("inf")),
     "tools/tune.py: --stale_seconds=inf: expected 1 to 604800"),
    (tuner_flag(stale_seconds=1e300),
     r"tools/tune.py: --stale_seconds=1e\+300: expected 1 to 604800"),
    (tuner_flag(stale_seconds=float("nan")),
     "tools/tune.py: --stale_seconds=nan: expected 1 to 604800"),
    (tuner_flag(sampler_seed=-1), "tools/tune.py: --sampler_seed=-1: expected 0 to 4293"),
    (tuner_flag(sampler_seed=5000), "tools/tune.py: --sampler_seed=5000: expected 0 to 4293"),
    (tuner_flag(pruner_startup_trials=-5),
     "tools/tune.py: --pruner_startup_trials=-5: expected >= 0"),
    (tuner_journal("torn_last_line", '{"op_code": 0}\n{"op_code": 4, "trial'), r"tools/tune.py: "
     r"--storage={tmp}/journal.log: line 2 is torn \(it has no end of line: a tuner was killed "
     r"while writing it\): remove that line to resume the study"),
    (tuner_journal("appended_to_a_torn_line",
                   '{"op_code": 0}\n{"op_code": 4, "trial{"op_code": 1}\n'), r"tools/tune.py: "
     r"--storage={tmp}/journal.log: line 2: damaged or unreadable \(.*\); it is a line of the "
     "study's journal: remove it to resume the study"),
    (tuner_journal("deep_line", '{"op_code": 0}\n' + DEEP + "\n"), r"tools/tune.py: "
     r"--storage={tmp}/journal.log: line 2: " + TOO_DEEP + "; it is a line of the study's "
     "journal: .*"),
    (deep_json_in(_deep_task_file),
     r"--tasks={tmp}/tasks.jsonl: line 1: " + TOO_DEEP + "; it is a task line"),
    (deep_json_in(_deep_config),
     r"{tmp}/run/config.json: " + TOO_DEEP + "; it is the run's configuration: .*"),
    (config_of_the_wrong_form, r"{tmp}/run/config.json: 'data_config' is \[\], expected an "
     "object; it is the run's configuration: restore it from a copy of the run, or train in "
     "another --checkpoint_path"),
    (deep_json_in(_deep_best), r"{tmp}/run/best_checkpoint/best.json: " + TOO_DEEP
     + "; it is the best checkpoint's commit record: .*"),
    (deep_json_in(_deep_provenance), r"{tmp}/PROVENANCE.json: " + TOO_DEEP + "; it is the "
     "record of how the embeddings beside it were made"),
    (deep_json_in(_deep_record),
     r"{tmp}/run/results/leo.json: " + TOO_DEEP + "; it is a result record: .*"),
    (deep_json_in(_deep_versions),
     r"{tmp}/run/versions.json: " + TOO_DEEP + "; it is the run's version history: .*"),
    (deep_validation_lines_are_skipped, None),
    (provenance("an_array", "[]", backbone_lib.read_provenance), r"{tmp}/PROVENANCE.json: expected an "
     r"object, found \[\]; it is the record of how the embeddings beside it were made"),
    (provenance("a_string_backbone_file", {"backbone_file": "backbone.npz"},
                backbone_lib.embeddings_backbone),
     r"{tmp}/PROVENANCE.json: 'backbone_file' is \"backbone.npz\", expected .*"),
    (provenance("a_string_of_class_ids", {"backbone_trained_on": {"class_ids": "abc"}},
                lambda tmp: backbone_lib.backbone_record(os.path.join(tmp, "backbone.npz"))),
     r"{tmp}/PROVENANCE.json: 'backbone_trained_on.class_ids' is \"abc\", expected an array "
     "of strings; it is the record .*"),
    (versions("sessions_5", {"sessions": 5}), r"{tmp}/run/versions.json: 'sessions' is 5, expected an "
     "array of objects; it is the run's version history: remove it to start a new one"),
    (versions("a_string_step", {"sessions": [{"step": "3"}]}), r"{tmp}/run/versions.json: 'sessions\[0\].step' "
     r"is \"3\", expected null or an integer; .*"),
    (compare_on_a_record_with("a_string_trained", trained="step 3"),
     r"{tmp}/run/results/b.json: 'trained' is \"step 3\", expected null or an object"),
    (compare_on_a_record_with("a_string_step", trained={"step": "3"}),
     r"{tmp}/run/results/b.json: 'trained.step' is \"3\", expected null or an integer"),
    (compare_on_a_record_with("numbers_for_commits", trained={"leo_commits": [1]}),
     r"{tmp}/run/results/b.json: 'trained.leo_commits\[0\]' is 1, expected a string"),
    (compare_on_a_record_with("arrays_for_data", meta_trained_on=[], tested_on=[]),
     r"{tmp}/run/results/b.json: 'tested_on' is \[\], expected null or an object"),
    (compare_on_a_record_with("a_number_for_the_dataset", dataset_name=5),
     r"{tmp}/run/results/b.json: 'dataset_name' is 5, expected null or a string"),
    (compare_on_a_record_with("a_string_accuracy", accuracy="70%"),
     r"{tmp}/run/results/b.json: 'accuracy' is \"70%\", expected a number"),
    (compare_on_a_truncated_events_file, None),
    (compare_on_a_fifo_named_like_a_record, r"{tmp}/run/results/zz.json: a FIFO \(named "
     r"pipe\), not a regular file; leo reads only regular files"),
    (compare_on_a_tree_with_links_to_its_parents, None),
    (queries_with("a_fifo", os.mkfifo), r"{tmp}/queries/b.png: a FIFO \(named pipe\), not a regular "
     "file; leo reads only regular files"),
    (queries_with("a_link_to_dev_zero", lambda path: os.symlink("/dev/zero", path)), r"{tmp}/queries/b.png: a "
     "character device, not a regular file; leo reads only regular files"),
    (queries_of_dev_zero, "/dev/zero: a character device, not a regular file; leo reads only "
     "regular files"),
    (gzip_bomb, r"{tmp}/tiny/center/train_embeddings.pkl.gz: holds more than 16 MB of pickle "
     r"once decompressed, a quarter of this machine's 64 MB of memory: embeddings that large "
     "need a machine with more memory"),
    (non_utf8_names("class"), r"{tmp}/images/\\xff: a name that is not UTF-8 \(leo prints "
     r"and writes the names of images and classes as UTF-8\): rename it"),
    (non_utf8_names("query"), r"{tmp}/images/a/\\xfe.png: a name that is not UTF-8 .*"),
]


class _Deadline:
  """Fails a call that has not returned within `seconds` (a read that blocks on a FIFO)."""

  def __init__(self, seconds):
    self.seconds = seconds

  def _expired(self, *unused):
    raise TimeoutError(f"no answer within {self.seconds} s")

  def __enter__(self):
    self._previous = signal.signal(signal.SIGALRM, self._expired)
    signal.setitimer(signal.ITIMER_REAL, self.seconds)

  def __exit__(self, *unused):
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, self._previous)


def _digests(paths):
  """{path: sha256 of a file, the target of a link, "folder" or a FIFO's kind} of `paths` and
  of everything below them; a path that is missing maps to None."""
  found = {}
  for top in paths:
    below = ([os.path.join(folder, name) for folder, folders, files in os.walk(top)
              for name in folders + files] if os.path.isdir(top) else [])
    for path in [top] + below:
      if os.path.islink(path):
        found[path] = "-> " + os.readlink(path)
      elif os.path.isfile(path):
        with open(path, "rb") as f:
          found[path] = hashlib.sha256(f.read()).hexdigest()
      else:
        found[path] = "folder" if os.path.isdir(path) else (
            "special" if os.path.exists(path) else None)
  return found


def _one_line_or_none(call):
  with _Deadline(60):
    try:
      call()
    except utils.LeoError as error:
      assert "\n" not in str(error), str(error)
      return str(error)
  return None


@pytest.mark.parametrize("attack, expected", ATTACKS,
                         ids=[attack.__name__ for attack, _ in ATTACKS])
def test_an_attack_is_refused_in_one_line_or_survived_and_no_users_file_changes(
    attack, expected, tmp_path, monkeypatch):
  action, watched = attack(tmp_path, monkeypatch)
  before = _digests(watched)
  error = _one_line_or_none(action)
  if expected is None:
    assert error is None
  else:
    assert error is not None, "no error"
    assert re.fullmatch(expected.replace("{tmp}", re.escape(str(tmp_path))), error), error
  assert _digests(watched) == before


def test_the_unpickling_bound_is_a_quarter_of_the_machines_memory(monkeypatch):
  assert data.max_pickle_bytes()[0] == sizes.memory_bytes() // 4
  monkeypatch.setattr(sizes, "memory_bytes", lambda: None)
  assert data.max_pickle_bytes() == (data.DEFAULT_MAX_PICKLE_BYTES, "the most leo reads where "
                                     "the system does not say its memory")


# ---- Attacks on the commands: (tmp) -> (command, watched paths). ----

def compare_command(name, plant):
  """`python -m tools.study.compare <tmp>` on a record and what `plant(results folder)` adds."""
  def attack(tmp):
    results = tmp / "run" / records.RESULTS_FOLDER
    _write_json(results / "a.json", _record())
    plant(results)
    return ["-m", "tools.study.compare", str(tmp)], [str(tmp)]
  return _named(f"compare_command_{name}", attack)


def _links_to_parents(results):
  for name in "abc":
    os.symlink("..", results / name)


COMMANDS = [
    (compare_command("fifo", lambda results: os.mkfifo(results / "zz.json")), r"tools.study.compare: error: "
     r"{tmp}/run/results/zz.json: a FIFO \(named pipe\), not a regular file; leo reads only "
     "regular files"),
    (compare_command("array_for_trained",
                     lambda results: _write_json(results / "b.json", _record(trained=[3]))),
     r"tools.study.compare: error: {tmp}/run/results/b.json: 'trained' is \[3\], expected null or an "
     "object"),
    (compare_command("links_to_parents", _links_to_parents), None),
]


def _run_command(command, env=None):
  with _Deadline(600):
    return inprocess.run(command, cwd=test_runner.ROOT, env=env)


def _assert_one_line_or_success(result, expected, tmp_path):
  """Success, or exit status 2 and one error line (`expected`), the last, after the log of
  what the command did before."""
  if expected is None:
    assert result.returncode == 0, result.stderr[-3000:]
    return
  lines = result.stderr.strip().splitlines()
  prefix = expected.split(":", 1)[0]
  assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert [line for line in lines if line.startswith(prefix)] == lines[-1:], lines[-5:]
  assert re.fullmatch(expected.replace("{tmp}", re.escape(str(tmp_path))), lines[-1]), lines[-1]


@pytest.mark.parametrize("attack, expected", COMMANDS,
                         ids=[attack.__name__ for attack, _ in COMMANDS])
def test_a_command_under_attack_exits_2_in_one_line_and_no_users_file_changes(
    attack, expected, tmp_path):
  command, watched = attack(tmp_path)
  before = _digests(watched)
  _assert_one_line_or_success(_run_command(command), expected, tmp_path)
  assert _digests(watched) == before


# ---- Attacks on the commands that train, evaluate or predict (seconds each). ----

def _run_copy(tiny_run, tmp):
  """The session's tiny run (conftest.py), copied: checkpoints 0, 3 and 6, a best, a record."""
  run = str(tmp / "run")
  shutil.copytree(tiny_run[1], run)
  return run


def _runner(tiny_run, run, *flags):
  return [test_runner.RUNNER, f"--data_path={tiny_run[0]}", f"--checkpoint_path={run}",
          *test_runner.TINY, *flags]


def evaluation_exporting_over_the_runs_configuration(tiny_run, tmp):
  run = _run_copy(tiny_run, tmp)
  return (_runner(tiny_run, run, "--evaluation_mode",
                  f"--export_tasks={run}/{runfolder.CONFIG_FILE}"), [str(tmp)])


def evaluation_exporting_into_a_folder(tiny_run, tmp):
  run = _run_copy(tiny_run, tmp)
  _user_files(tmp / "out")
  return (_runner(tiny_run, run, "--evaluation_mode", f"--export_tasks={tmp}/out"),
          [str(tmp)])


def evaluation_through_a_linked_results_folder(tiny_run, tmp):
  run, elsewhere = _run_copy(tiny_run, tmp), _elsewhere(tmp)
  shutil.rmtree(os.path.join(run, records.RESULTS_FOLDER))
  os.symlink(elsewhere, os.path.join(run, records.RESULTS_FOLDER))
  return _runner(tiny_run, run, "--evaluation_mode"), [str(tmp)]


def training_through_tfs_temporary_folder_of_the_best(tiny_run, tmp):
  run, elsewhere = str(tmp / "run"), _elsewhere(tmp)
  os.makedirs(os.path.join(run, runfolder.BEST_FOLDER))
  os.symlink(elsewhere, os.path.join(run, runfolder.BEST_FOLDER, "model.ckpt-0_temp"))
  return _runner(tiny_run, run), [elsewhere]


def training_beside_a_users_temporaries(tiny_run, tmp):
  run = _run_copy(tiny_run, tmp)
  _user_files(run, "config.json.tmp-123", "train.log.tmp-1")
  return (_runner(tiny_run, run, "--num_steps_limit=9", "--noevaluate_after_training"),
          [f"{run}/config.json.tmp-123", f"{run}/train.log.tmp-1",
           *records.find_records(run)[0][:1]])


def predict_with_a_fifo_among_the_queries(tiny_run, tmp):
  support = fixtures.image_folder(str(tmp / "support"), num_classes=2, per_class=1)
  queries = _queries(tmp, os.mkfifo)
  return ([os.path.join(test_runner.ROOT, "predict.py"), f"--support={support}",
           f"--queries={queries}"], [str(tmp)])


def predict_on_dev_zero(tiny_run, tmp):
  support = fixtures.image_folder(str(tmp / "support"), num_classes=2, per_class=1)
  return ([os.path.join(test_runner.ROOT, "predict.py"), f"--support={support}",
           "--queries=/dev/zero"], [str(tmp)])


def evaluating_a_shipped_model_beside_a_link_planted_in_tmp(tiny_run, tmp):
  elsewhere = _elsewhere(tmp)
  os.makedirs(tmp / "system-tmp" / "leo-results" / "icons_1shot")
  os.symlink(elsewhere,
             tmp / "system-tmp" / "leo-results" / "icons_1shot" / records.RESULTS_FOLDER)
  return ([test_runner.RUNNER, "--evaluation_mode", f"--checkpoint_path={prediction.SHIPPED_1SHOT}",
           "--num_test_tasks=20"], [elsewhere, runfolder.SHIPPED_MODELS])


SLOW_COMMANDS = [
    (evaluation_exporting_over_the_runs_configuration, r"runner.py: error: "
     r"--export_tasks={tmp}/run/config.json: config.json is a file of the run folder {tmp}/run; "
     + NOT_A_TASKS_FILE),
    (evaluation_exporting_into_a_folder, r"runner.py: error: --export_tasks={tmp}/out: a "
     "folder, expected a file name; " + NOT_A_TASKS_FILE),
    (evaluation_through_a_linked_results_folder,
     "runner.py: error: {tmp}/run/results: " + REFUSED_LINK),
    (training_through_tfs_temporary_folder_of_the_best,
     "runner.py: error: {tmp}/run/best_checkpoint/model.ckpt-0_temp: " + REFUSED_LINK),
    (training_beside_a_users_temporaries, None),
    (predict_with_a_fifo_among_the_queries, r"predict.py: error: {tmp}/queries/b.png: a FIFO "
     r"\(named pipe\), not a regular file; leo reads only regular files"),
    (predict_on_dev_zero, "predict.py: error: /dev/zero: a character device, not a regular "
     "file; leo reads only regular files"),
    (evaluating_a_shipped_model_beside_a_link_planted_in_tmp, None),
]


@pytest.mark.slow  # Each trains, evaluates or loads a model in this process.
@pytest.mark.parametrize("attack, expected", SLOW_COMMANDS,
                         ids=[attack.__name__ for attack, _ in SLOW_COMMANDS])
def test_a_command_that_trains_evaluates_or_predicts_survives_or_exits_2_in_one_line(
    attack, expected, tiny_run, tmp_path):
  command, watched = attack(tiny_run, tmp_path)
  os.makedirs(tmp_path / "system-tmp", exist_ok=True)  # $TMPDIR: TF's autograph writes there.
  if str(tmp_path) in watched:
    watched = [path for path in watched if path != str(tmp_path)] + [
        str(tmp_path / name) for name in os.listdir(tmp_path) if name != "system-tmp"]
  before = _digests(watched)
  result = _run_command(command, env={"TMPDIR": str(tmp_path / "system-tmp")})
  _assert_one_line_or_success(result, expected, tmp_path)
  assert _digests(watched) == before
  if attack is evaluating_a_shipped_model_beside_a_link_planted_in_tmp:
    [record] = re.findall(r"Result record: (\S+)", result.stderr)
    assert record.startswith(f"{tmp_path}/system-tmp/leo-results-icons_1shot-")


@pytest.mark.slow  # A process of its own: the tuner's own flags, parsed by absl.
def test_the_tuner_command_refuses_an_impossible_flag_in_one_line(tmp_path):
  result = subprocess.run([sys.executable, "-m", "tools.tune", f"--study_dir={tmp_path}",
                           "--stale_seconds=inf"], cwd=test_runner.ROOT, capture_output=True,
                          text=True, timeout=300)
  assert (result.returncode, result.stderr) == (
      2, "tools/tune.py: --stale_seconds=inf: expected 1 to 604800\n")
