# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of images.py: class folders of images read into uint8 arrays, and random splits."""

import os
import struct

import numpy as np
import pytest
import tensorflow as tf

import fixtures
import images as images_lib
import utils


def test_read_image_folder_resizes_converts_and_composites_alpha_on_white(tmp_path):
  root = str(tmp_path / "images")
  rgba = np.zeros((8, 12, 4), np.uint8)  # Transparent everywhere but a black left half.
  rgba[:, :6, 3] = 255
  fixtures.write_png(os.path.join(root, "b", "x.png"), rgba)
  rgb = np.zeros((10, 10, 3), np.uint8)
  rgb[..., 0] = 255  # Pure red: 0.2989 gray.
  fixtures.write_png(os.path.join(root, "a", "red.png"), rgb)
  tf.io.write_file(os.path.join(root, "a", "dark.jpg"),
                   tf.io.encode_jpeg(np.full((5, 7, 3), 40, np.uint8), quality=100))
  os.makedirs(os.path.join(root, ".cache"))  # Hidden: skipped, as is a hidden file.
  (tmp_path / "images" / "a" / ".DS_Store").write_bytes(b"\0")

  images, labels, names, image_names = images_lib.read_image_folder(root, channels=1, side=4)
  assert names == ["a", "b"] and image_names == ["dark", "red", "x"]
  assert labels.tolist() == [0, 0, 1] and images.shape == (3, 4, 4, 1)
  assert images.dtype == np.uint8
  assert abs(int(images[0].mean()) - 40) <= 1  # JPEG at quality 100: within a level.
  assert (images[1] == round(0.2989 * 255)).all()
  np.testing.assert_array_equal(images[2][:, :2, 0], 0)  # The opaque black half ...
  np.testing.assert_array_equal(images[2][:, 2:, 0], 255)  # ... the transparent one white.
  colour, *_ = images_lib.read_image_folder(root, channels=3, side=4)
  assert colour.shape == (3, 4, 4, 3) and (colour[1, ..., 0] == 255).all()
  assert (colour[2, :, 2:] == 255).all()  # Gray with alpha, repeated to RGB.


def test_image_files_lists_visible_files_in_order_and_read_images_reads_them_as_a_folder(
    tmp_path):
  root = fixtures.image_folder(str(tmp_path / "images"), num_classes=2, per_class=2)
  (tmp_path / "images" / ".cache").mkdir()  # Hidden folders and files are skipped.
  (tmp_path / "images" / ".cache" / "x.png").write_bytes(b"")
  (tmp_path / "images" / "class-1" / "._img-0.png").write_bytes(b"")
  files = images_lib.image_files(root)
  assert [os.path.relpath(path, root) for path in files] == [
      "class-0/img-0.png", "class-0/img-1.png", "class-1/img-0.png", "class-1/img-1.png"]
  folder_images, *_ = images_lib.read_image_folder(root, side=8)
  np.testing.assert_array_equal(images_lib.read_images(files, side=8), folder_images)
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / ".x.png").write_bytes(b"")
  with pytest.raises(images_lib.FolderError, match="empty: a folder with no image"):
    images_lib.image_files(str(tmp_path / "empty"))
  with pytest.raises(images_lib.FolderError, match="missing: not a folder"):
    images_lib.image_files(str(tmp_path / "missing"))


def test_read_image_folder_explains_bad_folders_in_one_line(tmp_path):
  with pytest.raises(images_lib.FolderError, match="not a folder of class folders"):
    images_lib.read_image_folder(str(tmp_path / "missing"))
  with pytest.raises(images_lib.FolderError, match="found none"):
    images_lib.read_image_folder(str(tmp_path))
  (tmp_path / "a").mkdir()
  with pytest.raises(images_lib.FolderError, match="a class folder with no image"):
    images_lib.read_image_folder(str(tmp_path))
  (tmp_path / "a" / "notes.txt").write_text("not an image")
  with pytest.raises(images_lib.FolderError) as raised:
    images_lib.read_image_folder(str(tmp_path))
  assert "notes.txt: not an image TF can decode" in str(raised.value)
  assert "\n" not in str(raised.value)
  assert isinstance(raised.value, utils.LeoError)  # A command prints it as one line, exit 2.
  (tmp_path / "a" / "notes.txt").unlink()
  fixtures.write_png(str(tmp_path / "a" / "x.png"), np.zeros((4, 4, 1), np.uint8))
  tf.io.write_file(str(tmp_path / "a" / "x.jpg"), tf.io.encode_jpeg(np.zeros((4, 4, 1),
                                                                            np.uint8)))
  with pytest.raises(images_lib.FolderError, match="differ only in extension"):
    images_lib.read_image_folder(str(tmp_path))


def test_a_broken_link_and_a_huge_image_are_one_line_before_anything_is_decoded(tmp_path):
  root = fixtures.image_folder(str(tmp_path / "images"), num_classes=2, per_class=1)
  os.symlink(str(tmp_path / "gone.png"), os.path.join(root, "class-0", "img-9.png"))
  with pytest.raises(images_lib.FolderError, match=r"img-9.png: a broken symbolic link \(to "
                     r".*gone.png\); remove it or restore what it points to$"):
    images_lib.read_image_folder(root)
  os.remove(os.path.join(root, "class-0", "img-9.png"))
  # A 14000x14000 PNG's header (its pixels would take 5.8 GB to read as float64 RGBA).
  header = b"\x89PNG\r\n\x1a\n" + struct.pack(">I4sIIBBBBB", 13, b"IHDR", 14000, 14000, 8,
                                                 6, 0, 0, 0)
  (tmp_path / "images" / "class-1" / "huge.png").write_bytes(header + b"\0" * 16)
  with pytest.raises(images_lib.FolderError, match=r"huge.png: 196,000,000 pixels, more than "
                     r"the 40,000,000 an image may have .*shrink it"):
    images_lib.read_image_folder(root)
  assert images_lib.declared_pixels(tf.io.encode_jpeg(np.zeros((6, 5, 1), np.uint8))
                                    .numpy()) == 30


def test_random_split_is_seeded_in_minis_shares_and_keeps_five_classes_per_split():
  names = [f"c{i:02d}" for i in range(50)]
  split = images_lib.random_split(names, seed=3)
  assert [len(split[s]) for s in ("train", "val", "test")] == [32, 8, 10]
  assert sorted(sum(split.values(), [])) == names
  assert split == images_lib.random_split(names, seed=3) != images_lib.random_split(names)
  small = images_lib.random_split(names[:16])  # 0.16 * 16 and 0.2 * 16 round below 5.
  assert [len(small[s]) for s in ("train", "val", "test")] == [6, 5, 5]
  with pytest.raises(images_lib.FolderError, match="14 classes: a split needs at least 5"):
    images_lib.random_split(names[:14])
