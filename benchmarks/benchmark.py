# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""How fast leo trains and evaluates, measured against the original's per-task formulation.

    python benchmarks/benchmark.py            # the full table (a few minutes on 2 cores)
    python benchmarks/benchmark.py --quick    # a few steps of everything, to show it runs

It writes a miniImageNet-sized synthetic dataset in the published layout (64/16/20 classes of
600 images, 640-d), then times, in one process and with the runner's own code paths: the
compiled meta-training step, its first (tracing) call, episode sampling alone, a meta-validation
(10 x 200 tasks) and meta-test throughput with all remaining queries. The same math written per
task with `tf.map_fn`, as the original runner did, runs beside it, so every speed is also a
ratio measured side by side (these machines are noisy; ratios travel better than seconds).
"""

import os
import pickle
import resource
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import config  # pylint: disable=g-import-not-at-top,wrong-import-position
import runner  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_boolean("quick", False, "A few steps of everything (for CI), not timings.")
flags.DEFINE_string("data_dir", None, "Where to write the synthetic embeddings (default: a "
                    "temporary folder, removed at the end).")
flags.DEFINE_integer("timed_steps", 40, "Timed meta-training steps per variant.")
flags.DEFINE_integer("timed_test_tasks", 2000, "Meta-test tasks timed per query count.")
FLAGS = flags.FLAGS

SPLIT_CLASSES = {"train": 64, "val": 16, "test": 20}
IMAGES_PER_CLASS = 600
EMBEDDING_DIM = 640
FULL_RUN_STEPS = 100000
FULL_RUN_VALIDATIONS = FULL_RUN_STEPS // 1000 + 1  # Steps 0, 1000, ..., 100000.


def write_synthetic_embeddings(root: str, seed: int = 0):
  """miniImageNet-sized random embeddings in the published layout (Python 3 pickles)."""
  rng = np.random.default_rng(seed)
  for split, num_classes in SPLIT_CLASSES.items():
    path = os.path.join(root, "miniImageNet", "center", f"{split}_embeddings.pkl")
    if os.path.exists(path):
      continue
    os.makedirs(os.path.dirname(path), exist_ok=True)
    names = [f"n{split[0]}{c:04d}" for c in range(num_classes)]
    keys = np.array([f"{i}-{name}-{name}_{i:04d}.JPEG" for name in names
                     for i in range(IMAGES_PER_CLASS)])
    embeddings = np.abs(rng.normal(size=(len(keys), EMBEDDING_DIM))).astype(np.float32)
    with open(path, "wb") as f:
      pickle.dump({"keys": keys, "embeddings": embeddings}, f, protocol=4)


def configs_for(root: str, shots: int) -> runner.Configs:
  return runner.Configs(
      data=config.DataConfig(data_path=root, dataset_name="miniImageNet"),
      inner=config.InnerModelConfig(),
      outer=config.OuterModelConfig(num_tr_examples_per_class=shots),
      run=config.RunConfig(checkpoint_path=os.path.join(root, "unused")))


def original_formulation_leo():
  """LEO computed the way the original code wrote it, the reference of every ratio.

  The same numbers as `model.LEO` (its tests pin the relation network and the logits against
  hand computations), with the original's own arithmetic: the relation network applied to
  every explicit pair [e_i; e_j] of the task's N K codes, logits against all K weight
  vectors of a class, averaged afterwards, inner-loop gradients taken by a nested tape, and
  dropout masks from one float uniform per unit.
  """
  tf, model = runner.tf, runner.model

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
  tf = runner.tf

  def train_step():
    batch = sampler.get_batch(outer.metatrain_batch_size, outer.num_classes,
                              outer.num_tr_examples_per_class, outer.num_val_examples_per_class)

    def one_task(task):
      single = runner.data.ProblemInstance(
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
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux.


def benchmark_training(root, shots, steps, rows):
  """Vectorised and per-task steps of one shot count; returns the vectorised median (s)."""
  configs = configs_for(root, shots)
  episodes = runner.Episodes(configs, need_train=True)
  outer = configs.outer
  medians = {}
  for variant in ("vectorised", "per-task map_fn"):
    original = variant != "vectorised"
    leo, meta_optimizer = runner.build_model(
        configs, episodes, leo_class=original_formulation_leo() if original else None)
    make = per_task_train_step if original else runner.make_train_step
    step = make(leo, meta_optimizer, episodes.train, outer)
    (first,) = time_calls(step, 1)
    times = time_calls(step, steps)
    medians[variant] = statistics.median(times)
    median, iqr = spread(times)
    name = "per-task map_fn, original arithmetic" if original else variant
    rows.append((f"meta-train step, 5-way {shots}-shot, {name}", median, iqr,
                 f"first call (trace) {first:.2f} s"))
  rows.append((f"  speed-up of the vectorised step, {shots}-shot",
               f"{medians['per-task map_fn'] / medians['vectorised']:.2f}x", "", ""))
  sample = runner.tf.function(lambda: episodes.train.get_batch(
      outer.metatrain_batch_size, outer.num_classes, shots, outer.num_val_examples_per_class),
      autograph=False)
  time_calls(sample, 1)
  median, iqr = spread(time_calls(sample, steps))
  rows.append((f"episode sampling alone, 12 tasks {shots}-shot", median, iqr, ""))
  return medians["vectorised"], configs, episodes, leo


def benchmark_replicas(root, shots, steps, rows):
  """The vectorised step on one device and split between 2 replicas (2 logical CPUs)."""
  tf = runner.tf
  configs = configs_for(root, shots)
  episodes = runner.Episodes(configs, need_train=True)
  medians = []
  for strategy in (tf.distribute.get_strategy(),
                   tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])):
    leo, meta_optimizer = runner.build_model(configs, episodes, strategy)
    step = runner.make_train_step(leo, meta_optimizer, episodes.train, configs.outer,
                                  strategy=strategy)
    time_calls(step, 1)
    times = time_calls(step, steps)
    medians.append(statistics.median(times))
    median, iqr = spread(times)
    replicas = strategy.num_replicas_in_sync
    rows.append((f"meta-train step, 5-way {shots}-shot, {replicas} replica(s)", median, iqr,
                 "MirroredStrategy, 2 logical CPUs" if replicas > 1 else "default strategy"))
  rows.append((f"  2 replicas vs 1, {shots}-shot", f"{medians[0] / medians[1]:.2f}x", "", ""))


def benchmark_evaluation(configs, episodes, num_tasks, batch_size, rows, label):
  """Seconds for `num_tasks` evaluation tasks with all remaining queries (after a warm-up)."""
  leo, _ = runner.build_model(configs, episodes)
  outer = configs.outer
  queries = episodes.test_queries
  evaluate = runner.Evaluator(runner.leo_task_accuracies(leo), episodes.test, batch_size,
                              outer.num_classes, outer.num_tr_examples_per_class, queries)
  evaluate(evaluate.chunk)  # Traces.
  start = time.perf_counter()
  evaluate(num_tasks)
  seconds = time.perf_counter() - start
  rows.append((label, f"{seconds:.2f} s", f"{num_tasks / seconds:.0f} tasks/s",
               f"{queries} queries/class"))
  return seconds


def print_table(rows):
  widths = [max(len(str(row[i])) for row in rows) for i in range(4)]
  header = ("measurement", "value", "spread / rate", "notes")
  widths = [max(w, len(h)) for w, h in zip(widths, header)]
  print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
  print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
  for row in rows:
    print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |")


def main(unused_argv):
  runner.import_tensorflow()
  runner.configure_threads()
  # Two logical CPUs for the replica rows; other rows run on the first, as without them.
  cpu = runner.tf.config.list_physical_devices("CPU")[0]
  runner.tf.config.set_logical_device_configuration(
      cpu, [runner.tf.config.LogicalDeviceConfiguration()] * 2)
  steps = 3 if FLAGS.quick else FLAGS.timed_steps
  test_tasks = 20 if FLAGS.quick else FLAGS.timed_test_tasks
  valid_batch = 4 if FLAGS.quick else 200
  with tempfile.TemporaryDirectory() as scratch:
    root = FLAGS.data_dir or scratch
    start = time.perf_counter()
    write_synthetic_embeddings(root)
    rows = [("synthetic miniImageNet-sized data written", f"{time.perf_counter() - start:.1f} s",
             "", "64/16/20 classes x 600 x 640-d")]
    step_1shot, configs, episodes, _ = benchmark_training(root, 1, steps, rows)
    valid_tasks = config.NUM_VALID_BATCHES * valid_batch
    valid_seconds = benchmark_evaluation(configs, episodes, valid_tasks, valid_batch, rows,
                                         f"meta-validation, {valid_tasks} tasks 1-shot")
    test_seconds = benchmark_evaluation(configs, episodes, test_tasks, 200, rows,
                                        f"meta-test, {test_tasks} tasks 1-shot")
    benchmark_training(root, 5, steps, rows)
    configs_5 = configs_for(root, 5)
    benchmark_evaluation(configs_5, runner.Episodes(configs_5, need_train=False), test_tasks,
                         200, rows, f"meta-test, {test_tasks} tasks 5-shot")
    for shots in (1, 5):
      benchmark_replicas(root, shots, steps, rows)
    test_10k = test_seconds * 10000 / test_tasks
    valid_full = valid_seconds * 2000 / valid_tasks
    projected = FULL_RUN_STEPS * step_1shot + FULL_RUN_VALIDATIONS * valid_full + test_10k
    rows += [
        ("projected 10,000-task meta-test, 1-shot", f"{test_10k:.0f} s", "", ""),
        ("projected full default 1-shot run", f"{projected / 60:.1f} min", "",
         "100k steps + 101 validations + 10k-task test"),
        ("peak resident memory", f"{peak_memory_gb():.2f} GB", "", "whole process"),
    ]
  print_table(rows)


if __name__ == "__main__":
  app.run(main)
