# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""What a run's tensors take, checked before anything is written or traced.

Every flag may be valid alone and the product of a few still impossible: a batch whose
episodes hold more elements than TF's int32 shapes can index, a latent size whose variables
do not fit in memory, an unroll whose tape does not, a support set whose relation pairs do
not in the many tasks an evaluation adapts at once, a validation whose per-task results do
not. `check` estimates the largest tensors of a training step, of the variables (with Adam's
two moments), of an evaluation's call and of its results, and refuses, in one line naming
the flags to lower, what cannot be. The estimates count only what certainly exists, so they
err on the side of running. Training checks before its run folder is claimed, an evaluation
before it reads a checkpoint's variables.
"""

import dataclasses
import os
from typing import List, Optional

import config
import utils

FLOAT_BYTES = 4
# Copies of each inner-loop tensor a training step keeps: its value, the tape's copy for the
# second-order gradient, and the two gradients flowing back through it.
TAPE_COPIES = 4
# An evaluation keeps a loss and an accuracy per task, and copies both once when it joins
# its calls' results.
BYTES_PER_EVALUATED_TASK = 4 * FLOAT_BYTES
# Tasks per compiled call of a scorer that does not gather the queries (evaluation.LEOScores),
# ~100 KB each on miniImageNet (their rows, their classes' logits); BENCHMARKS.md compares
# sizes. A call takes whole chunks of tasks (evaluation.chunk_size), so it holds at least
# half of these and one more, or all the tasks of a smaller evaluation.
EVAL_TASKS_PER_CALL = 200

_EPISODE_FLAGS = ("num_classes", "num_tr_examples_per_class", "num_val_examples_per_class")


class SizeError(utils.LeoError):
  """A configuration whose tensors cannot exist on this machine."""


@dataclasses.dataclass(frozen=True)
class Tensor:
  """An estimated tensor, or a group of them (`single` False): what it is, its elements,
  the flags that make it large."""
  name: str
  elements: int
  flags: tuple
  single: bool = True


def tensors(inner: config.InnerModelConfig, outer: config.OuterModelConfig,
            embedding_dim: int, train=None, leo: bool = True) -> List[Tensor]:
  """The large tensors of a run on embeddings of `embedding_dim` meta-trained on `train` (a
  `data.DataProvider`, or anything with its `largest_class` and `num_classes`); with `train`
  None, those of an evaluation alone. Its calls adapt LEO if `leo`, else fit a baseline."""
  batch, n = outer.metatrain_batch_size, outer.num_classes
  shots, queries = outer.num_tr_examples_per_class, outer.num_val_examples_per_class
  latents, dim = inner.num_latents, embedding_dim
  unrolls = inner.inner_unroll_length + inner.finetuning_unroll_length + 1
  validation_tasks = config.NUM_VALID_BATCHES * outer.metavalid_batch_size
  evaluation = [
      Tensor("a validation's per-task results",
             validation_tasks * BYTES_PER_EVALUATED_TASK // FLOAT_BYTES,
             ("metavalid_batch_size",), single=False),
      Tensor("the test's per-task results",
             outer.num_test_tasks * BYTES_PER_EVALUATED_TASK // FLOAT_BYTES,
             ("num_test_tasks",), single=False),
  ]
  if leo:
    call = min(EVAL_TASKS_PER_CALL // 2 + 1, validation_tasks, outer.num_test_tasks)
    evaluation += [
        Tensor("the relation network's pairs of an evaluation call",
               call * (n * shots) ** 2 * 2 * latents,
               ("num_classes", "num_tr_examples_per_class", "num_latents")),
        Tensor("the decoded weights of an evaluation call", call * n * shots * 2 * dim,
               ("num_classes", "num_tr_examples_per_class")),
    ]
  if train is None:
    return evaluation
  return evaluation + [
      Tensor("the episodes of a training step", batch * n * (shots + queries) * dim,
             ("metatrain_batch_size",) + _EPISODE_FLAGS),
      Tensor("the sampling keys of a training step", batch * max(n * train.largest_class,
                                                                 train.num_classes),
             ("metatrain_batch_size", "num_classes")),
      Tensor("the relation network's pairs", batch * (n * shots) ** 2 * 2 * latents,
             ("metatrain_batch_size", "num_classes", "num_tr_examples_per_class",
              "num_latents")),
      Tensor("the inner loops' decoded weights, kept for the outer gradient",
             TAPE_COPIES * unrolls * batch * n * shots * 4 * dim,
             ("inner_unroll_length", "finetuning_unroll_length", "metatrain_batch_size",
              "num_classes", "num_tr_examples_per_class"), single=False),
      Tensor("a relation network weight", (2 * latents) ** 2, ("num_latents",)),
      # The encoder, the relation network and the decoder, each with Adam's two moments.
      Tensor("the model's variables and their Adam moments",
             3 * (dim * latents + 3 * (2 * latents) ** 2 + latents * 2 * dim),
             ("num_latents",), single=False),
  ]


def memory_bytes() -> Optional[int]:
  """This machine's physical memory, None where the system does not say."""
  try:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (AttributeError, OSError, ValueError):
    return None


def check(configs, embedding_dim: int, train=None, memory: Optional[int] = None):
  """Raises SizeError if a tensor of `tensors` has more elements than int32 shapes index (the
  largest such is named), or if together they take more than `memory` bytes (default: this
  machine's).

  Args:
    configs: the run's configs (`inner`, `outer`, `run` attributes).
    embedding_dim, train: see `tensors`.
    memory: the bytes available.
  """
  estimated = tensors(configs.inner, configs.outer, embedding_dim, train,
                      leo=configs.run.baseline == "none")
  def values(tensor):
    return ", ".join(f"--{name}={_value(configs, name)}" for name in tensor.flags)

  beyond = [tensor for tensor in estimated
            if tensor.single and tensor.elements > config.INT32_MAX]
  if beyond:
    largest = max(beyond, key=lambda tensor: tensor.elements)
    raise SizeError(f"{values(largest)}: {largest.name} would hold {largest.elements:,} "
                    f"elements, more than TF's int32 shapes index ({config.INT32_MAX:,}): "
                    "lower them")
  memory = memory_bytes() if memory is None else memory
  total = sum(tensor.elements for tensor in estimated) * FLOAT_BYTES
  if memory and total > memory:
    largest = max(estimated, key=lambda tensor: tensor.elements)
    raise SizeError(f"{values(largest)}: {largest.name} alone would take "
                    f"{largest.elements * FLOAT_BYTES / 2**30:,.1f} GB and the run at least "
                    f"{total / 2**30:,.1f} GB, more than this machine's "
                    f"{memory / 2**30:,.1f} GB: lower them")


def _value(configs, name: str):
  for section in (configs.inner, configs.outer):
    if hasattr(section, name):
      return getattr(section, name)
  raise KeyError(name)
