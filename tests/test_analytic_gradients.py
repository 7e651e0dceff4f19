# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""The inner loops' written-out gradients (model.LEO's default) against the tape's, in float64:
the same losses, accuracies, adapted weights and outer (second-order) gradients to 1e-12, in
evaluation and in training mode with the same noise."""

import math

import numpy as np
import pytest
import tensorflow as tf

import config
import model
from test_model import random_problem

INNER = config.InnerModelConfig(inner_unroll_length=2, finetuning_unroll_length=3,
                                num_latents=8)


def _twins(problem, inner=INNER):
  """The analytic and the tape LEO with the same variables."""
  tf.random.set_seed(0)
  analytic = model.LEO(inner, use_64bits_dtype=True)
  tape = model.LEO(inner, use_64bits_dtype=True, analytic_gradients=False)
  analytic(problem, False)
  tape(problem, False)
  for mine, theirs in zip(analytic.trainable_variables, tape.trainable_variables):
    theirs.assign(mine)
  return analytic, tape


def _outputs_and_gradients(leo, problem, training):
  with tf.GradientTape() as tape:
    loss, accuracy, per_task = leo(problem, training, tf.constant([3, 4], tf.int64))
  return [loss, accuracy, per_task], tape.gradient(loss, leo.trainable_variables)


def _assert_close(actual, expected):
  np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("shots", [1, 3])
def test_analytic_and_tape_inner_gradients_give_the_same_loss_and_outer_gradients(
    training, shots):
  problem = random_problem(tasks=3, num_classes=4, shots=shots, dim=64, queries=5)
  analytic, tape = _twins(problem)
  (outputs, gradients), (expected_outputs, expected_gradients) = (
      _outputs_and_gradients(leo, problem, training) for leo in (analytic, tape))
  for actual, expected in zip(outputs, expected_outputs):
    _assert_close(actual, expected)
  for variable, actual, expected in zip(analytic.trainable_variables, gradients,
                                        expected_gradients):
    assert np.linalg.norm(expected) > 0, variable.name
    _assert_close(actual, expected)


@pytest.mark.parametrize("training", [False, True])
def test_latent_loop_hands_over_the_same_weights_and_weight_gradient(training):
  problem = random_problem(tasks=2, num_classes=3, shots=2, dim=64, queries=4)
  analytic, tape = _twins(problem)
  latents = tf.constant(np.random.default_rng(1).normal(size=(2, 3, 2, 8)))
  results = []
  for leo in (analytic, tape):
    leo.is_meta_training = training
    leo._noise = [tf.constant([5, 6], tf.int64), 0, 0, 2]  # pylint: disable=protected-access
    results.append(leo.leo_inner_loop(problem, latents))
  (loss, weights, penalty, gradient), expected = results
  _assert_close(loss, expected[0])
  _assert_close(weights, expected[1])
  _assert_close(penalty, expected[2])
  # The analytic gradient is kept once per class: the tape's is the same for all K shots.
  assert gradient.shape == [2, 3, 1, 64]
  _assert_close(tf.broadcast_to(gradient, expected[3].shape), expected[3])


def test_stddev_derivative_is_the_tape_gradient_floor_included():
  # exp(u) − 1 + 0.05 is 0.55, 0.05 and below the floor (σ constant there).
  unnormalized = tf.constant([np.log(1.5), 0.0, -1.0], tf.float64)
  with tf.GradientTape() as tape:
    tape.watch(unnormalized)
    stddev = model.normal_stddev(unnormalized, 0.05)
  expected = tape.gradient(stddev, unnormalized)
  _assert_close(model.normal_stddev_derivative(unnormalized, 0.05), expected)
  _assert_close(expected, [1.5, 1.0, 0.0])


@pytest.mark.parametrize("rate, bits", [(0.5, 8), (0.25, 8), (0.75, 8), (3 / 256, 8),
                                        (0.3, 32), (1 / 512, 32), (0.0, 8)])
def test_dropout_masks_read_the_fewest_exact_bits(rate, bits):
  assert model.dropout_bits(rate) == bits
  threshold = round(rate * 2**bits)
  # Keep probability (2^bits − threshold) / 2^bits: the rate itself, or within 2^-33.
  assert abs((2**bits - threshold) / 2**bits - (1 - rate)) <= 2**-33


@pytest.mark.parametrize("rate", [0.5, 0.25, 0.3])
def test_dropout_masks_keep_each_unit_with_probability_one_minus_rate(rate):
  keep = model.keep_mask([50, 1000, 3], tf.constant([1, 2], tf.int64), rate).numpy()
  assert keep.shape == (50, 1000, 3)
  # 150,000 units: 5 standard deviations of the kept fraction are < 0.0065.
  assert abs(keep.mean() - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / keep.size)
  # Neighbouring units (bytes of one word) are independent: agreement as for independent units.
  flat = keep.reshape(-1)
  agreement = (flat[1:] == flat[:-1]).mean()
  expected = rate**2 + (1 - rate)**2
  assert abs(agreement - expected) < 0.01


def test_dropout_masks_are_a_function_of_the_seed():
  seed = tf.constant([3, 4], tf.int64)
  np.testing.assert_array_equal(model.keep_mask([7, 33], seed, 0.5),
                                model.keep_mask([7, 33], seed, 0.5))
  assert (model.keep_mask([7, 33], seed, 0.5).numpy()
          != model.keep_mask([7, 33], seed + 1, 0.5).numpy()).any()


@pytest.mark.parametrize("dtype, tolerance", [(tf.float32, 1e-5), (tf.float64, 1e-12)])
@pytest.mark.parametrize("shape", [[5], [3, 7], [100, 13]])
def test_standard_normal_is_tfs_stream_also_under_xla(dtype, tolerance, shape):
  seed = tf.constant([1, 2], tf.int64)
  expected = tf.random.stateless_normal(shape, seed, dtype=dtype, alg="philox")
  mine = model.standard_normal(shape, seed, dtype)
  compiled = tf.function(lambda: model.standard_normal(shape, seed, dtype), jit_compile=True)()
  assert mine.shape == shape and mine.dtype == dtype
  np.testing.assert_allclose(mine, expected, atol=tolerance)
  np.testing.assert_allclose(compiled, expected, atol=tolerance)
