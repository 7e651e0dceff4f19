# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Transforms of the embeddings fitted on the meta-train split (`--embedding_transform`).

LEO, as the original, L2-normalises each embedding and nothing more. The cheap baselines that
do best on leo's data sets first change the features with statistics of the meta-train
split; a transform gives LEO the same features, applied to every split before LEO's own L2
normalisation:

    none     x                                  the original's input
    center   x - mean(train)                    centred on the raw meta-train mean
    cl2n     l2n(x) - mean(l2n(train))          SimpleShot's centring (baselines.simpleshot)
    whiten   (l2n(x) - mean(l2n(train))) @ W    W whitens the meta-train classes' within-class
                                                covariance (baselines.whitened_nearest_centroid)

l2n is L2 normalisation as `tf.math.l2_normalize` does it. The baselines' fits are these
(`fit`), so LEO on `cl2n` or `whiten` sees what SimpleShot or whitened nearest centroid
measure distances in. Statistics are fitted and applied in float64. A run keeps its
transform in `<run>/embedding_transform.npz` (`write`, `read`) and the transform's digest in
its configuration, so evaluation, cross-domain evaluation, prediction and export apply the
statistics of the data the model was trained on.
"""

import dataclasses
import hashlib
import io
from typing import Optional, Sequence

from absl import logging
import numpy as np
import tensorflow as tf

import config as config_lib
import runfolder
import storage
import utils

NONE = config_lib.EMBEDDING_TRANSFORMS[0]
# Each eigenvalue of the within-class covariance is raised by this share of their mean. Fixed,
# not tuned: small enough to keep every direction the meta-train classes do not vary in,
# large enough that none is scaled up more than ~30-fold. With fewer within-class
# embeddings than dimensions the covariance is singular and this makes it invertible.
WHITENING_SHRINKAGE = 1e-3
_NORMALISED_FIRST = ("cl2n", "whiten")


class TransformError(utils.LeoError):
  """A transform that cannot be fitted or a saved one that cannot be used."""


def normalised(embeddings: np.ndarray) -> np.ndarray:
  """`embeddings` `[n, dim]` L2-normalised in float64, as `tf.math.l2_normalize` does: the
  episodes hold them so (data.DataProvider), and the fitted baselines learn from them so."""
  x = np.asarray(embeddings, np.float64)
  return x / np.sqrt(np.maximum(np.sum(x * x, axis=1, keepdims=True), 1e-12))


def fit_whitening(embeddings: np.ndarray, rows_by_class: Sequence[np.ndarray],
                  shrinkage: float):
  """The whitening of the meta-train classes' within-class covariance.

  Directions in which images of one class vary (for drawings, the drawing style that every
  class shares) are scaled down, directions that separate classes are kept: Fisher's
  discriminant with every between-class direction kept, estimated on the train classes only.

  Args:
    embeddings: `[n, dim]` the meta-train split's embeddings.
    rows_by_class: each class's rows of `embeddings` (data.Embeddings.rows_by_class).
    shrinkage: added to each eigenvalue of the covariance, times their mean, so that
      directions with no within-class variance are not blown up.

  Returns:
    (mean `[dim]`, transform `[dim, dim]`), float64: x -> (x - mean) @ transform.

  Raises:
    TransformError: no class varies (every eigenvalue is 0): there is nothing to whiten.
  """
  x = np.asarray(embeddings, np.float64)
  within = np.concatenate([x[rows] - x[rows].mean(axis=0) for rows in rows_by_class])
  values, vectors = np.linalg.eigh(within.T @ within / len(within))
  values = np.maximum(values, 0.0)  # Rounding can make a null direction slightly negative.
  if not values.mean() > 0:
    raise TransformError(
        f"--embedding_transform=whiten: the meta-train split's {len(x)} embeddings do not vary "
        f"within any of its {len(rows_by_class)} classes, expected classes of at least two "
        "different embeddings: there is nothing to whiten")
  return x.mean(axis=0), vectors / np.sqrt(values + shrinkage * values.mean())


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingTransform:
  """A fitted transform: x -> (l2n(x) if normalised first, else x) - mean, then @ matrix."""
  name: str
  mean: np.ndarray  # [dim] float64.
  matrix: Optional[np.ndarray] = None  # [dim, dim] float64 (whiten), else None.

  @property
  def dim(self) -> int:
    return len(self.mean)

  @property
  def digest(self) -> str:
    """SHA-256 of the name and the statistics' values: what a run's configuration holds."""
    digest = hashlib.sha256(f"{self.name}:{self.dim}\n".encode("ascii"))
    for array in (self.mean, self.matrix):
      if array is not None:
        digest.update(np.ascontiguousarray(array, "<f8"))
    return digest.hexdigest()

  def __call__(self, embeddings):
    """The transformed `embeddings` `[..., dim]`, a tensor of their dtype (computed in
    float64); inside a `tf.function` too (the statistics are its constants)."""
    x = tf.convert_to_tensor(embeddings)
    y = tf.cast(x, tf.float64)
    if self.name in _NORMALISED_FIRST:
      y = tf.math.l2_normalize(y, axis=-1)
    y -= tf.constant(self.mean)
    if self.matrix is not None:
      y = tf.einsum("...d,de->...e", y, tf.constant(self.matrix))
    return tf.cast(y, x.dtype)

  def to_bytes(self) -> bytes:
    buffer = io.BytesIO()
    arrays = dict(name=np.array(self.name), mean=self.mean)
    if self.matrix is not None:
      arrays["matrix"] = self.matrix
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def fit(name: str, embeddings: np.ndarray,
        rows_by_class: Sequence[np.ndarray]) -> Optional[EmbeddingTransform]:
  """The transform `name` fitted on a meta-train split as stored, `[n, dim]` with each class's
  rows; None for `none` (the embeddings as they are)."""
  if name == NONE:
    return None
  if name not in config_lib.EMBEDDING_TRANSFORMS:
    raise TransformError(f"--embedding_transform={name}: expected one of "
                         f"{', '.join(config_lib.EMBEDDING_TRANSFORMS)}")
  if name == "center":
    return EmbeddingTransform(name, np.asarray(embeddings, np.float64).mean(axis=0))
  x = normalised(embeddings)
  if name == "cl2n":
    return EmbeddingTransform(name, x.mean(axis=0))
  within = len(x) - len(rows_by_class)
  if within < x.shape[1]:
    logging.info("--embedding_transform=whiten: %d embeddings of %d classes give a "
                 "within-class covariance of rank at most %d < %d dimensions; each eigenvalue "
                 "is raised by %g times their mean (shrinkage), which makes it invertible",
                 len(x), len(rows_by_class), within, x.shape[1], WHITENING_SHRINKAGE)
  return EmbeddingTransform(name, *fit_whitening(x, rows_by_class, WHITENING_SHRINKAGE))


def from_bytes(contents: bytes, path: str) -> EmbeddingTransform:
  """A transform from its file's bytes (`EmbeddingTransform.to_bytes`), checked: one line
  naming `path` and what was expected if it is not such a file."""
  def fail(problem: str):
    raise TransformError(f"{path}: {problem}, expected the run's embedding transform (an .npz "
                         "of 'name', float64 'mean' [dim] and, for whiten, 'matrix' [dim, dim]) "
                         "as training wrote it") from None

  try:
    with np.load(io.BytesIO(contents), allow_pickle=False) as arrays:
      arrays = {key: arrays[key] for key in arrays.files}
  except Exception as e:  # pylint: disable=broad-except
    fail(f"not a readable .npz ({utils.first_line(e)})")
  name, mean, matrix = arrays.get("name"), arrays.get("mean"), arrays.get("matrix")
  if name is None or name.shape or str(name) not in config_lib.EMBEDDING_TRANSFORMS[1:]:
    fail(f"'name' is {name!r}")
  name = str(name)
  if mean is None or mean.dtype != np.float64 or mean.ndim != 1 or not len(mean):
    fail(f"'mean' is {None if mean is None else f'{mean.dtype} {list(mean.shape)}'}")
  if (matrix is None) != (name != "whiten") or (
      matrix is not None and (matrix.dtype != np.float64 or matrix.shape != (len(mean),) * 2)):
    fail(f"'matrix' is {None if matrix is None else f'{matrix.dtype} {list(matrix.shape)}'} "
         f"for {name}")
  if not all(np.isfinite(a).all() for a in (mean, matrix) if a is not None):
    fail("its statistics hold NaN or Inf")
  return EmbeddingTransform(name, mean, matrix)


def path_in(folder: str) -> str:
  return storage.join(folder, runfolder.TRANSFORM_FILE)


def write(folder: str, transform: EmbeddingTransform, root: Optional[str] = None):
  """Saves `transform` into the run folder `folder` (atomically; below `root`, no link)."""
  storage.atomic_write(path_in(folder), transform.to_bytes(), root)


def resumed(folder: str, name: str) -> Optional[EmbeddingTransform]:
  """The transform `name` as the run folder `folder` holds it, if it does: training resumes
  with the statistics it started with (fitted again on another machine, they could differ in
  their last bits). The run's configuration holds their digest (`saved` checks it; a resume
  compares it with the saved configuration's)."""
  path = path_in(folder)
  if name == NONE or not storage.exists(path):
    return None
  transform = from_bytes(storage.read_bytes(path), path)
  return transform if transform.name == name else None


def saved(folder: str, config_json) -> Optional[EmbeddingTransform]:
  """The transform of the run whose configuration is `config_json`, read from its folder
  `folder` and checked against the configuration's digest; None for a run without one (a
  configuration made before leo had transforms is such a run)."""
  name = config_json["data_config"].get("embedding_transform", NONE)
  if name == NONE:
    return None
  path = path_in(folder)
  if not storage.exists(path):
    raise TransformError(f"{path}: missing; the model was trained on embeddings transformed "
                         f"by --embedding_transform={name}, whose statistics it holds: "
                         "restore it from a copy of the run")
  transform = from_bytes(storage.read_bytes(path), path)
  expected = config_json.get(runfolder.TRANSFORM_DIGEST)
  if transform.name != name or transform.digest != expected:
    raise TransformError(f"{path}: holds {transform.name} statistics of digest "
                         f"{transform.digest[:12]}, but the run's configuration names {name} "
                         f"of digest {str(expected)[:12]}: restore it from a copy of the run")
  return transform
