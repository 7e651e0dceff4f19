# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Image folders: labelled images, one sub-folder per class, read as the arrays a backbone embeds.

    my_images/
      cat/  a.jpg  b.png ...
      dog/  ...

The images of a class folder are its PNG, JPEG, GIF (the first frame) and BMP files, told by
their content (what TF decodes); any other file (notes.txt, Thumbs.db) is skipped with one
warning naming it, and hidden files silently. Each image is read as it is published for
miniImageNet: resized to the square side without keeping the aspect ratio (area averaging when
it shrinks), or with `fit="pad"` padded to a square with white first, as the bundled icons were
drawn (config.IMAGE_FITS); and in grayscale or RGB, as the backbone takes. Transparent pixels
are composited on white, the background of the bundled icons. A folder whose images were
resized or lost their colour says so in one line each. Classes are the folder names in sorted
order, images the file names (without extension) in sorted order, so a folder always gives
the same arrays.

`prediction.py` reads a support folder (`read_image_folder`) and queries (`image_files`,
`read_images`) with it; the embedding tools (`tools/data/`) read the folders a user embeds,
and split their classes (`random_split`) when no split file is given.
"""

import os
import re
import struct
from typing import List, Optional, Sequence, Tuple

from absl import logging
import numpy as np

import config
import utils

tf = utils.import_tensorflow()

IMAGE_SIDE = 84  # miniImageNet's and the bundled icons' size.
IMAGE_FORMATS = "PNG, JPEG, GIF or BMP"  # What TF decodes.
SQUASH, PAD = config.IMAGE_FITS
# The classes of a folder without a split file: miniImageNet's 64 / 16 / 20 shares.
SPLIT_FRACTIONS = (("train", 0.64), ("val", 0.16), ("test", 0.20))
MIN_SPLIT_CLASSES = 5  # One 5-way task.
# Larger images are refused before they are decoded: reading one takes 32 bytes a pixel
# (RGBA as float64), 1.2 GB at this size, a 24-megapixel photograph's twice.
MAX_IMAGE_PIXELS = 40_000_000
NAMED_FILES = 5  # A line about a folder's files names this many of them.
GRAY = np.array([[0.2989], [0.5870], [0.1140]])  # TF's rgb_to_grayscale weights.
COLOUR = 2 / 255  # An RGB image has colour where its channels differ by more (JPEG's noise).


class FolderError(utils.LeoError, ValueError):
  """A folder or image that does not have the documented form."""


def image_format(contents: bytes) -> Optional[str]:
  """The format an image file's first bytes declare (PNG, GIF, BMP, JPEG); None for a file
  that is no image of these."""
  if contents[:8] == b"\x89PNG\r\n\x1a\n":
    return "PNG"
  if contents[:4] == b"GIF8":
    return "GIF"
  if contents[:2] == b"BM":
    return "BMP"
  if contents[:3] == b"\xff\xd8\xff":
    return "JPEG"
  return None


def declared_pixels(contents: bytes) -> Optional[int]:
  """Width x height as an image file's header declares it (PNG, GIF, BMP, JPEG), read
  without decoding; None if the header is not one of these."""
  kind = image_format(contents)
  if kind == "PNG" and len(contents) >= 24:
    width, height = struct.unpack(">II", contents[16:24])
  elif kind == "GIF" and len(contents) >= 10:
    width, height = struct.unpack("<HH", contents[6:10])
  elif kind == "BMP" and len(contents) >= 26:
    width, height = struct.unpack("<ii", contents[18:26])
  elif kind == "JPEG":
    try:
      height, width = tf.io.extract_jpeg_shape(contents)[:2].numpy()
    except tf.errors.InvalidArgumentError:
      return None  # Not decodable either: _pixels says so.
  else:
    return None
  return abs(int(width)) * abs(int(height))


def _tf_message(error: Exception) -> str:
  """TF's message without its op's internal names (`{{function_node ...}}`, `[Op:...]`)."""
  message = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", utils.first_line(error))
  return message.strip() or type(error).__name__


def _pixels(path: str, contents: bytes, kind: str) -> np.ndarray:
  """The image of a file of format `kind`: float64 [height, width, 1 or 3] in [0, 1], any
  transparent pixels composited on white."""
  pixels = declared_pixels(contents)
  if pixels is not None and pixels > MAX_IMAGE_PIXELS:
    raise FolderError(f"{path}: {pixels:,} pixels, more than the {MAX_IMAGE_PIXELS:,} an image "
                      f"may have (it would take {pixels * 32 / 2**30:.0f} GB to read); shrink "
                      f"it to about {IMAGE_SIDE}x{IMAGE_SIDE} first")
  try:
    raw = tf.io.decode_image(contents, expand_animations=False).numpy()
  except tf.errors.InvalidArgumentError as e:
    raise FolderError(f"{path}: a damaged {kind} file, TF cannot decode it ({_tf_message(e)}); "
                      "replace or remove it") from None
  pixels = raw.astype(np.float64) / 255.0
  if pixels.shape[-1] in (2, 4):  # Gray or RGB with alpha: over a white background.
    alpha = pixels[..., -1:]
    pixels = pixels[..., :-1] * alpha + (1.0 - alpha)
  return pixels


def _square(pixels: np.ndarray, channels: int, side: int, fit: str) -> np.ndarray:
  """float64 pixels [height, width, 1 or 3] as uint8 [side, side, channels]."""
  if pixels.shape[-1] == 3 and channels == 1:
    pixels = pixels @ GRAY
  elif pixels.shape[-1] == 1 and channels == 3:
    pixels = np.repeat(pixels, 3, axis=-1)
  height, width, _ = pixels.shape
  if fit == PAD and height != width:
    size = max(height, width)
    square = np.ones((size, size, channels))  # White, the icons' background.
    top, left = (size - height) // 2, (size - width) // 2
    square[top:top + height, left:left + width] = pixels
    pixels = square
  resized = tf.image.resize(pixels[None], [side, side], method="area")
  return np.clip(np.round(resized.numpy()[0] * 255.0), 0, 255).astype(np.uint8)


def read_images(paths: Sequence[str], channels: int = 1, side: int = IMAGE_SIDE,
                fit: str = SQUASH, where: Optional[str] = None
                ) -> Tuple[np.ndarray, List[str]]:
  """The images among files, each as uint8 [side, side, channels].

  Files that are no image (by their content) are skipped with one warning naming them; images
  of another size than side x side, and colour images read in grayscale, are said in one line
  each (naming a few), and progress is logged while many are read.

  Args:
    paths: image files.
    channels: 1 (grayscale) or 3 (RGB), as the backbone takes.
    side: the backbone's square size.
    fit: config.IMAGE_FITS: squash, or pad to a square with white first.
    where: the folder the files are from, named by the lines (default: none; paths in full).

  Returns:
    (images uint8 [n, side, side, channels], the paths of the n images, in order).
  """
  if fit not in config.IMAGE_FITS:
    raise ValueError(f"fit={fit!r}: expected one of {config.IMAGE_FITS}")
  name = (lambda path: os.path.relpath(path, where)) if where else (lambda path: path)
  images, kept, skipped, resized, decoloured = [], [], [], [], []
  progress = utils.Progress("Read", len(paths), "images")
  for done, path in enumerate(paths, 1):
    try:
      contents = tf.io.read_file(path).numpy()
    except tf.errors.OpError as e:
      raise FolderError(f"{path}: unreadable ({_tf_message(e)})") from None
    kind = image_format(contents)
    if kind is None:
      skipped.append(name(path))
      continue
    pixels = _pixels(path, contents, kind)
    if pixels.shape[:2] != (side, side):
      resized.append(f"{name(path)} {pixels.shape[1]}x{pixels.shape[0]}")
    if channels == 1 and pixels.shape[-1] == 3 and np.ptp(pixels, axis=-1).max() > COLOUR:
      decoloured.append(name(path))
    images.append(_square(pixels, channels, side, fit))
    kept.append(path)
    progress(done)
  folder = f"{where}: " if where else ""
  if skipped:
    logging.warning("%sskipped %d files that are not %s images: %s", folder, len(skipped),
                    IMAGE_FORMATS, _some(skipped))
  if resized:
    how = (f"padded to a square with white (aspect ratio kept), then resized to {side}x{side}"
           if fit == PAD else f"squashed to {side}x{side} as miniImageNet's images were, the "
           "aspect ratio not kept (--image_fit=pad keeps it, padding with white)")
    logging.info("%s%d of %d images are not %dx%d (%s): %s", folder, len(resized),
                 len(images), side, side, _some(resized), how)
  if decoloured:
    logging.info("%s%d colour images read in grayscale, as the backbone takes them (%s)",
                 folder, len(decoloured), _some(decoloured))
  if not images:
    raise FolderError(f"{where or ', '.join(paths)}: no {IMAGE_FORMATS} image among its "
                      f"{len(paths)} files")
  return np.stack(images), kept


def _some(names: Sequence[str]) -> str:
  """The first NAMED_FILES of `names`, and how many more."""
  more = len(names) - NAMED_FILES
  return ", ".join(names[:NAMED_FILES]) + (f" and {more} more" if more > 0 else "")


def _visible(folder: str) -> List[str]:
  """The folder's entries that are not hidden, sorted; a broken symbolic link is an error."""
  names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
  for name in names:
    path = os.path.join(folder, name)
    if os.path.islink(path) and not os.path.exists(path):
      raise FolderError(f"{path}: a broken symbolic link (to {os.readlink(path)}); remove "
                        "it or restore what it points to")
  return names


def _check_folder(root: str, what: str):
  if not os.path.exists(root):
    raise FolderError(f"{root}: no such folder")
  if not os.path.isdir(root):
    raise FolderError(f"{root}: a file, not {what}")


def read_image_folder(root: str, channels: int = 1, side: int = IMAGE_SIDE, fit: str = SQUASH
                      ) -> Tuple[np.ndarray, np.ndarray, List[str], List[str]]:
  """The images of `root`'s class folders (`read_images` reads them, says what it changed).

  Returns:
    (images uint8 [n, side, side, channels], labels int64 [n] (index into the class names),
    class names [classes], image names [n]).
  """
  _check_folder(root, "a folder of class folders")
  class_names = [name for name in _visible(root) if os.path.isdir(os.path.join(root, name))]
  if not class_names:
    raise FolderError(f"{root}: expected one sub-folder of images per class, found none")
  paths, labels = [], []
  for label, name in enumerate(class_names):
    folder = os.path.join(root, name)
    files = [os.path.join(folder, f) for f in _visible(folder)
             if os.path.isfile(os.path.join(folder, f))]
    if not files:
      raise FolderError(f"{folder}: a class folder with no image")
    paths += files
    labels += [label] * len(files)
  images, kept = read_images(paths, channels, side, fit, where=root)
  label_of = dict(zip(paths, labels))
  kept_labels = [label_of[path] for path in kept]
  for label, name in enumerate(class_names):
    stems = [os.path.splitext(os.path.basename(path))[0]
             for path, kept_label in zip(kept, kept_labels) if kept_label == label]
    if not stems:
      raise FolderError(f"{os.path.join(root, name)}: a class folder with no image (no "
                        f"{IMAGE_FORMATS} file)")
    if len(set(stems)) != len(stems):
      raise FolderError(f"{os.path.join(root, name)}: two files differ only in extension; "
                        "an image's name must be unique within its class")
  image_names = [os.path.splitext(os.path.basename(path))[0] for path in kept]
  return images, np.asarray(kept_labels, np.int64), class_names, image_names


def image_files(root: str) -> List[str]:
  """The visible files under `root` and its visible sub-folders, in sorted order."""
  _check_folder(root, "a folder")
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
