# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Specification of model.py: LEO's stages, its two adaptation loops and its penalties, each
checked on a tiny case against values worked out by hand (numpy).

The first thirteen tests keep the intent of the original model_test.py, in its order; the rest
pin down what the original left untested.
"""

import contextlib
import math
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import config
import data
import model
import optim

# The original model_test.py's configuration.
TEST_CONFIG = config.InnerModelConfig(
    inner_unroll_length=3, finetuning_unroll_length=4, num_latents=1, inner_lr_init=0.1,
    finetuning_lr_init=0.2, dropout_rate=0.3, kl_weight=0.01, encoder_penalty_weight=0.01,
    l2_penalty_weight=0.01, orthogonality_penalty_weight=0.01)

# A small model with the original's default learning rates, for random problems in training
# mode: with inner lr 1.0 the embeddings need d >= 64 to stay in a stable regime.
SMALL_DEFAULT_CONFIG = config.InnerModelConfig(
    inner_unroll_length=2, finetuning_unroll_length=2, num_latents=8)

VARIABLE_NAMES = {
    "leo/encoder/w:0", "leo/relation_network/linear_0/w:0",
    "leo/relation_network/linear_1/w:0", "leo/relation_network/linear_2/w:0",
    "leo/decoder/w:0", "leo/leo_inner/lr:0", "leo/finetuning/lr:0"}


def random_problem(tasks=1, num_classes=5, shots=7, dim=4, queries=None, dtype=np.float64,
                   seed=0):
  """Random L2-normalised embeddings, class-major (label = class position).

  With `queries=None` the support set is also the query set, as in the original tests.
  """
  rng = np.random.default_rng(seed)

  def examples(per_class):
    inputs = rng.normal(size=(tasks, num_classes, per_class, dim))
    inputs /= np.linalg.norm(inputs, axis=-1, keepdims=True)
    labels = np.broadcast_to(np.arange(num_classes, dtype=np.int32).reshape(1, -1, 1, 1),
                             (tasks, num_classes, per_class, 1))
    return tf.constant(inputs.astype(dtype)), tf.constant(labels)

  tr_input, tr_output = examples(shots)
  val_input, val_output = (tr_input, tr_output) if queries is None else examples(queries)
  return data.ProblemInstance(tr_input, tr_output, None, val_input, val_output, None)


def one_number_problem(values):
  """One task per value, each with 1 class, 1 shot and a 1-d input equal to the value."""
  inputs = tf.constant(np.reshape(values, [-1, 1, 1, 1]), tf.float64)
  labels = tf.zeros([len(values), 1, 1, 1], tf.int32)
  return data.ProblemInstance(inputs, labels, None, inputs, labels, None)


def _zeros_per_task(values):
  return tf.zeros(tf.shape(values)[:1], values.dtype)


@contextlib.contextmanager
def mockify_everything(mock_finetuning=True):
  """The original tests' mocks: the adaptation arithmetic becomes traceable by hand.

  Encoder, relation network, per-class averaging and decoder are identities, sampling returns
  its input with KL 0, predict is inputs · weights², the loss is the prediction itself, both
  regularisers are 0, and optionally fine-tuning returns the adapted weights as its "loss".
  """
  identity = lambda self, values: values
  patches = [
      # A copy: the latents are a tensor of their own, distinct from the inputs.
      mock.patch.object(model.LEO, "encoder", new=lambda self, inputs: tf.identity(inputs)),
      mock.patch.object(model.LEO, "relation_network", new=identity),
      mock.patch.object(model.LEO, "average_codes_per_class", new=identity),
      mock.patch.object(model.LEO, "decoder", new=identity),
      mock.patch.object(model.LEO, "possibly_sample",
                        new=lambda self, params, stddev_offset=0.0: (params,
                                                                      _zeros_per_task(params))),
      mock.patch.object(model.LEO, "predict",
                        new=lambda self, inputs, weights: inputs * weights**2),
      mock.patch.object(model.LEO, "loss_fn", new=lambda self, outputs, classes: outputs),
      mock.patch.object(model.LEO, "l2_regularization", new=0.0),
      mock.patch.object(model.LEO, "orthogonality_regularization", new=0.0),
  ]
  if mock_finetuning:
    patches.append(mock.patch.object(
        model.LEO, "finetuning_inner_loop",
        new=lambda self, data, gradient, weights: (weights, _zeros_per_task(weights))))
  with contextlib.ExitStack() as stack:
    for patch in patches:
      stack.enter_context(patch)
    yield


@pytest.fixture(autouse=True)
def seeded_initialisation():
  """Glorot initialisation draws from TF's global seed, as in the runner."""
  tf.random.set_seed(0)


# ---- numpy references ----

def np_logits(inputs, weights):
  """The original's predict: einsum against every weight vector, then the mean over K."""
  return np.einsum("tijd,tnkd->tijnk", inputs, weights).mean(axis=-1)


def np_softmax(logits):
  exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
  return exp / exp.sum(axis=-1, keepdims=True)


def np_cross_entropy(inputs, weights):
  """Per-example cross-entropy [T, N, J] of class-major inputs [T, N, J, D]."""
  probabilities = np_softmax(np_logits(inputs, weights))
  num_classes = inputs.shape[1]
  return -np.log(probabilities[:, np.arange(num_classes), :, np.arange(num_classes)]
                 ).transpose(1, 0, 2)


def np_summed_cross_entropy_gradient(inputs, weights):
  """∂(Σ per-example cross-entropy)/∂weights [T, N, K, D], by hand.

  logit[t, i, j, n] = x[t, i, j] · mean_k w[t, n, k], ∂CE/∂logit = softmax − one-hot, so
  ∂ΣCE/∂w[t, n, k] = Σ_ij (p − y)[t, i, j, n] x[t, i, j] / K.
  """
  delta = np_softmax(np_logits(inputs, weights))
  num_classes, shots = inputs.shape[1], weights.shape[2]
  delta[:, np.arange(num_classes), :, np.arange(num_classes)] -= 1.0
  per_class = np.einsum("tijn,tijd->tnd", delta, inputs) / shots
  return np.repeat(per_class[:, :, np.newaxis], shots, axis=2)


# ---- The original model_test.py, one test per original test. ----

def test_instantiate_leo():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True, analytic_gradients=False)
  assert not hasattr(leo, "encoder_weights")  # Created by the first call, once D is known.
  with mockify_everything():
    inputs = tf.constant([[[[4.0]]]], tf.float64)
    np.testing.assert_array_equal(leo.encoder(inputs), inputs)


def test_inner_loop_takes_sgd_steps_on_latents():
  # Mocks: z0 = x = 4, w = z, L = x·w², so ∂L/∂z = 2xz and z ← z − 0.1·2·4·z = 0.2·z:
  # 4 → 0.8 → 0.16 → 0.032 after the 3 steps.
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True, analytic_gradients=False)
  problem = one_number_problem([4.0])
  with mockify_everything():
    loss, _, _ = leo(problem, is_meta_training=False)
    np.testing.assert_allclose(loss, 0.032, rtol=1e-12)  # The mocked fine-tuning returns w.

    tr_loss, weights, encoder_penalty, tr_loss_gradient = leo.leo_inner_loop(
        problem, tf.constant([[[[4.0]]]], tf.float64))
  np.testing.assert_allclose(weights, [[[[0.032]]]], rtol=1e-12)
  np.testing.assert_allclose(tr_loss, [[[[4 * 0.032**2]]]], rtol=1e-12)  # x·w², last decode.
  np.testing.assert_allclose(tr_loss_gradient, [[[[2 * 4 * 0.032]]]], rtol=1e-12)  # 2xw.
  np.testing.assert_array_equal(encoder_penalty, [0.0])  # Evaluation mode.


def test_tasks_are_adapted_independently():
  # A batch of two one-number tasks: x = 4 shrinks z by 0.2 per step, x = 2 by 1 − 0.4 = 0.6,
  # so 2 → 2·0.6³ = 0.432, whatever the other task of the batch.
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True, analytic_gradients=False)
  with mockify_everything():
    per_task_loss, _ = leo.per_task_loss_and_accuracy(one_number_problem([4.0, 2.0]),
                                                      is_meta_training=False)
  np.testing.assert_allclose(per_task_loss, [0.032, 0.432], rtol=1e-12)


@pytest.mark.parametrize("is_meta_training", [True, False])
def test_setting_is_meta_training(is_meta_training):
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True, analytic_gradients=False)
  with mockify_everything():
    leo(one_number_problem([4.0]), is_meta_training=is_meta_training)
  assert leo.is_meta_training is is_meta_training


def test_finetuning_improves_loss():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  problem = random_problem()  # Queries = support examples.
  leo(problem, is_meta_training=False)
  latents, _ = leo.forward_encoder(problem)
  leo_loss, weights, _, leo_loss_gradient = leo.leo_inner_loop(problem, latents)
  finetuning_loss, _ = leo.finetuning_inner_loop(problem, leo_loss_gradient, weights)
  assert np.mean(leo_loss) - 1e-3 > np.mean(finetuning_loss)


def test_gradients_dont_flow_through_input():
  # The outer step differentiates the variables only: the episodes are constants.
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  problem = random_problem(queries=3)
  with tf.GradientTape() as tape:
    loss, _, _ = leo(problem, is_meta_training=True)
  gradients = tape.gradient(loss, [problem.tr_input, problem.val_input,
                                   *leo.trainable_variables])
  assert gradients[0] is None and gradients[1] is None
  assert all(g is not None for g in gradients[2:])


def test_inferring_embedding_dim():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  leo(random_problem(dim=4), is_meta_training=False)
  assert (leo.num_classes, leo.num_examples_per_class, leo.embedding_dim) == (5, 7, 4)
  assert leo.encoder_weights.shape == [4, 1]
  assert leo.decoder_weights.shape == [1, 8]
  assert leo.finetuning_lr.shape == [1, 1, 4]


def test_variable_creation():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  leo(random_problem(), is_meta_training=True)
  names = [v.name for v in leo.trainable_variables]
  assert len(names) == 7 and set(names) == VARIABLE_NAMES
  # Nothing else is trainable (the generator's state is not).
  assert {v.name for v in leo.variables} == VARIABLE_NAMES
  assert all(v.dtype == tf.float64 for v in leo.trainable_variables)
  np.testing.assert_array_equal(leo.inner_lr, np.full([1, 1, 1], 0.1))
  np.testing.assert_array_equal(leo.finetuning_lr, np.full([1, 1, 4], 0.2))


def test_graph_construction():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  problem = random_problem(tasks=2, queries=3)
  leo(problem, is_meta_training=False)  # Variables are created eagerly.
  compiled = tf.function(lambda problem: leo(problem, is_meta_training=True), autograph=False)
  loss, accuracy, per_task_accuracy = compiled(problem)
  assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
  assert per_task_accuracy.shape == [2]


def test_possibly_sample():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  # μ = 0 and u = 1 (σ = e − 1) in every (class, shot) slot.
  params = tf.constant(np.concatenate([np.zeros([2, 5, 7, 4]), np.ones([2, 5, 7, 4])], -1))

  leo.is_meta_training = True
  (first, kl), (second, _) = leo.possibly_sample(params), leo.possibly_sample(params)
  assert np.abs(first - second).mean() > 1.0
  assert np.all(kl != 0.0) and kl.shape == [2]
  # One sample per (class, shot) slot: the shots of a class differ despite equal μ and σ.
  assert np.all(first[:, :, 0] != first[:, :, 1])

  leo.is_meta_training = False
  (first, kl), (second, _) = leo.possibly_sample(params), leo.possibly_sample(params)
  np.testing.assert_array_equal(first, second)
  np.testing.assert_array_equal(first, np.zeros([2, 5, 7, 4]))  # The means.
  np.testing.assert_array_equal(kl, [0.0, 0.0])


def test_classes_and_shots_may_change_between_calls_the_embedding_dim_may_not():
  # The variables depend on D alone: one LEO adapts to any N-way K-shot task, as a LEO built
  # for that shape with the same variables does.
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  leo(random_problem(num_classes=5, shots=7, dim=4), is_meta_training=False)
  other = random_problem(num_classes=3, shots=2, dim=4, queries=4)
  built_for_it = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  built_for_it(other, is_meta_training=False)
  for target, source in zip(built_for_it.trainable_variables, leo.trainable_variables):
    target.assign(source)
  np.testing.assert_array_equal(leo.adapt(other)[0], built_for_it.adapt(other)[0])
  assert (leo.num_classes, leo.num_examples_per_class) == (3, 2)
  with pytest.raises(model.ProblemShapeError, match=r"built for 4-d embeddings.*\(1, 5, 7, 6\)"):
    leo(random_problem(num_classes=5, shots=7, dim=6), is_meta_training=False)


def test_adaptation_traced_with_unknown_classes_and_shots_gives_the_known_shapes_numbers():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  leo(random_problem(dim=4), is_meta_training=False)
  spec = [tf.TensorSpec([1, None, None, 4], tf.float64), tf.TensorSpec([1, None, None, 1],
                                                                       tf.int32)]
  any_shape = tf.function(
      lambda tr_input, tr_output: leo.adapt(
          data.ProblemInstance(tr_input, tr_output, None, None, None, None))[0],
      input_signature=spec, autograph=False)
  for num_classes, shots in [(5, 7), (2, 1), (3, 4)]:
    problem = random_problem(num_classes=num_classes, shots=shots, dim=4, seed=shots)
    weights = any_shape(problem.tr_input, problem.tr_output)
    assert weights.shape == [1, num_classes, 4]
    np.testing.assert_allclose(weights, leo.adapt(problem)[0], rtol=1e-12)


def test_training_needs_known_classes_and_shots():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  leo(random_problem(dim=4), is_meta_training=False)
  unknown = tf.TensorSpec([1, None, None, 4], tf.float64)
  labels = tf.TensorSpec([1, None, None, 1], tf.int32)
  train = tf.function(lambda x, y: leo(data.ProblemInstance(x, y, None, x, y, None),
                                       is_meta_training=True), autograph=False)
  with pytest.raises(model.ProblemShapeError, match="training needs known classes and shots"):
    train.get_concrete_function(unknown, labels)


def test_encoder_penalty():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  problem = random_problem(dim=4)
  leo(problem, is_meta_training=True)
  latents, _ = leo.forward_encoder(problem)
  _, _, encoder_penalty, _ = leo.leo_inner_loop(problem, latents)
  assert np.all(encoder_penalty > 1e-3)

  leo(problem, is_meta_training=False)
  latents, _ = leo.forward_encoder(problem)
  _, _, encoder_penalty, _ = leo.leo_inner_loop(problem, latents)
  np.testing.assert_array_equal(encoder_penalty, [0.0])


def test_construct_float32_leo_graph():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=False)
  problem = random_problem(num_classes=7, shots=5, dim=17, dtype=np.float32)
  loss, accuracy, per_task_accuracy = leo(problem, is_meta_training=True)
  assert loss.dtype == accuracy.dtype == per_task_accuracy.dtype == tf.float32
  assert all(v.dtype == tf.float32 for v in leo.trainable_variables)
  assert np.isfinite(loss)


# ---- What the original did not test. ----

def test_default_model_has_the_original_172736_parameters():
  leo = model.LEO(config.InnerModelConfig())
  leo(random_problem(shots=1, dim=640, queries=1, dtype=np.float32), is_meta_training=False)
  shapes = {v.name: v.shape.as_list() for v in leo.trainable_variables}
  assert shapes == {
      "leo/encoder/w:0": [640, 64], "leo/relation_network/linear_0/w:0": [128, 128],
      "leo/relation_network/linear_1/w:0": [128, 128],
      "leo/relation_network/linear_2/w:0": [128, 128], "leo/decoder/w:0": [64, 1280],
      "leo/leo_inner/lr:0": [1, 1, 64], "leo/finetuning/lr:0": [1, 1, 640]}
  assert sum(np.prod(shape) for shape in shapes.values()) == 172736
  # Glorot-uniform: within ±sqrt(6 / (fan_in + fan_out)).
  assert np.abs(leo.decoder_weights.numpy()).max() <= math.sqrt(6 / (64 + 1280))
  np.testing.assert_array_equal(leo.inner_lr, np.ones([1, 1, 64]))
  np.testing.assert_allclose(leo.finetuning_lr, np.full([1, 1, 640], 0.001))


def test_batch_of_tasks_matches_each_task_alone():
  inner_config = config.InnerModelConfig(inner_unroll_length=2, finetuning_unroll_length=2,
                                         num_latents=4)
  leo = model.LEO(inner_config, use_64bits_dtype=True)
  problem = random_problem(tasks=3, num_classes=3, shots=2, dim=8, queries=4)
  batch_loss, batch_accuracy = leo.per_task_loss_and_accuracy(problem, is_meta_training=False)
  for task in range(3):
    alone = data.ProblemInstance(*[None if t is None else t[task:task + 1] for t in problem])
    loss, accuracy = leo.per_task_loss_and_accuracy(alone, is_meta_training=False)
    np.testing.assert_allclose(batch_loss[task], loss[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(batch_accuracy[task], accuracy[0], rtol=1e-10, atol=1e-10)


def np_original_evaluation(problem, variables, inner_config):
  """The original's evaluation-mode forward pass, task by task, transcribed in numpy.

  Returns:
    (per-task losses, per-task query accuracies).
  """
  encoder, relation_layers, decoder = (variables[name]
                                       for name in ("encoder", "relation", "decoder"))
  inner_lr, finetuning_lr = variables["inner_lr"], variables["finetuning_lr"]
  num_latents, dim = decoder.shape[0], decoder.shape[1] // 2
  relu = lambda x: np.maximum(x, 0.0)
  losses, accuracies = [], []
  for task in range(problem.tr_input.shape[0]):
    x, queries = problem.tr_input.numpy()[task:task + 1], problem.val_input.numpy()[task:task + 1]
    num_classes, shots = x.shape[1], x.shape[2]
    codes = (x @ encoder).reshape(num_classes * shots, num_latents)
    pairs = np.concatenate([np.repeat(codes[:, None], len(codes), axis=1),
                            np.repeat(codes[None], len(codes), axis=0)], axis=-1)
    relations = relu(relu(pairs @ relation_layers[0]) @ relation_layers[1]) @ relation_layers[2]
    relations = relations.mean(axis=1).reshape(1, num_classes, shots, 2 * num_latents)
    latents = np.repeat(relations.mean(axis=2, keepdims=True), shots, axis=2)[..., :num_latents]
    decode = lambda z: (z @ decoder)[..., :dim]  # Evaluation: the means.
    for _ in range(inner_config.inner_unroll_length):
      # w = z·W_μ, so ∂/∂z = ∂/∂w · W_μᵀ.
      gradient = np_summed_cross_entropy_gradient(x, decode(latents)) @ decoder[:, :dim].T
      latents = latents - inner_lr * gradient
    weights = decode(latents)
    for _ in range(inner_config.finetuning_unroll_length):
      weights = weights - finetuning_lr * np_summed_cross_entropy_gradient(x, weights)
    cross_entropy = np_cross_entropy(queries, weights)
    predictions = np_logits(queries, weights).argmax(axis=-1)
    accuracies.append(np.mean(predictions == np.arange(num_classes)[None, :, None]))
    cosines = (decoder @ decoder.T) / np.outer(np.linalg.norm(decoder, axis=1),
                                               np.linalg.norm(decoder, axis=1))
    penalties = (inner_config.l2_penalty_weight * sum(
        0.5 * np.sum(w**2) for w in [encoder, *relation_layers, decoder])
                 + inner_config.orthogonality_penalty_weight
                 * np.mean((cosines - np.eye(num_latents))**2))
    losses.append(cross_entropy.mean() + penalties)
  return np.array(losses), np.array(accuracies)


def test_evaluation_matches_a_numpy_transcription_of_the_original():
  # The whole evaluation-mode computation, number for number, against the original's
  # formulation: concatenated pairs, logits against each of the K weight vectors.
  inner_config = config.InnerModelConfig(
      inner_unroll_length=2, finetuning_unroll_length=3, num_latents=2, inner_lr_init=0.5,
      finetuning_lr_init=0.3, l2_penalty_weight=0.01, orthogonality_penalty_weight=0.1)
  leo = model.LEO(inner_config, use_64bits_dtype=True)
  problem = random_problem(tasks=2, num_classes=3, shots=2, dim=5, queries=4)
  leo(problem, is_meta_training=False)
  rng = np.random.default_rng(4)
  leo.inner_lr.assign(rng.uniform(0.2, 1.0, size=[1, 1, 2]))
  leo.finetuning_lr.assign(rng.uniform(0.1, 0.5, size=[1, 1, 5]))
  variables = {"encoder": leo.encoder_weights.numpy(),
               "relation": [w.numpy() for w in leo.relation_network_weights],
               "decoder": leo.decoder_weights.numpy(), "inner_lr": leo.inner_lr.numpy(),
               "finetuning_lr": leo.finetuning_lr.numpy()}
  loss, accuracy = leo.per_task_loss_and_accuracy(problem, is_meta_training=False)
  expected_loss, expected_accuracy = np_original_evaluation(problem, variables, inner_config)
  np.testing.assert_allclose(loss, expected_loss, rtol=1e-10)
  np.testing.assert_array_equal(accuracy, expected_accuracy)


def test_dropout_on_inputs_in_training_only():
  inner_config = config.InnerModelConfig(num_latents=8, dropout_rate=0.3)
  leo = model.LEO(inner_config, use_64bits_dtype=True)
  leo(random_problem(dim=8), is_meta_training=False)
  leo.encoder_weights.assign(np.eye(8))  # The encoder then shows its input after dropout.
  inputs = tf.ones([1, 5, 200, 8], tf.float64)

  leo.is_meta_training = True
  outputs = leo.encoder(inputs).numpy()
  # Dropped units are 0, kept ones are scaled by 1 / (1 − rate).
  assert set(np.unique(outputs.round(12))) == {0.0, round(1 / 0.7, 12)}
  assert abs((outputs == 0).mean() - 0.3) < 0.03

  leo.is_meta_training = False
  np.testing.assert_array_equal(leo.encoder(inputs), inputs)


def test_stddev_parametrisation_with_and_without_offset():
  unnormalized = tf.constant([math.log(1.5), 0.0, -1.0], tf.float64)
  # exp(u) − 1 = 0.5, 0 and −0.63: the last two are floored at 1e-10.
  np.testing.assert_allclose(model.normal_stddev(unnormalized), [0.5, 1e-10, 1e-10], rtol=1e-12)
  # With an offset σ = exp(u) − 1 + offset.
  np.testing.assert_allclose(model.normal_stddev(unnormalized, 0.05),
                             [0.55, 0.05, 1e-10], rtol=1e-12)


@pytest.mark.parametrize("analytic_gradients", [True, False])
def test_decoder_samples_with_the_glorot_offset(analytic_gradients):
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True, analytic_gradients=analytic_gradients)
  problem = random_problem(num_classes=5, dim=4)
  with mock.patch.object(model, "normal_stddev", side_effect=model.normal_stddev) as stddev:
    leo(problem, is_meta_training=True)
  offsets = [call.args[1] if len(call.args) > 1 else 0.0 for call in stddev.call_args_list]
  # The encoder's latents, then the inner_unroll_length + 1 decodes.
  assert offsets == [0.0] + [math.sqrt(2 / (5 + 4))] * 4
  # For the published setting (5-way, 640-d) the offset is sqrt(2 / 645).
  assert math.sqrt(2 / (5 + 640)) == pytest.approx(0.05568, abs=1e-5)


def test_kl_is_the_mean_single_sample_log_ratio_against_a_standard_normal():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  # Task 0: an entry of q = N(0.5, 2) at z = 1.5, where log q − log p =
  # (−log 2 − ½·0.5²) − (−½·1.5²) = 1 − log 2, and an entry of q = N(0, 1), where it is 0.
  # Task 1: two entries of q = N(0, 1): 0.
  loc = tf.constant([[[[0.5, 0.0]]], [[[0.0, 0.0]]]], tf.float64)
  scale = tf.constant([[[[2.0, 1.0]]], [[[1.0, 1.0]]]], tf.float64)
  samples = tf.constant([[[[1.5, 0.7]]], [[[-0.3, 2.0]]]], tf.float64)
  kl = leo.kl_divergence(samples, tfp.distributions.Normal(loc, scale))
  np.testing.assert_allclose(kl, [(1 - math.log(2)) / 2, 0.0], rtol=1e-12, atol=1e-15)


def test_orthogonality_penalty_of_known_matrices():
  # Rows of norm √2 with inner product 1: cosine 0.5 off the diagonal, so
  # mean((C − I)²) = 2·0.5² / 4 = 0.125.
  weight = tf.constant([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0]], tf.float64)
  assert float(model.orthogonality_penalty(weight, 0.5)) == pytest.approx(0.0625, rel=1e-12)
  orthogonal = tf.constant([[3.0, 0.0, 0.0], [0.0, 0.0, -2.0]], tf.float64)
  assert float(model.orthogonality_penalty(orthogonal, 0.5)) == pytest.approx(0.0, abs=1e-15)

  # The model's penalty is that of the decoder's [num_latents, 2·D] matrix, rows = latents.
  leo = model.LEO(config.InnerModelConfig(num_latents=3, orthogonality_penalty_weight=0.01),
                  use_64bits_dtype=True)
  leo(random_problem(dim=4), is_meta_training=False)
  w = leo.decoder_weights.numpy()
  cosines = (w @ w.T) / np.outer(np.linalg.norm(w, axis=1), np.linalg.norm(w, axis=1))
  expected = 0.01 * np.mean((cosines - np.eye(3))**2)
  assert float(leo.orthogonality_regularization) == pytest.approx(expected, rel=1e-10)


def test_l2_penalty_has_the_half_and_covers_the_five_weight_matrices_only():
  weights = [tf.constant([[1.0, 2.0], [3.0, 4.0]], tf.float64), tf.constant([[0.5]], tf.float64)]
  # 0.01 · (½·(1 + 4 + 9 + 16) + ½·0.25).
  assert float(model.l2_penalty(weights, 0.01)) == pytest.approx(0.15125, rel=1e-12)

  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)
  leo(random_problem(), is_meta_training=False)
  matrices = [v.numpy() for v in leo.trainable_variables if v.name.endswith("/w:0")]
  assert len(matrices) == 5
  expected = 0.01 * sum(0.5 * np.sum(w**2) for w in matrices)  # Not the learning rates.
  assert float(leo.l2_regularization) == pytest.approx(expected, rel=1e-12)


def test_relation_network_over_all_ordered_pairs_then_class_mean():
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True)  # 1 latent: pairs are 2-d, width 2.
  leo(random_problem(num_classes=2, shots=2, dim=3), is_meta_training=False)
  rng = np.random.default_rng(1)
  layers = [rng.normal(size=(2, 2)) for _ in range(3)]
  for variable, value in zip(leo.relation_network_weights, layers):
    variable.assign(value)
  codes = np.array([0.3, -1.2, 0.8, 2.0]).reshape(1, 2, 2, 1)  # 2 classes x 2 shots.

  relu = lambda x: np.maximum(x, 0.0)
  flat = codes.reshape(4, 1)
  expected = np.zeros([4, 2])
  for i in range(4):  # Every ordered pair of the task, i = j and cross-class included.
    for j in range(4):
      pair = np.concatenate([flat[i], flat[j]])
      expected[i] += relu(relu(pair @ layers[0]) @ layers[1]) @ layers[2] / 4
  expected = expected.reshape(1, 2, 2, 2)
  outputs = leo.relation_network(tf.constant(codes))
  np.testing.assert_allclose(outputs, expected, rtol=1e-12)

  class_means = np.repeat(expected.mean(axis=2, keepdims=True), 2, axis=2)
  np.testing.assert_allclose(leo.average_codes_per_class(outputs), class_means, rtol=1e-12)


def test_inner_loops_follow_the_summed_loss_gradient_with_per_dimension_rates():
  # Decoder and sampling are identities (w = z, so num_latents = D = 3); predict and the
  # cross-entropy are real. One latent step, then two fine-tuning steps.
  inner_config = config.InnerModelConfig(inner_unroll_length=1, finetuning_unroll_length=2,
                                         num_latents=3)
  leo = model.LEO(inner_config, use_64bits_dtype=True, analytic_gradients=False)
  problem = random_problem(tasks=2, num_classes=2, shots=2, dim=3, queries=3)
  leo(problem, is_meta_training=False)
  assert leo.inner_lr.shape == [1, 1, 3] and leo.finetuning_lr.shape == [1, 1, 3]
  inner_lr, finetuning_lr = np.array([0.5, 1.0, 2.0]), np.array([0.1, 0.2, 0.3])
  leo.inner_lr.assign(inner_lr.reshape(1, 1, 3))
  leo.finetuning_lr.assign(finetuning_lr.reshape(1, 1, 3))
  tr_input, val_input = problem.tr_input.numpy(), problem.val_input.numpy()
  latents = np.random.default_rng(2).normal(size=(2, 2, 2, 3))

  with mock.patch.object(model.LEO, "decoder", new=lambda self, latents: latents), \
       mock.patch.object(model.LEO, "possibly_sample",
                         new=lambda self, params, stddev_offset=0.0: (params, None)):
    tr_loss, weights, _, tr_loss_gradient = leo.leo_inner_loop(problem, tf.constant(latents))
    val_loss, _ = leo.finetuning_inner_loop(problem, tr_loss_gradient, weights)

  # Gradient of the sum over the N·K = 4 support examples, one rate per dimension.
  adapted = latents - inner_lr * np_summed_cross_entropy_gradient(tr_input, latents)
  np.testing.assert_allclose(weights, adapted, rtol=1e-10)
  mean_gradient_step = latents - inner_lr * np_summed_cross_entropy_gradient(
      tr_input, latents) / 4
  assert not np.allclose(weights, mean_gradient_step)
  np.testing.assert_allclose(tr_loss, np_cross_entropy(tr_input, adapted), rtol=1e-10)
  np.testing.assert_allclose(tr_loss_gradient,
                             np_summed_cross_entropy_gradient(tr_input, adapted), rtol=1e-10)

  # Fine-tuning: the first step follows the latent loop's gradient, the second a new one.
  finetuned = adapted - finetuning_lr * np_summed_cross_entropy_gradient(tr_input, adapted)
  finetuned -= finetuning_lr * np_summed_cross_entropy_gradient(tr_input, finetuned)
  np.testing.assert_allclose(val_loss, np_cross_entropy(val_input, finetuned), rtol=1e-10)


def test_encoder_penalty_is_the_mean_square_towards_the_stopped_adapted_latents():
  # Mocks as in the hand-computed loop: z0 = 4 → z3 = 0.032, so the penalty is
  # (4 − 0.032)², and its gradient w.r.t. z0 is 2·(4 − 0.032): z3 is a constant (without the
  # stop-gradient it would be 2·(4 − 0.032)·(1 − 0.2³)).
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True, analytic_gradients=False)
  problem = one_number_problem([4.0])
  with mockify_everything():
    leo(problem, is_meta_training=True)
    starting_latents = tf.constant([[[[4.0]]]], tf.float64)
    with tf.GradientTape() as tape:
      tape.watch(starting_latents)
      _, _, encoder_penalty, _ = leo.leo_inner_loop(problem, starting_latents)
  np.testing.assert_allclose(encoder_penalty, [(4 - 0.032)**2], rtol=1e-12)
  np.testing.assert_allclose(tape.gradient(encoder_penalty, starting_latents),
                             [[[[2 * (4 - 0.032)]]]], rtol=1e-12)


def _loss_and_gradients(leo, problem):
  with tf.GradientTape() as tape:
    loss, _, _ = leo(problem, is_meta_training=False)
  return loss, tape.gradient(loss, leo.trainable_variables)


@pytest.mark.parametrize("analytic_gradients", [True, False])
def test_outer_gradients_are_second_order_and_match_finite_differences(analytic_gradients):
  inner_config = config.InnerModelConfig(
      inner_unroll_length=2, finetuning_unroll_length=2, num_latents=2, inner_lr_init=0.5,
      finetuning_lr_init=0.3, l2_penalty_weight=0.01, orthogonality_penalty_weight=0.01)
  leo = model.LEO(inner_config, use_64bits_dtype=True, analytic_gradients=analytic_gradients)
  problem = random_problem(tasks=2, num_classes=2, shots=2, dim=6, queries=3)
  _, gradients = _loss_and_gradients(leo, problem)

  rng = np.random.default_rng(3)
  step = 1e-6
  for variable, gradient in zip(leo.trainable_variables, gradients):
    # The directional derivative along a random direction in this variable's space.
    direction = rng.normal(size=variable.shape)
    value = variable.numpy()
    variable.assign(value + step * direction)
    loss_plus, _, _ = leo(problem, is_meta_training=False)
    variable.assign(value - step * direction)
    loss_minus, _, _ = leo(problem, is_meta_training=False)
    variable.assign(value)
    finite_difference = (loss_plus - loss_minus) / (2 * step)
    np.testing.assert_allclose(np.sum(gradient * direction), finite_difference, rtol=1e-6,
                               atol=1e-9, err_msg=variable.name)

  # Without the second-order terms (gradients stopped through the inner updates) the outer
  # gradients are different (the tape's inner gradients, stopped).
  leo.analytic_gradients = False
  first_order = lambda tape, loss, source: tf.stop_gradient(tape.gradient(loss, source))
  with mock.patch.object(model, "summed_loss_gradient", new=first_order):
    _, first_order_gradients = _loss_and_gradients(leo, problem)
  relative_differences = {
      variable.name: np.linalg.norm(gradient - first_order_gradient) / np.linalg.norm(gradient)
      for variable, gradient, first_order_gradient in zip(
          leo.trainable_variables, gradients, first_order_gradients)}
  assert all(difference > 1e-3 for difference in relative_differences.values())
  assert relative_differences["leo/decoder/w:0"] > 0.1


def test_unused_finetuning_rate_gets_a_zero_update():
  # finetuning_unroll_length = 0: the query loss uses the decoded weights directly, so the
  # loss does not depend on the fine-tuning rate and its gradient is None.
  inner_config = config.InnerModelConfig(inner_unroll_length=1, finetuning_unroll_length=0,
                                         num_latents=2)
  leo = model.LEO(inner_config, use_64bits_dtype=True)
  problem = random_problem(num_classes=2, shots=2, dim=8)
  with tf.GradientTape() as tape:
    loss, _, _ = leo(problem, is_meta_training=True)
  gradients = tape.gradient(loss, leo.trainable_variables)
  assert [v.name for v, g in zip(leo.trainable_variables, gradients) if g is None] == [
      "leo/finetuning/lr:0"]
  meta_optimizer = optim.MetaOptimizer(config.OuterModelConfig())
  meta_optimizer.apply(loss, gradients, leo.trainable_variables)
  np.testing.assert_array_equal(leo.finetuning_lr, np.full([1, 1, 8], 0.001))
  assert int(meta_optimizer.nan_guard_count) == 0


def test_compiled_training_step_survives_a_nan_loss():
  # The runner's step: one tf.function with the outer tape, the update and the guard.
  leo = model.LEO(SMALL_DEFAULT_CONFIG)
  problem = random_problem(tasks=2, num_classes=3, shots=2, dim=64, queries=2,
                           dtype=np.float32)
  leo(problem, is_meta_training=False)
  meta_optimizer = optim.MetaOptimizer(config.OuterModelConfig())

  @tf.function(autograph=False)
  def train_step(problem, poison):
    with tf.GradientTape() as tape:
      loss, _, _ = leo(problem, is_meta_training=True)
      loss *= poison  # 1, or NaN to poison the loss and every gradient of this step.
    gradients = tape.gradient(loss, leo.trainable_variables)
    return loss, meta_optimizer.apply(loss, gradients, leo.trainable_variables)

  guard_counts = []
  for poison in [1.0, np.nan, 1.0, 1.0]:
    before = [v.numpy() for v in leo.trainable_variables]
    loss, applied = train_step(problem, tf.constant(poison, tf.float32))
    guard_counts.append(int(meta_optimizer.nan_guard_count))
    if np.isnan(poison):
      # 1e-4·W for the weight matrices, zeros for the learning rates, then the clips.
      expected = optim.clip_gradients(
          [optim.NAN_FALLBACK_FACTOR * value if variable.name.endswith("/w:0")
           else np.zeros_like(value) for value, variable in zip(before, leo.trainable_variables)],
          0.1, 0.1)
      for gradient, expected_gradient in zip(applied, expected):
        np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-6)
    else:
      assert np.isfinite(loss)
    assert all(np.all(np.isfinite(v)) for v in leo.trainable_variables)
    assert any(np.any(b != v.numpy()) for b, v in zip(before, leo.trainable_variables))
  assert guard_counts == [0, 1, 1, 1]
  assert int(meta_optimizer.adam.step) == 4


def test_randomness_is_seeded_and_resumes_from_a_checkpoint(tmp_path):
  leo = model.LEO(TEST_CONFIG, use_64bits_dtype=True, seed=7)
  problem = random_problem()
  leo(problem, is_meta_training=False)
  checkpoint = tf.train.Checkpoint(leo=leo)
  path = checkpoint.write(str(tmp_path / "leo"))
  first, _, _ = leo(problem, is_meta_training=True)
  second, _, _ = leo(problem, is_meta_training=True)
  assert first != second  # Fresh dropout masks and samples at every call.
  checkpoint.read(path).assert_consumed()
  resumed, _, _ = leo(problem, is_meta_training=True)
  assert resumed == first


def test_training_noise_does_not_depend_on_how_the_tasks_are_split():
  # What a distributed step relies on: with one seed, tasks 0-1 run alone and tasks 2-3 run
  # alone get the noise they get in one batch of 4.
  leo = model.LEO(SMALL_DEFAULT_CONFIG, use_64bits_dtype=True)
  problem = random_problem(tasks=4, shots=2, dim=64, queries=3)
  seed = tf.constant([3, 7], tf.int64)
  per_task = lambda part, offset: leo(part, True, noise_seed=seed, task_offset=offset,
                                      total_tasks=4)
  whole_loss, _, whole_accuracy = leo(problem, True, noise_seed=seed)
  halves = [data.ProblemInstance(*[None if t is None else t[i:i + 2] for t in problem])
            for i in (0, 2)]
  (first_loss, _, first), (second_loss, _, second) = per_task(halves[0], 0), per_task(
      halves[1], 2)
  np.testing.assert_allclose(np.concatenate([first, second]), whole_accuracy)
  np.testing.assert_allclose((first_loss + second_loss) / 2, whole_loss, rtol=1e-12)
  other_loss, _, _ = leo(problem, True, noise_seed=seed + 1)
  assert abs(float(other_loss - whole_loss)) > 1e-6  # The seed does matter.
