# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""tools/tune.py: search space, run-folder records, flagfile, resumption, pruning, failures;
then end to end on fixture data with runner.py."""

import datetime
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading

from absl import flags
import optuna
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState
import pytest

import config
import fixtures
import records
import runfolder
import storage
from tools import tune

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
optuna.logging.set_verbosity(optuna.logging.WARNING)
# Optuna's heartbeat and stale-trial retry are experimental in 5.0; tools/tune.py uses them.
pytestmark = [pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
              pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")]


@pytest.fixture(autouse=True)
def poll_often(monkeypatch):
  """The tuner polls trials and locks every second, sized for runs of minutes; the stand-ins
  here finish in milliseconds."""
  monkeypatch.setattr(tune, "POLL_SECONDS", 0.02)
  monkeypatch.setattr(tune, "WAIT_SECONDS", 0.05)


def settings(tmp_path, **overrides):
  values = dict(study_dir=str(tmp_path / "study"), num_trials=2, num_steps_limit=4,
                checkpoint_steps=2)
  values.update(overrides)
  return tune.Settings(**values)


def quiet(line):
  del line  # The tests read the study, not the log.


# ---- The search space. ----

def test_search_space_is_the_six_readme_values_then_the_rates_and_latents():
  assert list(tune.SPACE) == [*config._TUNED, "finetuning_lr_init", "inner_lr_init",
                              "num_latents"]


def test_every_range_holds_the_readme_presets_and_the_flag_defaults():
  for name, param in tune.SPACE.items():
    values = [preset[name] for preset in config.PRESETS.values() if name in preset]
    values.append(config.FLAGS[name].default)
    assert all(param.low <= value <= param.high for value in values), (name, values)


def test_log_uniform_wherever_the_range_spans_decades():
  for param in tune.SEARCH_SPACE:
    assert param.log == (param.low > 0 and param.high / param.low >= 10), param.name
  assert tune.SPACE["num_latents"].integer and not tune.SPACE["dropout_rate"].log


def test_suggest_draws_in_the_ranges_and_replays_an_enqueued_value():
  study = optuna.create_study(direction="maximize")
  study.enqueue_trial({"outer_lr": 1e-3})
  trial = study.ask()
  values = tune.suggest(trial, list(tune.SPACE))
  assert values["outer_lr"] == 1e-3
  assert trial.distributions["outer_lr"] == FloatDistribution(1e-5, 3e-3, log=True)
  assert trial.distributions["dropout_rate"] == FloatDistribution(0.0, 0.7)
  assert trial.distributions["num_latents"] == IntDistribution(8, 128, log=True)
  assert isinstance(values["num_latents"], int)
  for name, value in values.items():
    assert tune.SPACE[name].low <= value <= tune.SPACE[name].high


# ---- Run-folder records. ----

def test_reported_values_are_the_best_validation_up_to_each_step():
  records = [{"step": 0, "accuracy": 0.2}, {"step": 3, "accuracy": 0.5},
             {"step": 6, "accuracy": 0.4}]
  assert tune.running_best(records) == [(0, 0.2), (3, 0.5), (6, 0.5)]


def test_error_line_is_the_runners_error_else_its_last_line():
  assert tune.error_line("I... Step: 0\nrunner.py: error: --x=1: expected y\n") == (
      "runner.py: error: --x=1: expected y")
  assert tune.error_line("Traceback ...\n  File x\nValueError: NaN\n\n") == "ValueError: NaN"


# ---- Flags and the flagfile. ----

def test_runner_args_pass_through_with_paths_made_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert tune.check_runner_args(["--data_path=emb", "--num_classes=5", "--train_on_val"],
                                ["outer_lr"]) == [
      f"--data_path={tmp_path}/emb", "--num_classes=5", "--train_on_val"]
  assert tune.check_runner_args(["--num_latents=8"], ["outer_lr"]) == ["--num_latents=8"]


@pytest.mark.parametrize("arg, message", [
    ("--checkpoint_path=/x", "own run folder under --study_dir"),
    ("--noevaluate_after_training", "never touches the test split"),
    ("--seed=3", "give it to the tuner itself"),
    ("--num_steps_limit=9", "give it to the tuner itself"),
    ("--num_latents=8", "searched by the tuner: drop it, or leave num_latents out of --params"),
    ("icons", "expected runner.py --flags only")])
def test_runner_args_the_tuner_sets_are_refused_in_one_line(arg, message):
  with pytest.raises(tune.TuneError, match=message):
    tune.check_runner_args([arg], list(tune.SPACE))


def test_the_flagfile_holds_the_trials_flags_and_floats_replay_exactly(tmp_path):
  values = {"outer_lr": 2.739071e-4 / 3, "num_latents": 17}
  flag_list = tune.trial_flags(settings(tmp_path, runner_args=("--dataset_name=icons",)),
                               values)
  assert flag_list == ["--dataset_name=icons", f"--outer_lr={values['outer_lr']!r}",
                       "--num_latents=17", "--num_steps_limit=4", "--checkpoint_steps=2",
                       "--seed=0"]
  path = str(tmp_path / "best_flags.txt")
  tune.write_flagfile(path, flag_list, ["Best of study 'leo'", "python runner.py ..."])
  assert open(path).read().splitlines()[:2] == ["# Best of study 'leo'",
                                                "# python runner.py ..."]
  expanded = flags.FlagValues().read_flags_from_files(["prog", f"--flagfile={path}"],
                                                      force_gnu=True)
  assert expanded == ["prog", *flag_list]
  assert float(expanded[2].split("=")[1]) == values["outer_lr"]


# ---- The study loop, with a fake objective. ----

class FakeObjective:
  """Records each call; returns accuracies in turn (an exception is raised instead)."""

  def __init__(self, *results):
    self.results, self.calls = list(results), []

  def __call__(self, trial, run_folder, flag_list):
    self.calls.append((trial.number, dict(trial.params), run_folder, list(flag_list)))
    result = self.results.pop(0)
    if isinstance(result, Exception):
      raise result
    trial.report(result, 0)
    trial.set_user_attr("best_step", 0)
    return result


def test_a_study_writes_its_storage_table_and_best_flagfile(tmp_path):
  objective = FakeObjective(0.4, 0.7)
  study = tune.tune(settings(tmp_path, params=("outer_lr", "kl_weight")), objective, quiet)
  assert [t.value for t in study.trials] == [0.4, 0.7]
  study_dir = tmp_path / "study"
  assert (study_dir / "study.db").exists()
  assert [call[2] for call in objective.calls] == [str(study_dir / "trials" / "0"),
                                                    str(study_dir / "trials" / "1")]
  table = (study_dir / "trials.md").read_text()
  assert "| trial | state | outer_lr | kl_weight | best val acc | step | time | note |" in table
  assert "| 1 | complete | " in table and " | 70.00% | 0 | " in table
  best = (study_dir / "best_flags.txt").read_text().splitlines()
  assert best[0].startswith("# Best of study 'leo' (2 trials): trial 1, validation accuracy "
                            "70.00% at step 0.")
  assert [line for line in best if not line.startswith("#")] == objective.calls[1][3]


def test_a_larger_num_trials_resumes_the_study_and_keeps_its_trials(tmp_path):
  first = tune.tune(settings(tmp_path, params=("outer_lr",)), FakeObjective(0.4, 0.7), quiet)
  before = [(t.params, t.value, t.datetime_complete) for t in first.trials]
  objective = FakeObjective(0.5)
  again = tune.tune(settings(tmp_path, params=("outer_lr",), num_trials=3), objective, quiet)
  assert [(t.params, t.value, t.datetime_complete) for t in again.trials[:2]] == before
  assert len(again.trials) == 3 and [c[0] for c in objective.calls] == [2]
  # The sampler is offset by the trials so far: trial 2 is not trial 0 drawn again.
  assert again.trials[2].params != again.trials[0].params


@pytest.mark.parametrize("kind", ["journal", "rdb"])
def test_a_shared_storage_holds_the_study_and_resumes_it(tmp_path, kind):
  storage = (str(tmp_path / "shared" / "journal.log") if kind == "journal"
             else f"sqlite:///{tmp_path / 'shared' / 'leo.db'}")
  os.makedirs(tmp_path / "shared")
  tune.tune(settings(tmp_path, params=("outer_lr",), storage=storage, num_trials=1),
            FakeObjective(0.4), quiet)
  study = tune.tune(settings(tmp_path, params=("outer_lr",), storage=storage),
                    FakeObjective(0.7), quiet)
  assert [t.value for t in study.trials] == [0.4, 0.7]
  assert not (tmp_path / "study" / "study.db").exists()
  reader = (optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
            if kind == "journal" else storage)
  assert len(optuna.load_study(study_name="leo", storage=reader).trials) == 2


def test_a_resumed_study_searched_differently_is_refused(tmp_path):
  tune.tune(settings(tmp_path, params=("outer_lr",)), FakeObjective(0.4, 0.7), quiet)
  with pytest.raises(tune.TuneError, match=r"study 'leo' was searched with num_steps_limit=4"
                                           r": resume it with the same flags"):
    tune.tune(settings(tmp_path, params=("outer_lr",), num_steps_limit=8), FakeObjective(),
              quiet)


def test_a_failed_trial_keeps_the_runners_error_and_the_study_goes_on(tmp_path):
  error = "runner.py: error: --outer_lr=3: training diverged"
  study = tune.tune(settings(tmp_path, params=("outer_lr",), num_trials=3),
                    FakeObjective(0.5, tune.TrialFailed(error), 0.6), quiet)
  assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL,
                                             TrialState.COMPLETE]
  assert study.trials[1].user_attrs["error"] == error
  assert "| 1 | fail | " in (tmp_path / "study" / "trials.md").read_text()
  assert error in (tmp_path / "study" / "trials.md").read_text()


@pytest.mark.parametrize("error, why", [
    ("runner.py: error: --num_classes=1: expected >= 2", "no trial has succeeded"),
    ("runner.py: error: Unknown command line flag 'nosuchflag' (--help lists the flags)",
     "so will every trial")])
def test_a_study_stops_at_a_failure_every_trial_would_repeat(tmp_path, error, why):
  first = [] if why == "no trial has succeeded" else [0.5]  # A usage error stops at once.
  objective = FakeObjective(*first, tune.TrialFailed(error), 0.6)
  with pytest.raises(tune.TuneError, match=f"trial {len(first)} failed and {why}: "):
    tune.tune(settings(tmp_path, params=("outer_lr",), num_trials=3), objective, quiet)
  assert len(objective.calls) == len(first) + 1
  assert f"| {len(first)} | fail | " in (tmp_path / "study" / "trials.md").read_text()


def _left_running_by_a_killed_tuner(s, **attrs):
  """A study whose trial 0 is RUNNING, as a tuner killed mid-trial leaves it."""
  study, storage = tune.open_study(s)
  trial = study.ask()
  storage.record_heartbeat(trial._trial_id)  # pylint: disable=protected-access
  tune.suggest(trial, s.params)
  folder = os.path.join(s.study_dir, "trials", "0")
  os.makedirs(folder)
  values = dict(run_folder=os.path.join("trials", "0"), host=tune.HOST, pid=-1,
                lock=folder + ".lock")
  values.update(attrs)
  for name, value in values.items():
    trial.set_user_attr(name, value)
  open(folder + ".lock", "w").close()
  return dict(trial.params), folder


def test_a_trial_left_running_by_a_killed_tuner_is_rerun_with_its_parameters_and_folder(
    tmp_path):
  s = settings(tmp_path, params=("outer_lr", "num_latents"))
  params, folder = _left_running_by_a_killed_tuner(s)
  objective = FakeObjective(0.5, 0.6)
  study = tune.tune(s, objective, quiet)
  trials = study.trials
  assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE,
                                       TrialState.COMPLETE]
  assert tune.retried(trials) == {0: 1}
  assert objective.calls[0][:3] == (1, params, folder)  # The same run folder: it resumes.
  assert objective.calls[1][2] == os.path.join(s.study_dir, "trials", "2")
  assert tune.counted(trials) == 2
  table = (tmp_path / "study" / "trials.md").read_text()
  assert "tuner gone; re-run as 1" in table and "re-run of 0" in table


def test_a_running_trial_whose_tuner_holds_its_lock_is_waited_for_then_rerun(tmp_path):
  s = settings(tmp_path, params=("outer_lr",), num_trials=1)
  params, folder = _left_running_by_a_killed_tuner(s)
  held, ended = threading.Event(), threading.Event()

  def other_tuner():  # Holds the lock for a while, then ends without telling the study.
    with storage.FileLock(folder + ".lock"):
      held.set()
      ended.wait(1.5)

  thread = threading.Thread(target=other_tuner)
  thread.start()
  held.wait()
  objective = FakeObjective(0.5)
  start = tune.time.time()
  study = tune.tune(s, objective, quiet)  # Trial 0 counts: it waits, then re-runs it.
  thread.join()
  assert tune.time.time() - start >= 1.4
  assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
  assert objective.calls == [(1, params, folder, objective.calls[0][3])]


def test_a_trial_of_another_machine_is_rerun_once_its_heartbeat_is_stale_seconds_old(
    tmp_path):
  s = settings(tmp_path, params=("outer_lr",), num_trials=1, stale_seconds=2)
  params, folder = _left_running_by_a_killed_tuner(s, host="elsewhere")
  objective = FakeObjective(0.5)
  study = tune.tune(s, objective, quiet)
  complete = study.trials[1].datetime_start
  # Optuna's heartbeat (the lock is free but belongs to another machine) says it is stale.
  assert (complete - study.trials[0].datetime_start).total_seconds() >= 2
  assert [c[:3] for c in objective.calls] == [(1, params, folder)]
  assert tune.retried(study.trials) == {0: 1}


# ---- run_trial with a stand-in for runner.py: reporting, pruning, failures. ----

# What runner.py's best.json holds besides the step and the accuracy (of step 0).
BEST_JSON = '''
    BEST_JSON_SECTIONS = {"checkpoint": "model.ckpt-0", "data_config": {},
                          "inner_model_config": {}, "outer_model_config": {}}
'''
FAKE_RUNNER = textwrap.dedent(BEST_JSON + '''
    """Writes validations of accuracy --kl_weight at steps 0..3, then best.json."""
    import json, os, sys, time
    flags = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if "=" in arg)
    accuracy, folder = float(flags["kl_weight"]), flags["checkpoint_path"]
    if accuracy == 1.5:
        os.kill(os.getpid(), 9)
    if accuracy > 1:
        sys.exit("I1201 training...\\nrunner.py: error: --kl_weight: loss diverged")
    for step in range(4):
        with open(os.path.join(folder, "validations.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, "accuracy": accuracy}) + "\\n")
        time.sleep(60 if accuracy < 0.4 and step == 1 else 0.05)  # Unless stopped.
    if accuracy > 0.9:  # Exits 0 without its records.
        sys.exit(0)
    os.makedirs(os.path.join(folder, "best_checkpoint"))
    with open(os.path.join(folder, "best_checkpoint", "best.json"), "w") as f:
        json.dump(dict(BEST_JSON_SECTIONS, step=0, accuracy=accuracy), f)
''')


def test_run_trial_reports_each_validation_prunes_and_records_failures(tmp_path):
  runner = tmp_path / "fake_runner.py"
  runner.write_text(FAKE_RUNNER)
  s = settings(tmp_path, params=("kl_weight",), num_trials=6, pruner_startup_trials=1)
  study, _ = tune.open_study(s)
  for kl_weight in (0.5, 0.3, 0.95, 2.0, 1.5, 0.6):
    study.enqueue_trial({"kl_weight": kl_weight})
  study = tune.tune(s, lambda *args: tune.run_trial(*args, runner=str(runner),
                                                   trained_only=False), quiet)
  complete, pruned, no_best, diverged, killed, better = study.trials
  assert complete.value == 0.5 and complete.intermediate_values == {
      0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5}
  # Below the median of the complete trials at step 1 (pruning skips step 0): stopped there.
  assert pruned.state == TrialState.PRUNED and max(pruned.intermediate_values) == 1
  assert (pruned.datetime_complete - pruned.datetime_start).total_seconds() < 30  # Stopped.
  assert not os.path.exists(tmp_path / "study" / pruned.user_attrs["run_folder"] /
                            "best_checkpoint")
  assert no_best.state == TrialState.FAIL
  assert no_best.user_attrs["error"].startswith("runner.py exited without writing ")
  assert diverged.state == TrialState.FAIL and diverged.user_attrs["error"] == (
      "runner.py: error: --kl_weight: loss diverged")
  assert killed.user_attrs["error"] == "runner.py was killed by SIGKILL"
  assert better.value == 0.6 and better.user_attrs["best_step"] == 0
  table = (tmp_path / "study" / "trials.md").read_text()
  assert "| 1 | pruned | 0.3 | 30.00% | 0 | " in table and "pruned at step 1" in table


TRAINED_RUNNER = textwrap.dedent(BEST_JSON + '''
    """Validates 0.9 untrained, then 0.6, 0.8, 0.7, and selects step 0 as its best."""
    import json, os, sys
    folder = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if "=" in arg)[
        "checkpoint_path"]
    with open(os.path.join(folder, "validations.jsonl"), "a") as f:
      for step, accuracy in ((0, 0.9), (10, 0.6), (20, 0.8), (30, 0.7)):
        f.write(json.dumps({"step": step, "accuracy": accuracy}) + "\\n")
    os.makedirs(os.path.join(folder, "best_checkpoint"))
    with open(os.path.join(folder, "best_checkpoint", "best.json"), "w") as f:
      json.dump(dict(BEST_JSON_SECTIONS, step=0, accuracy=0.9), f)
''')


# tools/tune.py as `python -m tools.tune` runs it, its trials run by the stand-in given first.
STAND_IN_TUNER = textwrap.dedent('''
    import functools, sys
    from absl import app
    from tools import tune
    tune.run_trial = functools.partial(tune.run_trial, runner=sys.argv.pop(1))
    tune.FLAGS = tune.define_flags()
    app.run(tune.main)
''')


@pytest.mark.slow
def test_two_tuners_started_at_once_on_a_fresh_study_both_succeed(tmp_path):
  runner = tmp_path / "trained_runner.py"
  runner.write_text(TRAINED_RUNNER)
  for attempt in range(10):  # Optuna's schema creation raced in some of ten without the lock.
    study_dir = tmp_path / f"study-{attempt}"
    tuners = [subprocess.Popen(
        [sys.executable, "-c", STAND_IN_TUNER, str(runner), f"--study_dir={study_dir}",
         "--num_trials=2", f"--sampler_seed={seed}", "--num_steps_limit=30",
         "--checkpoint_steps=10", "--params=kl_weight"], cwd=ROOT, env=ENV,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for seed in (0, 1)]
    errors = [tuner.communicate(timeout=300)[1] for tuner in tuners]
    assert [tuner.returncode for tuner in tuners] == [0, 0], (attempt, errors)
    trials = optuna.load_study(study_name="leo",
                               storage=f"sqlite:///{study_dir / 'study.db'}").trials
    assert len(trials) >= 2 and {t.state for t in trials} == {TrialState.COMPLETE}


@pytest.mark.parametrize("objective, value, step, reported", [
    ("trained", 0.8, 20, {10: 0.6, 20: 0.8, 30: 0.8}),
    ("best", 0.9, 0, {0: 0.9, 10: 0.9, 20: 0.9, 30: 0.9})])
def test_the_objective_leaves_out_the_untrained_step_unless_asked(tmp_path, objective,
                                                                  value, step, reported):
  runner = tmp_path / "trained_runner.py"
  runner.write_text(TRAINED_RUNNER)
  s = settings(tmp_path, params=("kl_weight",), num_trials=1, objective=objective)
  trained_only = objective == "trained"
  trial, = tune.tune(s, lambda *args: tune.run_trial(*args, runner=str(runner),
                                                     trained_only=trained_only),
                     quiet).trials
  assert (trial.value, trial.user_attrs["best_step"]) == (value, step)
  assert trial.intermediate_values == reported


def test_the_default_objective_follows_the_settings(tmp_path, monkeypatch):
  seen = []
  monkeypatch.setattr(tune, "run_trial", lambda trial, folder, flags, trained_only, test: (
      seen.append((trained_only, test)), 0.5)[1])
  for objective in ("trained", "best"):
    tune.tune(settings(tmp_path / objective, params=("kl_weight",), num_trials=1,
                       objective=objective), log=quiet)
  tune.tune(settings(tmp_path / "sweep", params=(), seeds=1), log=quiet)
  assert seen == [(True, False), (False, False), (True, True)]  # A sweep tests.


def test_the_table_row_of_each_state(tmp_path):
  start = datetime.datetime(2026, 12, 1, 20, 0, 0)
  distributions = {"outer_lr": FloatDistribution(1e-5, 3e-3, log=True),
                   "num_latents": IntDistribution(8, 128, log=True)}

  def trial(number, state, value, seconds, attrs, intermediate):
    return optuna.trial.FrozenTrial(
        number, state, value, start, start + datetime.timedelta(seconds=seconds),
        {"outer_lr": 2.5e-4, "num_latents": 64}, distributions, attrs, {}, intermediate,
        number)

  table = tune.trials_table([
      trial(0, TrialState.COMPLETE, 0.8123, 3725, {"best_step": 500}, {0: 0.7, 500: 0.8123}),
      trial(1, TrialState.PRUNED, None, 61, {}, {0: 0.71, 500: 0.75, 1000: 0.75}),
      trial(2, TrialState.FAIL, None, 5, {"error": "runner.py: error: a|b"}, {})],
      ["outer_lr", "num_latents"])
  assert table.splitlines() == [
      "| trial | state | outer_lr | num_latents | best val acc | step | time | note |",
      "|---|---|---|---|---|---|---|---|",
      "| 0 | complete | 0.00025 | 64 | 81.23% | 500 | 1h02m05s |  |",
      "| 1 | pruned | 0.00025 | 64 | 75.00% | 500 | 0h01m01s | pruned at step 1000 |",
      "| 2 | fail | 0.00025 | 64 |  |  | 0h00m05s | runner.py: error: a\\|b |"]


# ---- End to end: runner.py trials on fixture data. ----

# tests/test_runner.py's tiny LEO, without the flags the tuner sets or searches.
TINY = ["--dataset_name=tiny", "--inner_unroll_length=2", "--finetuning_unroll_length=2",
        "--num_val_examples_per_class=3", "--metatrain_batch_size=4",
        "--metavalid_batch_size=4", "--metatest_batch_size=10", "--num_test_tasks=20",
        "--log_steps=2"]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def _children(pid):
  with open(f"/proc/{pid}/task/{pid}/children") as f:
    return [int(child) for child in f.read().split()]


def _kill_mid_trial(command, folder):
  """Starts the tuner and SIGKILLs it while `folder`'s trial trains, after its first
  validation; the trial's runner.py is frozen first, so it cannot finish in between."""
  tuner = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
  deadline = tune.time.time() + 240
  while not records.read_validations(folder):
    assert tuner.poll() is None and tune.time.time() < deadline
    tune.time.sleep(0.05)
  runner, = _children(tuner.pid)
  os.kill(runner, signal.SIGSTOP)
  tuner.kill()
  tuner.wait()
  while os.path.exists(f"/proc/{runner}") and tune.time.time() < deadline:
    tune.time.sleep(0.05)  # Killed with the tuner (and reaped by init).
  return runner


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
  """2 trials; the same command with --num_trials=3, killed mid-trial; run again; then
  runner.py replays best_flags.txt."""
  root = tmp_path_factory.mktemp("tune")
  data = fixtures.make_dataset(str(root / "embeddings"), dim=16)
  study_dir = root / "study"
  command = [sys.executable, "-m", "tools.tune", f"--study_dir={study_dir}",
             "--num_steps_limit=4", "--checkpoint_steps=2", "--", f"--data_path={data}", *TINY]
  first = subprocess.run(command[:4] + ["--num_trials=2"] + command[4:], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=600)
  assert first.returncode == 0, first.stderr[-3000:]
  storage = f"sqlite:///{study_dir / 'study.db'}"
  before = optuna.load_study(study_name="leo", storage=storage).trials
  again = command[:4] + ["--num_trials=3"] + command[4:]
  killed_runner = _kill_mid_trial(again, str(study_dir / "trials" / "2"))
  resumed = subprocess.run(again, cwd=ROOT, env=ENV, capture_output=True, text=True,
                           timeout=600)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  replay_dir = root / "replay"
  replay = subprocess.run([sys.executable, os.path.join(ROOT, "runner.py"),
                           f"--flagfile={study_dir / 'best_flags.txt'}",
                           f"--checkpoint_path={replay_dir}"], cwd=str(root), env=ENV,
                          capture_output=True, text=True, timeout=600)
  return dict(study_dir=study_dir, first=first, before=before, killed_runner=killed_runner,
              resumed=resumed, replay=replay, replay_dir=replay_dir,
              trials=optuna.load_study(study_name="leo", storage=storage).trials)


@pytest.mark.slow
def test_two_trials_value_their_run_folders_records_and_never_touch_the_test_split(scenario):
  study_dir, before = scenario["study_dir"], scenario["before"]
  assert [t.state for t in before] == [TrialState.COMPLETE] * 2
  for trial in before:
    folder = str(study_dir / "trials" / str(trial.number))
    validations = records.read_validations(folder)
    assert [r["step"] for r in validations] == [0, 2, 4]
    trained = validations[1:]  # The default objective: meta-trained models only.
    best = max(trained, key=lambda r: r["accuracy"])
    assert trial.value == best["accuracy"] and trial.user_attrs["best_step"] == best["step"]
    assert trial.intermediate_values == dict(tune.running_best(trained))
    assert runfolder.BestCheckpoint(os.path.join(folder, runfolder.BEST_FOLDER)).info
    assert not [name for name in os.listdir(folder) if "test" in name]
    results = os.path.join(folder, "results")
    assert not os.path.isdir(results) or not [n for n in os.listdir(results) if "-test-" in n]
  table = (study_dir / "trials.md").read_text()
  assert "| 0 | complete | " in table and "| 1 | complete | " in scenario["first"].stdout


@pytest.mark.slow
def test_a_killed_tuner_resumes_its_study_and_a_larger_num_trials_adds_trials(scenario):
  trials, before = scenario["trials"], scenario["before"]
  assert not os.path.exists(f"/proc/{scenario['killed_runner']}")  # No orphan trains on.
  assert [(t.number, t.value, t.datetime_complete) for t in trials[:2]] == [
      (t.number, t.value, t.datetime_complete) for t in before]
  assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL,
                                                                   TrialState.COMPLETE]
  killed, rerun = trials[2], trials[3]
  assert tune.retried(trials) == {2: 3}
  assert rerun.params == killed.params
  assert rerun.user_attrs["run_folder"] == os.path.join("trials", "2")
  log = (scenario["study_dir"] / "trials" / "2.log").read_text()
  assert "Resuming from" in log.split("\n$ ")[-1]  # The re-run continued the killed one.
  assert tune.counted(trials) == 3
  assert "tuner gone; re-run as 3" in scenario["resumed"].stdout


@pytest.mark.slow
def test_the_best_flagfile_replays_the_best_trial(scenario):
  replay = scenario["replay"]
  assert replay.returncode == 0, replay.stderr[-3000:]
  best = max((t for t in scenario["trials"] if t.state == TrialState.COMPLETE),
             key=lambda t: t.value)
  accuracies = lambda folder: [r["accuracy"] for r in records.read_validations(folder)]
  trial_folder = str(scenario["study_dir"] / best.user_attrs["run_folder"])
  assert accuracies(str(scenario["replay_dir"])) == pytest.approx(accuracies(trial_folder),
                                                                  abs=1e-6)
  assert best.value in accuracies(trial_folder)


# ---- A tuner that cannot work says why in one line, with a non-zero exit. ----

def _tune_command(study_dir, *runner_args):
  return [sys.executable, "-m", "tools.tune", f"--study_dir={study_dir}", "--num_trials=3",
          "--num_steps_limit=4", "--checkpoint_steps=2", "--", *runner_args]


def test_a_study_dir_that_cannot_be_made_is_one_line():
  result = subprocess.run(_tune_command("/proc/leo", *TINY), cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)
  assert (result.returncode, result.stdout) == (2, "")
  assert result.stderr == "tools/tune.py: --study_dir=/proc/leo: No such file or directory\n"


def test_a_runner_flag_that_does_not_exist_stops_the_study_at_its_first_trial(tmp_path):
  result = subprocess.run(_tune_command(tmp_path / "study", *TINY, "--nosuchflag"), cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2 and result.stderr.count("\n") == 1
  assert result.stderr.startswith(
      "tools/tune.py: trial 0 failed and so will every trial: runner.py: error: Unknown "
      "command line flag 'nosuchflag' (--help lists the flags) (the flags after --? see ")
  trials = optuna.load_study(study_name="leo",
                             storage=f"sqlite:///{tmp_path / 'study' / 'study.db'}").trials
  assert [t.state for t in trials] == [TrialState.FAIL]


# ---- What the tuner says while it runs. ----

PROGRESS_RUNNER = textwrap.dedent(BEST_JSON + '''
    """Logs steps 0..4 of 4 to train.log as training.py does, validates 0.5 at steps 0, 2
    and 4, then writes best.json."""
    import json, os, sys, time
    folder = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if "=" in arg)[
        "checkpoint_path"]
    for step in range(5):
      with open(os.path.join(folder, "train.log"), "a") as f:
        f.write(f"I1201 20:00:00.0 training.py:419] Step: {step}/4 1.0 steps/s ETA 0h00m04s\\n")
      if step % 2 == 0:
        with open(os.path.join(folder, "validations.jsonl"), "a") as f:
          f.write(json.dumps({"step": step, "accuracy": 0.5}) + "\\n")
      time.sleep(0.12)
    os.makedirs(os.path.join(folder, "best_checkpoint"))
    with open(os.path.join(folder, "best_checkpoint", "best.json"), "w") as f:
      json.dump(dict(BEST_JSON_SECTIONS, step=0, accuracy=0.5), f)
''')


@pytest.mark.parametrize("sweep", [False, True])
def test_the_tuner_says_each_trials_place_log_progress_and_the_time_left(tmp_path, sweep,
                                                                        monkeypatch):
  monkeypatch.setattr(tune, "PROGRESS_SECONDS", 0.05)
  runner = tmp_path / "progress_runner.py"
  runner.write_text(PROGRESS_RUNNER)
  s = (settings(tmp_path, params=(), seeds=2, num_trials=2) if sweep
       else settings(tmp_path, params=("kl_weight",), num_trials=2))
  lines = []
  study = tune.tune(s, lambda *args: tune.run_trial(*args, runner=str(runner),
                                                   trained_only=False), lines.append)
  kind = "seed" if sweep else "trial"
  for number in (0, 1):
    label = f"{kind} {number + 1}/2 (number {number}): "
    said = [line[len(label):] for line in lines if line.startswith(label)]
    start, *progress, end = said
    params, log = start.split("; log: ")
    value = study.trials[number].params["seed" if sweep else "kl_weight"]
    assert params == (f"seed={number}" if sweep else f"kl_weight={value:.3g}")
    assert log == os.path.join(s.study_dir, "trials", f"{number}.log") and os.path.exists(log)
    # Every 0.05 s of a 0.6 s trial: its step of 4 from train.log, its latest validation.
    assert progress and all(line.startswith(("starting", "step ")) for line in progress)
    assert any(line.startswith(("step 3/4, latest validation accuracy 50.00% at step 2",
                                "step 4/4, latest validation accuracy 50.00% at step 4"))
               for line in progress)
    outcome, left = end.split("; ")
    assert outcome.startswith("best validation accuracy 50.00% at step 0, in 0h00m0")
    # The one trial left takes this tuner's mean trial time, under two seconds.
    assert re.fullmatch("no trial left to start" if number else
                        f"1 of 2 {kind}s left, about 0h00m0[01]s more", left), left


def test_the_time_left_is_this_tuners_share_of_the_trials_left_times_its_mean_trial():
  assert tune.time_left(3, 0, [60.0, 120.0]) == 3 * 90.0
  assert tune.time_left(3, 1, [60.0, 120.0]) == 2 * 90.0  # Two tuners: 2 of 3 fall to this.
  assert tune.time_left(4, 3, [30.0]) == 30.0
