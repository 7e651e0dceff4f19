# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of backbone.py: the networks, the backbone file, file digests and PROVENANCE.json."""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import backbone as backbone_lib
import storage
import utils


def test_embedding_dim_sets_the_convnet_width_and_wrn28_10_refuses_another():
  network = backbone_lib.make_backbone("convnet", embedding_dim=24)
  assert network(tf.zeros([2, 16, 16, 1]), is_training=False).shape == (2, 24)
  with pytest.raises(backbone_lib.InputError, match="--embedding_dim=320: wrn28_10"):
    backbone_lib.make_backbone("wrn28_10", embedding_dim=320)


def test_wide_resnet_28_10_has_the_paper_shape():
  network = backbone_lib.WideResNet()
  assert network(tf.zeros([1, 8, 8, 1]), is_training=False).shape == (1, 640)
  convolutions = [v for v in network.variables if v.name.endswith("w:0")]
  assert len(convolutions) == 1 + 12 * 2 + 3  # Stem, 12 blocks of 2, 3 shortcuts.
  assert {v.shape[-1] for v in convolutions} == {16, 160, 320, 640}


def test_standardiser_maps_the_train_images_to_mean_0_and_std_1_per_channel():
  images = np.zeros((2, 1, 1, 2), np.uint8)
  images[0, ..., 0], images[1, ..., 0] = 0, 255  # Channel 0: 0 and 1; channel 1 constant.
  standardise = backbone_lib.standardiser(images)
  np.testing.assert_allclose(standardise.mean, [0.5, 0.0])
  np.testing.assert_allclose(standardise.std, [0.5 + 1e-6, 1e-6])
  np.testing.assert_allclose(standardise(images)[..., 0].numpy().ravel(), [-1, 1], rtol=1e-5)
  np.testing.assert_array_equal(standardise(images)[..., 1], 0)


# ---- The backbone file. ----

IMAGE_SHAPE = (12, 12, 1)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  """A convnet with 8-d embeddings whose batch norm statistics moved from their initial values
  (two steps in training mode), saved: (path, network, standardiser, images [6, 12, 12, 1])."""
  tf.random.set_seed(0)
  images = np.random.default_rng(0).integers(0, 256, size=(6, *IMAGE_SHAPE)).astype(np.uint8)
  network = backbone_lib.make_backbone("convnet", embedding_dim=8)
  standardise = backbone_lib.standardiser(images)
  for _ in range(2):
    network(standardise(images), is_training=True)
  path = str(tmp_path_factory.mktemp("backbone") / backbone_lib.BACKBONE_FILE)
  backbone_lib.save_backbone(path, network, "convnet", 8, IMAGE_SHAPE, standardise)
  return path, network, standardise, images


def test_a_saved_backbone_is_plain_arrays_and_loads_every_variable_back(saved):
  path, network, standardise, images = saved
  with np.load(path, allow_pickle=False) as npz:  # Plain arrays, no pickled objects.
    arrays = dict(npz)
  settings = json.loads(str(arrays.pop("settings")))
  assert settings == {"backbone": "convnet", "embedding_dim": 8, "image_shape": [12, 12, 1],
                      "mean": standardise.mean.tolist(), "std": standardise.std.tolist()}
  assert sorted(arrays) == [f"variables/{i:03d}" for i in range(len(network.variables))]
  loaded, image_shape, loaded_standardise = backbone_lib.load_backbone(path)
  assert image_shape == IMAGE_SHAPE
  np.testing.assert_array_equal(loaded_standardise.mean, standardise.mean)
  np.testing.assert_array_equal(loaded_standardise.std, standardise.std)
  moving = [v for v in network.variables if not v.trainable]  # Batch norm's statistics ...
  assert moving and all(np.any(v.numpy() != 0) for v in moving)  # ... moved from their 0s ...
  for original, restored in zip(network.variables, loaded.variables, strict=True):
    np.testing.assert_array_equal(restored.numpy(), original.numpy(), err_msg=original.name)
  # ... so the loaded network embeds as the saved one did, to the byte.
  embed = lambda net, std: backbone_lib.embedder(net, IMAGE_SHAPE, std)(images)
  np.testing.assert_array_equal(embed(loaded, loaded_standardise), embed(network, standardise))
  assert embed(network, standardise).shape == (6, 8)


def test_load_backbone_refuses_bad_files_in_one_line(tmp_path, saved):
  path = saved[0]
  truncated = tmp_path / "truncated.npz"
  truncated.write_bytes(open(path, "rb").read()[:1000])
  with pytest.raises(backbone_lib.InputError, match="truncated.npz: not a backbone written by"):
    backbone_lib.load_backbone(str(truncated))
  with np.load(path) as npz:
    arrays = dict(npz)
  short = dict(arrays)
  short.pop("variables/000")
  np.savez(tmp_path / "short.npz", **short)
  with pytest.raises(backbone_lib.InputError, match=r"short.npz: \d+ variables, expected the "
                     r"\d+ of a convnet backbone"):
    backbone_lib.load_backbone(str(tmp_path / "short.npz"))
  arrays["variables/001"] = arrays["variables/001"][..., :1]
  np.savez(tmp_path / "reshaped.npz", **arrays)
  with pytest.raises(backbone_lib.InputError, match=r"reshaped.npz: variable 1 \(convnet/"
                     r"batch_norm/offset:0\) has shape \(1,\), expected \(32,\)$"):
    backbone_lib.load_backbone(str(tmp_path / "reshaped.npz"))


def test_file_digest_is_a_files_sha256_and_a_folders_of_its_sorted_paths_and_digests(tmp_path):
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "b").write_bytes(b"2")
  (tmp_path / "a").write_bytes(b"1")
  sha = lambda data: hashlib.sha256(data).hexdigest()
  assert backbone_lib.file_digest(str(tmp_path / "a")) == sha(b"1")
  listing = f"a\0{sha(b'1')}\nsub/b\0{sha(b'2')}\n"
  assert backbone_lib.file_digest(str(tmp_path)) == sha(listing.encode())
  os.symlink(str(tmp_path / "gone"), str(tmp_path / "sub" / "link"))
  with pytest.raises(backbone_lib.InputError) as raised:
    backbone_lib.file_digest(str(tmp_path))
  assert str(raised.value) == (f"{tmp_path / 'sub' / 'link'}: unreadable (No such file or "
                               "directory); remove it or restore it")


# ---- PROVENANCE.json. ----

def _provenance(folder, **record):
  backbone_lib.write_provenance(str(folder), record)


def test_provenance_names_its_backbone_by_name_and_digest_and_finds_it(tmp_path):
  (tmp_path / "backbone.npz").write_bytes(b"weights")
  entry = backbone_lib.backbone_file_entry(str(tmp_path / "backbone.npz"), "backbone.npz")
  assert entry == {"backbone_file": {"file": "backbone.npz",
                                     "sha256": hashlib.sha256(b"weights").hexdigest()}}
  _provenance(tmp_path, protocol="paper", **entry)
  written = json.loads((tmp_path / backbone_lib.PROVENANCE_FILE).read_text())
  contents = {"protocol": "paper", **entry}
  assert written == dict(contents, checksum="sha256:" + hashlib.sha256(
      json.dumps(contents, sort_keys=True).encode()).hexdigest())
  assert backbone_lib.read_provenance(str(tmp_path)) == contents
  assert backbone_lib.embeddings_backbone(str(tmp_path)) == str(tmp_path / "backbone.npz")
  assert backbone_lib.named_backbone_digest(str(tmp_path)) == hashlib.sha256(
      b"weights").hexdigest()
  assert backbone_lib.named_backbone_digest(str(tmp_path / "nowhere")) is None
  # A record elsewhere names it by its absolute path.
  other = tmp_path / "other"
  other.mkdir()
  _provenance(other, **backbone_lib.backbone_file_entry(str(tmp_path / "backbone.npz"),
                                                        str(tmp_path / "backbone.npz")))
  assert backbone_lib.embeddings_backbone(str(other)) == str(tmp_path / "backbone.npz")


def test_the_backbone_of_embeddings_is_refused_in_one_line_unless_the_record_proves_it(
    tmp_path):
  path = tmp_path / backbone_lib.PROVENANCE_FILE
  find = lambda: backbone_lib.embeddings_backbone(str(tmp_path))
  with pytest.raises(storage.StorageError, match=f"^{path}: damaged or unreadable .*; it is "
                     "the record of how the embeddings beside it were made$"):
    find()
  path.write_text('{"backbone_file": ')
  with pytest.raises(storage.StorageError, match=f"^{path}: damaged or unreadable"):
    find()
  _provenance(tmp_path, protocol="pool")  # Made before backbones were saved.
  with pytest.raises(backbone_lib.InputError, match=f"^{path}: names no backbone file$"):
    find()
  _provenance(tmp_path, backbone_file={"file": "backbone.npz"})
  with pytest.raises(backbone_lib.InputError, match=f"^{path}: 'backbone_file' is "
                     r'\{"file": "backbone.npz"\}, expected \{"file": a file name, "sha256"'):
    find()
  _provenance(tmp_path, backbone_file={"file": "backbone.npz", "sha256": "0" * 64})
  with pytest.raises(backbone_lib.InputError, match=f"^{tmp_path / 'backbone.npz'}: the "
                     f"backbone that made the embeddings of {path} is not there$"):
    find()
  (tmp_path / "backbone.npz").write_bytes(b"other weights")
  with pytest.raises(backbone_lib.InputError, match=f"^{tmp_path / 'backbone.npz'}: not the "
                     f"backbone that made the embeddings of {path} \\(its sha256 differs"):
    find()
  # The swapped backbone's digest written into the record: its checksum no longer matches.
  swapped = hashlib.sha256(b"other weights").hexdigest()
  path.write_text(path.read_text().replace("0" * 64, swapped))
  with pytest.raises(storage.StorageError, match=f"^{path}: damaged \\(its contents do not "
                     "match its checksum\\)"):
    find()
  # A record rewritten whole for it: the model trained on the first backbone's embeddings.
  _provenance(tmp_path, backbone_file={"file": "backbone.npz", "sha256": swapped})
  assert find() == str(tmp_path / "backbone.npz")
  with pytest.raises(backbone_lib.InputError, match=f"^{path}: names the backbone "
                     f"{swapped[:12]}, but the model was trained on embeddings of the backbone "
                     "000000000000 "):
    backbone_lib.embeddings_backbone(str(tmp_path), model_digest="0" * 64)
  try:
    find()
  except utils.LeoError as e:  # What a command prints as one line, exit status 2.
    assert "\n" not in str(e)


def test_backbone_record_is_the_record_beside_a_backbone_only_if_it_names_that_file(tmp_path):
  backbone_path = str(tmp_path / "backbone.npz")
  (tmp_path / "backbone.npz").write_bytes(b"weights")
  assert backbone_lib.backbone_record(backbone_path) is None  # No record beside it.
  trained_on = {"classes": ["a"], "class_ids": ["a"], "images": 3}
  _provenance(tmp_path, backbone_trained_on=trained_on,
              **backbone_lib.backbone_file_entry(backbone_path, "backbone.npz"))
  assert backbone_lib.backbone_record(backbone_path)["backbone_trained_on"] == trained_on
  (tmp_path / "backbone.npz").write_bytes(b"retrained")  # The record is of another backbone.
  assert backbone_lib.backbone_record(backbone_path) is None
  _provenance(tmp_path, backbone_trained_on=trained_on)  # It names none.
  assert backbone_lib.backbone_record(backbone_path) is None
