# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Records that never overwrite each other, models verified as a unit, comparisons that pair
only identical tasks: each reproduction of a hostile or careless use, tried on a copy of the
session's tiny run (conftest.tiny_run), either works correctly or is refused in one line
naming the file or flag, exit status 2, every file as it was (sha256 before and after)."""

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Callable, List, NamedTuple, Optional

import pytest

import backbone as backbone_lib
import fixtures
import inprocess
import records
import runfolder
import storage
import test_compare
import test_runner

ROOT = test_runner.ROOT
RUNNER = test_runner.RUNNER
PREDICT = os.path.join(ROOT, "predict.py")
COMPARE = ["-m", "tools.study.compare"]
EVALUATE = [RUNNER, "--evaluation_mode", "--num_test_tasks=20"]
IDENTITY = "[0-9a-f]" * records.NAME_DIGEST_CHARS


class World(NamedTuple):
  """A copy of the tiny run, its data (shared, read-only), and room for more."""
  run: str
  data: str
  tmp: str

  @property
  def results(self) -> str:
    return os.path.join(self.run, records.RESULTS_FOLDER)

  def in_domain_record(self) -> str:
    """The test record the run ended with (20 sampled tasks, seed 0)."""
    (path,) = glob.glob(os.path.join(self.results, f"leo-test-5way1shot-q19-t20-seed0-step*-"
                                                   f"{IDENTITY}.json"))
    return path

  def other_data(self, dataset_name="other", seed=7) -> str:
    """Embeddings of the run's size, other than its own."""
    return fixtures.make_dataset(os.path.join(self.tmp, f"{dataset_name}-{seed}"),
                                 dataset_name=dataset_name, dim=16, seed=seed)


@pytest.fixture
def world(tiny_run, tmp_path):
  data, run, _ = tiny_run
  shutil.copytree(run, tmp_path / "run")
  return World(str(tmp_path / "run"), data, str(tmp_path))


def _digests(*folders) -> dict:
  """{path: sha256} of every file below `folders`."""
  return {path: hashlib.sha256(open(path, "rb").read()).hexdigest()
          for folder in folders for path in glob.glob(os.path.join(folder, "**"), recursive=True)
          if os.path.isfile(path)}


def _run(command):
  return inprocess.run(command, cwd=ROOT)


def _edit_json(path, **changes):
  """Rewrites a JSON file with some values changed and its checksum kept as it was (an
  edit by hand); `None` removes a field."""
  contents = json.load(open(path))
  for name, value in changes.items():
    if value is None:
      contents.pop(name, None)
    elif isinstance(value, dict):
      contents[name] = dict(contents[name], **value)
    else:
      contents[name] = value
  with open(path, "w") as f:
    json.dump(contents, f, indent=2, sort_keys=True)


# ---- The reproductions' set-ups: each makes its files and returns the command. ----

def cross_domain_evaluation(w: World):
  return EVALUATE + [f"--checkpoint_path={w.run}", f"--eval_data_path={w.other_data()}",
                     "--eval_dataset_name=other"]


def baseline_on_other_data(w: World):
  folder = os.path.join(w.tmp, "baselines")
  in_domain = _run([RUNNER, f"--data_path={w.data}", f"--checkpoint_path={folder}",
                    *test_runner.TINY, "--baseline=nearest_centroid"])
  assert in_domain.returncode == 0, in_domain.stderr[-2000:]
  # Same dataset name, other embeddings: the names alone do not tell them apart.
  return [RUNNER, f"--data_path={w.data}", f"--checkpoint_path={folder}", *test_runner.TINY,
          "--baseline=nearest_centroid", f"--eval_data_path={w.other_data('tiny')}"]


def tasks_file_of_the_same_shape(w: World):
  tasks = os.path.join(w.tmp, "other.jsonl")
  exported = _run(EVALUATE + [f"--checkpoint_path={w.run}", "--seed=5",
                              f"--export_tasks={tasks}"])
  assert exported.returncode == 0, exported.stderr[-2000:]
  return EVALUATE + [f"--checkpoint_path={w.run}", f"--tasks={tasks}"]


def the_same_evaluation_again(w: World):
  return EVALUATE + [f"--checkpoint_path={w.run}"]


def into_results_path(w: World):
  return EVALUATE + [f"--checkpoint_path={w.run}",
                     f"--results_path={os.path.join(w.tmp, 'elsewhere')}"]


def a_user_file_at_the_records_name(w: World):
  with open(w.in_domain_record(), "w") as f:
    f.write('{"my": "notes"}\n')
  return the_same_evaluation_again(w)


def another_evaluations_record_at_the_name(w: World):
  """A record of another evaluation whose identity begins as this one's (a 48-bit clash)."""
  path = w.in_domain_record()
  identity = json.load(open(path))[records.IDENTITY_FIELD]
  _edit_json(path, **{records.IDENTITY_FIELD: identity[:records.NAME_DIGEST_CHARS] + "0" * 52})
  return the_same_evaluation_again(w)


def other_embeddings_at_data_path(w: World):
  return EVALUATE + [f"--checkpoint_path={w.run}", f"--data_path={w.other_data('tiny')}"]


def edited_inner_unroll_length(w: World):
  _edit_json(os.path.join(w.run, "config.json"), inner_model_config={"inner_unroll_length": 7})
  return the_same_evaluation_again(w)


def best_accuracy_edited(w: World):
  _edit_json(os.path.join(w.run, "best_checkpoint", "best.json"), accuracy=0.991)
  return the_same_evaluation_again(w)


def a_run_made_before_checksums(w: World):
  """The same files without checksums: taken as they are (their values still checked
  against one another)."""
  for path in (os.path.join(w.run, "config.json"),
               os.path.join(w.run, "best_checkpoint", "best.json")):
    _edit_json(path, checksum=None)
  return the_same_evaluation_again(w)


def shipped_model(w: World, monkeypatch, edited: str, **changes):
  """A copy of the shipped 1-shot model, as leo ships it (below runfolder.SHIPPED), with the
  file `edited` changed."""
  shipped = os.path.join(w.tmp, "shipped")
  shutil.copytree(runfolder.SHIPPED_MODELS, os.path.join(shipped, "models"))
  monkeypatch.setattr(runfolder, "SHIPPED", shipped)
  model = os.path.join(shipped, "models", "icons_1shot")
  _edit_json(os.path.join(model, edited), **changes)
  return EVALUATE + [f"--checkpoint_path={model}"]


def a_shipped_inner_unroll_length_edited(w: World, monkeypatch):
  return shipped_model(w, monkeypatch, "config.json",
                       inner_model_config={"inner_unroll_length": 7})


def a_shipped_best_without_its_checksum(w: World, monkeypatch):
  return shipped_model(w, monkeypatch, "best_checkpoint/best.json", accuracy=0.991,
                       checksum=None)


def a_backbone_for_the_run(w: World):
  """The run's data made by a backbone (a file and its PROVENANCE.json beside the pickles),
  whose digest the run's configuration keeps, as training on such data would; returns the
  predict.py command on the run and the data folder."""
  data_root = os.path.join(w.tmp, "data")
  shutil.copytree(w.data, data_root)
  folder = os.path.join(data_root, "tiny", "center")
  with open(os.path.join(folder, backbone_lib.BACKBONE_FILE), "wb") as f:
    f.write(b"backbone A")
  backbone_lib.write_provenance(folder, backbone_lib.backbone_file_entry(
      os.path.join(folder, backbone_lib.BACKBONE_FILE), backbone_lib.BACKBONE_FILE))
  digest = backbone_lib.named_backbone_digest(folder)
  for path in (os.path.join(w.run, "config.json"),
               os.path.join(w.run, "best_checkpoint", "best.json")):
    contents = storage.read_checked_json(path, "")
    contents["data_config"]["data_path"] = data_root
    storage.atomic_write_checked_json(path, dict(contents, backbone_digest=digest))
  return [PREDICT, f"--checkpoint_path={w.run}", f"--support={w.tmp}/support",
          f"--queries={w.tmp}/queries"], folder


def swapped_backbone(w: World):
  command, folder = a_backbone_for_the_run(w)
  with open(os.path.join(folder, backbone_lib.BACKBONE_FILE), "wb") as f:
    f.write(b"backbone B")
  return command


def swapped_backbone_and_its_digest_edited(w: World):
  command, folder = a_backbone_for_the_run(w)
  with open(os.path.join(folder, backbone_lib.BACKBONE_FILE), "wb") as f:
    f.write(b"backbone B")
  _edit_json(os.path.join(folder, backbone_lib.PROVENANCE_FILE), backbone_file={
      "sha256": hashlib.sha256(b"backbone B").hexdigest()})
  return command


def swapped_backbone_and_its_record_rewritten(w: World):
  command, folder = a_backbone_for_the_run(w)
  path = os.path.join(folder, backbone_lib.BACKBONE_FILE)
  with open(path, "wb") as f:
    f.write(b"backbone B")
  backbone_lib.write_provenance(folder, backbone_lib.backbone_file_entry(
      path, backbone_lib.BACKBONE_FILE))
  return command


def an_edited_record(w: World):
  path = w.in_domain_record()
  text = open(path).read()
  accuracy = json.load(open(path))["accuracy"]
  edited = re.sub(r'("accuracy": \d\.\d)(\d)', lambda m: m.group(1) + str(
      (int(m.group(2)) + 1) % 10), text, count=1)
  assert json.loads(edited)["accuracy"] != accuracy
  open(path, "w").write(edited)
  return COMPARE + [w.run]


def an_edited_record_made_before_checksums(w: World):
  path = test_compare.write_record(os.path.join(w.tmp, "old"), "leo", 0, (0.8, 0.6))
  _edit_json(path, accuracy=0.8)  # Its tasks say 0.7.
  return COMPARE + [os.path.join(w.tmp, "old")]


def records_of_one_fingerprint_and_other_task_counts(w: World):
  """A 100-task record, and a 1-task record given its fingerprint by hand."""
  many = test_compare.write_record(os.path.join(w.tmp, "cmp", "leo"), "leo", 0,
                                   [0.9, 0.7] * 50)
  one = test_compare.write_record(os.path.join(w.tmp, "cmp", "base"), "nearest_centroid", 0,
                                  [0.2])
  _edit_json(one, task_fingerprint=json.load(open(many))["task_fingerprint"])
  return COMPARE + [os.path.join(w.tmp, "cmp"), "--pair=R1,R2"]


# ---- What working correctly is, where it works. ----

def _one_new_record(w, result, new, folder, **fields):
  """One new record, in `folder`, named in the log, holding `fields`."""
  assert len(new) == 1, new
  (path,) = new
  assert os.path.dirname(path) == folder
  assert re.fullmatch(f"leo-test-5way1shot-q19-t20-seed0-step\\d+-{IDENTITY}\\.json"
                      if "method" not in fields else f".*-{IDENTITY}\\.json",
                      os.path.basename(path))
  assert f"Result record: {path}" in result.stderr
  record = records.read_record(path)
  for name, value in fields.items():
    assert record[name] == value, name
  return record


def cross_domain_works(w, result, new, changed):
  record = _one_new_record(w, result, new, w.results, dataset_name="other")
  assert "tested on other (test)" in record["summary"]


def baseline_works(w, result, new, changed):
  record = _one_new_record(w, result, new, os.path.join(w.tmp, "baselines", "results"),
                           method="nearest_centroid")
  assert record["tested_on"]["data_path"].startswith(os.path.join(w.tmp, "tiny-7"))


def tasks_file_works(w, result, new, changed):
  record = _one_new_record(w, result, new, w.results)
  (path,) = new
  unnamed = path[:-len(".json") - records.NAME_DIGEST_CHARS]
  # Named as it is but for its identity, and left unchanged.
  (sampled,) = [other for other in glob.glob(unnamed + IDENTITY + ".json") if other != path]
  assert records.read_record(sampled)["task_fingerprint"] != record["task_fingerprint"]
  assert not changed


def replaces_its_own_record(w, result, new, changed):
  assert not new and changed == {w.in_domain_record()}


def results_path_works(w, result, new, changed):
  _one_new_record(w, result, new, os.path.join(w.tmp, "elsewhere"))


def not_paired(w, result, new, changed):
  assert "paired" not in [row[1] for row in test_compare.rows_of(result.stdout).values()]
  assert "R1 and R2 are not paired: different number of tasks (1 vs 100)." in result.stdout


class Case(NamedTuple):
  name: str
  prepare: Callable  # (world[, monkeypatch]) -> the command; makes the files it needs.
  refused: Optional[str]  # The one error line (a regex), or None: it works ...
  works: Optional[Callable] = None  # ... as this checks (world, result, new, changed files).


CASES: List[Case] = [
    # 1. A record's name is its identity.
    Case("cross-domain evaluation keeps the in-domain record", cross_domain_evaluation, None,
         cross_domain_works),
    Case("a baseline on other data keeps its in-domain record", baseline_on_other_data, None,
         baseline_works),
    Case("a tasks file of the same shape keeps the sampled record",
         tasks_file_of_the_same_shape, None, tasks_file_works),
    Case("the same evaluation replaces only its own record", the_same_evaluation_again, None,
         replaces_its_own_record),
    Case("--results_path takes the record", into_results_path, None, results_path_works),
    Case("a user's file at the record's name", a_user_file_at_the_records_name,
         r"runner.py: error: {record}: holds a file leo did not write as a record; leo "
         r"replaces only the record of the same evaluation there: move it aside, then rerun"),
    Case("another evaluation's record at the name", another_evaluations_record_at_the_name,
         r"runner.py: error: {record}: holds the record of another evaluation; .*move it "
         r"aside, then rerun"),
    # 2. The run's data.
    Case("other embeddings at --data_path", other_embeddings_at_data_path,
         r"runner.py: error: --data_path={tmp}/tiny-7: other embeddings \(digest [0-9a-f]{{12}}"
         r"\) than those the model saved at {run}/best_checkpoint/model.ckpt-\d+ was trained "
         r"on \([0-9a-f]{{12}}\); to test it on other data, give them as --eval_data_path \(and "
         r"--eval_dataset_name\)"),
    # 3. A model is verified as a unit.
    Case("an edited inner_unroll_length", edited_inner_unroll_length,
         r"runner.py: error: {run}/config.json: damaged \(its contents do not match its "
         r"checksum\); it is the run's configuration"),
    Case("a best accuracy edited to 0.991", best_accuracy_edited,
         r"runner.py: error: {run}/best_checkpoint/best.json: damaged \(its contents do not "
         r"match its checksum\); it is the best checkpoint's commit record"),
    Case("a run made before checksums", a_run_made_before_checksums, None,
         replaces_its_own_record),
    Case("a shipped model's inner_unroll_length edited", a_shipped_inner_unroll_length_edited,
         r"runner.py: error: {tmp}/shipped/models/icons_1shot/config.json: damaged \(its "
         r"contents do not match its checksum\)"),
    Case("a shipped best.json edited and its checksum removed",
         a_shipped_best_without_its_checksum,
         r"runner.py: error: {tmp}/shipped/models/icons_1shot/best_checkpoint/best.json: no "
         r"checksum, but leo ships it with one: it was edited; restore it"),
    Case("a swapped backbone", swapped_backbone,
         r"predict.py: error: {tmp}/data/tiny/center/backbone.npz: not the backbone that made "
         r"the embeddings of {tmp}/data/tiny/center/PROVENANCE.json \(its sha256 differs"),
    Case("a swapped backbone and its digest edited in PROVENANCE.json",
         swapped_backbone_and_its_digest_edited,
         r"predict.py: error: {tmp}/data/tiny/center/PROVENANCE.json: damaged \(its contents do "
         r"not match its checksum\)"),
    Case("a swapped backbone and PROVENANCE.json rewritten for it",
         swapped_backbone_and_its_record_rewritten,
         r"predict.py: error: {tmp}/data/tiny/center/PROVENANCE.json: names the backbone "
         r"[0-9a-f]{{12}}, but the model was trained on embeddings of the backbone "
         r"[0-9a-f]{{12}} \(its configuration's backbone_digest\)"),
    # 5. compare.
    Case("a record's accuracy edited by one digit", an_edited_record,
         r"tools.study.compare: error: {record}: damaged \(its contents do not match its "
         r"checksum\)"),
    Case("a record made before checksums, its accuracy edited",
         an_edited_record_made_before_checksums,
         r"tools.study.compare: error: {tmp}/old/results/leo-.*\.json: accuracy is 0.8, but its "
         r"task_accuracies give 0.7\d*: the record was edited"),
    Case("a 1-task and a 100-task record of one fingerprint",
         records_of_one_fingerprint_and_other_task_counts, None, not_paired),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_reproduction_works_or_is_one_line_and_changes_nothing(case, world, monkeypatch):
  arguments = [world, monkeypatch][:case.prepare.__code__.co_argcount]
  command = case.prepare(*arguments)
  record = world.in_domain_record() if glob.glob(world.results) else None
  before = _digests(world.tmp)
  result = _run(command)
  after = _digests(world.tmp)
  if case.refused is None:
    assert result.returncode == 0, result.stderr[-3000:]
    new = set(after) - set(before)
    changed = {path for path in before if after.get(path) != before[path]}
    case.works(world, result, new, changed)
    return
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  expected = case.refused.format(record=re.escape(record or ""), run=re.escape(world.run),
                                 tmp=re.escape(world.tmp))
  error = result.stderr.strip().splitlines()[-1]
  assert re.match(expected, error), error
  assert after == before  # Every file as it was, no new one.


# ---- What the table stands on. ----

def test_the_shipped_models_and_their_embeddings_carry_checksums_and_agree():
  """config.json, best.json and the bundled PROVENANCE.json carry their checksums; the
  models' configurations name the bundled embeddings' digest and their backbone's."""
  import config  # pylint: disable=g-import-not-at-top
  import data  # pylint: disable=g-import-not-at-top
  bundled = data.embeddings_folder(config.DataConfig(dataset_name="icons"))
  backbone = backbone_lib.embeddings_backbone(bundled)
  assert backbone_lib.named_backbone_digest(bundled) == backbone_lib.file_digest(backbone)
  digest = data.run_data_digest(config.DataConfig(dataset_name="icons"))
  for model in ("icons_1shot", "icons_5shot"):
    folder = os.path.join(runfolder.SHIPPED_MODELS, model)
    for path in (os.path.join(folder, runfolder.CONFIG_FILE),
                 os.path.join(folder, runfolder.BEST_FOLDER, runfolder.BestCheckpoint.INFO),
                 os.path.join(bundled, backbone_lib.PROVENANCE_FILE)):
      assert storage.CHECKSUM_FIELD in json.load(open(path)), path
    found = runfolder.find_checkpoint(folder)
    assert found.config_json[runfolder.DATA_DIGEST] == digest
    assert found.config_json[runfolder.BACKBONE_DIGEST] == backbone_lib.file_digest(backbone)


def test_the_committed_records_keep_their_names_and_read_as_they_are():
  """Records made before records had checksums and identities in their names are read as
  they are: every one of them (their summaries still those of their tasks), beside the later
  ones, each named by its own identity."""
  from tools.study import compare  # pylint: disable=g-import-not-at-top
  committed = [path for folder in (os.path.join(ROOT, "results"), runfolder.SHIPPED_MODELS)
               for path in glob.glob(os.path.join(folder, "**", "*.json"), recursive=True)
               if json.load(open(path)).get("record") == records.RECORD_KIND]
  found = compare.load_records([os.path.join(ROOT, "results"), runfolder.SHIPPED_MODELS])
  assert sorted(record.path for record in found) == sorted(committed)
  named = [path for path in committed if re.search(f"-{IDENTITY}\\.json$", path)]
  assert len(committed) - len(named) > 80
  for path in named:  # Not an earlier record renamed: the name is its own record's.
    assert os.path.basename(path) == records.record_name(json.load(open(path))) + ".json"


@pytest.mark.slow  # bash, and a runner.py process per evaluation.
def test_helps_sh_compares_the_cross_domain_record_it_made(world):
  out = os.path.join(world.tmp, "out")
  before = _digests(world.run)
  result = subprocess.run(
      ["bash", os.path.join(ROOT, "experiments", "helps.sh"), world.other_data(), "other", "1",
       out, *test_runner.TINY[1:]],
      cwd=ROOT, capture_output=True, text=True, timeout=1200,
      env=dict(os.environ, PYTHON=sys.executable, SEEDS="0", MODEL=world.run,
               TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert _digests(world.run) == before  # The model's own records as they were.
  (made,) = glob.glob(os.path.join(out, "model", "results", "*.json"))
  assert records.read_record(made)["tested_on"]["dataset_name"] == "other"
  table = open(os.path.join(out, "helps.md")).read()
  assert os.path.relpath(made, ROOT) in table or made in table
  assert world.in_domain_record() not in table
