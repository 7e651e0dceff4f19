# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of using a trained LEO: prediction.py, predict.py and the shipped icons models."""

import csv
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import config
import data
import evaluation
import fixtures
import inprocess
import model
import prediction
import records
import runfolder
import utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = {1: prediction.SHIPPED_1SHOT, 5: prediction.SHIPPED_5SHOT}
SHIPPED_LIMIT_BYTES = 10 * 1024 * 1024


def _drawing(rng, side=84):
  """A random black-on-white grayscale drawing, uint8 [side, side, 1]."""
  return np.where(rng.random((side, side, 1)) < 0.3, 0, 255).astype(np.uint8)


def _support_and_queries(root, shots=(1, 1, 1), queries_per_class=2, seed=0):
  """Class folders `a`, `b`, ... of `shots[c]` noisy copies of one drawing each, and a queries
  folder of other copies (one class's in a sub-folder)."""
  rng = np.random.default_rng(seed)
  for c, count in enumerate(shots):
    name, drawing = "abcdefgh"[c], _drawing(rng)
    copies = [np.where(rng.random(drawing.shape) < 0.05, 255 - drawing, drawing)
              for _ in range(count + queries_per_class)]
    for i, copy in enumerate(copies[:count]):
      fixtures.write_png(os.path.join(root, "support", name, f"{i}.png"), copy)
    for i, copy in enumerate(copies[count:]):
      folder = os.path.join(root, "queries", *(["more"] if c == 0 else []))
      fixtures.write_png(os.path.join(folder, f"{name}{i}.png"), copy)
  return os.path.join(root, "support"), os.path.join(root, "queries")


@pytest.fixture(scope="module")
def predictor():
  return prediction.Predictor.load(SHIPPED[1])


def _leo(found, num_classes, shots):
  """The LEO of `runfolder.find_checkpoint`'s `found`, built for N-way K-shot tasks."""
  inner = config.InnerModelConfig(**found.config_json["inner_model_config"])
  leo = model.build(inner, num_classes, shots, found.config_json["embedding_dim"], 0)
  tf.train.Checkpoint(model=leo).read(found.prefix).expect_partial()
  return leo


def _run(script, *flags, tmp_path):
  """`python script *flags` with TMPDIR=tmp_path, in this process."""
  return inprocess.run([os.path.join(ROOT, script), *flags], cwd=ROOT,
                       env={"TMPDIR": str(tmp_path)})


# ---- predict.py and the Python function. ----

def test_predict_prints_one_row_per_query_and_writes_the_csv_the_function_gives(tmp_path,
                                                                                predictor):
  support, queries = _support_and_queries(str(tmp_path))
  output = str(tmp_path / "predictions.csv")
  shipped = sorted(os.walk(runfolder.SHIPPED_MODELS))
  result = _run("predict.py", f"--support={support}", f"--queries={queries}",
                f"--output={output}", tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.walk(runfolder.SHIPPED_MODELS)) == shipped  # Nothing written there.
  table = result.stdout.strip().splitlines()
  assert table[0].split() == ["query", "predicted", "a", "b", "c"] and len(table) == 1 + 6
  with open(output, newline="") as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["query", "predicted", "a", "b", "c"] and len(rows) == 1 + 6
  # A folder's files, then its sub-folders'.
  names = ["b0.png", "b1.png", "c0.png", "c1.png", "more/a0.png", "more/a1.png"]
  assert [row[0] for row in rows[1:]] == [os.path.join(queries, name) for name in names]
  written = np.array([[float(p) for p in row[2:]] for row in rows[1:]])
  assert np.allclose(written.sum(axis=1), 1.0, atol=1e-5)
  assert [row[1] for row in rows[1:]] == [["a", "b", "c"][i] for i in written.argmax(axis=1)]
  for line, row in zip(table[1:], rows[1:]):  # The table shows the CSV's rows.
    assert line.split()[:2] == row[:2]

  # The Python function: the same model (K = 1: the shipped 1-shot), the same probabilities.
  loaded, read = prediction.load_for_support(support)
  assert loaded.name == predictor.name and read.class_names == ["a", "b", "c"]
  probabilities = predictor.predict(read.embeddings,
                                    prediction.read_queries(queries, predictor).embeddings)
  np.testing.assert_allclose(probabilities, written, atol=1e-6)
  # An image file and a comma-separated list give the same rows for the same images.
  listed = prediction.read_queries(",".join(row[0] for row in rows[1:3]), predictor)
  np.testing.assert_allclose(predictor.predict(read.embeddings, listed.embeddings),
                             written[:2], atol=1e-6)


def test_k_above_one_chooses_the_5shot_model_and_json_holds_the_same(tmp_path, predictor):
  support, queries = _support_and_queries(str(tmp_path), shots=(3, 3))
  loaded, read = prediction.load_for_support(support)
  assert loaded.name.startswith(SHIPPED[5]) and read.embeddings.shape == (2, 3, 640)
  found = prediction.read_queries(queries, loaded)
  probabilities = loaded.predict(read.embeddings, found.embeddings)
  path = str(tmp_path / "p.json")
  prediction.write(path, found, read.class_names, probabilities, loaded.name)
  with open(path) as f:
    written = json.load(f)
  assert written["classes"] == ["a", "b"] and len(written["predictions"]) == 4
  first = written["predictions"][0]
  assert first["query"] == found.names[0] and first["predicted"] == "ab"[probabilities[0].argmax()]
  assert first["probabilities"] == pytest.approx(dict(zip("ab", probabilities[0])))


def test_a_prediction_on_a_test_task_scores_the_evaluations_accuracy_of_that_task(predictor):
  found = runfolder.find_checkpoint(SHIPPED[1])
  data_config = config.DataConfig(**found.config_json["data_config"])
  num_classes, shots, queries, tasks = 5, 1, 41, 8
  evaluator = evaluation.Evaluator(evaluation.LEOScores(_leo(found, num_classes, shots)),
                                   data.DataProvider("test", data_config, seed=0),
                                   tasks, num_classes, shots, queries)
  _, accuracies = evaluator(tasks)
  # The same tasks: a provider of the same seed draws the same rows.
  rows = data.DataProvider("test", data_config, seed=0).sample_rows(
      evaluator.chunk, num_classes, shots + queries).numpy()
  embeddings = data.load_split(data_config, data.MetaSplit.TEST).embeddings  # Not normalised.
  for task in range(tasks):
    support, task_queries = rows[task, :, :shots], rows[task, :, shots:].reshape(-1)
    probabilities = predictor.predict(embeddings[support], embeddings[task_queries])
    labels = np.repeat(np.arange(num_classes), queries)
    correct = int(np.sum(probabilities.argmax(axis=1) == labels))
    assert correct == round(float(accuracies[task]) * num_classes * queries)


# ---- Bad input: one line each. ----

def _error(call) -> str:
  with pytest.raises(utils.LeoError) as raised:
    call()
  message = str(raised.value)
  assert "\n" not in message
  return message


def test_bad_inputs_are_one_line_each(tmp_path, predictor):
  support, queries = _support_and_queries(str(tmp_path / "ok"))
  read = lambda path: lambda: prediction.read_support(path, predictor)

  os.makedirs(tmp_path / "empty" / "a")
  fixtures.write_png(str(tmp_path / "empty" / "b" / "0.png"), _drawing(np.random.default_rng(0)))
  assert "a class folder with no image" in _error(read(str(tmp_path / "empty")))

  unequal, _ = _support_and_queries(str(tmp_path / "unequal"), shots=(2, 1, 2))
  assert "class 'b' has 1 examples and class 'a' 2" in _error(read(unequal))

  (tmp_path / "ok" / "queries" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
  assert "broken.png: a damaged PNG file" in _error(
      lambda: prediction.read_queries(queries, predictor))

  assert "but the backbone" in _error(lambda: predictor.embed(np.zeros([2, 84, 84, 3], np.uint8)))
  assert "takes uint8 [84, 84, 1]" in _error(
      lambda: predictor.embed(np.zeros([2, 32, 32, 1], np.uint8)))

  small = fixtures.make_dataset(str(tmp_path / "emb"), classes=(2, 2, 3), images_per_class=2,
                                flavour="py3")
  pickle_path = os.path.join(small, "tiny", "center", "test_embeddings.pkl")
  assert "takes 640-d embeddings" in _error(read(pickle_path))
  assert "takes 640-d embeddings" in _error(
      lambda: prediction.read_queries(pickle_path, predictor))
  # Images need the backbone that made a run's embeddings; these have no record of one.
  no_record = config.DataConfig(data_path=small, dataset_name="tiny")
  record = os.path.join(small, "tiny", "center", "PROVENANCE.json")
  assert _error(lambda: prediction.backbone_of(no_record)) == (
      f"{record}: damaged or unreadable (No such file or directory); it is the "
      "record of how the embeddings beside it were made; give embeddings files instead of images")

  (tmp_path / "run").mkdir()
  (tmp_path / "run" / runfolder.CONFIG_FILE).write_text("{}")
  assert "no checkpoint there" in _error(
      lambda: prediction.load_for_support(support, str(tmp_path / "run")))
  assert "expected a file name ending in .csv or .json" in _error(
      lambda: prediction.check_output("p.txt"))
  assert "LEO tells apart 2 or more" in _error(
      lambda: predictor.predict(np.ones([1, 1, 640]), np.ones([1, 640])))


def _arrays_the_api_refuses():
  """{case: (call of a predictor, the line expected, "the model" for its name)}: a good
  support set of 2 classes x 1 shot and 3 queries, with one thing wrong."""
  rng = np.random.default_rng(0)
  support, queries = rng.normal(size=[2, 1, 640]), rng.normal(size=[3, 640])
  nan_support, inf_queries, huge_value = support.copy(), queries.copy(), support.copy()
  nan_support[1, 0, 5], inf_queries[2, 0], huge_value[0, 0, 7] = np.nan, np.inf, -1e300
  unit = np.zeros([1, 640])
  unit[0, 0] = 1.0
  shape_of = "expected at least one of each axis of"
  norms = "expected norms whose squares in float32 lie in [1e-12, 3.403e+38]"
  return {
      "NaN support": (lambda p: p.predict(nan_support, queries),
                      "the support set: contains NaN or Inf in float32 (first in row [1, 0]), "
                      "expected finite float32 values"),
      "Inf queries": (lambda p: p.predict(support, inf_queries),
                      "the queries: contains NaN or Inf in float32 (first in row 2), expected "
                      "finite float32 values"),
      "float64 beyond float32": (lambda p: p.adapt(huge_value),
                                 "the support set: values up to 1e+300 in magnitude, expected at "
                                 "most 3.403e+38 (LEO computes in float32)"),
      "tiny queries": (lambda p: p.predict(support, unit * 1e-25),
                       "the queries: has rows of L2 norm 1e-25 to 1e-25 (first out of range: "
                       f"row 0), {norms}"),
      "huge support": (lambda p: p.adapt(np.stack([unit, unit]) * 1e25),
                       "the support set: has rows of L2 norm 1e+25 to 1e+25 (first out of "
                       f"range: row [0, 0]), {norms}"),
      "zero shots": (lambda p: p.adapt(np.zeros([2, 0, 640])),
                     f"the support set: embeddings of shape [2, 0, 640], {shape_of} "
                     "[classes, shots, dim]"),
      "no queries": (lambda p: p.predict(support, np.zeros([0, 640])),
                     f"the queries: embeddings of shape [0, 640], {shape_of} [queries, dim]"),
      "no images": (lambda p: p.embed(np.zeros([0, 84, 84, 1], np.uint8)),
                    "no images (shape [0, 84, 84, 1]): expected at least one"),
      "queries of rank 3": (lambda p: p.predict(support, queries[None]),
                            "the queries: embeddings of shape [1, 3, 640], but the model takes "
                            "640-d embeddings ([queries, dim])"),
      "strings": (lambda p: p.predict(support, np.array([["a"] * 640])),
                  "the queries: an array of dtype <U1, expected numbers [queries, dim]"),
      "ragged": (lambda p: p.adapt([[[1.0]], [[1.0, 2.0]]]),
                 "the support set: not an array (setting an array element with a sequence."),
  }


@pytest.mark.parametrize("case", sorted(_arrays_the_api_refuses()))
def test_the_api_refuses_arrays_it_cannot_classify_in_one_line(predictor, case):
  call, expected = _arrays_the_api_refuses()[case]
  with pytest.raises(prediction.PredictionError) as raised:
    call(predictor)
  assert str(raised.value).startswith(expected.replace("the model", predictor.name))
  assert "\n" not in str(raised.value)


def test_the_command_takes_images_as_users_give_them_and_says_what_it_changed(tmp_path):
  support, queries = _support_and_queries(str(tmp_path))
  (tmp_path / "support" / "a" / "notes.txt").write_text("drawn by hand")
  photo = np.zeros((150, 200, 3), np.uint8)  # A colour photograph's shape, 4:3.
  photo[..., 2] = 255
  tf.io.write_file(os.path.join(queries, "photo.jpg"), tf.io.encode_jpeg(photo))
  result = _run("predict.py", f"--support={support}", f"--queries={queries}",
                tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  assert [line.split()[0] for line in result.stdout.strip().splitlines()[1:]] == [
      os.path.join(queries, name) for name in
      ["b0.png", "b1.png", "c0.png", "c1.png", "photo.jpg", "more/a0.png", "more/a1.png"]]
  said = [line.split("] ", 1)[1] for line in result.stderr.strip().splitlines()
          if "images are not" in line or "skipped" in line or "colour" in line]
  assert said == [
      f"{support}: skipped 1 files that are not PNG, JPEG, GIF or BMP images: a/notes.txt",
      f"1 of 7 images are not 84x84 ({queries}/photo.jpg 200x150): squashed to 84x84 as "
      "miniImageNet's images were, the aspect ratio not kept (--image_fit=pad keeps it, "
      "padding with white)",
      f"1 colour images read in grayscale, as the backbone takes them ({queries}/photo.jpg)"]
  padded = _run("predict.py", f"--support={support}", f"--queries={queries}/photo.jpg",
                "--image_fit=pad", tmp_path=tmp_path)
  assert padded.returncode == 0 and "padded to a square with white" in padded.stderr

  mistyped = _run("predict.py", f"--support={support}s", f"--queries={queries}",
                  tmp_path=tmp_path)
  assert (mistyped.returncode, mistyped.stderr.strip().splitlines()[-1]) == (
      2, f"predict.py: error: {support}s: no such folder")


def test_the_command_reports_bad_input_in_one_line_and_exits_2(tmp_path):
  unequal, queries = _support_and_queries(str(tmp_path), shots=(2, 1))
  result = _run("predict.py", f"--support={unequal}", f"--queries={queries}", tmp_path=tmp_path)
  assert result.returncode == 2 and result.stdout == ""
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("predict.py: error: ")


# ---- The shipped models. ----

def _shipped_record(folder):
  results = os.path.join(folder, records.RESULTS_FOLDER)
  names = os.listdir(results)
  assert len(names) == 1
  return records.read_record(os.path.join(results, names[0]))


def test_the_shipped_models_are_small_and_their_records_say_their_lines():
  total = 0
  for shots, folder in SHIPPED.items():
    for path, _, files in os.walk(folder):
      total += sum(os.path.getsize(os.path.join(path, name)) for name in files)
    record = _shipped_record(folder)
    assert (record["num_tr_examples_per_class"], record["num_tasks"]) == (shots, 10000)
    accuracy, half_width = utils.mean_and_confidence_interval(record["task_accuracies"])
    assert record["summary"].startswith(f"Metatest accuracy: {accuracy:.2%} ± {half_width:.2%} ")
    assert runfolder.find_checkpoint(folder).step == record["trained"]["step"]
  assert total < SHIPPED_LIMIT_BYTES


@pytest.mark.slow  # The README's first command's 10,000 test tasks.
def test_evaluating_the_shipped_1shot_model_prints_its_records_line_and_writes_outside_leo(
    tmp_path):
  before = sorted(os.walk(runfolder.SHIPPED_MODELS))
  result = _run("runner.py", "--evaluation_mode", f"--checkpoint_path={SHIPPED[1]}",
                tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr[-3000:]
  shipped = _shipped_record(SHIPPED[1])
  assert result.stdout.strip() == shipped["summary"]
  assert sorted(os.walk(runfolder.SHIPPED_MODELS)) == before
  written = os.path.join(tmp_path, "leo-results", "icons_1shot", records.RESULTS_FOLDER)
  [name] = os.listdir(written)
  assert written in result.stderr  # The log names where the record went.
  record = records.read_record(os.path.join(written, name))
  assert record["task_accuracies"] == shipped["task_accuracies"]


def test_the_shipped_5shot_model_scores_its_records_first_tasks():
  found = runfolder.find_checkpoint(SHIPPED[5])
  shipped = _shipped_record(SHIPPED[5])
  provider = data.DataProvider("test", config.DataConfig(**found.config_json["data_config"]),
                               seed=0)
  evaluator = evaluation.Evaluator(evaluation.LEOScores(_leo(found, 5, 5)), provider,
                                   shipped["config"]["outer_model_config"]["metatest_batch_size"],
                                   5, 5, shipped["queries_per_class"])
  _, accuracies = evaluator(200)  # The first 200 of the record's 10,000 tasks.
  np.testing.assert_allclose(accuracies, shipped["task_accuracies"][:200], atol=1e-6)
