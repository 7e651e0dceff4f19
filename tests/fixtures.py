"""Tiny embeddings datasets in the published layout, in both pickle flavours, and tiny image
folders.

The published `embeddings.zip` was written by Python 2: its pickles hold Python 2 `str`
objects (opcode BINSTRING), which Python 3 can only read with `encoding="latin1"`. Python 3
cannot produce such a file with `pickle.dump`, so `py2_pickle_bytes` writes the opcodes the way
Python 2's cPickle (protocol 2) and numpy 1.x's `ndarray.__reduce__` did.
"""

import os
import pickle
import struct

import numpy as np
import tensorflow as tf

SPLITS = ("train", "val", "test")


# ---- Python 2 flavour (protocol 2, byte strings as BINSTRING). ----

class Opcodes(bytes):
  """Pickle opcodes to be written as they are, as a value of `py2_pickle_bytes`."""


def _py2_str(value: bytes) -> bytes:
  if len(value) < 256:
    return b"U" + bytes([len(value)]) + value
  return b"T" + struct.pack("<i", len(value)) + value


def _py2_int(value: int) -> bytes:
  if 0 <= value < 256:
    return b"K" + bytes([value])
  if -2**31 <= value < 2**31:
    return b"J" + struct.pack("<i", value)
  encoded = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
  return b"\x8a" + bytes([len(encoded)]) + encoded  # LONG1, Python 2's `long`.


def _py2_global(module: str, name: str) -> bytes:
  return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _py2_dtype(dtype: np.dtype) -> bytes:
  # numpy 1.x pickled a dtype as dtype(descr, 0, 1) plus a version-3 state tuple.
  if dtype.kind == "S":
    descr, order, elsize, alignment, flags = b"S%d" % dtype.itemsize, b"|", dtype.itemsize, 1, 0
  elif dtype.kind == "U":
    descr, order, elsize, alignment, flags = (b"U%d" % (dtype.itemsize // 4), b"<",
                                              dtype.itemsize, 4, 8)
  elif dtype.kind == "O":
    descr, order, elsize, alignment, flags = b"O8", b"|", -1, -1, 63
  else:
    descr = dtype.str[1:].encode()
    order, elsize, alignment, flags = b"<", -1, -1, 0
  return (_py2_global("numpy", "dtype") + _py2_str(descr) + _py2_int(0) + _py2_int(1)
          + b"\x87R" + b"(" + _py2_int(3) + _py2_str(order) + b"NNN" + _py2_int(elsize)
          + _py2_int(alignment) + _py2_int(flags) + b"tb")


def _py2_value(value) -> bytes:
  if isinstance(value, str):
    return _py2_str(value.encode("latin1"))
  if isinstance(value, bytes):
    return _py2_str(value)
  if isinstance(value, (int, np.integer)):
    return _py2_int(int(value))
  if isinstance(value, list):
    return b"](" + b"".join(_py2_value(v) for v in value) + b"e"
  if isinstance(value, np.ndarray):
    if value.dtype.kind == "O":
      data = b"](" + b"".join(_py2_value(v) for v in value.ravel()) + b"e"
    else:
      data = _py2_str(np.ascontiguousarray(value).tobytes())
    return py2_array_opcodes(value.shape, value.dtype, data)
  raise TypeError(f"no Python 2 encoding for {type(value)}")


def _py2_tuple(values) -> bytes:
  return b"(" + b"".join(_py2_int(v) for v in values) + b"t"


def py2_array_opcodes(shape, dtype: np.dtype, data: bytes, constructed_shape=(0,)) -> bytes:
  """numpy 1.x's pickle of an array: `_reconstruct(ndarray, (0,), 'b')` then its state.

  `shape`, `data` (already encoded opcodes) and `constructed_shape` are taken as given, so a
  test can declare shapes that do not match the data.
  """
  return (_py2_global("numpy.core.multiarray", "_reconstruct") + _py2_global("numpy", "ndarray")
          + _py2_tuple(constructed_shape) + _py2_str(b"b") + b"\x87R"
          + b"(" + _py2_int(1) + _py2_tuple(shape) + _py2_dtype(dtype) + b"\x89" + data + b"tb")


def py2_pickle_bytes(contents: dict) -> bytes:
  """A protocol-2 pickle of a dict of str -> (array | list | str | int), as Python 2 wrote it."""
  items = b"".join(_py2_value(k) + (v if isinstance(v, Opcodes) else _py2_value(v))
                  for k, v in contents.items())
  return b"\x80\x02}(" + items + b"u."


# ---- Datasets in the published layout. ----

def class_name(split: str, index: int) -> str:
  """A WordNet-id-like class name, distinct across splits."""
  return "n%08d" % (SPLITS.index(split) * 1000 + index)


def make_split(split: str, num_classes: int, images_per_class, dim: int, rng,
               keys_as: str = "S"):
  """A dict like the published ones: keys, embeddings and labels, class after class.

  Args:
    images_per_class: an int, or a list with one count per class.
    keys_as: "S" (numpy bytes array, as Python 2 numpy stored str), "U" (unicode array),
      "O" (object array) or "list".
  """
  if isinstance(images_per_class, int):
    images_per_class = [images_per_class] * num_classes
  keys, labels = [], []
  for c, count in enumerate(images_per_class):
    name = class_name(split, c)
    keys += [f"{c * 1000 + i}-{name}-{name}_{i:05d}.JPEG" for i in range(count)]
    labels += [c] * count
  embeddings = rng.normal(size=(len(keys), dim)).astype(np.float32)
  if keys_as == "list":
    key_array = keys
  elif keys_as == "O":
    key_array = np.array(keys, dtype=object)
  else:
    key_array = np.array(keys, dtype=keys_as)
  return {"keys": key_array, "embeddings": embeddings,
          "labels": np.array(labels, dtype=np.int64)}


def write_pickle(path: str, contents, flavour: str = "py2"):
  """Writes `contents` as a Python 2 ("py2") or an ordinary Python 3 ("py3") pickle."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    if flavour == "py2":
      f.write(py2_pickle_bytes(contents))
    else:
      pickle.dump(contents, f, protocol=pickle.HIGHEST_PROTOCOL)


def make_dataset(root: str, dataset_name: str = "tiny", embedding_crop: str = "center",
                 classes=(8, 5, 5), images_per_class=20, dim: int = 16,
                 flavour: str = "py2", seed: int = 0, keys_as: str = "S") -> str:
  """Writes `<root>/<dataset_name>/<crop>/{train,val,test}_embeddings.pkl`; returns `root`."""
  rng = np.random.default_rng(seed)
  for split, num_classes in zip(SPLITS, classes):
    contents = make_split(split, num_classes, images_per_class, dim, rng, keys_as)
    write_pickle(os.path.join(root, dataset_name, embedding_crop, f"{split}_embeddings.pkl"),
                 contents, flavour)
  return root


# ---- Image folders (images.py). ----

def write_png(path: str, pixels: np.ndarray):
  """pixels: uint8 [height, width, channels]."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(path, tf.io.encode_png(pixels))


def image_folder(root: str, num_classes: int = 10, per_class: int = 6, side: int = 16,
                 seed: int = 0) -> str:
  """Class folders `class-<i>` of noisy copies of one random grayscale pattern each, as PNGs
  `img-<j>.png`; returns `root`."""
  rng = np.random.default_rng(seed)
  for label in range(num_classes):
    pattern = rng.integers(0, 256, size=(side, side, 1))
    for i in range(per_class):
      noisy = np.clip(pattern + rng.integers(-20, 21, size=pattern.shape), 0, 255)
      write_png(os.path.join(root, f"class-{label}", f"img-{i}.png"), noisy.astype(np.uint8))
  return root
