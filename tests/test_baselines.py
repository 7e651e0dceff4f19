"""baselines.py: nearest centroid and logistic regression on hand-made tasks."""

import numpy as np
import tensorflow as tf

import baselines
import data


def _problem(support, queries):
  """Episodes from `support` `[tasks, classes, shots, dim]` and `queries` likewise."""
  support, queries = np.asarray(support, np.float32), np.asarray(queries, np.float32)
  def labels(x):
    return np.broadcast_to(np.arange(x.shape[1])[None, :, None, None],
                           x.shape[:3] + (1,)).astype(np.int32)
  return data.ProblemInstance(tf.constant(support), tf.constant(labels(support)), None,
                              tf.constant(queries), tf.constant(labels(queries)), None)


def test_nearest_centroid_uses_the_cosine_to_each_class_mean():
  # Task 0: both queries nearest their own class. Task 1: class 1's centroid is the mean of
  # [1, 1] and [1, -0.2] = [1, 0.4], whose cosine with [1, 0] beats class 0's [0.2, 1].
  support = [[[[1, 0], [1, 0]], [[0, 1], [0, 1]]],
             [[[0.2, 1], [0.2, 1]], [[1, 1], [1, -0.2]]]]
  queries = [[[[0.9, 0.1]], [[0.2, 0.8]]],
             [[[1.0, 0.0]], [[1.0, 0.5]]]]
  accuracy = baselines.nearest_centroid(_problem(support, queries)).numpy()
  np.testing.assert_allclose(accuracy, [1.0, 0.5])


def test_logistic_regression_reaches_the_penalised_optimum():
  rng = np.random.default_rng(0)
  inputs = rng.normal(size=(3, 10, 4)).astype(np.float32)
  inputs /= np.linalg.norm(inputs, axis=-1, keepdims=True)
  targets = tf.one_hot(rng.integers(0, 3, size=(3, 10)), 3)
  weights, biases = baselines.fit_logistic_regression(tf.constant(inputs), targets)
  with tf.GradientTape() as tape:
    tape.watch([weights, biases])
    logits = tf.einsum("tnd,tdc->tnc", inputs, weights) + biases[:, None]
    objective = (tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(targets, logits)) / 10
                 + tf.reduce_sum(weights ** 2) / (2 * baselines.LOGISTIC_C * 10))
  for gradient in tape.gradient(objective, [weights, biases]):
    assert np.abs(gradient.numpy()).max() < 1e-3


def test_logistic_regression_separates_separable_classes():
  rng = np.random.default_rng(1)
  centres = np.eye(3, 8)
  support = centres[None, :, None] + 0.1 * rng.normal(size=(2, 3, 5, 8))
  queries = centres[None, :, None] + 0.1 * rng.normal(size=(2, 3, 7, 8))
  accuracy = baselines.logistic_regression(_problem(support, queries)).numpy()
  np.testing.assert_array_equal(accuracy, [1.0, 1.0])
