# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""tools/tune.py on a real PostgreSQL server (a throw-away cluster on 127.0.0.1): tuners on
several "machines" at once, one killed mid-trial, the server restarted mid-study, a seed sweep
shared by two tuners, and the storage errors a user meets first."""

import dataclasses
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import optuna
from optuna.trial import TrialState
import pytest

import fixtures
import records
from test_tune import ENV, ROOT, TINY, _children
from tools import tune

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = [pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
              pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")]

PASSWORD = "leo-secret"  # docs/tuning.md's user and database, on a loopback server.
# docs/tuning.md's commands for a new study database, as its server's superuser.
CREATE_DATABASE = [f"CREATE USER leo PASSWORD '{PASSWORD}'", "CREATE DATABASE leo OWNER leo"]
STALE_SECONDS = 3


def _server_binaries():
  """The folder of initdb, pg_ctl and postgres (Debian's postgresql package), or None."""
  found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
  path = found[-1] if found else shutil.which("pg_ctl")
  return os.path.dirname(path) if path else None


@dataclasses.dataclass
class Server:
  bindir: str
  root: str
  port: int
  as_server_user: list  # PostgreSQL refuses to run as root: as its own user then.

  @property
  def url(self) -> str:
    return f"postgresql://leo:{PASSWORD}@127.0.0.1:{self.port}/leo"

  def pg_ctl(self, *args):
    subprocess.run([*self.as_server_user, os.path.join(self.bindir, "pg_ctl"),
                    "-D", os.path.join(self.root, "data"), "-l",
                    os.path.join(self.root, "server.log"), "-w", *args],
                   check=True, capture_output=True, timeout=60)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
  """A PostgreSQL cluster of its own on 127.0.0.1 (password logins), with docs/tuning.md's leo
  user and database; stopped and removed after the module."""
  bindir = _server_binaries()
  if bindir is None:
    if os.environ.get("CI"):  # .ci/run installs it: CI never skips these tests.
      pytest.fail("PostgreSQL's server is not installed (apt-get install postgresql)")
    pytest.skip("PostgreSQL's server is not installed (apt-get install postgresql)")
  root = tempfile.mkdtemp(prefix="leo-postgres-")
  as_user = []
  if os.geteuid() == 0:
    user = pwd.getpwnam("postgres")
    os.chown(root, user.pw_uid, user.pw_gid)
    as_user = ["runuser", "-u", "postgres", "--"]
  superuser_password = os.path.join(root, "superuser_password")
  with open(superuser_password, "w") as f:
    f.write("superuser-secret\n")
  if as_user:
    os.chown(superuser_password, user.pw_uid, user.pw_gid)
  subprocess.run([*as_user, os.path.join(bindir, "initdb"), "-D", os.path.join(root, "data"),
                  "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={superuser_password}",
                  "--no-sync"], check=True, capture_output=True, timeout=120)
  server = Server(bindir, root, _free_port(), as_user)
  server.pg_ctl("-o", f"-c listen_addresses=127.0.0.1 -c port={server.port} "
                f"-c unix_socket_directories={root}", "start")
  try:
    subprocess.run([os.path.join(bindir, "psql"), "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                    "-p", str(server.port), "-U", "postgres",
                    *[arg for sql in CREATE_DATABASE for arg in ("-c", sql)]],
                   env=dict(os.environ, PGPASSWORD="superuser-secret"), check=True,
                   capture_output=True, timeout=60)
    yield server
  finally:
    server.pg_ctl("stop", "-m", "immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  return fixtures.make_dataset(str(tmp_path_factory.mktemp("postgres") / "embeddings"),
                               dim=16)


def tuner_command(study_dir, storage, *flags, runner_args=()):
  """docs/tuning.md's command for one machine of a shared study."""
  return [sys.executable, "-m", "tools.tune", f"--study_dir={study_dir}",
          f"--storage={storage}", "--num_steps_limit=4", "--checkpoint_steps=2",
          f"--stale_seconds={STALE_SECONDS}", *flags, "--", *runner_args]


def start(command, output, hostname=None):
  """The tuner as a process of its own; with `hostname`, as if on another machine (a UTS
  namespace of its own: same files and server, another host name)."""
  if hostname:
    command = ["unshare", "--uts", "sh", "-c", f'hostname {hostname} && exec "$@"', "sh",
               *command]
  with open(output, "w") as out:
    return subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT)


def started_trials(output) -> list:
  """The trial numbers a tuner's output says it started, in order."""
  with open(output) as f:
    return [int(n) for n in re.findall(r"^(?:trial|seed) \d+/\d+ \(number (\d+)\): .*; log: ",
                                      f.read(), re.M)]


def wait_for(condition, process, seconds=240):
  deadline = time.time() + seconds
  while not condition():
    assert process.poll() is None and time.time() < deadline
    time.sleep(0.05)


# ---- Several tuners, one killed, the server restarted (slow: several processes). ----

@pytest.fixture(scope="module")
def shared_study(server, data, tmp_path_factory):
  """Two tuners (sampler seeds 0 and 1) share a 2-trial study and its folder; the one on
  "another machine" is killed mid-trial, then the server is restarted; a tuner stopped by
  the restart is run again, as its user would."""
  root = tmp_path_factory.mktemp("shared")
  study_dir = root / "study"
  commands = [tuner_command(study_dir, server.url, "--num_trials=2", f"--sampler_seed={seed}",
                            runner_args=(f"--data_path={data}", *TINY)) for seed in range(2)]
  outputs = [str(root / f"tuner{seed}.out") for seed in range(2)]
  tuners = [start(commands[0], outputs[0], hostname="other-machine")]
  wait_for(lambda: started_trials(outputs[0]), tuners[0])
  tuners += [start(command, output) for command, output in zip(commands[1:], outputs[1:])]
  killed_trial, = started_trials(outputs[0])
  trial_folder = str(study_dir / "trials" / str(killed_trial))
  wait_for(lambda: records.read_validations(trial_folder), tuners[0])
  runner, = _children(tuners[0].pid)
  os.kill(runner, signal.SIGSTOP)  # Frozen first, so that it cannot finish in between.
  tuners[0].kill()
  tuners[0].wait()
  killed_at = time.time()
  before_restart = optuna.load_study(study_name="leo", storage=server.url).trials
  server.pg_ctl("restart", "-m", "fast")
  ends = []
  for command, output, tuner in zip(commands[1:], outputs[1:], tuners[1:]):
    tuner.wait(timeout=300)
    with open(output) as f:
      ends.append((tuner.returncode, f.read()))
    if tuner.returncode != 0:  # Stopped by the restart: the same command resumes.
      again = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True,
                             timeout=300)
      assert again.returncode == 0, again.stderr[-3000:]
  return dict(study_dir=study_dir, outputs=outputs, ends=ends, killed_trial=killed_trial,
              killed_at=killed_at, before_restart=before_restart,
              trials=optuna.load_study(study_name="leo", storage=server.url).trials)


@pytest.mark.slow
def test_every_trial_number_is_run_once_and_the_study_counts_num_trials(shared_study):
  trials = shared_study["trials"]
  started = [n for output in shared_study["outputs"] for n in started_trials(output)]
  assert sorted(started) == [t.number for t in trials]  # Each number by one tuner, once.
  assert tune.counted(trials) == 2
  assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
  assert [t.state for t in trials].count(TrialState.COMPLETE) == 2


@pytest.mark.slow
def test_the_tuners_sampler_seeds_give_distinct_first_trials(shared_study):
  trials = shared_study["trials"]
  first, second = [trials[started_trials(output)[0]].params
                   for output in shared_study["outputs"]]
  assert first != second


@pytest.mark.slow
def test_a_killed_machines_trial_is_rerun_after_stale_seconds_from_its_checkpoints(
    shared_study):
  trials, killed = shared_study["trials"], shared_study["killed_trial"]
  rerun = trials[tune.retried(trials)[killed]]
  assert trials[killed].state == TrialState.FAIL and rerun.state == TrialState.COMPLETE
  assert rerun.params == trials[killed].params
  assert rerun.user_attrs["run_folder"] == trials[killed].user_attrs["run_folder"]
  assert rerun.datetime_start.timestamp() >= shared_study["killed_at"] + STALE_SECONDS - 1
  log = (shared_study["study_dir"] / "trials" / f"{killed}.log").read_text()
  assert log.count("\n$ ") + log.startswith("$ ") == 2
  assert "Resuming from" in log.split("\n$ ")[-1]  # It continued the killed one's training.


@pytest.mark.slow
def test_a_server_restart_loses_no_finished_trial_and_a_stopped_tuner_says_why(
    shared_study):
  final = {t.number: (t.state, t.value) for t in shared_study["trials"]}
  for trial in shared_study["before_restart"]:
    if trial.state == TrialState.COMPLETE:
      assert final[trial.number] == (trial.state, trial.value)
  stopped = 0
  for returncode, output in shared_study["ends"]:
    if returncode != 0:  # One line, naming the storage without its password.
      last = output.strip().splitlines()[-1]
      assert last.startswith("tools/tune.py: --storage=postgresql://leo:***@127.0.0.1:")
      assert PASSWORD not in output
      stopped += 1
  # Only the killed tuner's trial, and one of a tuner the restart stopped, were re-run.
  assert len(tune.retried(shared_study["trials"])) <= 1 + stopped


@pytest.mark.slow
def test_trials_md_and_best_flags_agree_with_the_study(shared_study):
  trials, study_dir = shared_study["trials"], shared_study["study_dir"]
  table = (study_dir / "trials.md").read_text()
  for trial in trials:
    assert f"\n| {trial.number} | {trial.state.name.lower()} | " in table
  best = max((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
  flagfile = (study_dir / "best_flags.txt").read_text().splitlines()
  assert flagfile[0].startswith(f"# Best of study 'leo' ({len(trials)} trials): trial "
                                f"{best.number}, validation accuracy {best.value:.2%}")
  assert [line for line in flagfile if not line.startswith("#")] == (
      best.user_attrs["runner_flags"])
  assert f"Best: trial {best.number}, validation accuracy {best.value:.2%}" in table


# ---- A seed sweep over two tuners (slow: several processes). ----

@pytest.mark.slow
def test_a_seed_sweep_runs_each_seed_once_over_two_tuners_and_compares(server, data,
                                                                         tmp_path):
  study_dir = tmp_path / "sweep"
  commands = [tuner_command(study_dir, server.url, "--seeds=2", "--study_name=sweep",
                            runner_args=(f"--data_path={data}", *TINY))] * 2
  outputs = [str(tmp_path / f"sweep{i}.out") for i in range(2)]
  tuners = [start(command, output) for command, output in zip(commands, outputs)]
  for tuner in tuners:
    assert tuner.wait(timeout=300) == 0, open(outputs[tuners.index(tuner)]).read()[-3000:]
  trials = optuna.load_study(study_name="sweep", storage=server.url).trials
  assert sorted(t.params["seed"] for t in trials) == [0, 1]
  assert all(t.state == TrialState.COMPLETE for t in trials)
  assert sorted(n for output in outputs for n in started_trials(output)) == [0, 1]
  compare = subprocess.run([sys.executable, "-m", "tools.study.compare", str(study_dir / "trials")],
                           cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
  assert compare.returncode == 0, compare.stderr[-3000:]
  assert "2 seeds" in compare.stdout  # The mean over the seeds, one row.
  assert "tools.study.compare" in (study_dir / "trials.md").read_text()


# ---- The storage errors a user meets first: one line, before any trial. ----

@pytest.mark.parametrize("storage, reason", [
    ("postgresql://leo:wrong@127.0.0.1:{port}/leo",
     'password authentication failed for user "leo"'),
    ("postgresql://leo:wrong@127.0.0.1:{closed}/leo", "Connection refused"),
    ("postgresql+pg8000://leo:wrong@127.0.0.1:{port}/leo", "No module named 'pg8000'"),
    ("garbage://x", "Can't load plugin: sqlalchemy.dialects:garbage")])
def test_a_storage_that_cannot_work_is_one_line_naming_it(server, tmp_path, storage, reason):
  storage = storage.format(port=server.port, closed=_free_port())
  result = subprocess.run(tuner_command(tmp_path / "study", storage, runner_args=TINY),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
  shown = storage.replace(":wrong@", ":***@")
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr.count("\n") == 1 and "wrong" not in result.stderr
  assert result.stderr.startswith(f"tools/tune.py: --storage={shown}: ")
  assert reason in result.stderr
  assert not (tmp_path / "study" / "trials" / "0").exists()
