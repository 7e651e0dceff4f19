# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of exporting a trained LEO as a SavedModel: exporting.py and tools/export.py.

The export of the shipped 1-shot model is made once for the module; the support sets are
bundled test icons, which the model never trained on.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import exporting
import inprocess
import prediction
import runfolder
import storage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBABILITY_TOLERANCE = 1e-5
# Every module of the checkout: a process that proves it needs none of them has none.
LEO_MODULES = sorted({name[:-3] for name in os.listdir(ROOT) if name.endswith(".py")}
                     | {"tools", "tests"})


def _icons(num_classes, shots, queries_per_class):
  """Support images uint8 [N, K, 84, 84, 1] and queries [N * V, 84, 84, 1] of the first
  `num_classes` test classes of the bundled icons, and the queries' classes [N * V]."""
  with np.load(os.path.join(ROOT, "datasets", "icons", "icons.npz")) as icons:
    images, labels, names = icons["images"][..., None], icons["labels"], list(icons["class_names"])
  with open(os.path.join(ROOT, "datasets", "icons", "split.json")) as f:
    test_classes = json.load(f)["test"][:num_classes]
  rows = [np.flatnonzero(labels == names.index(name))[:shots + queries_per_class]
          for name in test_classes]
  support = np.stack([images[r[:shots]] for r in rows])
  queries = np.concatenate([images[r[shots:]] for r in rows])
  return support, queries, np.repeat(np.arange(num_classes), queries_per_class)


# (N, K, V): the shipped model's 5-way 1-shot and another shape of the same export.
SHAPES = [(5, 1, 4), (3, 2, 3)]


@pytest.fixture(scope="module")
def predictor():
  return prediction.Predictor.load(prediction.SHIPPED_1SHOT)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """The folder of the shipped 1-shot model's export."""
  output = str(tmp_path_factory.mktemp("export") / "icons_1shot")
  exporting.export(prediction.SHIPPED_1SHOT, output)
  return output


@pytest.fixture(scope="module")
def expected(predictor):
  """Per shape: the inputs of both signatures and what Predictor gives for them."""
  cases = []
  for num_classes, shots, queries_per_class in SHAPES:
    support, queries, labels = _icons(num_classes, shots, queries_per_class)
    support_embeddings = predictor.embed(support.reshape(-1, 84, 84, 1)).reshape(
        num_classes, shots, -1)
    query_embeddings = predictor.embed(queries)
    cases.append({
        "images": {"support": support, "queries": queries},
        "embeddings": {"support": support_embeddings, "queries": query_embeddings},
        "probabilities": predictor.predict(support_embeddings, query_embeddings),
        "labels": labels})
  return cases


def _check_outputs(outputs, case):
  probabilities, predicted = np.asarray(outputs["probabilities"]), np.asarray(outputs["predicted"])
  assert probabilities.dtype == np.float32 and predicted.dtype == np.int32
  np.testing.assert_allclose(probabilities, case["probabilities"], rtol=0,
                             atol=PROBABILITY_TOLERANCE)
  np.testing.assert_array_equal(predicted, case["probabilities"].argmax(axis=1))


# ---- Same numbers as prediction.Predictor. ----

def test_both_signatures_give_the_predictors_numbers_for_any_classes_and_shots(exported,
                                                                                 expected):
  loaded = tf.saved_model.load(exported)
  for case in expected:
    for signature, inputs in (("from_images", case["images"]),
                              ("from_embeddings", case["embeddings"])):
      outputs = loaded.signatures[signature](**{name: tf.constant(value)
                                                for name, value in inputs.items()})
      _check_outputs(outputs, case)
  # Numbers worth comparing: far from uniform, twice chance's 20% on these unseen icons.
  first = expected[0]
  assert np.mean(first["probabilities"].argmax(axis=1) == first["labels"]) >= 0.4


# A process with TensorFlow alone: `-I` leaves the checkout (and PYTHONPATH) off sys.path.
_WITHOUT_LEO = textwrap.dedent("""
    import importlib.util, json, sys
    import numpy as np
    import tensorflow as tf
    leo_modules, export, inputs = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
    assert not [m for m in leo_modules if importlib.util.find_spec(m)], "leo is importable"
    loaded = tf.saved_model.load(export)
    for case in json.loads(open(inputs).read()):
      arrays = {name: np.load(path) for name, path in case["inputs"].items()}
      signature = loaded.signatures[case["signature"]]
      outputs = signature(**{name: tf.constant(value) for name, value in arrays.items()})
      for name, value in outputs.items():
        np.save(case["outputs"][name], value.numpy())
    assert not set(leo_modules) & set(sys.modules), "a leo module was imported"
    """)


def _save_inputs(folder, expected):
  """The cases' inputs as .npy files: [{"signature", "inputs": {name: path}, "outputs":
  {name: path}}] per shape and signature, with the expected case."""
  cases = []
  for index, case in enumerate(expected):
    for signature, kind in (("from_images", "images"), ("from_embeddings", "embeddings")):
      prefix = os.path.join(folder, f"{index}-{kind}")
      inputs = {name: f"{prefix}-{name}.npy" for name in case[kind]}
      for name, path in inputs.items():
        np.save(path, case[kind][name])
      outputs = {name: f"{prefix}-out-{name}.npy" for name in ("probabilities", "predicted")}
      cases.append(({"signature": signature, "inputs": inputs, "outputs": outputs}, case))
  return cases


@pytest.mark.slow
def test_a_python_without_leo_loads_the_export_and_gives_the_predictors_numbers(
    exported, expected, tmp_path):
  cases = _save_inputs(str(tmp_path), expected)
  (tmp_path / "cases.json").write_text(json.dumps([spec for spec, _ in cases]))
  env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
  result = subprocess.run(
      [sys.executable, "-I", "-c", _WITHOUT_LEO, json.dumps(LEO_MODULES), exported,
       str(tmp_path / "cases.json")], cwd=tmp_path, env=env, capture_output=True, text=True,
      check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  for spec, case in cases:
    _check_outputs({name: np.load(path) for name, path in spec["outputs"].items()}, case)


@pytest.mark.slow
def test_saved_model_cli_runs_both_signatures_on_npy_files(exported, expected, tmp_path):
  cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  for spec, case in _save_inputs(str(tmp_path), expected[:1]):
    outdir = tmp_path / spec["signature"]
    inputs = ";".join(f"{name}={path}" for name, path in spec["inputs"].items())
    result = subprocess.run(
        [cli, "run", "--dir", exported, "--tag_set", "serve", "--signature_def",
         spec["signature"], "--inputs", inputs, "--outdir", str(outdir)],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    _check_outputs({name: np.load(outdir / f"{name}.npy") for name in spec["outputs"]}, case)
  shown = subprocess.run([cli, "show", "--dir", exported, "--all"], capture_output=True,
                         text=True, check=True).stdout
  for line in ("signature_def['from_images']", "signature_def['from_embeddings']",
               "inputs['support']", "inputs['queries']", "outputs['probabilities']",
               "outputs['predicted']", "shape: (-1, -1, 84, 84, 1)", "shape: (-1, -1, 640)"):
    assert line in shown


# ---- Bad input to the signatures: TensorFlow's error, naming the input. ----

def _images(*shape):
  return np.zeros(shape, np.uint8)


def _embeddings(*shape, value=1.0):
  return np.full(shape, value, np.float32)


BAD_INPUTS = [  # (signature, inputs, the error's words)
    ("from_images", {"support": _images(5, 84, 84, 1), "queries": _images(3, 84, 84, 1)},
     "Shape of tensor support [5,84,84,1] is not compatible with expected shape "
     "[?,?,84,84,1]"),  # No shots axis.
    ("from_images", {"support": _images(5, 1, 32, 32, 1), "queries": _images(3, 84, 84, 1)},
     "Shape of tensor support [5,1,32,32,1]"),
    ("from_images", {"support": _images(5, 1, 84, 84, 1), "queries": _images(3, 84, 84, 3)},
     "Shape of tensor queries [3,84,84,3]"),  # RGB where the backbone takes grayscale.
    ("from_images", {"support": _images(5, 0, 84, 84, 1), "queries": _images(3, 84, 84, 1)},
     "support: no shots"),
    ("from_images", {"support": _images(1, 2, 84, 84, 1), "queries": _images(3, 84, 84, 1)},
     "support: fewer than 2 classes"),
    ("from_embeddings", {"support": _embeddings(5, 0, 640), "queries": _embeddings(3, 640)},
     "support: no shots"),
    ("from_embeddings", {"support": _embeddings(1, 3, 640), "queries": _embeddings(3, 640)},
     "support: fewer than 2 classes"),
    ("from_embeddings", {"support": _embeddings(5, 1, 64), "queries": _embeddings(3, 640)},
     "Shape of tensor support [5,1,64] is not compatible with expected shape [?,?,640]"),
    ("from_embeddings", {"support": _embeddings(5, 1, 640), "queries": _embeddings(640)},
     "Shape of tensor queries [640]"),
    ("from_embeddings", {"support": _embeddings(2, 1, 640, value=np.nan),
                         "queries": _embeddings(3, 640)}, "support: embeddings not finite"),
    ("from_embeddings", {"support": _embeddings(2, 1, 640),
                         "queries": _embeddings(3, 640, value=np.inf)},
     "queries: embeddings not finite"),
]


@pytest.mark.parametrize("signature,inputs,words", BAD_INPUTS,
                         ids=[f"{s}-{i}" for i, (s, _, _) in enumerate(BAD_INPUTS)])
def test_bad_input_fails_with_tensorflows_error_naming_the_input(exported, signature, inputs,
                                                                 words):
  # Called with tensors, a signature checks nothing itself: the graph's own checks answer.
  loaded = tf.saved_model.load(exported)
  with pytest.raises(tf.errors.InvalidArgumentError) as raised:
    loaded.signatures[signature](**{name: tf.constant(value) for name, value in inputs.items()})
  assert words in str(raised.value)


# ---- The command, the output folder and the checkpoint. ----

def _export(*flags, tmp_path):
  return inprocess.run(["-m", "tools.export", *map(str, flags)], cwd=ROOT,
                       env={"TMPDIR": str(tmp_path)})


def _one_line_error(result) -> str:
  assert result.returncode == 2 and result.stdout == ""
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("tools.export: error: "), result.stderr
  return lines[0]


def test_an_export_says_what_it_holds_in_assets_extra(exported):
  extra = os.path.join(exported, exporting.EXTRA_FOLDER)
  assert sorted(os.listdir(exported)) == sorted(exporting.EXPORT_NAMES)
  with open(os.path.join(extra, exporting.MANIFEST_FILE)) as f:
    manifest = json.load(f)
  found = runfolder.find_checkpoint(prediction.SHIPPED_1SHOT)
  assert manifest["kind"] == exporting.MANIFEST_KIND and manifest["step"] == found.step == 5500
  assert manifest["checkpoint"] == found.prefix
  assert manifest["signatures"]["from_images"]["inputs"] == {
      "support": "uint8 [classes, shots, 84, 84, 1]", "queries": "uint8 [queries, 84, 84, 1]"}
  assert manifest["signatures"]["from_embeddings"]["inputs"] == {
      "support": "float32 [classes, shots, 640]", "queries": "float32 [queries, 640]"}
  with open(os.path.join(extra, "config.json")) as f:
    assert json.load(f) == found.config_json
  provenance = os.path.join(ROOT, "datasets", "embeddings", "icons", "center",
                            "PROVENANCE.json")
  with open(os.path.join(extra, "PROVENANCE.json"), "rb") as f, open(provenance, "rb") as g:
    assert f.read() == g.read()
  with open(os.path.join(extra, exporting.RECORDS_FILE)) as f:
    summaries = json.load(f)
  assert [s["summary"] for s in summaries] == [
      "Metatest accuracy: 81.58% ± 0.20% (95% CI over 10000 tasks; 5-way 1-shot; 41 "
      "queries/class; meta-trained on train)"]
  assert "task_accuracies" not in summaries[0]


def test_the_command_replaces_an_earlier_export_and_refuses_any_other_folder(exported,
                                                                              tmp_path):
  earlier = tmp_path / "earlier"
  shutil.copytree(exported, earlier)
  (earlier / "variables" / "stale").write_text("from the earlier export")
  result = _export("--checkpoint_path=datasets/models/icons_1shot", f"--output={earlier}",
                   "--nofrom_images", tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr
  assert "Exported" in result.stderr and "signatures from_embeddings" in result.stderr
  assert not (earlier / "variables" / "stale").exists()
  assert list(tf.saved_model.load(str(earlier)).signatures) == ["from_embeddings"]
  assert sorted(os.listdir(tmp_path)) == ["earlier"]  # No temporary folder left.

  mine = tmp_path / "mine"
  mine.mkdir()
  (mine / "notes.txt").write_text("keep me")
  line = _one_line_error(_export("--checkpoint_path=datasets/models/icons_1shot",
                                 f"--output={mine}", tmp_path=tmp_path))
  assert "exists and is not an export of leo's" in line
  assert os.listdir(mine) == ["notes.txt"]
  shutil.copytree(exported, mine / "inside")  # An export beside the user's file: still refused.
  os.rename(mine / "inside" / "assets.extra", mine / "assets.extra")
  assert not exporting.is_export(str(mine))


def test_a_run_without_a_best_checkpoint_is_refused_and_its_prefix_exported(tmp_path):
  run = tmp_path / "run"
  shutil.copytree(prediction.SHIPPED_1SHOT, run)
  best = run / runfolder.BEST_FOLDER
  for name in os.listdir(best):
    if name.startswith(runfolder.CHECKPOINT_NAME) or name == runfolder.STATE_FILE:
      os.rename(best / name, run / name)
  shutil.rmtree(best)
  line = _one_line_error(_export(f"--checkpoint_path={run}", f"--output={tmp_path / 'e'}",
                                 tmp_path=tmp_path))
  assert "no best checkpoint" in line and f"--checkpoint_path={run}/model.ckpt-5500" in line
  assert not (tmp_path / "e").exists()
  manifest = exporting.export(str(run / "model.ckpt-5500"), str(tmp_path / "e"),
                              with_images=False)
  assert manifest["step"] == 5500 and manifest["valid_accuracy"] is None


def test_an_interrupted_export_leaves_nothing_under_the_output_name(exported, tmp_path,
                                                                    monkeypatch):
  def interrupted(paths):
    raise KeyboardInterrupt
  monkeypatch.setattr(storage, "sync_files", interrupted)  # Everything written, not yet renamed.
  for output in (tmp_path / "new", tmp_path / "earlier"):
    if output.name == "earlier":
      shutil.copytree(exported, output)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(KeyboardInterrupt):
      exporting.export(prediction.SHIPPED_1SHOT, str(output), with_images=False)
    assert sorted(os.listdir(tmp_path)) == before  # The temporary folder is gone too.
  # The earlier export is whole: both of its signatures still load.
  assert sorted(tf.saved_model.load(str(tmp_path / "earlier")).signatures) == [
      "from_embeddings", "from_images"]


def test_the_help_lists_the_flags_and_usage_errors_are_one_line(tmp_path):
  # A process of its own (half a second: --help imports no TensorFlow): absl defines --help
  # once per process, and an earlier command of this one may have taken it.
  result = subprocess.run([sys.executable, "-m", "tools.export", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
  for flag in ("--checkpoint_path", "--output", "--[no]from_images"):
    assert flag in result.stdout
  assert "from_embeddings" in result.stdout
  line = _one_line_error(_export("--checkpoint_path=/nonexistent/run",
                                 f"--output={tmp_path / 'e'}", tmp_path=tmp_path))
  assert "no checkpoint there" in line
