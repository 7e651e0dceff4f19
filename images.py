# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Image folders: labelled images, one sub-folder per class, read as the arrays a backbone embeds.

    my_images/
      cat/  a.jpg  b.png ...
      dog/  ...

Every file of a class folder is an image (PNG, JPEG, GIF's first frame or BMP: what TF decodes);
hidden files are skipped. Each image is read as it is published for miniImageNet: resized to
the square side without keeping the aspect ratio (area averaging when it shrinks), here to
grayscale or RGB as the backbone takes. Transparent pixels are composited on white, the
background of the bundled icons. Classes are the folder names in sorted order, images the
file names (without extension) in sorted order, so a folder always gives the same arrays.

`prediction.py` reads a support folder (`read_image_folder`) and queries (`image_files`,
`read_images`) with it; the embedding tools (`tools/data/`) read the folders a user embeds,
and split their classes (`random_split`) when no split file is given.
"""

import os
import struct
from typing import List, Optional, Sequence, Tuple

import numpy as np

import storage
import utils

tf = utils.import_tensorflow()

IMAGE_SIDE = 84  # miniImageNet's and the bundled icons' size.
# The classes of a folder without a split file: miniImageNet's 64 / 16 / 20 shares.
SPLIT_FRACTIONS = (("train", 0.64), ("val", 0.16), ("test", 0.20))
MIN_SPLIT_CLASSES = 5  # One 5-way task.
# Larger images are refused before they are decoded: reading one takes 32 bytes a pixel
# (RGBA as float64), 1.2 GB at this size, a 24-megapixel photograph's twice.
MAX_IMAGE_PIXELS = 40_000_000
# The largest image file read: an uncompressed RGBA file of MAX_IMAGE_PIXELS, with room for
# headers. A larger file, and anything not a regular file (a FIFO, a link to /dev/zero), is
# refused before it is read.
MAX_IMAGE_BYTES = 4 * MAX_IMAGE_PIXELS + 2**20


class FolderError(utils.LeoError, ValueError):
  """A folder or image that does not have the documented form."""


def declared_pixels(contents: bytes) -> Optional[int]:
  """Width x height as an image file's header declares it (PNG, GIF, BMP, JPEG), read
  without decoding; None if the header is not one of these."""
  if contents[:8] == b"\x89PNG\r\n\x1a\n" and len(contents) >= 24:
    width, height = struct.unpack(">II", contents[16:24])
  elif contents[:4] == b"GIF8" and len(contents) >= 10:
    width, height = struct.unpack("<HH", contents[6:10])
  elif contents[:2] == b"BM" and len(contents) >= 26:
    width, height = struct.unpack("<ii", contents[18:26])
  elif contents[:2] == b"\xff\xd8":
    try:
      height, width = tf.io.extract_jpeg_shape(contents)[:2].numpy()
    except tf.errors.InvalidArgumentError:
      return None  # Not decodable either: _decode says so.
  else:
    return None
  return abs(int(width)) * abs(int(height))


def _utf8(path: str) -> str:
  """`path`, refused in one line if its name is not UTF-8: leo prints and writes the names
  of images and classes, as UTF-8."""
  try:
    path.encode("utf-8")
  except UnicodeEncodeError:
    shown = os.fsencode(path).decode("utf-8", "backslashreplace")
    raise FolderError(f"{shown}: a name that is not UTF-8 (leo prints and writes the names of "
                      "images and classes as UTF-8): rename it") from None
  return path


def _decode(path: str, channels: int, side: int) -> np.ndarray:
  """One image file as uint8 [side, side, channels]."""
  try:
    contents = storage.read_bytes(_utf8(path), MAX_IMAGE_BYTES)
  except storage.io_errors() as e:
    raise FolderError(f"{path}: unreadable ({storage.reason(e)})") from None
  pixels = declared_pixels(contents)
  if pixels is not None and pixels > MAX_IMAGE_PIXELS:
    raise FolderError(f"{path}: {pixels:,} pixels, more than the {MAX_IMAGE_PIXELS:,} an image "
                      f"may have (it would take {pixels * 32 / 2**30:.0f} GB to read); shrink "
                      f"it to about {IMAGE_SIDE}x{IMAGE_SIDE} first")
  try:
    raw = tf.io.decode_image(contents, expand_animations=False).numpy()
  except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
    raise FolderError(f"{path}: not an image TF can decode (PNG, JPEG, GIF, BMP): "
                      f"{utils.first_line(e)}") from None
  pixels = raw.astype(np.float64) / 255.0
  if pixels.shape[-1] in (2, 4):  # Gray or RGB with alpha: over a white background.
    alpha = pixels[..., -1:]
    pixels = pixels[..., :-1] * alpha + (1.0 - alpha)
  if pixels.shape[-1] == 3 and channels == 1:
    pixels = pixels @ np.array([[0.2989], [0.5870], [0.1140]])  # TF's rgb_to_grayscale.
  elif pixels.shape[-1] == 1 and channels == 3:
    pixels = np.repeat(pixels, 3, axis=-1)
  resized = tf.image.resize(pixels[None], [side, side], method="area")
  return np.clip(np.round(resized.numpy()[0] * 255.0), 0, 255).astype(np.uint8)


def read_image_folder(root: str, channels: int = 1, side: int = IMAGE_SIDE
                      ) -> Tuple[np.ndarray, np.ndarray, List[str], List[str]]:
  """The images of `root`'s class folders.

  Returns:
    (images uint8 [n, side, side, channels], labels int64 [n] (index into the class names),
    class names [classes], image names [n]).
  """
  if not os.path.isdir(root):
    raise FolderError(f"{root}: not a folder of class folders")
  def visible(folder):
    """The folder's entries that are not hidden; a broken symbolic link is an error."""
    names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
    for name in names:
      path = os.path.join(folder, name)
      if os.path.islink(path) and not os.path.exists(path):
        raise FolderError(f"{path}: a broken symbolic link (to {os.readlink(path)}); remove "
                          "it or restore what it points to")
    return names

  class_names = [name for name in visible(root) if os.path.isdir(os.path.join(root, name))]
  for name in class_names:
    _utf8(os.path.join(root, name))
  if not class_names:
    raise FolderError(f"{root}: expected one sub-folder of images per class, found none")
  images, labels, image_names = [], [], []
  for label, name in enumerate(class_names):
    files = [f for f in visible(os.path.join(root, name))
             if os.path.isfile(os.path.join(root, name, f))]
    if not files:
      raise FolderError(f"{os.path.join(root, name)}: a class folder with no image")
    stems = [os.path.splitext(f)[0] for f in files]
    if len(set(stems)) != len(stems):
      raise FolderError(f"{os.path.join(root, name)}: two files differ only in extension; "
                        "an image's name must be unique within its class")
    for file_name, stem in zip(files, stems):
      images.append(_decode(os.path.join(root, name, file_name), channels, side))
      labels.append(label)
      image_names.append(stem)
  return np.stack(images), np.asarray(labels, np.int64), class_names, image_names


def read_images(paths: Sequence[str], channels: int = 1, side: int = IMAGE_SIDE) -> np.ndarray:
  """Image files as a folder's images are read: uint8 [n, side, side, channels]."""
  return np.stack([_decode(path, channels, side) for path in paths])


def image_files(root: str) -> List[str]:
  """The visible files under `root` and its visible sub-folders, in sorted order."""
  if not os.path.isdir(root):
    raise FolderError(f"{root}: not a folder")
  files = []
  for folder, sub_folders, names in os.walk(root):
    sub_folders[:] = sorted(name for name in sub_folders if not name.startswith("."))
    files += [os.path.join(folder, name) for name in sorted(names) if not name.startswith(".")]
  if not files:
    raise FolderError(f"{root}: a folder with no image")
  return files


def random_split(class_names: Sequence[str], seed: int = 0,
                 min_classes: int = MIN_SPLIT_CLASSES, fractions: Optional[Sequence] = None):
  """Splits classes at random (seeded) in miniImageNet's shares, each split at least
  `min_classes`: {"train": [...], "val": [...], "test": [...]} of names, each sorted."""
  fractions = fractions or SPLIT_FRACTIONS
  if len(class_names) < min_classes * len(fractions):
    raise FolderError(f"{len(class_names)} classes: a split needs at least {min_classes} "
                      f"classes in each of {', '.join(name for name, _ in fractions)} "
                      f"({min_classes * len(fractions)}); write a split file instead")
  sizes = {name: max(min_classes, int(round(share * len(class_names))))
           for name, share in fractions[1:]}
  sizes[fractions[0][0]] = len(class_names) - sum(sizes.values())
  order = np.random.default_rng(seed).permutation(len(class_names))
  split, start = {}, 0
  for name, _ in fractions:
    split[name] = sorted(class_names[i] for i in order[start:start + sizes[name]])
    start += sizes[name]
  return split
