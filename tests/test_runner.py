"""runner.py end to end on tiny data: train, checkpoint, resume, survive SIGKILL, evaluate."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from tensorflow.core.util import event_pb2

import fixtures

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "runner.py")
# A tiny but complete LEO: every loop runs, every file is written.
TINY = ["--dataset_name=tiny", "--num_latents=8", "--inner_unroll_length=2",
        "--finetuning_unroll_length=2", "--num_val_examples_per_class=3",
        "--metatrain_batch_size=4", "--metavalid_batch_size=4", "--metatest_batch_size=10",
        "--num_test_tasks=20", "--num_steps_limit=6", "--checkpoint_steps=3", "--log_steps=2",
        "--outer_lr=1e-3"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  return fixtures.make_dataset(str(tmp_path_factory.mktemp("embeddings")), dim=16)


def run(*flags, timeout=240):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, RUNNER, *flags], capture_output=True, text=True,
                        timeout=timeout, env=env, cwd=ROOT)


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
def trained(dataset, tmp_path_factory):
  """One short training run shared by the tests that only read its outputs."""
  run_dir = str(tmp_path_factory.mktemp("run"))
  result = run(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY)
  assert result.returncode == 0, result.stderr[-3000:]
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
          "metavalid_valid_accuracy", "steps_per_second", "nan_guard_count",
          "gradient/leo/decoder/w:0"} <= scalar_tags(run_dir)
  assert "Step: 0 meta-valid accuracy" in result.stderr
  assert "Step: 6/6" in result.stderr and "steps/s" in result.stderr
  # The best checkpoint was tested automatically after training.
  assert "Metatest accuracy:" in result.stdout
  assert not glob.glob(os.path.join(run_dir, "**", "*.tmp*"), recursive=True)


def test_evaluation_reports_a_confidence_interval_and_writes_json(trained):
  run_dir, _ = trained
  before = listing(run_dir)
  result = run(f"--checkpoint_path={run_dir}/best_checkpoint", "--evaluation_mode",
               "--num_test_tasks=30")
  assert result.returncode == 0, result.stderr[-3000:]
  line = result.stdout.strip().splitlines()[-1]
  assert line.startswith("Metatest accuracy: ") and "% ± " in line
  assert ("(95% CI over 30 tasks; 5-way 1-shot; 19 queries/class; meta-trained on train)"
          in line)
  results = json.load(open(os.path.join(run_dir, "best_checkpoint", "test_accuracy.json")))
  assert results["num_tasks"] == 30 and results["summary"] == line
  assert 0 <= results["accuracy"] <= 1 and results["ci95"] > 0
  after = listing(run_dir)
  changed = {p for p in after if before.get(p) != after[p]}
  assert changed <= {os.path.join(run_dir, "best_checkpoint", "test_accuracy.json"),
                     os.path.join(run_dir, "best_checkpoint")}


def test_evaluation_of_a_run_folder_uses_its_best_checkpoint_and_is_deterministic(trained):
  run_dir, _ = trained
  first = run(f"--checkpoint_path={run_dir}", "--evaluation_mode", "--num_test_tasks=20")
  second = run(f"--checkpoint_path={run_dir}", "--evaluation_mode", "--num_test_tasks=20",
               "--checkpoint_steps=0")
  assert first.returncode == 0 and second.returncode == 0, first.stderr[-2000:]
  assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1]


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


def test_a_checkpoint_for_another_task_shape_is_refused(trained, dataset):
  run_dir, _ = trained
  error = _one_line_error(run(f"--checkpoint_path={run_dir}", "--evaluation_mode",
                              "--num_classes=4"))
  assert "--num_classes=4 contradicts the model saved" in error and "num_classes=5" in error
  error = _one_line_error(run(f"--data_path={dataset}", f"--checkpoint_path={run_dir}", *TINY,
                              "--num_tr_examples_per_class=2"))
  assert "--num_tr_examples_per_class=2 contradicts the model saved" in error


@pytest.mark.parametrize("baseline", ["nearest_centroid", "logistic_regression"])
def test_baselines_report_on_the_test_protocol(dataset, tmp_path, baseline):
  result = run(f"--data_path={dataset}", f"--checkpoint_path={tmp_path}", *TINY,
               f"--baseline={baseline}")
  assert result.returncode == 0, result.stderr[-3000:]
  line = result.stdout.strip().splitlines()[-1]
  assert line.startswith(f"Metatest accuracy of {baseline}: ")
  assert ("(95% CI over 20 tasks; 5-way 1-shot; 19 queries/class; fitted on each task's "
          "support set)") in line
  results = json.load(open(tmp_path / f"test_accuracy_{baseline}.json"))
  assert results["method"] == baseline and results["num_tasks"] == 20
