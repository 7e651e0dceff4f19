# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Meta-training: the model and its compiled step, and the outer loop of the original runner.

The loop is the original's: validate at step 0 and every `checkpoint_steps`, keep the
checkpoint with strictly higher validation accuracy in `<checkpoint_path>/best_checkpoint`,
train to `num_steps_limit`, then test the best. Running it again on the same folder resumes
from the latest checkpoint. What the loop writes goes through a `TrainingFolder`, which knows
whether this process is the chief.
"""

import contextlib
import functools
import json
import logging as logging_lib
import time
from typing import List, NamedTuple, Optional, Tuple

from absl import logging
import numpy as np
import tensorflow as tf

import backbone as backbone_lib
import config as config_lib
import data
import distribute
import evaluation
import model
import optim
import records
import runfolder
import sizes
import storage
import trained
import transforms
import utils


def build_model(configs: config_lib.Configs, embedding_dim: int, strategy=None,
                leo_class=None):
  """LEO (or a `leo_class` computing the same) and its outer optimiser, every variable
  created now (under `strategy`'s scope)."""
  with (strategy or tf.distribute.get_strategy()).scope():
    leo = model.build(configs.inner, configs.outer.num_classes,
                      configs.outer.num_tr_examples_per_class, embedding_dim, configs.run.seed,
                      leo_class or model.LEO)
    meta_optimizer = optim.MetaOptimizer(configs.outer)
    meta_optimizer.build(leo.trainable_variables)
  return leo, meta_optimizer


class StepResult(NamedTuple):
  """What a training step returns."""
  loss: tf.Tensor  # The batch's mean loss.
  accuracy: tf.Tensor  # The batch's mean query accuracy.
  gradients: List[tf.Tensor]  # The clipped gradients that were applied.


def make_train_step(leo, meta_optimizer, sampler, outer: config_lib.OuterModelConfig,
                    step=None, strategy=None, jit_compile: bool = False):
  """The compiled meta-training step: sample a batch, loss, second-order gradients, update.

  With `jit_compile` the loss and gradients of each replica are compiled by XLA.

  The batch is sampled once and its tasks shared by the replicas of `strategy`; the gradients
  of their losses are averaged, which is the gradient of the batch's mean loss, and one update
  is applied to the mirrored variables: the step of one device, split.

  Returns:
    A `tf.function` returning the step's `StepResult`.
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
    loss, accuracy, gradients = distribute.run_on_replicas(strategy, replica_step, batch,
                                                           noise_seed)
    loss, accuracy = distribute.mean(strategy, loss), distribute.mean(strategy, accuracy)
    gradients = [distribute.mean(strategy, gradient) for gradient in gradients]
    clipped = meta_optimizer.apply(loss, gradients, leo.trainable_variables)
    if step is not None:
      step.assign_add(1)
    return StepResult(loss, accuracy, clipped)

  return tf.function(train_step, autograph=False)


# ---- The run folder's side of training. ----

def _writes(method):
  """A write of the run folder: a failure is one line, after the folder's clean-ups."""
  @functools.wraps(method)
  def write(self, *args, **kwargs):
    with runfolder.writing_to(self.path, self.cleanups):
      return method(self, *args, **kwargs)
  return write


class TrainingFolder:
  """What training reads from and writes to its run folder: the chief's.

  Opening it locks the folder, claims it for this configuration before anything else is
  written and copies the log into train.log; then it resumes from the newest intact
  checkpoint, saves the latest and the best, and records validations and summaries.
  """

  def __init__(self, configs: config_lib.Configs, config_json, transform=None):
    self.configs, self.config_json = configs, config_json
    self.transform = transform  # The run's fitted embedding transform, saved by `_claim`.
    self.path = configs.run.checkpoint_path
    self.best = runfolder.BestCheckpoint(storage.join(self.path, runfolder.BEST_FOLDER))
    # Which checkpoint to resume from is settled (every one read in full) before anything is
    # written: if none is intact, the folder is left as it was.
    self.resume_point = (runfolder.Checkpoints(self.path, None).newest_intact()
                         if storage.isdir(self.path) else None)
    self.checkpoints = self.latest = self.log = self.writer = None
    # What a failed write may have left: removed before its error is reported.
    self.cleanups = (runfolder.Checkpoints(self.path, None).clean, self.best.clean)

  @property
  def results_folder(self) -> Optional[str]:
    """Where the test's record goes (None: this process reports nothing)."""
    return self.path

  @contextlib.contextmanager
  def open(self):
    runfolder.prepare(self.path)
    with storage.RunLock(self.path):
      notes = self._claim()
      self.log = runfolder.LogFile(self.path, utils.OwnLinesOrWarnings())
      root = logging_lib.getLogger()
      root.addHandler(self.log)
      for note in notes:  # Into train.log too.
        logging.warning("%s", note)
      try:
        yield self
      finally:
        root.removeHandler(self.log)

  @_writes
  def _claim(self) -> List[str]:
    notes = runfolder.claim(self.path, self.config_json, self.configs.flagfile_lines())
    # After the claim (the folder is this configuration's), before any checkpoint: a model
    # is never saved without the statistics its inputs need.
    if self.transform is not None and not storage.exists(transforms.path_in(self.path)):
      transforms.write(self.path, self.transform, self.path)
    return notes

  @_writes
  def resume(self, checkpoint: tf.train.Checkpoint, step: tf.Variable):
    """Restores the newest intact checkpoint into `checkpoint` (whose `step` it holds), after
    removing what an interrupted save left and setting a damaged best aside."""
    self.checkpoints = runfolder.Checkpoints(self.path, checkpoint)
    self.checkpoints.clean()
    self.best.clean()
    reason = self.best.damage()
    if reason:
      damaged = self.best.prefix
      target = runfolder.move_aside(self.path, [self.best.folder])
      logging.warning("Damaged %s (%s) moved to %s; the next validation elects a new best",
                      damaged, reason, target)
    self.latest = self.checkpoints.restore_latest(self.resume_point)
    self._log_resumption(step)
    runfolder.record_session(self.path, int(step.numpy()))
    self.writer = tf.summary.create_file_writer(self.path)
    self._write_hparams()

  def _log_resumption(self, step: tf.Variable):
    if self.latest:
      logging.info("Resuming from %s at step %d (best validation accuracy so far %s).",
                   self.latest, int(step.numpy()), utils.percent(self.best.accuracy))

  @_writes
  def save_latest(self, step: int):
    if not (self.latest or "").endswith(f"-{step}"):
      self.latest = self.checkpoints.save(step)

  @_writes
  def save_best(self, leo, step: int, accuracy: float):
    self.best.save(tf.train.Checkpoint(model=leo), step, accuracy, self.config_json)

  @_writes
  def record_validation(self, entry, scalars, histograms):
    """Appends a validation (`entry`, see records.append_validation) and its summaries."""
    records.append_validation(self.path, entry)
    self.write_summaries(entry["step"], scalars, histograms)

  @_writes
  def write_summaries(self, step: int, scalars, histograms=None):
    with self.writer.as_default(step=step):
      for name, value in scalars.items():
        tf.summary.scalar(name, value)
      for name, value in (histograms or {}).items():
        tf.summary.histogram(name, value)
    self.writer.flush()

  def _write_hparams(self):
    """The run's configuration on TensorBoard's hparams dashboard (its metrics are the
    best_valid_accuracy and metatest_accuracy scalars)."""
    from tensorboard.plugins.hparams import api as hparams_api  # pylint: disable=g-import-not-at-top
    values = {name: self.config_json[name] for name in ("seed", "embedding_dim")}
    for section in ("data_config", "inner_model_config", "outer_model_config"):
      values.update({name: value for name, value in self.config_json[section].items()
                     if value is not None})
    with self.writer.as_default():
      hparams_api.hparams(values)
    self.writer.flush()


class WorkerFolder(TrainingFolder):
  """A worker of a multi-worker strategy other than the chief: it resumes from the chief's
  folder and writes nothing there. Saving is collective (every worker saves), so it saves
  into a scratch folder of its own, deleted after each validation."""

  def __init__(self, configs: config_lib.Configs, config_json, worker: int):
    super().__init__(configs, config_json)
    self.scratch = storage.join(self.path, f".worker-{worker}")
    self.cleanups = ()

  results_folder = None

  @contextlib.contextmanager
  def open(self):
    yield self

  def resume(self, checkpoint: tf.train.Checkpoint, step: tf.Variable):
    self.checkpoints = runfolder.Checkpoints(self.scratch, checkpoint)
    self.latest = runfolder.Checkpoints(self.path, checkpoint).restore_latest(
        self.resume_point, move_damaged=False)
    self._log_resumption(step)

  @_writes
  def save_best(self, leo, step: int, accuracy: float):
    runfolder.BestCheckpoint(self.scratch).save(tf.train.Checkpoint(model=leo), step,
                                                accuracy, self.config_json)

  def record_validation(self, entry, scalars, histograms):
    storage.remove(self.scratch)

  def write_summaries(self, step: int, scalars, histograms=None):
    pass


def training_folder(configs: config_lib.Configs, config_json, strategy,
                    transform=None) -> TrainingFolder:
  """The chief's folder, or a worker's."""
  if distribute.is_chief(strategy):
    return TrainingFolder(configs, config_json, transform)
  return WorkerFolder(configs, config_json, distribute.worker_id(strategy))


# ---- The loop. ----

class LogWindow:
  """The training steps since the last log line: their metrics, kept as the steps returned
  them and read back in one transfer at the log line (where a device runs steps
  asynchronously, a GPU, a read per step would make the host wait on each before it sends the
  next), and the wall-clock time of those that
  did not trace (a session's first call traces: its time is no step's), each from the end of
  the step before, so that the loop's own work (log lines, summaries) is counted and only a
  validation's time is not."""

  def __init__(self):
    self.losses, self.accuracies = [], []
    self.seconds, self.timed_steps = 0.0, 0

  def add(self, result: StepResult, seconds: float, timed: bool):
    self.losses.append(result.loss)
    self.accuracies.append(result.accuracy)
    if timed:
      self.seconds += seconds
      self.timed_steps += 1

  @property
  def metrics(self) -> List[Tuple[float, float]]:
    """Each step's (loss, accuracy), read back in one transfer."""
    values = tf.stack(self.losses + self.accuracies).numpy().tolist()
    return list(zip(values[:len(self.losses)], values[len(self.losses):]))

  @property
  def steps_per_second(self) -> float:
    return self.timed_steps / max(self.seconds, 1e-9) if self.timed_steps else float("nan")


def mean_training_metrics(metrics):
  """Mean loss (of the finite ones; NaN if none) and accuracy of (loss, accuracy) pairs."""
  losses = np.array([loss for loss, _ in metrics])
  finite = losses[np.isfinite(losses)]
  return (float(finite.mean()) if finite.size else float("nan"),
          float(np.mean([accuracy for _, accuracy in metrics])))


def remaining_seconds(current: int, limit: int, checkpoint_steps: int, rate: float,
                      validation_seconds) -> float:
  """Time to `limit`: the steps at the measured rate plus the validations still to come
  (one every `checkpoint_steps` and one at the limit) at their measured mean duration."""
  validations = limit // checkpoint_steps - current // checkpoint_steps
  validations += limit % checkpoint_steps != 0
  mean_validation = float(np.mean(validation_seconds)) if validation_seconds else 0.0
  return (limit - current) / rate + validations * mean_validation


def train(configs: config_lib.Configs, strategy=None, stop: Optional["StopRequest"] = None):
  """Meta-trains to `num_steps_limit` (resuming), then tests the best model.

  Under a multi-worker strategy every worker runs this loop in step; `training_folder`
  decides what each writes. What cannot fit is refused before the folder is touched
  (`sizes.check`). `stop` (Ctrl-C, installed by the command) ends the loop at a safe point.
  """
  strategy = strategy or distribute.make_strategy(configs.run.distribution_strategy)
  episodes = data.Episodes(configs, need_train=True, transform=transforms.resumed(
      configs.run.checkpoint_path, configs.data.embedding_transform))
  sizes.check(configs, episodes.embedding_dim, episodes.train)
  config_json = configs.to_json(
      episodes.embedding_dim,
      data_digest=data.data_digest([episodes.train, episodes.valid, episodes.test]),
      backbone_digest=backbone_lib.named_backbone_digest(data.embeddings_folder(configs.data)),
      transform_digest=episodes.transform and episodes.transform.digest)
  folder = training_folder(configs, config_json, strategy, episodes.transform)
  with folder.open():
    logging.info(distribute.threads_line(configs))
    leo, meta_optimizer = build_model(configs, episodes.embedding_dim, strategy)
    with strategy.scope():
      step = tf.Variable(0, dtype=tf.int64, name="global_step")
    folder.resume(tf.train.Checkpoint(model=leo, optimizer=meta_optimizer, step=step,
                                      train_sampler=episodes.train.generator,
                                      valid_sampler=episodes.valid.generator), step)
    logging.info("Configuration:\n%s", json.dumps(folder.config_json, indent=2, sort_keys=True))
    train_step = make_train_step(leo, meta_optimizer, episodes.train, configs.outer, step,
                                 strategy, configs.run.jit_compile)
    validate = evaluation.Evaluator(
        evaluation.LEOScores(leo, configs.run.jit_compile), episodes.valid,
        configs.outer.metavalid_batch_size, configs.outer.num_classes,
        configs.outer.num_tr_examples_per_class, episodes.valid_queries, strategy)
    loop = Loop(configs, folder, leo, meta_optimizer, validate, episodes.valid_queries,
                stop or StopRequest())
    loop.run(train_step, int(step.numpy()))
    if configs.run.evaluate_after_training:
      test_best(leo, folder, episodes, configs, strategy, loop.current)


class StopRequest:
  """Ctrl-C as a request, when installed as the SIGINT handler (the command does: a signal
  belongs to the process): while a loop listens, the first stops it after the current step
  (its checkpoint and validation, if due, committed); a second, or one while nothing listens,
  stops at once (KeyboardInterrupt)."""

  def __init__(self):
    self.requested = False
    self.listening = False

  def __call__(self, signum, frame):
    del signum, frame  # Unused.
    if self.requested or not self.listening:
      raise KeyboardInterrupt
    self.requested = True
    logging.warning("Ctrl-C: stopping after this step (Ctrl-C again to stop at once)")


class Loop:
  """The outer loop's state: validate when due, train a step, log when due."""

  def __init__(self, configs: config_lib.Configs, folder: TrainingFolder, leo, meta_optimizer,
               validate: evaluation.Evaluator, valid_queries: int, stop: StopRequest):
    self.stop = stop
    self.outer, self.run_config = configs.outer, configs.run
    self.folder, self.leo, self.meta_optimizer = folder, leo, meta_optimizer
    self.validate, self.valid_queries = validate, valid_queries
    self.best_accuracy = folder.best.accuracy  # Every worker decides alike; the chief commits.
    self.current = 0
    self.last: Optional[StepResult] = None
    self.validation_seconds = []

  def run(self, train_step, start: int):
    self.current, limit = start, self.outer.num_steps_limit
    window, traced, run_start = LogWindow(), False, time.time()
    clock = time.perf_counter()
    self.stop.listening = True
    try:
      while True:
        if self.current % self.run_config.checkpoint_steps == 0 or self.current == limit:
          self.validation()
          clock = time.perf_counter()
        if self.current >= limit:
          break
        self.last = train_step()
        now = time.perf_counter()
        window.add(self.last, now - clock, timed=traced)
        clock, traced = now, True
        self.current += 1
        if self.current % self.run_config.log_steps == 0 or self.current == limit:
          self.log_training(window)
          window = LogWindow()
        if self.stop.requested:
          raise utils.Interrupted(
              f"stopped at step {self.current} (Ctrl-C): rerun the same command to resume "
              f"from {self.folder.latest or 'step 0'}")
    finally:
      self.stop.listening = False
    logging.info("Training done: %d steps in %s; best meta-valid accuracy %s.", self.current,
                 utils.duration(time.time() - run_start), utils.percent(self.best_accuracy))

  def validation(self):
    """Saves the latest checkpoint, validates, keeps the best, records the validation."""
    start, current = time.time(), self.current
    self.folder.save_latest(current)
    loss, accuracies = self.validate(config_lib.NUM_VALID_BATCHES
                                     * self.outer.metavalid_batch_size)
    accuracy, ci95 = utils.mean_and_confidence_interval(accuracies)
    if accuracy > self.best_accuracy:
      self.best_accuracy = accuracy
      self.folder.save_best(self.leo, current, accuracy)
    logging.info("Step: %d meta-valid accuracy: %s ± %s (best %s)", current,
                 utils.percent(accuracy), utils.percent(ci95), utils.percent(self.best_accuracy))
    scalars = {"metavalid_loss": loss, "metavalid_valid_accuracy": accuracy,
               "best_valid_accuracy": self.best_accuracy,
               "nan_guard_count": self.meta_optimizer.nan_guard_count}
    variables = self.leo.trainable_variables
    histograms = {v.name: v for v in variables}
    if self.last is not None:
      histograms.update({f"gradient/{v.name}": g for v, g in zip(variables, self.last.gradients)})
    self.validation_seconds.append(time.time() - start)
    self.folder.record_validation(
        dict(step=current, accuracy=accuracy, ci95=ci95, loss=loss, num_tasks=len(accuracies),
             queries_per_class=self.valid_queries, seconds=round(self.validation_seconds[-1], 3),
             time=runfolder.now()), scalars, histograms)

  def log_training(self, window: LogWindow):
    """The log line of the steps of `window`, and their summaries."""
    rate, limit = window.steps_per_second, self.outer.num_steps_limit
    eta = remaining_seconds(self.current, limit, self.run_config.checkpoint_steps, rate,
                            self.validation_seconds)
    loss, accuracy = mean_training_metrics(window.metrics)
    logging.info("Step: %d/%d %.1f steps/s ETA %s meta-train loss: %.4f accuracy: %s "
                 "(mean of %d steps) NaN-guard count: %d", self.current, limit, rate,
                 utils.duration(eta), loss, utils.percent(accuracy), len(window.metrics),
                 int(self.meta_optimizer.nan_guard_count.numpy()))
    # As the original, a NaN training loss is summarised as 0 (the guard replaced its update;
    # nan_guard_count says how often).
    scalars = {"metatrain_loss": loss if np.isfinite(loss) else 0.0,
               "metatrain_valid_accuracy": accuracy}
    if window.timed_steps:
      scalars["steps_per_second"] = rate
    self.folder.write_summaries(self.current, scalars)


def test_best(leo, folder: TrainingFolder, episodes: data.Episodes,
              configs: config_lib.Configs, strategy, step: int):
  """Tests the run's best checkpoint: its result line, record and summaries."""
  info = folder.best.info
  best = trained.restore(leo, runfolder.FoundCheckpoint(
      folder.best.prefix, folder.config_json, info["step"], info["accuracy"], folder.path))
  method = evaluation.Method(
      "leo", evaluation.LEOScores(leo, configs.run.jit_compile), folder.config_json,
      evaluation.trained_info(folder.config_json, best.prefix, best.step, best.valid_accuracy,
                              folder.path, trained.weights_digest(leo)))
  result = evaluation.evaluate_and_record(method, episodes, configs, "test", strategy,
                                          folder.results_folder, folder.log)
  accuracy, ci95 = result.accuracy_and_ci95
  folder.write_summaries(step, {"metatest_accuracy": accuracy, "metatest_ci95": ci95})
