# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""A trained LEO, used: adapts to a few labelled images and tells what new images are.

    predictor = prediction.Predictor.load("datasets/models/icons_1shot")  # once
    support = predictor.embed(images)     # uint8 [N * K, 84, 84, 1] -> [N * K, 640], if images
    probabilities = predictor.predict(support.reshape(N, K, -1), queries)  # [queries, N]

Adaptation is evaluation mode's (`LEO.adapt`: no dropout, the latent codes' means instead of
samples) and the embeddings are L2-normalised as the episodes hold them, so the classes
predicted for a test task's queries are those `evaluation.LEOScores` scored. The probabilities
are the softmax of the adapted classifier's logits. LEO's variables do not depend on N or K:
one model serves any support set, compiled once per (N, K).

Images are read by `images.py` and embedded by `backbone.py`, through the backbone that made
the run's embeddings (their PROVENANCE.json names it): as `tools/data/embed_images.py` embeds
a user's images. `read_support` and `read_queries` turn the command's inputs (folders, image
files, embeddings files) into these arrays; `write` writes the predictions as CSV or JSON.
"""

import csv
import io
import json
import os
from typing import List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

import utils

tf = utils.import_tensorflow()
# pylint: disable=g-import-not-at-top,wrong-import-position
import backbone as backbone_lib
import config as config_lib
import data
import images as images_lib
import model
import runfolder
import storage
import trained
# pylint: enable=g-import-not-at-top,wrong-import-position

# The trained icons models shipped with leo (datasets/README.md), chosen by the support's K.
SHIPPED_1SHOT = os.path.join(runfolder.SHIPPED_MODELS, "icons_1shot")
SHIPPED_5SHOT = os.path.join(runfolder.SHIPPED_MODELS, "icons_5shot")
MIN_CLASSES = 2  # LEO tells classes apart: one class leaves nothing to tell.
EMBEDDINGS_SUFFIXES = (".pkl", ".pkl" + data.GZIP_SUFFIX)
OUTPUT_FORMATS = (".csv", ".json")


class PredictionError(utils.LeoError):
  """An input that cannot be classified: one line naming it and what was expected."""


def default_model(shots: int) -> str:
  """The shipped model for a support set of K = `shots`: 1-shot for K = 1, else 5-shot."""
  return SHIPPED_1SHOT if shots == 1 else SHIPPED_5SHOT


def backbone_of(data_config: config_lib.DataConfig, model_digest: Optional[str] = None) -> str:
  """The backbone file that made a run's embeddings, as their PROVENANCE.json names it (and,
  if given, the run's configuration: `model_digest`)."""
  try:
    return backbone_lib.embeddings_backbone(data.embeddings_folder(data_config), model_digest)
  except utils.LeoError as e:
    raise PredictionError(f"{e}; give embeddings files instead of images") from None


def _inputs(embeddings: tf.Tensor, transform) -> tf.Tensor:
  """Embeddings as the episodes hold them: transformed (the run's `transform`, if any), then
  L2-normalised."""
  if transform is not None:
    embeddings = transform(embeddings)
  return tf.math.l2_normalize(embeddings, axis=-1)


def adapted_weights(leo: model.LEO, support: tf.Tensor, transform=None) -> tf.Tensor:
  """The classifier LEO adapts to a support set float32 [N, K, D] (row n: class n; not
  normalised), in evaluation mode: its weights [N, D]. Traced with N and K unknown, it is one
  graph for any support set. `transform`: the run's embedding transform, or None."""
  classes, shots = tf.unstack(tf.shape(support)[:2])
  labels = tf.broadcast_to(tf.range(classes)[:, None, None], [classes, shots, 1])
  normalised = _inputs(support, transform)
  return leo.adapt(data.ProblemInstance(normalised[None], labels[None], None, None, None,
                                        None))[0][0]


def class_probabilities(weights: tf.Tensor, queries: tf.Tensor, transform=None) -> tf.Tensor:
  """Probabilities [queries, N] of queries float32 [queries, D] (not normalised) under the
  adapted classifier's weights [N, D]: the softmax of the logits x · weights[n], x the
  query transformed (the run's `transform`, if any) and L2-normalised."""
  normalised = _inputs(queries, transform)
  return tf.nn.softmax(tf.einsum("qd,nd->qn", normalised, weights))


class Predictor:
  """A trained LEO that adapts to support sets and classifies queries."""

  def __init__(self, leo: model.LEO, backbone_path: Optional[str] = None,
               data_config: Optional[config_lib.DataConfig] = None, name: str = "the model",
               backbone_digest: Optional[str] = None, transform=None):
    """
    Args:
      leo: a LEO with its trained variables (built for any task shape).
      backbone_path: the backbone that made its embeddings, for `embed`; default: the one
        `data_config`'s PROVENANCE.json names (looked up by the first `embed`).
      data_config: the embeddings the model was trained on.
      name: how errors name the model (its checkpoint).
      backbone_digest: the sha256 of that backbone, as the model's configuration keeps it
        (runfolder.BACKBONE_DIGEST): the PROVENANCE.json must name the same.
      transform: the run's embedding transform (`transforms.saved`), or None.
    """
    self.embedding_dim = int(leo.embedding_dim)
    self.backbone_path, self.name = backbone_path, name
    self._data_config, self._backbone_digest = data_config, backbone_digest
    self.leo, self.transform = leo, transform
    self._adapters = {}  # (N, K) -> `adapted_weights` compiled for that shape.
    self._backbone = None  # `loaded_backbone()`'s, loaded by the first use.
    self._embedder = None  # Compiled by the first `embed`.

  @classmethod
  def load(cls, checkpoint_path: str) -> "Predictor":
    """The model `checkpoint_path` names, as an evaluation finds it: a run folder (its best
    checkpoint), a best_checkpoint folder or a checkpoint prefix."""
    loaded = trained.load(checkpoint_path)
    return cls(loaded.leo, data_config=loaded.data_config, name=loaded.checkpoint.prefix,
               backbone_digest=loaded.checkpoint.config_json.get(runfolder.BACKBONE_DIGEST),
               transform=loaded.transform)

  # ---- Embeddings and the model. ----

  def loaded_backbone(self):
    """(network, input shape [height, width, channels], standardiser) of the backbone, loaded
    once: an image's embedding is network(standardiser(images), is_training=False)."""
    if self._backbone is None:
      if self.backbone_path is None:
        if self._data_config is None:
          raise PredictionError(f"{self.name}: no backbone to embed images with; give "
                                "embeddings instead")
        self.backbone_path = backbone_of(self._data_config, self._backbone_digest)
      self._backbone = backbone_lib.load_backbone(self.backbone_path)
    return self._backbone

  @property
  def image_shape(self) -> Tuple[int, ...]:
    """[height, width, channels] of the images `embed` takes."""
    return self.loaded_backbone()[1]

  def embed(self, images: np.ndarray) -> np.ndarray:
    """Embeddings [n, D] of uint8 images [n, height, width, channels] (the backbone's input
    shape, n >= 1), as tools/data/embed_images.py makes them."""
    image_shape = self.image_shape
    images = np.asarray(images)
    if images.dtype != np.uint8 or tuple(images.shape[1:]) != image_shape:
      raise PredictionError(f"images of shape {list(images.shape[1:])} and dtype {images.dtype}"
                            f", but the backbone {self.backbone_path} takes uint8 "
                            f"{list(image_shape)}")
    if not len(images):
      raise PredictionError(f"no images (shape {list(images.shape)}): expected at least one")
    if self._embedder is None:
      self._embedder = backbone_lib.embedder(*self.loaded_backbone())
    return self._embedder(images)

  def check_embeddings(self, embeddings, what: str, rank: int) -> np.ndarray:
    """`embeddings` as float32 of rank `rank` ([classes, shots, dim] or [queries, dim]), none
    of its axes empty, its last the model's D, every row one the model can L2-normalise in
    float32 (`data.normalisation_problem`).

    Raises:
      PredictionError: naming `what` and what was expected, in one line.
    """
    layout = "[classes, shots, dim]" if rank == 3 else "[queries, dim]"
    try:
      array = np.asarray(embeddings)
    except (ValueError, TypeError) as e:  # A ragged or otherwise unarrangeable sequence.
      raise PredictionError(f"{what}: not an array ({utils.first_line(e)}), expected "
                            f"numbers {layout}") from None
    if array.dtype.kind not in "fiu":
      raise PredictionError(f"{what}: an array of dtype {array.dtype}, expected numbers "
                            f"{layout}")
    if array.ndim != rank or array.shape[-1] != self.embedding_dim:
      raise PredictionError(f"{what}: embeddings of shape {list(array.shape)}, but "
                            f"{self.name} takes {self.embedding_dim}-d embeddings ({layout})")
    if 0 in array.shape:
      raise PredictionError(f"{what}: embeddings of shape {list(array.shape)}, expected at "
                            f"least one of each axis of {layout}")
    finite = array[np.isfinite(array)]
    if finite.size and np.abs(finite).max() > config_lib.FLOAT32_MAX:
      raise PredictionError(f"{what}: values up to {np.abs(finite).max():.3g} in magnitude, "
                            f"expected at most {config_lib.FLOAT32_MAX:.4g} (LEO "
                            "computes in float32)")
    array = array.astype(np.float32)
    problem = data.normalisation_problem(array)
    if not problem and self.transform is not None:
      problem = data.normalisation_problem(self.transform(array).numpy())
      problem = problem and f"after the model's {self.transform.name} transform, {problem}"
    if problem:
      raise PredictionError(f"{what}: {problem}")
    return array

  def adapt(self, support: np.ndarray) -> tf.Tensor:
    """The classifier adapted to `support` [N, K, D] (row n: class n): weights [N, D]; the
    logits of a query x are x · weights[n], x L2-normalised."""
    support = self.check_embeddings(support, "the support set", rank=3)
    if len(support) < MIN_CLASSES:
      raise PredictionError(f"a support set of {len(support)} class: LEO tells apart "
                            f"{MIN_CLASSES} or more")
    shape = support.shape[:2]
    if shape not in self._adapters:  # One function retraced per shape would warn of it.
      self._adapters[shape] = tf.function(
          lambda tr_input: adapted_weights(self.leo, tr_input, self.transform), autograph=False)
    return self._adapters[shape](tf.constant(support))

  def predict(self, support: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Class probabilities [queries, N] of the queries [queries, D] after adapting to the
    support set [N, K, D]: the softmax of the adapted classifier's logits."""
    queries = self.check_embeddings(queries, "the queries", rank=2)
    weights = self.adapt(support)
    return class_probabilities(weights, tf.constant(queries), self.transform).numpy()


# ---- The command's inputs and outputs. ----

class Support(NamedTuple):
  """A labelled support set."""
  class_names: List[str]  # [N], class n's name.
  embeddings: np.ndarray  # float32 [N, K, D], not normalised.


class Queries(NamedTuple):
  """What to classify."""
  names: List[str]  # [queries]: the image files' paths, or the embeddings' keys.
  embeddings: np.ndarray  # float32 [queries, D], not normalised.


def is_embeddings_file(path: str) -> bool:
  return path.endswith(EMBEDDINGS_SUFFIXES)


def _load_embeddings(path: str) -> data.Embeddings:
  if not os.path.isfile(path):
    raise PredictionError(f"{path}: no such embeddings file")
  return data.load_embeddings(path)


def _same_shots(path: str, class_names: Sequence[str], counts: Sequence[int]):
  """LEO's support tensor has K examples of every class: unequal classes are refused."""
  if len(set(counts)) > 1:
    fewest, most = int(np.argmin(counts)), int(np.argmax(counts))
    raise PredictionError(
        f"{path}: class {class_names[fewest]!r} has {counts[fewest]} examples and class "
        f"{class_names[most]!r} {counts[most]}; LEO adapts to the same K examples of every "
        f"class: give each class {counts[fewest]} (or {counts[most]})")


def read_support(path: str, predictor: Predictor, fit: str = images_lib.SQUASH) -> Support:
  """A folder with one sub-folder of K images per class (the class names are the sub-folders'
  names; `fit` as `images.read_images` takes it), or an embeddings file whose keys name each
  row's class."""
  if is_embeddings_file(path):
    loaded = _load_embeddings(path)
    _same_shots(path, loaded.class_names, [len(rows) for rows in loaded.rows_by_class])
    embeddings = loaded.embeddings[np.stack(loaded.rows_by_class)]
    return Support(loaded.class_names, predictor.check_embeddings(embeddings, path, rank=3))
  height, _, channels = predictor.image_shape
  images, labels, class_names, _ = images_lib.read_image_folder(path, channels, height, fit)
  counts = np.bincount(labels, minlength=len(class_names))
  _same_shots(path, class_names, counts)
  # The folder's images are read class by class: its labels are sorted.
  embeddings = predictor.embed(images).reshape(len(class_names), counts[0], -1)
  return Support(class_names, embeddings)


def read_queries(spec: str, predictor: Predictor, fit: str = images_lib.SQUASH) -> Queries:
  """An embeddings file, or images: a folder of them (sub-folders too), an image file, or a
  comma-separated list of folders and files (files that are no image skipped, as
  `images.read_images` does)."""
  if is_embeddings_file(spec):
    loaded = _load_embeddings(spec)
    return Queries(loaded.keys, predictor.check_embeddings(loaded.embeddings, spec, rank=2))
  paths = []
  for item in filter(None, spec.split(",")):
    if is_embeddings_file(item):
      raise PredictionError(f"{item}: an embeddings file is the only queries input, not one "
                            "of a list")
    if not os.path.exists(item):
      raise PredictionError(f"{item}: no such image file or folder")
    paths += images_lib.image_files(item) if os.path.isdir(item) else [item]
  if not paths:
    raise PredictionError(f"{spec!r}: expected a folder of images, an image file, a "
                          "comma-separated list of them, or an embeddings file")
  height, _, channels = predictor.image_shape
  images, kept = images_lib.read_images(paths, channels, height, fit)
  return Queries(kept, predictor.embed(images))


def load_for_support(support_path: str, checkpoint_path: Optional[str] = None,
                     fit: str = images_lib.SQUASH) -> Tuple[Predictor, Support]:
  """The model `checkpoint_path` names (default: the shipped one for the support's K) and the
  support set of `support_path` read for it."""
  predictor = Predictor.load(checkpoint_path or SHIPPED_1SHOT)
  support = read_support(support_path, predictor, fit)
  shots = support.embeddings.shape[1]
  if checkpoint_path is None and default_model(shots) != SHIPPED_1SHOT:
    predictor = Predictor.load(default_model(shots))  # The shipped models share a backbone.
  return predictor, support


def predicted_classes(class_names: Sequence[str], probabilities: np.ndarray) -> List[str]:
  """The most probable class of each query ([queries, N] probabilities)."""
  return [class_names[i] for i in np.argmax(probabilities, axis=1)]


def table(queries: Queries, class_names: Sequence[str], probabilities: np.ndarray) -> str:
  """The predictions as a text table: query, predicted class, each class's probability."""
  header = ["query", "predicted"] + list(class_names)
  rows = [[name, predicted] + [f"{p:.1%}" for p in row] for name, predicted, row in
          zip(queries.names, predicted_classes(class_names, probabilities), probabilities)]
  widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
  # Names left-aligned, probabilities right-aligned.
  line = lambda row: "  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                               for i, (cell, width) in enumerate(zip(row, widths))).rstrip()
  return "\n".join(line(row) for row in [header] + rows)


def check_output(path: str):
  """Refuses an output file of another format than CSV or JSON."""
  if not path.endswith(OUTPUT_FORMATS):
    raise PredictionError(f"--output={path}: expected a file name ending in "
                          f"{' or '.join(OUTPUT_FORMATS)}")


def write(path: str, queries: Queries, class_names: Sequence[str],
          probabilities: np.ndarray, model_name: str):
  """Writes the predictions to `path`: CSV (a header row, then per query its name, the
  predicted class and each class's probability) or JSON, by the file's extension."""
  check_output(path)
  predicted = predicted_classes(class_names, probabilities)
  if path.endswith(".csv"):
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["query", "predicted"] + list(class_names))
    for name, label, row in zip(queries.names, predicted, probabilities):
      writer.writerow([name, label] + [f"{p:.6f}" for p in row])
    contents = text.getvalue()
  else:
    contents = json.dumps({
        "model": model_name, "classes": list(class_names),
        "predictions": [{"query": name, "predicted": label,
                         "probabilities": dict(zip(class_names, map(float, row)))}
                        for name, label, row in zip(queries.names, predicted, probabilities)],
    }, indent=1) + "\n"
  try:
    storage.atomic_write_text(path, contents)
  except (OSError, tf.errors.OpError) as e:
    raise PredictionError(f"--output={path}: cannot write there ({utils.first_line(e)})"
                          ) from None
