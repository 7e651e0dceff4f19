# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""A trained LEO as a SavedModel: TensorFlow alone adapts it to a support set and classifies.

    exporting.export("datasets/models/icons_1shot", "exports/icons_1shot")  # tools/export.py
    leo = tf.saved_model.load("exports/icons_1shot")                     # anywhere, no leo
    leo.from_images(support=images, queries=query_images)["predicted"]    # [queries]

Two signatures, for any number of classes N >= 2, shots K >= 1 and queries Q:

    from_images      support uint8 [N, K, H, W, C], queries uint8 [Q, H, W, C]
    from_embeddings  support float32 [N, K, D], queries float32 [Q, D]
    both return      probabilities float32 [Q, N], predicted int32 [Q] (a class's index n)

H, W, C are the input of the backbone that made the run's embeddings (their PROVENANCE.json
names it: the one `prediction.Predictor.embed` runs, standardiser included), D the model's
embedding size. Row n of the support set is class n. The computation is prediction.py's, traced
once with N and K unknown: `adapted_weights` (LEO's evaluation-mode adaptation: latent steps and
fine-tuning, no sampling, no dropout) and `class_probabilities`. A wrong rank or size (checked in
the graph too: a signature called with tensors checks nothing itself), a support set of fewer
than 2 classes or of no shots, and embeddings that are not finite fail with TensorFlow's error
naming the input.

Layout of an export:

    <output>/saved_model.pb, variables/, fingerprint.pb     TensorFlow's
    <output>/assets.extra/EXPORT.json     what this is: the checkpoint, its step and validation
                                          accuracy, the signatures, leo's versions
                         config.json      the configuration the model was trained with
                         PROVENANCE.json  how its embeddings were made, as the run's data has it
                         records.json     the run's result records, without per-task accuracies

The export is written into `<output>.leo-tmp-<pid>` beside the output and renamed to `<output>`
once complete and on disk; an earlier export at `<output>` is replaced, anything else there is
refused. An exception removes the temporary folder; a killed export leaves at most that
folder (leo's temporary marker), never a part of one under the output's name (killed between
the two renames of a replacement, the earlier export waits at `<output>.replaced.leo-tmp-<pid>`).
"""

import json
import os
from typing import Any, Dict

import utils

tf = utils.import_tensorflow()
# pylint: disable=g-import-not-at-top,wrong-import-position
import backbone as backbone_lib
import config as config_lib
import data
import prediction
import records
import runfolder
import storage
# pylint: enable=g-import-not-at-top,wrong-import-position

EXTRA_FOLDER = "assets.extra"  # TensorFlow's place for files that travel with a SavedModel.
MANIFEST_FILE = "EXPORT.json"
MANIFEST_KIND = "leo-export"
MANIFEST_VERSION = 1
RECORDS_FILE = "records.json"
# What tf.saved_model.save writes, and the extra files: an export's whole contents.
EXPORT_NAMES = {"saved_model.pb", "variables", "assets", "fingerprint.pb", EXTRA_FOLDER}
IMAGES, EMBEDDINGS = "from_images", "from_embeddings"
# The signatures' free axes, by input, and their outputs: what EXPORT.json tells a reader.
FREE_AXES = {"support": ["classes", "shots"], "queries": ["queries"]}
OUTPUTS = {"probabilities": "float32 [queries, classes]", "predicted": "int32 [queries]"}


class ExportError(utils.LeoError):
  """A model or an output folder that cannot be exported to: one line naming it."""


class ExportedLEO(tf.Module):
  """LEO adapted per call in a graph of its own: `from_embeddings` and, given the backbone,
  `from_images` (see the module docstring)."""

  def __init__(self, predictor: prediction.Predictor, with_images: bool):
    """
    Args:
      predictor: the trained LEO (and, for `from_images`, its backbone).
      with_images: whether to make `from_images`.
    """
    super().__init__(name="exported_leo")
    self.leo = predictor.leo  # Tracked: its variables are saved.
    self._transform = predictor.transform  # Its statistics: constants of the graphs.
    dim = predictor.embedding_dim
    self.from_embeddings = tf.function(
        self._from_embeddings, autograph=False, input_signature=[
            tf.TensorSpec([None, None, dim], tf.float32, name="support"),
            tf.TensorSpec([None, dim], tf.float32, name="queries")])
    if with_images:
      self.backbone, image_shape, self._standardise = predictor.loaded_backbone()
      backbone_dim = self.embed(tf.zeros([1, *image_shape], tf.uint8)).shape[-1]
      if backbone_dim != dim:
        raise ExportError(f"{predictor.backbone_path}: makes {backbone_dim}-d embeddings, but "
                          f"{predictor.name} takes {dim}-d ones")
      self.from_images = tf.function(
          self._from_images, autograph=False, input_signature=[
              tf.TensorSpec([None, None, *image_shape], tf.uint8, name="support"),
              tf.TensorSpec([None, *image_shape], tf.uint8, name="queries")])

  def _from_embeddings(self, support, queries):
    support, queries = _checked(support, queries)
    support = tf.debugging.assert_all_finite(support, "support: embeddings not finite")
    queries = tf.debugging.assert_all_finite(queries, "queries: embeddings not finite")
    return self._classify(support, queries)

  def _from_images(self, support, queries):
    support, queries = _checked(support, queries)
    classes, shots = tf.unstack(tf.shape(support)[:2])
    images = tf.reshape(support, tf.concat([[-1], tf.shape(support)[2:]], axis=0))
    embeddings = tf.reshape(self.embed(images), [classes, shots, self.leo.embedding_dim])
    return self._classify(embeddings, self.embed(queries))

  def embed(self, images):
    """Embeddings float32 [n, D] of images uint8 [n, H, W, C], as `Predictor.embed`'s."""
    return self.backbone(self._standardise(images), is_training=False)

  def _classify(self, support, queries):
    """The outputs for a support set [N, K, D] and queries [Q, D]."""
    probabilities = prediction.class_probabilities(
        prediction.adapted_weights(self.leo, support, self._transform), queries,
        self._transform)
    return {"probabilities": probabilities,
            "predicted": tf.argmax(probabilities, axis=1, output_type=tf.int32)}


def _checked(support: tf.Tensor, queries: tf.Tensor):
  """The inputs, checked when the graph runs: their shapes against those their signature
  declares (a signature called with tensors rather than arrays, or by a server, passes them on
  unchecked, and the graph traced for those shapes would fail deep inside or misread them), and
  the support set's N >= 2 and K >= 1 (no shots would average no examples into NaN weights)."""
  support = tf.ensure_shape(support, support.shape, name="support")
  queries = tf.ensure_shape(queries, queries.shape, name="queries")
  classes, shots = tf.unstack(tf.shape(support)[:2])
  with tf.control_dependencies([
      tf.debugging.assert_greater_equal(
          classes, prediction.MIN_CLASSES,
          message=f"support: fewer than {prediction.MIN_CLASSES} classes (axis 0); LEO tells "
                  f"apart {prediction.MIN_CLASSES} or more"),
      tf.debugging.assert_positive(shots, message="support: no shots (axis 1 is empty)")]):
    return tf.identity(support), tf.identity(queries)


# ---- Writing an export. ----

def export(checkpoint_path: str, output: str, with_images: bool = True) -> Dict[str, Any]:
  """Writes the SavedModel of the model `checkpoint_path` names to the folder `output`.

  Args:
    checkpoint_path: a run folder (its best checkpoint: a run without one is refused), its
      best_checkpoint folder, or a checkpoint prefix.
    output: the export's folder: new, or an earlier export, which is replaced.
    with_images: whether to export `from_images` (the run's embeddings need a backbone).

  Returns:
    The export's manifest (its EXPORT.json): the checkpoint, its step, the signatures, ...
  """
  check_output(output)
  found = runfolder.find_checkpoint(checkpoint_path)
  if found.valid_accuracy is None and not storage.exists(checkpoint_path + ".index"):
    raise ExportError(f"--checkpoint_path={checkpoint_path}: no best checkpoint (no validation "
                      "kept one yet); to export another, name its prefix, e.g. "
                      f"--checkpoint_path={found.prefix}")
  predictor = prediction.Predictor.load(found.prefix)
  if with_images:
    try:
      predictor.loaded_backbone()
    except prediction.PredictionError as e:
      raise ExportError(f"{e}; or export from_embeddings alone (with_images=False, "
                        "--nofrom_images)") from None
  module = ExportedLEO(predictor, with_images)
  manifest = _manifest(found, module, predictor)
  _write(module, output, _extra_files(found, manifest))
  return manifest


def check_output(output: str):
  """Refuses an `output` that exists and is not an export of leo's (or is a link)."""
  if storage.is_link(output):
    raise ExportError(f"--output={output}: a symbolic link; leo writes no folder through one")
  if storage.exists(output) and not is_export(output):
    raise ExportError(f"--output={output}: exists and is not an export of leo's (no "
                      f"{EXTRA_FOLDER}/{MANIFEST_FILE}, or other files beside it); choose a "
                      "new folder")


def is_export(folder: str) -> bool:
  """Whether `folder` holds an export of leo's and nothing else."""
  if not storage.isdir(folder) or not set(storage.listdir(folder)) <= EXPORT_NAMES:
    return False
  try:
    manifest = storage.read_json(storage.join(folder, EXTRA_FOLDER, MANIFEST_FILE),
                                 "an export's manifest")
  except storage.StorageError:
    return False
  return manifest.get("kind") == MANIFEST_KIND


def _signatures(module: ExportedLEO):
  return {name: getattr(module, name) for name in (IMAGES, EMBEDDINGS) if hasattr(module, name)}


def _described(spec: tf.TensorSpec) -> str:
  """An input as `uint8 [classes, shots, 84, 84, 1]`: its free axes named."""
  free = FREE_AXES[spec.name]
  return f"{spec.dtype.name} [{', '.join(map(str, free + spec.shape.as_list()[len(free):]))}]"


def _manifest(found: runfolder.FoundCheckpoint, module: ExportedLEO,
              predictor: prediction.Predictor) -> Dict[str, Any]:
  """What EXPORT.json says of an export."""
  signatures = {name: {"inputs": {spec.name: _described(spec) for spec in
                                  function.input_signature}, "outputs": OUTPUTS}
                for name, function in _signatures(module).items()}
  checkpoint = os.path.abspath(found.prefix) if storage.is_local(found.prefix) else found.prefix
  return {"kind": MANIFEST_KIND, "version": MANIFEST_VERSION, "exported": runfolder.now(),
          "checkpoint": checkpoint, "step": found.step, "valid_accuracy": found.valid_accuracy,
          "signatures": signatures,
          "backbone": predictor.backbone_path if IMAGES in signatures else None,
          "versions": runfolder.versions()}


def _extra_files(found: runfolder.FoundCheckpoint, manifest) -> Dict[str, bytes]:
  """The files of assets.extra/ by name; see the module docstring."""
  as_json = lambda contents: (json.dumps(contents, indent=1, sort_keys=True) + "\n").encode()
  files = {MANIFEST_FILE: as_json(manifest), "config.json": as_json(found.config_json)}
  embeddings = data.split_path(
      config_lib.DataConfig(**found.config_json["data_config"]), data.MetaSplit.TEST)
  provenance = storage.join(os.path.dirname(embeddings), backbone_lib.PROVENANCE_FILE)
  if storage.exists(provenance):
    files[backbone_lib.PROVENANCE_FILE] = storage.read_bytes(provenance)
  results = storage.join(found.folder, records.RESULTS_FOLDER)
  summaries = [{key: value for key, value in records.read_record(storage.join(results, name))
                .items() if key != "task_accuracies"}
               for name in sorted(storage.listdir(results)) if name.endswith(".json")]
  files[RECORDS_FILE] = as_json(summaries)
  return files


def _write(module: ExportedLEO, output: str, extra_files):
  """Saves `module` and `extra_files` into a temporary folder beside `output`, makes them
  durable, then renames the folder to `output` (an earlier export there goes aside first)."""
  temporary = storage.temporary_name(output)
  storage.remove(temporary)  # Left by a killed export of the same pid.
  try:
    tf.saved_model.save(module, temporary, signatures=_signatures(module))
    storage.makedirs(storage.join(temporary, EXTRA_FOLDER))
    for name, contents in extra_files.items():
      with tf.io.gfile.GFile(storage.join(temporary, EXTRA_FOLDER, name), "wb") as f:
        f.write(contents)
    storage.sync_files([storage.join(folder, name) for folder, _, names in
                        tf.io.gfile.walk(temporary) for name in names])
    if storage.exists(output):
      earlier = storage.temporary_name(output + ".replaced")
      storage.rename(output, earlier)
      storage.rename(temporary, output)
      storage.remove(earlier)
    else:
      storage.rename(temporary, output)
    storage.sync_files([output])  # The folder, and its name in its parent.
  except (OSError, tf.errors.OpError) as e:
    raise ExportError(f"--output={output}: writing failed ({utils.first_line(e)})") from None
  finally:
    storage.remove(temporary)
