# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Hyperparameter search for LEO on validation: the search the original authors ran.

Each trial is one `runner.py` training in a run folder of its own, `<study_dir>/trials/<n>`,
with `--evaluate_after_training=false`: the test split is never touched. Its value is the
best validation accuracy of its result records (`validations.jsonl`) after step 0 (with
`--objective=best`, step 0 included: `best_checkpoint/best.json`); every validation (polled
while it trains) is reported to Optuna, and a trial
whose best validation so far is below the median of the finished trials at the same step is
stopped (median pruning). Parameters are proposed by a seeded TPE sampler.

One machine (storage: the SQLite file `<study_dir>/study.db`):

    python -m tools.tune --study_dir=/tmp/leo-tune --num_trials=40 \\
        --num_steps_limit=3000 --checkpoint_steps=500 -- --dataset_name=icons

Every flag after `--` goes to every trial's runner.py unchanged (dataset, data_path, N-way,
K-shot, batch sizes, `--flagfile=base.txt`, `--preset=...`; the searched values win over a
preset). Run the same command again to resume: finished trials are kept, a trial a killed
tuner left running is re-run with the same parameters in the same run folder (runner.py
resumes it from its latest checkpoint), and a larger `--num_trials` adds trials. Several
tuner processes on one machine may share the study (run the same command in each).

Several machines share one storage, each running the same command with `--storage`:

    --storage=postgresql://user:password@db-host/leo    # an Optuna RDB URL (SQLAlchemy)
    --storage=/nfs/leo-tune/journal.log                 # a journal file (any path without
                                                        # "://"), for a shared NFS folder

and, so that their first random trials differ, its own `--sampler_seed`. Trials whose tuner
is gone are failed and re-run with the same parameters in the same run folder (resuming from
its checkpoints if `--study_dir` is shared, else starting over) by Optuna's own machinery:
an RDB storage's heartbeat (a trial is stale after `--stale_seconds` without one) and its
RetryHeartbeatStaleTrialCallback. leo adds one case: a trial of this machine whose run-folder
lock is free (its tuner was killed) is re-run at once. Optuna's journal storage has no
heartbeat, so on a journal file only that case is detected. A tuner whose study is done
waits for the trials other tuners are running, so the last one standing re-runs theirs.

A seed sweep is a study too: `--seeds=10` trains the configuration of the flags after `--`
(say `--flagfile=<study_dir>/best_flags.txt`) once for each seed 0..9, tests it, and the
run folders `<study_dir>/trials/<n>` feed `python -m tools.study.compare <study_dir>/trials`;
every tuner sharing the storage takes the next seed nobody has taken.

Outputs, rewritten after every trial: `<study_dir>/trials.md` (the table this prints),
`<study_dir>/best_flags.txt` (the best trial's flags, replayable with
`python runner.py --flagfile=<study_dir>/best_flags.txt --checkpoint_path=...`), and with
`--importance`, Optuna's ranking of the parameters (fANOVA over the complete trials).
"""

import contextlib
import ctypes
import dataclasses
import datetime
import functools
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence
import warnings

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState
import sqlalchemy.exc

# Optuna 5.0 (pinned) marks its heartbeat and stale-trial retry experimental; leo relies on
# them, and records the heartbeat itself around its ask/tell loop (see `heartbeat`).
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with")

import records
import runfolder
import storage as file_storage  # `storage` here is the study's (Optuna's).
import utils

RUNNER = os.path.join(utils.REPOSITORY, "runner.py")
STORAGE_FILE = "study.db"
SETUP_LOCK_FILE = "setup.lock"  # Held while a tuner creates or opens the study.
TABLE_FILE = "trials.md"
FLAGFILE = "best_flags.txt"
TRIALS_FOLDER = "trials"
POLL_SECONDS = 1.0
PROGRESS_SECONDS = 30.0  # Between the lines saying how far a running trial is.
# training.py's log lines of a step ("Step: 1200/3000 ..."), in a trial's train.log.
STEP_LINE = re.compile(rb"\bStep: (\d+)")
WAIT_SECONDS = 2.0  # Between looks at the trials other tuners run, once this one is done.
SETUP_SECONDS = 60.0  # The longest a tuner waits for another to finish creating the study.
HEARTBEATS_PER_GRACE = 5  # A tuner may miss a few (a busy server) before its trial is stale.
KILL_GRACE_SECONDS = 30.0
# A tuner silent this long is gone: --stale_seconds may not exceed it (the heartbeat's
# interval is a fraction of it, and must be a number of seconds a clock can wait).
MAX_STALE_SECONDS = 7 * 24 * 3600.0
# The TPE sampler's seed is `--sampler_seed * SAMPLER_SEED_SPACING + trials so far`, which
# numpy takes below 2**32: the largest --sampler_seed leaves room for a million trials.
SAMPLER_SEED_SPACING = 1_000_003
MAX_SAMPLER_SEED = 2**32 // SAMPLER_SEED_SPACING - 1
ERROR_PREFIX = "runner.py: error: "
# runner.py's line for a flag it does not have (utils.run_command).
USAGE_PREFIX = ERROR_PREFIX + "Unknown command line flag "
HOST = socket.gethostname()  # A trial of this machine is stale once its lock is free.
RETRY = RetryHeartbeatStaleTrialCallback()  # Same parameters; the user attrs (run folder) too.
# A storage that fails: SQLAlchemy's errors (bad URL, server down, refused password), Optuna's
# wrapping of them, and a missing database driver.
STORAGE_ERRORS = (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError,
                  ImportError)


class TuneError(utils.LeoError):
  """A tuner setting that cannot work, named with what to do instead."""


class TrialFailed(Exception):
  """A trial's runner.py failed; the message is its one-line error."""


@dataclasses.dataclass(frozen=True)
class Param:
  """One searched runner.py flag: a float in [low, high] (or an int if `integer`)."""
  name: str
  low: float
  high: float
  log: bool
  integer: bool = False


# The six tuned values of the original README, then the initial rates and the latent size.
# The ranges contain config.PRESETS' values and the flag defaults; log-uniform where the
# range spans decades.
SEARCH_SPACE = (
    Param("outer_lr", 1e-5, 3e-3, log=True),
    Param("l2_penalty_weight", 1e-11, 1e-6, log=True),
    Param("orthogonality_penalty_weight", 1e-4, 1.0, log=True),
    Param("dropout_rate", 0.0, 0.7, log=False),
    Param("kl_weight", 1e-4, 10.0, log=True),
    Param("encoder_penalty_weight", 1e-10, 1e-3, log=True),
    Param("finetuning_lr_init", 1e-4, 10.0, log=True),
    Param("inner_lr_init", 1e-2, 10.0, log=True),
    Param("num_latents", 8, 128, log=True, integer=True),
)
SPACE = {param.name: param for param in SEARCH_SPACE}
# runner.py flags the tuner sets itself, with what to do instead.
OWN_FLAGS = {
    "checkpoint_path": "each trial gets its own run folder under --study_dir",
    "evaluate_after_training": "the tuner never touches the test split",
    "evaluation_mode": "the tuner trains",
    "eval_split": "the tuner trains",
    "baseline": "the tuner trains LEO",
    "num_steps_limit": "give it to the tuner itself, before --",
    "checkpoint_steps": "give it to the tuner itself, before --",
    "seed": "give it to the tuner itself, before --",
}
PATH_FLAGS = ("data_path", "flagfile")  # Made absolute, so best_flags.txt replays anywhere.


@dataclasses.dataclass(frozen=True)
class Settings:
  """What the tuner was asked for (the flags of this module)."""
  study_dir: str
  num_trials: int
  num_steps_limit: int
  checkpoint_steps: int
  runner_args: Sequence[str] = ()  # The flags after `--`, for every trial's runner.py.
  params: Sequence[str] = tuple(SPACE)
  seed: int = 0
  storage: Optional[str] = None  # None: `<study_dir>/study.db`.
  study_name: str = "leo"
  sampler_seed: int = 0
  pruner_startup_trials: int = 5
  stale_seconds: float = 300.0
  importance: bool = False
  objective: str = "trained"  # OBJECTIVES
  seeds: int = 0  # > 0: a seed sweep of `seeds` trials, one per seed, nothing searched.


OBJECTIVES = {
    "trained": "the best validation after step 0 (of a meta-trained model)",
    "best": "the best validation, step 0 included (best_checkpoint/best.json)",
}


# ---- The search space and the trials' flags. ----

def suggest(trial: optuna.Trial, names: Sequence[str]) -> Dict[str, float]:
  """The trial's values of the searched flags `names` (drawn, or fixed if enqueued)."""
  values = {}
  for name in names:
    param = SPACE[name]
    if param.integer:
      values[name] = trial.suggest_int(name, int(param.low), int(param.high), log=param.log)
    else:
      values[name] = trial.suggest_float(name, param.low, param.high, log=param.log)
  return values


def flag_name(arg: str) -> str:
  """`--name=value`, `--name` or `--noname` -> `name` (`noname` for the last)."""
  return arg.lstrip("-").split("=", 1)[0]


def check_runner_args(args: Sequence[str], searched: Sequence[str]) -> List[str]:
  """The flags after `--`, checked against the ones the tuner sets, path flags absolute."""
  checked = []
  for arg in args:
    if not arg.startswith("--"):
      raise TuneError(f"tools/tune.py: {arg!r} after --: expected runner.py --flags only")
    name = flag_name(arg)
    bare = name[2:] if name.startswith("no") and name[2:] in OWN_FLAGS else name
    if bare in OWN_FLAGS:
      raise TuneError(f"tools/tune.py: {arg} after --: {OWN_FLAGS[bare]}")
    if name in searched:
      raise TuneError(f"tools/tune.py: {arg} after -- is searched by the tuner: drop it, or "
                      f"leave {name} out of --params")
    if name in PATH_FLAGS and "=" in arg:
      arg = f"--{name}={os.path.abspath(os.path.expanduser(arg.split('=', 1)[1]))}"
    checked.append(arg)
  return checked


def trial_flags(settings: Settings, values: Dict[str, float]) -> List[str]:
  """runner.py's flags for a trial with `values`, except its run folder."""
  seed = [] if "seed" in values else [f"--seed={settings.seed}"]
  return (list(settings.runner_args) + [f"--{name}={values[name]!r}" for name in values]
          + [f"--num_steps_limit={settings.num_steps_limit}",
             f"--checkpoint_steps={settings.checkpoint_steps}", *seed])


def write_flagfile(path: str, flags: Sequence[str], comments: Sequence[str]):
  """An absl flagfile: `# comment` lines, then one flag per line."""
  file_storage.atomic_write_text(path, "".join(f"# {line}\n" for line in comments)
                                 + "".join(f"{flag}\n" for flag in flags))


# ---- A run folder's records. ----

def running_best(validations: Sequence[dict]) -> List[tuple]:
  """(step, best accuracy up to that step) after each validation: what pruning compares."""
  best, result = -math.inf, []
  for record in validations:
    best = max(best, float(record["accuracy"]))
    result.append((int(record["step"]), best))
  return result


def error_line(output: str) -> str:
  """The one-line reason a runner.py failed: its error line, absl's usage error, else its
  last line."""
  lines = [line.strip() for line in output.splitlines() if line.strip()]
  errors = [line for line in lines if line.startswith((ERROR_PREFIX, USAGE_PREFIX))]
  return (errors or lines or ["no output"])[-1]


# ---- Running one trial. ----

def _die_with_parent():
  """In the child: the kernel kills it when the tuner dies, so no orphan trains on."""
  ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG.


def run_trial(trial: optuna.Trial, run_folder: str, flags: Sequence[str],
              runner: str = RUNNER, trained_only: bool = True, test: bool = False) -> float:
  """Trains `runner` (runner.py) with `flags` in `run_folder`; its best validation accuracy.

  With `trained_only`, the best of the validations after step 0: a configuration whose
  untrained model validates best would otherwise win a study by never learning anything
  (its meta-training only erodes a good start), and what is tuned is meta-learning. With
  `test` (a seed sweep), the runner then tests its best checkpoint.

  Raises:
    optuna.TrialPruned: pruned (the runner was stopped).
    TrialFailed: the runner exited non-zero, or left no best.json.
  """
  command = [sys.executable, runner, *flags, f"--checkpoint_path={run_folder}",
             f"--evaluate_after_training={str(test).lower()}"]
  reported = set()

  def counted_validations():
    return [record for record in records.read_validations(run_folder)
            if not trained_only or record["step"] > 0]

  with file_storage.appending(f"{run_folder}.log") as log:
    log.write(f"$ {' '.join(command)}\n".encode("utf-8"))
    log.flush()
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")),
        preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    try:
      while True:
        finished = process.poll() is not None  # Read the records after the exit is seen.
        for step, best in running_best(counted_validations()):
          if step not in reported:
            reported.add(step)
            trial.report(best, step)
            if trial.should_prune():
              raise optuna.TrialPruned(f"pruned at step {step}")
        if finished:
          break
        time.sleep(POLL_SECONDS)
    finally:
      _stop(process)
  if process.returncode < 0:  # Killed from outside (out of memory, a user).
    raise TrialFailed(f"runner.py was killed by {signal.Signals(-process.returncode).name}")
  if process.returncode != 0:
    raise TrialFailed(error_line(file_storage.read_bytes(f"{run_folder}.log", None).decode(
        "utf-8", "replace")))
  best_checkpoint = runfolder.BestCheckpoint(os.path.join(run_folder, runfolder.BEST_FOLDER))
  try:
    best = best_checkpoint.info
  except file_storage.StorageError as e:
    raise TrialFailed(str(e)) from None
  if best is None:
    raise TrialFailed(f"runner.py exited without writing "
                      f"{os.path.join(best_checkpoint.folder, best_checkpoint.INFO)}")
  if trained_only:
    trained = counted_validations()
    if not trained:
      raise TrialFailed(f"runner.py validated nothing after step 0 in {run_folder}: "
                        "train longer than --checkpoint_steps, or use --objective=best")
    best = max(trained, key=lambda record: float(record["accuracy"]))  # The first of ties.
  trial.set_user_attr("best_step", int(best["step"]))
  return float(best["accuracy"])


def _stop(process: subprocess.Popen):
  if process.poll() is None:
    process.terminate()
    try:
      process.wait(KILL_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


# ---- Trials left running by a killed tuner. ----


def gone_from_this_machine(trial: optuna.trial.FrozenTrial) -> bool:
  """Whether a RUNNING trial of this machine has lost its tuner: its lock is free."""
  lock = trial.user_attrs.get("lock")
  return (trial.user_attrs.get("host") == HOST and lock is not None and os.path.exists(lock)
          and not file_storage.is_locked(lock))


def retry_stale_trials(study: optuna.Study, storage, study_name: str):
  """Fails each RUNNING trial whose tuner is gone and enqueues its re-run (same parameters,
  same run folder): Optuna's heartbeat check, then the trials of this machine whose lock is
  free, failed and retried the way Optuna fails and retries a stale one."""
  optuna.storages.fail_stale_trials(study)  # Nothing without a heartbeat (a journal file).
  gone = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
          if gone_from_this_machine(trial)]
  if not gone:
    return
  study_id = storage.get_study_id_from_name(study_name)
  for trial in gone:
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    try:
      if storage.set_trial_state_values(trial_id, TrialState.FAIL):
        RETRY(study, storage.get_trial(trial_id))
    except optuna.exceptions.UpdateFinishedTrialError:
      pass  # Another tuner failed it first.


def retried(trials: Sequence[optuna.trial.FrozenTrial]) -> Dict[int, int]:
  """{a trial whose tuner was gone: the trial that re-ran it}."""
  return {RETRY.retry_history(trial)[-1]: trial.number for trial in trials
          if RETRY.retry_history(trial)}


def counted(trials: Sequence[optuna.trial.FrozenTrial]) -> int:
  """Trials that count towards --num_trials: all but those re-run as others."""
  stale = retried(trials)
  return sum(1 for trial in trials if trial.number not in stale)


def heartbeat_interval(storage) -> Optional[int]:
  """Seconds between a trial's heartbeats in `storage`; None if it has none (a journal)."""
  return getattr(storage, "get_heartbeat_interval", lambda: None)()


@contextlib.contextmanager
def repeating(seconds: float, action: Callable[[], None]):
  """Calls `action` every `seconds`, in a thread of its own, until the block ends."""
  stop = threading.Event()

  def loop():
    while not stop.wait(seconds):
      action()

  thread = threading.Thread(target=loop, daemon=True)
  thread.start()
  try:
    yield
  finally:
    stop.set()
    thread.join()


@contextlib.contextmanager
def heartbeat(storage, trial_id: int):
  """Records the trial's heartbeat in an RDB storage now and every heartbeat interval until
  the block ends: what Optuna's stale-trial check reads. A beat the server misses (it is
  restarting) is tried again at the next one."""
  interval = heartbeat_interval(storage)
  if interval is None:
    yield
    return
  storage.record_heartbeat(trial_id)

  def beat():
    with contextlib.suppress(*STORAGE_ERRORS):
      storage.record_heartbeat(trial_id)

  with repeating(interval, beat):
    yield


# ---- The study. ----

def storage_name(settings: Settings) -> str:
  """The storage as --storage names it, its password hidden."""
  if settings.storage is None:
    return os.path.join(settings.study_dir, STORAGE_FILE)
  if "://" not in settings.storage:
    return settings.storage
  try:
    return sqlalchemy.engine.make_url(settings.storage).render_as_string(hide_password=True)
  except sqlalchemy.exc.ArgumentError:
    return settings.storage


def storage_error(settings: Settings, error: Exception) -> TuneError:
  """The one line for a storage that failed: the first reason (Optuna wraps SQLAlchemy's
  errors and the driver's ImportError in its own, vaguer ones)."""
  cause = error
  while cause.__cause__ is not None:
    cause = cause.__cause__
  reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
  if isinstance(cause, ImportError):
    reason += " (the storage's database driver: pip install -r requirements-tools.txt)"
  return TuneError(f"tools/tune.py: --storage={storage_name(settings)}: {reason}")


def check_journal(path: str):
  """Refuses a journal file with a line that is torn (a tuner killed while appending it) or
  not a JSON object: Optuna would fail on it, or append the next line to a torn one."""
  if not os.path.exists(path):
    return
  lines = file_storage.read_bytes(path, None).split(b"\n")
  for number, line in enumerate(lines, start=1):
    where = f"tools/tune.py: --storage={path}: line {number}"
    if number == len(lines) and line:
      raise TuneError(f"{where} is torn (it has no end of line: a tuner was killed while "
                      "writing it): remove that line to resume the study")
    if number < len(lines):
      file_storage.parse_json(line, where, "a line of the study's journal: remove it to "
                              "resume the study", dict)


def make_storage(settings: Settings):
  """The default SQLite file, an RDB URL (with Optuna's heartbeat), or a journal file."""
  url = settings.storage or f"sqlite:///{os.path.join(settings.study_dir, STORAGE_FILE)}"
  if "://" not in url:
    check_journal(url)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
  # SQLite waits for another process's write instead of failing at once; a server's
  # connections are tested before use, so a restarted server is reconnected to.
  engine = ({"connect_args": {"timeout": 60}} if url.startswith("sqlite")
            else {"pool_pre_ping": True})
  grace = max(1, math.ceil(settings.stale_seconds))
  return optuna.storages.RDBStorage(
      url, engine_kwargs=engine, heartbeat_interval=max(1, grace // HEARTBEATS_PER_GRACE),
      grace_period=grace, heartbeat_stale_trial_callback=RETRY)


def search_record(settings: Settings) -> dict:
  """What must be the same for every tuner of a study (paths may differ by machine)."""
  return {"params": list(settings.params), "objective": settings.objective,
          "num_steps_limit": settings.num_steps_limit,
          "checkpoint_steps": settings.checkpoint_steps, "seed": settings.seed,
          "seeds": settings.seeds,
          "runner_args": [arg if flag_name(arg) not in PATH_FLAGS else f"--{flag_name(arg)}"
                          for arg in settings.runner_args]}


def create_or_load(settings: Settings, storage) -> optuna.Study:
  """The study; its creator enqueues a sweep's seeds, then records how it is searched, and
  a tuner that loads it waits for that record (another tuner may be creating it now)."""
  try:
    study = optuna.create_study(storage=storage, study_name=settings.study_name,
                                direction="maximize")
  except optuna.exceptions.DuplicatedStudyError:
    study = optuna.load_study(study_name=settings.study_name, storage=storage)
    deadline = time.time() + SETUP_SECONDS
    while "search" not in study.user_attrs:
      if time.time() > deadline:
        raise TuneError(f"tools/tune.py: study {settings.study_name!r} in "
                        f"{storage_name(settings)} was never set up (its creator stopped): "
                        "use another --study_name") from None
      time.sleep(POLL_SECONDS)
  else:
    for seed in range(settings.seeds):
      study.enqueue_trial({"seed": seed})
    study.set_user_attr("search", search_record(settings))
  return study


def open_study(settings: Settings):
  """Creates or resumes the study (a resumed one must have been searched the same way);
  returns it and its storage. A `--study_dir` that holds files but no `trials/` folder is not
  a study: it is refused, so that no file of the user's is overwritten."""
  trials = os.path.join(settings.study_dir, TRIALS_FOLDER)
  others = sorted(os.listdir(settings.study_dir)) if os.path.isdir(settings.study_dir) else []
  if others and not os.path.isdir(trials):
    raise TuneError(f"tools/tune.py: --study_dir={settings.study_dir}: holds "
                    f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''} but no "
                    f"{TRIALS_FOLDER}/ folder, so it is not a leo study: choose a new or empty "
                    "folder")
  try:
    file_storage.makedirs(trials, settings.study_dir)
  except OSError as e:
    raise TuneError(f"tools/tune.py: --study_dir={settings.study_dir}: "
                    f"{e.strerror or e}") from None
  try:
    # Optuna creates a storage's tables and a study unguarded against another process doing
    # the same at once: the tuners of this study folder take turns.
    with file_storage.FileLock(os.path.join(settings.study_dir, SETUP_LOCK_FILE), wait=True):
      storage = make_storage(settings)
      study = create_or_load(settings, storage)
  except (*STORAGE_ERRORS, OSError) as e:
    raise storage_error(settings, e) from None
  record, saved = search_record(settings), study.user_attrs["search"]
  if saved != record:
    different = sorted(k for k in record if record[k] != saved.get(k))
    raise TuneError(f"tools/tune.py: study {settings.study_name!r} was searched with "
                    + "; ".join(f"{k}={saved.get(k)}" for k in different)
                    + ": resume it with the same flags, or use another --study_name")
  # Offset by the trials so far, so that a resumed tuner does not redraw its first random
  # trials; spaced by --sampler_seed, so that tuners' seeds never meet.
  sampler = optuna.samplers.TPESampler(
      seed=settings.sampler_seed * SAMPLER_SEED_SPACING + len(study.trials),
      constant_liar=True)  # Trials running elsewhere count as bad: tuners spread out.
  pruner = (optuna.pruners.NopPruner() if settings.seeds else  # A sweep runs every seed.
            optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials,
                                        n_warmup_steps=1))  # Never on the untrained step 0.
  study = optuna.load_study(study_name=settings.study_name, storage=storage, sampler=sampler,
                            pruner=pruner)
  return study, storage


Objective = Callable[[optuna.Trial, str, Sequence[str]], float]


def tune(settings: Settings, objective: Optional[Objective] = None,
         log=print) -> optuna.Study:
  """Runs trials until the study holds `settings.num_trials` (those re-run as others not
  counted) and none is running elsewhere; `objective` defaults to `run_trial` with
  `settings.objective`."""
  if objective is None:
    objective = functools.partial(run_trial, trained_only=settings.objective == "trained",
                                  test=settings.seeds > 0)
  study, storage = open_study(settings)
  waited, seconds = False, []  # This tuner's trial times, for the time left.
  try:
    while True:
      retry_stale_trials(study, storage, settings.study_name)
      trials = study.get_trials(deepcopy=False)
      states = [trial.state for trial in trials]
      if TrialState.WAITING not in states and (counted(trials) >= settings.num_trials
                                               or settings.seeds):
        # Those whose tuner's end this one would see; on a journal, another machine's
        # trial is its own tuner's to finish.
        running = [trial.number for trial in trials if trial.state == TrialState.RUNNING and (
            heartbeat_interval(storage) or trial.user_attrs.get("host") == HOST)]
        if not running:
          break
        if not waited:
          log(f"waiting for trials {', '.join(map(str, running))}, running elsewhere "
              "(re-run here if their tuner is gone)")
          waited = True
        time.sleep(WAIT_SECONDS)
        continue
      trial = claim_waiting(study, storage, settings) if settings.seeds else study.ask()
      if trial is not None:
        run_one(study, storage, trial, settings, objective, log, seconds)
      write_outputs(study, settings, log=lambda line: None)
    write_outputs(study, settings, log=log)
  except STORAGE_ERRORS as e:
    raise storage_error(settings, e) from None
  return study


def claim_waiting(study: optuna.Study, storage, settings: Settings) -> Optional[optuna.Trial]:
  """A sweep's next seed: a waiting trial this tuner sets running first, or None if others
  took them all (study.ask would then start a trial of no seed)."""
  study_id = storage.get_study_id_from_name(settings.study_name)
  for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, waiting.number)
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
      if storage.set_trial_state_values(trial_id, TrialState.RUNNING):
        return optuna.Trial(study, trial_id)
  return None


# ---- What the tuner says while a trial runs. ----

def trial_label(trials: Sequence[optuna.trial.FrozenTrial], number: int,
                settings: Settings) -> str:
  """`trial i/N (number n)` (`seed ...` in a sweep): i counts the study's started trials,
  each re-run of a trial whose tuner is gone in its place."""
  started = counted([trial for trial in trials if trial.state != TrialState.WAITING])
  return (f"{'seed' if settings.seeds else 'trial'} {started}/{settings.num_trials} "
          f"(number {number})")


def progress_line(run_folder: str, num_steps_limit: int) -> str:
  """How far the trial in `run_folder` is: its last step logged (train.log) or validated,
  and its latest validation."""
  validations = records.read_validations(run_folder)
  steps = [validations[-1]["step"]] if validations else []
  log = file_storage.join(run_folder, runfolder.LOG_FILE)
  if file_storage.exists(log):
    steps += [int(step) for step in STEP_LINE.findall(file_storage.read_bytes(log, None))[-1:]]
  if not steps:
    return "starting (no step logged yet)"
  line = f"step {max(steps)}/{num_steps_limit}"
  if validations:
    latest = validations[-1]
    line += (f", latest validation accuracy {float(latest['accuracy']):.2%} at step "
             f"{latest['step']}")
  return line


def time_left(left: int, others: int, seconds: Sequence[float]) -> float:
  """Seconds until the study is done: this tuner's share of the `left` trials not started
  (spread over it and the `others` tuners running a trial) times its mean trial time."""
  return math.ceil(left / (others + 1)) * sum(seconds) / len(seconds)


def left_line(study: optuna.Study, settings: Settings, seconds: Sequence[float]) -> str:
  trials = study.get_trials(deepcopy=False)
  started = counted([trial for trial in trials if trial.state != TrialState.WAITING])
  left = max(0, settings.num_trials - started)
  others = sum(trial.state == TrialState.RUNNING for trial in trials)
  if not left:
    return "no trial left to start"
  return (f"{left} of {settings.num_trials} {'seeds' if settings.seeds else 'trials'} left, "
          f"about {utils.duration(time_left(left, others, seconds))} more"
          + (f" with the {others} other tuners running one" if others else ""))


def run_one(study: optuna.Study, storage, trial: optuna.Trial, settings: Settings,
            objective: Objective, log, seconds: List[float]):
  """Runs `trial` in its run folder and tells the study its end; logs its start, its
  progress every PROGRESS_SECONDS and its end, and appends its time to `seconds`."""
  trial_id = storage.get_trial_id_from_study_id_trial_number(
      storage.get_study_id_from_name(settings.study_name), trial.number)
  # Relative to the study folder, which may be mounted elsewhere on another machine.
  relative = trial.user_attrs.get("run_folder") or os.path.join(TRIALS_FOLDER,
                                                                str(trial.number))
  run_folder = os.path.join(settings.study_dir, relative)
  label = trial_label(study.get_trials(deepcopy=False), trial.number, settings)

  def progress():
    with contextlib.suppress(file_storage.StorageError, OSError):  # Never stops a trial.
      log(f"{label}: {progress_line(run_folder, settings.num_steps_limit)}")

  with heartbeat(storage, trial_id):
    file_storage.makedirs(run_folder, settings.study_dir)
    # Held first: a trial with a lock attr is locked.
    with file_storage.FileLock(run_folder + ".lock"):
      for name, value in (("run_folder", relative), ("host", HOST), ("pid", os.getpid()),
                          ("lock", os.path.abspath(run_folder + ".lock"))):
        trial.set_user_attr(name, value)
      values = ({"seed": trial.suggest_int("seed", 0, settings.seeds - 1)} if settings.seeds
                else suggest(trial, settings.params))
      flags = trial_flags(settings, values)
      trial.set_user_attr("runner_flags", flags)
      history = RETRY.retry_history(storage.get_trial(trial_id))
      log(f"{label}: {', '.join(f'{name}={_value(value)}' for name, value in values.items())}"
          f"; log: {run_folder}.log"
          + (f" (re-run of trial {history[-1]}, whose tuner is gone)" if history else ""))
      start, error = time.monotonic(), None
      try:
        with repeating(PROGRESS_SECONDS, progress):
          value = objective(trial, run_folder, flags)
      except optuna.TrialPruned as e:
        ended = str(e)
        study.tell(trial, state=TrialState.PRUNED)
      except TrialFailed as e:
        error = str(e)
        ended = f"failed: {error}"
        trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)
      else:
        ended = (f"best validation accuracy {value:.2%} at step "
                 f"{trial.user_attrs.get('best_step')}")
        study.tell(trial, value)
      seconds.append(time.monotonic() - start)
      log(f"{label}: {ended}, in {utils.duration(seconds[-1])}; "
          f"{left_line(study, settings, seconds)}")
      if error is not None:
        stop_if_hopeless(study, settings, trial.number, error, f"{run_folder}.log")


def stop_if_hopeless(study: optuna.Study, settings: Settings, number: int, error: str,
                     log_path: str):
  """Stops the study after a failed trial when every trial would fail: a runner.py flag that
  does not exist, or no trial of the study has ever ended otherwise."""
  ended = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
  if not error.startswith(USAGE_PREFIX) and ended:
    return
  write_outputs(study, settings, log=lambda line: None)
  raise TuneError(f"tools/tune.py: trial {number} failed and "
                  + ("so will every trial" if error.startswith(USAGE_PREFIX)
                     else "no trial has succeeded")
                  + f": {error} (the flags after --? see {log_path})")


# ---- Outputs. ----

def _duration(trial: optuna.trial.FrozenTrial, now: datetime.datetime) -> str:
  if trial.datetime_start is None:
    return ""
  return utils.duration(((trial.datetime_complete or now) - trial.datetime_start).total_seconds())


def best_of(trial: optuna.trial.FrozenTrial):
  """(best validation accuracy, its step) of a trial, or (None, None) before any."""
  if trial.state == TrialState.COMPLETE:
    return trial.value, trial.user_attrs.get("best_step")
  if not trial.intermediate_values:
    return None, None
  # The reported values are running bests: the first step reaching the last one is its own.
  best = max(trial.intermediate_values.values())
  return best, min(s for s, v in trial.intermediate_values.items() if v == best)


def note(trial: optuna.trial.FrozenTrial, retried_as: Dict[int, int]) -> str:
  attrs, notes = trial.user_attrs, []
  history = RETRY.retry_history(trial)
  if history:
    notes.append(f"re-run of {history[-1]}")
  if trial.number in retried_as:
    notes.append(f"tuner gone; re-run as {retried_as[trial.number]}")
  if trial.state == TrialState.PRUNED and trial.intermediate_values:
    notes.append(f"pruned at step {max(trial.intermediate_values)}")
  if "error" in attrs:
    notes.append(attrs["error"].replace("|", "\\|"))
  return "; ".join(notes)


def trials_table(trials: Sequence[optuna.trial.FrozenTrial], names: Sequence[str],
                 now: Optional[datetime.datetime] = None) -> str:
  """The markdown table of the trials: parameters, best validation accuracy, step, time."""
  now = now or datetime.datetime.now()
  retried_as = retried(trials)
  rows = [["trial", "state", *names, "best val acc", "step", "time", "note"]]
  for trial in sorted(trials, key=lambda t: t.number):
    accuracy, step = best_of(trial)
    rows.append([str(trial.number), trial.state.name.lower(),
                 *[_value(trial.params.get(name)) for name in names],
                 "" if accuracy is None else f"{accuracy:.2%}",
                 "" if step is None else str(step), _duration(trial, now),
                 note(trial, retried_as)])
  lines = ["| " + " | ".join(row) + " |" for row in rows]
  lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
  return "\n".join(lines) + "\n"


def _value(value) -> str:
  if value is None:
    return ""
  return str(value) if isinstance(value, int) else f"{value:.3g}"


def summary(trials: Sequence[optuna.trial.FrozenTrial]) -> str:
  states = [t.state.name.lower() for t in trials]
  seconds = sum(((t.datetime_complete or datetime.datetime.now()) - t.datetime_start)
                .total_seconds() for t in trials if t.datetime_start)
  counts = ", ".join(f"{states.count(s)} {s}" for s in
                     ("complete", "pruned", "fail", "running", "waiting") if s in states)
  return f"{len(trials)} trials ({counts}); {seconds / 60:.1f} trial-minutes in all."


def importance_table(study: optuna.Study) -> str:
  complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
  if len(complete) < 2:
    return "Importance: needs at least 2 complete trials.\n"
  ranking = optuna.importance.get_param_importances(study)
  return ("| parameter | importance (fANOVA) |\n|---|---|\n"
          + "".join(f"| {name} | {value:.3f} |\n" for name, value in ranking.items()))


def write_outputs(study: optuna.Study, settings: Settings, log=print):
  """trials.md, best_flags.txt (once a trial is complete), each also logged."""
  trials = study.get_trials()
  columns = ("seed",) if settings.seeds else settings.params
  text = (f"# Study {settings.study_name!r}\n\n{trials_table(trials, columns)}\n"
          f"{summary(trials)}\n")
  complete = [t for t in trials if t.state == TrialState.COMPLETE]
  if settings.seeds:
    text += ("\nTest accuracies over the seeds: python -m tools.study.compare "
             f"{os.path.join(settings.study_dir, TRIALS_FOLDER)}\n")
  elif complete:
    best = study.best_trial
    path = os.path.join(settings.study_dir, FLAGFILE)
    write_flagfile(path, best.user_attrs["runner_flags"], [
        f"Best of study {settings.study_name!r} ({len(trials)} trials): trial {best.number}, "
        f"validation accuracy {best.value:.2%} at step {best.user_attrs.get('best_step')}.",
        f"python runner.py --flagfile={os.path.abspath(path)} --checkpoint_path=<run folder>"])
    text += (f"\nBest: trial {best.number}, validation accuracy {best.value:.2%} at step "
             f"{best.user_attrs.get('best_step')}; flags in {path}.\n")
  if settings.importance:
    text += "\n" + importance_table(study)
  file_storage.atomic_write_text(os.path.join(settings.study_dir, TABLE_FILE), text)
  log(text)


# ---- Entry point. ----

def define_flags():
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("study_dir", None, "Folder of the study: storage, trials/<n> run "
                      "folders, trials.md, best_flags.txt.", required=True)
  flags.DEFINE_integer("num_trials", 20, "Trials the study holds when done (in all, over "
                       "resumes and machines; trials re-run for a killed tuner count once).")
  flags.DEFINE_integer("num_steps_limit", 3000, "Meta-training steps of each trial.")
  flags.DEFINE_integer("checkpoint_steps", 500, "Steps between a trial's validations "
                       "(each one a pruning point).")
  flags.DEFINE_integer("seed", 0, "runner.py --seed of every trial.")
  flags.DEFINE_list("params", list(SPACE), "The searched flags, a subset of: "
                    + ", ".join(SPACE) + ". Others keep their runner.py value.")
  flags.DEFINE_string("storage", None, "Default: <study_dir>/study.db (SQLite). An Optuna "
                      "RDB URL (e.g. postgresql://...) or a journal file path (NFS) to share "
                      "the study between machines.")
  flags.DEFINE_string("study_name", "leo", "Name of the study in the storage.")
  flags.DEFINE_integer("sampler_seed", 0, "Seed of the TPE sampler (one per machine).")
  flags.DEFINE_integer("pruner_startup_trials", 5, "Complete trials before pruning starts.")
  flags.DEFINE_float("stale_seconds", 300.0, "A running trial whose tuner has not beaten "
                     "its heartbeat for this long is re-run (an RDB storage's heartbeat).")
  flags.DEFINE_integer("seeds", 0, "A seed sweep instead of a search: train and test the "
                       "flags after -- once for each seed 0..seeds-1 (--num_trials, --params "
                       "and --seed do not apply).")
  flags.DEFINE_enum("objective", "trained", list(OBJECTIVES), "A trial's value: "
                    + "; ".join(f"{k}: {v}" for k, v in OBJECTIVES.items()) + ".")
  flags.DEFINE_boolean("importance", False, "Also rank the parameters (Optuna fANOVA).")
  return flags.FLAGS


def settings_from_flags(values, runner_args: Sequence[str]) -> Settings:
  unknown = sorted(set(values.params) - set(SPACE))
  if unknown or not values.params:
    raise TuneError(f"tools/tune.py: --params={','.join(values.params)}: expected names "
                    f"among {', '.join(SPACE)}")
  for name in ("num_trials", "num_steps_limit", "checkpoint_steps"):
    if not getattr(values, name) >= 1:
      raise TuneError(f"tools/tune.py: --{name}={getattr(values, name)}: expected >= 1")
  for name, low, high in (("stale_seconds", 1, MAX_STALE_SECONDS),
                          ("sampler_seed", 0, MAX_SAMPLER_SEED),
                          ("pruner_startup_trials", 0, math.inf)):
    if not low <= getattr(values, name) <= high:
      raise TuneError(f"tools/tune.py: --{name}={getattr(values, name)}: expected "
                      + (f"{low:g} to {high:g}" if high < math.inf else f">= {low}"))
  if values.seeds < 0:
    raise TuneError(f"tools/tune.py: --seeds={values.seeds}: expected >= 0 (0: a search)")
  params = () if values.seeds else tuple(values.params)
  return Settings(
      study_dir=os.path.abspath(values.study_dir),
      num_steps_limit=values.num_steps_limit, checkpoint_steps=values.checkpoint_steps,
      runner_args=tuple(check_runner_args(runner_args, params)),
      num_trials=values.seeds or values.num_trials, params=params, seeds=values.seeds,
      seed=values.seed, storage=values.storage,
      study_name=values.study_name, sampler_seed=values.sampler_seed,
      pruner_startup_trials=values.pruner_startup_trials,
      stale_seconds=values.stale_seconds, importance=values.importance,
      objective=values.objective)


def main(argv):
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  try:
    tune(settings_from_flags(FLAGS, argv[1:]), log=lambda line: print(line, flush=True))
  except utils.LeoError as e:
    sys.stderr.write(f"{e}\n")
    sys.exit(2)
  except KeyboardInterrupt:
    sys.stderr.write("tools/tune.py: interrupted; run the same command to resume\n")
    sys.exit(130)


if __name__ == "__main__":
  FLAGS = define_flags()
  utils.run_command(main, arguments="[-- RUNNER_FLAGS...]")
