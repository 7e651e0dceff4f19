# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Embeds your own labelled images with a trained backbone and writes LEO's pickles.

For a small image set (tens of classes, tens of images each) a backbone pretrained on it alone
sees too few classes to make good features (`datasets/README.md`, "Your own images"). leo ships
the backbone of its bundled embeddings, a small convnet trained on 285 icon concepts, none of
which is a benchmark class; this tool runs it (or any backbone `tools/pretrain_embeddings.py`
saved) over every image, batch norm in test mode, with no training:

    python -m tools.embed_images --images=my_images/ --dataset_name=mine \\
        --output_root=/data/embeddings            # a folder of class folders; or an .npz
    python runner.py --data_path=/data/embeddings --dataset_name=mine --preset=icons_1shot

--images takes the .npz of `tools/pretrain_embeddings.py` or a folder with one sub-folder of
images per class (`tools/image_folder.py`; read at the backbone's input size and channels).
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
from typing import Dict, Mapping, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from tools import image_folder
from tools import pretrain_embeddings as pe

REPO_ROOT = pe.REPO_ROOT
BUNDLED_BACKBONE = os.path.join(REPO_ROOT, "datasets", "embeddings", "icons",
                                pe.EMBEDDING_CROP, pe.BACKBONE_FILE)
SPLIT_FILE = "split.json"  # The random split, when no --split is given.
PROTOCOL = "backbone"  # PROVENANCE.json's protocol: an already trained backbone, no training.


def backbone_record(backbone_path: str) -> Optional[Dict[str, object]]:
  """The PROVENANCE.json beside a backbone file, if it is there and names that file."""
  path = os.path.join(os.path.dirname(backbone_path), pe.PROVENANCE_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    record = json.load(f)
  named = record.get("backbone_file", {}).get("sha256")
  return record if named == pe.file_digest(backbone_path) else None


def seen_classes(image_set: pe.ImageSet, record: Optional[Mapping[str, object]]):
  """Ids of the image set's classes that the backbone was trained on."""
  if not record:
    return []
  trained = set(record["backbone_trained_on"]["class_ids"])
  return sorted(set(pe.class_ids(image_set.class_names)) & trained)


def embed_image_set(image_set: pe.ImageSet, splits: Mapping[str, Sequence[int]],
                    backbone_path: str, output_dir: str,
                    record: Optional[Mapping[str, object]] = None) -> Dict[str, str]:
  """Embeds each split's images with the backbone; writes the pickles and PROVENANCE.json.

  Args:
    image_set: the images; their shape must be the backbone's input shape.
    splits: split -> class indices, for pe.SPLITS.
    backbone_path: a `backbone.npz` of tools/pretrain_embeddings.py.
    output_dir: where the pickles go (<output_root>/<dataset_name>/center).
    record: entries added to PROVENANCE.json (the command, the inputs' digests).

  Returns:
    split -> path of its pickle.
  """
  backbone, image_shape, standardise = pe.load_backbone(backbone_path)
  if tuple(image_set.images.shape[1:]) != image_shape:
    raise pe.InputError(f"images of shape {list(image_set.images.shape[1:])}, but the "
                        f"backbone {backbone_path} takes {list(image_shape)}: resize them (a "
                        "folder of images is read at the backbone's size)")
  ids = pe.class_ids(image_set.class_names)
  embed = pe.embedder(backbone, image_shape, standardise)
  paths = {}
  for split in pe.SPLITS:
    classes = list(splits[split])
    rows = np.flatnonzero(np.isin(image_set.labels, classes))
    labels = image_set.labels[rows]
    keys = pe.make_keys(split, ids, labels, [image_set.image_names[row] for row in rows])
    paths[split] = os.path.join(output_dir, f"{split}_embeddings.pkl")
    pe.write_embeddings(paths[split], embed(image_set.images[rows]),
                        np.asarray([classes.index(label) for label in labels]), keys)
    logging.info("%s: %d classes, %d images -> %s", split, len(classes), len(rows),
                 paths[split])
  trained = backbone_record(backbone_path)
  counts = np.bincount(image_set.labels, minlength=len(image_set.class_names))
  provenance = {
      "protocol": PROTOCOL,
      "protocol_means": "an already trained backbone embeds every image; nothing is trained",
      "backbone_file": {"file": os.path.abspath(backbone_path),
                        "sha256": pe.file_digest(backbone_path)},
      "backbone_trained_on": trained["backbone_trained_on"] if trained else None,
      "backbone_train_config": trained["train_config"] if trained else None,
      "classes_the_backbone_saw": seen_classes(image_set, trained),
      "pickles": {split: {"classes": [image_set.class_names[i] for i in splits[split]],
                          "class_ids": [ids[i] for i in splits[split]],
                          "images": int(sum(counts[i] for i in splits[split]))}
                  for split in pe.SPLITS},
      **(record or {}),
  }
  with open(os.path.join(output_dir, pe.PROVENANCE_FILE), "w") as f:
    json.dump(provenance, f, indent=1)
    f.write("\n")
  return paths


def define_flags():
  """The tool's flags (config.py's --dataset_name and --seed are used too)."""
  flags.DEFINE_string("images", None, "A folder with one sub-folder of images per class, or "
                      "an .npz of labelled images (tools/pretrain_embeddings.py).")
  flags.DEFINE_string("split", None, 'JSON {"train": [class names], "val": [...], "test": '
                      "[...]}; default: the classes split at random (--seed) 64/16/20.")
  flags.DEFINE_string("backbone", BUNDLED_BACKBONE, "A backbone.npz written by "
                      "tools/pretrain_embeddings.py; default: the bundled icons backbone.")
  flags.DEFINE_string("output_root", None, "Pickles go to <output_root>/<dataset_name>/center/.")
  flags.mark_flags_as_required(["images", "output_root"])
  for name in ("dataset_name", "seed"):
    flags.declare_key_flag(name)


def main(argv):
  del argv  # Unused.
  values = flags.FLAGS
  output_dir = os.path.join(values.output_root, values.dataset_name, pe.EMBEDDING_CROP)
  try:
    _, image_shape, _ = pe.load_backbone(values.backbone)
    image_set = pe.load_image_set(values.images, channels=image_shape[-1])
    if values.split:
      splits = pe.load_split(values.split, image_set.class_names)
      split_file = values.split
    else:
      named = image_folder.random_split(image_set.class_names, values.seed)
      os.makedirs(output_dir, exist_ok=True)
      split_file = os.path.join(output_dir, SPLIT_FILE)
      with open(split_file, "w") as f:
        json.dump(named, f, indent=1)
        f.write("\n")
      splits = pe.load_split(split_file, image_set.class_names)
    record = {"command": " ".join(["python -m tools.embed_images"] + sys.argv[1:]),
              "inputs": {name: {"file": os.path.abspath(path), "sha256": pe.file_digest(path)}
                         for name, path in (("images", values.images), ("split", split_file))}}
    embed_image_set(image_set, splits, values.backbone, output_dir, record)
    seen = seen_classes(image_set, backbone_record(values.backbone))
    if seen:
      logging.warning("the backbone was trained on classes with the ids of %d of yours (%s): "
                      "their accuracies are optimistic", len(seen), ", ".join(seen[:10]))
  except (pe.InputError, image_folder.FolderError) as e:
    sys.stderr.write(f"embed_images: error: {e}\n")
    sys.exit(2)


if __name__ == "__main__":
  define_flags()
  app.run(main)
