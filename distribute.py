# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Where the computation runs: TF's CPU threads, the `tf.distribute` strategy, which process
writes the run's files (the chief), and each replica's share of a batch of tasks.

A batch of tasks is sampled once, as on one device; replica r of R takes its consecutive
tasks [r T/R, (r + 1) T/R). Everything a replica computes therefore equals the same tasks
computed on one device.
"""

import os
from typing import Tuple

from absl import logging
import tensorflow as tf

import config as config_lib
import data
import utils

# Intra-op threads on small CPUs, by processor maker and shot count: the faster setting of
# benchmarks/benchmark.py's thread rows on 2 cores (BENCHMARKS.md has the times). LEO's ops
# are tiny, so extra threads mostly add synchronisation; which wins depends on the processor.
# Other shot counts take the nearest measured one; another maker is not trusted with either's
# table.
MEASURED_INTRA_OP_THREADS = {"AMD": {1: 1, 5: 1}, "Intel": {1: 1, 5: 2}}
MEASURED_MAX_CORES = 4  # The largest CPU the table is trusted for.


def choose_threads(configs: config_lib.Configs = None) -> Tuple[int, str]:
  """(intra-op threads, why; 0 is TF's default): `--intra_op_threads` if given; else on a CPU
  of at most MEASURED_MAX_CORES cores the measured choice for the task shape; else (a GPU, or
  a CPU nobody measured) TF's default."""
  requested = configs.run.intra_op_threads if configs else 0
  cores = os.cpu_count() or 1
  model = utils.cpu_model()
  maker = next((name for name in MEASURED_INTRA_OP_THREADS if name in model), None)
  if requested:
    return requested, "--intra_op_threads"
  if tf.config.list_physical_devices("GPU") or cores > MEASURED_MAX_CORES or not maker:
    return 0, f"TF's default; {cores} cores of {model}, not measured"
  shots = configs.outer.num_tr_examples_per_class if configs else 1
  table = MEASURED_INTRA_OP_THREADS[maker]
  nearest = min(table, key=lambda measured: abs(measured - shots))
  return (min(table[nearest], cores),
          f"measured for {nearest}-shot tasks on <= {MEASURED_MAX_CORES} {maker} cores")


def threads_line(configs: config_lib.Configs = None) -> str:
  """What `configure_threads` chose, as the line a command logs once its checks passed."""
  threads, why = choose_threads(configs)
  return f"Intra-op threads: {threads or 'all'} ({why})"


def configure_threads(configs: config_lib.Configs = None):
  """Sets TF's intra-op threads. TF fixes them when its first op runs, so a command in a
  process that ran ops before (a notebook's second command, the tests) keeps the threads it
  finds, with a warning if they are not the chosen ones."""
  threads, _ = choose_threads(configs)
  if threads:
    try:
      tf.config.threading.set_intra_op_parallelism_threads(threads)
    except RuntimeError:  # TF refuses only another number than its own.
      logging.warning("Intra-op threads: TF runs with %s already (fixed at its first op), not "
                      "the %d chosen", tf.config.threading.get_intra_op_parallelism_threads()
                      or "its default", threads)


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


def worker_id(strategy) -> int:
  return strategy.cluster_resolver.task_id


def replica_share(tensor: tf.Tensor, replicas: int) -> Tuple[tf.Tensor, tf.Tensor]:
  """(this replica's consecutive tasks of `tensor` [tasks, ...], the first one's index);
  call it in a replica context."""
  local = tensor.shape[0] // replicas
  offset = tf.distribute.get_replica_context().replica_id_in_sync_group * local
  return tf.ensure_shape(tensor[offset:offset + local], [local] + tensor.shape[1:]), offset


def run_on_replicas(strategy, function, batch: data.ProblemInstance, *args):
  """`function(part, task_offset, total_tasks, *args)` on each replica's share of the tasks
  of `batch`, a `data.ProblemInstance` (its info fields are left out)."""
  replicas = strategy.num_replicas_in_sync
  tensors = (batch.tr_input, batch.tr_output, batch.val_input, batch.val_output)

  def replica_function(tensors, *args):
    shares = [replica_share(tensor, replicas) for tensor in tensors]
    part = [share for share, _ in shares]
    problem = data.ProblemInstance(part[0], part[1], None, part[2], part[3], None)
    return function(problem, shares[0][1], tensors[0].shape[0], *args)

  return strategy.run(replica_function, args=(tensors, *args))


def run_on_replicas_gathered(strategy, function, rows: tf.Tensor):
  """`function(part)` on each replica's share of `rows` [tasks, ...]; its outputs (each
  [share, ...]) gathered back into task order."""
  replicas = strategy.num_replicas_in_sync
  outputs = strategy.run(lambda rows: function(replica_share(rows, replicas)[0]), args=(rows,))
  return tf.nest.map_structure(lambda output: strategy.gather(output, axis=0), outputs)


def mean(strategy, value):
  """The mean of `value` over the replicas."""
  return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)
