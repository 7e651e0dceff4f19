"""baselines.py: nearest centroid and logistic regression on hand-made tasks."""

import numpy as np
import tensorflow as tf

import baselines
import transforms
import config
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


def test_fit_whitening_makes_the_within_class_covariance_the_identity():
  rng = np.random.default_rng(2)
  mixing = rng.normal(size=(6, 6))
  labels = np.repeat(np.arange(4), 50)
  embeddings = rng.normal(size=(4, 6))[labels] * 3 + rng.normal(size=(200, 6)) @ mixing
  rows = [np.flatnonzero(labels == c) for c in range(4)]
  mean, transform = transforms.fit_whitening(embeddings, rows, shrinkage=0.0)
  np.testing.assert_allclose(mean, embeddings.mean(axis=0), rtol=1e-12)
  within = embeddings - np.stack([embeddings[labels == c].mean(0) for c in range(4)])[labels]
  whitened = within @ transform
  np.testing.assert_allclose(whitened.T @ whitened / 200, np.eye(6), atol=1e-10)
  # With shrinkage s, eigenvalue v is scaled to v / (v + s mean(v)).
  values = np.linalg.eigvalsh(within.T @ within / 200)
  _, shrunk = transforms.fit_whitening(embeddings, rows, shrinkage=0.5)
  np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(shrunk.T @ (within.T @ within / 200)
                                                        @ shrunk)),
                             np.sort(values / (values + 0.5 * values.mean())), rtol=1e-9)


def test_whitened_nearest_centroid_is_nearest_centroid_without_whitening():
  rng = np.random.default_rng(3)
  problem = _problem(rng.normal(size=(4, 5, 2, 8)), rng.normal(size=(4, 5, 6, 8)))
  plain = baselines.nearest_centroid(problem).numpy()
  identity = baselines.whitened_nearest_centroid(np.zeros(8), np.eye(8))(problem).numpy()
  np.testing.assert_array_equal(identity, plain)


def test_whitening_discounts_a_nuisance_every_class_shares():
  """Classes are points in 5 dimensions; every image also has a style offset of sd 5 along a
  sixth, whatever its class (the drawing style of a typeface). Nearest centroid is fooled by
  the style; whitened on other classes drawn in the same styles, it is not."""
  rng = np.random.default_rng(4)
  def images(centres, count):
    points = np.zeros((len(centres), count, 6))
    points[..., :5] = centres[:, None] + 0.3 * rng.normal(size=(len(centres), count, 5))
    points[..., 5] = 5 * rng.normal(size=(len(centres), count))
    return points
  train = images(rng.normal(size=(20, 5)), 30)
  rows = np.arange(600).reshape(20, 30)  # Class c's 30 images, one after another.
  mean, transform = transforms.fit_whitening(train.reshape(-1, 6), rows,
                                            transforms.WHITENING_SHRINKAGE)
  tasks = np.stack([images(rng.normal(size=(5, 5)), 11) for _ in range(50)])
  problem = _problem(tasks[:, :, :1], tasks[:, :, 1:])  # 1-shot, 10 queries per class.
  plain = baselines.nearest_centroid(problem).numpy().mean()
  whitened = baselines.whitened_nearest_centroid(mean, transform)(problem).numpy().mean()
  assert plain < 0.5 and whitened > 0.8, (plain, whitened)


def test_the_fitted_baseline_whitens_the_embeddings_as_episodes_hold_them():
  """Episodes hold the embeddings L2-normalised: the runner's fitted baseline takes the split
  as stored and fits the whitening on the normalised rows."""
  rng = np.random.default_rng(5)
  stored = rng.normal(size=(60, 4)) * rng.uniform(1, 10, size=(60, 1))  # Rows of any norm.
  labels = np.repeat(np.arange(6), 10)
  normalised = stored / np.linalg.norm(stored, axis=1, keepdims=True)
  problem = _problem(rng.normal(size=(3, 5, 1, 4)), rng.normal(size=(3, 5, 4, 4)))
  rows = [np.flatnonzero(labels == c) for c in range(6)]
  fitted = baselines.FITTED_BASELINES["whitened_nearest_centroid"](stored, rows)(problem)
  expected = baselines.whitened_nearest_centroid(*transforms.fit_whitening(
      normalised, rows, transforms.WHITENING_SHRINKAGE))(problem)
  np.testing.assert_array_equal(fitted.numpy(), expected.numpy())
  # The episodes' side of the contract: a provider's instances hold unit rows.
  keys = [f"train-c{label}-c{label}_i{i}" for i, label in enumerate(labels)]
  embeddings = data.validate_embeddings(
      {"embeddings": stored.astype(np.float32), "keys": np.asarray(keys)}, "<test>")
  provider = data.DataProvider("train", config.DataConfig(dataset_name="icons"), 0,
                               embeddings=embeddings)
  instance = provider.get_instance(num_classes=5, tr_size=1, val_size=2)
  np.testing.assert_allclose(np.linalg.norm(instance.tr_input.numpy(), axis=-1), 1, rtol=1e-6)


def test_simpleshot_centres_normalises_and_takes_the_nearest_centroid_by_hand():
  """Mean m = [1, 0]. Class 0's support [2, 1], [2, -1] centres to [1, 1], [1, -1], unit
  [.71, .71], [.71, -.71]: centroid c0 = [.71, 0]. Class 1's [1, 2], [0, 1] centres to
  [0, 2], [-1, 1], unit [0, 1], [-.71, .71]: c1 = [-.35, .85]. Query [0, -1] -> unit
  [-.71, -.71]: squared distances 2.50 to c0, 2.56 to c1: class 0 (the cosine to the
  normalised centroids would say 1). Query [1, .5] -> [0, 1]: 1.50 to c0, 0.15 to c1: class 1
  (plain nearest centroid, uncentred, says 0). Query [-1, -1] -> [-.89, -.45]: 2.63 to c0,
  2.06 to c1: class 1."""
  support = [[[[2, 1], [2, -1]], [[1, 2], [0, 1]]]] * 2
  queries = [[[[0, -1]], [[1, 0.5]]],   # Both right.
             [[[1, 0.5]], [[-1, -1]]]]  # Class 0's query goes to class 1.
  problem = _problem(support, queries)
  np.testing.assert_array_equal(baselines.simpleshot(np.array([1.0, 0.0]))(problem).numpy(),
                                [1.0, 0.5])
  np.testing.assert_array_equal(baselines.nearest_centroid(problem).numpy(), [0.5, 0.5])


def test_the_fitted_simpleshot_centres_on_the_mean_of_the_normalised_meta_train_rows():
  rng = np.random.default_rng(6)
  stored = rng.normal(size=(40, 4)) * rng.uniform(1, 10, size=(40, 1))
  rows = [np.arange(10 * c, 10 * c + 10) for c in range(4)]
  problem = _problem(rng.normal(size=(3, 5, 2, 4)), rng.normal(size=(3, 5, 4, 4)))
  mean = (stored / np.linalg.norm(stored, axis=1, keepdims=True)).mean(axis=0)
  np.testing.assert_array_equal(
      baselines.FITTED_BASELINES["simpleshot"](stored, rows)(problem).numpy(),
      baselines.simpleshot(mean)(problem).numpy())
