# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Baselines fitted on each task's support set, run on exactly LEO's test episodes.

They put a LEO number in context: how much of it the embeddings already give with no
meta-learning at all. Each is a pure function of a batch of episodes, vectorised over tasks.
Two of them first learn from the meta-train split, without meta-learning:
`whitened_nearest_centroid`, what a linear change of the features alone gives, and
`simpleshot`, nearest centroid after centring on the meta-train mean (Wang et al., 2019).
"""

from typing import Sequence

import numpy as np
import tensorflow as tf

import config
import transforms

# Logistic regression: scikit-learn's default objective (C = 1), solved by gradient descent.
# With unit-norm inputs the mean cross-entropy is 1/2-smooth, so a step of 1 is stable.
LOGISTIC_C = 1.0
LOGISTIC_STEPS = 300
LOGISTIC_STEP_SIZE = 1.0


def _accuracy(logits, labels):
  """Per-task accuracy of `logits` `[tasks, classes, queries, classes]` against labels
  `[tasks, classes, queries, 1]`."""
  predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)
  return tf.reduce_mean(tf.cast(tf.equal(predictions, labels[..., 0]), tf.float32), axis=[1, 2])


def nearest_centroid(problem):
  """Cosine nearest class centroid.

  Args:
    problem: a batched `ProblemInstance`, tr_input `[tasks, classes, shots, dim]`.

  Returns:
    Per-task query accuracy `[tasks]`.
  """
  centroids = tf.math.l2_normalize(tf.reduce_mean(problem.tr_input, axis=2), axis=-1)
  queries = tf.math.l2_normalize(problem.val_input, axis=-1)
  return _accuracy(tf.einsum("tcqd,tnd->tcqn", queries, centroids), problem.val_output)


def logistic_regression(problem):
  """Multinomial logistic regression with L2 penalty, one per task.

  Minimises mean cross-entropy + ||W||^2 / (2 C n) over weights and biases, n = classes x
  shots: scikit-learn's `LogisticRegression(C=1)` objective divided by C n.

  Args:
    problem: a batched `ProblemInstance`, tr_input `[tasks, classes, shots, dim]`.

  Returns:
    Per-task query accuracy `[tasks]`.
  """
  tasks, classes, shots, dim = problem.tr_input.shape
  inputs = tf.reshape(problem.tr_input, [tasks, classes * shots, dim])
  labels = tf.reshape(problem.tr_output, [tasks, classes * shots])
  weights, biases = fit_logistic_regression(inputs, tf.one_hot(labels, classes))
  logits = tf.einsum("tcqd,tdn->tcqn", problem.val_input, weights) + biases[:, None, None]
  return _accuracy(logits, problem.val_output)


def fit_logistic_regression(inputs, targets):
  """Weights `[tasks, dim, classes]` and biases `[tasks, classes]` of the L2-penalised
  multinomial logistic regression of one-hot `targets` `[tasks, n, classes]` on `inputs`
  `[tasks, n, dim]`, by `LOGISTIC_STEPS` steps of full-batch gradient descent."""
  tasks, n, dim = inputs.shape
  classes = targets.shape[-1]
  decay = 1.0 / (LOGISTIC_C * n)

  def step(i, weights, biases):
    probabilities = tf.nn.softmax(tf.einsum("tnd,tdc->tnc", inputs, weights) + biases[:, None])
    error = (probabilities - targets) / n
    weights -= LOGISTIC_STEP_SIZE * (tf.einsum("tnd,tnc->tdc", inputs, error) + decay * weights)
    biases -= LOGISTIC_STEP_SIZE * tf.reduce_sum(error, axis=1)
    return i + 1, weights, biases

  _, weights, biases = tf.while_loop(
      lambda i, *_: i < LOGISTIC_STEPS, step,
      (tf.constant(0), tf.zeros([tasks, dim, classes], inputs.dtype),
       tf.zeros([tasks, classes], inputs.dtype)))
  return weights, biases


def whitened_nearest_centroid(mean: np.ndarray, transform: np.ndarray):
  """Cosine nearest centroid on whitened embeddings (`transforms.fit_whitening`).

  Returns:
    A baseline: a batched `ProblemInstance` -> per-task query accuracy `[tasks]`.
  """

  def baseline(problem):
    dtype = problem.tr_input.dtype
    whiten = lambda x: tf.einsum("...d,de->...e", x - tf.constant(mean, dtype),
                                 tf.constant(transform, dtype))
    return nearest_centroid(problem._replace(tr_input=whiten(problem.tr_input),
                                             val_input=whiten(problem.val_input)))

  return baseline


def simpleshot(mean: np.ndarray):
  """SimpleShot's CL2N nearest centroid: each embedding has `mean` subtracted and is
  L2-normalised, then every query goes to the class whose centroid (the mean of its
  transformed support embeddings) is nearest in Euclidean distance.

  Args:
    mean: `[dim]` the meta-train embeddings' mean (`fitted_simpleshot`).

  Returns:
    A baseline: a batched `ProblemInstance` -> per-task query accuracy `[tasks]`.
  """

  def baseline(problem):
    dtype = problem.tr_input.dtype
    centre = lambda x: tf.math.l2_normalize(x - tf.constant(mean, dtype), axis=-1)
    centroids = tf.reduce_mean(centre(problem.tr_input), axis=2)  # [tasks, classes, dim]
    queries = centre(problem.val_input)
    # -|q - c|^2 up to the query's own norm, which no class changes.
    logits = (2 * tf.einsum("tcqd,tnd->tcqn", queries, centroids)
              - tf.reduce_sum(tf.square(centroids), axis=-1)[:, None, None, :])
    return _accuracy(logits, problem.val_output)

  return baseline


BASELINES = dict(zip(config.TASK_BASELINES, (nearest_centroid, logistic_regression), strict=True))


def fitted_whitened_nearest_centroid(embeddings: np.ndarray,
                                     rows_by_class: Sequence[np.ndarray]):
  """Whitened nearest centroid fitted on a meta-train split as stored, `[n, dim]` with each
  class's rows, normalised as the episodes hold them: `--embedding_transform=whiten`'s fit."""
  fitted = transforms.fit("whiten", embeddings, rows_by_class)
  return whitened_nearest_centroid(fitted.mean, fitted.matrix)


def fitted_simpleshot(embeddings: np.ndarray, rows_by_class: Sequence[np.ndarray]):
  """SimpleShot fitted on a meta-train split as stored, `[n, dim]`: the mean of its rows
  normalised as the episodes hold them (SimpleShot centres its network's raw features; the
  episodes hold only unit rows, so leo centres those): `--embedding_transform=cl2n`'s fit."""
  return simpleshot(transforms.fit("cl2n", embeddings, rows_by_class).mean)


# Baselines that learn from the meta-train split first: name -> (embeddings [n, dim] as
# stored, each class's rows) -> baseline.
FITTED_BASELINES = dict(zip(config.FITTED_BASELINES,
                            (fitted_whitened_nearest_centroid, fitted_simpleshot), strict=True))
# What each fitted baseline learns from the meta-train classes, for the result line.
FITTED_FROM = dict(zip(config.FITTED_BASELINES,
                       ("whitened on the meta-train classes",
                        "centred on the meta-train mean"), strict=True))
