# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of images.py: class folders of images read into uint8 arrays, and random splits."""

import logging
import os
import struct

import numpy as np
import pytest
import tensorflow as tf

import config
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
  read, kept = images_lib.read_images(files, side=8)
  np.testing.assert_array_equal(read, folder_images)
  assert kept == files
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / ".x.png").write_bytes(b"")
  with pytest.raises(images_lib.FolderError, match="empty: a folder with no image"):
    images_lib.image_files(str(tmp_path / "empty"))
  with pytest.raises(images_lib.FolderError, match="missing: no such folder$"):
    images_lib.image_files(str(tmp_path / "missing"))


def test_read_image_folder_explains_bad_folders_in_one_line(tmp_path):
  with pytest.raises(images_lib.FolderError, match=r"missing: no such folder$"):
    images_lib.read_image_folder(str(tmp_path / "missing"))
  (tmp_path / "file.png").write_bytes(b"")
  with pytest.raises(images_lib.FolderError,
                     match=r"file.png: a file, not a folder of class folders$"):
    images_lib.read_image_folder(str(tmp_path / "file.png"))
  (tmp_path / "file.png").unlink()
  with pytest.raises(images_lib.FolderError, match="found none"):
    images_lib.read_image_folder(str(tmp_path))
  (tmp_path / "a").mkdir()
  with pytest.raises(images_lib.FolderError, match="a class folder with no image"):
    images_lib.read_image_folder(str(tmp_path))
  (tmp_path / "a" / "notes.txt").write_text("not an image")
  with pytest.raises(images_lib.FolderError) as raised:
    images_lib.read_image_folder(str(tmp_path))
  assert str(raised.value) == (f"{tmp_path}: no PNG, JPEG, GIF or BMP image among its 1 files")
  assert isinstance(raised.value, utils.LeoError)  # A command prints it as one line, exit 2.
  fixtures.write_png(str(tmp_path / "b" / "x.png"), np.zeros((4, 4, 1), np.uint8))
  with pytest.raises(images_lib.FolderError, match=r"/a: a class folder with no image \(no "
                     r"PNG, JPEG, GIF or BMP file\)$"):
    images_lib.read_image_folder(str(tmp_path))
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


# ---- Input as users give it: other files, other sizes, colour. ----

def _logged(caplog, level):
  return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_files_that_are_not_images_are_skipped_with_one_warning_naming_them(tmp_path, caplog):
  root = str(tmp_path / "images")
  fixtures.write_png(os.path.join(root, "a", "x.png"), np.zeros((4, 4, 1), np.uint8))
  tf.io.write_file(os.path.join(root, "b", "y.jpg"),
                   tf.io.encode_jpeg(np.full((4, 4, 1), 200, np.uint8), quality=100))
  (tmp_path / "images" / "a" / "notes.txt").write_text("taken in May")
  (tmp_path / "images" / "b" / "Thumbs.db").write_bytes(bytes(range(256)))
  (tmp_path / "images" / "b" / "z.webp").write_bytes(b"RIFF\0\0\0\0WEBPVP8 ")  # Not TF's.
  (tmp_path / "images" / "b" / ".DS_Store").write_bytes(b"\0")  # Hidden: skipped silently.
  with caplog.at_level(logging.INFO, logger="absl"):
    images, labels, names, image_names = images_lib.read_image_folder(root, side=4)
  assert (names, image_names, labels.tolist()) == (["a", "b"], ["x", "y"], [0, 1])
  assert images[:, :, :, 0].mean(axis=(1, 2)).round().tolist() == [0, 200]
  assert _logged(caplog, logging.WARNING) == [
      f"{root}: skipped 3 files that are not PNG, JPEG, GIF or BMP images: a/notes.txt, "
      "b/Thumbs.db, b/z.webp"]
  assert not _logged(caplog, logging.INFO)  # Nothing resized, nothing in colour.
  # Query files are read the same way, each named in full.
  paths = [os.path.join(root, "a", "notes.txt"), os.path.join(root, "a", "x.png")]
  read, kept = images_lib.read_images(paths, side=4)
  assert kept == paths[1:] and read.shape == (1, 4, 4, 1)
  with pytest.raises(images_lib.FolderError, match=r"notes.txt: no PNG, JPEG, GIF or BMP image "
                     r"among its 1 files$"):
    images_lib.read_images(paths[:1], side=4)


def test_a_damaged_image_is_one_line_naming_it_without_tfs_internal_names(tmp_path):
  root = fixtures.image_folder(str(tmp_path / "images"), num_classes=2, per_class=1)
  png = tf.io.encode_png(np.zeros((4, 4, 1), np.uint8)).numpy()
  (tmp_path / "images" / "class-0" / "cut.png").write_bytes(png[:40])  # Truncated.
  with pytest.raises(images_lib.FolderError) as raised:
    images_lib.read_image_folder(root)
  message = str(raised.value)
  assert message.startswith(f"{root}/class-0/cut.png: a damaged PNG file, TF cannot decode it (")
  assert message.endswith("); replace or remove it")
  assert "{{" not in message and "[Op:" not in message and "\n" not in message


def _wide_image():
  """A 4-high, 8-wide grayscale image: black left half, white right half."""
  pixels = np.full((4, 8, 1), 255, np.uint8)
  pixels[:, :4] = 0
  return pixels


def test_an_image_of_another_size_is_squashed_and_said_once_per_folder(tmp_path, caplog):
  root = str(tmp_path / "images")
  fixtures.write_png(os.path.join(root, "a", "wide.png"), _wide_image())
  fixtures.write_png(os.path.join(root, "a", "big.png"), np.zeros((8, 8, 1), np.uint8))
  fixtures.write_png(os.path.join(root, "b", "fits.png"), np.zeros((4, 4, 1), np.uint8))
  with caplog.at_level(logging.INFO, logger="absl"):
    images, *_ = images_lib.read_image_folder(root, side=4)
  # Squashed: each output column averages two input ones, so the halves stay halves.
  np.testing.assert_array_equal(images[1, :, :, 0], [[0, 0, 255, 255]] * 4)
  assert _logged(caplog, logging.INFO) == [
      f"{root}: 2 of 3 images are not 4x4 (a/big.png 8x8, a/wide.png 8x4): squashed to 4x4 as "
      "miniImageNet's images were, the aspect ratio not kept (--image_fit=pad keeps it, "
      "padding with white)"]


def test_pad_keeps_the_aspect_ratio_padding_with_white_as_the_icons_were_drawn(tmp_path,
                                                                               caplog):
  root = str(tmp_path / "images")
  fixtures.write_png(os.path.join(root, "a", "wide.png"), _wide_image())
  with caplog.at_level(logging.INFO, logger="absl"):
    images, *_ = images_lib.read_image_folder(root, side=4, fit="pad")
  # 8x8 with the image in rows 2-5 and white above and below, then halved: white, the image
  # twice, white.
  np.testing.assert_array_equal(images[0, :, :, 0], [[255] * 4, [0, 0, 255, 255],
                                                     [0, 0, 255, 255], [255] * 4])
  assert _logged(caplog, logging.INFO) == [
      f"{root}: 1 of 1 images are not 4x4 (a/wide.png 8x4): padded to a square with white "
      "(aspect ratio kept), then resized to 4x4"]
  assert images_lib.PAD == "pad" and "pad" in config.IMAGE_FITS


def test_a_colour_image_read_in_grayscale_is_said_in_one_line(tmp_path, caplog):
  root = str(tmp_path / "images")
  red = np.zeros((4, 4, 3), np.uint8)
  red[..., 0] = 255
  fixtures.write_png(os.path.join(root, "a", "red.png"), red)
  fixtures.write_png(os.path.join(root, "a", "gray.png"), np.full((4, 4, 3), 90, np.uint8))
  with caplog.at_level(logging.INFO, logger="absl"):
    images, *_ = images_lib.read_image_folder(root, channels=1, side=4)
    colour, *_ = images_lib.read_image_folder(root, channels=3, side=4)
  assert images[:, 0, 0, 0].tolist() == [90, round(0.2989 * 255)]
  assert colour.shape == (2, 4, 4, 3)
  # Only the red one had colour to lose (the other is gray stored as RGB); RGB loses none.
  assert _logged(caplog, logging.INFO) == [
      f"{root}: 1 colour images read in grayscale, as the backbone takes them (a/red.png)"]
