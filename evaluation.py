# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Evaluation: fresh tasks of a split, scored by LEO or a baseline, reported as papers do.

    episodes = data.Episodes(configs, need_train=False, eval_split="test")
    result = evaluate(Method("leo", LEOScores(leo), config_json, trained), episodes, configs,
                      "test")
    line = describe(result, configs)     # `Metatest accuracy: 61.89% ± 0.16% (95% CI ...)`
    record(result, configs, line, results)  # <results>/<method>-test-...-<identity>.json

The tasks depend only on the evaluated data, the split, the task shape and the seed: every
method evaluated with the same ones scores identical tasks, and its record's task fingerprint
proves it. The evaluated data may be other than the run's (`Configs.evaluated_data`: a model
meta-trained on icons tested on glyphs), and the tasks may come from a file
(`--tasks`, tasks.py) and be written to one (`--export_tasks`). `evaluate_checkpoint` and
`evaluate_baseline` are the runner's evaluation commands.
"""

import dataclasses
import sys
import time
from typing import Callable, Optional

from absl import logging
import numpy as np
import tensorflow as tf

import baselines
import config as config_lib
import data
import distribute
import model
import records
import runfolder
import sizes
import storage
import tasks as tasks_lib
import trained
import transforms
import utils

# Evaluation tasks are drawn in chunks whose query embeddings take at most this many bytes, so
# 200 tasks x 5 classes x 599 queries x 640 floats (1.5 GB) are never materialised at once.
EVAL_CHUNK_BYTES = 64 * 2**20


def chunk_size(batch_size: int, num_classes: int, examples: int, dim: int,
               replicas: int = 1) -> int:
  """The largest divisor of `batch_size` that the replicas share evenly and whose gathered
  episodes fit in EVAL_CHUNK_BYTES per replica: the size of the chunks `Evaluator` draws its
  tasks in, so it fixes which tasks a seed gives."""
  fits = replicas * max(1, EVAL_CHUNK_BYTES // (num_classes * examples * dim * 4))
  # Counted up to `fits` only: a batch of a billion tasks must not take a minute here.
  divisors = [d for d in range(replicas, min(batch_size, fits) + 1, replicas)
              if batch_size % d == 0]
  if not divisors:
    raise utils.LeoError(f"a batch of {batch_size} tasks cannot be shared evenly by "
                         f"{replicas} replicas: choose a batch size that is a multiple of "
                         f"{replicas}")
  return max(divisors)


# ---- Scorers: (provider, rows [tasks, N, shots + queries], shots) -> (loss, accuracy). ----

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
  (`DataProvider.query_logits`) instead of gathering them: an evaluation task holds thousands
  of query embeddings and a small support set, so many tasks fit in one call."""
  tasks_per_call = sizes.EVAL_TASKS_PER_CALL

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
               queries: int, strategy=None, given: Optional[np.ndarray] = None):
    """
    Args:
      scores: `(provider, rows [tasks, N, shots + queries], shots) -> (loss, accuracy)`, both
        [tasks], with an attribute `tasks_per_call`: `LEOScores` or `GatheredScores`.
      provider: the `data.DataProvider` of the split.
      batch_size, num_classes, shots, queries: the protocol's task shape.
      strategy: a `tf.distribute` strategy whose replicas share each call's tasks.
      given: the tasks to score, rows `[tasks, N, shots + queries]` (a `--tasks` file), in
        place of sampled ones; the same chunks, the last one filled up with its last task.
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
      return distribute.run_on_replicas_gathered(
          strategy, lambda share: scores(provider, share, shots), rows)

    # A call per chunk: a graph of many chunks takes longer to trace than its calls cost.
    self._sample = (tf.function(sample, autograph=False) if given is None
                    else _given_chunks(given, self.chunk))
    self._score = tf.function(score, autograph=False)

  def __call__(self, num_tasks: int, fingerprint=None, progress: bool = False, export=None):
    """(mean loss, per-task accuracies as a numpy array [num_tasks]).

    Args:
      num_tasks: how many tasks.
      fingerprint: a `records.TaskFingerprint` that every evaluated task is added to.
      progress: log tasks done, tasks/s and the ETA every utils.PROGRESS_SECONDS.
      export: a `tasks.TaskWriter` that every evaluated task is written to.
    """
    chunks_per_call = min(self._chunks_per_call, -(-num_tasks // self.chunk))
    losses, accuracies, done = [], [], 0
    report = utils.Progress("Evaluated", num_tasks, "tasks") if progress else lambda done: None
    while done < num_tasks:
      chunks = min(chunks_per_call, -(-(num_tasks - done) // self.chunk))
      rows = tf.concat([self._sample() for _ in range(chunks)], axis=0)
      dummies = tf.zeros([(chunks_per_call - chunks) * self.chunk] + rows.shape[1:], rows.dtype)
      loss, accuracy = self._score(tf.concat([rows, dummies], axis=0))
      wanted = min(num_tasks - done, chunks * self.chunk)
      losses.append(loss.numpy()[:chunks * self.chunk])
      accuracies.append(accuracy.numpy()[:wanted])
      for sink in (fingerprint, export):
        if sink is not None:
          sink.update(rows.numpy()[:wanted])
      done += wanted
      report(done)
    return float(np.mean(np.concatenate(losses), dtype=np.float64)), np.concatenate(accuracies)

  def fingerprint(self):
    return records.TaskFingerprint(self.provider.keys_digest, *self.shape)


def _given_chunks(rows: np.ndarray, chunk: int):
  """A sampler of `rows` `[tasks, N, examples]` chunk after chunk, the last chunk filled up
  with copies of the last task (scored, then dropped as the surplus of sampled chunks is)."""
  surplus = -len(rows) % chunk
  padded = np.concatenate([rows, np.repeat(rows[-1:], surplus, axis=0)])
  chunks = iter(np.split(padded, len(padded) // chunk))
  return lambda: tf.constant(next(chunks))


# ---- Evaluating a method on a split: score, describe, record. ----

@dataclasses.dataclass(frozen=True)
class Method:
  """What is evaluated: LEO or a baseline."""
  name: str  # "leo" or the baseline's name.
  scores: Callable  # `LEOScores` or `GatheredScores` (see `Evaluator`).
  config_json: dict  # The configuration of what is evaluated (a run's config.json for LEO).
  trained: Optional[dict] = None  # LEO's `trained_info`; None for a baseline.


@dataclasses.dataclass(frozen=True)
class Result:
  """A method's per-task accuracies on a split, and what they were measured on."""
  method: Method
  split: str
  num_classes: int
  shots: int
  queries: int
  accuracies: np.ndarray  # [tasks]
  fingerprint: str  # records.TaskFingerprint's hex digest of the tasks.
  embeddings_digest: str
  seconds: float

  @property
  def accuracy_and_ci95(self):
    return utils.mean_and_confidence_interval(self.accuracies)


def trained_info(config_json, prefix: str, step, valid_accuracy, folder: str,
                 weights_digest: str):
  """What a LEO result says of the model: its training shape, checkpoint, step, the digest
  of its weights (`trained.weights_digest`) and the leo commits that trained it (those of
  its run `folder`)."""
  outer = config_json["outer_model_config"]
  return {"num_classes": outer["num_classes"],
          "num_tr_examples_per_class": outer["num_tr_examples_per_class"],
          "train_on_val": config_json["data_config"]["train_on_val"], "checkpoint": prefix,
          "step": step, "valid_accuracy": valid_accuracy, "weights_digest": weights_digest,
          "leo_commits": runfolder.training_commits(folder, step)}


def evaluate(method: Method, episodes: data.Episodes, configs: config_lib.Configs, split: str,
             strategy=None, progress: bool = False,
             given: Optional[tasks_lib.Tasks] = None, export=None) -> Result:
  """`method` on the protocol's tasks of `split` ("test" or "val"), or on the `given` tasks
  of that split (their number and shape); every task is also written to `export`
  (a `tasks.TaskWriter`) if given."""
  outer = configs.outer
  provider, queries = episodes.split(split)
  shots, num_classes = outer.num_tr_examples_per_class, outer.num_classes
  batch_size = outer.metatest_batch_size if split == "test" else outer.metavalid_batch_size
  num_tasks = (outer.num_test_tasks if split == "test"
               else config_lib.NUM_VALID_BATCHES * outer.metavalid_batch_size)
  if given is not None:
    num_tasks, num_classes, shots, queries = given.shape
  start = time.time()
  evaluator = Evaluator(method.scores, provider, batch_size, num_classes, shots, queries,
                        strategy, None if given is None else given.rows)
  fingerprint = evaluator.fingerprint()
  _, accuracies = evaluator(num_tasks, fingerprint, progress, export)
  return Result(method, split, num_classes, shots, queries, accuracies,
                fingerprint.hexdigest(), provider.embeddings_digest, time.time() - start)


def data_labels(configs: config_lib.Configs):
  """How a result names the run's and the evaluated data: by dataset name, with the crop and
  then the folder where the names alone do not tell them apart."""
  pair = (configs.data, configs.evaluated_data())
  labels = [data_config.dataset_name for data_config in pair]
  if pair[0].embedding_crop != pair[1].embedding_crop:
    labels = [f"{label} {data_config.embedding_crop}" for label, data_config in zip(labels, pair)]
  if labels[0] == labels[1]:
    labels = [f"{label} at {data_config.data_path or 'the bundled data'}"
              for label, data_config in zip(labels, pair)]
  return labels


def describe(result: Result, configs: config_lib.Configs) -> str:
  """The line papers report, e.g. `Metatest accuracy: 61.89% ± 0.16% (95% CI ...)`; on
  other data than the run's, it names both (`meta-trained on icons (train), tested on glyphs
  (test)`)."""
  method = result.method
  meta_train = "train+val" if configs.data.train_on_val else "train"
  trained_data, tested_data = data_labels(configs)
  tested_on = f"tested on {tested_data} ({result.split})" if configs.cross_domain else ""
  transform = transform_of(method)
  if method.name in baselines.FITTED_BASELINES:
    trained_on = baselines.FITTED_FROM[method.name]
    trained_on += f" of {trained_data} ({meta_train})" if tested_on else ""
    trained_on += ", fitted on each task's support set"
  elif method.name != "leo":
    trained_on = "fitted on each task's support set"
  else:
    trained_on = (f"meta-trained on {trained_data} ({meta_train})" if tested_on
                  else f"meta-trained on {meta_train}")
    trained_shape = (method.trained["num_classes"], method.trained["num_tr_examples_per_class"])
    if trained_shape != (result.num_classes, result.shots):
      trained_on += f"; trained {trained_shape[0]}-way {trained_shape[1]}-shot"
  if transform != transforms.NONE:
    trained_on += f"; {transform} embeddings (statistics of {meta_train})"
  trained_on += f"; {tested_on}" if tested_on else ""
  name = "Metatest" if result.split == "test" else "Metavalid"
  of_method = "" if method.name == "leo" else f" of {method.name}"
  accuracy, half_width = result.accuracy_and_ci95
  return (f"{name} accuracy{of_method}: {accuracy:.2%} ± {half_width:.2%} (95% CI over "
          f"{len(result.accuracies)} tasks; {result.num_classes}-way {result.shots}-shot; "
          f"{result.queries} queries/class; {trained_on})")


def transform_of(method: Method) -> str:
  """The --embedding_transform of the method's inputs."""
  return method.config_json["data_config"].get("embedding_transform", transforms.NONE)


def _learns(method: Method) -> bool:
  """Whether the method learnt from the run's data (else it fits each task alone)."""
  return (method.name == "leo" or method.name in baselines.FITTED_BASELINES
          or transform_of(method) != transforms.NONE)


def identity(result: Result, configs: config_lib.Configs) -> dict:
  """What makes this evaluation differ from another, which its record's name holds a digest
  of (`records.identity_digest`): the method and what it learnt from (LEO: its configuration
  as evaluated, step and weights; a fitted baseline: the data it was fitted on), the data the
  tasks are drawn from (names and digest), the tasks (their fingerprint: a --tasks file's, or
  the sampled ones'), their shape, number and seed. Paths are not part of it: moved data or
  runs give the same evaluation."""
  method, data_config = result.method, configs.evaluated_data()
  learnt = None
  if method.name == "leo":
    learnt = dict(configuration=runfolder.identity(method.config_json),
                  step=method.trained["step"], weights=method.trained["weights_digest"])
  elif _learns(method):
    learnt = dict(dataset_name=configs.data.dataset_name,
                  embedding_crop=configs.data.embedding_crop,
                  train_on_val=configs.data.train_on_val)
    if transform_of(method) != transforms.NONE:  # Absent otherwise: older records' names hold.
      learnt.update(embedding_transform=transform_of(method),
                    transform_digest=method.config_json[runfolder.TRANSFORM_DIGEST])
  return dict(method=method.name, learnt=learnt, split=result.split,
              tested_on=dict(dataset_name=data_config.dataset_name,
                             embedding_crop=data_config.embedding_crop,
                             embeddings_digest=result.embeddings_digest),
              task_fingerprint=result.fingerprint, num_classes=result.num_classes,
              shots=result.shots, queries=result.queries, num_tasks=len(result.accuracies),
              seed=configs.run.seed)


def record(result: Result, configs: config_lib.Configs, line: str, results: str,
           root: Optional[str] = None) -> str:
  """Writes the result record into the folder `results` (below the folder `root` leo owns,
  if given: no link between them is followed) and returns its path.

  `dataset_name` and `embedding_crop` name the data the tasks are drawn from; `tested_on` and
  `meta_trained_on` (None for a baseline fitted on each task alone) say both data in full.
  """
  accuracy, half_width = result.accuracy_and_ci95
  data_config = configs.evaluated_data()
  meta_trained_on = dict(
      dataset_name=configs.data.dataset_name, embedding_crop=configs.data.embedding_crop,
      data_path=configs.data.data_path, train_on_val=configs.data.train_on_val)
  return records.write_record(results, dict(
      method=result.method.name, split=result.split, num_classes=result.num_classes,
      num_tr_examples_per_class=result.shots, queries_per_class=result.queries,
      num_tasks=len(result.accuracies), seed=configs.run.seed, accuracy=accuracy,
      ci95=half_width, task_accuracies=[round(float(a), 7) for a in result.accuracies],
      task_fingerprint=result.fingerprint, embeddings_digest=result.embeddings_digest,
      dataset_name=data_config.dataset_name, embedding_crop=data_config.embedding_crop,
      train_on_val=data_config.train_on_val, config=result.method.config_json,
      tested_on=dict(dataset_name=data_config.dataset_name,
                     embedding_crop=data_config.embedding_crop, data_path=data_config.data_path,
                     split=result.split),
      meta_trained_on=meta_trained_on if _learns(result.method) else None,
      trained=result.method.trained, summary=line, command=sys.argv,
      versions=runfolder.versions(), created=runfolder.now(),
      seconds=round(result.seconds, 2),
      **{records.IDENTITY_FIELD: records.identity_digest(identity(result, configs))}), root)


def report(line: str, log=None):
  """Prints a result line (stdout: what a user pipes on) and copies it into the run's log."""
  print(line, flush=True)
  if log is not None:
    log.write(line)


def results_folder(configs: config_lib.Configs, folder: str) -> str:
  """Where an evaluation writes its record: `--results_path`, else `<folder>/results`."""
  return configs.run.results_path or storage.join(folder, records.RESULTS_FOLDER)


def evaluate_and_record(method: Method, episodes: data.Episodes, configs: config_lib.Configs,
                        split: str, strategy=None, folder: Optional[str] = None,
                        log=None, given: Optional[tasks_lib.Tasks] = None) -> Result:
  """Evaluates (on the `given` tasks, if any); with a `folder` (the chief's), also prints the
  result line, copies it into `log`, writes the record into `results_folder(configs,
  folder)`, logs its path (`Result record: <path>`) and, with `--export_tasks`, writes the
  tasks to that file."""
  export = None
  if folder is not None and not configs.run.results_path:  # Checked before the work.
    storage.refuse_links(results_folder(configs, folder), folder)
  if folder is not None and configs.run.export_tasks:
    provider, _ = episodes.split(split)
    export = tasks_lib.TaskWriter(configs.run.export_tasks, provider.split_data,
                                  given.shots if given else
                                  configs.outer.num_tr_examples_per_class)
  try:
    result = evaluate(method, episodes, configs, split, strategy, folder is not None, given,
                      export)
  except BaseException:
    if export is not None:
      export.discard()
    raise
  if export is not None:
    export.close()
    logging.info("Tasks written to %s", export.path)
  if folder is not None:
    line = describe(result, configs)
    report(line, log)
    results = results_folder(configs, folder)
    try:
      path = record(result, configs, line, results,
                    None if configs.run.results_path else folder)
    except storage.io_errors() as e:
      raise utils.LeoError(f"{results}: writing the result record failed "
                           f"({utils.first_line(e)})") from None
    logging.info("Result record: %s", path)
  return result


# ---- The runner's evaluation commands. ----

def check_model_shapes(config_json, configs: config_lib.Configs, embedding_dim: int,
                       saved_path: str):
  """A model's variables fix its latent size and embedding size; N-way and K-shot, and the
  data, are free."""
  trained = config_json["inner_model_config"]["num_latents"]
  if trained != configs.inner.num_latents:
    raise utils.LeoError(f"--num_latents={configs.inner.num_latents} contradicts the model "
                         f"saved at {saved_path}, trained with num_latents={trained}")
  if config_json["embedding_dim"] != embedding_dim:
    evaluated = (f" of --eval_dataset_name={configs.evaluated_data().dataset_name}"
                 if configs.cross_domain else "")
    raise utils.LeoError(f"the embeddings{evaluated} are {embedding_dim}-d but the model "
                         f"saved at {saved_path} was trained on {config_json['embedding_dim']}-d "
                         f"embeddings of {configs.data.dataset_name}")


def check_transform(config_json, configs: config_lib.Configs, saved_path: str):
  """A model's embedding transform is part of it: its statistics are applied to whatever it
  is evaluated on, and a flag asking for another is refused."""
  trained_with = config_json["data_config"].get("embedding_transform", transforms.NONE)
  if configs.data.embedding_transform != trained_with:
    raise utils.LeoError(f"--embedding_transform={configs.data.embedding_transform} "
                         f"contradicts the model saved at {saved_path}, trained with "
                         f"embedding_transform={trained_with} (whose statistics every "
                         "evaluation applies)")


def check_run_data(config_json, configs: config_lib.Configs, saved_path: str):
  """Evaluating a model on its run's data checks them as a resume does: embeddings at
  --data_path other than those its configuration's digest names are refused, pointing to
  --eval_data_path for other data. A configuration without a digest is taken as it is."""
  saved = config_json.get(runfolder.DATA_DIGEST)
  if not saved:
    return
  digest = data.run_data_digest(configs.data)
  if digest != saved:
    raise utils.LeoError(
        f"--data_path={configs.data.data_path or data.BUNDLED_DATA_PATH}: other embeddings "
        f"(digest {digest[:12]}) than those the model saved at {saved_path} was trained on "
        f"({saved[:12]}); to test it on other data, give them as --eval_data_path (and "
        "--eval_dataset_name)")


def evaluate_checkpoint(configs: config_lib.Configs, strategy=None) -> Result:
  """The original's `--evaluation_mode`: evaluates a saved model on `--eval_split`, with the
  task shape of the flags (another N-way or K-shot than the model was trained with is
  allowed: LEO's variables do not depend on them); on the run's data only if they are those
  it was trained on (`check_run_data`); writes only its result record (a shipped model's into
  a temporary folder, `runfolder.results_folder`, named in the log)."""
  strategy = strategy or distribute.make_strategy(configs.run.distribution_strategy)
  found = runfolder.find_checkpoint(configs.run.checkpoint_path)
  configs = configs.over_saved(found.config_json)
  if not configs.cross_domain:
    check_run_data(found.config_json, configs, found.prefix)
  split = configs.run.eval_split
  check_transform(found.config_json, configs, found.prefix)
  configs, episodes, given = evaluated_episodes(
      configs, transforms.saved(found.folder, found.config_json))
  check_model_shapes(found.config_json, configs, episodes.embedding_dim, found.prefix)
  sizes.check(configs, episodes.embedding_dim)
  with strategy.scope():
    leo = model.build(configs.inner, configs.outer.num_classes,
                      configs.outer.num_tr_examples_per_class, episodes.embedding_dim,
                      configs.run.seed)
  found = trained.restore(leo, found, configs.run.checkpoint_path)
  logging.info(distribute.threads_line(configs))
  logging.info("Evaluating %s on the %s split", found.prefix, split)
  # The inner loop as evaluated: flags given on the command line override the saved values.
  config_json = dict({key: found.config_json[key] for key in runfolder.CONFIGURATION_KEYS
                      if key in found.config_json},
                     inner_model_config=config_lib.as_dict(configs.inner))
  method = Method("leo", LEOScores(leo, configs.run.jit_compile), config_json,
                  trained_info(config_json, found.prefix, found.step, found.valid_accuracy,
                               found.folder, trained.weights_digest(leo)))
  folder = None
  if distribute.is_chief(strategy):  # With --results_path no private folder is made.
    folder = found.folder if configs.run.results_path else runfolder.results_folder(found.folder)
  return evaluate_and_record(method, episodes, configs, split, strategy, folder, given=given)


def evaluate_baseline(configs: config_lib.Configs, strategy=None) -> Result:
  """`--baseline=...`: a baseline on exactly the tasks LEO is evaluated on (same split,
  shape and seed give the same task fingerprint); its record goes to
  `<checkpoint_path>/results` (or `--results_path`)."""
  strategy = strategy or distribute.make_strategy(configs.run.distribution_strategy)
  split, name = configs.run.eval_split, configs.run.baseline
  transform_name = configs.data.embedding_transform
  if name in baselines.FITTED_BASELINES and transform_name != transforms.NONE:
    raise utils.LeoError(f"--embedding_transform={transform_name} with --baseline={name}: "
                         "the baseline fits its own transform of the embeddings; expected "
                         f"--embedding_transform=none, or a baseline of "
                         f"{', '.join(config_lib.TASK_BASELINES)}")
  train = transform = None
  if name in baselines.FITTED_BASELINES or transform_name != transforms.NONE:
    train = data.load_split(configs.data, data.MetaSplit.TRAIN)
    transform = transforms.fit(transform_name, train.embeddings, train.rows_by_class)
  configs, episodes, given = evaluated_episodes(configs, transform)
  sizes.check(configs, episodes.embedding_dim)
  if name in baselines.FITTED_BASELINES:  # Fitted on the run's meta-train classes first.
    if train.embedding_dim != episodes.embedding_dim:
      raise utils.LeoError(f"--baseline={name} learns from {train.embedding_dim}-d embeddings "
                           f"of {configs.data.dataset_name}, but the evaluated ones of "
                           f"--eval_dataset_name={configs.evaluated_data().dataset_name} are "
                           f"{episodes.embedding_dim}-d")
    baseline = baselines.FITTED_BASELINES[name](train.embeddings, train.rows_by_class)
  else:
    baseline = baselines.BASELINES[name]
  logging.info(distribute.threads_line(configs))
  folder = configs.run.checkpoint_path if distribute.is_chief(strategy) else None
  if folder is not None and not configs.run.results_path:
    runfolder.prepare(folder)
  method = Method(name, GatheredScores(lambda batch: (tf.constant(0.0), baseline(batch))),
                  configs.to_json(episodes.embedding_dim,
                                  transform_digest=transform and transform.digest))
  return evaluate_and_record(method, episodes, configs, split, strategy, folder, given=given)


def evaluated_episodes(configs: config_lib.Configs, transform=None):
  """(configs, Episodes of the evaluated data's `--eval_split` transformed by `transform`, the
  `--tasks` file's tasks or None); with a tasks file, the configs hold its task shape, so a
  model is built for it."""
  split = configs.run.eval_split
  episodes = data.Episodes(configs, need_train=False, eval_split=split,
                           data_config=configs.evaluated_data(), transform=transform)
  if not configs.run.tasks:
    return configs, episodes, None
  provider, _ = episodes.split(split)
  given = tasks_lib.read_tasks(configs.run.tasks, provider.split_data, provider.path)
  _, num_classes, shots, queries = given.shape
  outer = dataclasses.replace(configs.outer, num_classes=num_classes,
                              num_tr_examples_per_class=shots,
                              num_eval_examples_per_class=queries)
  return dataclasses.replace(configs, outer=outer), episodes, given
