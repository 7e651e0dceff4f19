# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""The embedding backbone: the network that turns images into LEO's embeddings, and its files.

    network, image_shape, standardise = backbone.load_backbone(path)  # a backbone.npz
    embed = backbone.embedder(network, image_shape, standardise)
    embeddings = embed(images)  # uint8 [n, *image_shape] -> float32 [n, embedding_dim]

`tools/data/pretrain_embeddings.py` trains a backbone (`make_backbone`, standardised by
`standardiser`) and saves it with the embeddings it made; `tools/data/embed_images.py` and
`prediction.py` load it to embed other images. The backbones (BACKBONES): `convnet`, a small
stand-in that trains in minutes on 2 CPU cores, and `wrn28_10`, the paper's Wide ResNet 28-10.

A folder of embeddings (`<output_root>/<dataset_name>/center/`) holds beside the pickles:

    backbone.npz     the backbone (`save_backbone`, `load_backbone`): its variables by position,
                     "variables/000", "variables/001", ... (batch norm's moving statistics
                     included), and "settings", JSON {"backbone": a name of BACKBONES,
                     "embedding_dim", "image_shape": [height, width, channels], "mean", "std":
                     the standardiser's, per channel}; plain arrays, no pickled objects.
    PROVENANCE.json  how the embeddings were made (`write_provenance`, `read_provenance`): a
                     JSON object whose "backbone_file" ({"file": a name beside the record or an
                     absolute path, "sha256": `file_digest`}) names the backbone that made them
                     and whose "backbone_trained_on" ({"classes", "class_ids", "images"}) names
                     the classes it trained on; the tool that made them adds how (its protocol,
                     each pickle's classes, the command, the inputs' digests, versions); with a
                     checksum of its contents (one written before leo kept them has none).

A model trained on such embeddings keeps the backbone's sha256 in its configuration
(runfolder.BACKBONE_DIGEST): `embeddings_backbone` checks the backbone file, its record and
the model against one another.
"""

import dataclasses
import hashlib
import io
import json
import os
import zipfile
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

import utils

tf = utils.import_tensorflow()  # Before Sonnet imports it: TF's start-up chatter silenced.
# pylint: disable=g-import-not-at-top,wrong-import-position
import sonnet as snt

import runfolder
import storage
# pylint: enable=g-import-not-at-top,wrong-import-position

EMBEDDING_DIM = 640  # LEO's NDIM: the channels of WRN-28-10's last stage.
WRN_DIM = 640  # WRN-28-10's embedding size is fixed by its width.
BATCH_NORM_DECAY = 0.99  # Moving statistics over ~100 steps: a run is a few thousand steps.
EMBEDDING_BATCH_SIZE = 256
BACKBONE_FILE = "backbone.npz"  # Beside the pickles: every variable, and how to rebuild it.
_SETTINGS = "settings"  # The npz entry of the JSON settings; variable i is "variables/<i>".
PROVENANCE_FILE = "PROVENANCE.json"
_BACKBONE_ENTRY = "backbone_file"  # PROVENANCE.json's entry naming the backbone file.
# The form of the settings (`storage.field_problem`), and of what leo reads of PROVENANCE.json
# beyond its backbone file entry (`_named_backbone`).
_SETTINGS_SPEC = {"backbone": str, "embedding_dim": int, "image_shape": [int], "mean": [float],
                  "std": [float]}
_PROVENANCE_SPEC = {"backbone_trained_on": (None, {"class_ids": [str]}),
                    "train_config": (None, dict)}


class InputError(utils.LeoError, ValueError):
  """An input file that does not have the documented form."""


# ---- Networks. ----

def _conv(channels: int, kernel: int = 3, stride: int = 1, name: Optional[str] = None):
  # He initialisation: the convolutions feed ReLUs.
  return snt.Conv2D(channels, kernel, stride=stride, with_bias=False, name=name,
                    w_init=snt.initializers.VarianceScaling(2.0, "fan_in", "truncated_normal"))


def _batch_norm(cross_replica: bool = False, name: Optional[str] = None):
  """Batch norm; `cross_replica`: with the statistics of all replicas' batches together.

  A distributed step (`make_train_step` of tools/data/pretrain_embeddings.py) runs each
  replica on its share of the global batch. Plain batch norm would normalise each share by its
  own statistics (the usual per-replica behaviour): the step would then differ from the
  one-device step on the same batch, its result only equal in distribution, and noisier as the
  shares shrink. CrossReplicaBatchNorm
  all-reduces the mean and the mean of squares instead (two all-reduces of one value per
  channel, forward and backward), so each replica normalises by the global batch's statistics
  and the step is the one-device step up to float rounding. It is used only under a
  distribution strategy: the default strategy keeps snt.BatchNorm (fused), and with it the
  bundled embeddings. The two differ in rounding (variance as E(x^2) - E(x)^2 against the fused
  kernel's) and in the moving variance, which the fused kernel updates with the unbiased batch
  variance (a factor n / (n - 1), n the images times positions in the batch).
  """
  if cross_replica:
    with tf.name_scope(name or "cross_replica_batch_norm"):
      moving_mean = snt.ExponentialMovingAverage(BATCH_NORM_DECAY, name="moving_mean")
      moving_variance = snt.ExponentialMovingAverage(BATCH_NORM_DECAY, name="moving_variance")
    return snt.distribute.CrossReplicaBatchNorm(
        create_scale=True, create_offset=True, moving_mean=moving_mean,
        moving_variance=moving_variance, name=name)
  return snt.BatchNorm(create_scale=True, create_offset=True, decay_rate=BATCH_NORM_DECAY,
                       name=name)


class ConvNet(snt.Module):
  """The small stand-in backbone: four conv stages, 640 channels, global average pool."""

  def __init__(self, widths: Sequence[int] = (32, 64, 128),
               embedding_dim: int = EMBEDDING_DIM, cross_replica_batch_norm: bool = False,
               name: str = "convnet"):
    super().__init__(name=name)
    bn = lambda: _batch_norm(cross_replica_batch_norm)
    self._blocks = [[(_conv(width), bn()) for _ in range(2)] for width in widths]
    self._head = (_conv(embedding_dim), bn())

  def __call__(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Embeds images [batch, height, width, channels] to [batch, embedding_dim]."""
    net = tf.nn.avg_pool2d(images, 2, 2, "SAME")  # 84x84 -> 42x42: icons need no more.
    for block in self._blocks:
      for conv, batch_norm in block:
        net = tf.nn.relu(batch_norm(conv(net), is_training=is_training))
      net = tf.nn.max_pool2d(net, 2, 2, "SAME")
    conv, batch_norm = self._head
    net = tf.nn.relu(batch_norm(conv(net), is_training=is_training))
    return tf.reduce_mean(net, axis=[1, 2])


class WideBlock(snt.Module):
  """A pre-activation wide residual block: (BN-ReLU-conv3x3) x2, 1x1 conv on a changed shape."""

  def __init__(self, width: int, stride: int, cross_replica_batch_norm: bool = False,
               name: Optional[str] = None):
    super().__init__(name=name)
    self._width, self._stride = width, stride
    self._bn1 = _batch_norm(cross_replica_batch_norm)
    self._conv1 = _conv(width, stride=stride)
    self._bn2, self._conv2 = _batch_norm(cross_replica_batch_norm), _conv(width)
    self._shortcut = None

  def __call__(self, inputs: tf.Tensor, is_training: bool) -> tf.Tensor:
    activated = tf.nn.relu(self._bn1(inputs, is_training=is_training))
    if self._shortcut is None and (self._stride != 1 or inputs.shape[-1] != self._width):
      self._shortcut = _conv(self._width, kernel=1, stride=self._stride, name="shortcut")
    shortcut = inputs if self._shortcut is None else self._shortcut(activated)
    net = self._conv1(activated)
    net = self._conv2(tf.nn.relu(self._bn2(net, is_training=is_training)))
    return net + shortcut


class WideResNet(snt.Module):
  """WRN-depth-k (Zagoruyko & Komodakis 2016); WRN-28-10 ends with 640 channels."""

  def __init__(self, depth: int = 28, widen_factor: int = 10,
               cross_replica_batch_norm: bool = False, name: str = "wide_resnet"):
    super().__init__(name=name)
    if (depth - 4) % 6:
      raise ValueError(f"depth {depth}: expected 6n + 4")
    blocks_per_stage = (depth - 4) // 6
    self._stem = _conv(16)
    self._blocks = [WideBlock(base * widen_factor, stride if i == 0 else 1,
                              cross_replica_batch_norm)
                    for base, stride in ((16, 1), (32, 2), (64, 2))
                    for i in range(blocks_per_stage)]
    self._final_bn = _batch_norm(cross_replica_batch_norm)

  def __call__(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Embeds images [batch, height, width, channels] to [batch, 64 * widen_factor]."""
    net = self._stem(images)
    for block in self._blocks:
      net = block(net, is_training)
    net = tf.nn.relu(self._final_bn(net, is_training=is_training))
    return tf.reduce_mean(net, axis=[1, 2])


BACKBONES = ("convnet", "wrn28_10")


def make_backbone(name: str, embedding_dim: int = EMBEDDING_DIM,
                  cross_replica_batch_norm: bool = False) -> snt.Module:
  """A backbone of BACKBONES embedding to `embedding_dim` (wrn28_10: 640 only)."""
  if name == "wrn28_10":
    if embedding_dim != WRN_DIM:
      raise InputError(f"--embedding_dim={embedding_dim}: wrn28_10 embeds to {WRN_DIM} (the "
                       "channels of its last stage)")
    return WideResNet(cross_replica_batch_norm=cross_replica_batch_norm)
  return ConvNet(embedding_dim=embedding_dim, cross_replica_batch_norm=cross_replica_batch_norm)


# ---- Standardising and embedding. ----

@dataclasses.dataclass(frozen=True)
class Standardiser:
  """Maps uint8 images [..., channels] to float32 with per-channel `mean` 0 and `std` 1."""
  mean: np.ndarray  # float32 [channels]
  std: np.ndarray  # float32 [channels]

  def __call__(self, images: tf.Tensor) -> tf.Tensor:
    return (tf.cast(images, tf.float32) / 255.0 - self.mean) / self.std


def standardiser(train_images: np.ndarray) -> Standardiser:
  """The standardiser of the backbone's train images [n, height, width, channels]."""
  pixels = train_images.reshape(-1, train_images.shape[-1]).astype(np.float64) / 255.0
  mean, std = pixels.mean(axis=0), pixels.std(axis=0) + 1e-6  # 1e-6: a constant channel.
  return Standardiser(mean.astype(np.float32), std.astype(np.float32))


def embedder(backbone: snt.Module, image_shape: Sequence[int],
             standardise: Standardiser
             ) -> Callable[[np.ndarray], np.ndarray]:
  """A function from uint8 images [n, *image_shape] to embeddings float32 [n, dim], batch
  norm in test mode, compiled once for any n; it logs its progress while many are embedded."""
  spec = tf.TensorSpec([None, *image_shape], tf.uint8)
  forward = tf.function(lambda batch: backbone(standardise(batch), is_training=False),
                        input_signature=[spec], autograph=False)

  def embed(images: np.ndarray) -> np.ndarray:
    progress, embeddings = utils.Progress("Embedded", len(images), "images"), []
    for start in range(0, len(images), EMBEDDING_BATCH_SIZE):
      embeddings.append(forward(images[start:start + EMBEDDING_BATCH_SIZE]).numpy())
      progress(start + len(embeddings[-1]))
    return np.concatenate(embeddings)
  return embed


# ---- The backbone file. ----

def save_backbone(path: str, backbone: snt.Module, name: str, embedding_dim: int,
                  image_shape: Sequence[int], standardise: Standardiser):
  """Writes a trained backbone, `make_backbone(name, embedding_dim)`, as one .npz (no pickled
  objects): its variables by position, batch norm's moving statistics included, and the
  settings `load_backbone` rebuilds it from (name, embedding size, input shape, the
  standardiser of its train images)."""
  settings = {"backbone": name, "embedding_dim": embedding_dim,
              "image_shape": [int(d) for d in image_shape],
              "mean": standardise.mean.tolist(), "std": standardise.std.tolist()}
  # By position: the order of a module's `variables` is fixed by its structure, while their
  # names depend on where the network was built (eagerly, or in a step's trace).
  arrays = {f"variables/{i:03d}": v.numpy() for i, v in enumerate(backbone.variables)}
  arrays[_SETTINGS] = np.asarray(json.dumps(settings, sort_keys=True))
  buffer = io.BytesIO()
  np.savez(buffer, **arrays)
  storage.atomic_write(path, buffer.getvalue())


def load_backbone(path: str) -> Tuple[snt.Module, Tuple[int, ...], Standardiser]:
  """The backbone `save_backbone` wrote: (network, input shape, standardiser)."""
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {name: npz[name] for name in npz.files}
    settings = storage.parse_json(str(arrays.pop(_SETTINGS)), path, "a backbone's settings",
                                  _SETTINGS_SPEC)
    backbone = make_backbone(settings["backbone"], settings["embedding_dim"])
    image_shape = tuple(settings["image_shape"])
    standardise = Standardiser(np.asarray(settings["mean"], np.float32),
                               np.asarray(settings["std"], np.float32))
  except (OSError, ValueError, EOFError, KeyError, TypeError, zipfile.BadZipFile) as e:
    raise InputError(f"{path}: not a backbone written by tools/data/pretrain_embeddings.py "
                     f"({type(e).__name__}: {e})") from None
  backbone(tf.zeros([1, *image_shape]), is_training=False)  # Creates the variables.
  if len(arrays) != len(backbone.variables):
    raise InputError(f"{path}: {len(arrays)} variables, expected the "
                     f"{len(backbone.variables)} of a {settings['backbone']} backbone")
  for i, variable in enumerate(backbone.variables):
    value = arrays.get(f"variables/{i:03d}")
    if value is None or value.shape != tuple(variable.shape):
      raise InputError(f"{path}: variable {i} ({variable.name}) has shape "
                       f"{None if value is None else value.shape}, expected "
                       f"{tuple(variable.shape)}")
    variable.assign(value)
  return backbone, image_shape, standardise


def file_digest(path: str) -> str:
  """sha256 of a file's bytes; of a folder, of its files' relative paths and digests, sorted."""
  digest = hashlib.sha256()
  if os.path.isdir(path):
    for folder, _, files in sorted(os.walk(path)):
      for name in sorted(files):
        file_path = os.path.join(folder, name)
        relative = os.path.relpath(file_path, path).replace(os.sep, "/")
        digest.update(f"{relative}\0{file_digest(file_path)}\n".encode("utf-8"))
    return digest.hexdigest()
  try:
    with storage.reading(path, None) as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
  except OSError as e:
    raise InputError(f"{path}: unreadable ({e.strerror or e}); remove it or restore it") from None
  return digest.hexdigest()


# ---- PROVENANCE.json: how a folder of embeddings was made. ----

def write_provenance(output_dir: str, record: Mapping[str, object]):
  """Writes a pickle folder's PROVENANCE.json, with a checksum."""
  storage.atomic_write_checked_json(os.path.join(output_dir, PROVENANCE_FILE), record)


def backbone_file_entry(path: str, name: str) -> Dict[str, Dict[str, str]]:
  """PROVENANCE.json's entry naming the backbone file at `path` that made the embeddings:
  {"backbone_file": {"file": `name` (a name beside the record, or an absolute path),
  "sha256": the file's digest}}."""
  return {_BACKBONE_ENTRY: {"file": name, "sha256": file_digest(path)}}


def read_provenance(folder: str) -> Dict[str, object]:
  """The PROVENANCE.json of a folder of embeddings, a JSON object, its checksum verified; a
  missing, unreadable, garbled or edited file is one line (storage.StorageError)."""
  return runfolder.read_checked_json(storage.join(folder, PROVENANCE_FILE),
                                     "the record of how the embeddings beside it were made",
                                     _PROVENANCE_SPEC)


def _named_backbone(record: Mapping[str, object], path: str) -> Optional[Dict[str, str]]:
  """The backbone file entry of the record read from `path`: {"file", "sha256"}, None if it
  names no backbone (a record made before backbones were saved)."""
  named = record.get(_BACKBONE_ENTRY)
  if named is None:
    return None
  if not (isinstance(named, dict)
          and all(isinstance(named.get(key), str) and named[key] for key in ("file", "sha256"))):
    raise InputError(f"{path}: {_BACKBONE_ENTRY!r} is {json.dumps(named)[:100]}, expected "
                     '{"file": a file name, "sha256": its digest}')
  return named


def named_backbone_digest(folder: str) -> Optional[str]:
  """The sha256 of the backbone the PROVENANCE.json in `folder` names; None where there is
  no such file or it names no backbone."""
  path = storage.join(folder, PROVENANCE_FILE)
  if not storage.exists(path):
    return None
  named = _named_backbone(read_provenance(folder), path)
  return named and named["sha256"]


def embeddings_backbone(folder: str, model_digest: Optional[str] = None) -> str:
  """The backbone file that made the embeddings in `folder`, as their PROVENANCE.json names it,
  checked against the digest it records and, if given, against `model_digest`: the one in the
  configuration of a model trained on these embeddings."""
  path = os.path.join(folder, PROVENANCE_FILE)
  named = _named_backbone(read_provenance(folder), path)
  if named is None:
    raise InputError(f"{path}: names no backbone file")
  if model_digest is not None and named["sha256"] != model_digest:
    raise InputError(f"{path}: names the backbone {named['sha256'][:12]}, but the model was "
                     f"trained on embeddings of the backbone {model_digest[:12]} (its "
                     f"configuration's {runfolder.BACKBONE_DIGEST}): the embeddings were "
                     "remade; restore them, or retrain the model on them")
  backbone = os.path.join(folder, named["file"])  # A relative name is beside the record.
  if not os.path.isfile(backbone):
    raise InputError(f"{backbone}: the backbone that made the embeddings of {path} is not "
                     "there")
  if file_digest(backbone) != named["sha256"]:
    raise InputError(f"{backbone}: not the backbone that made the embeddings of {path} (its "
                     "sha256 differs from the one recorded there)")
  return backbone


def backbone_record(backbone_path: str) -> Optional[Dict[str, object]]:
  """The PROVENANCE.json beside a backbone file, if there is one and it names that file (by
  its digest): how the backbone was trained, and on which classes."""
  folder = os.path.dirname(backbone_path)
  path = os.path.join(folder, PROVENANCE_FILE)
  if not os.path.exists(path):
    return None
  record = read_provenance(folder)
  named = _named_backbone(record, path)
  return record if named and named["sha256"] == file_digest(backbone_path) else None
