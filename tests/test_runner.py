"""runner.py end to end on tiny data: train, checkpoint, resume, survive SIGKILL, evaluate.

The commands run in this process (tests/inprocess.py); the SIGKILL test starts a process."""

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

import fixtures
import inprocess
import runfolder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "runner.py")
# A tiny but complete LEO: every loop runs, every file is written.
TINY = ["--dataset_name=tiny", "--num_latents=8", "--inner_unroll_length=2",
        "--finetuning_unroll_length=2", "--num_val_examples_per_class=3",
        "--metatrain_batch_size=4", "--metavalid_batch_size=4", "--metatest_batch_size=10",
        "--num_test_tasks=20", "--num_steps_limit=6", "--checkpoint_steps=3", "--log_steps=2",
        "--outer_lr=1e-3"]


@pytest.fixture(scope="module")
def dataset(tiny_run):
  return tiny_run[0]


def run(*flags):
  """`python runner.py *flags`, run in this process: what it printed and its exit status."""
  return inprocess.run([RUNNER, *flags], cwd=ROOT)


def start(*flags):
  return subprocess.Popen([sys.executable, RUNNER, *flags], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, cwd=ROOT,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def _summary_values(folder):
  for path in sorted(glob.glob(os.path.join(folder, "events.out.tfevents.*"))):
    for record in tf.data.TFRecordDataset(path):
      event = event_pb2.Event.FromString(record.numpy())
      for value in event.summary.value:
        yield event.step, value


def scalar_tags(folder):
  return {value.tag for _, value in _summary_values(folder)}


def scalar_values(folder, tag):
  """The values of one scalar summary, in step order."""
  return [float(tf.make_ndarray(value.tensor)) for _, value in
          sorted(_summary_values(folder), key=lambda item: item[0]) if value.tag == tag]


def listing(folder):
  return {path: os.path.getmtime(path)
          for path in glob.glob(os.path.join(folder, "**"), recursive=True)}


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
  """The session's tiny run (conftest.py), copied for this module's tests, which read it
  and, in file order, add evaluations and steps to it."""
  _, shared, result = tiny_run
  run_dir = str(tmp_path_factory.mktemp("trained") / "run")
  shutil.copytree(shared, run_dir)
  return run_dir, result


def test_training_writes_checkpoints_best_config_and_summaries(trained):
  run_dir, result = trained
  assert tf.train.latest_checkpoint(run_dir).endswith("model.ckpt-6")
  for step in (0, 3, 6):
    assert os.path.exists(os.path.join(run_dir, f"model.ckpt-{step}.index"))
  best = json.load(open(os.path.join(run_dir, "best_checkpoint", "best.json")))
  assert best["step"] in (0, 3, 6) and 0 <= best["accuracy"] <= 1
  assert os.path.exists(os.path.join(run_dir, "best_checkpoint", best["checkpoint"] + ".index"))
  saved = json.load(open(os.path.join(run_dir, "config.json")))
  assert saved["outer_model_config"]["num_classes"] == 5 and saved["embedding_dim"] == 16
  assert saved["inner_model_config"]["num_latents"] == 8
  assert {"metatrain_loss", "metatrain_valid_accuracy", "metavalid_loss",
          "metavalid_valid_accuracy", "best_valid_accuracy", "steps_per_second",
          "nan_guard_count", "gradient/leo/decoder/w:0", "metatest_accuracy",
          "metatest_ci95", "_hparams_/session_start_info"} <= scalar_tags(run_dir)
  # Training scalars every --log_steps, as the mean of those steps.
  assert len(scalar_values(run_dir, "metatrain_loss")) == 3
  assert "Step: 0 meta-valid accuracy" in result.stderr
  assert "Step: 6/6" in result.stderr and "steps/s" in result.stderr
  assert "(mean of 2 steps)" in result.stderr
  assert "functional_saver" not in result.stderr and "Sharding callback" not in result.stderr
  # The best checkpoint was tested automatically after training, and left its record.
  assert "Metatest accuracy:" in result.stdout
  (record,) = glob.glob(os.path.join(run_dir, "results", "*.json"))
  assert record == record_path(run_dir, f"leo-test-5way1shot-q19-t20-seed0-step{best['step']}")
  assert not [path for pattern in ("*.leo-tmp-*", "*.leo-pending", "*_temp")
              for path in glob.glob(os.path.join(run_dir, "**", pattern), recursive=True)]


def test_the_run_folder_records_how_it_was_made(trained):
  run_dir, result = trained
  flags = open(os.path.join(run_dir, "flags.txt")).read().splitlines()
  assert "--num_latents=8" in flags and "--outer_lr=0.001" in flags
  assert not any(flag.startswith("--checkpoint_path") for flag in flags)  # Replays go elsewhere.
  (session,) = json.load(open(os.path.join(run_dir, "versions.json")))["sessions"]
  assert session["tensorflow"] == tf.__version__ and session["step"] == 0
  assert {"leo", "sonnet", "tensorflow_probability", "numpy", "cpu"} <= set(session)
  (record,) = glob.glob(os.path.join(run_dir, "results", "leo-test-*-t20-*.json"))
  assert json.load(open(record))["trained"]["leo_commits"] == [str(session["leo"])]
  log = open(os.path.join(run_dir, "train.log")).read()
  for line in result.stderr.splitlines():
    if "runner.py" in line and "] " in line:
      assert line.split("] ", 1)[1] in log
  assert result.stdout.strip().splitlines()[-1] in log
  validations = [json.loads(line) for line in open(os.path.join(run_dir,
                                                                "validations.jsonl"))]
  assert [v["step"] for v in validations] == [0, 3, 6]
  assert all(v["num_tasks"] == 40 and v["queries_per_class"] == 19 for v in validations)
  best = json.load(open(os.path.join(run_dir, "best_checkpoint", "best.json")))
  assert best["accuracy"] == max(v["accuracy"] for v in validations)


def record_path(folder, name):
  """`<folder>/results/<name>-<identity>.json`: the one record of that evaluation."""
  paths = glob.glob(os.path.join(folder, "results", f"{name}-{'[0-9a-f]' * 12}.json"))
  assert len(paths) == 1, paths
  return paths[0]


def _record(folder, name):
  return json.load(open(record_path(folder, name)))


def test_evaluation_reports_a_confidence_interval_and_leaves_a_record(trained):
  run_dir, _ = trained
  before = listing(run_dir)
  result = run(f"--checkpoint_path={run_dir}/best_checkpoint", "--evaluation_mode",
               "--num_test_tasks=30")
  assert result.returncode == 0, result.stderr[-3000:]
  line = result.stdout.strip().splitlines()[-1]
  assert line.startswith("Metatest accuracy: ") and "% ± " in line
  assert ("(95% CI over 30 tasks; 5-way 1-shot; 19 queries/class; meta-trained on train)"
          in line)
  step = json.load(open(os.path.join(run_dir, "best_checkpoint", "best.json")))["step"]
  name = f"leo-test-5way1shot-q19-t30-seed0-step{step}"
  record = _record(run_dir, name)
  assert record["num_tasks"] == 30 and record["summary"] == line
  assert len(record["task_accuracies"]) == 30 and record["split"] == "test"
  assert record["accuracy"] == pytest.approx(sum(record["task_accuracies"]) / 30, abs=1e-6)
  assert 0 <= record["accuracy"] <= 1 and record["ci95"] > 0
  assert record["trained"]["step"] == step and record["trained"]["num_classes"] == 5
  assert record["config"] == runfolder.read_config(run_dir)
  assert len(record["task_fingerprint"]) == 64
  after = listing(run_dir)
  changed = {p for p in after if before.get(p) != after[p]}
  assert changed <= {record_path(run_dir, name), os.path.join(run_dir, "results")}
  # The identical evaluation again replaces only its own record, with the same numbers.
  again = run(f"--checkpoint_path={run_dir}", "--evaluation_mode", "--num_test_tasks=30",
              "--checkpoint_steps=0")
  assert again.returncode == 0, again.stderr[-2000:]
  assert again.stdout.splitlines()[-1] == line
  repeated = _record(run_dir, name)
  for key in ("accuracy", "ci95", "task_accuracies", "task_fingerprint", "config"):
    assert repeated[key] == record[key]
  assert {p for p in listing(run_dir) if p not in after} == set()


def test_any_checkpoint_split_task_shape_and_seed_evaluate_into_their_own_records(trained):
  run_dir, _ = trained
  evaluations = {
      "leo-test-5way1shot-q19-t20-seed0-step3": [f"--checkpoint_path={run_dir}/model.ckpt-3"],
      "leo-val-5way1shot-q19-t40-seed0-step3": [f"--checkpoint_path={run_dir}/model.ckpt-3",
                                                     "--eval_split=val"],
      "leo-test-3way1shot-q19-t20-seed0-step3": [
          f"--checkpoint_path={run_dir}/model.ckpt-3", "--num_classes=3"],
      "leo-test-5way1shot-q19-t20-seed1-step3": [
          f"--checkpoint_path={run_dir}/model.ckpt-3", "--seed=1"],
  }
  lines = {}
  for name, flags in evaluations.items():
    result = run("--evaluation_mode", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    lines[name] = result.stdout.strip().splitlines()[-1]
  records = {name: _record(run_dir, name) for name in evaluations}
  assert lines["leo-val-5way1shot-q19-t40-seed0-step3"].startswith("Metavalid accuracy")
  three_way = records["leo-test-3way1shot-q19-t20-seed0-step3"]
  assert "3-way 1-shot" in three_way["summary"] and "trained 5-way 1-shot" in three_way["summary"]
  assert three_way["num_classes"] == 3 and three_way["trained"]["num_classes"] == 5
  fingerprints = {record["task_fingerprint"] for record in records.values()}
  assert len(fingerprints) == 4  # Other split, shape or seed: other tasks.
  assert records["leo-test-5way1shot-q19-t20-seed1-step3"]["seed"] == 1


def test_a_run_folder_refuses_another_configuration_and_keeps_its_config(trained, dataset):
  run_dir, _ = trained
  config_path = os.path.join(run_dir, "config.json")
  before = open(config_path, "rb").read()
  for changed, named in ((["--outer_lr=3e-3"], ["--outer_lr=0.003 (saved: 0.001)"]),
                         (["--kl_weight=0.5", "--seed=2"], ["--kl_weight=0.5", "--seed=2"]),
                         (["--num_tr_examples_per_class=2"], ["--num_tr_examples_per_class=2"]),
                         (["--preset=miniImageNet_1shot"], ["--kl_weight=0.756143 (saved: 0.001)"])):
    error = _one_line_error(run(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY,
                                *changed))
    assert "holds a run of another configuration" in error, error
    assert all(name in error for name in named) and "another --checkpoint_path" in error
  assert open(config_path, "rb").read() == before


def test_the_flagfile_replays_the_run(trained, tmp_path):
  run_dir, _ = trained
  replay = str(tmp_path / "replay")
  result = run(f"--flagfile={run_dir}/flags.txt", f"--checkpoint_path={replay}",
               "--noevaluate_after_training")
  assert result.returncode == 0, result.stderr[-3000:]
  assert (json.load(open(os.path.join(replay, "config.json")))
          == json.load(open(os.path.join(run_dir, "config.json"))))
  steps = lambda folder: [(v["step"], v["accuracy"]) for v in map(
      json.loads, open(os.path.join(folder, "validations.jsonl")))]
  assert steps(replay) == steps(run_dir)  # Seeded: the same validations, number for number.


def test_rerunning_the_same_command_resumes_and_extends(trained, dataset):
  run_dir, _ = trained
  again = run(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY,
              "--noevaluate_after_training")
  assert again.returncode == 0, again.stderr[-3000:]
  assert "Resuming from" in again.stderr and "at step 6" in again.stderr
  assert "Step: 2/" not in again.stderr  # No step was trained again.
  longer = run(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY,
               "--num_steps_limit=9", "--noevaluate_after_training")
  assert longer.returncode == 0, longer.stderr[-3000:]
  assert "Step: 8/9" in longer.stderr and "Step: 2/" not in longer.stderr
  assert tf.train.latest_checkpoint(run_dir).endswith("model.ckpt-9")
  log = open(os.path.join(run_dir, "train.log")).read()
  assert log.count("Configuration:") == 3 and "Step: 8/9" in log  # Appended on resume.
  sessions = json.load(open(os.path.join(run_dir, "versions.json")))["sessions"]
  assert [session["step"] for session in sessions] == [0, 6, 6]
  assert json.load(open(os.path.join(run_dir, "config.json")))["outer_model_config"][
      "num_steps_limit"] == 9


@pytest.mark.slow  # A process of its own is the subject.
def test_a_run_killed_mid_training_resumes_and_its_best_still_loads(dataset, tmp_path):
  run_dir = str(tmp_path / "run")
  flags = [f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY,
           "--num_steps_limit=60", "--checkpoint_steps=5", "--noevaluate_after_training"]
  process = start(*flags)
  deadline = time.time() + 180
  while not os.path.exists(os.path.join(run_dir, "model.ckpt-10.index")):
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  resumed = run(*flags)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resuming from" in resumed.stderr
  assert tf.train.latest_checkpoint(run_dir).endswith("model.ckpt-60")
  evaluation = run(f"--checkpoint_path={run_dir}", "--evaluation_mode", "--num_test_tasks=10")
  assert evaluation.returncode == 0, evaluation.stderr[-3000:]
  assert "Metatest accuracy:" in evaluation.stdout


def _one_line_error(result):
  assert result.returncode != 0
  lines = [line for line in result.stderr.strip().splitlines()]
  assert len(lines) == 1, result.stderr[-3000:]
  return lines[0]


def test_evaluating_a_missing_checkpoint_fails_cleanly(tmp_path):
  error = _one_line_error(run(f"--checkpoint_path={tmp_path}/nothing", "--evaluation_mode"))
  assert "--checkpoint_path=" in error and "no checkpoint there" in error
  assert not os.path.exists(tmp_path / "nothing")


def test_missing_data_path_is_one_line_and_writes_nothing(tmp_path):
  error = _one_line_error(run(f"--checkpoint_path={tmp_path}/run"))
  assert "--data_path is required" in error and "embeddings.zip" in error
  assert not os.path.exists(tmp_path / "run")


def test_missing_embeddings_file_names_the_path(tmp_path):
  error = _one_line_error(run(f"--data_path={tmp_path}", f"--checkpoint_path={tmp_path}/run"))
  assert os.path.join(str(tmp_path), "miniImageNet", "center", "train_embeddings.pkl") in error
  assert not os.path.exists(tmp_path / "run")


def test_impossible_flag_value_is_refused_before_any_work(tmp_path, dataset):
  error = _one_line_error(run(f"--data_path={dataset}", f"--checkpoint_path={tmp_path}/run",
                              *TINY, "--num_classes=1"))
  assert error.endswith("--num_classes=1: expected an integer >= 2")
  assert not os.path.exists(tmp_path / "run")


def test_unwritable_checkpoint_path(tmp_path, dataset):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  error = _one_line_error(run(f"--data_path={dataset}", f"--checkpoint_path={blocker}/run",
                              *TINY))
  assert f"--checkpoint_path={blocker}/run: cannot write there" in error


def test_a_checkpoint_with_another_latent_size_is_refused(trained):
  run_dir, _ = trained
  error = _one_line_error(run(f"--checkpoint_path={run_dir}", "--evaluation_mode",
                              "--num_latents=4"))
  assert "--num_latents=4 contradicts the model saved" in error and "num_latents=8" in error


@pytest.mark.parametrize("baseline, fitted", [
    ("nearest_centroid", "fitted on each task's support set"),
    ("logistic_regression", "fitted on each task's support set"),
    ("whitened_nearest_centroid",
     "whitened on the meta-train classes, fitted on each task's support set"),
    ("simpleshot", "centred on the meta-train mean, fitted on each task's support set")])
def test_baselines_report_on_the_test_protocol(dataset, tmp_path, baseline, fitted):
  result = run(f"--data_path={dataset}", f"--checkpoint_path={tmp_path}", *TINY,
               f"--baseline={baseline}")
  assert result.returncode == 0, result.stderr[-3000:]
  line = result.stdout.strip().splitlines()[-1]
  assert line.startswith(f"Metatest accuracy of {baseline}: ")
  assert f"(95% CI over 20 tasks; 5-way 1-shot; 19 queries/class; {fitted})" in line
  record = _record(str(tmp_path), f"{baseline}-test-5way1shot-q19-t20-seed0")
  assert record["method"] == baseline and record["num_tasks"] == 20
  assert record["trained"] is None and len(record["task_accuracies"]) == 20


# ---- Other data than the run's, and portable tasks. ----

def test_a_model_tested_on_other_data_names_both_and_another_size_is_one_line(trained,
                                                                               tmp_path):
  run_dir, _ = trained
  other = fixtures.make_dataset(str(tmp_path / "other"), dataset_name="other", dim=16, seed=7)
  result = run(f"--checkpoint_path={run_dir}", "--evaluation_mode", f"--eval_data_path={other}",
               "--eval_dataset_name=other", "--num_test_tasks=20")
  assert result.returncode == 0, result.stderr[-3000:]
  line = result.stdout.strip().splitlines()[-1]
  assert line.endswith("meta-trained on tiny (train); tested on other (test))")
  (record,) = [json.load(open(path)) for path in glob.glob(os.path.join(run_dir, "results", "*"))
                if "other" in json.load(open(path))["summary"]]
  assert record["dataset_name"] == "other" and record["tested_on"]["data_path"] == other
  assert record["meta_trained_on"]["dataset_name"] == "tiny"
  assert record["config"]["data_config"]["dataset_name"] == "tiny"
  in_domain = run(f"--checkpoint_path={run_dir}", "--evaluation_mode", "--num_test_tasks=20")
  assert "tested on" not in in_domain.stdout.strip().splitlines()[-1]
  wide = fixtures.make_dataset(str(tmp_path / "wide"), dataset_name="wide", dim=24)
  error = _one_line_error(run(f"--checkpoint_path={run_dir}", "--evaluation_mode",
                              f"--eval_data_path={wide}", "--eval_dataset_name=wide"))
  assert "the embeddings of --eval_dataset_name=wide are 24-d" in error
  assert "trained on 16-d embeddings of tiny" in error


def _fingerprint_of_file(path, data_path):
  """The task fingerprint of a tasks file's tasks, computed here from its keys."""
  import config as config_lib  # pylint: disable=g-import-not-at-top
  import data  # pylint: disable=g-import-not-at-top
  import records  # pylint: disable=g-import-not-at-top
  import tasks  # pylint: disable=g-import-not-at-top
  provider = data.DataProvider("test", config_lib.DataConfig(data_path=data_path,
                                                             dataset_name="tiny"))
  given = tasks.read_tasks(path, provider.split_data, provider.path)
  fingerprint = records.TaskFingerprint(provider.keys_digest, *given.shape[1:])
  fingerprint.update(given.rows)
  return fingerprint.hexdigest(), given


def test_exported_tasks_are_the_fingerprinted_ones_and_evaluate_again_from_the_file(
    trained, dataset, tmp_path):
  run_dir, _ = trained
  exported = tmp_path / "tasks.jsonl"
  first = run(f"--checkpoint_path={run_dir}/model.ckpt-6", "--evaluation_mode",
              "--num_test_tasks=25", "--num_eval_examples_per_class=4",
              f"--export_tasks={exported}")
  assert first.returncode == 0, first.stderr[-3000:]
  name = "leo-test-5way1shot-q4-t25-seed0-step6"
  record = _record(run_dir, name)
  lines = [json.loads(line) for line in exported.read_text().splitlines()]
  assert len(lines) == 25 and len(lines[0]["classes"]) == 5
  assert [len(keys) for keys in lines[0]["support"] + lines[0]["query"]] == [1] * 5 + [4] * 5
  fingerprint, _ = _fingerprint_of_file(str(exported), dataset)
  assert fingerprint == record["task_fingerprint"]
  # Evaluated from the file (with flags of another shape and seed: the file's tasks win).
  again = run(f"--checkpoint_path={run_dir}/model.ckpt-6", "--evaluation_mode",
              f"--tasks={exported}", "--seed=3", "--num_classes=3")
  assert again.returncode == 0, again.stderr[-3000:]
  replayed = _record(run_dir, "leo-test-5way1shot-q4-t25-seed3-step6")
  assert replayed["task_fingerprint"] == record["task_fingerprint"]
  assert replayed["task_accuracies"] == record["task_accuracies"]
  baseline = run(f"--data_path={dataset}", f"--checkpoint_path={tmp_path}", *TINY,
                 "--baseline=nearest_centroid", f"--tasks={exported}")
  assert baseline.returncode == 0, baseline.stderr[-3000:]
  assert _record(str(tmp_path), "nearest_centroid-test-5way1shot-q4-t25-seed0")[
      "task_fingerprint"] == record["task_fingerprint"]


def test_a_tasks_file_naming_an_unknown_image_is_one_line(dataset, tmp_path):
  bad = tmp_path / "tasks.jsonl"
  bad.write_text(json.dumps({"classes": ["n00002000", "n00002001"],
                             "support": [["nothing"], ["x"]], "query": [["y"], ["z"]]}) + "\n")
  error = _one_line_error(run(f"--data_path={dataset}", f"--checkpoint_path={tmp_path}/b",
                              *TINY, "--baseline=nearest_centroid", f"--tasks={bad}"))
  assert f"--tasks={bad}: line 1: key 'nothing' is not in the split" in error
