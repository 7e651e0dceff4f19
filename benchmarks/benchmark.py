# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""How fast leo trains and evaluates, measured against the original's per-task formulation.

    python benchmarks/benchmark.py            # the full table (~13 minutes on 2 cores)
    python benchmarks/benchmark.py --quick    # a few steps of everything, to show it runs
    python benchmarks/benchmark.py --nodefault_rows --cost_growth --study_throughput

It writes a miniImageNet-sized synthetic dataset in the published layout (64/16/20 classes of
600 images, 640-d), then times, in one process and with the runner's own code paths: the
compiled meta-training step, its first (tracing) call, episode sampling alone, a meta-validation
(10 x 200 tasks), the 10,000-task meta-test with all remaining queries, and the evaluation
beside the one it replaced (LEO on gathered episodes), interleaved on the same tasks. The
same math written per task with `tf.map_fn`, as the original runner did, runs beside the
training step, so every speed is also a ratio measured side by side (these machines are noisy;
ratios travel better than seconds). Beside them: the step several per call against one per
call, the runner's whole `train()` over 1,000 steps (its loop between validations beside the
bare step, interleaved at its log lines), each setting in a process of its own, the
intra-op threads and TF's oneDNN kernels on and off (with the matmul rates at the step's
shapes), and the README's first command as a whole process. Optional sections: how the step and the test grow with the task shape and the
embeddings' size, tieredImageNet-sized data's loading, memory and step (`--cost_growth`), and
the trials per hour of a small tuning study with one tuner process and two
(`--study_throughput`).
"""

import concurrent.futures
import dataclasses
import functools
import itertools
import logging
import math
import os
import pickle
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, NamedTuple

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import utils  # pylint: disable=g-import-not-at-top,wrong-import-position
tf = utils.import_tensorflow()
# pylint: disable=g-import-not-at-top,wrong-import-position
import config
import data
import distribute
import evaluation
import model
import records
import sizes
import storage
import training
# pylint: enable=g-import-not-at-top,wrong-import-position

flags.DEFINE_boolean("quick", False, "A few steps of everything (for CI), not timings.")
flags.DEFINE_string("data_dir", None, "Where to write the synthetic embeddings (default: a "
                    "temporary folder, removed at the end).")
flags.DEFINE_integer("timed_steps", 40, "Timed meta-training steps per variant.")
flags.DEFINE_integer("timed_test_tasks", 10000, "Meta-test tasks timed per shot count (the "
                     "protocol's 10,000 by default).")
flags.DEFINE_integer("reference_test_tasks", 1000, "Meta-test tasks per round of the "
                     "evaluation beside its gathered-episodes reference (3 rounds).")
flags.DEFINE_integer("probe_shots", 0, "Internal: time only the steps of this shot count, "
                     "print their medians and exit (the thread and oneDNN rows run it).")
flags.DEFINE_boolean("default_rows", True, "The default table (--nodefault_rows: only the "
                     "sections asked for below).")
flags.DEFINE_boolean("cost_growth", False, "Also how the step and the test grow with the "
                     "task shape and the embeddings' size, and tieredImageNet-sized data's "
                     "loading, memory and step (several minutes).")
flags.DEFINE_boolean("study_throughput", False, "Also the trials per hour of a small "
                     "tools/tune.py study on icons, with one tuner process and two (minutes).")
flags.DEFINE_boolean("probe_tiered", False, "Internal: load the tieredImageNet-sized data, "
                     "print its times, memory and step medians and exit (--cost_growth runs it).")
flags.DEFINE_boolean("probe_matmuls", False, "Internal, with --probe_shots: print the matmul "
                     "rates of MATMUL_SHAPES, TF's and numpy's, after the medians.")
FLAGS = flags.FLAGS

SPLIT_CLASSES = {"train": 64, "val": 16, "test": 20}
IMAGES_PER_CLASS = 600
# --quick exercises every row on less: fewer images per class and one step of each inner
# loop (tracing the unrolled loops is most of a smoke run's time).
QUICK_IMAGES_PER_CLASS = 40
QUICK_INNER = dict(inner_unroll_length=1, finetuning_unroll_length=1)
EMBEDDING_DIM = 640
# [rows, inner] x [inner, columns] of the step: the 5-shot relation network's pair layers
# (12 tasks x 25^2 pairs, 2 x 64 latents), the 1-shot encoder (12 tasks x 5 examples, 640-d
# to 64 latents), and the cube of the compute floors' denominator.
MATMUL_SHAPES = ((12 * 25 * 25, 128, 128), (12 * 5, 640, 64), (1024, 1024, 1024))
# --cost_growth: every task shape and embedding size of the growth rows (on 20 classes a
# split, enough for 20-way tasks), and tieredImageNet's split sizes (~1,300 images a class).
GROWTH_WAYS, GROWTH_SHOTS, GROWTH_DIMS = (5, 10, 20), (1, 5), (64, 640, 1280)
GROWTH_SPLIT_CLASSES = {"train": 20, "test": 20}
TIERED_SPLIT_CLASSES = {"train": 351, "val": 97, "test": 160}
TIERED_IMAGES_PER_CLASS = 1300
# --study_throughput: a small fixed study, searching only values that leave a step's cost as
# it is (num_latents, say, would not).
STUDY_TRIALS, STUDY_STEPS, STUDY_ROUNDS = 4, 300, 2
STUDY_PARAMS = ("outer_lr", "dropout_rate", "kl_weight")
FIRST_COMMAND_PRESET = "icons_1shot"  # The README's first command: runner.py --preset=...
FULL_RUN_STEPS = 100000
FULL_RUN_VALIDATIONS = FULL_RUN_STEPS // 1000 + 1  # Steps 0, 1000, ..., 100000.


def images_per_class() -> int:
  return QUICK_IMAGES_PER_CLASS if FLAGS.quick else IMAGES_PER_CLASS


def write_synthetic_embeddings(root: str, dataset_name: str = "miniImageNet",
                               split_classes=None, images: int = 0,
                               dim: int = EMBEDDING_DIM, seed: int = 0):
  """Random embeddings in the published layout (Python 3 pickles), miniImageNet-sized unless
  told otherwise: `split_classes` {split: classes} of `images` (default `images_per_class()`)
  images of `dim` dimensions. A split already written is kept."""
  rng = np.random.default_rng(seed)
  for split, num_classes in (split_classes or SPLIT_CLASSES).items():
    path = os.path.join(root, dataset_name, "center", f"{split}_embeddings.pkl")
    if os.path.exists(path):
      continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    names = [f"n{split[0]}{c:04d}" for c in range(num_classes)]
    keys = np.array([f"{i}-{name}-{name}_{i:04d}.JPEG" for name in names
                     for i in range(images or images_per_class())])
    embeddings = rng.standard_normal(size=(len(keys), dim), dtype=np.float32)
    storage.atomic_write(path, pickle.dumps(
        {"keys": keys, "embeddings": np.abs(embeddings, out=embeddings)}, protocol=4))


def configs_for(root: str, shots: int, intra_op_threads: int = 0,
                dataset_name: str = "miniImageNet", ways: int = 5) -> config.Configs:
  return config.Configs(
      data=config.DataConfig(data_path=root, dataset_name=dataset_name),
      inner=config.InnerModelConfig(**(QUICK_INNER if FLAGS.quick else {})),
      outer=config.OuterModelConfig(num_classes=ways, num_tr_examples_per_class=shots),
      run=config.RunConfig(checkpoint_path=os.path.join(root, "unused"),
                           intra_op_threads=intra_op_threads))


def original_formulation_leo():
  """LEO computed the way the original code wrote it, the reference of every ratio.

  The same numbers as `model.LEO` (its tests pin the relation network and the logits against
  hand computations), with the original's own arithmetic: the relation network applied to
  every explicit pair [e_i; e_j] of the task's N K codes, logits against all K weight
  vectors of a class, averaged afterwards, inner-loop gradients taken by a nested tape, and
  dropout masks from one float uniform per unit.
  """
  class OriginalFormulationLEO(model.LEO):

    def __init__(self, *args, **kwargs):
      super().__init__(*args, analytic_gradients=False, **kwargs)

    def relation_network(self, inputs):
      tasks, classes, shots, latents = inputs.shape
      codes = tf.reshape(inputs, [tasks, classes * shots, latents])
      pairs = tf.concat([
          tf.tile(codes[:, :, tf.newaxis], [1, 1, classes * shots, 1]),
          tf.tile(codes[:, tf.newaxis], [1, classes * shots, 1, 1])], axis=-1)
      first, second, third = self.relation_network_weights
      outputs = tf.nn.relu(tf.einsum("tijc,cd->tijd", pairs, first))
      outputs = tf.nn.relu(tf.einsum("tijc,cd->tijd", outputs, second))
      outputs = tf.reduce_mean(tf.einsum("tijc,cd->tijd", outputs, third), axis=2)
      return tf.reshape(outputs, [tasks, classes, shots, 2 * latents])

    def predict(self, inputs, weights):
      logits = tf.einsum("tijd,tnkd->tijnk", self._dropout(inputs), weights)
      return tf.reduce_mean(logits, axis=-1)

    def _dropout(self, inputs):
      """tf.nn.dropout's masks: a float uniform per unit (leo reads fewer random bits)."""
      if self.dropout_rate == 0.0:
        return inputs
      uniform = self._task_noise(
          lambda shape, seed: tf.random.stateless_uniform(shape, seed, dtype=inputs.dtype),
          inputs.shape)
      keep = tf.cast(uniform >= self.dropout_rate, inputs.dtype)
      return inputs * (1.0 / (1.0 - self.dropout_rate)) * keep

  return OriginalFormulationLEO


def per_task_train_step(leo, meta_optimizer, sampler, outer):
  """The original's formulation: `tf.map_fn` of a one-task LEO over the batch."""

  def train_step():
    batch = sampler.get_batch(outer.metatrain_batch_size, outer.num_classes,
                              outer.num_tr_examples_per_class, outer.num_val_examples_per_class)

    def one_task(task):
      single = data.ProblemInstance(
          tr_input=task[0][None], tr_output=task[1][None], tr_info=None,
          val_input=task[2][None], val_output=task[3][None], val_info=None)
      loss, accuracy, _ = leo(single, is_meta_training=True)
      return loss, accuracy

    with tf.GradientTape() as tape:
      losses, accuracies = tf.map_fn(
          one_task, (batch.tr_input, batch.tr_output, batch.val_input, batch.val_output),
          fn_output_signature=(tf.float32, tf.float32))
      loss = tf.reduce_mean(losses)
    gradients = tape.gradient(loss, leo.trainable_variables)
    clipped = meta_optimizer.apply(loss, gradients, leo.trainable_variables)
    return loss, tf.reduce_mean(accuracies), clipped

  return tf.function(train_step, autograph=False)


def time_calls(function, repeats: int):
  """Seconds of each of `repeats` calls, each waited for (its first output read back)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    outputs = function()
    np.asarray(outputs[0] if isinstance(outputs, (tuple, list)) else outputs)
    times.append(time.perf_counter() - start)
  return times


def spread(times):
  """Median and interquartile range, as text in milliseconds."""
  median = f"{1e3 * statistics.median(times):.1f} ms"
  if len(times) < 4:
    return median, "IQR n/a"
  quartiles = statistics.quantiles(times, n=4)
  return median, f"IQR {1e3 * quartiles[0]:.1f}-{1e3 * quartiles[2]:.1f} ms"


def peak_memory_gb() -> float:
  """This process's peak resident memory: Linux's VmHWM, since getrusage's maximum carries
  over exec from the process that started this one (a probe's would be its parent's)."""
  try:
    with open("/proc/self/status") as f:
      return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20
  except (OSError, StopIteration):
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux.


def step_flops(step) -> int:
  """Floating-point operations of one call of the traced `step`: TF's profiler count, plus
  the einsums, for which TF registers no statistics (2 x the product of their index sizes)."""
  graph = step.get_concrete_function().graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  flops = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
  for op in graph.get_operations():
    if op.type == "Einsum":
      inputs, output = op.get_attr("equation").decode().split("->")
      sizes = {}
      for operand, tensor in zip(inputs.split(","), op.inputs):
        sizes.update(zip(operand, tensor.shape.as_list()))
      flops += 2 * math.prod(sizes.values())
  return flops


def matmul_rate(seconds: float = 1.0) -> float:
  """FLOP/s of TF's float32 matmul (1024 x 1024 x 1024) with this process's threads."""
  a = tf.random.stateless_uniform([1024, 1024], [0, 1])
  product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
  product()
  calls, start = 0, time.perf_counter()
  while time.perf_counter() - start < seconds:
    product().numpy()
    calls += 1
  return calls * 2 * 1024**3 / (time.perf_counter() - start)


def time_interleaved(functions, repeats: int):
  """Seconds of `repeats` calls of each function, called in turn: a load that comes and goes
  falls on all of them alike."""
  times = [[] for _ in functions]
  for _ in range(repeats):
    for function, seconds in zip(functions, times):
      seconds.extend(time_calls(function, 1))
  return times


def benchmark_training(root, shots, steps, rows, rate, jit):
  """leo's step, beside the per-task reference (and leo's with XLA), of one shot count;
  returns leo's median (s)."""
  configs = configs_for(root, shots)
  episodes = data.Episodes(configs, need_train=True)
  outer = configs.outer
  variants = [("vectorised", None, training.make_train_step),
              ("per-task map_fn, original arithmetic", original_formulation_leo(),
               per_task_train_step)]
  if jit:
    variants.append(("vectorised, --jit_compile", None, functools.partial(
        training.make_train_step, jit_compile=True)))
  functions, firsts = [], []
  for _, leo_class, make in variants:
    leo, meta_optimizer = training.build_model(configs, episodes.embedding_dim,
                                               leo_class=leo_class)
    functions.append(make(leo, meta_optimizer, episodes.train, outer))
    firsts.extend(time_calls(functions[-1], 1))
  times = time_interleaved(functions, steps)
  medians = [statistics.median(t) for t in times]
  for (name, _, _), seconds, first in zip(variants, times, firsts):
    median, iqr = spread(seconds)
    rows.append((f"meta-train step, 5-way {shots}-shot, {name}", median, iqr,
                 f"first call (trace) {first:.2f} s"))
  rows.append((f"  speed-up of the vectorised step, {shots}-shot",
               f"{medians[1] / medians[0]:.2f}x", "", "calls interleaved"))
  if jit:
    rows.append((f"  --jit_compile vs plain, {shots}-shot", f"{medians[0] / medians[2]:.2f}x",
                 "", "> 1 if XLA is faster"))
  flops = step_flops(functions[0])
  floor = flops / rate
  rows.append((f"  compute floor, {shots}-shot", f"{1e3 * floor:.1f} ms",
               f"floor: {medians[0] / floor:.1f}x",
               f"{flops / 1e9:.2f} GFLOP / {rate / 1e9:.0f} GFLOP/s"))
  sample = tf.function(lambda: episodes.train.get_batch(
      outer.metatrain_batch_size, outer.num_classes, shots, outer.num_val_examples_per_class),
      autograph=False)
  time_calls(sample, 1)
  median, iqr = spread(time_calls(sample, steps))
  rows.append((f"episode sampling alone, 12 tasks {shots}-shot", median, iqr, ""))
  return medians[0]


def several_steps_per_call(leo, meta_optimizer, sampler, outer):
  """`training.make_train_step`'s step, several per call: a `tf.while_loop` over the steps
  (one at a time), each step's loss and accuracy read back once per call (issue 25's lever,
  not kept: BENCHMARKS.md). A function of the number of steps, an int32 scalar tensor."""
  train_step = training.make_train_step(leo, meta_optimizer, sampler, outer).python_function

  def train_steps(num_steps):
    def body(index, losses, accuracies):
      result = train_step()
      return (index + 1, losses.write(index, result.loss),
              accuracies.write(index, result.accuracy))
    metrics = [tf.TensorArray(tf.float32, size=num_steps) for _ in range(2)]
    _, losses, accuracies = tf.while_loop(lambda index, *_: index < num_steps, body,
                                          [0, *metrics], parallel_iterations=1)
    return losses.stack(), accuracies.stack()

  return tf.function(train_steps, autograph=False)


def benchmark_steps_per_call(root, shots, steps_per_call, rounds, rows):
  """The runner's step, one per call, beside `steps_per_call` steps per call
  (`several_steps_per_call`), each round `steps_per_call` steps of each, interleaved; each
  call's metrics read back as the runner reads them."""
  configs = configs_for(root, shots)
  episodes = data.Episodes(configs, need_train=True)
  one, several = (make(*training.build_model(configs, episodes.embedding_dim), episodes.train,
                       configs.outer)
                  for make in (training.make_train_step, several_steps_per_call))
  def one_per_call():
    return [(float(result.loss), float(result.accuracy))
            for result in (one() for _ in range(steps_per_call))]
  def all_in_one_call():
    return [metric.numpy() for metric in several(tf.constant(steps_per_call))]
  time_calls(one, 1)
  time_calls(lambda: several(tf.constant(1)), 1)
  times = time_interleaved([one_per_call, all_in_one_call], rounds)
  medians = [statistics.median(t) / steps_per_call for t in times]
  for name, median in zip(("one per call (the runner's)", f"{steps_per_call} per call"),
                          medians):
    rows.append((f"meta-train step, 5-way {shots}-shot, {name}", f"{1e3 * median:.1f} ms",
                 "", f"median of {rounds} rounds of {steps_per_call} steps"))
  rows.append((f"  {steps_per_call} steps per call vs one, {shots}-shot",
               f"{medians[0] / medians[1]:.2f}x", "", "interleaved; > 1 if the loop is faster"))


class InterleavedLoop(logging.Handler):
  """Watches the runner's training log lines as they come and, at each but the last, runs a
  block of the bare step (`bare_step`, `block_steps` calls, each waited for): the loop's
  windows between two log lines and the bare blocks alternate, so a load that comes and goes
  falls on both alike. A window is timed by the wall clock from the end of the block before
  it to the next log line, everything the loop does included; one with a validation in it,
  or the session's first (tracing) step, is left out with its block."""

  def __init__(self, bare_step, block_steps: int):
    super().__init__(logging.INFO)
    self.bare_step, self.block_steps = bare_step, block_steps
    self.windows, self.blocks = [], []  # (steps, seconds) of the loop's and the bare step's.
    self.block_seconds = 0.0  # Of every block run, those left out too.
    self.open = None  # (step, its block's seconds, start) of the window since the last line.

  def emit(self, record):
    now, message = time.perf_counter(), record.getMessage()
    if re.match(r"Step: \d+ meta-valid", message):
      self.open = None
    match = re.match(r"Step: (\d+)/(\d+) ", message)
    if not match:
      return
    step, limit = int(match[1]), int(match[2])
    if self.open:
      start_step, block, start = self.open
      self.windows.append((step - start_step, now - start))
      self.blocks.append((self.block_steps, block))
    self.open = None
    if step < limit:
      block = sum(time_calls(self.bare_step, self.block_steps))
      self.block_seconds += block
      self.open = (step, block, time.perf_counter())

  @staticmethod
  def rate(timed) -> float:
    """Steps per second of (steps, seconds) pairs, NaN if none."""
    seconds = sum(seconds for _, seconds in timed)
    return sum(steps for steps, _ in timed) / seconds if timed else float("nan")


def benchmark_whole_loop(root, shots, num_steps, checkpoint_steps, log_steps, valid_batch,
                         rows):
  """The runner's `training.train` from a fresh folder to `num_steps`, tracing, validations
  and checkpoints included (no test): what a user waits for; and its loop between
  validations beside the bare step, interleaved (`InterleavedLoop`). Returns the loop's
  steps/s and the mean seconds of its validations after the first (which traces)."""
  configs = configs_for(root, shots)
  episodes = data.Episodes(configs, need_train=True)
  bare = training.make_train_step(*training.build_model(configs, episodes.embedding_dim),
                                  episodes.train, configs.outer)
  time_calls(bare, 1)  # Traces.
  watch, logger = InterleavedLoop(bare, log_steps), logging.getLogger("absl")
  level = logger.level
  logger.addHandler(watch)
  logger.setLevel(logging.INFO)
  try:
    with tempfile.TemporaryDirectory() as run_dir:
      configs = dataclasses.replace(
          configs,
          outer=dataclasses.replace(configs.outer, num_steps_limit=num_steps,
                                    metavalid_batch_size=valid_batch),
          run=dataclasses.replace(configs.run, checkpoint_path=run_dir,
                                  checkpoint_steps=checkpoint_steps, log_steps=log_steps,
                                  evaluate_after_training=False))
      start = time.perf_counter()
      training.train(configs)
      blocks = watch.block_seconds
      seconds = time.perf_counter() - start - blocks
      validations = [entry["seconds"] for entry in records.read_validations(run_dir)]
  finally:
    logger.removeHandler(watch)
    logger.setLevel(level)
  rows.append((f"runner's train(), {num_steps:,} steps {shots}-shot", f"{seconds:.1f} s",
               f"{num_steps / seconds:.1f} steps/s",
               f"{len(validations)} validations {sum(validations):.1f} s; trace included; "
               f"the bare blocks of the row below ({blocks:.1f} s) left out"))
  loop, bare_rate = watch.rate(watch.windows), watch.rate(watch.blocks)
  rows.append((f"  loop between validations vs the bare step, {shots}-shot",
               f"{loop / bare_rate:.2f}x", f"{loop:.1f} / {bare_rate:.1f} steps/s",
               f"wall clock of {len(watch.windows)} log windows of {log_steps} steps, each "
               "after a block of as many bare steps; target >= 0.9x"))
  benchmark_window_reads(bare, log_steps, rows)
  return loop, statistics.mean(validations[1:] or validations)


def benchmark_window_reads(step, steps, rows, rounds: int = 20):
  """What the loop no longer does per step, beside what replaced it: reading each step's loss
  and accuracy as it comes (two reads a step) against one read of a log window's
  (`training.LogWindow.metrics`), on `steps` results of `step`, interleaved."""
  results = [step() for _ in range(steps)]

  def per_step():
    return [(float(result.loss), float(result.accuracy)) for result in results]

  def per_window():
    window = training.LogWindow()
    for result in results:
      window.add(result, 0.0, timed=True)
    return window.metrics

  assert per_step() == per_window()  # The same numbers, bit for bit.
  before, after = (statistics.median(t) / steps
                   for t in time_interleaved([per_step, per_window], rounds))
  rows.append(("  loop part: each step's loss and accuracy read", f"{1e6 * after:.1f} us/step",
               f"before {1e6 * before:.1f} us/step", f"two reads a step before, one read a "
               f"window of {steps} steps now; median of {rounds} rounds, interleaved"))


def benchmark_replicas(root, shots, steps, rows):
  """The vectorised step on one device and split between 2 replicas (2 logical CPUs)."""
  configs = configs_for(root, shots)
  episodes = data.Episodes(configs, need_train=True)
  medians = []
  for strategy in (tf.distribute.get_strategy(),
                   tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])):
    leo, meta_optimizer = training.build_model(configs, episodes.embedding_dim, strategy)
    step = training.make_train_step(leo, meta_optimizer, episodes.train, configs.outer,
                                  strategy=strategy)
    time_calls(step, 1)
    times = time_calls(step, steps)
    medians.append(statistics.median(times))
    median, iqr = spread(times)
    replicas = strategy.num_replicas_in_sync
    rows.append((f"meta-train step, 5-way {shots}-shot, {replicas} replica(s)", median, iqr,
                 "MirroredStrategy, 2 logical CPUs" if replicas > 1 else "default strategy"))
  rows.append((f"  2 replicas vs 1, {shots}-shot", f"{medians[0] / medians[1]:.2f}x", "", ""))


def gathered_leo_scores(leo):
  """The evaluation before LEOScores, the reference of its ratio: LEO on gathered episodes,
  the [tasks, N, V, D] query embeddings copied out of the split (as the baselines are)."""
  def task_accuracies(batch):
    loss, _, per_task_accuracy = leo(batch, is_meta_training=False)
    return loss, per_task_accuracy
  return evaluation.GatheredScores(task_accuracies)


def benchmark_evaluation(configs, num_tasks, batch_size, rows, label):
  """Seconds for `num_tasks` evaluation tasks with all remaining queries (after a warm-up)."""
  episodes = data.Episodes(configs, need_train=False)
  leo, _ = training.build_model(configs, episodes.embedding_dim)
  outer = configs.outer
  queries = episodes.test_queries
  evaluate = evaluation.Evaluator(evaluation.LEOScores(leo), episodes.test, batch_size,
                              outer.num_classes, outer.num_tr_examples_per_class, queries)
  evaluate(min(num_tasks, sizes.EVAL_TASKS_PER_CALL))  # Traces.
  load = load_average()
  start = time.perf_counter()
  evaluate(num_tasks)
  seconds = time.perf_counter() - start
  rows.append((label, f"{seconds:.2f} s", f"{num_tasks / seconds:.0f} tasks/s",
               f"{queries} queries/class; load {load} before"))
  return seconds


def benchmark_evaluation_against_gathered(configs, num_tasks, rounds, rows):
  """LEOScores beside the gathered episodes, on the same tasks, calls interleaved: the ratio
  and how many tasks' accuracies differ (float32)."""
  outer = configs.outer
  shots = outer.num_tr_examples_per_class
  evaluators = []
  for make_scores in (evaluation.LEOScores, gathered_leo_scores):
    episodes = data.Episodes(configs, need_train=False)  # Same seed: the same tasks.
    leo, _ = training.build_model(configs, episodes.embedding_dim)
    evaluators.append(evaluation.Evaluator(make_scores(leo), episodes.test, 200, outer.num_classes,
                                       shots, episodes.test_queries))
  times, accuracies = [[], []], [[], []]
  for round_ in range(rounds + 1):  # Round 0 traces.
    for evaluator, seconds, values in zip(evaluators, times, accuracies):
      start = time.perf_counter()
      values.append(evaluator(num_tasks)[1])
      if round_:
        seconds.append(time.perf_counter() - start)
  fast, gathered = (statistics.median(t) for t in times)
  differ = int(np.sum(np.concatenate(accuracies[0]) != np.concatenate(accuracies[1])))
  rows.append((f"meta-test {shots}-shot, gathered episodes (before)",
               f"{num_tasks / gathered:.0f} tasks/s", f"{gathered:.2f} s per {num_tasks}",
               f"median of {rounds} rounds"))
  rows.append((f"meta-test {shots}-shot, LEOScores (queries in place)",
               f"{num_tasks / fast:.0f} tasks/s", f"{fast:.2f} s per {num_tasks}",
               f"median of {rounds} rounds"))
  rows.append((f"  speed-up of the evaluation, {shots}-shot", f"{gathered / fast:.2f}x", "",
               f"interleaved; accuracies differing: {differ} of {(rounds + 1) * num_tasks} "
               "tasks"))


class GrowthCase(NamedTuple):
  """One shape of the growth rows, traced: its step and its test of the timed tasks."""
  dim: int
  ways: int
  shots: int
  queries: int  # Per class, all remaining.
  step: Callable
  flops: int  # The step's.
  test: Callable

  @property
  def scoring(self) -> int:
    """What the test's query logits grow with: N x Q queries against N vectors of D."""
    return self.ways * self.queries * self.ways * self.dim

  @property
  def pairs(self) -> int:
    """What the relation network grows with, in the step and in the test's adaptation:
    the (N K)² pairs of a task's support codes."""
    return (self.ways * self.shots) ** 2


def benchmark_cost_growth(root, steps, test_tasks, rows):
  """Step time and test time per 1,000 tasks of every shape of GROWTH_WAYS x GROWTH_SHOTS x
  GROWTH_DIMS (seed 0 each), all interleaved, each beside what its arithmetic predicts
  relative to the 5-way 1-shot 640-d row: the step's counted FLOPs, and for the test its two
  parts, the scoring of its queries and the adaptation's relation pairs (`GrowthCase`)."""
  cases = []
  # --quick: the smallest and largest shapes, the two smaller sizes (640-d is the base).
  ways_grown = GROWTH_WAYS[::len(GROWTH_WAYS) - 1] if FLAGS.quick else GROWTH_WAYS
  for dim in GROWTH_DIMS[:2] if FLAGS.quick else GROWTH_DIMS:
    name = f"growth{dim}d"
    write_synthetic_embeddings(root, name, GROWTH_SPLIT_CLASSES, dim=dim)
    configs = configs_for(root, 1, dataset_name=name)
    loaded = {split: data.load_split(configs.data, data.MetaSplit(split))
              for split in ("train", "test")}
    for ways, shots in itertools.product(ways_grown, GROWTH_SHOTS):
      configs = configs_for(root, shots, dataset_name=name, ways=ways)
      train, test = (data.DataProvider(split, configs.data, configs.run.seed, loaded[split])
                     for split in ("train", "test"))
      leo, meta_optimizer = training.build_model(configs, dim)
      step = training.make_train_step(leo, meta_optimizer, train, configs.outer)
      time_calls(step, 1)  # Traces.
      queries = test.remaining_examples_per_class(shots)
      evaluate = evaluation.Evaluator(evaluation.LEOScores(leo), test,
                                      sizes.EVAL_TASKS_PER_CALL, ways, shots, queries)
      evaluate(min(test_tasks, sizes.EVAL_TASKS_PER_CALL))  # Traces.
      cases.append(GrowthCase(dim, ways, shots, queries, step, step_flops(step),
                              functools.partial(evaluate, test_tasks)))
  step_times = [statistics.median(t)
                for t in time_interleaved([case.step for case in cases], steps)]
  test_times = [min(t) * 1000 / test_tasks
                for t in time_interleaved([case.test for case in cases], 2)]
  base = next(i for i, case in enumerate(cases)
              if (case.dim, case.ways, case.shots) == (EMBEDDING_DIM, 5, 1))
  for case, step, test in zip(cases, step_times, test_times):
    rows.append((f"cost growth: {case.ways}-way {case.shots}-shot, {case.dim}-d",
                 f"step {1e3 * step:.1f} ms", f"test {test:.2f} s per 1000 tasks",
                 f"step x{step / step_times[base]:.2f} (FLOPs "
                 f"x{case.flops / cases[base].flops:.2f}, {case.flops / step / 1e9:.0f} "
                 f"GFLOP/s); test x{test / test_times[base]:.2f} "
                 f"(scoring N x Q x N x D x{case.scoring / cases[base].scoring:.2f}, "
                 f"Q={case.queries}; pairs (N K)² x{case.pairs / cases[base].pairs:.0f})"))


def print_tiered_probe(root, steps):
  """The --probe_tiered mode, in a process of its own (its peak memory is the loading's):
  seconds to load and validate the tieredImageNet-sized splits, to digest them (a run's
  identity; the embeddings are hashed while loading, the keys then), the peak resident
  memory before and after (GB), the embeddings' float32 GB, the seconds to load the
  miniImageNet-sized splits and their GB, then the 1-shot step's and the episode sampling's
  medians on both, interleaved."""
  tf.zeros([1]).numpy()  # TF's runtime starts first: its memory is not the data's.
  before = peak_memory_gb()
  start = time.perf_counter()
  tiered = data.Episodes(configs_for(root, 1, dataset_name="tieredImageNet"), need_train=True)
  load = time.perf_counter() - start
  start = time.perf_counter()
  data.data_digest([tiered.train, tiered.valid, tiered.test])
  digest = time.perf_counter() - start
  after = peak_memory_gb()
  configs = configs_for(root, 1)
  start = time.perf_counter()
  mini = data.Episodes(configs, need_train=True)
  mini_load = time.perf_counter() - start
  tiered_gb, mini_gb = (
      sum(len(provider.split_data.keys) * provider.embedding_dim
          for provider in (episodes.train, episodes.valid, episodes.test)
          ) * np.dtype(np.float32).itemsize / 2**30 for episodes in (tiered, mini))
  outer = configs.outer
  steps_and_samples = []
  for episodes in (tiered, mini):
    step = training.make_train_step(*training.build_model(configs, EMBEDDING_DIM),
                                    episodes.train, outer)
    sample = tf.function(functools.partial(
        episodes.train.get_batch, outer.metatrain_batch_size, outer.num_classes, 1,
        outer.num_val_examples_per_class), autograph=False)
    for function in (step, sample):
      time_calls(function, 1)  # Traces.
      steps_and_samples.append(function)
  medians = [statistics.median(t) for t in time_interleaved(steps_and_samples, steps)]
  print("PROBE", load, digest, before, after, tiered_gb, mini_load, mini_gb, *medians)


def benchmark_tiered(root, steps, rows):
  """tieredImageNet-sized synthetic data (TIERED_SPLIT_CLASSES x TIERED_IMAGES_PER_CLASS x
  640-d, ~2 GB of float32): its loading, peak memory and step beside miniImageNet-sized."""
  images = QUICK_IMAGES_PER_CLASS if FLAGS.quick else TIERED_IMAGES_PER_CLASS
  write_synthetic_embeddings(root, "tieredImageNet", TIERED_SPLIT_CLASSES, images=images)
  write_synthetic_embeddings(root)
  (load, digest, before, after, gigabytes, mini_load, mini_gb, step_tiered, sample_tiered,
   step_mini, sample_mini) = probe(root, "--probe_tiered", f"--timed_steps={steps}")
  shape = "/".join(str(c) for c in TIERED_SPLIT_CLASSES.values())
  rows += [
      ("tieredImageNet-sized data loaded and validated", f"{load:.1f} s",
       f"digest {digest:.1f} s", f"{shape} classes x {images} x {EMBEDDING_DIM}-d, "
       f"{gigabytes:.2f} GB float32, {load / gigabytes:.1f} s/GB; miniImageNet-sized "
       f"{mini_load:.1f} s for {mini_gb:.2f} GB, {mini_load / mini_gb:.1f} s/GB; expect "
       "both linear in the bytes"),
      ("  peak resident memory, tieredImageNet-sized", f"{after:.2f} GB",
       f"{(after - before) / gigabytes:.2f}x the embeddings",
       f"loading and digest, own process ({before:.2f} GB before loading: "
       f"{after / gigabytes:.2f}x with it); target <= 2x"),
      ("  meta-train step 1-shot, tieredImageNet- vs miniImageNet-sized",
       f"{step_tiered / step_mini:.2f}x", f"{1e3 * step_tiered:.1f} / {1e3 * step_mini:.1f} ms",
       "interleaved; expect 1: a task gathers its own rows, whatever the split's size"),
      ("  episode sampling, tieredImageNet- vs miniImageNet-sized",
       f"{sample_tiered / sample_mini:.2f}x",
       f"{1e3 * sample_tiered:.1f} / {1e3 * sample_mini:.1f} ms",
       "12 tasks; expect ~1: keys for every class of the split and every image of a drawn "
       "class (351 vs 64 classes, 1300 vs 600 images), a small part of a step"),
  ]


def run_leo_command(*args):
  """Seconds a leo command (`python args...`, from the repository) takes as a whole process,
  its output (stdout then stderr), and the load average before it; raises if it fails."""
  load, start = load_average(), time.perf_counter()
  result = subprocess.run([sys.executable, *args], cwd=utils.REPOSITORY, capture_output=True,
                          text=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  seconds = time.perf_counter() - start
  if result.returncode:
    raise RuntimeError(f"{' '.join(args)} failed: {result.stderr[-2000:]}")
  return seconds, result.stdout + result.stderr, load


def benchmark_study_throughput(rows):
  """Trials per hour of one small fixed study (STUDY_TRIALS trials of STUDY_STEPS steps,
  tools/tune.py with runner.py trials on the bundled icons, 1 intra-op thread each), run
  by one tuner process and by two sharing it, each study from scratch, in STUDY_ROUNDS
  interleaved rounds: a host whose speed drifts over minutes falls on both alike."""
  trials, steps = (2, 4) if FLAGS.quick else (STUDY_TRIALS, STUDY_STEPS)
  rounds = 1 if FLAGS.quick else STUDY_ROUNDS
  tune_flags = [f"--num_trials={trials}", f"--num_steps_limit={steps}",
                f"--checkpoint_steps={steps // 2}", f"--params={','.join(STUDY_PARAMS)}",
                "--", "--dataset_name=icons", "--intra_op_threads=1"]
  load, seconds = load_average(), {1: [], 2: []}
  for _ in range(rounds):
    for tuners in seconds:
      with tempfile.TemporaryDirectory() as study_dir:
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(tuners) as pool:
          list(pool.map(lambda _: run_leo_command(
              "-m", "tools.tune", f"--study_dir={study_dir}", *tune_flags), range(tuners)))
        seconds[tuners].append(time.perf_counter() - start)
  rates = {tuners: trials * 3600 / statistics.median(times)
           for tuners, times in seconds.items()}
  for tuners, times in seconds.items():
    rows.append((f"study of {trials} trials x {steps} steps, {tuners} tuner process"
                 f"{'es' if tuners > 1 else ''}", f"{rates[tuners]:.0f} trials/h",
                 " / ".join(f"{t:.0f}" for t in times) + " s",
                 f"icons 1-shot, runner.py trials on 1 intra-op thread; median of {rounds} "
                 f"round(s), interleaved; load {load} before the first"))
  rows.append(("  two tuners vs one", f"{rates[2] / rates[1]:.2f}x", "",
               f"> 1 if sharing the study pays on {os.cpu_count()} cores"))


def readme_metatest_line() -> str:
  """The test line the README says its first command ends with."""
  with open(os.path.join(utils.REPOSITORY, "README.md"), encoding="utf-8") as readme:
    return next(line.strip() for line in readme if line.lstrip().startswith("Metatest accuracy:"))


def benchmark_first_command(rows):
  """The README's first command (`runner.py --preset=icons_1shot`, a fresh run folder) as a
  whole process: the time its reader waits for, and whether it ends with the README's line."""
  preset = config.PRESETS[FIRST_COMMAND_PRESET]
  # --quick: a step, a validation of one batch and a few test tasks, to show it runs.
  quick = (["--num_steps_limit=1", "--checkpoint_steps=1", "--metavalid_batch_size=2",
            "--num_test_tasks=20"] if FLAGS.quick else [])
  with tempfile.TemporaryDirectory() as run_dir:
    seconds, output, load = run_leo_command(
        "runner.py", f"--preset={FIRST_COMMAND_PRESET}", f"--checkpoint_path={run_dir}", *quick)
  line = [line for line in output.splitlines() if "Metatest accuracy:" in line][-1]
  line = line[line.index("Metatest accuracy:"):].strip()
  steps, every = preset["num_steps_limit"], preset["checkpoint_steps"]
  if FLAGS.quick:
    what = f"--quick: {' '.join(quick)}, not compared with the README"
  else:
    what = (f"{steps:,} steps, {steps // every + 1} validations, 10,000-task test, TF's start "
            "included; its test line " + ("is the README's" if line == readme_metatest_line()
                                          else f"differs from the README's: {line}"))
  rows.append((f"README's first command (--preset={FIRST_COMMAND_PRESET}), whole process",
               f"{seconds:.0f} s", f"{seconds / 60:.1f} min", f"{what}; load {load} before"))


def print_table(rows):
  widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
  header = ("measurement", "value", "spread / rate", "notes")
  widths = [max(w, len(h)) for w, h in zip(widths, header)]
  print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
  print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
  for row in rows:
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def cpu_model() -> str:
  """The CPU's model name (/proc/cpuinfo on Linux) and its number of logical cores."""
  name = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      name = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  return f"{name}, {os.cpu_count()} logical cores"


def load_average() -> str:
  return "/".join(f"{load:.1f}" for load in os.getloadavg()) + " (1/5/15 min)"


def probe(root, *args, environment=None):
  """The values a probe mode of this script (`args`) prints, run in a process of its own:
  TF fixes its threads, and oneDNN whether it is on, when it starts."""
  result = subprocess.run(
      [sys.executable, os.path.abspath(__file__), f"--data_dir={root}", f"--quick={FLAGS.quick}",
       *args], capture_output=True, text=True, check=True,
      env=dict(os.environ, **(environment or {})))
  return [float(value) for value in result.stdout.split("PROBE")[-1].split()]


# One core for numpy too in the probes, whose matmul rates are one core's.
ONE_CORE = dict(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def probe_threads(root, shots, threads, steps, onednn="1", matmuls=False):
  """(leo's step median, the reference's (s), and with `matmuls` the matmul rates of
  `matmul_rates`) with `threads` intra-op threads and oneDNN on ("1") or off ("0")."""
  values = probe(root, f"--probe_shots={shots}", f"--intra_op_threads={threads}",
                 f"--timed_steps={steps}", f"--probe_matmuls={matmuls}",
                 environment=dict(ONE_CORE, TF_ENABLE_ONEDNN_OPTS=onednn))
  return values[:2], values[2:]


def chained_products(lefts, right):
  """The sum of each left times right, one product after the other: independent products
  would run side by side on TF's inter-op threads, and their rate would not be one core's."""
  total = tf.constant(0.0)
  for left in lefts:
    with tf.control_dependencies([total]):
      total += tf.reduce_sum(tf.matmul(left, right))
  return total


def matmul_rates(seconds: float):
  """GFLOP/s of float32 matmuls of each of MATMUL_SHAPES, TF's then numpy's. TF's run
  several independent products per call, so that the call's own cost is not counted (each
  op's is, as in the step)."""
  def rate(function, flops):
    function()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
      function()
      calls += 1
    return calls * flops / (time.perf_counter() - start) / 1e9

  rates = []
  for rows, inner, columns in MATMUL_SHAPES:
    products = max(1, min(20, 2**30 // (rows * inner * columns)))
    lefts = [tf.random.stateless_uniform([rows, inner], [i, 0]) for i in range(products)]
    right = tf.random.stateless_uniform([inner, columns], [0, 1])
    multiply = tf.function(functools.partial(chained_products, lefts, right))
    flops = 2 * rows * inner * columns
    rates.append(rate(lambda: multiply().numpy(), products * flops))  # pylint: disable=cell-var-from-loop
    left, right = lefts[0].numpy(), right.numpy()
    rates.append(rate(lambda: left @ right, flops))  # pylint: disable=cell-var-from-loop
  return rates


def benchmark_onednn(root, one_thread, steps, rows):
  """The step and the matmuls with TF's oneDNN kernels off, each shot count in a process of
  its own (TF_ENABLE_ONEDNN_OPTS is read when TF starts), beside `one_thread`'s measurements
  with them on (TF's default on x86 Linux): {shots: ((leo's, reference's medians), matmul
  rates or [])}, one intra-op thread and one numpy thread."""
  off = {shots: probe_threads(root, shots, 1, steps, onednn="0", matmuls=bool(rates))
         for shots, (_, rates) in one_thread.items()}
  rates_on, rates_off = one_thread[1][1], off[1][1]
  for index, (rows_, inner, columns) in enumerate(MATMUL_SHAPES):
    rows.append((f"float32 matmul [{rows_},{inner}]x[{inner},{columns}], 1 thread",
                 f"TF {rates_on[2 * index]:.0f} GFLOP/s", f"oneDNN off "
                 f"{rates_off[2 * index]:.0f}", f"numpy {rates_on[2 * index + 1]:.0f} "
                 "GFLOP/s (its OpenBLAS)"))
  for shots in one_thread:
    medians = {}
    for name, ((mine, reference), _) in (("on", one_thread[shots]), ("off", off[shots])):
      medians[name] = mine
      rows.append((f"{shots}-shot step with oneDNN {name}", f"{1e3 * mine:.1f} ms",
                   f"reference {1e3 * reference:.1f} ms",
                   f"{reference / mine:.2f}x, own process, 1 thread"))
    rows.append((f"  oneDNN on vs off, {shots}-shot", f"{medians['off'] / medians['on']:.2f}x",
                 "", "> 1 if oneDNN is faster"))


def print_probe(root, shots, steps):
  """The --probe_shots mode: the two steps' medians, then with --probe_matmuls the matmul
  rates, on one line."""
  configs = configs_for(root, shots)
  episodes = data.Episodes(configs, need_train=True)
  functions = []
  for leo_class, make in ((None, training.make_train_step),
                          (original_formulation_leo(), per_task_train_step)):
    leo, meta_optimizer = training.build_model(configs, episodes.embedding_dim,
                                               leo_class=leo_class)
    functions.append(make(leo, meta_optimizer, episodes.train, configs.outer))
    time_calls(functions[-1], 1)
  medians = [statistics.median(t) for t in time_interleaved(functions, steps)]
  print("PROBE", *medians, *(matmul_rates(0.2 if FLAGS.quick else 1.0)
                             if FLAGS.probe_matmuls else []))


def benchmark_defaults(root, steps, rows):
  """The default rows: the steps, the loop, the evaluations, replicas, threads, oneDNN and
  the projected full run."""
  test_tasks = 20 if FLAGS.quick else FLAGS.timed_test_tasks
  reference_tasks = 16 if FLAGS.quick else FLAGS.reference_test_tasks
  rounds = 1 if FLAGS.quick else 3
  valid_batch = 4 if FLAGS.quick else 200
  # As many as a log line's: --log_steps' 100 by default.
  steps_per_call = 2 if FLAGS.quick else config.RunConfig().log_steps
  rounds_per_call = 1 if FLAGS.quick else 3
  loop_steps = 4 if FLAGS.quick else 1000
  start = time.perf_counter()
  write_synthetic_embeddings(root)
  rows.append(("synthetic miniImageNet-sized data written",
               f"{time.perf_counter() - start:.1f} s", "",
               f"64/16/20 classes x {images_per_class()} x {EMBEDDING_DIM}-d"))
  rate = matmul_rate(0.2 if FLAGS.quick else 2.0)
  rows.append(("float32 matmul rate (1024^3)", f"{rate / 1e9:.0f} GFLOP/s", "",
               "the compute floors' denominator"))
  benchmark_training(root, 1, steps, rows, rate, jit=not FLAGS.quick)
  benchmark_steps_per_call(root, 1, steps_per_call, rounds_per_call, rows)
  loop_rate, validation_seconds = benchmark_whole_loop(
      root, 1, loop_steps, loop_steps // 2 if FLAGS.quick else 1000,
      1 if FLAGS.quick else config.RunConfig().log_steps, valid_batch, rows)
  configs = configs_for(root, 1)
  valid_tasks = config.NUM_VALID_BATCHES * valid_batch
  benchmark_evaluation(configs, valid_tasks, valid_batch, rows,
                       f"meta-validation, {valid_tasks} tasks 1-shot")
  test_seconds = benchmark_evaluation(configs, test_tasks, 200, rows,
                                      f"meta-test, {test_tasks} tasks 1-shot (timed)")
  benchmark_evaluation_against_gathered(configs, reference_tasks, rounds, rows)
  benchmark_training(root, 5, steps, rows, rate, jit=not FLAGS.quick)
  benchmark_steps_per_call(root, 5, steps_per_call, rounds_per_call, rows)
  configs_5 = configs_for(root, 5)
  benchmark_evaluation(configs_5, test_tasks, 200, rows,
                       f"meta-test, {test_tasks} tasks 5-shot (timed)")
  benchmark_evaluation_against_gathered(configs_5, reference_tasks, rounds, rows)
  for shots in (1, 5):
    benchmark_replicas(root, shots, steps, rows)
  one_thread = {}  # Also oneDNN's "on" (TF's default): {shots: (medians, matmul rates)}.
  for shots in (1, 5):
    for threads in range(1, min(os.cpu_count() or 1, 4) + 1):
      if FLAGS.quick and (shots, threads) != (1, 1):
        continue  # One probe shows that they run.
      (mine, reference), rates = probe_threads(root, shots, threads, steps,
                                               matmuls=(shots, threads) == (1, 1))
      if threads == 1:
        one_thread[shots] = ((mine, reference), rates)
      rows.append((f"{shots}-shot step with {threads} intra-op thread(s)",
                   f"{1e3 * mine:.1f} ms", f"reference {1e3 * reference:.1f} ms",
                   f"{reference / mine:.2f}x, own process"))
  benchmark_onednn(root, one_thread, steps, rows)
  benchmark_first_command(rows)
  test_10k = test_seconds * 10000 / test_tasks  # Measured, with the default 10,000 tasks.
  # The loop's own validations: 2,000 tasks, their checkpoints and records included.
  valid_full = validation_seconds * 2000 / valid_tasks
  projected = FULL_RUN_STEPS / loop_rate + FULL_RUN_VALIDATIONS * valid_full + test_10k
  rows += [
      ("10,000-task meta-test, 1-shot", f"{test_10k:.1f} s", "",
       "measured" if test_tasks == 10000 else f"projected from {test_tasks} tasks"),
      ("projected full default 1-shot run", f"{projected / 60:.1f} min", "",
       f"100k steps at the loop's {loop_rate:.1f} steps/s + 101 validations of "
       f"{valid_full:.2f} s (the loop's) + 10k-task test"),
  ]


def main(unused_argv):
  with tempfile.TemporaryDirectory() as scratch:
    root = FLAGS.data_dir or scratch
    configs = configs_for(root, FLAGS.probe_shots or 1, FLAGS.intra_op_threads)
    distribute.configure_threads(configs)
    threads_line = distribute.threads_line(configs)
    steps = 3 if FLAGS.quick else FLAGS.timed_steps
    if FLAGS.probe_shots:
      return print_probe(root, FLAGS.probe_shots, FLAGS.timed_steps)
    if FLAGS.probe_tiered:
      return print_tiered_probe(root, FLAGS.timed_steps)
    # Two logical CPUs for the replica rows; other rows run on the first, as without them.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    rows = [("CPU", cpu_model(), "", threads_line),
            ("load average at the start", load_average(), "", "shared machines: read ratios")]
    if FLAGS.default_rows:
      benchmark_defaults(root, steps, rows)
    if FLAGS.cost_growth:
      benchmark_cost_growth(root, steps, 20 if FLAGS.quick else sizes.EVAL_TASKS_PER_CALL,
                            rows)
      benchmark_tiered(root, steps, rows)
    if FLAGS.study_throughput:
      benchmark_study_throughput(rows)
    rows += [("peak resident memory", f"{peak_memory_gb():.2f} GB", "", "whole process"),
             ("load average at the end", load_average(), "", "")]
  print_table(rows)


if __name__ == "__main__":
  app.run(main)
