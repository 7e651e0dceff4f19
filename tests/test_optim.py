"""optim.py: the original runner's outer update (clipping, the NaN guard, TF1's Adam),
against hand-computed float64 steps."""

import math

import numpy as np
import tensorflow as tf

import config
import optim


def test_clip_gradients_by_value_then_per_tensor_norm():
  big = tf.constant([0.5, -0.2, 0.03], tf.float64)
  small = tf.constant([0.05, 0.05], tf.float64)  # Norm 0.07 < 0.1.
  value_clipped = np.array([0.1, -0.1, 0.03])
  clipped_big, clipped_small = optim.clip_gradients([big, small], 0.1, 0.1)
  # Value clip first, then the norm of each tensor (not the global norm) to 0.1.
  np.testing.assert_allclose(clipped_big, value_clipped * 0.1 / np.linalg.norm(value_clipped),
                             rtol=1e-12)
  np.testing.assert_allclose(clipped_small, small, rtol=1e-12)
  # A threshold <= 0 skips its clip.
  np.testing.assert_allclose(optim.clip_gradients([big], 0.1, 0.0)[0], value_clipped)
  np.testing.assert_allclose(optim.clip_gradients([big], -1.0, 0.1)[0],
                             big * 0.1 / np.linalg.norm(big), rtol=1e-12)
  np.testing.assert_allclose(optim.clip_gradients([big], 0.0, -1.0)[0], big)


def np_tf1_adam(values, gradients, learning_rate):
  """TF1's AdamOptimizer from zero slots, one update per gradient, in numpy float64."""
  m, v = np.zeros_like(values), np.zeros_like(values)
  for t, g in enumerate(gradients, start=1):
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g**2
    lr_t = learning_rate * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    values = values - lr_t * m / (np.sqrt(v) + 1e-8)
  return values


def test_adam_is_tf1_adam_optimizer():
  gradients = [np.array([1e-3, -0.5, 0.0]), np.array([2e-3, 0.1, 1e-9]),
               np.array([-1e-3, 0.3, 0.0])]
  initial = np.array([1.0, 2.0, -3.0])
  ours = tf.Variable(initial, dtype=tf.float64)
  adam = optim.Adam(0.01)
  for gradient in gradients:
    adam.apply([tf.constant(gradient)], [ours])
  np.testing.assert_allclose(ours, np_tf1_adam(initial, gradients, 0.01), rtol=1e-12)
  assert int(adam.step) == 3

  # The same numbers as TF1's own optimizer, in the runner's float32.
  ours = tf.Variable(initial, dtype=tf.float32)
  theirs = tf.Variable(initial, dtype=tf.float32)
  adam = optim.Adam(0.01)
  tf1_adam = tf.compat.v1.train.AdamOptimizer(0.01)
  for gradient in gradients:
    adam.apply([tf.constant(gradient, tf.float32)], [ours])
    tf1_adam.apply_gradients([(tf.constant(gradient, tf.float32), theirs)])
  np.testing.assert_allclose(ours, theirs, rtol=1e-7)


def test_nan_guard_replaces_a_poisoned_update_with_weight_decay():
  with tf.name_scope("toy"):
    with tf.name_scope("layer"):
      weights = tf.Variable([[1.0, -2.0]], dtype=tf.float64, name="w")
    with tf.name_scope("inner"):
      learning_rate = tf.Variable([[[0.5]]], dtype=tf.float64, name="lr")
  variables = [weights, learning_rate]
  meta_optimizer = optim.MetaOptimizer(config.OuterModelConfig(outer_lr=0.01))

  poisoned = [tf.constant([[0.3, np.nan]], tf.float64), tf.constant([[[0.2]]], tf.float64)]
  applied = meta_optimizer.apply(tf.constant(1.0, tf.float64), poisoned, variables)
  # 1e-4·W for the weight matrix (the gradient of 1e-4·½‖W‖²), nothing for the rate.
  np.testing.assert_allclose(applied[0], [[1e-4, -2e-4]], rtol=1e-12)
  np.testing.assert_array_equal(applied[1], [[[0.0]]])
  assert int(meta_optimizer.nan_guard_count) == 1
  np.testing.assert_allclose(
      weights, np_tf1_adam(np.array([[1.0, -2.0]]), [np.array([[1e-4, -2e-4]])], 0.01),
      rtol=1e-12)
  np.testing.assert_array_equal(learning_rate, [[[0.5]]])

  # A NaN loss or an infinite gradient fires it too; finite updates go through unchanged.
  meta_optimizer.apply(tf.constant(np.nan, tf.float64),
                       [tf.constant([[0.3, 0.1]], tf.float64), poisoned[1]], variables)
  meta_optimizer.apply(tf.constant(1.0, tf.float64),
                       [tf.constant([[np.inf, 0.1]], tf.float64), poisoned[1]], variables)
  assert int(meta_optimizer.nan_guard_count) == 3
  applied = meta_optimizer.apply(tf.constant(1.0, tf.float64),
                                 [tf.constant([[0.3, 0.01]], tf.float64), poisoned[1]],
                                 variables)
  np.testing.assert_allclose(applied[0], optim.clip_gradients([tf.constant([[0.3, 0.01]])],
                                                              0.1, 0.1)[0], rtol=1e-6)
  assert int(meta_optimizer.nan_guard_count) == 3
  assert np.all(np.isfinite(weights)) and np.all(np.isfinite(learning_rate))
