# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Meta-trains LEO, keeps the best checkpoint by validation accuracy, and evaluates it.

    python runner.py --data_path=$EMBEDDINGS                    # train, then test the best
    python runner.py --evaluation_mode --checkpoint_path=/tmp/leo   # test a trained run

The loop is the original's: validate at step 0 and every `checkpoint_steps`, keep the
checkpoint with strictly higher validation accuracy in `<checkpoint_path>/best_checkpoint`,
train to `num_steps_limit`. Restarting the same command resumes from the latest checkpoint;
a folder belongs to one configuration (runfolder.py), and every evaluation leaves a result
record (records.py).
"""

import contextlib
import dataclasses
import json
import logging as logging_lib
import os
import re
import sys
import time

from absl import app
from absl import logging
import numpy as np

import config
import utils

# Kept off until the user-facing checks have run: importing TF is slow and noisy.
tf = data = model = baselines = storage = runfolder = records = None

_HERE = os.path.dirname(os.path.abspath(__file__))
PROGRESS_SECONDS = 5  # Between progress lines of a long evaluation.
# Evaluation tasks are run in chunks whose query embeddings take at most this many bytes, so
# 200 tasks x 5 classes x 599 queries x 640 floats (1.5 GB) are never materialised at once.
EVAL_CHUNK_BYTES = 64 * 2**20
# Tasks per compiled call of a scorer that does not gather the queries (LEOScores), ~100 KB
# each on miniImageNet (their rows, their classes' logits): 200 ran 13-18% faster than 400 or
# 1,000 (BENCHMARKS.md), and as fast as 96.
EVAL_TASKS_PER_CALL = 200


def import_tensorflow():
  """Imports TF (quietly) and the modules that need it."""
  global tf, data, model, baselines, storage, runfolder, records  # pylint: disable=global-statement
  tf = utils.import_tensorflow()
  # pylint: disable=g-import-not-at-top
  import baselines as baselines_module
  import data as data_module
  import model as model_module
  import records as records_module
  import runfolder as runfolder_module
  import storage as storage_module
  # pylint: enable=g-import-not-at-top
  data, model, baselines = data_module, model_module, baselines_module
  storage, runfolder, records = storage_module, runfolder_module, records_module


class _OwnRecordsOrWarnings(logging_lib.Filter):
  """Keeps leo's own log lines and anyone's warnings: TF's checkpointing logs at INFO too
  (and a virtual environment inside the checkout puts TF's files below leo's folder)."""

  def filter(self, record):
    own = record.pathname.startswith(_HERE + os.sep) and "site-packages" not in record.pathname
    return record.levelno >= logging_lib.WARNING or own


# Intra-op threads on small CPUs, by processor maker and shot count: the faster setting of
# benchmarks/benchmark.py's thread rows on 2 cores (BENCHMARKS.md). LEO's ops are tiny, so
# extra threads mostly add synchronisation; which wins depends on the processor. Other shot
# counts take the nearest measured one; another maker is not trusted with either's table.
MEASURED_INTRA_OP_THREADS = {
    "AMD": {1: 1, 5: 1},  # EPYC, idle: 1-shot 25.9 vs 34.2 ms; 5-shot 100.3 vs 114.6 ms.
    "Intel": {1: 1, 5: 2},  # Xeon (AVX-512): 1-shot 19.3 vs 24.2 ms; 5-shot 82.3 vs 79.6 ms.
}
MEASURED_MAX_CORES = 4  # The largest CPU the table is trusted for.


_threads_choice = []  # The line of configure_threads, logged once the command is accepted.


def configure_threads(configs: "Configs" = None) -> str:
  """Sets TF's intra-op threads before any op runs; `log_threads_choice` says which.

  `--intra_op_threads` if given; else on a CPU of at most MEASURED_MAX_CORES cores the
  measured choice for the task shape; else (a GPU, or a CPU nobody measured) TF's default.

  Returns:
    The printed line.
  """
  requested = configs.run.intra_op_threads if configs else 0
  cores = os.cpu_count() or 1
  model = utils.cpu_model()
  maker = next((name for name in MEASURED_INTRA_OP_THREADS if name in model), None)
  if requested:
    threads, why = requested, "--intra_op_threads"
  elif tf.config.list_physical_devices("GPU") or cores > MEASURED_MAX_CORES or not maker:
    threads, why = 0, f"TF's default; {cores} cores of {model}, not measured"
  else:
    shots = configs.outer.num_tr_examples_per_class if configs else 1
    table = MEASURED_INTRA_OP_THREADS[maker]
    nearest = min(table, key=lambda measured: abs(measured - shots))
    threads = min(table[nearest], cores)
    why = f"measured for {nearest}-shot tasks on <= {MEASURED_MAX_CORES} {maker} cores"
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
  line = f"Intra-op threads: {threads or 'all'} ({why})"
  _threads_choice[:] = [line]
  return line


def log_threads_choice():
  """Logs the thread choice, once, after the command's checks (errors stay one line) and,
  in training, into train.log."""
  while _threads_choice:
    logging.info(_threads_choice.pop())


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
  """The splits' samplers and the task shapes of the protocol.

  Training loads train, val and test; an evaluation loads only `eval_split`.
  """

  def __init__(self, configs: Configs, need_train: bool, eval_split: str = "test"):
    outer, seed = configs.outer, configs.run.seed
    shots, num_classes = outer.num_tr_examples_per_class, outer.num_classes
    self.train = data.DataProvider("train", configs.data, seed) if need_train else None
    self.valid = (data.DataProvider("val", configs.data, seed)
                  if need_train or eval_split == "val" else None)
    self.test = (data.DataProvider("test", configs.data, seed)
                 if need_train or eval_split == "test" else None)
    fixed = outer.num_eval_examples_per_class
    self.valid_queries = self.valid and self.valid.remaining_examples_per_class(shots, fixed)
    self.test_queries = self.test and self.test.remaining_examples_per_class(shots, fixed)
    # Every shape is checked now, before anything is written or trained.
    if need_train:
      self.train.check_task_shape(num_classes, shots, outer.num_val_examples_per_class)
    for provider, queries in ((self.valid, self.valid_queries), (self.test, self.test_queries)):
      if provider:
        provider.check_task_shape(num_classes, shots, queries)
    dims = {p.embedding_dim for p in (self.train, self.valid, self.test) if p}
    if len(dims) != 1:
      raise data.DataError(f"the splits of --dataset_name={configs.data.dataset_name} have "
                           f"different embedding sizes {sorted(dims)}")
    self.embedding_dim = dims.pop()

  def split(self, name: str):
    """(provider, queries per class) of the evaluation split `name` ("val" or "test")."""
    return (self.valid, self.valid_queries) if name == "val" else (self.test, self.test_queries)


def chunk_size(batch_size: int, num_classes: int, examples: int, dim: int,
               replicas: int = 1) -> int:
  """The largest divisor of `batch_size` that the replicas share evenly and whose gathered
  episodes fit in EVAL_CHUNK_BYTES per replica: the size of the chunks `Evaluator` draws its
  tasks in, so it fixes which tasks a seed gives."""
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


class GatheredScores:
  """Scores gathered episodes (`DataProvider.episodes`) with `task_accuracies`
  `(ProblemInstance) -> (loss, per-task accuracy [tasks])`: the baselines' way, one chunk of
  tasks per call (its query embeddings fill EVAL_CHUNK_BYTES)."""
  tasks_per_call = 0

  def __init__(self, task_accuracies):
    self._task_accuracies = task_accuracies

  def __call__(self, provider, rows, shots: int):
    """(loss, accuracy), both [tasks], of the tasks of `rows` [tasks, N, shots + queries]."""
    loss, accuracy = self._task_accuracies(provider.episodes(rows, shots))
    return tf.fill(tf.shape(accuracy), tf.cast(loss, accuracy.dtype)), accuracy


class LEOScores:
  """LEO in evaluation mode: adapts to every task's support set (`LEO.adapt`, compiled by XLA
  if `jit_compile`), then scores the queries where they lie in memory
  (`DataProvider.query_logits`) instead of gathering them: an evaluation task holds ~3,000
  query embeddings (7.7 MB on miniImageNet) and ~30 KB of support set, so many tasks fit in
  one call."""
  tasks_per_call = EVAL_TASKS_PER_CALL

  def __init__(self, leo, jit_compile: bool = False):
    self._leo = leo

    def adapt(tr_input, tr_output):
      return leo.adapt(data.ProblemInstance(tr_input, tr_output, None, None, None, None))

    self._adapt = (tf.function(adapt, jit_compile=True, autograph=False) if jit_compile
                   else adapt)

  def __call__(self, provider, rows, shots: int):
    """(loss, accuracy), both [tasks], of the tasks of `rows` [tasks, N, shots + queries]:
    what `LEO.per_task_loss_and_accuracy` gives on their episodes."""
    support = provider.episodes(rows[:, :, :shots], shots)
    class_weights, kl, encoder_penalty = self._adapt(support.tr_input, support.tr_output)
    queries = rows[:, :, shots:]
    labels = tf.broadcast_to(tf.range(queries.shape[1])[tf.newaxis, :, tf.newaxis, tf.newaxis],
                             queries.shape + [1])
    val_loss, accuracy = self._leo.loss_and_accuracy(
        provider.query_logits(queries, class_weights), labels)
    return self._leo.task_loss(val_loss, kl, encoder_penalty), accuracy


class Evaluator:
  """Per-task query accuracies of fresh tasks.

  Tasks are drawn in chunks of a fixed size (a divisor of `batch_size` whose gathered
  episodes fit in EVAL_CHUNK_BYTES): the chunks fix which tasks a seed gives, whatever scores
  them. Each compiled call scores as many chunks as the scorer's `tasks_per_call` allows (at
  least one), the last call's missing chunks filled with dummy tasks, so the scoring is
  traced once; the surplus tasks of the last chunk are dropped, as are the dummies.
  """

  def __init__(self, scores, provider, batch_size: int, num_classes: int, shots: int,
               queries: int, strategy=None):
    """
    Args:
      scores: `(provider, rows [tasks, N, shots + queries], shots) -> (loss, accuracy)`, both
        [tasks], with an attribute `tasks_per_call`: `LEOScores` or `GatheredScores`.
      provider: the `data.DataProvider` of the split.
      batch_size, num_classes, shots, queries: the protocol's task shape.
      strategy: a `tf.distribute` strategy whose replicas share each call's tasks.
    """
    strategy = strategy or tf.distribute.get_strategy()
    self.provider, self.shape = provider, (num_classes, shots, queries)
    self.chunk = chunk_size(batch_size, num_classes, shots + queries, provider.embedding_dim,
                            strategy.num_replicas_in_sync)
    self._chunks_per_call = max(1, scores.tasks_per_call // self.chunk)
    provider.check_task_shape(num_classes, shots, queries)

    def sample():
      return provider.sample_rows(self.chunk, num_classes, shots + queries)

    def score(rows):
      local = rows.shape[0] // strategy.num_replicas_in_sync

      def replica_function(rows):
        offset = tf.distribute.get_replica_context().replica_id_in_sync_group * local
        return scores(provider, tf.ensure_shape(rows[offset:offset + local],
                                                [local] + rows.shape[1:]), shots)

      loss, accuracy = strategy.run(replica_function, args=(rows,))
      return strategy.gather(loss, axis=0), strategy.gather(accuracy, axis=0)

    # A call per chunk: a graph of many chunks took longer to trace (1.9 s for 25) than its
    # calls cost (10 ms per 25).
    self._sample = tf.function(sample, autograph=False)
    self._score = tf.function(score, autograph=False)

  def __call__(self, num_tasks: int, fingerprint=None, progress: bool = False):
    """(mean loss, per-task accuracies as a numpy array [num_tasks]).

    Args:
      num_tasks: how many tasks.
      fingerprint: a `records.TaskFingerprint` that every evaluated task is added to.
      progress: log tasks done, tasks/s and the ETA every PROGRESS_SECONDS.
    """
    chunks_per_call = min(self._chunks_per_call, -(-num_tasks // self.chunk))
    losses, accuracies, done = [], [], 0
    start = last_report = time.time()
    while done < num_tasks:
      chunks = min(chunks_per_call, -(-(num_tasks - done) // self.chunk))
      rows = tf.concat([self._sample() for _ in range(chunks)], axis=0)
      dummies = tf.zeros([(chunks_per_call - chunks) * self.chunk] + rows.shape[1:], rows.dtype)
      loss, accuracy = self._score(tf.concat([rows, dummies], axis=0))
      wanted = min(num_tasks - done, chunks * self.chunk)
      losses.append(loss.numpy()[:chunks * self.chunk])
      accuracies.append(accuracy.numpy()[:wanted])
      if fingerprint is not None:
        fingerprint.update(rows.numpy()[:wanted])
      done += wanted
      if progress and time.time() - last_report >= PROGRESS_SECONDS and done < num_tasks:
        last_report = time.time()
        rate = done / (last_report - start)
        logging.info("Evaluated %d/%d tasks, %.0f tasks/s, ETA %s", done, num_tasks, rate,
                     _duration((num_tasks - done) / rate))
    return float(np.mean(np.concatenate(losses), dtype=np.float64)), np.concatenate(accuracies)

  def fingerprint(self):
    return records.TaskFingerprint(self.provider.keys_digest, *self.shape)


def describe_result(accuracy: float, half_width: float, num_tasks: int, num_classes: int,
                    shots: int, queries: int, trained_on: str, method: str = "",
                    split: str = "test") -> str:
  """The line papers report, e.g. `Metatest accuracy: 61.89% ± 0.16% (95% CI ...)`."""
  name = "Metatest" if split == "test" else "Metavalid"
  return (f"{name} accuracy{method}: {accuracy:.2%} ± {half_width:.2%} (95% CI over "
          f"{num_tasks} tasks; {num_classes}-way {shots}-shot; {queries} queries/class; "
          f"{trained_on})")


def evaluate_and_record(scores, episodes: Episodes, configs: Configs, folder,
                        split: str, method: str, saved_config, trained=None, strategy=None,
                        log=None):
  """Evaluates on `split`, prints the result line and writes its result record.

  Args:
    scores: what scores the tasks, `LEOScores` or `GatheredScores` (see `Evaluator`).
    folder: where the record goes (`<folder>/results/`); None on the workers that do not
      report.
    split: "test" or "val".
    method: "leo" or the baseline's name.
    saved_config: the configuration of what is evaluated (a run's config.json for LEO).
    trained: for LEO, the training task shape, the checkpoint and its step and validation
      accuracy; None for a baseline.
    strategy: the `tf.distribute` strategy whose replicas share the tasks.
    log: the run's `runfolder.LogFile`, which gets the result line too.

  Returns:
    (mean accuracy, half-width of its 95% confidence interval).
  """
  outer = configs.outer
  provider, queries = episodes.split(split)
  shots, num_classes = outer.num_tr_examples_per_class, outer.num_classes
  batch_size = outer.metatest_batch_size if split == "test" else outer.metavalid_batch_size
  num_tasks = (outer.num_test_tasks if split == "test"
               else config.NUM_VALID_BATCHES * outer.metavalid_batch_size)
  start = time.time()
  evaluate = Evaluator(scores, provider, batch_size, num_classes, shots, queries,
                       strategy)
  fingerprint = evaluate.fingerprint()
  _, accuracies = evaluate(num_tasks, fingerprint, progress=folder is not None)
  mean, half_width = utils.mean_and_confidence_interval(accuracies)
  if method in baselines.FITTED_BASELINES:
    trained_on = "whitened on the meta-train classes, fitted on each task's support set"
  elif method != "leo":
    trained_on = "fitted on each task's support set"
  else:
    trained_on = f"meta-trained on {'train+val' if configs.data.train_on_val else 'train'}"
    trained_shape = (trained["num_classes"], trained["num_tr_examples_per_class"])
    if trained_shape != (num_classes, shots):
      trained_on += f"; trained {trained_shape[0]}-way {trained_shape[1]}-shot"
  line = describe_result(mean, half_width, len(accuracies), num_classes, shots, queries,
                         trained_on, "" if method == "leo" else f" of {method}", split)
  if folder is None:
    return mean, half_width
  report(line, log)
  record = dict(
      method=method, split=split, num_classes=num_classes, num_tr_examples_per_class=shots,
      queries_per_class=queries, num_tasks=len(accuracies), seed=configs.run.seed,
      accuracy=mean, ci95=half_width,
      task_accuracies=[round(float(a), 7) for a in accuracies],
      task_fingerprint=fingerprint.hexdigest(), embeddings_digest=provider.embeddings_digest,
      dataset_name=configs.data.dataset_name, embedding_crop=configs.data.embedding_crop,
      train_on_val=configs.data.train_on_val, config=saved_config, trained=trained,
      summary=line, command=sys.argv, versions=runfolder.versions(), created=runfolder.now(),
      seconds=round(time.time() - start, 2))
  path = records.write_record(folder, record)
  logging.info("Result record: %s", path)
  return mean, half_width


def report(line: str, log=None):
  """Prints a result line (stdout: what a user pipes on) and copies it into the run's log."""
  print(line, flush=True)
  if log is not None:
    log.write(line)


def evaluate_baseline(configs: Configs, strategy=None):
  """`--baseline=...`: a baseline on exactly the tasks LEO is evaluated on (same split,
  shape and seed give the same task fingerprint)."""
  strategy = strategy or make_strategy(configs.run.distribution_strategy)
  split = configs.run.eval_split
  episodes = Episodes(configs, need_train=False, eval_split=split)
  name = configs.run.baseline
  if name in baselines.FITTED_BASELINES:  # Fitted on the meta-train classes first.
    train = data.load_split(configs.data, data.MetaSplit.TRAIN)
    baseline = baselines.FITTED_BASELINES[name](train.embeddings, train.rows_by_class)
  else:
    baseline = baselines.BASELINES[name]
  path = configs.run.checkpoint_path
  log_threads_choice()
  chief = is_chief(strategy)
  if chief:
    prepare_folder(path)
  with writing_to(path):
    evaluate_and_record(GatheredScores(lambda batch: (tf.constant(0.0), baseline(batch))),
                        episodes, configs,
                        path if chief else None, split, configs.run.baseline,
                        configs.to_json(episodes.embedding_dim), strategy=strategy)


# ---- The run folder. ----

def prepare_folder(path: str):
  """Creates `path` if needed and checks that files can be written there."""
  try:
    storage.makedirs(path)
    probe = storage.join(path, f".write-test-{os.getpid()}.tmp")  # Cleaned if killed here.
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("ok")
    storage.remove(probe)
  except (OSError, tf.errors.OpError) as e:
    reason = getattr(e, "strerror", None) or (str(e).strip().splitlines() or ["?"])[0]
    raise utils.LeoError(f"--checkpoint_path={path}: cannot write there ({reason})") from None


def check_model_shapes(saved, configs: Configs, embedding_dim: int, saved_path: str):
  """A model's variables fix its latent size and embedding size; N-way and K-shot are free."""
  trained = saved["inner_model_config"]["num_latents"]
  if trained != configs.inner.num_latents:
    raise utils.LeoError(f"--num_latents={configs.inner.num_latents} contradicts the model "
                         f"saved at {saved_path}, trained with num_latents={trained}")
  if saved["embedding_dim"] != embedding_dim:
    raise utils.LeoError(f"the embeddings are {embedding_dim}-d but the model saved at "
                         f"{saved_path} was trained on {saved['embedding_dim']}-d embeddings")


@contextlib.contextmanager
def writing_to(path: str, cleanups=()):
  """Turns a failed write (disk full, folder gone read-only, a remote store's error) into a
  one-line error, after `cleanups` removed what the failed write left; the previous
  checkpoints stay as they were."""
  try:
    yield
  except (OSError, tf.errors.OpError) as e:
    for cleanup in cleanups:
      cleanup()
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
  configuration = configs.to_json(episodes.embedding_dim)
  best = runfolder.BestCheckpoint(storage.join(path, runfolder.BEST_FOLDER))
  # Which checkpoint to resume from is settled (every one read in full) before anything is
  # written: if none is intact, the folder is left as it was.
  found = runfolder.Checkpoints(path, None).newest_intact() if storage.isdir(path) else None
  with open_run(configs, configuration, chief) as log:
    log_threads_choice()
    leo, meta_optimizer = build_model(configs, episodes, strategy)
    with strategy.scope():
      step = tf.Variable(0, dtype=tf.int64, name="global_step")
    checkpoint = tf.train.Checkpoint(model=leo, optimizer=meta_optimizer, step=step,
                                     train_sampler=episodes.train.generator,
                                     valid_sampler=episodes.valid.generator)
    scratch = path if chief else storage.join(
        path, f".worker-{strategy.cluster_resolver.task_id}")
    checkpoints = runfolder.Checkpoints(scratch, checkpoint)
    cleanups = (checkpoints.clean, best.clean) if chief else ()
    if chief:
      with writing_to(path, cleanups):
        checkpoints.clean()
        best.clean()
        reason = best.damage()
        if reason:
          damaged = best.prefix
          target = runfolder.move_aside(path, [best.folder])
          logging.warning("Damaged %s (%s) moved to %s; the next validation elects a new best",
                          damaged, reason, target)
    latest = (checkpoints if chief else runfolder.Checkpoints(path, checkpoint)).restore_latest(
        found, move_damaged=chief)
    if latest:
      logging.info("Resuming from %s at step %d (best validation accuracy so far %s).",
                   latest, int(step.numpy()), _percent(best.accuracy))
    if chief:
      with writing_to(path, cleanups):
        runfolder.record_session(path, int(step.numpy()))
    logging.info("Configuration:\n%s", json.dumps(configuration, indent=2, sort_keys=True))

    train_step = make_train_step(leo, meta_optimizer, episodes.train, outer, step, strategy,
                                 configs.run.jit_compile)
    validate = Evaluator(LEOScores(leo, configs.run.jit_compile), episodes.valid,
                         outer.metavalid_batch_size, outer.num_classes,
                         outer.num_tr_examples_per_class, episodes.valid_queries, strategy)
    writer = tf.summary.create_file_writer(path) if chief else tf.summary.create_noop_writer()
    if chief:
      with writing_to(path, cleanups):
        write_hparams(writer, configuration)
    current = int(step.numpy())
    best_accuracy = best.accuracy  # Every worker decides alike; the chief commits.
    last = None  # (loss, accuracy, clipped gradients) of the latest training step.
    # Steps since the last log line, and the time of those that did not trace.
    window, window_seconds, timed_steps, last_traced = [], 0.0, 0, False
    validation_seconds = []
    run_start = time.time()
    while True:
      if current % run.checkpoint_steps == 0 or current == outer.num_steps_limit:
        validation_start = time.time()
        if not (latest or "").endswith(f"-{current}"):
          with writing_to(path, cleanups):
            latest = checkpoints.save(current)
        valid_loss, valid_accuracies = validate(
            config.NUM_VALID_BATCHES * outer.metavalid_batch_size)
        valid_accuracy, valid_ci95 = utils.mean_and_confidence_interval(valid_accuracies)
        if valid_accuracy > best_accuracy:
          best_accuracy = valid_accuracy
          with writing_to(path, cleanups):
            (best if chief else runfolder.BestCheckpoint(scratch)).save(
                tf.train.Checkpoint(model=leo), current, valid_accuracy, configuration)
        if not chief:
          storage.remove(scratch)
        logging.info("Step: %d meta-valid accuracy: %s ± %s (best %s)", current,
                     _percent(valid_accuracy), _percent(valid_ci95), _percent(best_accuracy))
        scalars = {"metavalid_loss": valid_loss, "metavalid_valid_accuracy": valid_accuracy,
                   "best_valid_accuracy": best_accuracy,
                   "nan_guard_count": meta_optimizer.nan_guard_count}
        histograms = {v.name: v for v in leo.trainable_variables}
        if last is not None:
          histograms.update({f"gradient/{v.name}": g
                             for v, g in zip(leo.trainable_variables, last[2])})
        validation_seconds.append(time.time() - validation_start)
        if chief:
          with writing_to(path, cleanups):
            records.append_validation(path, dict(
                step=current, accuracy=valid_accuracy, ci95=valid_ci95, loss=valid_loss,
                num_tasks=len(valid_accuracies), queries_per_class=episodes.valid_queries,
                seconds=round(validation_seconds[-1], 3), time=runfolder.now()))
            write_summaries(writer, current, scalars, histograms)
      if current >= outer.num_steps_limit:
        break
      step_start = time.time()
      last = train_step()
      window.append((float(last[0]), float(last[1])))
      if last_traced:  # The first call of a session traces: its time is no step's.
        window_seconds += time.time() - step_start
        timed_steps += 1
      last_traced = True
      current += 1
      if current % run.log_steps == 0 or current == outer.num_steps_limit:
        rate = timed_steps / max(window_seconds, 1e-9) if timed_steps else float("nan")
        eta = remaining_seconds(current, outer.num_steps_limit, run.checkpoint_steps, rate,
                                validation_seconds)
        loss, accuracy = mean_training_metrics(window)
        logging.info("Step: %d/%d %.1f steps/s ETA %s meta-train loss: %.4f accuracy: %s "
                     "(mean of %d steps) NaN-guard count: %d", current, outer.num_steps_limit,
                     rate, _duration(eta), loss, _percent(accuracy), len(window),
                     int(meta_optimizer.nan_guard_count.numpy()))
        if chief:
          with writing_to(path, cleanups):
            # As the original, a NaN training loss is summarised as 0 (the guard replaced its
            # update; nan_guard_count says how often).
            scalars = {"metatrain_loss": loss if np.isfinite(loss) else 0.0,
                       "metatrain_valid_accuracy": accuracy}
            if timed_steps:
              scalars["steps_per_second"] = rate
            write_summaries(writer, current, scalars, {})
        window, window_seconds, timed_steps = [], 0.0, 0
    logging.info("Training done: %d steps in %s; best meta-valid accuracy %s.", current,
                 _duration(time.time() - run_start), _percent(best_accuracy))
    if run.evaluate_after_training:
      tf.train.Checkpoint(model=leo).read(best.prefix).expect_partial()
      trained = trained_info(configuration, best.prefix, best.info["step"], best.accuracy)
      with writing_to(path, cleanups):
        accuracy, ci95 = evaluate_and_record(
            LEOScores(leo, configs.run.jit_compile), episodes, configs,
            path if chief else None, "test", "leo", configuration, trained, strategy, log)
        if chief:
          write_summaries(writer, current, {"metatest_accuracy": accuracy,
                                            "metatest_ci95": ci95}, {})


def remaining_seconds(current: int, limit: int, checkpoint_steps: int, rate: float,
                      validation_seconds) -> float:
  """Time to `limit`: the steps at the measured rate plus the validations still to come
  (one every `checkpoint_steps` and one at the limit) at their measured mean duration."""
  validations = limit // checkpoint_steps - current // checkpoint_steps
  validations += limit % checkpoint_steps != 0
  mean_validation = float(np.mean(validation_seconds)) if validation_seconds else 0.0
  return (limit - current) / rate + validations * mean_validation


def mean_training_metrics(window):
  """Mean loss (of the finite ones; NaN if none) and accuracy of the steps in `window`."""
  losses = np.array([loss for loss, _ in window])
  finite = losses[np.isfinite(losses)]
  return (float(finite.mean()) if finite.size else float("nan"),
          float(np.mean([accuracy for _, accuracy in window])))


def trained_info(saved, prefix: str, step, valid_accuracy):
  """What a LEO result record says of the model: its training shape, checkpoint, step."""
  outer = saved["outer_model_config"]
  return {"num_classes": outer["num_classes"],
          "num_tr_examples_per_class": outer["num_tr_examples_per_class"],
          "train_on_val": saved["data_config"]["train_on_val"], "checkpoint": prefix,
          "step": step, "valid_accuracy": valid_accuracy}


@contextlib.contextmanager
def open_run(configs: Configs, configuration, chief: bool):
  """The chief's hold on its run folder while the run lasts: locked, claimed for this
  configuration (before anything else is written) and logged into `train.log`.

  Yields:
    The run's `runfolder.LogFile`; None on the workers that do not write.
  """
  if not chief:
    yield None
    return
  path = configs.run.checkpoint_path
  prepare_folder(path)
  with storage.RunLock(path):
    with writing_to(path):
      runfolder.claim(path, configuration, config.flagfile_lines(
          configs.data, configs.inner, configs.outer, configs.run))
    log = runfolder.LogFile(path, _OwnRecordsOrWarnings())
    root = logging_lib.getLogger()
    root.addHandler(log)
    try:
      yield log
    finally:
      root.removeHandler(log)


def write_hparams(writer, configuration):
  """The run's configuration on TensorBoard's hparams dashboard (its metrics are the
  best_valid_accuracy and metatest_accuracy scalars)."""
  from tensorboard.plugins.hparams import api as hparams_api  # pylint: disable=g-import-not-at-top
  values = {"seed": configuration["seed"], "embedding_dim": configuration["embedding_dim"]}
  for section in ("data_config", "inner_model_config", "outer_model_config"):
    values.update({name: value for name, value in configuration[section].items()
                   if value is not None})
  with writer.as_default():
    hparams_api.hparams(values)
  writer.flush()


# ---- Evaluation of a trained model. ----

def find_checkpoint(path: str):
  """What `--checkpoint_path` names, for an evaluation: a run folder (its best checkpoint),
  a `best_checkpoint` folder, or a checkpoint prefix (`<run>/model.ckpt-20000`).

  Returns:
    (checkpoint prefix, the run's saved configuration, the step and validation accuracy
    known for it (None where unknown), the folder whose results/ gets the record).
  """
  def run_folder_of(folder):
    parent = os.path.dirname(folder.rstrip("/"))
    return parent if storage.exists(storage.join(parent, runfolder.CONFIG_FILE)) else folder

  if storage.exists(path + ".index"):
    folder = os.path.dirname(path)
    best = runfolder.BestCheckpoint(folder)
    info = best.info
    saved = info if info else runfolder.read_config(folder)
    match = re.search(r"-(\d+)$", path)
    step = int(match.group(1)) if match else None
    accuracy = info["accuracy"] if info and info["checkpoint"] == os.path.basename(path) else None
    return path, saved, step, accuracy, run_folder_of(folder) if info else folder
  for folder in (path, storage.join(path, runfolder.BEST_FOLDER)):
    best = runfolder.BestCheckpoint(folder)
    info = best.info
    if info:
      return best.prefix, info, info["step"], info["accuracy"], run_folder_of(folder)
  if storage.exists(storage.join(path, runfolder.CONFIG_FILE)):
    checkpoints = runfolder.Checkpoints(path, None).committed()
    if checkpoints:
      prefix = storage.join(path, checkpoints[-1])
      return (prefix, runfolder.read_config(path), int(prefix.rsplit("-", 1)[1]), None, path)
  raise utils.LeoError(
      f"--checkpoint_path={path}: no checkpoint there (expected a run folder with "
      f"{runfolder.BEST_FOLDER}/ or {runfolder.CHECKPOINT_NAME}-* files and "
      f"{runfolder.CONFIG_FILE}, a {runfolder.BEST_FOLDER} folder, or a checkpoint prefix "
      f"such as <run>/{runfolder.CHECKPOINT_NAME}-1000)")


def evaluate_checkpoint(configs: Configs, strategy=None):
  """The original's `--evaluation_mode`: evaluates a saved model on `--eval_split`, with the
  task shape of the flags (another N-way or K-shot than the model was trained with is
  allowed: LEO's variables do not depend on them); writes only its result record."""
  strategy = strategy or make_strategy(configs.run.distribution_strategy)
  prefix, saved, step, valid_accuracy, folder = find_checkpoint(configs.run.checkpoint_path)
  reason = runfolder.damage(prefix)
  if reason:
    intact = [name for name in _committed_checkpoints(folder)
              if not runfolder.damage(storage.join(folder, name))]
    hint = (f"evaluate a checkpoint prefix instead, e.g. --checkpoint_path="
            f"{storage.join(folder, intact[-1])}" if intact else "restore it from a copy")
    raise storage.StorageError(f"{prefix}: damaged checkpoint ({reason}); {hint}")
  configs = config_from_saved(saved, configs)
  split = configs.run.eval_split
  episodes = Episodes(configs, need_train=False, eval_split=split)
  check_model_shapes(saved, configs, episodes.embedding_dim, prefix)
  leo, _ = build_model(configs, episodes, strategy)
  tf.train.Checkpoint(model=leo).read(prefix).expect_partial().assert_existing_objects_matched()
  log_threads_choice()
  logging.info("Evaluating %s on the %s split", prefix, split)
  configuration = {key: saved[key] for key in
                   ("data_config", "inner_model_config", "outer_model_config", "seed",
                    "embedding_dim")}
  chief = is_chief(strategy)
  with writing_to(folder):
    evaluate_and_record(LEOScores(leo, configs.run.jit_compile), episodes, configs,
                        folder if chief else None,
                        split, "leo", configuration,
                        trained_info(configuration, prefix, step, valid_accuracy), strategy)


def _committed_checkpoints(folder: str):
  try:
    return runfolder.Checkpoints(folder, None).committed()
  except storage.StorageError:
    return []


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
  if not np.isfinite(seconds):
    return "unknown"
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
