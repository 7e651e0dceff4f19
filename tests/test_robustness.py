"""Bad input and faults, tried for real: hostile and broken pickles, impossible flags, SIGKILL
at random moments, a full disk, a NaN loss, and two runs on one folder."""

import glob
import json
import logging
import os
import pickle
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from absl import logging as absl_logging
import hypothesis
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
import numpy as np
import pytest
import tensorflow as tf

import config
import data
import fixtures
import model
import test_runner
import training

TINY = test_runner.TINY
run = test_runner.run

FUZZ = hypothesis.settings(max_examples=150, deadline=2000, derandomize=True,
                           suppress_health_check=list(hypothesis.HealthCheck))


def _load_bytes(raw: bytes):
  """Loads `raw` as an embeddings file: an Embeddings or the project's own DataError."""
  with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "train_embeddings.pkl")
    with open(path, "wb") as f:
      f.write(raw)
    try:
      return data.load_embeddings(path)
    except data.DataError as e:
      message = str(e)
      assert message.startswith(path + ": ") and "\n" not in message, message
      return e


VALID = fixtures.py2_pickle_bytes(fixtures.make_split("train", 3, 4, 8,
                                                      np.random.default_rng(0)))


# ---- The loader under fuzzing. ----

@FUZZ
@hypothesis.given(st.binary(max_size=3000))
def test_random_bytes_end_in_a_data_error(raw):
  assert isinstance(_load_bytes(raw), data.DataError)


@FUZZ
@hypothesis.given(st.integers(0, len(VALID) - 1))
def test_truncated_pickles_end_in_a_data_error(cut):
  assert isinstance(_load_bytes(VALID[:cut]), data.DataError)


@FUZZ
@hypothesis.given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 7)),
                           min_size=1, max_size=8))
def test_bit_flipped_pickles_load_or_end_in_a_data_error(flips):
  raw = bytearray(VALID)
  for position, bit in flips:
    raw[position] ^= 1 << bit
  assert isinstance(_load_bytes(bytes(raw)), (data.DataError, data.Embeddings))


_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)
_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int32, np.bool_, np.uint8, np.complex64,
                           np.dtype("S4"), np.dtype("U3")]),
    shape=_shapes) | hnp.arrays(
        dtype=np.dtype(object), shape=_shapes,
        elements=st.none() | st.integers() | st.text(max_size=8) | st.binary(max_size=8))
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    | st.binary(max_size=20) | _arrays,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=10), children, max_size=4), max_leaves=12)


@FUZZ
@hypothesis.given(st.one_of(
    _values,
    st.fixed_dictionaries({"keys": _values, "embeddings": _values}),
    st.fixed_dictionaries({"keys": _values, "embeddings": _arrays})))
def test_pickles_of_the_wrong_structure_end_in_a_data_error(contents):
  result = _load_bytes(pickle.dumps(contents, protocol=2))
  assert isinstance(result, (data.DataError, data.Embeddings))


@pytest.mark.parametrize("declared,constructed", [
    ((2**31 - 1, 2**31 - 1), (0,)), ((2**40,), (0,)), ((2, 2), (2**31 - 1, 2**31 - 1)),
    ((2, 2), (2**40,))])
def test_huge_declared_shapes_neither_allocate_nor_hang(declared, constructed):
  array = fixtures.py2_array_opcodes(declared, np.dtype("f4"), b"U\x10" + b"x" * 16,
                                     constructed)
  raw = fixtures.py2_pickle_bytes({"embeddings": fixtures.Opcodes(array)})
  before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  start = time.time()
  assert isinstance(_load_bytes(raw), data.DataError)
  assert time.time() - start < 2
  assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB.


# ---- Hostile pickles. ----

class _Payload:
  """Pickles as a call of `function(*args)`."""

  def __init__(self, function, *args):
    self.function, self.args = function, args

  def __reduce__(self):
    return self.function, self.args


def _hostile(canary):
  touch = f"touch {canary}"
  split = fixtures.make_split("train", 2, 2, 4, np.random.default_rng(0), keys_as="O")
  return {
      "os.system": (dict(split, labels=_Payload(os.system, touch)), "posix.system"),
      "subprocess": (dict(split, labels=_Payload(subprocess.call, ["touch", str(canary)])),
                     "(subprocess|commands).call"),
      "eval": (dict(split, labels=_Payload(eval, f"open({str(canary)!r}, 'w')")),
               "(builtins|__builtin__).eval"),
      "exec": (dict(split, labels=_Payload(exec, f"open({str(canary)!r}, 'w')")),
               "(builtins|__builtin__).exec"),
      "object array payload": (
          dict(split, keys=np.array([_Payload(os.system, touch)] * 4, dtype=object)),
          "posix.system"),
  }


@pytest.mark.parametrize("payload", sorted(_hostile("x")))
def test_hostile_pickles_are_refused_by_name_and_nothing_runs(tmp_path, payload):
  canary = tmp_path / "canary"
  contents, global_name = _hostile(canary)[payload]
  for protocol in (2, pickle.HIGHEST_PROTOCOL):
    error = _load_bytes(pickle.dumps(contents, protocol=protocol))
    assert isinstance(error, data.DataError)
    assert re.search(f"refused global '{global_name}'", str(error))
    assert not canary.exists()


@pytest.mark.parametrize("opcodes", [
    b"c{module}\nanything\n.",  # GLOBAL
    b"\x80\x04\x8c\x08{module}\x94\x8c\x08anything\x94\x93.",  # STACK_GLOBAL
    b"(i{module}\nanything\n.",  # INST
])
def test_opcodes_that_import_a_module_import_nothing(tmp_path, monkeypatch, opcodes):
  canary = tmp_path / "canary"
  module = "leo_canary"
  (tmp_path / f"{module}.py").write_text(f"open({str(canary)!r}, 'w').close()\nanything = 1\n")
  monkeypatch.syspath_prepend(str(tmp_path))
  raw = opcodes.replace(b"{module}", module.encode()).replace(b"\x8c\x08" + module.encode(),
                                                              b"\x8c\x0a" + module.encode())
  error = _load_bytes(raw)
  assert isinstance(error, data.DataError)
  assert f"refused global '{module}.anything'" in str(error)
  assert not canary.exists() and module not in sys.modules


# ---- Impossible flags: refused before any file is read or written. ----

@pytest.mark.parametrize("flags,expected", [
    (["--num_classes=-1"], "--num_classes=-1"),
    (["--num_classes=0"], "--num_classes=0"),
    (["--outer_lr=nan"], "--outer_lr=nan"),
    (["--outer_lr=0"], "--outer_lr=0.0"),
    (["--inner_lr_init=-1"], "--inner_lr_init=-1.0"),
    (["--dropout_rate=1.5"], "--dropout_rate=1.5"),
    (["--kl_weight=inf"], "--kl_weight=inf"),
    (["--metatrain_batch_size=0"], "--metatrain_batch_size=0"),
    (["--num_steps_limit=-5"], "--num_steps_limit=-5"),
    (["--checkpoint_steps=0"], "--checkpoint_steps=0"),
    (["--inner_unroll_length=0"], "--inner_unroll_length=0"),
    (["--dataset_name=tieredImageNet", "--embedding_crop=multiview"],
     "--embedding_crop='multiview'"),
    (["--embedding_crop=corner"], "--embedding_crop='corner'"),
    (["--dataset_name=../../etc"], "--dataset_name='../../etc'"),
    (["--num_classes=five"], "--num_classes=five"),
    (["--preset=omniglot_5shot"], "--preset"),
    (["--seed=-2"], "--seed=-2"),
])
def test_impossible_flags_are_refused_before_any_file_is_touched(tmp_path, flags, expected):
  # The data path does not exist: reaching it would be a different error.
  result = run(f"--data_path={tmp_path}/missing", f"--checkpoint_path={tmp_path}/run", *flags)
  assert result.returncode != 0
  assert expected in result.stderr and "missing" not in result.stderr
  assert not os.path.exists(tmp_path / "run")


# ---- Values that would run on to a wrong, endless or impossible end: one line, exit 2. ----

CORES = os.cpu_count()


@pytest.mark.parametrize("flags, expected", [
    (["--dropout_rate=0.99999999999"],
     "--dropout_rate=0.99999999999: expected a number in [0, 1) in float32, where it is 1"),
    (["--outer_lr=1e-40"], "--outer_lr=1e-40: expected a number >= 1.175e-38 (it is used in "
     "float32, where TF flushes smaller ones to 0)"),
    (["--intra_op_threads=100000"], f"--intra_op_threads=100000: expected an integer in "
     f"[0, {4 * CORES}] (4 per core of this machine's {CORES})"),
    (["--metavalid_batch_size=100000000"], "--metavalid_batch_size=100000000: expected an "
     "integer in [1, 10000000]: a validation scores 10 batches, and at 100000000 tasks its 95% "
     "CI is under ±0.01% whatever the accuracy"),
    (["--tasks=tasks.jsonl"], "--tasks='tasks.jsonl': expected --evaluation_mode or --baseline "
     "with it (a training tests on sampled tasks; evaluate the trained run with "
     "--evaluation_mode --tasks=tasks.jsonl)"),
])
def test_a_value_that_cannot_work_is_one_line_before_the_run_folder_exists(tmp_path, flags,
                                                                            expected):
  root = fixtures.make_dataset(str(tmp_path / "data"))
  result = run(f"--data_path={root}", f"--checkpoint_path={tmp_path}/run", *TINY, *flags)
  assert (result.returncode, result.stdout) == (2, "")
  assert result.stderr == f"runner.py: error: {expected}\n"
  assert not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("scale, norms", [(1e-25, "2.41e-25 to 5.39e-25"),
                                          (1e25, "2.41e+25 to 5.39e+25")])
def test_embeddings_float32_cannot_normalise_are_one_line_before_the_run_folder_exists(
    tmp_path, scale, norms):
  root = fixtures.make_dataset(str(tmp_path / "data"))
  path = os.path.join(root, "tiny", "center", "val_embeddings.pkl")
  contents = fixtures.make_split("val", 5, 20, 16, np.random.default_rng(0))
  contents["embeddings"] *= np.float32(scale)  # Finite in float32; their squares are not.
  norms_found = np.linalg.norm(contents["embeddings"].astype(np.float64), axis=1)
  assert f"{norms_found.min():.3g} to {norms_found.max():.3g}" == norms
  fixtures.write_pickle(path, contents)
  result = run(f"--data_path={root}", f"--checkpoint_path={tmp_path}/run", *TINY)
  assert (result.returncode, result.stdout) == (2, "")
  assert result.stderr == (
      f"runner.py: error: {path}: 'embeddings' has rows of L2 norm {norms} (first out of "
      "range: row 0), expected norms whose squares in float32 lie in [1e-12, 3.403e+38] "
      "(norms of 1e-06 to 1.84e+19), which the model scales to unit length: rescale them\n")
  assert not os.path.exists(tmp_path / "run")


# ---- Checkpoints of another shape. ----

@pytest.fixture
def trained(tiny_run, tmp_path):
  """(its data, a copy of the session's tiny trained run: conftest.py)."""
  run_dir = str(tmp_path / "trained")
  shutil.copytree(tiny_run[1], run_dir)
  return tiny_run[0], run_dir


def test_evaluating_with_embeddings_of_another_size_names_the_mismatch(trained, tmp_path):
  _, run_dir = trained
  # A run made before leo kept the data's digest (which would refuse other data first).
  for path in (os.path.join(run_dir, "config.json"),
               os.path.join(run_dir, "best_checkpoint", "best.json")):
    saved = json.load(open(path))
    del saved["data_digest"], saved["checksum"]
    with open(path, "w") as f:
      json.dump(saved, f)
  other = fixtures.make_dataset(str(tmp_path), dim=24)
  result = run(f"--checkpoint_path={run_dir}", "--evaluation_mode", f"--data_path={other}")
  assert result.returncode == 2
  assert "the embeddings are 24-d but the model saved at" in result.stderr
  assert "was trained on 16-d embeddings" in result.stderr


# ---- Faults. ----

def _validation_accuracies(log: str):
  return [float(v) for v in re.findall(r"meta-valid accuracy: ([\d.]+)%", log)]


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path):
  root = fixtures.make_dataset(str(tmp_path / "data"), dim=16)
  run_dir = str(tmp_path / "run")
  flags = [f"--data_path={root}", f"--checkpoint_path={run_dir}", *TINY,
           "--num_steps_limit=40", "--checkpoint_steps=2", "--noevaluate_after_training"]
  rng = random.Random(0)
  logs = []
  for attempt in range(4):
    log_path = tmp_path / f"log{attempt}"
    with open(log_path, "w") as log:
      process = subprocess.Popen([sys.executable, test_runner.RUNNER, *flags], stderr=log,
                                 stdout=subprocess.DEVNULL,
                                 env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
      deadline = time.time() + 120
      # The first run is killed after its first validation committed a best checkpoint.
      started = "Configuration:" if attempt else "meta-valid accuracy"
      while started not in log_path.read_text():
        assert time.time() < deadline and process.poll() is None, log_path.read_text()[-2000:]
        time.sleep(0.02)
      time.sleep(rng.uniform(0.0, 1.5))  # Somewhere in training, saving or validating.
      process.send_signal(signal.SIGKILL)
      process.wait()
    logs.append(log_path.read_text())
    latest = tf.train.latest_checkpoint(run_dir)
    best = json.load(open(os.path.join(run_dir, "best_checkpoint", "best.json")))
    # The best checkpoint loads, and holds the best accuracy of every validation logged.
    tf.train.load_checkpoint(os.path.join(run_dir, "best_checkpoint", best["checkpoint"]))
    logged = [a for text in logs for a in _validation_accuracies(text)]
    assert round(100 * best["accuracy"], 2) >= max(logged)
    if attempt:
      assert f"at step {previous_latest}" in logs[-1]  # pylint: disable=used-before-assignment
    previous_latest = int(latest.rsplit("-", 1)[1])
  final = run(*flags)
  assert final.returncode == 0, final.stderr[-3000:]
  assert f"at step {previous_latest}" in final.stderr
  assert "Training done: 40 steps" in final.stderr
  assert tf.train.latest_checkpoint(run_dir).endswith("model.ckpt-40")
  best = json.load(open(os.path.join(run_dir, "best_checkpoint", "best.json")))
  logged = [a for text in logs + [final.stderr] for a in _validation_accuracies(text)]
  assert round(100 * best["accuracy"], 2) == max(logged)
  leftovers = [p for p in glob.glob(os.path.join(run_dir, "**"), recursive=True)
               if any(mark in p for mark in (".leo-tmp-", ".leo-pending", "_temp"))]
  assert not leftovers


def _limit_file_size():
  """A disk that fills up: train.log (a few KB) still grows, a checkpoint's 18 KB of
  variables no longer fit."""
  signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # Writes past the limit then fail with EFBIG.
  resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


@pytest.mark.slow  # A process of its own is the subject.
def test_a_full_disk_is_a_clear_error_and_the_previous_checkpoints_stay_intact(trained,
                                                                             tmp_path):
  root, trained_dir = trained
  run_dir = tmp_path / "run"
  subprocess.run(["cp", "-r", trained_dir, str(run_dir)], check=True)
  before = {p: open(p, "rb").read() for p in glob.glob(str(run_dir / "model.ckpt-*"))}
  result = subprocess.run(
      [sys.executable, test_runner.RUNNER, f"--data_path={root}", f"--checkpoint_path={run_dir}",
       *TINY, "--num_steps_limit=9"], capture_output=True, text=True, timeout=240,
      preexec_fn=_limit_file_size, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 2, result.stderr[-3000:]
  error = result.stderr.strip().splitlines()[-1]
  assert error.startswith(f"runner.py: error: --checkpoint_path={run_dir}: writing failed")
  assert error.endswith("the previous checkpoints are kept")
  assert tf.train.latest_checkpoint(str(run_dir)).endswith("model.ckpt-6")
  for path, contents in before.items():
    assert open(path, "rb").read() == contents
  tf.train.load_checkpoint(tf.train.latest_checkpoint(str(run_dir)))


@pytest.mark.slow  # A process of its own is the subject.
def test_two_runs_on_one_folder_the_second_refuses(trained, tmp_path):
  root, _ = trained
  run_dir = tmp_path / "run"
  flags = [f"--data_path={root}", f"--checkpoint_path={run_dir}", *TINY,
           "--num_steps_limit=100000", "--checkpoint_steps=1000"]
  first = test_runner.start(*flags)
  try:
    deadline = time.time() + 120
    while not (run_dir / ".lock").exists() or "pid" not in (run_dir / ".lock").read_text():
      assert time.time() < deadline and first.poll() is None
      time.sleep(0.05)
    second = run(*flags, "--outer_lr=0.5")
    assert second.returncode == 2
    assert f"another leo run (pid {first.pid}) is using this folder" in second.stderr
    saved = json.load(open(run_dir / "config.json"))
    assert saved["outer_model_config"]["outer_lr"] == 1e-3  # The first run's, untouched.
  finally:
    first.kill()
    first.wait()


def test_a_nan_loss_mid_training_is_guarded_counted_and_never_saved(tmp_path, monkeypatch,
                                                                   caplog):
  root = fixtures.make_dataset(str(tmp_path / "data"), dim=16)
  run_dir = str(tmp_path / "run")
  configs = config.Configs(
      data=config.DataConfig(data_path=root, dataset_name="tiny"),
      inner=config.InnerModelConfig(num_latents=8, inner_unroll_length=2,
                                    finetuning_unroll_length=2),
      outer=config.OuterModelConfig(num_val_examples_per_class=3, metatrain_batch_size=4,
                                    metavalid_batch_size=4, num_steps_limit=8, outer_lr=1e-3),
      run=config.RunConfig(checkpoint_path=run_dir, checkpoint_steps=4, log_steps=1,
                           evaluate_after_training=False))
  training_calls = tf.Variable(0)
  original = model.LEO.__call__

  def poisoned(self, problem, is_meta_training, **kwargs):
    loss, accuracy, per_task = original(self, problem, is_meta_training, **kwargs)
    if is_meta_training:  # The third training step's loss is NaN.
      training_calls.assign_add(1)
      loss = tf.where(tf.equal(training_calls, 3), tf.constant(np.nan, loss.dtype), loss)
    return loss, accuracy, per_task

  monkeypatch.setattr(model.LEO, "__call__", poisoned)
  absl_logging.set_verbosity(absl_logging.INFO)
  caplog.set_level(logging.INFO, logger="absl")
  training.train(configs)
  text = caplog.text
  assert "Step: 2/8" in text and "NaN-guard count: 0" in text
  assert "Step: 3/8" in text and "meta-train loss: nan" in text
  assert "Step: 8/8" in text and text.count("NaN-guard count: 1") >= 6  # Training went on.
  latest = tf.train.latest_checkpoint(run_dir)
  assert latest.endswith("model.ckpt-8")
  for prefix in glob.glob(os.path.join(run_dir, "**", "model.ckpt-*.index"), recursive=True):
    reader = tf.train.load_checkpoint(prefix[:-len(".index")])
    for name in reader.get_variable_to_shape_map():
      value = reader.get_tensor(name)
      if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        assert np.isfinite(value).all(), (prefix, name)
  reader = tf.train.load_checkpoint(latest)
  assert [reader.get_tensor(n) for n in reader.get_variable_to_shape_map()
          if "nan_guard_count" in n] == [1]
  events = test_runner.scalar_values(run_dir, "nan_guard_count")
  assert events[-1] == 1
