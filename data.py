# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Embeddings on disk -> validated, indexed splits -> seeded episodes.

The files are those of the published `embeddings.zip` of the original LEO code:
`<data_path>/<dataset_name>/<embedding_crop>/<split>_embeddings.pkl`, each a Python 2 pickle
of a dict with `keys` (one string per image, `<anything>-<class>-<class>_<file>`) and
`embeddings` (float32 `[images, dim]`). Pickles are read as data: only the numpy and builtin
names that such files need are allowed, anything else is refused before it is imported.

Episodes are sampled as TF ops on tensors kept in memory, from a seeded
`tf.random.Generator`, so sampling can live inside the compiled training step and its state
can be checkpointed. `Episodes` holds the samplers of a run's splits and the protocol's task
shapes, for training and evaluation alike.
"""

import _codecs
import collections
import dataclasses
import enum
import gzip
import hashlib
import io
import math
import os
import pickle
import posixpath
from typing import List, Optional, Sequence, Tuple

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric
import tensorflow as tf

import config as config_lib
import sizes
import storage
import transforms
import utils

ProblemInstance = collections.namedtuple(
    "ProblemInstance",
    ["tr_input", "tr_output", "tr_info", "val_input", "val_output", "val_info"])

# Where `--dataset_name=icons` is found when no --data_path is given.
BUNDLED_DATA_PATH = os.path.join(utils.REPOSITORY, "datasets", "embeddings")
BUNDLED_DATASETS = ("icons",)
DOWNLOAD_HINT = ("the unzipped embeddings.zip of the original LEO code "
                 "(http://storage.googleapis.com/leo-embeddings/embeddings.zip)")


class MetaSplit(enum.Enum):
  TRAIN = "train"
  VALID = "val"
  TEST = "test"


_SPLIT_SEED_OFFSET = {MetaSplit.TRAIN: 0, MetaSplit.VALID: 1, MetaSplit.TEST: 2}


class DataError(utils.LeoError):
  """Embeddings that are missing, malformed or too small for the requested tasks."""


# ---- Reading pickles as data. ----

# (module, name) as written in the pickle -> the object it may resolve to. Python 2 era files
# name `numpy.core.multiarray`; numpy 2 moved it to `numpy._core` (both spellings are allowed,
# both resolve to the current module without importing the deprecated alias).
def _dtype(obj, align=False, copy=False) -> np.dtype:
  """numpy.dtype as Python 2 era pickles call it, `dtype('f4', 0, 1)`: numpy 2.4 deprecates
  integer flags, so they are passed on as booleans."""
  return np.dtype(obj, align=bool(align), copy=bool(copy))


_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _codecs.encode,  # Python 3 writes bytes this way in protocol 2.
    ("__builtin__", "set"): set, ("builtins", "set"): set,
    ("__builtin__", "frozenset"): frozenset, ("builtins", "frozenset"): frozenset,
    ("__builtin__", "bytearray"): bytearray, ("builtins", "bytearray"): bytearray,
    ("__builtin__", "complex"): complex, ("builtins", "complex"): complex,
}
for _package in ("numpy.core", "numpy._core"):
  _ALLOWED_GLOBALS[(_package + ".multiarray", "_reconstruct")] = _multiarray._reconstruct  # pylint: disable=protected-access
  _ALLOWED_GLOBALS[(_package + ".multiarray", "scalar")] = _multiarray.scalar
  _ALLOWED_GLOBALS[(_package + ".numeric", "_frombuffer")] = _numeric._frombuffer  # pylint: disable=protected-access


class RefusedGlobal(pickle.UnpicklingError):
  """A pickle that names code rather than data."""


class _DataUnpickler(pickle.Unpickler):
  """An unpickler that resolves only the names a pickle of numpy arrays needs."""

  def find_class(self, module, name):
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise RefusedGlobal(f"refused global {module + '.' + name!r}: embeddings files may hold "
                          "only numpy arrays and plain Python data") from None

  def persistent_load(self, pid):
    raise RefusedGlobal("refused persistent id: embeddings files hold plain data only")


GZIP_SUFFIX = ".gz"
_READ_BYTES = 1 << 20  # What a pickle is read (and decompressed) by at a time.
# The most a pickle may hold where the system does not say its memory.
DEFAULT_MAX_PICKLE_BYTES = 4 * 2**30


def max_pickle_bytes() -> Tuple[int, str]:
  """The most bytes of pickle leo reads (decompressed), and why: a quarter of this machine's
  memory, since the pickle's bytes and then the arrays built from them must fit, with room."""
  memory = sizes.memory_bytes()
  if not memory:
    return DEFAULT_MAX_PICKLE_BYTES, "the most leo reads where the system does not say its memory"
  return memory // 4, f"a quarter of this machine's {memory / 2**20:,.0f} MB of memory"


class _CountedReader(io.RawIOBase):
  """The bytes of an open file, a block at a time, counted: past `limit` of them, `refusal`
  (a DataError) is raised instead of handing on more."""

  def __init__(self, file, limit: int, refusal: str):
    super().__init__()
    self._file, self._limit, self._refusal = file, limit, refusal
    self._count = 0

  def readable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    # A block at most, whatever was asked: TF's GFile would hold a large read twice.
    block = self._file.read(min(len(buffer), _READ_BYTES))
    self._count += len(block)
    if self._count > self._limit:
      raise DataError(self._refusal)
    buffer[:len(block)] = block
    return len(block)


def _unpickled(path: str):
  """The object pickled in `path` (decompressed if it ends in .gz), unpickled as the file
  streams in: its bytes are never all in memory beside the arrays made of them. They are
  counted, and refused (DataError) as soon as they exceed `max_pickle_bytes`: a small gzip
  bomb never takes more memory than that."""
  limit, why = max_pickle_bytes()
  zipped = path.endswith(GZIP_SUFFIX)
  refusal = (f"{path}: holds more than {limit / 2**20:,.0f} MB of pickle"
             f"{' once decompressed' if zipped else ''}, {why}: embeddings that large need a "
             "machine with more memory")
  with storage.reading(path, None) as file:
    # Buffered, the unpickler reads its small opcodes from memory; an array's bytes it reads
    # into their own buffer (readinto), straight from the file.
    stream = io.BufferedReader(
        _CountedReader(gzip.GzipFile(fileobj=file) if zipped else file, limit, refusal),
        _READ_BYTES)
    try:
      # latin1 maps every Python 2 `str` byte to one code point, which is what numpy expects
      # back when it rebuilds the arrays of a Python 2 pickle.
      return _DataUnpickler(stream, encoding="latin1").load()
    finally:
      # The rest of the file is counted too, whatever the unpickler made of it: a file over
      # the bound is refused as such, even where its first bytes are not a pickle.
      for _ in iter(lambda: stream.read(_READ_BYTES), b""):
        pass


def load_pickle(path: str):
  """Unpickles `path` as data (Python 2 and 3 pickles; gzipped if it ends in .gz), refusing
  anything that names code.

  Raises:
    DataError: the file is missing, unreadable, truncated, garbled, larger than
      `max_pickle_bytes`, or names a global that is not plain data. Nothing named by a refused
      pickle is imported or called.
  """
  # tf.io.gfile, as the original's tf.gfile: --data_path may be gs://..., or ram:// in tests.
  if not _exists(path) or tf.io.gfile.isdir(path):
    raise DataError(f"{path}: file not found; expected {DOWNLOAD_HINT}, laid out as "
                    "<data_path>/<dataset_name>/<embedding_crop>/<split>_embeddings.pkl")
  try:
    return _unpickled(path)
  except DataError:
    raise
  except storage.StorageError as e:
    raise DataError(str(e)) from None
  except RefusedGlobal as e:
    raise DataError(f"{path}: {e}") from None
  except MemoryError:
    raise DataError(f"{path}: not a valid embeddings pickle (it declares more data than "
                    "fits in memory)") from None
  except (Exception, RecursionError) as e:  # pylint: disable=broad-except
    raise DataError(f"{path}: not a valid embeddings pickle (truncated or garbled: "
                    f"{type(e).__name__}: {_one_line(e)})") from None


def _exists(path: str) -> bool:
  """Whether `path` exists; an object store that cannot be reached is one line."""
  try:
    return tf.io.gfile.exists(path)
  except tf.errors.OpError as e:
    raise DataError(f"{path}: unreachable ({type(e).__name__}: {_one_line(e)})") from None


def _one_line(error: BaseException, limit: int = 200) -> str:
  text = " ".join(str(error).split())
  return text if len(text) <= limit else text[:limit] + "..."


# ---- Validating and indexing one split. ----

@dataclasses.dataclass(frozen=True)
class SplitIndex:
  """One split's keys with the class index the original built from them: what the rows of
  its episodes, and of portable tasks (tasks.py), refer to.

  Attributes:
    keys: `[images]` the keys as read, NUL padding stripped.
    image_names: `[images]` file names (the third part of each key).
    class_names: distinct classes in order of first appearance.
    rows_by_class: for each class of `class_names`, its rows in file order.
  """
  keys: List[str]
  image_names: List[str]
  class_names: List[str]
  rows_by_class: List[np.ndarray]

  @property
  def smallest_class(self):
    """(name, number of images) of the class with the fewest images."""
    sizes = [len(rows) for rows in self.rows_by_class]
    smallest = int(np.argmin(sizes))
    return self.class_names[smallest], sizes[smallest]


@dataclasses.dataclass(frozen=True)
class Embeddings(SplitIndex):
  """One split's embeddings with its index (`SplitIndex`).

  Attributes:
    embeddings: float32 `[images, dim]`, rows in file order.
  """
  embeddings: np.ndarray

  @property
  def embedding_dim(self) -> int:
    return self.embeddings.shape[1]

  @property
  def index(self) -> SplitIndex:
    """The keys and class index without the embeddings (what a `DataProvider` keeps)."""
    return SplitIndex(keys=self.keys, image_names=self.image_names,
                      class_names=self.class_names, rows_by_class=self.rows_by_class)


def _as_text(value, path: str, index: int) -> str:
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, bytes):
    value = value.decode("latin1")
  if not isinstance(value, str):
    raise DataError(f"{path}: keys[{index}] is a {type(value).__name__}, expected a string "
                    "'<prefix>-<class>-<image>'")
  # The original stripped NUL padding from the image names of its episodes (`tr_info`), not
  # from the keys; stripping trailing NULs of a key first gives the same image names and lets
  # fixed-width (numpy 'S'/'U') key arrays parse.
  return value.rstrip("\x00")


def _key_list(keys, path: str) -> List[str]:
  if isinstance(keys, np.ndarray):
    if keys.ndim != 1 or keys.dtype.kind not in "USO":
      raise DataError(f"{path}: 'keys' is an array of shape {keys.shape} and dtype {keys.dtype}, "
                      "expected a 1-D array of strings")
  elif not isinstance(keys, (list, tuple)):
    raise DataError(f"{path}: 'keys' is a {type(keys).__name__}, expected an array or list of "
                    "strings")
  return [_as_text(key, path, i) for i, key in enumerate(keys)]


def parse_key(key: str, path: str = "<keys>"):
  """`<prefix>-<class>-<image>` -> (class, image), as the original's loader (its checks too)."""
  parts = key.split("-")
  if len(parts) != 3:
    raise DataError(f"{path}: malformed key {key!r}: expected exactly three '-'-separated parts "
                    "'<prefix>-<class>-<image>'")
  _, class_name, image_name = parts
  if image_name.split("_")[0] != class_name or not class_name:
    raise DataError(f"{path}: malformed key {key!r}: the image name {image_name!r} must start "
                    f"with its class {class_name!r} followed by '_'")
  return class_name, image_name


def _entry(raw: dict, name: str):
  for key in (name, name.encode("latin1")):
    if key in raw:
      return raw[key]
  found = sorted(str(key) for key in raw)[:10]
  raise KeyError(f"expected key '{name}', found keys {found}")


def validate_embeddings(raw, path: str) -> Embeddings:
  """Checks a loaded pickle the way the original loader did, and a little more."""
  if not isinstance(raw, dict):
    raise DataError(f"{path}: the pickle holds a {type(raw).__name__}, expected a dict with "
                    "'keys' and 'embeddings'")
  try:
    keys, embeddings = _entry(raw, "keys"), _entry(raw, "embeddings")
  except KeyError as e:
    raise DataError(f"{path}: {e.args[0]} ('keys': strings, 'embeddings': float array "
                    "[images, dim])") from None
  if (not isinstance(embeddings, np.ndarray) or embeddings.ndim != 2
      or embeddings.dtype.kind != "f" or 0 in embeddings.shape):
    description = (f"an array of shape {embeddings.shape} and dtype {embeddings.dtype}"
                   if isinstance(embeddings, np.ndarray) else f"a {type(embeddings).__name__}")
    raise DataError(f"{path}: 'embeddings' is {description}, expected a non-empty 2-D float "
                    "array [images, dim]")
  with np.errstate(over="ignore", invalid="ignore"):
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
  problem = normalisation_problem(embeddings)
  if problem:
    raise DataError(f"{path}: 'embeddings' {problem}")
  keys = _key_list(keys, path)
  if len(keys) != embeddings.shape[0]:
    raise DataError(f"{path}: {len(keys)} keys but {embeddings.shape[0]} embedding rows, "
                    "expected one key per row")
  rows = collections.OrderedDict()
  image_names = []
  seen = set()
  for row, key in enumerate(keys):
    class_name, image_name = parse_key(key, path)
    if image_name in seen:
      raise DataError(f"{path}: duplicate image name {image_name!r} (key {key!r}), expected "
                      "unique image names")
    seen.add(image_name)
    image_names.append(image_name)
    rows.setdefault(class_name, []).append(row)
  return Embeddings(
      keys=keys,
      embeddings=_tf_aligned(embeddings),  # Copied last: the checks' arrays are gone.
      image_names=image_names,
      class_names=list(rows),
      rows_by_class=[np.asarray(r, dtype=np.int64) for r in rows.values()])


# TF's CPU kernels read a buffer only at this alignment (Eigen's EIGEN_MAX_ALIGN_BYTES; they
# abort on another). numpy promises 16: a large array starts 16 bytes into a page, an
# unpickled one 48.
_TF_ALIGNMENT = 64


def _tf_aligned(embeddings: np.ndarray) -> np.ndarray:
  """`embeddings` as float32, C-contiguous and aligned as TF reads a buffer in place
  (`DataProvider`), and writable (numpy hands only those to DLPack): the array itself if it
  is all that, else such a copy. A copy made here, while loading, costs a split's bytes once;
  the `tf.constant` it spares would cost them twice (a numpy copy, let go late, then an
  aligned one)."""
  if (embeddings.dtype == np.float32 and embeddings.flags.c_contiguous
      and embeddings.flags.writeable and embeddings.ctypes.data % _TF_ALIGNMENT == 0):
    return embeddings
  size = embeddings.size * np.dtype(np.float32).itemsize
  buffer = np.empty(size + _TF_ALIGNMENT, np.uint8)
  start = -buffer.ctypes.data % _TF_ALIGNMENT
  aligned = buffer[start:start + size].view(np.float32).reshape(embeddings.shape)
  aligned[...] = embeddings
  return aligned


# tf.math.l2_normalize's epsilon, as the original calls it: a row whose squared norm is below
# it is not scaled to unit length.
L2_NORMALIZE_EPSILON = 1e-12


def normalisation_problem(embeddings: np.ndarray) -> Optional[str]:
  """Why the model cannot L2-normalise float32 `embeddings` [..., dim] row by row, as one
  line, or None: a NaN or Inf, or a row whose squared norm, summed in float32 as the model
  sums it, is not in [L2_NORMALIZE_EPSILON, FLOAT32_MAX]. Embeddings scaled by 1e-25 (their
  squares underflow to 0) or 1e25 (they overflow) would score chance on every task."""
  def first(bad):
    index = [int(i) for i in np.unravel_index(np.argmax(bad), bad.shape)]
    return index[0] if len(index) == 1 else index

  finite = np.isfinite(embeddings).all(axis=-1)
  if not finite.all():
    return (f"contains NaN or Inf in float32 (first in row {first(~finite)}), expected finite "
            "float32 values")
  with np.errstate(over="ignore", under="ignore", invalid="ignore"):
    squared = np.einsum("...i,...i->...", embeddings, embeddings)
  in_range = np.isfinite(squared) & (squared >= np.float32(L2_NORMALIZE_EPSILON))
  if in_range.all():
    return None
  norms = np.sqrt(np.einsum("...i,...i->...", embeddings, embeddings, dtype=np.float64))
  bounds = (L2_NORMALIZE_EPSILON, config_lib.FLOAT32_MAX)
  return (f"has rows of L2 norm {norms.min():.3g} to {norms.max():.3g} (first out of range: "
          f"row {first(~in_range)}), expected norms whose squares in float32 lie in "
          f"[{bounds[0]:g}, {bounds[1]:.4g}] (norms of {math.sqrt(bounds[0]):g} to "
          f"{math.sqrt(bounds[1]):.3g}), which the model scales to unit length: rescale them")


def load_embeddings(path: str) -> Embeddings:
  """Reads and validates one `<split>_embeddings.pkl`."""
  return validate_embeddings(load_pickle(path), path)


def merge_embeddings(parts: Sequence[Embeddings], paths: Sequence[str]) -> Embeddings:
  """Concatenates splits along the image axis (the original's `train_on_val`)."""
  raw = {"keys": [key for part in parts for key in part.keys],
         "embeddings": np.concatenate([part.embeddings for part in parts])}
  return validate_embeddings(raw, " + ".join(paths))


def split_path(config: config_lib.DataConfig, split: MetaSplit) -> str:
  """`<data_path>/<dataset_name>/<embedding_crop>/<split>_embeddings.pkl`."""
  data_path = config.data_path
  if data_path is None:
    if config.dataset_name not in BUNDLED_DATASETS:
      raise DataError(f"--data_path is required for --dataset_name={config.dataset_name}: "
                      f"point it at {DOWNLOAD_HINT} (or use --dataset_name=icons, bundled)")
    data_path = BUNDLED_DATA_PATH
  join = os.path.join if "://" not in data_path else posixpath.join
  path = join(data_path, config.dataset_name, config.embedding_crop,
              f"{split.value}_embeddings.pkl")
  # A gzipped pickle stands in for a missing plain one (the bundled train split, whose plain
  # size is over what a file of the repository may have).
  if not _exists(path) and _exists(path + GZIP_SUFFIX):
    return path + GZIP_SUFFIX
  return path


def load_split(config: config_lib.DataConfig, split: MetaSplit) -> Embeddings:
  """A split's embeddings; with `train_on_val`, the train split holds the val classes too."""
  paths = [split_path(config, split)]
  if split == MetaSplit.TRAIN and config.train_on_val:
    paths.append(split_path(config, MetaSplit.VALID))
  parts = [load_embeddings(path) for path in paths]
  if len(parts) == 1:
    return parts[0]
  return merge_embeddings(parts, paths)


# ---- Sampling episodes. ----

class DataProvider:
  """Samples N-way K-shot episodes of one split, seeded, as TF ops.

  The original's `DataProvider(dataset_split, config)`: classes are drawn without
  replacement, then `tr_size + val_size` distinct images of each class. Tensors are
  class-major: axis `classes` is the class position and the label of every example of the
  class at position c is c. Embeddings are L2-normalised on the last axis (after the run's
  embedding transform, if it has one).
  """

  def __init__(self, dataset_split, config: config_lib.DataConfig, seed: int = 0,
               embeddings: Optional[Embeddings] = None, transform=None):
    """Loads (or takes) the split and keeps in memory its index and its rows as the model
    reads them (transformed, normalised); of the rows as loaded, only their digest.

    Args:
      dataset_split: a `MetaSplit` or its value ("train", "val", "test").
      config: the data config.
      seed: seeds the episode stream; each split draws from its own stream.
      embeddings: already loaded embeddings of this split (skips reading the files).
      transform: a fitted `transforms.EmbeddingTransform` applied to every row before its
        normalisation, or None (the original's input).
    """
    self.split = MetaSplit(dataset_split)
    self._config = config
    split = embeddings if embeddings is not None else load_split(config, self.split)
    self._data = split.index
    # Taken now: nothing else needs the rows as loaded once they are normalised, and keeping
    # them beside their normalised copy would hold the split's bytes twice.
    self._embeddings_digest = embeddings_digest(split)
    sizes = np.array([len(rows) for rows in self._data.rows_by_class])
    padded = np.zeros((len(sizes), sizes.max()), dtype=np.int64)
    for c, rows in enumerate(self._data.rows_by_class):
      padded[c, :len(rows)] = rows
    self._class_sizes = tf.constant(sizes, dtype=tf.int32)
    self._rows_by_class = tf.constant(padded)
    # For `query_logits`: each row's class and slot (its position among the class's rows),
    # and where each class starts in `_class_blocks` (the rows class by class, made once).
    self._block_order = np.concatenate(self._data.rows_by_class)
    self._block_starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    class_of_row, slot_of_row = np.empty((2, len(self._block_order)), dtype=np.int64)
    for c, rows in enumerate(self._data.rows_by_class):
      class_of_row[rows], slot_of_row[rows] = c, np.arange(len(rows))
    self._class_of_row = tf.constant(class_of_row, dtype=tf.int32)
    self._slot_of_row = tf.constant(slot_of_row)
    self._class_blocks = None
    # TF reads the rows as loaded in place (tf.constant would copy them twice), only until
    # they are normalised (nothing writes them meanwhile): at the peak, the split's bytes are
    # held twice (the rows and their squares, then the rows and the result), then once.
    rows = _tf_aligned(split.embeddings)
    rows = tf.experimental.dlpack.from_dlpack(rows.__dlpack__())
    if transform is not None:
      rows = self._transformed(rows, transform)
    # Normalising every row once equals normalising every episode (rows are independent).
    self._embeddings = tf.math.l2_normalize(rows, axis=-1)
    self._image_names = tf.constant(self._data.image_names)
    self.generator = tf.random.Generator.from_seed(
        seed * len(MetaSplit) + _SPLIT_SEED_OFFSET[self.split])

  def _transformed(self, embeddings: tf.Tensor, transform) -> tf.Tensor:
    """The split's rows transformed, checked as the rows of a file are (a row the transform
    takes to 0, e.g. one equal to the mean `center` subtracts, cannot be normalised)."""
    path = split_path(self._config, self.split)
    if transform.dim != embeddings.shape[1]:
      raise DataError(f"{path}: {embeddings.shape[1]}-d embeddings, but the run's "
                      f"--embedding_transform={transform.name} was fitted on {transform.dim}-d "
                      "ones")
    transformed = transform(embeddings)
    problem = normalisation_problem(transformed.numpy())
    if problem:
      raise DataError(f"{path}: after --embedding_transform={transform.name}, the embeddings "
                      f"{problem}")
    return transformed

  @property
  def embedding_dim(self) -> int:
    return self._embeddings.shape[1]

  @property
  def largest_class(self) -> int:
    """The number of images of the largest class."""
    return max(len(rows) for rows in self._data.rows_by_class)

  @property
  def split_data(self) -> SplitIndex:
    """The split's keys and class index as loaded: its keys name the images of portable tasks
    (tasks.py). Its embeddings as loaded are not kept (`embeddings_digest` is theirs)."""
    return self._data

  @property
  def path(self) -> str:
    return split_path(self._config, self.split)

  @property
  def keys_digest(self) -> str:
    return keys_digest(self._data)

  @property
  def embeddings_digest(self) -> str:
    """`embeddings_digest` of the split as loaded (before any transform)."""
    return self._embeddings_digest

  @property
  def num_classes(self) -> int:
    return len(self._data.class_names)

  @property
  def class_names(self) -> List[str]:
    return list(self._data.class_names)

  def remaining_examples_per_class(self, tr_size: int,
                                   fixed: Optional[int] = None) -> int:
    """Queries per class of evaluation tasks: `fixed`, or all remaining images.

    "All remaining" is min(total_examples_per_class, smallest class) - tr_size: 600 - K on
    mini/tieredImageNet, as the original.
    """
    if fixed is not None:
      return fixed
    _, smallest = self._data.smallest_class
    return min(self._config.total_examples_per_class, smallest) - tr_size

  def check_task_shape(self, num_classes: int, tr_size: int, val_size: int):
    """Raises DataError unless the split can give such episodes without replacement."""
    path = split_path(self._config, self.split)
    if num_classes > self.num_classes:
      raise DataError(f"{path}: {self.num_classes} classes, fewer than --num_classes="
                      f"{num_classes}")
    name, size = self._data.smallest_class
    if tr_size < 1 or val_size < 1 or size < tr_size + val_size:
      raise DataError(f"{path}: class {name!r} has {size} images, expected at least "
                      f"{tr_size} support + {val_size} query = {tr_size + val_size}")

  def get_instance(self, num_classes: int, tr_size: int, val_size: int) -> ProblemInstance:
    """One episode: tensors `[classes, shots, ...]` (see `get_batch`)."""
    batch = self.get_batch(1, num_classes, tr_size, val_size)
    return ProblemInstance(*[tensor[0] for tensor in batch])

  def get_batch(self, batch_size: int, num_classes: int, tr_size: int,
                val_size: int) -> ProblemInstance:
    """A batch of independent episodes.

    Returns:
      ProblemInstance with tr_input `[tasks, classes, tr_size, dim]` float32,
      tr_output `[tasks, classes, tr_size, 1]` int32 (the class position), tr_info
      `[tasks, classes, tr_size]` image names, and val_* likewise with `val_size` queries.
    """
    self.check_task_shape(num_classes, tr_size, val_size)
    return self.episodes(self.sample_rows(batch_size, num_classes, tr_size + val_size), tr_size)

  def sample_rows(self, batch_size: int, num_classes: int, examples: int) -> tf.Tensor:
    """Which images make each episode: rows of the split `[tasks, classes, examples]` int64,
    classes in their episode order, each class's first images its support set."""
    seeds = self.generator.make_seeds(2)
    # The top-N of i.i.d. uniform keys is a uniformly random ordered subset: N distinct
    # classes in random order, as shuffling and keeping the first N.
    class_keys = tf.random.stateless_uniform([batch_size, self.num_classes], seeds[:, 0])
    _, classes = tf.math.top_k(class_keys, k=num_classes)
    sizes = tf.gather(self._class_sizes, classes)
    max_size = self._rows_by_class.shape[1]
    example_keys = tf.random.stateless_uniform([batch_size, num_classes, max_size],
                                               seeds[:, 1])
    # Padding slots get key -1 and are never among the top `examples` of a large-enough class.
    in_class = tf.range(max_size)[tf.newaxis, tf.newaxis, :] < sizes[:, :, tf.newaxis]
    _, slots = tf.math.top_k(tf.where(in_class, example_keys, -1.0), k=examples)
    return tf.gather(tf.gather(self._rows_by_class, classes), slots, batch_dims=2)

  def episodes(self, rows: tf.Tensor, tr_size: int) -> ProblemInstance:
    """The episodes of `rows` `[tasks, classes, examples]` (see `get_batch`)."""
    batch_size, num_classes, examples = rows.shape
    # Support and query rows are gathered apart: slicing one gathered tensor would copy the
    # (large, for evaluation) query embeddings a second time.
    tr_rows, val_rows = rows[:, :, :tr_size], rows[:, :, tr_size:]
    labels = tf.broadcast_to(
        tf.range(num_classes, dtype=tf.int32)[tf.newaxis, :, tf.newaxis, tf.newaxis],
        [batch_size, num_classes, examples, 1])
    return ProblemInstance(
        tr_input=tf.gather(self._embeddings, tr_rows), tr_output=labels[:, :, :tr_size],
        tr_info=tf.gather(self._image_names, tr_rows),
        val_input=tf.gather(self._embeddings, val_rows), val_output=labels[:, :, tr_size:],
        val_info=tf.gather(self._image_names, val_rows))

  def query_logits(self, query_rows: tf.Tensor, class_weights: tf.Tensor) -> tf.Tensor:
    """Logits of the episodes' queries against one linear classifier per task.

    The same numbers as `einsum("tijd,tnd->tijn", episodes(...).val_input, class_weights)`,
    without gathering the query embeddings when there are many (evaluation: ~600 per class,
    7.7 MB a task): each class's block of rows is multiplied, in place, by the weights of
    every task that drew the class, and the queries' logits are picked from the products.

    Args:
      query_rows: `[tasks, classes, queries]` rows of `sample_rows` (the queries' part), each
        class's rows from one class of the split.
      class_weights: `[tasks, N, dim]` float, the classifier of each task.

    Returns:
      `[tasks, classes, queries, N]` logits, of the dtype of `class_weights`.
    """
    tasks, num_classes, queries = query_rows.shape
    if 2 * queries < self.largest_class:  # Few queries: gathering them costs less.
      inputs = tf.cast(tf.gather(self._embeddings, query_rows), class_weights.dtype)
      return tf.einsum("tijd,tnd->tijn", inputs, class_weights)
    if self._class_blocks is None:
      with tf.init_scope():  # Once, eagerly, even when first called in a tf.function.
        class_major = np.array_equal(self._block_order, np.arange(len(self._block_order)))
        self._class_blocks = (self._embeddings if class_major  # The published files are.
                              else tf.gather(self._embeddings, self._block_order))
    blocks = tf.cast(self._class_blocks, class_weights.dtype)
    outputs = class_weights.shape[1]
    episode_classes = tf.gather(self._class_of_row, query_rows[:, :, 0])  # [tasks, classes]
    slots = tf.gather(self._slot_of_row, query_rows)
    positions, logits = [], []
    for c, (start, rows) in enumerate(zip(self._block_starts, self._data.rows_by_class)):
      drawn = tf.where(tf.equal(episode_classes, c))  # [m, 2]: (task, class position).
      weights = tf.reshape(tf.gather(class_weights, drawn[:, 0]), [-1, self.embedding_dim])
      block_logits = tf.matmul(blocks[start:start + len(rows)], weights, transpose_b=True)
      block_logits = tf.reshape(block_logits, [len(rows), -1, outputs])  # [images, m, N]
      query_slots = tf.gather_nd(slots, drawn)  # [m, queries]
      drawer = tf.broadcast_to(tf.range(tf.shape(query_slots, tf.int64)[0])[:, tf.newaxis],
                               tf.shape(query_slots, tf.int64))
      logits.append(tf.gather_nd(block_logits, tf.stack([query_slots, drawer], axis=-1)))
      positions.append(tf.cast(drawn[:, 0] * num_classes + drawn[:, 1], tf.int32))
    logits = tf.dynamic_stitch(positions, logits)  # [tasks * classes, queries, N]
    return tf.reshape(logits, [tasks, num_classes, queries, outputs])


def keys_digest(split: SplitIndex) -> str:
  """SHA-256 of a split's keys in file order: what the rows of `sample_rows` refer to."""
  digest = hashlib.sha256()
  for key in split.keys:
    digest.update(key.encode("utf-8") + b"\0")
  return digest.hexdigest()


def embeddings_digest(embeddings: Embeddings) -> str:
  """SHA-256 of a split's embeddings as loaded (float32, row-major)."""
  # Hashed in place: the bytes of a C-contiguous array are those of its tobytes(), uncopied.
  return hashlib.sha256(np.ascontiguousarray(embeddings.embeddings)).hexdigest()


def data_digest(providers: Sequence[DataProvider]) -> str:
  """SHA-256 of the splits a run is made of, their keys and embeddings as loaded: what a run
  folder's identity holds of its data (the path may change, these bytes may not)."""
  return _digest((provider.split, provider.keys_digest, provider.embeddings_digest)
                 for provider in providers)


def run_data_digest(config: config_lib.DataConfig) -> str:
  """`data_digest` of the run's splits at `config`, read from disk: what an evaluation of
  its model on them checks."""
  return _digest(_split_digests(split, load_split(config, split)) for split in MetaSplit)


def _split_digests(split: MetaSplit, embeddings: Embeddings):
  return split, keys_digest(embeddings), embeddings_digest(embeddings)


def _digest(splits) -> str:
  """SHA-256 of (split, keys digest, embeddings digest) of each split."""
  digest = hashlib.sha256()
  for split, keys, embeddings in splits:
    digest.update(f"{split.value}:{keys}:{embeddings}\n".encode("ascii"))
  return digest.hexdigest()


def embeddings_folder(config: config_lib.DataConfig) -> str:
  """`<data_path>/<dataset_name>/<embedding_crop>`: the split pickles and, for embeddings leo
  made, their PROVENANCE.json and backbone (backbone.py)."""
  path = split_path(config, MetaSplit.TEST)
  return os.path.dirname(path) if "://" not in path else posixpath.dirname(path)


class Episodes:
  """The splits' samplers and the task shapes of the protocol.

  Training loads train, val and test; an evaluation loads only `eval_split`, of
  `data_config` (`Configs.evaluated_data`; default the run's). Every split is transformed by
  `transform` (`transforms.py`): given (a trained run's, `transforms.saved`), or, for
  training without one, fitted on the train split by `--embedding_transform`.
  """

  def __init__(self, configs: config_lib.Configs, need_train: bool, eval_split: str = "test",
               data_config: Optional[config_lib.DataConfig] = None, transform=None):
    outer, seed = configs.outer, configs.run.seed
    shots, num_classes = outer.num_tr_examples_per_class, outer.num_classes
    evaluated = data_config or configs.data
    self.train = None
    if need_train:
      train = load_split(configs.data, MetaSplit.TRAIN)
      if transform is None:
        transform = transforms.fit(configs.data.embedding_transform, train.embeddings,
                                   train.rows_by_class)
      self.train = DataProvider("train", configs.data, seed, train, transform)
      del train  # The provider keeps its index and normalised rows; the rows as loaded go.
    self.transform = transform
    self.valid = (DataProvider("val", evaluated, seed, transform=transform)
                  if need_train or eval_split == "val" else None)
    self.test = (DataProvider("test", evaluated, seed, transform=transform)
                 if need_train or eval_split == "test" else None)
    fixed = outer.num_eval_examples_per_class
    self.valid_queries = self.valid and self.valid.remaining_examples_per_class(shots, fixed)
    self.test_queries = self.test and self.test.remaining_examples_per_class(shots, fixed)
    # Every shape is checked now, before anything is written or trained.
    if need_train:
      self.train.check_task_shape(num_classes, shots, outer.num_val_examples_per_class)
    for provider, queries in ((self.valid, self.valid_queries), (self.test, self.test_queries)):
      if provider:
        provider.check_task_shape(num_classes, shots, queries)
    dims = {p.embedding_dim for p in (self.train, self.valid, self.test) if p}
    if len(dims) != 1:
      raise DataError(f"the splits of --dataset_name={evaluated.dataset_name} have "
                           f"different embedding sizes {sorted(dims)}")
    self.embedding_dim = dims.pop()

  def split(self, name: str):
    """(provider, queries per class) of the evaluation split `name` ("val" or "test")."""
    return (self.valid, self.valid_queries) if name == "val" else (self.test, self.test_queries)
