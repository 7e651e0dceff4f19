# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of embedding your own images: tools/data/embed_images.py with a saved backbone."""

import json
import os
import pickle
import re

import numpy as np
import pytest

import backbone as backbone_lib
import data
import fixtures
import images as images_lib
import inprocess
import utils
from tools.data import embed_images
from tools.data import pretrain_embeddings as pe

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _embed_images(*flags):
  """`python -m tools.data.embed_images *flags`, run in this process."""
  return inprocess.run(["-m", "tools.data.embed_images", *flags], cwd=REPO_ROOT)


def test_a_malformed_split_file_is_one_line(tmp_path):
  path = tmp_path / "split.json"
  path.write_text('{"train": ["a"],')
  with pytest.raises(backbone_lib.InputError, match=r"split.json: not a readable split file "
                     r"\(JSONDecodeError: "):
    pe.load_split(str(path), ["a"])


def test_a_failed_embedding_leaves_no_split_file_behind(tmp_path):
  images = fixtures.image_folder(str(tmp_path / "mine"), num_classes=15, per_class=1)
  os.symlink(str(tmp_path / "gone"), os.path.join(images, ".hidden-link"))  # Unreadable.
  output_root = tmp_path / "emb"
  done = _embed_images(f"--images={images}", f"--output_root={output_root}",
                       "--dataset_name=mine")
  assert done.returncode == 2 and "Traceback" not in done.stderr
  assert done.stderr.strip().splitlines()[-1] == (
      f"tools.data.embed_images: error: {images}/.hidden-link: unreadable (No such file or directory); "
      "remove it or restore it")
  assert not list(output_root.rglob("*.*"))  # Not even the split it made.


# ---- A backbone saved by pretraining, used by tools/data/embed_images.py ----

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A backbone pretrained (1 epoch) on a tiny folder's 6 train classes, and its pickles:
  (image set, splits, pickle paths), shared by the tests that only read them."""
  tmp_path = tmp_path_factory.mktemp("pretrained")
  image_set = pe.load_image_set(fixtures.image_folder(str(tmp_path / "images")))
  names = image_set.class_names
  split_path = tmp_path / "split.json"
  split_path.write_text(json.dumps({"train": names[:6], "val": names[6:8], "test": names[8:]}))
  splits = pe.load_split(str(split_path), names)
  config = pe.TrainConfig(epochs=1, batch_size=12, embedding_dim=16)
  paths = pe.pretrain(image_set, splits, config, str(tmp_path / "tiny" / "center"))
  return image_set, splits, paths


def test_the_saved_backbone_embeds_the_images_as_in_pretraining(tmp_path, pretrained):
  image_set, splits, paths = pretrained
  folder = os.path.dirname(paths["train"])
  backbone_path = os.path.join(folder, backbone_lib.BACKBONE_FILE)
  with open(os.path.join(folder, backbone_lib.PROVENANCE_FILE)) as f:
    record = json.load(f)
  assert record["backbone_file"] == {"file": backbone_lib.BACKBONE_FILE,
                                     "sha256": backbone_lib.file_digest(backbone_path)}

  out = str(tmp_path / "out" / "center")
  again = embed_images.embed_image_set(image_set, splits, backbone_path, out, {"command": "t"})
  for split in pe.SPLITS:  # The same images through the reloaded backbone: the same bytes.
    with open(paths[split], "rb") as f, open(again[split], "rb") as g:
      first, second = pickle.load(f), pickle.load(g)
    np.testing.assert_array_equal(second["embeddings"], first["embeddings"])
    np.testing.assert_array_equal(second["keys"], first["keys"])
    np.testing.assert_array_equal(second["labels"], first["labels"])
  with open(os.path.join(out, backbone_lib.PROVENANCE_FILE)) as f:
    embedded = json.load(f)
  assert embedded["protocol"] == embed_images.PROTOCOL and embedded["command"] == "t"
  assert embedded["backbone_file"] == {"file": os.path.abspath(backbone_path),
                                       "sha256": record["backbone_file"]["sha256"]}
  assert embedded["backbone_trained_on"] == record["backbone_trained_on"]
  # The tiny backbone trained on these train classes: the record says so.
  assert embedded["classes_the_backbone_saw"] == [f"class{i}" for i in range(6)]
  assert embedded["pickles"]["val"]["class_ids"] == ["class6", "class7"]


def test_embed_refuses_images_of_another_shape_than_the_backbones_in_one_line(tmp_path,
                                                                              pretrained):
  image_set, splits, paths = pretrained
  backbone_path = os.path.join(os.path.dirname(paths["train"]), backbone_lib.BACKBONE_FILE)
  small = pe.ImageSet(image_set.images[:, :8, :8], image_set.labels, image_set.class_names,
                      image_set.image_names)
  with pytest.raises(backbone_lib.InputError, match=r"shape \[8, 8, 1\], but the backbone"):
    embed_images.embed_image_set(small, splits, backbone_path, str(tmp_path / "o"))


def test_embed_images_command_splits_a_folder_and_errors_in_one_line(tmp_path, pretrained):
  _, _, paths = pretrained
  backbone_path = os.path.join(os.path.dirname(paths["train"]), backbone_lib.BACKBONE_FILE)
  images = fixtures.image_folder(str(tmp_path / "mine"), num_classes=16, per_class=3, seed=1)
  command = [f"--images={images}", f"--backbone={backbone_path}",
             f"--output_root={tmp_path / 'emb'}", "--dataset_name=mine"]
  done = _embed_images(*command)
  assert done.returncode == 0, done.stderr
  folder = tmp_path / "emb" / "mine" / "center"
  split = json.loads((folder / embed_images.SPLIT_FILE).read_text())
  assert split == images_lib.random_split(sorted(f"class-{i}" for i in range(16)), seed=0)
  for name in pe.SPLITS:
    loaded = data.load_embeddings(str(folder / f"{name}_embeddings.pkl"))
    assert loaded.class_names == pe.class_ids(split[name]) and loaded.embedding_dim == 16
  record = json.loads((folder / backbone_lib.PROVENANCE_FILE).read_text())
  assert record["inputs"]["images"]["sha256"] == backbone_lib.file_digest(images)
  # The tiny backbone trained on classes with the ids class0-class5: named, and warned of.
  assert record["classes_the_backbone_saw"] == [f"class{i}" for i in range(6)]
  assert "the backbone was trained on classes with the ids of 6 of yours" in done.stderr

  bad = _embed_images(*command[:-1], "--dataset_name=mine2", f"--images={tmp_path / 'no'}")
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1] == (
      f"tools.data.embed_images: error: {tmp_path / 'no'}: no such folder of class folders, nor "
      ".npz file")
  assert "Traceback" not in bad.stderr
  (tmp_path / "no").write_text("not an npz")
  bad = _embed_images(*command[:-1], "--dataset_name=mine2", f"--images={tmp_path / 'no'}")
  assert bad.stderr.strip().splitlines()[-1].startswith(
      f"tools.data.embed_images: error: {tmp_path / 'no'}: not a readable .npz of images and "
      "labels, nor a folder of class folders (")


def test_embed_images_logs_its_progress_while_it_reads_and_embeds(tmp_path, pretrained,
                                                                  monkeypatch):
  _, _, paths = pretrained
  backbone_path = os.path.join(os.path.dirname(paths["train"]), backbone_lib.BACKBONE_FILE)
  images = fixtures.image_folder(str(tmp_path / "mine"), num_classes=15, per_class=2)
  monkeypatch.setattr(utils, "PROGRESS_SECONDS", 0.0)  # A line at every image or batch.
  monkeypatch.setattr(backbone_lib, "EMBEDDING_BATCH_SIZE", 4)
  done = _embed_images(f"--images={images}", f"--backbone={backbone_path}",
                       f"--output_root={tmp_path / 'emb'}", "--dataset_name=mine")
  assert done.returncode == 0, done.stderr[-3000:]
  said = [line.split("] ", 1)[1] for line in done.stderr.splitlines() if "] " in line]
  progress = [re.fullmatch(r"(Read|Embedded) (\d+)/(\d+) images, \d+ images/s, "
                           r"ETA \dh\d\dm\d\ds", line) for line in said]
  steps = [(m[1], int(m[2]), int(m[3])) for m in progress if m]
  # 30 images read one by one (none said when all are done); then each split's 5 classes,
  # 10 images, in batches of 4.
  assert steps == ([("Read", done, 30) for done in range(1, 30)]
                   + [("Embedded", done, 10) for done in (4, 8)] * 3)
