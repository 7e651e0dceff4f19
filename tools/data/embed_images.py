# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Embeds your own labelled images with a trained backbone and writes LEO's pickles.

For a small image set (tens of classes, tens of images each) a backbone pretrained on it alone
sees too few classes to make good features (`datasets/README.md`, "Your own images"). leo ships
the backbone of its bundled embeddings, a small convnet trained on 285 icon concepts, none of
which is a benchmark class; this tool runs it (or any backbone `tools/data/pretrain_embeddings.py`
saved) over every image, batch norm in test mode, with no training:

    python -m tools.data.embed_images --images=my_images/ --dataset_name=mine \\
        --output_root=/data/embeddings            # a folder of class folders; or an .npz
    python runner.py --data_path=/data/embeddings --dataset_name=mine --preset=icons_1shot

--images takes the .npz of `tools/data/pretrain_embeddings.py` or a folder with one sub-folder of
images per class (`images.py`; read at the backbone's input size and channels; --image_fit says
how an image that is not square is made square). Progress is logged while a large folder is
read and embedded.
--split names each class's split (JSON {"train": [...], "val": [...], "test": [...]}); without
one the classes are split at random (--seed) in miniImageNet's 64/16/20 shares, and the split
is written beside the pickles. All of a split's classes go into its pickle (a "pool" list, if
the split file has one, is not embedded). PROVENANCE.json records the backbone file's digest
and, copied from the backbone's own record, every class it was trained on; a class of yours
with the id of one of them is named in a warning, since its test accuracy would be optimistic.
"""

import json
import os
import sys
from typing import Dict, Mapping, Optional, Sequence, Tuple

from absl import flags
from absl import logging

import backbone as backbone_lib
import config
import images as images_lib
import utils
from tools.data import pretrain_embeddings as pe

REPO_ROOT = pe.REPO_ROOT
BUNDLED_BACKBONE = os.path.join(REPO_ROOT, "datasets", "embeddings", "icons",
                                pe.EMBEDDING_CROP, backbone_lib.BACKBONE_FILE)
SPLIT_FILE = "split.json"  # The random split, when no --split is given.
PROTOCOL = "backbone"  # PROVENANCE.json's protocol: an already trained backbone, no training.


def seen_classes(image_set: pe.ImageSet, record: Optional[Mapping[str, object]]):
  """Ids of the image set's classes that the backbone was trained on."""
  if not record:
    return []
  trained = set(record["backbone_trained_on"]["class_ids"])
  return sorted(set(pe.class_ids(image_set.class_names)) & trained)


def embed_image_set(image_set: pe.ImageSet, splits: Mapping[str, Sequence[int]],
                    backbone_path: str, output_dir: str,
                    record: Optional[Mapping[str, object]] = None,
                    loaded: Optional[Tuple] = None) -> Dict[str, str]:
  """Embeds each split's images with the backbone; writes the pickles and PROVENANCE.json,
  and warns of classes the backbone was trained on.

  Args:
    image_set: the images; their shape must be the backbone's input shape.
    splits: split -> class indices, for pe.SPLITS.
    backbone_path: a `backbone.npz` of tools/data/pretrain_embeddings.py.
    output_dir: where the pickles go (<output_root>/<dataset_name>/center).
    record: entries added to PROVENANCE.json (the command, the inputs' digests).
    loaded: `backbone.load_backbone(backbone_path)`, if the caller has it already.

  Returns:
    split -> path of its pickle.
  """
  network, image_shape, standardise = loaded or backbone_lib.load_backbone(backbone_path)
  if tuple(image_set.images.shape[1:]) != image_shape:
    raise backbone_lib.InputError(
        f"images of shape {list(image_set.images.shape[1:])}, but the backbone "
        f"{backbone_path} takes {list(image_shape)}: resize them (a folder of images is read "
        "at the backbone's size)")
  embed = backbone_lib.embedder(network, image_shape, standardise)
  paths = pe.write_splits(image_set, splits, embed, output_dir)
  trained = backbone_lib.backbone_record(backbone_path)
  seen = seen_classes(image_set, trained)
  backbone_lib.write_provenance(output_dir, {
      "protocol": PROTOCOL,
      "protocol_means": "an already trained backbone embeds every image; nothing is trained",
      **backbone_lib.backbone_file_entry(backbone_path, os.path.abspath(backbone_path)),
      "backbone_trained_on": trained["backbone_trained_on"] if trained else None,
      "backbone_train_config": trained["train_config"] if trained else None,
      "classes_the_backbone_saw": seen,
      "pickles": {split: pe.class_record(image_set, splits[split]) for split in pe.SPLITS},
      **(record or {}),
  })
  if seen:
    logging.warning("the backbone was trained on classes with the ids of %d of yours (%s): "
                    "their accuracies are optimistic", len(seen), ", ".join(seen[:10]))
  return paths


def define_flags():
  """The tool's flags (config.py's --dataset_name and --seed are used too)."""
  flags.DEFINE_string("images", None, "A folder with one sub-folder of images per class, or "
                      "an .npz of labelled images (tools/data/pretrain_embeddings.py).")
  flags.DEFINE_string("split", None, 'JSON {"train": [class names], "val": [...], "test": '
                      "[...]}; default: the classes split at random (--seed) 64/16/20.")
  flags.DEFINE_string("backbone", BUNDLED_BACKBONE, "A backbone.npz written by "
                      "tools/data/pretrain_embeddings.py; default: the bundled icons backbone.")
  flags.DEFINE_string("output_root", None, "Pickles go to <output_root>/<dataset_name>/center/.")
  flags.mark_flags_as_required(["images", "output_root"])
  config.define_image_flags()
  for name in ("dataset_name", "seed", *config.IMAGE_FLAGS):
    flags.declare_key_flag(name)


def main(argv):
  del argv  # Unused.
  values = flags.FLAGS
  output_dir = os.path.join(values.output_root, values.dataset_name, pe.EMBEDDING_CROP)
  outputs = [os.path.join(output_dir, name) for name in
             [SPLIT_FILE, backbone_lib.PROVENANCE_FILE]
             + [f"{split}_embeddings.pkl" for split in pe.SPLITS]]
  new_outputs = [path for path in outputs if not os.path.exists(path)]
  try:
    embed(values, output_dir)
  except BaseException:  # pylint: disable=broad-except
    # Nothing half-written: what this command created goes (files it replaced cannot come
    # back, but PROVENANCE.json is written last, so it never names half of them).
    for path in new_outputs:
      if os.path.exists(path):
        os.remove(path)
    raise


def embed(values, output_dir: str):
  """The command: reads the images and the split (or makes and writes one), embeds them."""
  loaded = backbone_lib.load_backbone(values.backbone)
  image_set = pe.load_image_set(values.images, loaded[1][-1], values.image_fit)
  if values.split:
    splits = pe.load_split(values.split, image_set.class_names)
    split_file = values.split
  else:
    named = images_lib.random_split(image_set.class_names, values.seed)
    os.makedirs(output_dir, exist_ok=True)
    split_file = os.path.join(output_dir, SPLIT_FILE)
    with open(split_file, "w") as f:
      json.dump(named, f, indent=1)
      f.write("\n")
    splits = pe.load_split(split_file, image_set.class_names)
  record = {"command": " ".join(["python -m tools.data.embed_images"] + sys.argv[1:]),
            "inputs": {name: {"file": os.path.abspath(path),
                              "sha256": backbone_lib.file_digest(path)}
                       for name, path in (("images", values.images), ("split", split_file))}}
  embed_image_set(image_set, splits, values.backbone, output_dir, record, loaded)


if __name__ == "__main__":
  define_flags()
  utils.run_command(main)
