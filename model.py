# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""LEO, Latent Embedding Optimization (Rusu et al., ICLR 2019), as a Sonnet 2 module.

The computation is that of the original model.py (deepmind/leo), method for method, over a
leading task axis: every tensor is `[tasks, classes, shots, dim]` (classes N, shots K for the
support set or V for the queries), tasks are independent and nothing is mapped per task. Labels
are class positions on the classes axis (the episodes are class-major).

The outer update that trains it (NaN guard, clipping, TF1's Adam) is optim.py.
"""

import math
from typing import Sequence, Tuple

import sonnet as snt
import tensorflow as tf
import tensorflow_probability as tfp

import config as config_lib
import data as data_lib
import utils

STDDEV_FLOOR = 1e-10  # Smallest standard deviation of a sampled latent or weight.
CORRELATION_EPSILON = 1e-32  # Added to row norms in the orthogonality penalty.
# Named, not "auto_select" (which lets XLA pick another): the same noise with --jit_compile.
RANDOM_ALGORITHM = "philox"

# Variable names: the weight matrices `.../w` are L2-regularised, the learning rates `.../lr`
# are not.
WEIGHTS_NAME = "w"
LEARNING_RATE_NAME = "lr"


class ProblemShapeError(utils.LeoError, ValueError):
  """A problem instance whose shape the model cannot take."""


def _glorot_uniform(shape: Sequence[int], dtype: tf.DType) -> tf.Tensor:
  """TF1's glorot_uniform: U(±sqrt(6 / (fan_in + fan_out)))."""
  return snt.initializers.VarianceScaling(1.0, "fan_avg", "uniform")(shape, dtype)


def _linear(inputs: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
  """A bias-free linear layer on the last axis: [..., in] x [in, out] -> [..., out].

  A matmul on the flattened leading axes (snt.BatchApply's way): with the equivalent
  broadcasting einsum ("...i,io->...o") TF 2.21's gradients made a training step ~40 times
  slower.
  """
  input_size, output_size = weights.shape
  outputs = tf.matmul(tf.reshape(inputs, [-1, input_size]), weights)
  return tf.reshape(outputs, tf.concat([tf.shape(inputs)[:-1], [output_size]], axis=0))


def _class_logits(inputs: tf.Tensor, class_weights: tf.Tensor) -> tf.Tensor:
  """Logits [tasks, N, J, N] of examples [tasks, N, J, D] against class weights [tasks, N, D]."""
  return tf.einsum("tijd,tnd->tijn", inputs, class_weights)


def dropout_bits(rate: float) -> int:
  """Random bits per unit of a dropout mask: 8 if `rate` is a whole number of 1/256 steps (as
  the default 0.5), so the mask is exact; else 32, the rate then rounded to a multiple of
  2^-32 (finer than float32 uniforms)."""
  return 8 if (rate * 2**8) % 1 == 0 else 32


def keep_mask(shape: Sequence[int], seed: tf.Tensor, rate: float) -> tf.Tensor:
  """A dropout mask: True (keep) with probability 1 − rate, each unit independent.

  Each unit reads `dropout_bits(rate)` bits of stateless uint32 random words (a byte of a
  word, or the word) and is kept if they, as an integer, are >= round(rate · 2^bits). For
  rate 0.5 Philox makes a word per 4 units where a float uniform takes a word per unit, and
  the bytes are compared as they are (no shifts).

  Args:
    shape: the mask's static shape.
    seed: a stateless seed [2].
    rate: the drop probability, in [0, 1).
  """
  bits = dropout_bits(rate)
  size = math.prod(shape)
  words = tf.random.stateless_uniform([-(-size * bits // 32)], seed, minval=None,
                                      maxval=None, dtype=tf.uint32, alg=RANDOM_ALGORITHM)
  if bits == 8:
    words = tf.reshape(tf.bitcast(words, tf.uint8), [-1])[:size]
  threshold = min(round(rate * 2**bits), 2**bits - 1)
  return tf.reshape(words >= tf.constant(threshold, words.dtype), shape)


def standard_normal(shape: Sequence[int], seed: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """tf.random.stateless_normal's numbers, from ops that XLA compiles to the same ones.

  The transcription of TF's CPU kernel: Box-Muller on pairs of uniforms made of Philox words
  (one word per float32 uniform, two per float64, the mantissa bits; u1 floored at 1e-7),
  sine then cosine. XLA's own normal sampler draws other numbers.

  Args:
    shape: the static shape.
    seed: a stateless seed [2].
    dtype: float32 or float64.
  """
  size = math.prod(shape)
  words_per_uniform = 1 if dtype == tf.float32 else 2
  groups = -(-size * words_per_uniform // 4)  # Philox makes words 4 at a time.
  words = tf.reshape(
      tf.random.stateless_uniform([4 * groups], seed, minval=None, maxval=None,
                                  dtype=tf.uint32, alg=RANDOM_ALGORITHM),
      [-1, 2, words_per_uniform])
  if dtype == tf.float32:  # 23 mantissa bits under the exponent of 1, minus 1.
    one_to_two = tf.bitwise.bitwise_or(tf.bitwise.bitwise_and(words[..., 0], 0x7fffff),
                                       0x3f800000)
    uniform = tf.bitcast(one_to_two, tf.float32) - 1.0
  else:  # 20 + 32 mantissa bits.
    high = tf.cast(tf.bitwise.bitwise_and(words[..., 0], 0xfffff), tf.uint64)
    mantissa = tf.bitwise.bitwise_or(tf.bitwise.left_shift(high, 32),
                                     tf.cast(words[..., 1], tf.uint64))
    uniform = tf.bitcast(tf.bitwise.bitwise_or(mantissa, tf.constant(1023 << 52, tf.uint64)),
                         tf.float64) - 1.0
  radius = tf.sqrt(-2.0 * tf.math.log(tf.maximum(uniform[:, 0], 1e-7)))
  angle = 2.0 * math.pi * uniform[:, 1]
  pairs = tf.stack([tf.sin(angle) * radius, tf.cos(angle) * radius], axis=1)
  return tf.reshape(tf.reshape(pairs, [-1])[:size], shape)


def _task_mean(values: tf.Tensor) -> tf.Tensor:
  """The mean over every axis but the leading task axis: [tasks, ...] -> [tasks]."""
  return tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))


def summed_loss_gradient(tape: tf.GradientTape, loss: tf.Tensor,
                         source: tf.Tensor) -> tf.Tensor:
  """The inner-loop gradient: of the *sum* of the per-example losses, as the original.

  The original called `tf.gradients` on the per-example loss vector, which differentiates its
  sum; a mean would shrink every inner step by the number of support examples. Over a batch of
  tasks the sum also runs over tasks, which leaves each task's gradient unchanged since tasks
  share nothing. The gradient is an ordinary differentiable tensor, so an enclosing tape sees
  the full second-order meta-gradient.

  Args:
    tape: the tape that recorded `loss` from `source`.
    loss: per-example losses, e.g. [tasks, N, K]; a tape differentiates the sum of a
      non-scalar target, as `tf.gradients` does.
    source: what to differentiate with respect to.
  """
  return tape.gradient(loss, source)


def normal_stddev(unnormalized_stddev: tf.Tensor, stddev_offset: float = 0.0) -> tf.Tensor:
  """σ = max(exp(u) − (1 − offset), STDDEV_FLOOR), the original's parametrisation.

  Not a softplus: near u = 0 (as at Glorot init) σ ≈ u + offset, so latents (offset 0) start
  with σ at or near the floor.
  """
  stddev = tf.exp(unnormalized_stddev) - (1.0 - stddev_offset)
  return tf.maximum(stddev, STDDEV_FLOOR)


def normal_stddev_derivative(unnormalized_stddev: tf.Tensor,
                             stddev_offset: float = 0.0) -> tf.Tensor:
  """∂σ/∂u of `normal_stddev`, element-wise: exp(u) where σ is not floored, else 0.

  At the floor itself the derivative is exp(u), as tf.maximum's gradient (to its first argument
  where it is >= the second).
  """
  exp = tf.exp(unnormalized_stddev)
  return tf.where(exp - (1.0 - stddev_offset) >= STDDEV_FLOOR, exp, tf.zeros_like(exp))


def l2_penalty(weights: Sequence[tf.Tensor], penalty_weight: float) -> tf.Tensor:
  """Σ penalty_weight · ½‖W‖², TF1's l2_regularizer summed over the weight matrices."""
  return tf.add_n([penalty_weight * tf.nn.l2_loss(w) for w in weights])


def orthogonality_penalty(weight: tf.Tensor, penalty_weight: float) -> tf.Tensor:
  """penalty_weight · mean((C − I)²), C the cosine-similarity matrix of the rows of `weight`.

  Args:
    weight: [rows, columns]; for the decoder [num_latents, 2 * embedding_dim], so the rows, one
      per latent dimension (both the means and the std halves), are pushed to be orthogonal.
    penalty_weight: the scale (orthogonality_penalty_weight).

  Returns:
    A scalar.
  """
  inner_products = tf.matmul(weight, weight, transpose_b=True)
  norms = tf.norm(weight, ord=2, axis=1, keepdims=True) + CORRELATION_EPSILON
  correlation_matrix = inner_products / tf.matmul(norms, norms, transpose_b=True)
  identity = tf.eye(correlation_matrix.shape[0], dtype=weight.dtype)
  return penalty_weight * tf.reduce_mean(
      tf.math.squared_difference(correlation_matrix, identity))


class LEO(snt.Module):
  """Latent Embedding Optimization over a batch of few-shot tasks.

  Trainable variables (created on the first call, when the embedding dimension D is known):
  `leo/encoder/w` [D, num_latents], `leo/relation_network/linear_{0,1,2}/w`
  [2 * num_latents, 2 * num_latents], `leo/decoder/w` [num_latents, 2 * D] (Glorot-uniform,
  no biases), `leo/leo_inner/lr` [1, 1, num_latents] and `leo/finetuning/lr` [1, 1, D].
  Randomness (dropout masks, latent and weight samples) comes from one seed per call, drawn
  from `generator` (checkpointed with the module) unless the caller passes it. Each random
  tensor is that call's tasks' slice of noise drawn for all the tasks of the step, so a task's
  noise does not depend on how a step's tasks are split between devices.

  The inner loops' gradients are written out (`analytic_gradients`, the default): the gradient
  of the summed cross-entropy is a few matmuls, where a nested tape generates it op by op. The
  outer tape differentiates them like any other tensor, so the meta-gradient stays fully second
  order. With `analytic_gradients=False` a tape computes them, as the original did; the tests
  check that both give the same numbers.
  """

  def __init__(self, config: config_lib.InnerModelConfig, use_64bits_dtype: bool = False,
               seed: int = 0, name: str = "leo", analytic_gradients: bool = True):
    """Creates the module; its variables are created by the first call.

    Args:
      config: the hyperparameters.
      use_64bits_dtype: float64/int64 if True, else float32/int32 (the runner's choice).
      seed: seeds `generator`.
      name: the module name, and so the variables' scope.
      analytic_gradients: inner-loop gradients written out (True) or taken by a tape.
    """
    super().__init__(name=name)
    self.analytic_gradients = analytic_gradients
    self._float_dtype = tf.float64 if use_64bits_dtype else tf.float32
    self._int_dtype = tf.int64 if use_64bits_dtype else tf.int32

    self._inner_unroll_length = config.inner_unroll_length
    self._finetuning_unroll_length = config.finetuning_unroll_length
    self._inner_lr_init = config.inner_lr_init
    self._finetuning_lr_init = config.finetuning_lr_init
    self._num_latents = config.num_latents
    self._dropout_rate = config.dropout_rate

    self._kl_weight = config.kl_weight  # beta
    self._encoder_penalty_weight = config.encoder_penalty_weight  # gamma
    self._l2_penalty_weight = config.l2_penalty_weight  # lambda_1
    self._orthogonality_penalty_weight = config.orthogonality_penalty_weight  # lambda_2

    self.generator = tf.random.Generator.from_seed(seed)
    self._noise = None  # (seed, draws so far, task offset, total tasks) during a call.

  def __call__(self, data: data_lib.ProblemInstance, is_meta_training: bool,
               noise_seed: tf.Tensor = None, task_offset=0,
               total_tasks: int = None) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Adapts to every task of the batch and scores the queries.

    Args:
      data: tr_input [tasks, N, K, D] float, tr_output [tasks, N, K, 1] int (the class
        position), val_input [tasks, N, V, D], val_output [tasks, N, V, 1]; tr_info and val_info
        are ignored. D must be that of the first call; N, K and V may change.
      is_meta_training: training mode (dropout, sampling, KL and encoder penalty) if True,
        evaluation mode (no dropout, means instead of samples) if False.
      noise_seed: a stateless seed [2] for this call's randomness; drawn from `generator` if
        None. Replicas of one distributed step pass the same seed.
      task_offset: the position of these tasks among all the tasks of the step.
      total_tasks: the number of tasks of the step on all replicas (default: these tasks).

    Returns:
      (loss, accuracy, per_task_accuracy): the batch means of the meta-loss (with the L2 and
      orthogonality penalties) and of the query accuracy, and the query accuracy of each task
      [tasks].
    """
    if is_meta_training and noise_seed is None:
      noise_seed = self.generator.make_seeds(1)[:, 0]
    tasks = data.tr_input.shape[0]
    self._noise = [noise_seed, 0, task_offset, total_tasks or tasks]
    try:
      per_task_loss, per_task_accuracy = self.per_task_loss_and_accuracy(data, is_meta_training)
    finally:
      self._noise = None
    return tf.reduce_mean(per_task_loss), tf.reduce_mean(per_task_accuracy), per_task_accuracy

  def per_task_loss_and_accuracy(self, data: data_lib.ProblemInstance,
                                 is_meta_training: bool) -> Tuple[tf.Tensor, tf.Tensor]:
    """What the original computed for one task, for each task: both [tasks].

    A task's loss is the mean query cross-entropy + kl_weight · KL + encoder_penalty_weight ·
    encoder penalty + L2 + orthogonality (the last two are shared by all tasks).
    """
    self.is_meta_training = is_meta_training
    data = self._as_tensors(data)
    self.save_problem_instance_stats(data.tr_input)
    self._initialize()

    latents, kl = self.forward_encoder(data)
    _, adapted_classifier_weights, encoder_penalty, tr_loss_gradient = self.leo_inner_loop(
        data, latents)
    val_loss, val_accuracy = self.finetuning_inner_loop(
        data, tr_loss_gradient, adapted_classifier_weights)
    return self.task_loss(val_loss, kl, encoder_penalty), val_accuracy

  def task_loss(self, val_loss: tf.Tensor, kl: tf.Tensor,
                encoder_penalty: tf.Tensor) -> tf.Tensor:
    """The meta-loss of each task [tasks] from its query loss [tasks, N, V], KL and encoder
    penalty [tasks] (see `per_task_loss_and_accuracy`)."""
    task_loss = (_task_mean(val_loss) + self._kl_weight * kl
                 + self._encoder_penalty_weight * encoder_penalty)
    regularization_penalty = self.l2_regularization + self.orthogonality_regularization
    return task_loss + regularization_penalty

  def adapt(self, data: data_lib.ProblemInstance) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Evaluation mode, the support set's part of `per_task_loss_and_accuracy`: the
    classifier each task ends with, for queries scored elsewhere.

    Args:
      data: tr_input [tasks, N, K, D] (float, cast to the model's dtype) and tr_output
        [tasks, N, K, 1]; the rest is ignored.

    Returns:
      (class_weights [tasks, N, D], kl [tasks], encoder_penalty [tasks]): the logits of a
      query x are x · class_weights[n] (`predict`'s mean over the K weight vectors), and
      `task_loss` takes the other two.
    """
    self.is_meta_training = False
    data = data._replace(tr_input=tf.cast(data.tr_input, self._float_dtype),
                         tr_output=tf.convert_to_tensor(data.tr_output))
    self.save_problem_instance_stats(data.tr_input)
    self._initialize()
    latents, kl = self.forward_encoder(data)
    _, classifier_weights, encoder_penalty, tr_loss_gradient = self.leo_inner_loop(
        data, latents)
    classifier_weights = self.finetune(data, tr_loss_gradient, classifier_weights)
    return tf.reduce_mean(classifier_weights, axis=2), kl, encoder_penalty

  def _as_tensors(self, data: data_lib.ProblemInstance) -> data_lib.ProblemInstance:
    """Inputs as tensors of the model's float dtype (a tensor of another one is refused)."""
    return data._replace(
        tr_input=tf.convert_to_tensor(data.tr_input, self._float_dtype),
        tr_output=tf.convert_to_tensor(data.tr_output),
        val_input=tf.convert_to_tensor(data.val_input, self._float_dtype),
        val_output=tf.convert_to_tensor(data.val_output))

  def save_problem_instance_stats(self, instance: tf.Tensor):
    """Reads N, K and D from tr_input [tasks, N, K, D] for this call; D may not change later.

    The variables depend on D alone, so N and K may change from call to call, and in evaluation
    mode they may be unknown until run time (a graph for any support set): they are then
    scalar tensors, else ints, so that graphs of known shapes stay those of ints.
    """
    shape = instance.shape
    if shape.rank != 4 or shape[3] is None:
      raise ProblemShapeError(
          f"tr_input: expected a [tasks, classes, shots, dim] tensor with a known dim, got "
          f"shape {shape}")
    if self.is_meta_training and not shape[1:].is_fully_defined():
      raise ProblemShapeError(f"tr_input: training needs known classes and shots, got shape "
                              f"{shape}")
    if getattr(self, "embedding_dim", shape[3]) != shape[3]:
      raise ProblemShapeError(
          f"tr_input: LEO was built for {self.embedding_dim}-d embeddings, got shape {shape}; "
          "the embedding dim cannot change between calls")
    self.num_classes, self.num_examples_per_class = (
        tf.shape(instance)[axis] if shape[axis] is None else shape[axis] for axis in (1, 2))
    self.embedding_dim = shape[3]

  @snt.once
  def _initialize(self):
    """Creates the 7 trainable variables, once N, K and D are known."""
    glorot = lambda shape: tf.Variable(_glorot_uniform(shape, self._float_dtype),
                                       name=WEIGHTS_NAME)
    constant = lambda value, size: tf.Variable(
        tf.fill([1, 1, size], tf.constant(value, self._float_dtype)), name=LEARNING_RATE_NAME)
    relation_width = 2 * self._num_latents
    with tf.name_scope("encoder"):
      self.encoder_weights = glorot([self.embedding_dim, self._num_latents])
    self.relation_network_weights = []
    with tf.name_scope("relation_network"):
      for layer in range(3):
        with tf.name_scope(f"linear_{layer}"):
          self.relation_network_weights.append(glorot([relation_width, relation_width]))
    with tf.name_scope("decoder"):
      # 2 * embedding_dim: means and unnormalised stds of the classifier weights.
      self.decoder_weights = glorot([self._num_latents, 2 * self.embedding_dim])
    with tf.name_scope("leo_inner"):
      self.inner_lr = constant(self._inner_lr_init, self._num_latents)
    with tf.name_scope("finetuning"):
      self.finetuning_lr = constant(self._finetuning_lr_init, self.embedding_dim)

  @property
  def dropout_rate(self) -> float:
    return self._dropout_rate if self.is_meta_training else 0.0

  def _task_noise(self, draw, shape) -> tf.Tensor:
    """Fresh noise `draw(shape, seed)` of a static `shape` [tasks, ...].

    During a call: these tasks' slice of the noise of all the step's tasks, from the call's
    seed folded with a counter. Outside a call (a stage run alone): from `generator`.
    """
    shape = list(shape)
    if self._noise is None:
      return draw(shape, self.generator.make_seeds(1)[:, 0])
    call_seed, draws, task_offset, total_tasks = self._noise
    self._noise[1] += 1
    seed = tf.random.experimental.stateless_fold_in(call_seed, draws, alg=RANDOM_ALGORITHM)
    noise = draw([total_tasks] + shape[1:], seed)
    return noise[task_offset:task_offset + shape[0]]

  def _dropout(self, inputs: tf.Tensor) -> tf.Tensor:
    """Dropout with a fresh mask; kept units are scaled by 1 / (1 − rate)."""
    if self.dropout_rate == 0.0:
      return inputs
    keep = self._task_noise(
        lambda shape, seed: keep_mask(shape, seed, self.dropout_rate), inputs.shape)
    # tf.nn.dropout's arithmetic: scale the kept units.
    return tf.where(keep, inputs * (1.0 / (1.0 - self.dropout_rate)), tf.zeros_like(inputs))

  def forward_encoder(self, data: data_lib.ProblemInstance) -> Tuple[tf.Tensor, tf.Tensor]:
    """Support set -> initial latents [tasks, N, K, num_latents] and their KL [tasks]."""
    encoder_outputs = self.encoder(data.tr_input)
    relation_network_outputs = self.relation_network(encoder_outputs)
    latent_dist_params = self.average_codes_per_class(relation_network_outputs)
    return self.possibly_sample(latent_dist_params)

  def forward_decoder(self, data: data_lib.ProblemInstance,
                      latents: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Latents -> (support loss [tasks, N, K], classifier weights [tasks, N, K, D])."""
    weights_dist_params = self.decoder(latents)
    classifier_weights, _ = self.possibly_sample(
        weights_dist_params,
        stddev_offset=self._weights_stddev_offset if self.is_meta_training else 0.0)
    tr_loss, _ = self.calculate_inner_loss(data.tr_input, data.tr_output, classifier_weights)
    return tr_loss, classifier_weights

  @property
  def _weights_stddev_offset(self) -> float:
    """A Glorot-like scale for the sampled weights instead of a std of 1 (as the original);
    read only when sampling, in training, where N is an int."""
    return math.sqrt(2.0 / (self.num_classes + self.embedding_dim))

  def encoder(self, inputs: tf.Tensor) -> tf.Tensor:
    """Dropout, then a linear map: [tasks, N, K, D] -> [tasks, N, K, num_latents]."""
    return _linear(self._dropout(inputs), self.encoder_weights)

  def relation_network(self, inputs: tf.Tensor) -> tf.Tensor:
    """Codes of each example in relation to all examples of its task.

    A 3-layer MLP of width 2 * num_latents (ReLU between layers, none after the last, no biases)
    on every ordered pair [e_i; e_j] of the task's N·K codes, self-pairs and cross-class pairs
    included, averaged over the partner j.

    Args:
      inputs: [tasks, N, K, num_latents].

    Returns:
      [tasks, N, K, 2 * num_latents].
    """
    total_num_examples = self.num_classes * self.num_examples_per_class
    codes = tf.reshape(inputs, [-1, total_num_examples, self._num_latents])
    first, second, third = self.relation_network_weights
    # [e_i; e_j] @ W = e_i @ W_top + e_j @ W_bottom: computed per example and broadcast over
    # the pairs, N·K products instead of (N·K)², the same numbers as concatenating.
    left = _linear(codes, first[:self._num_latents])
    right = _linear(codes, first[self._num_latents:])
    hidden = tf.nn.relu(left[:, :, tf.newaxis, :] + right[:, tf.newaxis, :, :])  # [.., i, j, ..]
    hidden = tf.nn.relu(_linear(hidden, second))
    # The last layer is linear, so averaging over j before it is the same as after it.
    outputs = _linear(tf.reduce_mean(hidden, axis=2), third)
    return tf.reshape(outputs, [-1, self.num_classes, self.num_examples_per_class,
                                2 * self._num_latents])

  def average_codes_per_class(self, codes: tf.Tensor) -> tf.Tensor:
    """Mean over the K shots, repeated K times: [tasks, N, K, c] -> [tasks, N, K, c]."""
    codes = tf.reduce_mean(codes, axis=2, keepdims=True)
    return tf.tile(codes, [1, 1, self.num_examples_per_class, 1])

  def decoder(self, inputs: tf.Tensor) -> tf.Tensor:
    """Linear map [tasks, N, K, num_latents] -> [tasks, N, K, 2 * D] (weight means, stds)."""
    return _linear(inputs, self.decoder_weights)

  def possibly_sample(self, distribution_params: tf.Tensor,
                      stddev_offset: float = 0.0) -> Tuple[tf.Tensor, tf.Tensor]:
    """Samples from N(μ, σ) in training, returns μ in evaluation.

    Args:
      distribution_params: [tasks, N, K, 2 * dim]: the first half of the last axis are the means
        μ, the second the unnormalised stds u, σ = `normal_stddev(u, stddev_offset)`.
      stddev_offset: 0 for latents; the decoder's Glorot-like offset for classifier weights.

    Returns:
      (values [tasks, N, K, dim], kl [tasks]): in training one reparameterised sample per
      (class, shot) slot and its KL estimate; in evaluation μ and zeros.
    """
    means, unnormalized_stddev = tf.split(distribution_params, 2, axis=-1)
    if not self.is_meta_training:
      return means, tf.zeros(tf.shape(means)[:1], self._float_dtype)
    stddev = normal_stddev(unnormalized_stddev, stddev_offset)
    samples, _ = self.reparameterised_sample(means, stddev)
    distribution = tfp.distributions.Normal(loc=means, scale=stddev)
    return samples, self.kl_divergence(samples, distribution)

  def reparameterised_sample(self, means: tf.Tensor,
                             stddev: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(μ + σ ε, ε) for fresh standard-normal noise ε: TFP's Normal.sample, with our own noise.

    All three are [tasks, N, K, dim].
    """
    noise = self._task_noise(
        lambda shape, seed: standard_normal(shape, seed, self._float_dtype),
        means.shape)
    return noise * stddev + means, noise

  def kl_divergence(self, samples: tf.Tensor,
                    normal_distribution: tfp.distributions.Normal) -> tf.Tensor:
    """Single-sample KL estimate against N(0, 1): per task, the element mean of log q − log p.

    Args:
      samples: [tasks, N, K, dim], drawn from `normal_distribution`.
      normal_distribution: q, of the same shape.

    Returns:
      [tasks].
    """
    prior = tfp.distributions.Normal(loc=tf.zeros_like(samples), scale=tf.ones_like(samples))
    return _task_mean(normal_distribution.log_prob(samples) - prior.log_prob(samples))

  def predict(self, inputs: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Logits of examples against the K weight vectors of each class, averaged over K.

    Args:
      inputs: [tasks, N, J, D] examples (support J = K or queries J = V); dropout in training.
      weights: [tasks, N, K, D] classifier weights.

    Returns:
      [tasks, N, J, N] logits.
    """
    # The original's einsum against all K weight vectors then a mean over K, in fewer products:
    # a dot product is linear in the weights.
    return _class_logits(self._dropout(inputs), tf.reduce_mean(weights, axis=2))

  def calculate_inner_loss(self, inputs: tf.Tensor, true_outputs: tf.Tensor,
                           classifier_weights: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(per-example loss [tasks, N, J], accuracy [tasks]) of `classifier_weights` on `inputs`.

    Args:
      inputs: [tasks, N, J, D].
      true_outputs: [tasks, N, J, 1] class positions, of any integer dtype.
      classifier_weights: [tasks, N, K, D].
    """
    return self.loss_and_accuracy(self.predict(inputs, classifier_weights), true_outputs)

  def loss_and_accuracy(self, model_outputs: tf.Tensor,
                        true_outputs: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """(per-example loss [tasks, N, J], accuracy [tasks]) of logits [tasks, N, J, N] against
    class positions [tasks, N, J, 1]."""
    model_predictions = tf.argmax(model_outputs, -1, output_type=self._int_dtype)
    labels = tf.cast(tf.squeeze(true_outputs, axis=-1), self._int_dtype)
    correct = tf.equal(model_predictions, labels)
    accuracy = _task_mean(tf.cast(correct, self._float_dtype))
    return self.loss_fn(model_outputs, true_outputs), accuracy

  def loss_fn(self, model_outputs: tf.Tensor, original_classes: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy: [tasks, N, J, N] logits -> [tasks, N, J]."""
    # Dense one-hot labels: TF cannot take second-order gradients through the sparse version.
    return tf.nn.softmax_cross_entropy_with_logits(labels=self._one_hot(original_classes),
                                                   logits=model_outputs)

  def _one_hot(self, classes: tf.Tensor) -> tf.Tensor:
    """[tasks, N, J, 1] class positions -> [tasks, N, J, N] one-hot rows."""
    return tf.one_hot(tf.squeeze(classes, axis=-1), depth=self.num_classes,
                      dtype=self._float_dtype)

  def support_weight_gradient(self, data: data_lib.ProblemInstance,
                              weights: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """The support loss and its summed gradient, written out (a fresh dropout mask).

    The logits see the K weight vectors of a class only through their mean w̄, so
    ∂(Σ loss)/∂w[t, n, k] = Σ_ij (softmax − one-hot)[t, i, j, n] x[t, i, j] / K for every k.

    Args:
      data: the problem instance (its support set).
      weights: [tasks, N, K, D] classifier weights, or [tasks, N, 1, D] their means over K.

    Returns:
      (loss [tasks, N, K], gradient [tasks, N, 1, D]): the per-example support loss and the
      gradient w.r.t. each of the K weight vectors of a class (the same for all of them).
    """
    inputs = self._dropout(data.tr_input)
    logits = _class_logits(inputs, tf.reduce_mean(weights, axis=2))
    delta = tf.nn.softmax(logits) - self._one_hot(data.tr_output)
    shots = self.num_examples_per_class  # An int, or a tensor known at run time only.
    if isinstance(shots, tf.Tensor):
      shots = tf.cast(shots, inputs.dtype)
    gradient = tf.einsum("tijn,tijd->tnd", delta, inputs) / shots
    return self.loss_fn(logits, data.tr_output), gradient[:, :, tf.newaxis]

  def decode_with_gradients(self, data: data_lib.ProblemInstance, latents: tf.Tensor
                            ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """`forward_decoder` and the summed support loss's gradients, written out.

    Back through w = μ + σ(u) ε (w = μ in evaluation) and [μ, u] = z W_dec:
    ∂/∂μ = ∂/∂w, ∂/∂u = ∂/∂w ε σ'(u), ∂/∂z = [∂/∂μ, ∂/∂u] W_decᵀ.

    Args:
      data: the problem instance.
      latents: [tasks, N, K, num_latents].

    Returns:
      (tr_loss [tasks, N, K], classifier_weights [tasks, N, K, D], weight_gradient
      [tasks, N, 1, D] (see `support_weight_gradient`), latent_gradient [tasks, N, K or 1,
      num_latents]).
    """
    means, unnormalized_stddev = tf.split(self.decoder(latents), 2, axis=-1)
    if self.is_meta_training:
      stddev_offset = self._weights_stddev_offset
      stddev = normal_stddev(unnormalized_stddev, stddev_offset)
      classifier_weights, noise = self.reparameterised_sample(means, stddev)
    else:
      classifier_weights = means
    tr_loss, weight_gradient = self.support_weight_gradient(data, classifier_weights)
    if self.is_meta_training:
      stddev_gradient = weight_gradient * noise * normal_stddev_derivative(
          unnormalized_stddev, stddev_offset)
      params_gradient = tf.concat(
          [tf.broadcast_to(weight_gradient, tf.shape(stddev_gradient)), stddev_gradient], -1)
      latent_gradient = _linear(params_gradient, tf.transpose(self.decoder_weights))
    else:  # Nothing depends on u, and the gradient is the same for all K shots.
      latent_gradient = _linear(weight_gradient,
                                tf.transpose(self.decoder_weights[:, :self.embedding_dim]))
    return tr_loss, classifier_weights, weight_gradient, latent_gradient

  def leo_inner_loop(self, data: data_lib.ProblemInstance, latents: tf.Tensor
                     ) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Gradient steps on the latents: z ← z − inner_lr ⊙ ∂(Σ support loss)/∂z.

    Decodes before the first step and after each of the `inner_unroll_length` steps (new
    weight samples each time in training).

    Args:
      data: the problem instance.
      latents: [tasks, N, K, num_latents], the encoder's (sampled) initial latents.

    Returns:
      (tr_loss [tasks, N, K], classifier_weights [tasks, N, K, D], encoder_penalty [tasks],
      tr_loss_gradient [tasks, N, K, D], or [tasks, N, 1, D] with analytic gradients (it is
      the same for all K)): the support loss of the last decoded weights, those weights, the
      encoder penalty, and the gradient of the summed support loss w.r.t. the weights. The
      original passed the loss itself to the fine-tuning loop, which started by
      differentiating it; in TF 2 a loss cannot be differentiated without the tape that
      recorded it, so the gradient is handed over instead.
    """
    starting_latents = latents
    if self.analytic_gradients:
      for _ in range(self._inner_unroll_length):
        *_, latent_gradient = self.decode_with_gradients(data, latents)
        latents = latents - self.inner_lr * latent_gradient
      tr_loss, classifier_weights, tr_loss_gradient, _ = self.decode_with_gradients(
          data, latents)
    else:
      for _ in range(self._inner_unroll_length):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
          tape.watch(latents)
          tr_loss, _ = self.forward_decoder(data, latents)
        latents = latents - self.inner_lr * summed_loss_gradient(tape, tr_loss, latents)
      with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(latents)  # Records the decoding, so that the weights are on the tape.
        tr_loss, classifier_weights = self.forward_decoder(data, latents)
      tr_loss_gradient = summed_loss_gradient(tape, tr_loss, classifier_weights)

    if self.is_meta_training:
      # The only stop-gradient of the model: the penalty pulls the initial latents towards the
      # adapted ones, not the other way round.
      encoder_penalty = _task_mean(
          tf.math.squared_difference(starting_latents, tf.stop_gradient(latents)))
    else:
      encoder_penalty = tf.zeros(tf.shape(latents)[:1], self._float_dtype)
    return tr_loss, classifier_weights, encoder_penalty, tr_loss_gradient

  def finetuning_inner_loop(self, data: data_lib.ProblemInstance, leo_loss_gradient: tf.Tensor,
                            classifier_weights: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Gradient steps on the weights, then the query loss and accuracy.

    w ← w − finetuning_lr ⊙ ∂(Σ support loss)/∂w, `finetuning_unroll_length` times (a fresh
    dropout mask per support loss in training, no resampling).

    With analytic gradients the loop updates the class means w̄ of the weights [tasks, N, 1, D]
    instead: every step moves the K weight vectors of a class alike and the logits see only
    their mean, so the arithmetic is the same with K times fewer numbers.

    Args:
      data: the problem instance.
      leo_loss_gradient: [tasks, N, K or 1, D], the gradient of the latent loop's last support
        loss, which the first step follows.
      classifier_weights: [tasks, N, K, D], the latent loop's last decoded weights.

    Returns:
      (val_loss [tasks, N, V], val_accuracy [tasks]).
    """
    classifier_weights = self.finetune(data, leo_loss_gradient, classifier_weights)
    return self.calculate_inner_loss(data.val_input, data.val_output, classifier_weights)

  def finetune(self, data: data_lib.ProblemInstance, leo_loss_gradient: tf.Tensor,
               classifier_weights: tf.Tensor) -> tf.Tensor:
    """The steps of `finetuning_inner_loop` on the support set: the fine-tuned weights
    [tasks, N, K, D], or [tasks, N, 1, D] with analytic gradients."""
    tr_loss_gradient = leo_loss_gradient
    if self.analytic_gradients:
      classifier_weights = tf.reduce_mean(classifier_weights, axis=2, keepdims=True)
    for step in range(self._finetuning_unroll_length):
      if step > 0 and self.analytic_gradients:
        _, tr_loss_gradient = self.support_weight_gradient(data, classifier_weights)
      elif step > 0:
        with tf.GradientTape(watch_accessed_variables=False) as tape:
          tape.watch(classifier_weights)
          tr_loss, _ = self.calculate_inner_loss(data.tr_input, data.tr_output,
                                                 classifier_weights)
        tr_loss_gradient = summed_loss_gradient(tape, tr_loss, classifier_weights)
      classifier_weights = classifier_weights - self.finetuning_lr * tr_loss_gradient
    return classifier_weights

  @property
  def l2_regularization(self) -> tf.Tensor:
    """The L2 penalty of the 5 weight matrices (not of the learning rates)."""
    weights = [self.encoder_weights, *self.relation_network_weights, self.decoder_weights]
    return l2_penalty(weights, self._l2_penalty_weight)

  @property
  def orthogonality_regularization(self) -> tf.Tensor:
    """The orthogonality penalty of the decoder's weight matrix."""
    return orthogonality_penalty(self.decoder_weights, self._orthogonality_penalty_weight)


def build(config: config_lib.InnerModelConfig, num_classes: int, shots: int,
          embedding_dim: int, seed: int, leo_class=LEO) -> LEO:
  """LEO (or a `leo_class` computing the same) with every variable created now, initialised
  from `seed`; call it under a distribution strategy's scope to mirror them."""
  tf.random.set_seed(seed)
  leo = leo_class(config, seed=seed)
  # A zero task builds the variables without drawing from the episode samplers.
  leo(data_lib.ProblemInstance(
      tr_input=tf.zeros([1, num_classes, shots, embedding_dim]),
      tr_output=tf.zeros([1, num_classes, shots, 1], tf.int32), tr_info=None,
      val_input=tf.zeros([1, num_classes, 1, embedding_dim]),
      val_output=tf.zeros([1, num_classes, 1, 1], tf.int32), val_info=None),
      is_meta_training=False)
  return leo
