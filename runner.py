# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Meta-trains LEO, keeps the best checkpoint by validation accuracy, and evaluates it.

    python runner.py --data_path=$EMBEDDINGS                    # train, then test the best
    python runner.py --evaluation_mode --checkpoint_path=/tmp/leo   # test a trained run

The loop is the original's: validate at step 0 and every `checkpoint_steps`, keep the
checkpoint with strictly higher validation accuracy in `<checkpoint_path>/best_checkpoint`,
train to `num_steps_limit`. Restarting the same command resumes from the latest checkpoint.
"""

import contextlib
import dataclasses
import json
import logging as logging_lib
import os
import shutil
import sys
import time

from absl import app
from absl import logging
import numpy as np

import config
import utils

# Kept off until the user-facing checks have run: importing TF is slow and noisy.
tf = data = model = baselines = None

_HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG_FILE = "config.json"
BEST_FOLDER = "best_checkpoint"
RESULTS_FILE = "test_accuracy.json"
CHECKPOINT_NAME = "model.ckpt"
MAX_CHECKPOINTS_TO_KEEP = 3
# Evaluation tasks are run in chunks whose query embeddings take at most this many bytes, so
# 200 tasks x 5 classes x 599 queries x 640 floats (1.5 GB) are never materialised at once.
EVAL_CHUNK_BYTES = 64 * 2**20


def import_tensorflow():
  """Imports TF and the modules that need it, with TF's start-up chatter silenced."""
  global tf, data, model, baselines  # pylint: disable=global-statement
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  stderr = os.dup(2)
  with open(os.devnull, "w") as devnull:
    os.dup2(devnull.fileno(), 2)
    try:
      import tensorflow  # pylint: disable=g-import-not-at-top
      tensorflow.config.list_physical_devices()
    finally:
      os.dup2(stderr, 2)
      os.close(stderr)
  tf = tensorflow
  tf.get_logger().setLevel("ERROR")
  import baselines as baselines_module  # pylint: disable=g-import-not-at-top
  import data as data_module  # pylint: disable=g-import-not-at-top
  import model as model_module  # pylint: disable=g-import-not-at-top
  data, model, baselines = data_module, model_module, baselines_module


class _OwnRecordsOrWarnings(logging_lib.Filter):
  """Keeps leo's own log lines and anyone's warnings: TF's checkpointing logs at INFO too."""

  def filter(self, record):
    return record.levelno >= logging_lib.WARNING or record.pathname.startswith(_HERE)


# Intra-op threads on small CPUs by shot count, measured with benchmarks/benchmark.py on 2
# cores (its thread rows; BENCHMARKS.md): LEO's ops are tiny, so extra threads mostly add
# synchronisation. Other shot counts take the nearest measured one.
MEASURED_INTRA_OP_THREADS = {1: 1, 5: 2}
MEASURED_MAX_CORES = 4  # The largest CPU the table is trusted for.


def configure_threads(configs: "Configs" = None) -> str:
  """Sets TF's intra-op threads before any op runs, and prints the choice once.

  `--intra_op_threads` if given; else on a CPU of at most MEASURED_MAX_CORES cores the
  measured choice for the task shape; else (a GPU, or a CPU nobody measured) TF's default.

  Returns:
    The printed line.
  """
  requested = configs.run.intra_op_threads if configs else 0
  cores = os.cpu_count() or 1
  if requested:
    threads, why = requested, "--intra_op_threads"
  elif tf.config.list_physical_devices("GPU") or cores > MEASURED_MAX_CORES:
    threads, why = 0, f"TF's default; {cores} cores, not measured"
  else:
    shots = configs.outer.num_tr_examples_per_class if configs else 1
    nearest = min(MEASURED_INTRA_OP_THREADS, key=lambda measured: abs(measured - shots))
    threads = min(MEASURED_INTRA_OP_THREADS[nearest], cores)
    why = f"measured for {nearest}-shot tasks on <= {MEASURED_MAX_CORES} cores"
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
  line = f"Intra-op threads: {threads or 'all'} ({why})"
  print(line, flush=True)
  return line


@dataclasses.dataclass(frozen=True)
class Configs:
  """Everything a run is made of; saved as JSON beside its checkpoints."""
  data: config.DataConfig
  inner: config.InnerModelConfig
  outer: config.OuterModelConfig
  run: config.RunConfig

  def to_json(self, embedding_dim: int):
    return {"data_config": config.as_dict(self.data),
            "inner_model_config": config.as_dict(self.inner),
            "outer_model_config": config.as_dict(self.outer),
            "seed": self.run.seed, "embedding_dim": embedding_dim}


# ---- Episodes and evaluation. ----

class Episodes:
  """The three splits' samplers and the task shapes of the protocol."""

  def __init__(self, configs: Configs, need_train: bool):
    outer, seed = configs.outer, configs.run.seed
    shots, num_classes = outer.num_tr_examples_per_class, outer.num_classes
    self.train = data.DataProvider("train", configs.data, seed) if need_train else None
    self.valid = data.DataProvider("val", configs.data, seed) if need_train else None
    self.test = data.DataProvider("test", configs.data, seed)
    fixed = outer.num_eval_examples_per_class
    self.valid_queries = self.valid and self.valid.remaining_examples_per_class(shots, fixed)
    self.test_queries = self.test.remaining_examples_per_class(shots, fixed)
    # Every shape is checked now, before anything is written or trained.
    if need_train:
      self.train.check_task_shape(num_classes, shots, outer.num_val_examples_per_class)
      self.valid.check_task_shape(num_classes, shots, self.valid_queries)
    self.test.check_task_shape(num_classes, shots, self.test_queries)
    dims = {p.embedding_dim for p in (self.train, self.valid, self.test) if p}
    if len(dims) != 1:
      raise data.DataError(f"the splits of --dataset_name={configs.data.dataset_name} have "
                           f"different embedding sizes {sorted(dims)}")
    self.embedding_dim = dims.pop()


def chunk_size(batch_size: int, num_classes: int, examples: int, dim: int,
               replicas: int = 1) -> int:
  """The largest divisor of `batch_size` that the replicas share evenly and whose tasks fit
  in EVAL_CHUNK_BYTES per replica (so each evaluation is traced once)."""
  fits = replicas * max(1, EVAL_CHUNK_BYTES // (num_classes * examples * dim * 4))
  sizes = [d for d in range(replicas, batch_size + 1, replicas)
           if batch_size % d == 0 and d <= fits]
  if not sizes:
    raise utils.LeoError(f"a batch of {batch_size} tasks cannot be shared evenly by "
                         f"{replicas} replicas: choose a batch size that is a multiple of "
                         f"{replicas}")
  return max(sizes)


# ---- Distribution. ----

def make_strategy(name: str):
  """The `tf.distribute` strategy of `--distribution_strategy`."""
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker_mirrored":  # Configured by the TF_CONFIG environment variable.
    return tf.distribute.MultiWorkerMirroredStrategy()
  return tf.distribute.get_strategy()


def is_chief(strategy) -> bool:
  """Whether this process writes the run's files (only one of the workers does)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  return (resolver.task_type == "worker" and resolver.task_id == 0
          and "chief" not in resolver.cluster_spec().as_dict())


def run_on_replicas(strategy, function, batch, *args):
  """`function(part, task_offset, total_tasks, *args)` on each replica's share of the tasks.

  Every replica receives the whole `batch` (sampled once, as on one device) and takes its own
  consecutive tasks, so replica r of R runs tasks [r T/R, (r + 1) T/R).
  """
  total = batch.tr_input.shape[0]
  local = total // strategy.num_replicas_in_sync
  tensors = (batch.tr_input, batch.tr_output, batch.val_input, batch.val_output)

  def replica_function(tensors, *args):
    offset = tf.distribute.get_replica_context().replica_id_in_sync_group * local
    part = [tf.ensure_shape(t[offset:offset + local], [local] + t.shape[1:]) for t in tensors]
    problem = data.ProblemInstance(part[0], part[1], None, part[2], part[3], None)
    return function(problem, offset, total, *args)

  return strategy.run(replica_function, args=(tensors, *args))


def _mean(strategy, value):
  return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)


class Evaluator:
  """Per-task query accuracies of fresh tasks, sampled and scored in one compiled call.

  Tasks are run in chunks of a fixed size (a divisor of `batch_size` that fits in
  EVAL_CHUNK_BYTES), so the step is traced once whatever the number of tasks; the surplus
  tasks of the last chunk are dropped.
  """

  def __init__(self, task_accuracies, provider, batch_size: int, num_classes: int, shots: int,
               queries: int, strategy=None):
    """
    Args:
      task_accuracies: `(ProblemInstance) -> (loss, per-task accuracy [tasks])`.
      provider: the `data.DataProvider` of the split.
      batch_size, num_classes, shots, queries: the protocol's task shape.
      strategy: a `tf.distribute` strategy whose replicas share each chunk's tasks.
    """
    strategy = strategy or tf.distribute.get_strategy()
    self.chunk = chunk_size(batch_size, num_classes, shots + queries, provider.embedding_dim,
                            strategy.num_replicas_in_sync)

    def step():
      batch = provider.get_batch(self.chunk, num_classes, shots, queries)
      loss, accuracy = run_on_replicas(strategy, lambda part, *_: task_accuracies(part), batch)
      return _mean(strategy, loss), strategy.gather(accuracy, axis=0)

    self._step = tf.function(step, autograph=False)

  def __call__(self, num_tasks: int):
    """(mean loss, per-task accuracies as a numpy array [num_tasks])."""
    losses, accuracies, done = [], [], 0
    while done < num_tasks:
      loss, accuracy = self._step()
      losses.append(float(loss))
      accuracies.append(accuracy.numpy()[:num_tasks - done])
      done += len(accuracies[-1])
    return float(np.mean(losses)), np.concatenate(accuracies)


def describe_result(accuracy: float, half_width: float, num_tasks: int, num_classes: int,
                    shots: int, queries: int, trained_on: str, method: str = "") -> str:
  """The line papers report, e.g. `Metatest accuracy: 61.89% ± 0.16% (95% CI ...)`."""
  return (f"Metatest accuracy{method}: {accuracy:.2%} ± {half_width:.2%} (95% CI over "
          f"{num_tasks} tasks; {num_classes}-way {shots}-shot; {queries} queries/class; "
          f"{trained_on})")


def run_test(task_accuracies, episodes: Episodes, configs: Configs, results_path, extra,
             method: str = "", strategy=None):
  """Evaluates on the test split, prints the result line and writes it as JSON.

  Args:
    task_accuracies: `(ProblemInstance) -> (loss, per-task accuracy [tasks])`.
    results_path: where to write the JSON; None on the workers that do not report.
    method: "" for LEO, else the baseline's name.
    strategy: the `tf.distribute` strategy whose replicas share the tasks.
  """
  outer = configs.outer
  start = time.time()
  _, accuracies = Evaluator(task_accuracies, episodes.test, outer.metatest_batch_size,
                            outer.num_classes, outer.num_tr_examples_per_class,
                            episodes.test_queries, strategy)(outer.num_test_tasks)
  mean, half_width = utils.mean_and_confidence_interval(accuracies)
  trained_on = ("fitted on each task's support set" if method else
                f"meta-trained on {'train+val' if configs.data.train_on_val else 'train'}")
  line = describe_result(mean, half_width, len(accuracies), outer.num_classes,
                         outer.num_tr_examples_per_class, episodes.test_queries, trained_on,
                         f" of {method}" if method else "")
  if results_path is None:
    return mean, half_width
  print(line, flush=True)
  utils.atomic_write_json(results_path, dict(
      extra, method=method or "leo", accuracy=mean, ci95=half_width, num_tasks=len(accuracies),
      summary=line, num_classes=outer.num_classes,
      num_tr_examples_per_class=outer.num_tr_examples_per_class,
      queries_per_class=episodes.test_queries, train_on_val=configs.data.train_on_val,
      dataset_name=configs.data.dataset_name, embedding_crop=configs.data.embedding_crop,
      seed=configs.run.seed, seconds=round(time.time() - start, 2)))
  return mean, half_width


def leo_task_accuracies(leo, jit_compile: bool = False):
  """LEO in evaluation mode as `(ProblemInstance) -> (loss, per-task accuracy)`, compiled by
  XLA if `jit_compile`."""
  def task_accuracies(batch):
    loss, _, per_task_accuracy = leo(batch, is_meta_training=False)
    return loss, per_task_accuracy
  if not jit_compile:
    return task_accuracies
  compiled = tf.function(task_accuracies, jit_compile=True, autograph=False)
  # Only the tensors the model reads: XLA cannot compile the string tensors of the episodes.
  return lambda batch: compiled(batch._replace(tr_info=None, val_info=None))


def evaluate_baseline(configs: Configs, strategy=None):
  """`--baseline=...`: a baseline on exactly the test tasks LEO is evaluated on."""
  strategy = strategy or make_strategy(configs.run.distribution_strategy)
  episodes = Episodes(configs, need_train=False)
  baseline = baselines.BASELINES[configs.run.baseline]
  path = configs.run.checkpoint_path
  chief = is_chief(strategy)
  if chief:
    prepare_folder(path)
  run_test(lambda batch: (tf.constant(0.0), baseline(batch)), episodes, configs,
           os.path.join(path, f"test_accuracy_{configs.run.baseline}.json") if chief else None,
           {}, method=configs.run.baseline, strategy=strategy)


# ---- The run folder. ----

def prepare_folder(path: str):
  """Creates `path` if needed and checks that files can be written there."""
  try:
    os.makedirs(path, exist_ok=True)
    probe = os.path.join(path, f".write-test-{os.getpid()}.tmp")  # Cleaned if killed here.
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise utils.LeoError(f"--checkpoint_path={path}: cannot write there ({e.strerror})") from None


def save_run_config(configs: Configs, embedding_dim: int):
  """Writes the run's configuration, after checking it against the one saved before."""
  path = configs.run.checkpoint_path
  saved_path = os.path.join(path, CONFIG_FILE)
  current = configs.to_json(embedding_dim)
  if os.path.exists(saved_path):
    check_same_shapes(utils.read_json(saved_path), current, saved_path)
  utils.atomic_write_json(saved_path, current)


def check_same_shapes(saved, current, saved_path: str):
  """A model is only usable with the task shapes and embedding size it was trained for."""
  for section, field in [("outer_model_config", "num_classes"),
                         ("outer_model_config", "num_tr_examples_per_class"),
                         ("inner_model_config", "num_latents")]:
    if saved[section][field] != current[section][field]:
      raise utils.LeoError(f"--{field}={current[section][field]} contradicts the model saved "
                           f"at {saved_path}, trained with {field}={saved[section][field]}")
  if saved["embedding_dim"] != current["embedding_dim"]:
    raise utils.LeoError(f"the embeddings are {current['embedding_dim']}-d but the model saved "
                         f"at {saved_path} was trained on {saved['embedding_dim']}-d embeddings")


def remove_interrupted_checkpoint_files(path: str):
  """Deletes what a killed `CheckpointManager.save` left: files no index entry refers to."""
  state = tf.train.get_checkpoint_state(path)
  kept = set(state.all_model_checkpoint_paths) if state else set()
  kept = {os.path.basename(p) for p in kept}
  for name in os.listdir(path):
    full = os.path.join(path, name)
    if name.startswith(CHECKPOINT_NAME + "-") and not any(
        name.startswith(k + ".") for k in kept):
      utils.remove_path(full)
    elif ".tmp" in name and os.path.isfile(full) and name != ".lock":
      os.remove(full)


@contextlib.contextmanager
def writing_to(path: str, best: utils.BestCheckpoint):
  """Turns a failed write (disk full, folder gone read-only) into a one-line error, after
  removing what the failed write left; the previous checkpoints stay as they were."""
  try:
    yield
  except (OSError, tf.errors.OpError) as e:
    remove_interrupted_checkpoint_files(path)
    best.clean()
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise utils.LeoError(f"--checkpoint_path={path}: writing failed ({reason}); the previous "
                         "checkpoints are kept") from None


# ---- Training. ----

def build_model(configs: Configs, episodes: Episodes, strategy=None, leo_class=None):
  """LEO (or a `leo_class` computing the same) and its outer optimiser, every variable
  created now (under `strategy`'s scope)."""
  tf.random.set_seed(configs.run.seed)
  with (strategy or tf.distribute.get_strategy()).scope():
    leo = (leo_class or model.LEO)(configs.inner, seed=configs.run.seed)
    shots, n = configs.outer.num_tr_examples_per_class, configs.outer.num_classes
    dim = episodes.embedding_dim
    # A zero task builds the variables without drawing from the episode samplers.
    leo(data.ProblemInstance(
        tr_input=tf.zeros([1, n, shots, dim]), tr_output=tf.zeros([1, n, shots, 1], tf.int32),
        tr_info=None, val_input=tf.zeros([1, n, 1, dim]),
        val_output=tf.zeros([1, n, 1, 1], tf.int32), val_info=None), is_meta_training=False)
    meta_optimizer = model.MetaOptimizer(configs.outer)
    meta_optimizer.build(leo.trainable_variables)
  return leo, meta_optimizer


def make_train_step(leo, meta_optimizer, sampler, outer: config.OuterModelConfig, step=None,
                    strategy=None, jit_compile: bool = False):
  """The compiled meta-training step: sample a batch, loss, second-order gradients, update.

  With `jit_compile` the loss and gradients of each replica are compiled by XLA.

  The batch is sampled once and its tasks shared by the replicas of `strategy`; the gradients
  of their losses are averaged, which is the gradient of the batch's mean loss, and one update
  is applied to the mirrored variables: the step of one device, split.

  Returns:
    A `tf.function` returning (loss, accuracy, clipped gradients) of the step.
  """
  strategy = strategy or tf.distribute.get_strategy()
  if outer.metatrain_batch_size % strategy.num_replicas_in_sync:
    raise utils.LeoError(f"--metatrain_batch_size={outer.metatrain_batch_size}: expected a "
                         f"multiple of the {strategy.num_replicas_in_sync} replicas")

  def replica_step(problem, task_offset, total_tasks, noise_seed):
    with tf.GradientTape() as tape:
      loss, accuracy, _ = leo(problem, is_meta_training=True, noise_seed=noise_seed,
                              task_offset=task_offset, total_tasks=total_tasks)
    return loss, accuracy, tape.gradient(loss, leo.trainable_variables)

  if jit_compile:  # The model part: the strategy's and the optimiser's ops stay outside.
    replica_step = tf.function(replica_step, jit_compile=True, autograph=False)

  def train_step():
    batch = sampler.get_batch(outer.metatrain_batch_size, outer.num_classes,
                              outer.num_tr_examples_per_class, outer.num_val_examples_per_class)
    noise_seed = leo.generator.make_seeds(1)[:, 0]
    loss, accuracy, gradients = run_on_replicas(strategy, replica_step, batch, noise_seed)
    loss, accuracy = _mean(strategy, loss), _mean(strategy, accuracy)
    gradients = [_mean(strategy, gradient) for gradient in gradients]
    clipped = meta_optimizer.apply(loss, gradients, leo.trainable_variables)
    if step is not None:
      step.assign_add(1)
    return loss, accuracy, clipped

  return tf.function(train_step, autograph=False)


def write_summaries(writer, step, scalars, histograms):
  with writer.as_default(step=step):
    for name, value in scalars.items():
      tf.summary.scalar(name, value)
    for name, value in histograms.items():
      tf.summary.histogram(name, value)
  writer.flush()


def train(configs: Configs, strategy=None):
  """The outer loop of the original runner, resumable, then the test of the best model.

  Under a multi-worker strategy every worker runs this loop in step; the chief alone writes
  the run folder, the other workers write their checkpoints to a scratch folder they delete.
  """
  strategy = strategy or make_strategy(configs.run.distribution_strategy)
  chief = is_chief(strategy)
  episodes = Episodes(configs, need_train=True)
  path, outer, run = configs.run.checkpoint_path, configs.outer, configs.run
  best = utils.BestCheckpoint(os.path.join(path, BEST_FOLDER))
  if chief:
    prepare_folder(path)
  with utils.RunLock(path) if chief else contextlib.nullcontext():
    if chief:
      save_run_config(configs, episodes.embedding_dim)
      remove_interrupted_checkpoint_files(path)
      best.clean()
    leo, meta_optimizer = build_model(configs, episodes, strategy)
    with strategy.scope():
      step = tf.Variable(0, dtype=tf.int64, name="global_step")
    checkpoint = tf.train.Checkpoint(model=leo, optimizer=meta_optimizer, step=step,
                                     train_sampler=episodes.train.generator,
                                     valid_sampler=episodes.valid.generator)
    scratch = os.path.join(path, f".worker-{strategy.cluster_resolver.task_id}"
                           if not chief else "")
    manager = tf.train.CheckpointManager(checkpoint, path if chief else scratch,
                                         MAX_CHECKPOINTS_TO_KEEP, step_counter=step,
                                         checkpoint_name=CHECKPOINT_NAME)
    latest = tf.train.latest_checkpoint(path)
    if latest:
      checkpoint.restore(latest).assert_existing_objects_matched()
      logging.info("Resuming from %s at step %d (best validation accuracy so far %s).",
                   latest, int(step.numpy()), _percent(best.accuracy))
    logging.info("Configuration:\n%s", json.dumps(configs.to_json(episodes.embedding_dim),
                                                  indent=2, sort_keys=True))

    train_step = make_train_step(leo, meta_optimizer, episodes.train, outer, step, strategy,
                                 configs.run.jit_compile)
    validate = Evaluator(leo_task_accuracies(leo, configs.run.jit_compile), episodes.valid,
                         outer.metavalid_batch_size,
                         outer.num_classes, outer.num_tr_examples_per_class,
                         episodes.valid_queries, strategy)
    writer = tf.summary.create_file_writer(path) if chief else tf.summary.create_noop_writer()
    current = int(step.numpy())
    best_accuracy = best.accuracy  # Every worker decides alike; the chief commits.
    last = None  # (loss, accuracy, clipped gradients) of the latest training step.
    timer_step, timer_start, run_start = current, time.time(), time.time()
    while True:
      if current % run.checkpoint_steps == 0 or current == outer.num_steps_limit:
        if not (latest or "").endswith(f"-{current}"):
          with writing_to(path, best):
            latest = manager.save(checkpoint_number=current)
        valid_loss, valid_accuracies = validate(
            config.NUM_VALID_BATCHES * outer.metavalid_batch_size)
        valid_accuracy = float(np.mean(valid_accuracies))
        if valid_accuracy > best_accuracy:
          best_accuracy = valid_accuracy
          with writing_to(path, best):
            (best if chief else utils.BestCheckpoint(scratch)).save(
                tf.train.Checkpoint(model=leo), current, valid_accuracy,
                configs.to_json(episodes.embedding_dim))
        if not chief:
          shutil.rmtree(scratch, ignore_errors=True)
        logging.info("Step: %d meta-valid accuracy: %s (best %s)", current,
                     _percent(valid_accuracy), _percent(best_accuracy))
        scalars = {"metavalid_loss": valid_loss, "metavalid_valid_accuracy": valid_accuracy,
                   "nan_guard_count": meta_optimizer.nan_guard_count}
        histograms = {v.name: v for v in leo.trainable_variables}
        if last is not None:
          # As the original, a NaN training loss is summarised as 0 (the guard replaced its
          # update; nan_guard_count says how often).
          loss = float(last[0])
          scalars.update(metatrain_loss=loss if np.isfinite(loss) else 0.0,
                         metatrain_valid_accuracy=last[1],
                         steps_per_second=(current - timer_step) / (time.time() - timer_start))
          histograms.update({f"gradient/{v.name}": g
                             for v, g in zip(leo.trainable_variables, last[2])})
        with writing_to(path, best):
          write_summaries(writer, current, scalars, histograms)
        timer_step, timer_start = current, time.time()
      if current >= outer.num_steps_limit:
        break
      last = train_step()
      current += 1
      if current % run.log_steps == 0:
        rate = (current - timer_step) / max(time.time() - timer_start, 1e-9)
        eta = (outer.num_steps_limit - current) / max(rate, 1e-9)
        logging.info("Step: %d/%d %.1f steps/s ETA %s meta-train loss: %.4f accuracy: %s "
                     "NaN-guard count: %d", current, outer.num_steps_limit, rate,
                     _duration(eta), float(last[0]), _percent(float(last[1])),
                     int(meta_optimizer.nan_guard_count.numpy()))
    logging.info("Training done: %d steps in %s; best meta-valid accuracy %s.", current,
                 _duration(time.time() - run_start), _percent(best_accuracy))
    if run.evaluate_after_training:
      tf.train.Checkpoint(model=leo).read(best.prefix).expect_partial()
      run_test(leo_task_accuracies(leo, configs.run.jit_compile), episodes, configs,
               os.path.join(best.folder, RESULTS_FILE) if chief else None,
               {"checkpoint": best.prefix, "step": best.info["step"],
                "valid_accuracy": best.accuracy}, strategy=strategy)


# ---- Evaluation of a trained model. ----

def find_checkpoint(path: str):
  """(checkpoint prefix, saved configuration, results folder) of a run or best folder."""
  for folder in (path, os.path.join(path, BEST_FOLDER)):
    best = utils.BestCheckpoint(folder)
    if best.info:
      return best.prefix, best.info, folder
  latest = tf.train.latest_checkpoint(path) if os.path.isdir(path) else None
  if latest and os.path.exists(os.path.join(path, CONFIG_FILE)):
    return latest, utils.read_json(os.path.join(path, CONFIG_FILE)), path
  raise utils.LeoError(f"--checkpoint_path={path}: no checkpoint there (expected a run folder "
                       f"with {BEST_FOLDER}/ or {CHECKPOINT_NAME}-* files and {CONFIG_FILE}, "
                       f"or a {BEST_FOLDER} folder)")


def evaluate_checkpoint(configs: Configs, strategy=None):
  """The original's `--evaluation_mode`: test a saved model; writes only the results file."""
  strategy = strategy or make_strategy(configs.run.distribution_strategy)
  prefix, saved, folder = find_checkpoint(configs.run.checkpoint_path)
  configs = config_from_saved(saved, configs)
  episodes = Episodes(configs, need_train=False)
  check_same_shapes(saved, configs.to_json(episodes.embedding_dim), prefix)
  leo, _ = build_model(configs, episodes, strategy)
  tf.train.Checkpoint(model=leo).read(prefix).expect_partial().assert_existing_objects_matched()
  logging.info("Evaluating %s", prefix)
  run_test(leo_task_accuracies(leo, configs.run.jit_compile), episodes, configs,
           os.path.join(folder, RESULTS_FILE) if is_chief(strategy) else None,
           {"checkpoint": prefix, "step": saved.get("step"),
            "valid_accuracy": saved.get("accuracy")}, strategy=strategy)


def config_from_saved(saved, configs: Configs) -> Configs:
  """The saved run's configuration, with the flags given on this command line on top."""
  given = config.explicitly_given()
  sections = {"data": ("data_config", config.DataConfig),
              "inner": ("inner_model_config", config.InnerModelConfig),
              "outer": ("outer_model_config", config.OuterModelConfig)}
  merged = {}
  for attribute, (key, config_class) in sections.items():
    values = dict(saved[key])
    values.update({name: value for name, value in config.as_dict(getattr(configs, attribute))
                   .items() if name in given})
    merged[attribute] = config_class(**values)
  run = dataclasses.replace(configs.run, seed=(configs.run.seed if "seed" in given
                                               else saved.get("seed", configs.run.seed)))
  return Configs(run=run, **merged)


# ---- Entry point. ----

def _percent(value: float) -> str:
  return "none yet" if value == -float("inf") else f"{value:.2%}"


def _duration(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}: every option is a --flag")
  logging.get_absl_handler().addFilter(_OwnRecordsOrWarnings())
  try:
    configs = Configs(config.get_data_config(), config.get_inner_model_config(),
                      config.get_outer_model_config(), config.get_run_config())
    import_tensorflow()
    configure_threads(configs)
    # Before any tensor exists: collective ops are configured when the strategy is made.
    strategy = make_strategy(configs.run.distribution_strategy)
    if configs.run.baseline != "none":
      evaluate_baseline(configs, strategy)
    elif configs.run.evaluation_mode:
      evaluate_checkpoint(configs, strategy)
    else:
      train(configs, strategy)
  except utils.LeoError as e:
    sys.stderr.write(f"runner.py: error: {e}\n")
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
