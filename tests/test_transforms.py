"""--embedding_transform: each transform against its definition on hand-computed data, the
file a run keeps, and the transform applied wherever the run's model meets embeddings:
training, resume, evaluation, cross-domain evaluation, baselines, prediction, export."""

import json
import math
import os
import shutil

from absl.testing import flagsaver
import numpy as np
import pytest
import tensorflow as tf

import config
import data
import evaluation
import exporting
import fixtures
import prediction
import records
import runfolder
import test_runner
import transforms
import utils

# Two classes of two 2-d embeddings: A = {(3, 4), (0, 2)}, B = {(6, 8), (0, 4)}. Normalised,
# both classes are {(0.6, 0.8), (0, 1)}.
RAW = np.array([[3.0, 4.0], [0.0, 2.0], [6.0, 8.0], [0.0, 4.0]])
ROWS = [np.array([0, 1]), np.array([2, 3])]


def _fit(name):
  return transforms.fit(name, RAW, ROWS)


def test_none_is_no_transform_and_an_unknown_name_is_refused():
  assert _fit("none") is None
  with pytest.raises(transforms.TransformError, match="expected one of none, center"):
    _fit("centre")


def test_center_subtracts_the_raw_train_mean():
  transform = _fit("center")
  np.testing.assert_array_equal(transform.mean, [2.25, 4.5])
  np.testing.assert_allclose(transform(tf.constant([[1.0, 0.0]], tf.float64)), [[-1.25, -4.5]])


def test_cl2n_normalises_then_subtracts_the_mean_of_the_normalised_train_rows():
  transform = _fit("cl2n")
  np.testing.assert_allclose(transform.mean, [0.3, 0.9])
  # (1, 0) is already of unit norm; (10, 0) normalises to it.
  for x in ([1.0, 0.0], [10.0, 0.0]):
    np.testing.assert_allclose(transform(tf.constant([x], tf.float64)), [[0.7, -0.9]])


def test_whiten_scales_each_within_class_direction_by_its_shrunk_deviation():
  # Normalised rows deviate from their class mean (0.3, 0.9) by ±(0.3, -0.1): the
  # within-class covariance has eigenvalue 0.1 along u1 = (3, -1)/√10 and 0 along
  # u2 = (1, 3)/√10; shrinkage adds 1e-3 × their mean, 5e-5, to each.
  transform = _fit("whiten")
  shrink = transforms.WHITENING_SHRINKAGE * 0.05
  np.testing.assert_allclose(transform.mean, [0.3, 0.9])
  # (1, 0) - mean = (0.7, -0.9) = 3/√10 u1 - 2/√10 u2.
  y = transform(tf.constant([[1.0, 0.0]], tf.float64)).numpy()[0]
  expected = [2 / math.sqrt(10) / math.sqrt(shrink), 3 / math.sqrt(10) / math.sqrt(0.1 + shrink)]
  np.testing.assert_allclose(np.abs(y), expected, rtol=1e-9)  # eigh orders values up.
  # The train rows' deviations whiten to unit variance along u1 (up to the shrinkage).
  within = transform(tf.constant(RAW, tf.float64)).numpy()
  np.testing.assert_allclose(np.abs(within[:, 1]), math.sqrt(0.1 / (0.1 + shrink)), rtol=1e-9)
  np.testing.assert_allclose(within[:, 0], 0, atol=1e-9)


def test_the_baselines_fit_what_the_transforms_fit():
  whitened = transforms.fit_whitening(transforms.normalised(RAW), ROWS,
                                      transforms.WHITENING_SHRINKAGE)
  np.testing.assert_array_equal(whitened[1], _fit("whiten").matrix)
  np.testing.assert_array_equal(whitened[0], _fit("cl2n").mean)


def test_whiten_refuses_classes_that_do_not_vary_and_notes_its_shrinkage(monkeypatch):
  same = np.repeat([[1.0, 0.0], [0.0, 1.0]], 2, axis=0)
  with pytest.raises(transforms.TransformError) as raised:
    transforms.fit("whiten", same, ROWS)
  assert "do not vary within any of its 2 classes" in str(raised.value)
  assert "\n" not in str(raised.value)
  notes = []
  monkeypatch.setattr(transforms.logging, "info", lambda text, *args: notes.append(text % args))
  _fit("whiten")
  assert not notes  # 4 rows of 2 classes: a covariance of rank 2 in 2 dimensions.
  transforms.fit("whiten", np.random.default_rng(0).normal(size=(6, 8)),
                 [np.arange(3), np.arange(3, 6)])
  (note,) = notes
  assert "rank at most 4 < 8 dimensions" in note and "raised by 0.001 times their mean" in note


def test_a_transform_survives_its_file_and_its_digest_names_its_values():
  for name in ("center", "cl2n", "whiten"):
    transform = _fit(name)
    again = transforms.from_bytes(transform.to_bytes(), "t.npz")
    assert (again.name, again.digest) == (name, transform.digest)
  other = transforms.fit("whiten", RAW * [1.0, 1.01], ROWS)
  assert other.digest != _fit("whiten").digest


def _npz(**arrays):
  import io  # pylint: disable=g-import-not-at-top
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  return buffer.getvalue()


@pytest.mark.parametrize("contents, problem", [
    (b"not a zip", "not a readable .npz"),
    (_npz(name=np.array("cl2n")), "'mean' is None"),
    (_npz(name=np.array("shift"), mean=np.zeros(2)), "'name' is"),
    (_npz(name=np.array("cl2n"), mean=np.zeros(2, np.float32)), "'mean' is float32 [2]"),
    (_npz(name=np.array("whiten"), mean=np.zeros(2)), "'matrix' is None for whiten"),
    (_npz(name=np.array("whiten"), mean=np.zeros(2), matrix=np.eye(3)), "'matrix' is float64"),
    (_npz(name=np.array("cl2n"), mean=np.array([0.0, np.nan])), "NaN or Inf"),
    (_npz(name=np.array("cl2n"), mean=np.zeros(2), payload=np.array([1], object)),
     "not a readable .npz"),
])
def test_a_bad_transform_file_is_one_line_naming_it(contents, problem):
  with pytest.raises(transforms.TransformError) as raised:
    transforms.from_bytes(contents, "/run/embedding_transform.npz")
  message = str(raised.value)
  assert message.startswith("/run/embedding_transform.npz: ") and problem in message
  assert "\n" not in message


def test_episodes_hold_the_transformed_rows_normalised(tmp_path):
  root = fixtures.make_dataset(str(tmp_path), dim=16)
  data_config = config.DataConfig(data_path=root, dataset_name="tiny")
  train = data.load_split(data_config, data.MetaSplit.TRAIN)
  test = data.load_split(data_config, data.MetaSplit.TEST)
  plain = data.DataProvider("test", data_config)
  np.testing.assert_array_equal(plain._embeddings.numpy(),  # pylint: disable=protected-access
                                tf.math.l2_normalize(test.embeddings, axis=-1).numpy())
  for name in ("center", "cl2n", "whiten"):
    transform = transforms.fit(name, train.embeddings, train.rows_by_class)
    provider = data.DataProvider("test", data_config, transform=transform)
    x = transforms.normalised(test.embeddings) if name != "center" else test.embeddings
    y = (x - transform.mean) @ (transform.matrix if transform.matrix is not None else np.eye(16))
    expected = y / np.linalg.norm(y, axis=1, keepdims=True)
    np.testing.assert_allclose(provider._embeddings.numpy(), expected,  # pylint: disable=protected-access
                               atol=2e-6)
    assert provider.embeddings_digest == plain.embeddings_digest  # The data as stored.


def test_a_row_the_transform_takes_to_zero_is_one_line(tmp_path):
  root = fixtures.make_dataset(str(tmp_path), dim=16)
  data_config = config.DataConfig(data_path=root, dataset_name="tiny")
  test = data.load_split(data_config, data.MetaSplit.TEST)
  at_a_row = transforms.EmbeddingTransform("center", test.embeddings[3].astype(np.float64))
  with pytest.raises(data.DataError) as raised:
    data.DataProvider("test", data_config, transform=at_a_row)
  assert "after --embedding_transform=center, the embeddings has rows of L2 norm 0" in str(
      raised.value)
  wrong = transforms.EmbeddingTransform("center", np.zeros(8))
  with pytest.raises(data.DataError, match="16-d embeddings, but the run's "
                     "--embedding_transform=center was fitted on 8-d ones"):
    data.DataProvider("test", data_config, transform=wrong)


def test_a_configuration_saved_before_transforms_is_one_of_none():
  configs = config.Configs(config.DataConfig(dataset_name="tiny"), config.InnerModelConfig(),
                           config.OuterModelConfig(), config.RunConfig())
  saved = configs.to_json(16)
  assert "embedding_transform" not in saved["data_config"]  # As every older config.json.
  assert runfolder.identity_differences(saved, saved) == []
  whitened = config.Configs(config.DataConfig(dataset_name="tiny", embedding_transform="whiten"),
                            configs.inner, configs.outer, configs.run)
  current = whitened.to_json(16, transform_digest="ab" * 32)
  assert current["data_config"]["embedding_transform"] == "whiten"
  assert runfolder.identity_differences(saved, current)[0] == (
      "--embedding_transform='whiten' (saved: 'none')")


# ---- A run with a transform, end to end. ----

def _line(result):
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout.strip().splitlines()[-1]


def _error(result):
  assert result.returncode != 0
  lines = result.stderr.strip().splitlines()
  assert "Traceback" not in result.stderr
  return lines[-1]


def _records(folder):
  return {path: record for path, record in records.find_records(folder)}


@pytest.fixture(scope="module")
def whitened_run(tmp_path_factory):
  """A tiny run trained with --embedding_transform=whiten: (dataset root, run folder)."""
  base = tmp_path_factory.mktemp("whitened")
  root = fixtures.make_dataset(str(base / "embeddings"), dim=16)
  run_dir = str(base / "run")
  _line(test_runner.run(f"--data_path={root}", f"--checkpoint_path={run_dir}",
                        "--embedding_transform=whiten", *test_runner.TINY))
  return root, run_dir


def test_training_saves_the_transform_fitted_on_train_and_names_it(whitened_run):
  root, run_dir = whitened_run
  saved = runfolder.read_config(run_dir)
  train = data.load_split(config.DataConfig(data_path=root, dataset_name="tiny"),
                          data.MetaSplit.TRAIN)
  fitted = transforms.fit("whiten", train.embeddings, train.rows_by_class)
  assert saved["data_config"]["embedding_transform"] == "whiten"
  assert saved[runfolder.TRANSFORM_DIGEST] == fitted.digest
  assert transforms.saved(run_dir, saved).digest == fitted.digest
  best = json.load(open(os.path.join(run_dir, "best_checkpoint", "best.json")))
  assert best[runfolder.TRANSFORM_DIGEST] == fitted.digest
  (record,) = _records(os.path.join(run_dir, "results")).values()
  assert record["summary"].endswith("meta-trained on train; whiten embeddings (statistics of "
                                    "train))")
  assert "--embedding_transform=whiten" in open(os.path.join(run_dir, "flags.txt")).read()


def test_evaluation_and_resume_apply_the_saved_statistics(whitened_run, tmp_path):
  root, shared = whitened_run
  run_dir = str(tmp_path / "run")
  shutil.copytree(shared, run_dir)
  (trained,) = _records(os.path.join(run_dir, "results")).values()
  evaluated = _line(test_runner.run(f"--checkpoint_path={run_dir}", "--evaluation_mode",
                                    "--num_test_tasks=20", f"--data_path={root}"))
  assert evaluated == trained["summary"]
  # Statistics of other values in the file (the configuration's digest no longer names them)
  # are refused, as a missing file is; nothing is refitted in their place.
  path = transforms.path_in(run_dir)
  kept = open(path, "rb").read()
  transform = transforms.from_bytes(kept, path)
  with open(path, "wb") as f:
    f.write(transforms.EmbeddingTransform("whiten", transform.mean + 1e-9,
                                          transform.matrix).to_bytes())
  error = _error(test_runner.run(f"--checkpoint_path={run_dir}", "--evaluation_mode"))
  assert error.startswith(f"runner.py: error: {path}: holds whiten statistics of digest")
  error = _error(test_runner.run(f"--data_path={root}", f"--checkpoint_path={run_dir}",
                                 "--embedding_transform=whiten", *test_runner.TINY))
  assert "another configuration: other statistics of --embedding_transform" in error
  os.remove(path)
  assert "missing; the model was trained on embeddings transformed by" in _error(
      test_runner.run(f"--checkpoint_path={run_dir}", "--evaluation_mode"))
  with open(path, "wb") as f:
    f.write(kept)
  # Resuming reads the saved statistics and trains on.
  resumed = test_runner.run(f"--data_path={root}", f"--checkpoint_path={run_dir}",
                            "--embedding_transform=whiten", *test_runner.TINY[:-5],
                            "--num_steps_limit=9", "--checkpoint_steps=3", "--log_steps=2",
                            "--outer_lr=1e-3")
  _line(resumed)
  assert "Resuming from" in resumed.stderr
  assert open(path, "rb").read() == kept


def test_another_transform_is_refused_by_the_run_and_by_its_model(whitened_run):
  root, run_dir = whitened_run
  for flag in ("--embedding_transform=cl2n", "--embedding_transform=none"):
    error = _error(test_runner.run(f"--data_path={root}", f"--checkpoint_path={run_dir}", flag,
                                   *test_runner.TINY))
    assert "holds a run of another configuration: --embedding_transform=" in error
  error = _error(test_runner.run(f"--checkpoint_path={run_dir}", "--evaluation_mode",
                                 "--embedding_transform=none"))
  assert "--embedding_transform=none contradicts the model saved at" in error


def test_on_other_data_the_model_applies_its_own_statistics(whitened_run, tmp_path):
  root, shared = whitened_run
  run_dir = str(tmp_path / "run")
  shutil.copytree(shared, run_dir)
  other = fixtures.make_dataset(str(tmp_path / "other"), dataset_name="other", dim=16, seed=7)
  line = _line(test_runner.run(f"--checkpoint_path={run_dir}", "--evaluation_mode",
                               f"--eval_data_path={other}", "--eval_dataset_name=other",
                               "--num_test_tasks=20"))
  assert line.endswith("whiten embeddings (statistics of train); tested on other (test))")
  (record,) = [r for r in _records(os.path.join(run_dir, "results")).values()
               if r["dataset_name"] == "other"]
  # The same tasks scored here with the run's statistics, and with statistics refitted on the
  # other data's train split: the record is the first.
  saved = runfolder.read_config(run_dir)
  other_config = config.DataConfig(data_path=other, dataset_name="other")
  loaded = prediction.Predictor.load(run_dir)

  def accuracies(transform):
    evaluator = evaluation.Evaluator(evaluation.LEOScores(loaded.leo),
                                     data.DataProvider("test", other_config, seed=0,
                                                       transform=transform),
                                     10, 5, 1, record["queries_per_class"])
    return evaluator(20)[1]

  np.testing.assert_allclose(accuracies(transforms.saved(run_dir, saved)),
                             record["task_accuracies"], atol=1e-6)
  other_train = data.load_split(other_config, data.MetaSplit.TRAIN)
  refitted = transforms.fit("whiten", other_train.embeddings, other_train.rows_by_class)
  assert not np.allclose(accuracies(refitted), record["task_accuracies"])


def test_prediction_and_export_give_the_evaluations_classes(whitened_run):
  root, run_dir = whitened_run
  predictor = prediction.Predictor.load(run_dir)
  assert predictor.transform.name == "whiten"
  data_config = config.DataConfig(data_path=root, dataset_name="tiny")
  num_classes, shots, queries, tasks = 5, 1, 19, 6
  provider = data.DataProvider("test", data_config, seed=3, transform=predictor.transform)
  evaluator = evaluation.Evaluator(evaluation.LEOScores(predictor.leo), provider, tasks,
                                   num_classes, shots, queries)
  _, task_accuracies = evaluator(tasks)
  rows = data.DataProvider("test", data_config, seed=3).sample_rows(
      evaluator.chunk, num_classes, shots + queries).numpy()
  embeddings = data.load_split(data_config, data.MetaSplit.TEST).embeddings  # As stored.
  exported = exporting.ExportedLEO(predictor, with_images=False)
  labels = np.repeat(np.arange(num_classes), queries)
  for task in range(tasks):
    support, task_queries = rows[task, :, :shots], rows[task, :, shots:].reshape(-1)
    probabilities = predictor.predict(embeddings[support], embeddings[task_queries])
    correct = int(np.sum(probabilities.argmax(axis=1) == labels))
    assert correct == round(float(task_accuracies[task]) * num_classes * queries)
    outputs = exported.from_embeddings(tf.constant(embeddings[support]),
                                       tf.constant(embeddings[task_queries]))
    np.testing.assert_allclose(outputs["probabilities"].numpy(), probabilities, atol=1e-5)


def test_a_baseline_on_transformed_embeddings_has_a_record_of_its_own(whitened_run, tmp_path):
  root, _ = whitened_run
  out = str(tmp_path / "baselines")
  plain = _line(test_runner.run(f"--data_path={root}", "--dataset_name=tiny",
                                "--baseline=nearest_centroid", f"--checkpoint_path={out}",
                                "--num_test_tasks=20"))
  centred = _line(test_runner.run(f"--data_path={root}", "--dataset_name=tiny",
                                  "--baseline=nearest_centroid", "--embedding_transform=cl2n",
                                  f"--checkpoint_path={out}", "--num_test_tasks=20"))
  assert "cl2n embeddings (statistics of train)" in centred and "cl2n" not in plain
  found = list(_records(os.path.join(out, "results")).values())
  assert len(found) == 2 and found[0]["task_fingerprint"] == found[1]["task_fingerprint"]
  (record,) = [r for r in found if "cl2n" in r["summary"]]
  assert record["config"]["data_config"]["embedding_transform"] == "cl2n"
  assert record["meta_trained_on"]["dataset_name"] == "tiny"
  error = _error(test_runner.run(f"--data_path={root}", "--dataset_name=tiny",
                                 "--baseline=simpleshot", "--embedding_transform=cl2n",
                                 f"--checkpoint_path={out}"))
  assert "the baseline fits its own transform of the embeddings" in error


def test_a_presets_transform_is_leos_input_not_a_baselines():
  for flags, expected in ((["--preset=icons_1shot"], "cl2n"),
                          (["--preset=icons_1shot", "--baseline=simpleshot"], "none"),
                          (["--preset=icons_1shot", "--baseline=nearest_centroid"], "none"),
                          (["--preset=icons_1shot", "--baseline=nearest_centroid",
                            "--embedding_transform=whiten"], "whiten")):
    with flagsaver.flagsaver():
      config.FLAGS.unparse_flags()
      config.FLAGS(["runner.py", *flags])
      assert config.get_data_config().embedding_transform == expected, flags
