# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""The outer update of the original runner: NaN guard, clipping, then TF1's Adam.

Kept apart from the model it trains, as Sonnet 2 keeps its optimisers.
"""

from typing import Sequence

import sonnet as snt
import tensorflow as tf

import config as config_lib
import model

NAN_FALLBACK_FACTOR = 1e-4  # Weight decay applied instead of a non-finite update.

# TF1's tf.train.AdamOptimizer defaults, used by the original runner.
ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8


def clip_gradients(gradients: Sequence[tf.Tensor], gradient_threshold: float,
                   gradient_norm_threshold: float) -> Sequence[tf.Tensor]:
  """Clips each gradient element-wise to ±gradient_threshold, then each tensor's L2 norm.

  A threshold <= 0 skips its clip. The norm clip is per tensor, not global, as the original.
  """
  if gradient_threshold > 0:
    gradients = [tf.clip_by_value(g, -gradient_threshold, gradient_threshold)
                 for g in gradients]
  if gradient_norm_threshold > 0:
    gradients = [tf.clip_by_norm(g, gradient_norm_threshold) for g in gradients]
  return gradients


def nan_fallback_gradients(variables: Sequence[tf.Variable]) -> Sequence[tf.Tensor]:
  """The update used instead of a non-finite one: weight decay on the weight matrices.

  The gradient of NAN_FALLBACK_FACTOR · ½‖W‖² = NAN_FALLBACK_FACTOR · W for the L2-regularised
  weight matrices and zeros for the learning rates: the intent documented by the original
  (the gradient of 1e-4 / l2_penalty_weight · L2, i.e. pure weight decay pulling the variables
  back to a feasible region). Its code differed: a pair of swapped names in a zip made the
  fallback the variable values themselves, learning rates included, and its division by
  l2_penalty_weight fails for a weight of 0.
  """
  return [NAN_FALLBACK_FACTOR * tf.convert_to_tensor(v)
          if v.name.split("/")[-1].split(":")[0] == model.WEIGHTS_NAME else tf.zeros_like(v)
          for v in variables]


class Adam(snt.Module):
  """Adam in the form of TF1's tf.train.AdamOptimizer, the original's outer optimiser.

  TF1 (and this module) folds the bias corrections into the step size and adds ε to sqrt(v)
  ("epsilon hat" in the Adam paper): lr_t = lr · sqrt(1 − β2^t) / (1 − β1^t),
  var −= lr_t · m / (sqrt(v) + ε). Keras' Adam (tf_keras and Keras 3) computes the same form;
  Sonnet 2's `snt.optimizers.Adam` divides by sqrt(v̂) + ε with v̂ = v / (1 − β2^t) (the paper's
  form), which differs from this update while v is small. This module keeps the outer update
  number for number; β^t are kept as running products, as TF1 did.
  """

  def __init__(self, learning_rate: float, beta1: float = ADAM_BETA1,
               beta2: float = ADAM_BETA2, epsilon: float = ADAM_EPSILON, name: str = "adam"):
    super().__init__(name=name)
    self._learning_rate = learning_rate
    self._beta1 = beta1
    self._beta2 = beta2
    self._epsilon = epsilon
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.m = []
    self.v = []

  @snt.once
  def _initialize(self, variables: Sequence[tf.Variable]):
    """Creates the slots: first and second moments per variable, and β1^t, β2^t."""
    with tf.init_scope():
      zeros_like = lambda v: tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False,
                                         name=v.name.split(":")[0])
      with tf.name_scope("m"):
        self.m.extend(zeros_like(v) for v in variables)
      with tf.name_scope("v"):
        self.v.extend(zeros_like(v) for v in variables)
      dtype = variables[0].dtype
      self.beta1_power = tf.Variable(tf.constant(self._beta1, dtype), trainable=False,
                                     name="beta1_power")
      self.beta2_power = tf.Variable(tf.constant(self._beta2, dtype), trainable=False,
                                     name="beta2_power")

  def apply(self, gradients: Sequence[tf.Tensor], variables: Sequence[tf.Variable]):
    """One update of `variables` (always the same list, in the same order) along gradients."""
    self._initialize(variables)
    dtype = self.beta1_power.dtype
    beta1 = tf.constant(self._beta1, dtype)
    beta2 = tf.constant(self._beta2, dtype)
    learning_rate = (self._learning_rate * tf.sqrt(1 - self.beta2_power)
                     / (1 - self.beta1_power))
    for gradient, variable, m, v in zip(gradients, variables, self.m, self.v):
      # The arithmetic of TF1's ApplyAdam kernel.
      m.assign_add((gradient - m) * (1 - beta1))
      v.assign_add((tf.square(gradient) - v) * (1 - beta2))
      variable.assign_sub(m * learning_rate / (tf.sqrt(v) + self._epsilon))
    self.beta1_power.assign(self.beta1_power * beta1)
    self.beta2_power.assign(self.beta2_power * beta2)
    self.step.assign_add(1)


class MetaOptimizer(snt.Module):
  """The outer update of the original runner: NaN guard, clipping, then Adam at outer_lr."""

  def __init__(self, outer_config: config_lib.OuterModelConfig, name: str = "meta_optimizer"):
    super().__init__(name=name)
    self._gradient_threshold = outer_config.gradient_threshold
    self._gradient_norm_threshold = outer_config.gradient_norm_threshold
    self.adam = Adam(outer_config.outer_lr)
    # How many updates the guard replaced: a run that keeps hitting it is diverging.
    self.nan_guard_count = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="nan_guard_count")

  def build(self, variables: Sequence[tf.Variable]):
    """Creates Adam's slots for `variables` now, e.g. under a distribution strategy's scope."""
    self.adam._initialize(variables)  # pylint: disable=protected-access

  def apply(self, loss: tf.Tensor, gradients: Sequence[tf.Tensor],
            variables: Sequence[tf.Variable]) -> Sequence[tf.Tensor]:
    """Updates `variables`; returns the clipped gradients that were applied.

    If the loss or any gradient has a NaN or an infinity, `nan_fallback_gradients` replace the
    gradients (the original tested for NaN only; an infinite loss is as unusable). A variable
    the loss does not use (gradient None: the fine-tuning rate when finetuning_unroll_length is
    0) gets a zero gradient.
    """
    gradients = [tf.zeros_like(v) if g is None else g for g, v in zip(gradients, variables)]
    values = [loss, *gradients]
    non_finite = tf.logical_not(tf.reduce_all(
        [tf.reduce_all(tf.math.is_finite(value)) for value in values]))
    gradients = [tf.where(non_finite, fallback, gradient)
                 for fallback, gradient in zip(nan_fallback_gradients(variables), gradients)]
    self.nan_guard_count.assign_add(tf.cast(non_finite, tf.int64))
    gradients = clip_gradients(gradients, self._gradient_threshold,
                               self._gradient_norm_threshold)
    self.adam.apply(gradients, variables)
    return gradients
