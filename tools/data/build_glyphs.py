# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Builds `glyphs`: a second real image set, for checking the icons recipe without tuning.

A class is a character (62: the digits, A-Z and a-z), an example is one typeface's drawing of
it: the shape of Omniglot (a character, drawn by many hands), here the 465 display typefaces
of Brian Kent in Debian's `fonts-aenigma` package (pinned version and digest). The set is made
to be the small image set of a user (tens of classes, about a hundred images each), not a
benchmark to tune on: `datasets/README.md` ("Your own images") runs the icons presets on it.

Steps:
1. `apt-get download` the pinned package (or --fonts_dir: any folder of .ttf/.otf files).
2. Each typeface draws every character at one size on a shared baseline; a character the face
   lacks (it draws the same as a code point no face has) or draws blank is skipped.
3. One scale per typeface: the union of its characters' ink boxes (heights on the baseline,
   widths each centred) fits 76x76, centred in 84x84, black on white, area-averaged. Relative
   sizes survive, so "o" stays smaller than "O".
4. Typefaces dropped: those that draw fewer than half of the characters, and those whose
   drawings do not read as the characters, i.e. where fewer than a third are nearer (cosine of
   mean-centred 24x24 downsamples) to their own character's mean over all typefaces than to any
   other's: picture fonts that put images on the letter keys. A lower-case drawing that is its
   upper case's (cosine > 0.97: an all-capitals face) is dropped.
5. --num_faces typefaces (seeded) from those kept; within a character, near-duplicate drawings
   are dropped (tools/data/build_icons.py's rule: cosine > 0.97, the first in name order kept).
6. Split by character 40 / 10 / 12 (miniImageNet's shares), seeded; look-alike characters stay
   in one split: each letter's two cases, and 0 with o, 1 with i and l.

Output (--output_dir): glyphs.npz (images uint8 [n, 84, 84], labels, class_names, image_names:
the typeface's file name) and split.json with a `made_by` record (package, version, digest,
settings, counts). The images are not committed: the package's digest and a seeded build make
them again.

    python -m tools.data.build_glyphs --output_dir=/tmp/glyphs
"""

import hashlib
import json
import os
import shutil
import string
import subprocess
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

from absl import flags
from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

from tools.data import build_icons
import utils

PACKAGE = "fonts-aenigma"
PACKAGE_VERSION = "0.0.20080511+dfsg-4"  # Debian 12's; pinned with its digest.
PACKAGE_SHA256 = "c7f33a4e5932af82a92c81a5a993a1d117c4309b47532cb0d9c3ad34bc54f5a8"
FONT_EXTENSIONS = (".ttf", ".otf")
CHARACTERS = string.digits + string.ascii_uppercase + string.ascii_lowercase
IMAGE_SIZE = build_icons.IMAGE_SIZE
GLYPH_BOX = 76  # The ink of a typeface's characters fits this square, centred in IMAGE_SIZE.
RENDER_SIZE = 96  # Font size the characters are drawn at before scaling.
MISSING = "\U0010fffd"  # A private-use code point: a face draws its "missing" glyph for it.
MIN_COVERAGE = 0.5  # Share of CHARACTERS a kept typeface draws.
MIN_READABLE = 1 / 3  # Share of its drawings nearest their own character's mean.
SAME_CASE_THRESHOLD = build_icons.DEDUP_THRESHOLD
NUM_FACES = 100
SEED = 0
TWIN_GROUPS = tuple([[f"upper-{c.upper()}", f"lower-{c}"] for c in string.ascii_lowercase
                     if c not in "oil"]) + (
    ["digit-0", "upper-O", "lower-o"],
    ["digit-1", "upper-I", "lower-i", "upper-L", "lower-l"])
SPLIT_SIZES = (("train", 40), ("val", 10), ("test", 12))


def class_name(character: str) -> str:
  """'7' -> 'digit-7', 'A' -> 'upper-A', 'a' -> 'lower-a' (distinct ids on any file system)."""
  if character.isdigit():
    return f"digit-{character}"
  return f"upper-{character}" if character.isupper() else f"lower-{character}"


def _ink(font: ImageFont.FreeTypeFont, character: str) -> np.ndarray:
  """A character drawn black on white, left end of its baseline at (RENDER_SIZE, 2 x size)."""
  canvas = Image.new("L", (4 * RENDER_SIZE, 3 * RENDER_SIZE), 255)
  ImageDraw.Draw(canvas).text((RENDER_SIZE, 2 * RENDER_SIZE), character, font=font, fill=0,
                              anchor="ls")
  return np.asarray(canvas)


def draw_typeface(path: str, characters: str = CHARACTERS) -> Dict[str, np.ndarray]:
  """The characters a typeface draws, each uint8 [IMAGE_SIZE, IMAGE_SIZE] (step 3)."""
  try:
    font = ImageFont.truetype(path, RENDER_SIZE)
    missing = _ink(font, MISSING)
    drawn = {c: _ink(font, c) for c in characters}
  except (OSError, ValueError) as e:
    logging.warning("%s: skipped, not a font Pillow can draw (%s)", path, e)
    return {}
  boxes = {}
  for character, ink in drawn.items():
    rows, cols = np.nonzero(ink < 255)
    if len(rows) and not np.array_equal(ink, missing):
      boxes[character] = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)
  if not boxes:
    return {}
  top = min(box[0] for box in boxes.values())
  bottom = max(box[1] for box in boxes.values())
  side = max(bottom - top, max(box[3] - box[2] for box in boxes.values()))
  weights = build_icons.area_weights(side, GLYPH_BOX)
  margin = (IMAGE_SIZE - GLYPH_BOX) // 2
  images = {}
  for character, (_, _, left, right) in boxes.items():
    square = np.full((side, side), 255.0)
    row, col = (side - (bottom - top)) // 2, (side - (right - left)) // 2
    square[row:row + bottom - top, col:col + right - left] = drawn[character][top:bottom,
                                                                              left:right]
    image = np.full((IMAGE_SIZE, IMAGE_SIZE), 255.0)
    image[margin:margin + GLYPH_BOX, margin:margin + GLYPH_BOX] = weights @ square @ weights.T
    images[character] = np.clip(np.round(image), 0, 255).astype(np.uint8)
  return images


def _unit(images: np.ndarray) -> np.ndarray:
  """Unit vectors of mean-centred DEDUP_SIZE downsamples of images [n, s, s] (blank: 0)."""
  weights = build_icons.area_weights(images.shape[-1], build_icons.DEDUP_SIZE)
  small = (weights @ images.astype(np.float64) @ weights.T).reshape(len(images), -1)
  small -= small.mean(axis=1, keepdims=True)
  norms = np.linalg.norm(small, axis=1, keepdims=True)
  return small / np.where(norms < 1e-6, 1.0, norms)


def drop_same_case(images: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """Without the lower-case drawings that are their upper case's (an all-capitals face)."""
  kept = dict(images)
  for lower in string.ascii_lowercase:
    upper = lower.upper()
    if lower in images and upper in images:
      pair = _unit(np.stack([images[lower], images[upper]]))
      if pair[0] @ pair[1] > SAME_CASE_THRESHOLD:
        del kept[lower]
  return kept


def readable_shares(faces: Dict[str, Dict[str, np.ndarray]]) -> Dict[str, float]:
  """Per typeface, the share of its drawings nearer (cosine) their own character's mean than
  any other character's, the means over the other faces (step 4): a face is judged by the
  others, so that a picture face's own drawings do not make the means it is compared to."""
  units = {c: {} for c in CHARACTERS}
  for face, images in faces.items():
    for c, unit in zip(images, _unit(np.stack(list(images.values())))):
      units[c][face] = unit
  present = [c for c in CHARACTERS if len(units[c]) > 1]
  sums = np.stack([np.sum(list(units[c].values()), axis=0) for c in present])
  counts = np.asarray([len(units[c]) for c in present], np.float64)
  shares = {}
  for face, images in faces.items():
    own = np.stack([units[c].get(face, np.zeros(sums.shape[1])) for c in present])
    drew = np.asarray([face in units[c] for c in present])
    means = (sums - own) / (counts - drew)[:, None]  # Each character's mean without this face.
    nearest = np.argmax(own[drew] @ means.T / np.linalg.norm(means, axis=1), axis=1)
    shares[face] = float(np.mean(nearest == np.flatnonzero(drew))) if drew.any() else 0.0
  return shares


def fetch_package(directory: str) -> str:
  """Downloads and unpacks the pinned package into `directory`; returns its fonts folder."""
  subprocess.run(["apt-get", "download", f"{PACKAGE}={PACKAGE_VERSION}"], cwd=directory,
                 check=True, capture_output=True)
  deb = os.path.join(directory, f"{PACKAGE}_{PACKAGE_VERSION}_all.deb")
  with open(deb, "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  if digest != PACKAGE_SHA256:
    raise ValueError(f"{deb}: sha256 {digest}, expected {PACKAGE_SHA256}")
  subprocess.run(["dpkg-deb", "-x", deb, os.path.join(directory, "package")], check=True)
  return os.path.join(directory, "package")


def font_files(fonts_dir: str) -> List[str]:
  """Every font file under `fonts_dir`, sorted by path."""
  return sorted(os.path.join(folder, name) for folder, _, names in os.walk(fonts_dir)
                for name in names if name.lower().endswith(FONT_EXTENSIONS))


def build(fonts_dir: str, output_dir: str, num_faces: int = NUM_FACES, seed: int = SEED,
          split_sizes: Sequence[Tuple[str, int]] = SPLIT_SIZES,
          made_by: Optional[Dict[str, object]] = None) -> Dict[str, object]:
  """Steps 2-6 on the fonts under `fonts_dir`; writes glyphs.npz and split.json.

  Returns:
    The split file's `made_by` record.
  """
  paths = font_files(fonts_dir)
  names = [os.path.splitext(os.path.basename(path))[0] for path in paths]
  if len(set(names)) != len(names):
    raise ValueError(f"{fonts_dir}: two font files have the same name")
  faces = {name: drop_same_case(draw_typeface(path)) for name, path in zip(names, paths)}
  covered = {name: images for name, images in faces.items()
             if len(images) >= MIN_COVERAGE * len(CHARACTERS)}
  shares = readable_shares(covered)
  readable = sorted(name for name in covered if shares[name] >= MIN_READABLE)
  chosen = sorted(np.random.default_rng(seed).permutation(readable)[:num_faces].tolist())
  images, labels, image_names = [], [], []
  classes = [class_name(c) for c in CHARACTERS]
  for label, character in enumerate(CHARACTERS):
    drawers = [face for face in chosen if character in faces[face]]
    drawings = np.stack([faces[face][character] for face in drawers])
    keep = ~build_icons.near_duplicates(drawings)
    images += list(drawings[keep])
    labels += [label] * int(keep.sum())
    image_names += [face for face, kept in zip(drawers, keep) if kept]
  split = build_icons.split_classes(classes, TWIN_GROUPS, split_sizes, seed)
  counts = np.bincount(labels, minlength=len(classes))
  record = {
      **(made_by or {}), "tool": "tools/data/build_glyphs.py", "seed": seed,
      "font_files": len(paths), "faces_drawing_half": len(covered),
      "faces_readable": len(readable), "faces_chosen": chosen,
      "images_per_class": {"min": int(counts.min()), "max": int(counts.max())},
      "images": len(images),
  }
  os.makedirs(output_dir, exist_ok=True)
  build_icons.write_npz(os.path.join(output_dir, "glyphs.npz"), {
      "images": np.stack(images), "labels": np.asarray(labels, np.int32),
      "class_names": np.asarray(classes), "image_names": np.asarray(image_names)})
  with open(os.path.join(output_dir, "split.json"), "w") as f:
    json.dump({**split, "made_by": record}, f, indent=1)
    f.write("\n")
  return record


def define_flags():
  flags.DEFINE_string("output_dir", None, "Where glyphs.npz and split.json go.")
  flags.DEFINE_string("fonts_dir", None, "A folder of .ttf/.otf files to use instead of "
                      f"downloading {PACKAGE}={PACKAGE_VERSION}.")
  flags.DEFINE_integer("num_faces", NUM_FACES, "Typefaces drawn at random from those kept.")
  flags.DEFINE_integer("build_seed", SEED, "Seed of the typefaces' draw and of the split.")
  flags.mark_flag_as_required("output_dir")


def main(argv):
  del argv  # Unused.
  values = flags.FLAGS
  work = tempfile.mkdtemp(prefix="glyphs-")
  try:
    if values.fonts_dir:
      fonts_dir, made_by = values.fonts_dir, {"fonts_dir": os.path.abspath(values.fonts_dir)}
    else:
      fonts_dir = fetch_package(work)
      made_by = {"package": PACKAGE, "version": PACKAGE_VERSION, "sha256": PACKAGE_SHA256,
                 "licence": "Brian Kent's fonts: redistribution, derivatives and changes "
                            "allowed (Debian's copyright file of the package)"}
    record = build(fonts_dir, values.output_dir, values.num_faces, values.build_seed,
                   made_by=made_by)
    logging.info("%d images of %d characters from %d typefaces -> %s", record["images"],
                 len(CHARACTERS), len(record["faces_chosen"]), values.output_dir)
  except (ValueError, OSError, subprocess.CalledProcessError) as e:
    raise utils.LeoError(str(e)) from None
  finally:
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
  define_flags()
  utils.run_command(main)
