# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of embedding your own images: the image-folder reader, the saved backbone and
tools/data/embed_images.py."""

import json
import os
import struct
import pickle

import numpy as np
import pytest
import tensorflow as tf

import data
import inprocess
from tools.data import embed_images
from tools.data import image_folder
from tools.data import pretrain_embeddings as pe

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _embed_images(*flags):
  """`python -m tools.data.embed_images *flags`, run in this process."""
  return inprocess.run(["-m", "tools.data.embed_images", *flags], cwd=REPO_ROOT)


def _write_png(path, pixels):
  """pixels: uint8 [height, width, channels]."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tf.io.write_file(path, tf.io.encode_png(pixels))


def _image_folder(root, num_classes=10, per_class=6, side=16, seed=0):
  """Class folders `class-<i>` of noisy copies of one random grayscale pattern each, as PNGs."""
  rng = np.random.default_rng(seed)
  for label in range(num_classes):
    pattern = rng.integers(0, 256, size=(side, side, 1))
    for i in range(per_class):
      noisy = np.clip(pattern + rng.integers(-20, 21, size=pattern.shape), 0, 255)
      _write_png(os.path.join(root, f"class-{label}", f"img-{i}.png"), noisy.astype(np.uint8))
  return root


# ---- tools/data/image_folder.py ----

def test_read_image_folder_resizes_converts_and_composites_alpha_on_white(tmp_path):
  root = str(tmp_path / "images")
  rgba = np.zeros((8, 12, 4), np.uint8)  # Transparent everywhere but a black left half.
  rgba[:, :6, 3] = 255
  _write_png(os.path.join(root, "b", "x.png"), rgba)
  rgb = np.zeros((10, 10, 3), np.uint8)
  rgb[..., 0] = 255  # Pure red: 0.2989 gray.
  _write_png(os.path.join(root, "a", "red.png"), rgb)
  tf.io.write_file(os.path.join(root, "a", "dark.jpg"),
                   tf.io.encode_jpeg(np.full((5, 7, 3), 40, np.uint8), quality=100))
  os.makedirs(os.path.join(root, ".cache"))  # Hidden: skipped, as is a hidden file.
  (tmp_path / "images" / "a" / ".DS_Store").write_bytes(b"\0")

  images, labels, names, image_names = image_folder.read_image_folder(root, channels=1, side=4)
  assert names == ["a", "b"] and image_names == ["dark", "red", "x"]
  assert labels.tolist() == [0, 0, 1] and images.shape == (3, 4, 4, 1)
  assert images.dtype == np.uint8
  assert abs(int(images[0].mean()) - 40) <= 1  # JPEG at quality 100: within a level.
  assert (images[1] == round(0.2989 * 255)).all()
  np.testing.assert_array_equal(images[2][:, :2, 0], 0)  # The opaque black half ...
  np.testing.assert_array_equal(images[2][:, 2:, 0], 255)  # ... the transparent one white.
  colour, *_ = image_folder.read_image_folder(root, channels=3, side=4)
  assert colour.shape == (3, 4, 4, 3) and (colour[1, ..., 0] == 255).all()
  assert (colour[2, :, 2:] == 255).all()  # Gray with alpha, repeated to RGB.


def test_read_image_folder_explains_bad_folders_in_one_line(tmp_path):
  with pytest.raises(image_folder.FolderError, match="not a folder of class folders"):
    image_folder.read_image_folder(str(tmp_path / "missing"))
  with pytest.raises(image_folder.FolderError, match="found none"):
    image_folder.read_image_folder(str(tmp_path))
  (tmp_path / "a").mkdir()
  with pytest.raises(image_folder.FolderError, match="a class folder with no image"):
    image_folder.read_image_folder(str(tmp_path))
  (tmp_path / "a" / "notes.txt").write_text("not an image")
  with pytest.raises(image_folder.FolderError) as raised:
    image_folder.read_image_folder(str(tmp_path))
  assert "notes.txt: not an image TF can decode" in str(raised.value)
  assert "\n" not in str(raised.value)
  (tmp_path / "a" / "notes.txt").unlink()
  _write_png(str(tmp_path / "a" / "x.png"), np.zeros((4, 4, 1), np.uint8))
  tf.io.write_file(str(tmp_path / "a" / "x.jpg"), tf.io.encode_jpeg(np.zeros((4, 4, 1),
                                                                            np.uint8)))
  with pytest.raises(image_folder.FolderError, match="differ only in extension"):
    image_folder.read_image_folder(str(tmp_path))


def test_a_broken_link_and_a_huge_image_are_one_line_before_anything_is_decoded(tmp_path):
  root = _image_folder(str(tmp_path / "images"), num_classes=2, per_class=1)
  os.symlink(str(tmp_path / "gone.png"), os.path.join(root, "class-0", "img-9.png"))
  with pytest.raises(image_folder.FolderError, match=r"img-9.png: a broken symbolic link \(to "
                     r".*gone.png\); remove it or restore what it points to$"):
    image_folder.read_image_folder(root)
  os.remove(os.path.join(root, "class-0", "img-9.png"))
  # A 14000x14000 PNG's header (its pixels would take 5.8 GB to read as float64 RGBA).
  header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sIIBBBBB", 13, b"IHDR", 14000, 14000, 8,
                                                 6, 0, 0, 0)
  (tmp_path / "images" / "class-1" / "huge.png").write_bytes(header + b"\0" * 16)
  with pytest.raises(image_folder.FolderError, match=r"huge.png: 196,000,000 pixels, more than "
                     r"the 40,000,000 an image may have .*shrink it"):
    image_folder.read_image_folder(root)
  assert image_folder.declared_pixels(tf.io.encode_jpeg(np.zeros((6, 5, 1), np.uint8))
                                      .numpy()) == 30


def test_a_malformed_split_file_is_one_line(tmp_path):
  path = tmp_path / "split.json"
  path.write_text('{"train": ["a"],')
  with pytest.raises(pe.InputError, match=r"split.json: not a readable split file "
                     r"\(JSONDecodeError: "):
    pe.load_split(str(path), ["a"])


def test_a_failed_embedding_leaves_no_split_file_behind(tmp_path):
  images = _image_folder(str(tmp_path / "mine"), num_classes=15, per_class=1)
  os.symlink(str(tmp_path / "gone"), os.path.join(images, ".hidden-link"))  # Unreadable.
  output_root = tmp_path / "emb"
  done = _embed_images(f"--images={images}", f"--output_root={output_root}",
                       "--dataset_name=mine")
  assert done.returncode == 2 and "Traceback" not in done.stderr
  assert done.stderr.strip().splitlines()[-1] == (
      f"embed_images: error: {images}/.hidden-link: unreadable (No such file or directory); "
      "remove it or restore it")
  assert not list(output_root.rglob("*.*"))  # Not even the split it made.


def test_random_split_is_seeded_in_minis_shares_and_keeps_five_classes_per_split():
  names = [f"c{i:02d}" for i in range(50)]
  split = image_folder.random_split(names, seed=3)
  assert [len(split[s]) for s in ("train", "val", "test")] == [32, 8, 10]
  assert sorted(sum(split.values(), [])) == names
  assert split == image_folder.random_split(names, seed=3) != image_folder.random_split(names)
  small = image_folder.random_split(names[:16])  # 0.16 * 16 and 0.2 * 16 round below 5.
  assert [len(small[s]) for s in ("train", "val", "test")] == [6, 5, 5]
  with pytest.raises(image_folder.FolderError, match="14 classes: a split needs at least 5"):
    image_folder.random_split(names[:14])


# ---- The saved backbone and tools/data/embed_images.py ----

@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """A backbone pretrained (1 epoch) on a tiny folder's 6 train classes, and its pickles:
  (image set, splits, pickle paths), shared by the tests that only read them."""
  tmp_path = tmp_path_factory.mktemp("pretrained")
  image_set = pe.load_image_set(_image_folder(str(tmp_path / "images")))
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
  backbone_path = os.path.join(folder, pe.BACKBONE_FILE)
  with open(os.path.join(folder, pe.PROVENANCE_FILE)) as f:
    record = json.load(f)
  assert record["backbone_file"] == {"file": pe.BACKBONE_FILE,
                                     "sha256": pe.file_digest(backbone_path)}
  with np.load(backbone_path, allow_pickle=False) as npz:  # Plain arrays, no objects.
    assert all(npz[name].dtype != object for name in npz.files)

  out = str(tmp_path / "out" / "center")
  again = embed_images.embed_image_set(image_set, splits, backbone_path, out, {"command": "t"})
  for split in pe.SPLITS:  # The same images through the reloaded backbone: the same bytes.
    with open(paths[split], "rb") as f, open(again[split], "rb") as g:
      first, second = pickle.load(f), pickle.load(g)
    np.testing.assert_array_equal(second["embeddings"], first["embeddings"])
    np.testing.assert_array_equal(second["keys"], first["keys"])
    np.testing.assert_array_equal(second["labels"], first["labels"])
  with open(os.path.join(out, pe.PROVENANCE_FILE)) as f:
    embedded = json.load(f)
  assert embedded["protocol"] == embed_images.PROTOCOL and embedded["command"] == "t"
  assert embedded["backbone_trained_on"] == record["backbone_trained_on"]
  # The tiny backbone trained on these train classes: the record says so.
  assert embedded["classes_the_backbone_saw"] == [f"class{i}" for i in range(6)]
  assert embedded["pickles"]["val"]["class_ids"] == ["class6", "class7"]


def test_load_backbone_and_embed_refuse_bad_files_in_one_line(tmp_path, pretrained):
  image_set, splits, paths = pretrained
  backbone_path = os.path.join(os.path.dirname(paths["train"]), pe.BACKBONE_FILE)
  truncated = tmp_path / "truncated.npz"
  truncated.write_bytes(open(backbone_path, "rb").read()[:1000])
  with pytest.raises(pe.InputError, match="not a backbone written by"):
    pe.load_backbone(str(truncated))
  with np.load(backbone_path) as npz:
    arrays = dict(npz)
  arrays.pop("variables/000")
  np.savez(tmp_path / "short.npz", **arrays)
  with pytest.raises(pe.InputError, match="variables, expected the"):
    pe.load_backbone(str(tmp_path / "short.npz"))
  small = pe.ImageSet(image_set.images[:, :8, :8], image_set.labels, image_set.class_names,
                      image_set.image_names)
  with pytest.raises(pe.InputError, match=r"shape \[8, 8, 1\], but the backbone"):
    embed_images.embed_image_set(small, splits, backbone_path, str(tmp_path / "o"))


def test_embed_images_command_splits_a_folder_and_errors_in_one_line(tmp_path, pretrained):
  _, _, paths = pretrained
  backbone_path = os.path.join(os.path.dirname(paths["train"]), pe.BACKBONE_FILE)
  images = _image_folder(str(tmp_path / "mine"), num_classes=16, per_class=3, seed=1)
  command = [f"--images={images}", f"--backbone={backbone_path}",
             f"--output_root={tmp_path / 'emb'}", "--dataset_name=mine"]
  done = _embed_images(*command)
  assert done.returncode == 0, done.stderr
  folder = tmp_path / "emb" / "mine" / "center"
  split = json.loads((folder / embed_images.SPLIT_FILE).read_text())
  assert split == image_folder.random_split(sorted(f"class-{i}" for i in range(16)), seed=0)
  for name in pe.SPLITS:
    loaded = data.load_embeddings(str(folder / f"{name}_embeddings.pkl"))
    assert loaded.class_names == pe.class_ids(split[name]) and loaded.embedding_dim == 16
  record = json.loads((folder / pe.PROVENANCE_FILE).read_text())
  assert record["inputs"]["images"]["sha256"] == pe.file_digest(images)
  # The tiny backbone trained on classes with the ids class0-class5: named, and warned of.
  assert record["classes_the_backbone_saw"] == [f"class{i}" for i in range(6)]
  assert "the backbone was trained on classes with the ids of 6 of yours" in done.stderr

  bad = _embed_images(*command[:-1], "--dataset_name=mine2", f"--images={tmp_path / 'no'}")
  assert bad.returncode == 2
  assert bad.stderr.strip().splitlines()[-1] == (
      f"embed_images: error: {tmp_path / 'no'}: not a readable .npz of images and labels, "
      "nor a folder of class folders (FileNotFoundError: [Errno 2] No such file or directory: "
      f"'{tmp_path / 'no'}')")
  assert "Traceback" not in bad.stderr
