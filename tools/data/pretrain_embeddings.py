# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Pretrains an embedding network and writes LEO's pickles, with a record of how.

LEO's 640-d features come from a WRN-28-10 trained with plain supervised cross-entropy on the
meta-train classes only, then run over every image of every split. This tool does the same
for any labelled images, in TF 2 + Sonnet 2, so that LEO can be run on your own images
(`--protocol=paper`), or trains the backbone on a pool of other classes (see PROTOCOLS).

Input (--images), an .npz with:
  images       uint8 [n, height, width] (grayscale) or [n, height, width, channels]
  labels       int [n], each image's class: an index into class_names
  class_names  str [classes] (optional; default c000, c001, ...)
  image_names  str [n] (optional; default the row index): unique within a class
or a folder of class folders (`images.py`: resized to 84x84, --image_channels),
and a split file (--split), JSON: {"train": [class names], "val": [...], "test": [...]},
optionally "pool": [class names outside the three splits]. --protocol chooses which of the
train and pool classes the backbone trains on and which LEO meta-trains on (the train pickle);
the val and test classes are never seen in pretraining.

Output: <output_root>/<dataset_name>/center/{train,val,test}_embeddings.pkl, the layout of
the published LEO embeddings, and PROVENANCE.json beside them (the protocol, every class the
backbone trained on, each pickle's classes, the command, seed, settings, input digests and
versions), and the trained backbone (`backbone.npz`, the format of `backbone.py`, which the
networks come from: `tools/data/embed_images.py` embeds other images with it). A pickle is a
dict with `embeddings` float32 [n, --embedding_dim], `labels` int32 [n] (the class's position
in the split's list) and `keys` str [n], each key
`<split>-<class id>-<class id>_<image name>` where the class id is the class name's letters
and digits (so it has no '-' or '_') and '-' in image names becomes '_'.

Backbones (--backbone): `convnet`, a small stand-in that trains in minutes on 2 CPU cores
(84x84 input average-pooled to 42x42, three blocks of [conv3x3-BN-ReLU x2, max-pool] with
32/64/128 channels, conv3x3 to 640-BN-ReLU, global average pool), or `wrn28_10`, the paper's
Wide ResNet 28-10 (640-d), for accelerators. Training: cross-entropy with label smoothing,
SGD with momentum and a one-cycle learning rate, random affine augmentation, weight decay.

    python -m tools.data.pretrain_embeddings          # the bundled icons benchmark
    python -m tools.data.pretrain_embeddings --images=my.npz --split=my_split.json \\
        --dataset_name=mine --output_root=/data/embeddings --protocol=paper

Several GPUs, several machines (`--distribution_strategy`, the flag of runner.py): each step's
global batch of --batch_size images (a multiple of the number of replicas) is drawn and augmented
once, as on one device, and split evenly between the replicas; their gradients are averaged and
one update is applied to the mirrored variables. Batch norm then uses the statistics of the whole
global batch (snt.distribute.CrossReplicaBatchNorm), so a step is the step of one device up to
float rounding. Only the chief embeds the splits (on one device) and writes the pickles and the
log; the other workers train in step and write nothing. --batch_size stays the global batch:
the default 64 gives 16 images to each of 4 GPUs. --seed seeds a distributed run too, but its
initial weights are drawn differently from the default strategy's (created eagerly, mirrored,
rather than in the first step's trace), so its embeddings are not the default run's.

    # Every GPU of this machine (choose them with CUDA_VISIBLE_DEVICES).
    python -m tools.data.pretrain_embeddings --backbone=wrn28_10 --distribution_strategy=mirrored

    # Two machines: the same command on each, from a checkout with the same --images and --split
    # files, TF_CONFIG naming the cluster and this machine's place in it. Worker 0 is the chief:
    # the pickles are written under its --output_root.
    # on host-a:
    export TF_CONFIG='{"cluster": {"worker": ["host-a:2222", "host-b:2222"]},
                       "task": {"type": "worker", "index": 0}}'
    python -m tools.data.pretrain_embeddings --backbone=wrn28_10 \\
        --distribution_strategy=multi_worker_mirrored
    # on host-b:
    export TF_CONFIG='{"cluster": {"worker": ["host-a:2222", "host-b:2222"]},
                       "task": {"type": "worker", "index": 1}}'
    python -m tools.data.pretrain_embeddings --backbone=wrn28_10 \\
        --distribution_strategy=multi_worker_mirrored
"""

import dataclasses
import json
import math
import os
import pickle
import re
import sys
import time
import zipfile
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from absl import flags
from absl import logging
import numpy as np

import utils

tf = utils.import_tensorflow()  # Before Sonnet imports it: TF's start-up chatter silenced.
import sonnet as snt  # pylint: disable=g-import-not-at-top,wrong-import-position

# config.py defines --seed, --dataset_name and --distribution_strategy: the tool uses those
# flags, it does not define them.
import backbone as backbone_lib
import config as config_lib
import distribute
import images as images_lib

REPO_ROOT = utils.REPOSITORY
EMBEDDING_CROP = "center"
SPLITS = ("train", "val", "test")
POOL = "pool"  # Optional list of the split file: classes outside the benchmark's three splits.
# Which classes the backbone trains on and which classes LEO meta-trains on (the train pickle).
# The val and test classes are never in either.
PROTOCOLS = {
    "paper": "backbone on the train classes only; LEO meta-trains on them (the published "
             "embeddings.zip)",
    "pool": "backbone on the pool classes only; LEO meta-trains on the train and pool classes",
    "pool_and_train": "backbone on the train and pool classes; LEO meta-trains on both",
    "pool_halves": "the pool halved at random (seed 0): backbone on one half only; LEO "
                   "meta-trains on the train classes and the other half",
}
POOL_HALVES_SEED = 0
DEFAULT_PROTOCOL = "pool"  # Chosen on the icons' validation classes (datasets/README.md).
PICKLE_PROTOCOL = 4  # Native bytes (protocol 2 would wrap every array in `_codecs.encode`).

# Augmentation: small random affine maps. No flips: a mirrored arrow is another class.
MAX_ROTATION_DEGREES = 10.0
MAX_SCALE_CHANGE = 0.1  # Scale in [0.9, 1.1].
MAX_TRANSLATION = 0.1  # Fraction of the image side.

WARMUP_FRACTION = 0.3  # One-cycle schedule: linear warm-up over this share of the steps ...
WARMUP_START_DIVISOR = 25.0  # ... from peak / 25, then cosine annealing to 0.


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How the embedding network is trained."""
  backbone: str = "convnet"
  epochs: int = 20
  batch_size: int = 64
  learning_rate: float = 0.05  # Peak of the one-cycle schedule.
  momentum: float = 0.9
  weight_decay: float = 5e-4
  label_smoothing: float = 0.1
  seed: int = 0
  embedding_dim: int = backbone_lib.EMBEDDING_DIM
  protocol: str = "paper"  # A key of PROTOCOLS.


@dataclasses.dataclass(frozen=True)
class ImageSet:
  """Labelled images as read from an .npz (see the module docstring)."""
  images: np.ndarray  # uint8 [n, height, width, channels]
  labels: np.ndarray  # int64 [n]
  class_names: List[str]
  image_names: List[str]


# ---- Inputs and keys. ----

def load_image_set(path: str, channels: int = 1, fit: str = images_lib.SQUASH) -> ImageSet:
  """Reads and checks an images-with-labels .npz, or a folder of class folders
  (`images.read_image_folder`; its images read with `channels` channels, made square by
  `fit`)."""
  if os.path.isdir(path):
    return ImageSet(*images_lib.read_image_folder(path, channels, fit=fit))
  if not os.path.exists(path):
    raise backbone_lib.InputError(f"{path}: no such folder of class folders, nor .npz file")
  try:
    with np.load(path, allow_pickle=False) as npz:
      arrays = {name: npz[name] for name in npz.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise backbone_lib.InputError(
        f"{path}: not a readable .npz of images and labels, nor a folder of "
        f"class folders ({type(e).__name__}: {e})") from None
  for name in ("images", "labels"):
    if name not in arrays:
      raise backbone_lib.InputError(
          f"{path}: expected key {name!r}, found keys {sorted(arrays)} (images: "
          "uint8 [n, height, width(, channels)], labels: int [n])")
  images, labels = arrays["images"], arrays["labels"]
  if images.dtype != np.uint8 or images.ndim not in (3, 4) or len(images) == 0:
    raise backbone_lib.InputError(
        f"{path}: 'images' has shape {images.shape} and dtype {images.dtype}, "
        "expected uint8 [n, height, width] or [n, height, width, channels]")
  if images.ndim == 3:
    images = images[..., None]
  if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
    raise backbone_lib.InputError(
        f"{path}: 'labels' has shape {labels.shape} and dtype {labels.dtype}, "
        f"expected int [{len(images)}]")
  num_classes = int(labels.max()) + 1
  class_names = [str(name) for name in arrays.get(
      "class_names", [f"c{label:03d}" for label in range(num_classes)])]
  if labels.min() < 0 or num_classes > len(class_names):
    raise backbone_lib.InputError(
        f"{path}: labels range over [{labels.min()}, {labels.max()}], expected "
        f"indices into the {len(class_names)} class_names")
  image_names = [str(name) for name in arrays.get("image_names", range(len(images)))]
  if len(image_names) != len(images):
    raise backbone_lib.InputError(
        f"{path}: {len(image_names)} image_names for {len(images)} images")
  return ImageSet(images, labels.astype(np.int64), class_names, image_names)


def load_split(path: str, class_names: Sequence[str]) -> Dict[str, List[int]]:
  """Reads a split file; returns split -> indices into `class_names`, each split's in the
  file's order, for the three splits and the pool (empty if the file has none). A `made_by`
  entry (how the file was made) is not read."""
  try:
    with open(path) as f:
      split = json.load(f)
  except (OSError, ValueError) as e:
    raise backbone_lib.InputError(f"{path}: not a readable split file ({type(e).__name__}: "
                                  f"{' '.join(str(e).split())})") from None
  if isinstance(split, dict):
    split = {name: names for name, names in split.items() if name != "made_by"}
    split.setdefault(POOL, [])
  if not isinstance(split, dict) or sorted(split) != sorted(SPLITS + (POOL,)):
    raise backbone_lib.InputError(
        f"{path}: expected a JSON object with the keys {list(SPLITS)} (and "
        f"optionally {POOL!r}), each a list of class names")
  index = {name: i for i, name in enumerate(class_names)}
  unknown = sorted(name for names in split.values() for name in names if name not in index)
  if unknown:
    raise backbone_lib.InputError(
        f"{path}: classes {unknown[:5]} are not in the images' class_names")
  named = [name for names in split.values() for name in names]
  if len(set(named)) != len(named):
    raise backbone_lib.InputError(f"{path}: a class appears twice; each class belongs to one split")
  return {name: [index[class_name] for class_name in split[name]] for name in SPLITS + (POOL,)}


def plan(splits: Mapping[str, Sequence[int]], protocol: str
         ) -> Tuple[List[int], Dict[str, List[int]]]:
  """What a protocol (see PROTOCOLS) trains on.

  Args:
    splits: split -> class indices, for SPLITS and optionally POOL.
    protocol: a key of PROTOCOLS.

  Returns:
    (backbone classes, split -> the classes of its pickle): the train pickle holds the train
    classes first, then the pool classes LEO meta-trains on.
  """
  train, pool = list(splits["train"]), list(splits.get(POOL, []))
  if protocol != "paper" and not pool:
    raise backbone_lib.InputError(
        f"--protocol={protocol} needs the split file's {POOL!r} list of classes "
        "outside the three splits; without one use --protocol=paper")
  if protocol == "paper":
    backbone, meta_train = train, train
  elif protocol == "pool":
    backbone, meta_train = pool, train + pool
  elif protocol == "pool_and_train":
    backbone, meta_train = train + pool, train + pool
  elif protocol == "pool_halves":
    order = np.random.default_rng(POOL_HALVES_SEED).permutation(len(pool))
    half = len(pool) // 2
    backbone = [pool[i] for i in sorted(order[:half])]
    meta_train = train + [pool[i] for i in sorted(order[half:])]
  else:
    raise backbone_lib.InputError(f"--protocol={protocol}: expected one of {sorted(PROTOCOLS)}")
  return backbone, {"train": meta_train, "val": list(splits["val"]),
                    "test": list(splits["test"])}


def class_ids(class_names: Sequence[str]) -> List[str]:
  """Each class name's letters and digits ("arrow-left" -> "arrowleft"), unique and non-empty:
  a key's class part may hold neither '-' (the key separator) nor '_' (the image separator)."""
  ids = [re.sub(r"[^A-Za-z0-9]", "", name) for name in class_names]
  if "" in ids or len(set(ids)) != len(ids):
    clashes = sorted({name for name, i in zip(class_names, ids) if not i or ids.count(i) > 1})
    raise backbone_lib.InputError(
        f"class names {clashes[:5]} give empty or equal class ids once reduced "
        "to letters and digits: rename them")
  return ids


def make_keys(split: str, ids: Sequence[str], labels: Sequence[int],
              image_names: Sequence[str]) -> np.ndarray:
  """Keys `<split>-<class id>-<class id>_<image name>` of images with global `labels`."""
  keys = [f"{split}-{ids[label]}-{ids[label]}_{name.replace('-', '_')}"
          for label, name in zip(labels, image_names)]
  if len(set(keys)) != len(keys):
    duplicate = next(key for key in keys if keys.count(key) > 1)
    raise backbone_lib.InputError(f"two images of a class have the same name: key {duplicate!r}")
  return np.asarray(keys)


# ---- The pretraining network. ----

class Classifier(snt.Module):
  """A backbone and a linear layer over its embedding: the pretraining network."""

  def __init__(self, backbone: snt.Module, num_classes: int, name: str = "classifier"):
    super().__init__(name=name)
    self.backbone = backbone
    self._logits = snt.Linear(num_classes, name="logits")

  def __call__(self, images: tf.Tensor, is_training: bool) -> tf.Tensor:
    """Logits [batch, classes] of images [batch, height, width, channels]."""
    return self._logits(self.backbone(images, is_training))


# ---- Distribution. ----

def is_default(strategy) -> bool:
  """Whether `strategy` is TF's default strategy (no distribution, one device)."""
  with strategy.scope():
    return not tf.distribute.has_strategy()


def check_batch_size(batch_size: int, replicas: int):
  """Each replica takes an equal share of the global batch."""
  if batch_size % replicas:
    raise backbone_lib.InputError(
        f"--batch_size={batch_size}: expected a multiple of the {replicas} "
        "replicas, which share each batch equally")


def _first_replica_updates(next_creator, **kwargs):
  """Variable creator: a non-trainable variable (batch norm's moving statistics) is updated in
  replica context, which a mirrored variable allows only with an aggregation. The replicas
  compute the same cross-replica statistics: the first replica's update is applied to all."""
  if not kwargs.get("trainable", True) and kwargs.get("aggregation") in (
      None, tf.VariableAggregation.NONE):
    kwargs["aggregation"] = tf.VariableAggregation.ONLY_FIRST_REPLICA
  return next_creator(**kwargs)


def make_classifier(backbone: str, num_classes: int, image_shape: Sequence[int],
                    strategy=None, embedding_dim: int = backbone_lib.EMBEDDING_DIM) -> Classifier:
  """The pretraining network for images [batch, *image_shape].

  Under the default strategy its variables are created by the first training step, inside its
  trace, as they always were: the initial weights of a seed, hence the bundled embeddings,
  depend on it. Under a distribution strategy the network uses cross-replica batch norm and
  every variable is created now, mirrored, under the strategy's scope (a multi-worker strategy
  gives every worker the chief's initial values).
  """
  strategy = strategy or tf.distribute.get_strategy()
  if is_default(strategy):
    return Classifier(backbone_lib.make_backbone(backbone, embedding_dim), num_classes)
  with strategy.scope(), tf.variable_creator_scope(_first_replica_updates):
    network = backbone_lib.make_backbone(backbone, embedding_dim, cross_replica_batch_norm=True)
    model = Classifier(network, num_classes)
    # Cross-replica batch norm runs in replica context only; in test mode it updates nothing.
    strategy.run(lambda: model(tf.zeros([1, *image_shape]), is_training=False))
  return model


# ---- Training. ----

def one_cycle_learning_rate(step: tf.Tensor, total_steps: int, peak: float) -> tf.Tensor:
  """Linear warm-up from peak / 25 over the first 30% of the steps, then cosine to 0."""
  step = tf.cast(step, tf.float32)
  warmup_steps = max(1.0, WARMUP_FRACTION * total_steps)
  start = peak / WARMUP_START_DIVISOR
  warmup = start + (peak - start) * step / warmup_steps
  progress = tf.minimum(1.0, (step - warmup_steps) / max(1.0, total_steps - warmup_steps))
  annealing = 0.5 * peak * (1.0 + tf.cos(math.pi * progress))
  return tf.where(step < warmup_steps, warmup, annealing)


def random_affine(images: tf.Tensor, generator: tf.random.Generator) -> tf.Tensor:
  """Rotates, scales and shifts each image [batch, height, width, channels] at random.

  Pixels from outside the image repeat its border (the background, for icons).
  """
  batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
  angle = generator.uniform([batch], -1.0, 1.0) * math.radians(MAX_ROTATION_DEGREES)
  scale = 1.0 + generator.uniform([batch], -1.0, 1.0) * MAX_SCALE_CHANGE
  shift = generator.uniform([batch, 2], -1.0, 1.0) * MAX_TRANSLATION * [width, height]
  # The transform maps each output pixel to the input pixel it samples:
  # input = A (output - center - shift) + center, with A = rotation(-angle) / scale.
  cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
  center_x, center_y = (width - 1) / 2, (height - 1) / 2
  x0, y0 = center_x + shift[:, 0], center_y + shift[:, 1]
  transforms = tf.stack([cos, sin, center_x - cos * x0 - sin * y0,
                         -sin, cos, center_y + sin * x0 - cos * y0,
                         tf.zeros([batch]), tf.zeros([batch])], axis=1)
  return tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=transforms, output_shape=[height, width], fill_value=0.0,
      interpolation="BILINEAR", fill_mode="NEAREST")


def make_train_step(model: Classifier, num_classes: int, total_steps: int,
                    config: TrainConfig, standardise: backbone_lib.Standardiser,
                    image_shape: Sequence[int], strategy=None):
  """The compiled training step and the variable holding its learning rate.

  The step maps a global batch (uint8 images [batch_size, *image_shape], labels int64
  [batch_size]) to its (mean loss, train accuracy). The batch is standardised and augmented
  once, as on one device; replica r of R then takes images [r B/R, (r + 1) B/R) of it. The
  gradients of the replicas' losses (each its share's mean cross-entropy, plus the weight
  decay) are averaged, which is the gradient of the global batch's, and one momentum update is
  applied, in cross-replica context (Sonnet's optimisers refuse a strategy's replica context):
  the step of training.make_train_step, and the step of one device, split. Call it outside
  `strategy.scope()`. Under the default strategy it is the step the tool always had.

  Returns:
    (train_step, learning_rate).
  """
  strategy = strategy or tf.distribute.get_strategy()
  replicas = strategy.num_replicas_in_sync
  check_batch_size(config.batch_size, replicas)
  local = config.batch_size // replicas
  with strategy.scope():
    learning_rate = tf.Variable(0.0, trainable=False)
    optimizer = snt.optimizers.Momentum(learning_rate, config.momentum)
  # Outside the scope: one stream of augmentation for the global batch, drawn in cross-replica
  # context as on one device (and alike on every worker: same seed, same batches).
  generator = tf.random.Generator.from_seed(config.seed)
  with strategy.scope():
    step = tf.Variable(0, trainable=False, dtype=tf.int64)
    if not is_default(strategy):  # Momentum's slots, mirrored (by default: made by the trace).
      optimizer._initialize(model.trainable_variables)  # pylint: disable=protected-access
  spec = tf.TensorSpec([config.batch_size, *image_shape], tf.uint8)

  def replica_step(inputs, targets, labels):
    if replicas > 1:
      start = tf.distribute.get_replica_context().replica_id_in_sync_group * local
      inputs, targets, labels = (tf.ensure_shape(t[start:start + local], [local, *t.shape[1:]])
                                 for t in (inputs, targets, labels))
    with tf.GradientTape() as tape:
      logits = model(inputs, is_training=True)
      loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(targets, logits))
      weights = [v for v in model.trainable_variables if v.name.split("/")[-1] == "w:0"]
      objective = loss + config.weight_decay * tf.add_n([tf.nn.l2_loss(w) for w in weights])
    gradients = tape.gradient(objective, model.trainable_variables)
    correct = tf.equal(tf.argmax(logits, axis=1), labels)
    return loss, tf.reduce_mean(tf.cast(correct, tf.float32)), gradients

  mean = lambda value: strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)

  @tf.function(input_signature=[spec, tf.TensorSpec([config.batch_size], tf.int64)],
               autograph=False)
  def train_step(batch_images, batch_labels):
    learning_rate.assign(one_cycle_learning_rate(step, total_steps, config.learning_rate))
    inputs = random_affine(standardise(batch_images), generator)
    targets = tf.one_hot(batch_labels, num_classes)
    targets = targets * (1.0 - config.label_smoothing) + config.label_smoothing / num_classes
    loss, accuracy, gradients = strategy.run(replica_step, args=(inputs, targets, batch_labels))
    optimizer.apply([mean(gradient) for gradient in gradients], model.trainable_variables)
    step.assign_add(1)
    return mean(loss), mean(accuracy)

  return train_step, learning_rate


def train(model: Classifier, images: np.ndarray, labels: np.ndarray, config: TrainConfig,
          standardise: backbone_lib.Standardiser, strategy=None) -> float:
  """Trains `model` on uint8 images [n, h, w, c] with labels [n] in [0, classes).

  Every worker of a multi-worker strategy runs this loop in step, on the same batches. The
  chief logs loss, train accuracy and time once per epoch. Returns the training time in
  seconds.
  """
  strategy = strategy or tf.distribute.get_strategy()
  check_batch_size(config.batch_size, strategy.num_replicas_in_sync)
  if len(images) < config.batch_size:
    raise backbone_lib.InputError(f"{len(images)} train images: fewer than one batch of "
                                  f"{config.batch_size}; lower --batch_size")
  steps_per_epoch = len(images) // config.batch_size  # Full batches only: one trace.
  total_steps = steps_per_epoch * config.epochs
  num_classes = int(labels.max()) + 1
  train_step, learning_rate = make_train_step(model, num_classes, total_steps, config,
                                              standardise, images.shape[1:], strategy)
  chief = distribute.is_chief(strategy)
  rng = np.random.default_rng(config.seed)
  start = time.time()
  for epoch in range(1, config.epochs + 1):
    epoch_start = time.time()
    order = rng.permutation(len(images))[:steps_per_epoch * config.batch_size]
    losses, accuracies = [], []
    for batch in order.reshape(steps_per_epoch, config.batch_size):
      loss, accuracy = train_step(images[batch], labels[batch])
      losses.append(float(loss))
      accuracies.append(float(accuracy))
    if chief:
      logging.info("epoch %d/%d: loss %.4f, train accuracy %.1f%%, lr %.4f, %.1f s", epoch,
                   config.epochs, np.mean(losses), 100 * np.mean(accuracies),
                   float(learning_rate.read_value()), time.time() - epoch_start)
  return time.time() - start


def write_embeddings(path: str, embeddings: np.ndarray, labels: np.ndarray, keys: np.ndarray):
  """Writes one split in the published layout: a plain dict of numpy arrays."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  contents = {"embeddings": embeddings.astype(np.float32), "labels": labels.astype(np.int32),
              "keys": keys}
  with open(path, "wb") as f:
    pickle.dump(contents, f, protocol=PICKLE_PROTOCOL)


def class_record(image_set: ImageSet, indices: Sequence[int]) -> Dict[str, object]:
  """Classes of a provenance record: their names, the class ids their keys carry, and their
  number of images."""
  ids = class_ids(image_set.class_names)
  counts = np.bincount(image_set.labels, minlength=len(image_set.class_names))
  return {"classes": [image_set.class_names[i] for i in indices],
          "class_ids": [ids[i] for i in indices],
          "images": int(sum(counts[i] for i in indices))}


def write_splits(image_set: ImageSet, pickle_classes: Mapping[str, Sequence[int]],
                 embed: Callable[[np.ndarray], np.ndarray], output_dir: str) -> Dict[str, str]:
  """Embeds the images of each split's classes and writes `<split>_embeddings.pkl`.

  Returns:
    split -> path of its pickle.
  """
  ids = class_ids(image_set.class_names)
  paths = {}
  for split in SPLITS:
    classes = list(pickle_classes[split])
    rows = np.flatnonzero(np.isin(image_set.labels, classes))
    labels = image_set.labels[rows]
    keys = make_keys(split, ids, labels, [image_set.image_names[row] for row in rows])
    embeddings = embed(image_set.images[rows])
    paths[split] = os.path.join(output_dir, f"{split}_embeddings.pkl")
    write_embeddings(paths[split], embeddings,
                     np.asarray([classes.index(label) for label in labels]), keys)
    logging.info("%s: %d classes, %d images -> %s", split, len(classes), len(rows),
                 paths[split])
  return paths


def provenance(image_set: ImageSet, backbone_classes: Sequence[int],
               pickle_classes: Mapping[str, Sequence[int]], config: TrainConfig,
               extra: Optional[Mapping[str, object]] = None) -> Dict[str, object]:
  """The record of how a pickle folder was made (its PROVENANCE.json).

  Names every class the backbone trained on (all of each class's images were used) and every
  class of each pickle, by name and by the class id its keys carry, so that a reader can check
  which classes the backbone saw without trusting the tool.
  """
  classes = lambda indices: class_record(image_set, indices)
  record = {
      "protocol": config.protocol, "protocol_means": PROTOCOLS[config.protocol],
      "backbone_trained_on": classes(backbone_classes),
      "pickles": {split: classes(pickle_classes[split]) for split in SPLITS},
      "train_config": dataclasses.asdict(config),
      "versions": {"python": sys.version.split()[0], "numpy": np.__version__,
                   "tensorflow": tf.__version__, "sonnet": snt.__version__},
  }
  record.update(extra or {})
  return record


def pretrain(image_set: ImageSet, splits: Mapping[str, Sequence[int]], config: TrainConfig,
             output_dir: str, strategy=None,
             record: Optional[Mapping[str, object]] = None) -> Dict[str, str]:
  """Trains the backbone as `config.protocol` says (`plan`), embeds every split and writes its
  pickle and PROVENANCE.json (`provenance`, with `record`'s entries added) to `output_dir`.

  Under a `tf.distribute` strategy the replicas share each training batch; the chief alone
  then embeds the splits (on one device) and writes the pickles; the other workers return
  after training, having written nothing.

  Returns:
    split -> path of its `<split>_embeddings.pkl`; {} on the workers that do not write.
  """
  strategy = strategy or tf.distribute.get_strategy()
  check_batch_size(config.batch_size, strategy.num_replicas_in_sync)
  backbone_classes, pickle_classes = plan(splits, config.protocol)
  tf.random.set_seed(config.seed)  # Seeds the initialisers.
  class_ids(image_set.class_names)  # Clashing class names fail now, not after training.
  train_classes = np.asarray(backbone_classes)
  train_rows = np.flatnonzero(np.isin(image_set.labels, train_classes))
  # Labels of the backbone's classes: the class's position in its list.
  position = {label: i for i, label in enumerate(train_classes)}
  train_labels = np.asarray([position[label] for label in image_set.labels[train_rows]])
  standardise = backbone_lib.standardiser(image_set.images[train_rows])
  model = make_classifier(config.backbone, len(train_classes), image_set.images.shape[1:],
                          strategy, config.embedding_dim)
  seconds = train(model, image_set.images[train_rows], train_labels, config, standardise,
                  strategy)
  if not distribute.is_chief(strategy):
    return {}
  logging.info("trained %s on %d images of %d classes in %.0f s", config.backbone,
               len(train_rows), len(train_classes), seconds)
  backbone_path = os.path.join(output_dir, backbone_lib.BACKBONE_FILE)
  os.makedirs(output_dir, exist_ok=True)
  backbone_lib.save_backbone(backbone_path, model.backbone, config.backbone, config.embedding_dim,
                             image_set.images.shape[1:], standardise)
  embed = backbone_lib.embedder(model.backbone, image_set.images.shape[1:], standardise)
  paths = write_splits(image_set, pickle_classes, embed, output_dir)
  backbone_file = backbone_lib.backbone_file_entry(backbone_path, backbone_lib.BACKBONE_FILE)
  backbone_lib.write_provenance(output_dir, provenance(
      image_set, backbone_classes, pickle_classes, config, {**(record or {}), **backbone_file}))
  return paths


def define_flags():
  """The tool's flags, defined only when run as a script (tests import the module)."""
  flags.DEFINE_string("images", os.path.join(REPO_ROOT, "datasets", "icons", "icons.npz"),
                      "An .npz of labelled images (see the module docstring).")
  flags.DEFINE_string("split", os.path.join(REPO_ROOT, "datasets", "icons", "split.json"),
                      'JSON {"train": [class names], "val": [...], "test": [...]} and '
                      'optionally "pool": [classes outside the three splits] (see --protocol).')
  flags.DEFINE_string("output_root", os.path.join(REPO_ROOT, "datasets", "embeddings"),
                      "Pickles go to <output_root>/<dataset_name>/center/.")
  # --dataset_name (the folder under output_root), --seed (initialisation, order, augmentation)
  # and --distribution_strategy are config.py's flags, defined when config is imported, and
  # --image_fit too, defined here; listed by --help with the tool's own.
  flags.FLAGS.set_default("dataset_name", "icons")
  config_lib.define_image_flags()
  for name in ("dataset_name", "seed", "distribution_strategy", *config_lib.IMAGE_FLAGS):
    flags.declare_key_flag(name)
  flags.DEFINE_enum("backbone", "convnet", sorted(backbone_lib.BACKBONES), "Embedding network.")
  flags.DEFINE_integer("epochs", TrainConfig.epochs, "Passes over the train images.")
  flags.DEFINE_integer("batch_size", TrainConfig.batch_size, "Images per training step.")
  flags.DEFINE_float("learning_rate", TrainConfig.learning_rate, "Peak learning rate.")
  flags.DEFINE_integer("embedding_dim", backbone_lib.EMBEDDING_DIM,
                       "Embedding size of the convnet backbone (wrn28_10: 640 only).")
  flags.DEFINE_enum("protocol", DEFAULT_PROTOCOL, sorted(PROTOCOLS),
                    "Which classes the backbone and LEO train on; val and test classes never. "
                    + "; ".join(f"{name}: {means}" for name, means in sorted(PROTOCOLS.items()))
                    + ". Protocols other than paper need the split file's 'pool'.")
  flags.DEFINE_enum("image_channels", "1", ["1", "3"],
                    "Channels an --images folder is read with: 1 (grayscale) or 3 (RGB).")
  flags.DEFINE_integer("num_threads", os.cpu_count(),
                       "Intra-op threads: the convolutions are large enough to share cores.")


def main(argv):
  del argv  # Unused.
  values = flags.FLAGS
  config_lib.check_threads("num_threads", values.num_threads, minimum=1)
  tf.config.threading.set_intra_op_parallelism_threads(values.num_threads)
  if values.distribution_strategy == "default":
    # One thread runs ops one at a time (no inter-op parallelism to fight over the few
    # cores); each op uses all of them. Replicas keep TF's default: theirs run side by side.
    tf.config.threading.set_inter_op_parallelism_threads(1)
  tf.config.experimental.enable_op_determinism()  # Same seed, same embeddings.
  # Before any tensor exists: collective ops are configured when the strategy is made.
  strategy = distribute.make_strategy(values.distribution_strategy)
  check_batch_size(values.batch_size, strategy.num_replicas_in_sync)
  image_set = load_image_set(values.images, int(values.image_channels), values.image_fit)
  splits = load_split(values.split, image_set.class_names)
  config = TrainConfig(backbone=values.backbone, epochs=values.epochs,
                       batch_size=values.batch_size, learning_rate=values.learning_rate,
                       seed=values.seed, embedding_dim=values.embedding_dim,
                       protocol=values.protocol)
  record = {"command": " ".join(["python -m tools.data.pretrain_embeddings"] + sys.argv[1:]),
            "inputs": {name: {"file": os.path.basename(path),
                              "sha256": backbone_lib.file_digest(path)}
                       for name, path in (("images", values.images),
                                          ("split", values.split))}}
  pretrain(image_set, splits, config,
           os.path.join(values.output_root, values.dataset_name, EMBEDDING_CROP), strategy,
           record)


if __name__ == "__main__":
  define_flags()
  utils.run_command(main)
