# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of the benchmark tools (tools/) and of the bundled benchmark files they made."""

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import textwrap
import types
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

import backbone as backbone_lib
import config
import data
import inprocess
from tools.data import build_icons
from tools.study import nearest_centroid
from tools.data import pretrain_embeddings

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_ICONS = os.path.join(REPO_ROOT, "datasets", "icons")
BUNDLED_EMBEDDINGS = os.path.join(REPO_ROOT, "datasets", "embeddings", "icons", "center")
BUNDLED_DATA_LIMIT_BYTES = 60 * 1024 * 1024

SQUARE = '<path fill="currentColor" d="M4 4h16v16H4z"/>'
CIRCLE = '<circle cx="12" cy="12" r="8" fill="none" stroke="currentColor" stroke-width="2"/>'
TRIANGLE = '<path fill="currentColor" d="M12 3l9 18H3z"/>'


def _icon(body: str, size: int = 24) -> build_icons.Icon:
  return build_icons.Icon(name="icon", body=body, left=0, top=0, width=size, height=size)


def _polygon(rng: np.random.Generator) -> str:
  """A random filled pentagon on a 24x24 view box: different every call."""
  points = " ".join(f"{x:.1f},{y:.1f}" for x, y in rng.uniform(2, 22, size=(5, 2)))
  return f'<polygon fill="currentColor" points="{points}"/>'


# ---- build_icons: the pure steps. ----

@pytest.mark.parametrize("name, concept", [
    ("home", "home"), ("home-outline", "home"), ("Home-24-Regular", "home"),
    ("house-fill", "home"), ("outline-home", "home"), ("bxs-home", "home"),
    ("trash-can-alt2", "trash"), ("arrow-left-bold-duotone", "arrow-left"),
    ("pencil", "edit"), ("x", "close"), ("format-bold", "format-bold"), ("o", "o")])
def test_normalise_name_strips_styles_and_maps_synonyms(name, concept):
  assert build_icons.normalise_name(name) == concept


def test_allowed_sets_keeps_permissive_monochrome_sets_outside_excluded_categories():
  def info(spdx, category="UI 24px", **extra):
    return dict(name=spdx, license={"spdx": spdx}, category=category, **extra)
  sets = build_icons.allowed_sets({
      "mit": info("MIT"), "cc0": info("CC0-1.0", category=None), "gpl": info("GPL-3.0"),
      "nc": info("CC-BY-NC-4.0"), "logos": info("MIT", category="Logos"),
      "emoji": info("Apache-2.0", category="Emoji"), "colour": info("MIT", palette=True),
      "hidden": info("MIT", hidden=True)})
  assert list(sets) == ["cc0", "mit"]


def test_icon_candidates_resolve_plain_aliases_and_skip_flipped_hidden_and_animated():
  icon_set = {
      "width": 24, "height": 24,
      "icons": {"home": {"body": SQUARE}, "old": {"body": SQUARE, "hidden": True},
                "spinner": {"body": CIRCLE.replace("/>", "><animate/></circle>")},
                "wide": {"body": CIRCLE, "width": 32, "left": -4}},
      "aliases": {"house": {"parent": "home"}, "dwelling": {"parent": "house"},
                  "mirrored": {"parent": "home", "hFlip": True},
                  "ghost": {"parent": "old"}, "tall": {"parent": "home", "height": 30}}}
  candidates = {icon.name: icon for icon in build_icons.icon_candidates(icon_set)}
  assert sorted(candidates) == ["dwelling", "home", "house", "tall", "wide"]
  assert candidates["dwelling"].body == SQUARE
  assert (candidates["wide"].left, candidates["wide"].width, candidates["wide"].height) == (
      -4, 32, 24)
  assert candidates["tall"].height == 30


def test_choose_icons_keeps_one_per_concept_preferring_plain_then_shortest_name():
  names = ["home-outline", "house", "home-alt", "outline-star", "star-fill", "round-star",
           "plus-circle"]
  chosen = build_icons.choose_icons(
      build_icons.Icon(name, SQUARE, 0, 0, 24, 24) for name in names)
  assert {concept: icon.name for concept, icon in chosen.items()} == {
      "home": "house", "star": "star-fill", "plus-circle": "plus-circle"}


def test_render_draws_black_on_white_in_the_view_box():
  image = build_icons.render(build_icons.svg_document(_icon(SQUARE)))
  assert image.shape == (84, 84) and image.dtype == np.uint8
  assert image[42, 42] == 0 and image[2, 2] == 255  # Square 4..20 of 24: ink in the middle.
  shifted = build_icons.Icon("icon", SQUARE, left=12, top=0, width=24, height=24)
  image = build_icons.render(build_icons.svg_document(shifted))
  assert image[42, 10] == 0 and image[42, 60] == 255  # The square moved left by half.


def test_area_downsample_averages_blocks():
  images = np.kron(np.arange(4.0).reshape(2, 2), np.ones((3, 3)))[None]  # [1, 6, 6]
  np.testing.assert_allclose(build_icons.area_downsample(images, 2)[0], [[0, 1], [2, 3]])
  columns = np.tile([0.0, 0.0, 2.0, 2.0], (1, 4, 1))  # [1, 4, 4]
  # Output pixel 1 of 3 covers [4/3, 8/3): equal parts of a 0 and a 2 column.
  np.testing.assert_allclose(build_icons.area_downsample(columns, 3)[0, 0], [0, 1, 2])


def test_near_duplicates_drops_blank_images_and_later_copies():
  rng = np.random.default_rng(0)
  bodies = [SQUARE, CIRCLE, SQUARE.replace("M4 4h16v16H4z", "M4.2 4h16v16H4.2z"),
            '<path d=""/>', TRIANGLE, _polygon(rng)]
  images = np.stack([build_icons.render(build_icons.svg_document(_icon(body)))
                     for body in bodies])
  np.testing.assert_array_equal(build_icons.near_duplicates(images),
                                [False, False, True, True, False, False])


def test_ambiguous_drawings_drop_one_picture_named_as_two_concepts():
  images = np.stack([build_icons.render(build_icons.svg_document(_icon(body)))
                     for body in (SQUARE, CIRCLE, SQUARE, TRIANGLE, TRIANGLE)])
  drop = build_icons.ambiguous_drawings(images, ["bag", "ring", "cart", "tent", "tent"])
  np.testing.assert_array_equal(drop, [True, False, True, False, False])


def test_select_classes_takes_the_largest_at_or_above_the_minimum_ties_by_name():
  counts = {"a": 50, "b": 40, "c": 39, "d": 60, "e": 40}
  assert build_icons.select_classes(counts, 3) == ["a", "b", "d"]
  with pytest.raises(ValueError, match="only 4 concepts"):
    build_icons.select_classes(counts, 5)


def test_split_classes_is_seeded_sized_and_keeps_twins_together():
  classes = [f"k{i:02d}" for i in range(20)] + ["lock", "lock-open", "zoom-in", "zoom-out"]
  sizes = (("train", 14), ("val", 4), ("test", 6))
  twins = (("lock", "lock-open", "unlock"), ("zoom-in", "zoom-out"))
  splits = build_icons.split_classes(classes, twins, sizes, seed=3)
  assert {name: len(members) for name, members in splits.items()} == dict(sizes)
  assert sorted(sum(splits.values(), [])) == sorted(classes)
  for twin in (("lock", "lock-open"), ("zoom-in", "zoom-out")):
    assert any(set(twin) <= set(members) for members in splits.values())
  assert build_icons.split_classes(classes, twins, sizes, seed=3) == splits
  assert build_icons.split_classes(classes, twins, sizes, seed=4) != splits


def test_build_on_a_tiny_package_writes_the_benchmark_reproducibly(tmp_path):
  """3 sets draw 5 concepts (one set twice, once as a near-copy); one set is GPL."""
  rng = np.random.default_rng(0)
  package = tmp_path / "package"
  (package / "json").mkdir(parents=True)
  collections_json = {}
  for prefix, spdx in (("aa", "MIT"), ("bb-solid", "CC-BY-4.0"), ("cc", "Apache-2.0"),
                       ("gpl", "GPL-3.0")):
    collections_json[prefix] = {"name": prefix.upper(), "category": "UI 24px",
                                "author": {"name": "A", "url": "https://a.example"},
                                "license": {"spdx": spdx, "url": "https://l.example"}}
    icons = {f"{concept}-outline": {"body": _polygon(rng)}
             for concept in ("key", "bell", "cup", "sun", "leaf")}
    (package / "json" / f"{prefix}.json").write_text(
        json.dumps({"prefix": prefix, "width": 24, "height": 24, "icons": icons}))
  copy = json.loads((package / "json" / "aa.json").read_text())
  copy["icons"]["key-outline"]["body"] = copy["icons"]["key-outline"]["body"].replace(
      'fill="currentColor"', 'fill="#000"')  # The same drawing under another set: dropped.
  collections_json["dd"] = dict(collections_json["aa"], name="DD")
  (package / "json" / "dd.json").write_text(
      json.dumps(dict(copy, prefix="dd", icons={"key": copy["icons"]["key-outline"]})))
  (package / "collections.json").write_text(json.dumps(collections_json))

  sizes = (("train", 2), ("val", 1), ("test", 1))
  outputs = []
  for run in ("first", "second"):
    build_icons.build(str(package), str(tmp_path / run), min_examples=3, split_sizes=sizes,
                      pool_min_examples=3)
    outputs.append({name: (tmp_path / run / name).read_bytes()
                    for name in ("icons.npz", "split.json", "ATTRIBUTION.md")})
  assert outputs[0] == outputs[1]

  npz = np.load(tmp_path / "first" / "icons.npz")
  # 4 benchmark classes and the fifth concept as the pool, 3 drawings each.
  assert npz["images"].shape == (15, 84, 84) and npz["images"].dtype == np.uint8
  classes = list(npz["class_names"])
  split = json.loads(outputs[0]["split.json"])
  assert split["made_by"]["package"] == "@iconify/json@2.2.535"
  assert {name: len(split[name]) for name, _ in sizes} == dict(sizes)
  assert classes == ["bell", "cup", "key", "leaf", "sun"]
  assert sorted(sum((split[name] for name in ("train", "val", "test", "pool")), [])) == classes
  assert len(split["pool"]) == 1
  assert np.bincount(npz["labels"]).tolist() == [3, 3, 3, 3, 3]
  assert set(npz["image_names"]) == {"aa", "bb-solid", "cc"}
  assert "aa:" + classes[0] + "-outline" in npz["sources"]
  attribution = outputs[0]["ATTRIBUTION.md"].decode()
  assert "| `bb-solid` | BB-SOLID | [A](https://a.example) | [CC-BY-4.0]" in attribution
  assert "gpl" not in attribution and "`dd`" not in attribution


@pytest.mark.parametrize("concept, held_out, expected", [
    ("user-plus", ["user"], True), ("users", ["user"], True), ("boxes", ["box"], True),
    ("cloud-upload", ["upload"], True), ("alarm", ["clock"], True),
    ("keyboard", ["key"], False), ("arrow-up-circle", ["shopping-cart"], False),
    ("alarm", ["home"], False)])
def test_related_concepts_share_a_word_or_a_twin_group(concept, held_out, expected):
  assert build_icons.related(concept, held_out) == expected


def test_pool_holds_unrelated_concepts_with_enough_drawings_left():
  square, circle, triangle = (build_icons.render(build_icons.svg_document(_icon(body)))
                              for body in (SQUARE, CIRCLE, TRIANGLE))
  polygons = [build_icons.render(build_icons.svg_document(_icon(_polygon(rng))))
              for rng in [np.random.default_rng(seed) for seed in range(3)]]
  icon = _icon(SQUARE)
  benchmark = {"bell": [("aa", icon, square)], "key": [("aa", icon, circle)]}
  rendered = dict(benchmark, **{
      "bell-ring": [("aa", icon, polygons[0]), ("bb", icon, polygons[1])],  # Related to bell.
      "cup": [("aa", icon, triangle), ("bb", icon, polygons[2])],
      # Set aa's "tent" is its "key": ambiguous, dropped; one drawing is left, too few.
      "tent": [("aa", icon, circle), ("bb", icon, polygons[1])]})
  pool = build_icons.pool_classes(rendered, benchmark, held_out=["bell"], min_examples=2)
  assert list(pool) == ["cup"] and len(pool["cup"]) == 2


# ---- pretrain_embeddings. ----

def _tiny_image_set(path, num_classes=10, per_class=6, size=16, seed=0):
  """An npz of `num_classes` classes of noisy copies of one random pattern each."""
  rng = np.random.default_rng(seed)
  patterns = rng.integers(0, 256, size=(num_classes, size, size))
  noise = rng.integers(-20, 21, size=(num_classes, per_class, size, size))
  images = np.clip(patterns[:, None] + noise, 0, 255).astype(np.uint8)
  np.savez(path, images=images.reshape(-1, size, size),
           labels=np.repeat(np.arange(num_classes), per_class),
           class_names=np.asarray([f"class-{i}" for i in range(num_classes)]),
           image_names=np.asarray([f"img-{i}" for i in range(num_classes * per_class)]))
  return path


def _check_layout(paths, class_counts, images_per_class):
  """The pickles are the published layout and load through data.load_embeddings."""
  for split, path in paths.items():
    assert path.endswith(os.path.join("center", f"{split}_embeddings.pkl"))
    with open(path, "rb") as f:
      raw = pickle.load(f, encoding="latin1")
    assert sorted(raw) == ["embeddings", "keys", "labels"]
    count = class_counts[split] * images_per_class
    assert raw["embeddings"].shape == (count, 640) and raw["embeddings"].dtype == np.float32
    assert raw["labels"].shape == (count,) and raw["labels"].dtype.kind == "i"
    assert raw["keys"].shape == (count,)
    for key, label in zip(raw["keys"], raw["labels"]):
      prefix, class_id, image = key.split("-")
      assert prefix == split and image.startswith(class_id + "_") and "_" not in class_id
    assert np.bincount(raw["labels"]).tolist() == [images_per_class] * class_counts[split]
    loaded = data.load_embeddings(path)
    assert len(loaded.class_names) == class_counts[split]
    np.testing.assert_array_equal(loaded.embeddings, raw["embeddings"])


def test_pretrain_trains_on_train_classes_and_writes_the_published_layout(tmp_path):
  image_set = pretrain_embeddings.load_image_set(
      _tiny_image_set(str(tmp_path / "tiny.npz")))
  names = image_set.class_names
  split_path = tmp_path / "split.json"
  split_path.write_text(json.dumps({"train": names[:6], "val": names[6:8], "test": names[8:]}))
  splits = pretrain_embeddings.load_split(str(split_path), names)
  config = pretrain_embeddings.TrainConfig(epochs=2, batch_size=12)
  paths = pretrain_embeddings.pretrain(image_set, splits, config,
                                       str(tmp_path / "tiny" / "center"))
  _check_layout(paths, {"train": 6, "val": 2, "test": 2}, images_per_class=6)
  with open(paths["val"], "rb") as f:
    assert pickle.load(f)["keys"][0] == "val-class6-class6_img_36"
  # The paper's protocol: the backbone saw exactly the train pickle's classes.
  record = _check_provenance(paths)
  assert record["protocol"] == "paper"
  assert record["backbone_trained_on"]["class_ids"] == [f"class{i}" for i in range(6)]
  assert record["backbone_trained_on"]["images"] == 36


def _check_provenance(paths):
  """The folder's PROVENANCE.json names the pickles' classes, and no val or test class
  (read from the pickles' keys) among the backbone's."""
  folder = os.path.dirname(paths["train"])
  with open(os.path.join(folder, backbone_lib.PROVENANCE_FILE)) as f:
    record = json.load(f)
  backbone = set(record["backbone_trained_on"]["class_ids"])
  for split, path in paths.items():
    loaded = data.load_embeddings(path)
    # The record lists the classes in the order of the pickle's labels, the keys by rows.
    assert sorted(loaded.class_names) == sorted(record["pickles"][split]["class_ids"])
    assert len(loaded.keys) == record["pickles"][split]["images"]
    assert loaded.embedding_dim == record["train_config"]["embedding_dim"]
    if split != "train":
      assert not backbone & set(loaded.class_names), split
  return record


def test_pool_protocol_trains_the_backbone_on_the_pool_only(tmp_path):
  """8 classes: 2 train, 1 val, 1 test, 4 in the pool; 6 images each."""
  image_set = pretrain_embeddings.load_image_set(
      _tiny_image_set(str(tmp_path / "tiny.npz"), num_classes=8))
  names = image_set.class_names
  split_path = tmp_path / "split.json"
  split_path.write_text(json.dumps({"train": names[:2], "val": [names[2]], "test": [names[3]],
                                    "pool": names[4:], "made_by": {"tool": "hand"}}))
  splits = pretrain_embeddings.load_split(str(split_path), names)
  config = pretrain_embeddings.TrainConfig(epochs=1, batch_size=12, protocol="pool",
                                           embedding_dim=16)
  paths = pretrain_embeddings.pretrain(image_set, splits, config,
                                       str(tmp_path / "tiny" / "center"),
                                       record={"command": "test"})
  record = _check_provenance(paths)
  assert record["command"] == "test" and record["protocol"] == "pool"
  assert record["backbone_trained_on"] == {
      "classes": names[4:], "class_ids": [f"class{i}" for i in range(4, 8)], "images": 24}
  assert record["pickles"]["train"]["class_ids"] == [f"class{i}" for i in (0, 1, 4, 5, 6, 7)]
  assert data.load_embeddings(paths["val"]).embeddings.shape == (6, 16)


def test_plan_says_what_each_protocol_trains_on():
  splits = {"train": [0, 1], "val": [2], "test": [3], "pool": [4, 5, 6, 7]}
  held_out = {"val": [2], "test": [3]}
  expected = {"paper": ([0, 1], [0, 1]), "pool": ([4, 5, 6, 7], [0, 1, 4, 5, 6, 7]),
              "pool_and_train": ([0, 1, 4, 5, 6, 7], [0, 1, 4, 5, 6, 7])}
  for protocol, (backbone, meta_train) in expected.items():
    assert pretrain_embeddings.plan(splits, protocol) == (
        backbone, dict(train=meta_train, **held_out))
  backbone, pickles = pretrain_embeddings.plan(splits, "pool_halves")
  assert len(backbone) == 2 and pickles["train"][:2] == [0, 1]
  assert sorted(backbone + pickles["train"][2:]) == [4, 5, 6, 7]  # The halves are disjoint.
  with pytest.raises(backbone_lib.InputError, match="--protocol=pool needs"):
    pretrain_embeddings.plan({"train": [0], "val": [1], "test": [2], "pool": []}, "pool")


def test_pretrain_refuses_more_threads_than_a_few_per_core_in_one_line(tmp_path):
  result = inprocess.run(["-m", "tools.data.pretrain_embeddings", "--num_threads=100000",
                          f"--output_root={tmp_path}"], cwd=REPO_ROOT)
  cores = os.cpu_count()
  assert (result.returncode, result.stdout, result.stderr) == (
      2, "", f"tools.data.pretrain_embeddings: error: --num_threads=100000: expected an integer in "
      f"[1, {4 * cores}] (4 per core of this machine's {cores})\n")
  assert not os.listdir(tmp_path)


@pytest.mark.slow  # The paper's 36M-weight backbone; its shape is checked below, fast.
def test_pretrain_wrn28_10_takes_a_step_and_embeds_to_640(tmp_path):
  image_set = pretrain_embeddings.load_image_set(
      _tiny_image_set(str(tmp_path / "tiny.npz"), num_classes=4, per_class=2, size=8))
  splits = {"train": [0, 1], "val": [2], "test": [3]}
  config = pretrain_embeddings.TrainConfig(backbone="wrn28_10", epochs=1, batch_size=4)
  paths = pretrain_embeddings.pretrain(image_set, splits, config,
                                       str(tmp_path / "tiny" / "center"))
  _check_layout(paths, {"train": 2, "val": 1, "test": 1}, images_per_class=2)


def test_load_image_set_defaults_names_and_explains_bad_files(tmp_path):
  path = str(tmp_path / "plain.npz")
  np.savez(path, images=np.zeros((4, 5, 5, 3), np.uint8), labels=np.array([0, 1, 1, 0]))
  image_set = pretrain_embeddings.load_image_set(path)
  assert image_set.class_names == ["c000", "c001"]
  assert image_set.image_names == ["0", "1", "2", "3"]
  assert image_set.images.shape == (4, 5, 5, 3)
  np.savez(path, x=np.zeros(3), labels=np.zeros(3, np.int64))
  with pytest.raises(backbone_lib.InputError, match="expected key 'images'"):
    pretrain_embeddings.load_image_set(path)
  np.savez(path, images=np.zeros((2, 5, 5), np.float32), labels=np.zeros(2, np.int64))
  with pytest.raises(backbone_lib.InputError, match="expected uint8"):
    pretrain_embeddings.load_image_set(path)


def test_load_split_refuses_unknown_or_repeated_classes(tmp_path):
  path = tmp_path / "split.json"
  path.write_text(json.dumps({"train": ["a"], "val": ["b"], "test": ["a"]}))
  with pytest.raises(backbone_lib.InputError, match="appears twice"):
    pretrain_embeddings.load_split(str(path), ["a", "b"])
  path.write_text(json.dumps({"train": ["a"], "val": ["b"], "test": ["z"]}))
  with pytest.raises(backbone_lib.InputError, match=r"\['z'\]"):
    pretrain_embeddings.load_split(str(path), ["a", "b"])


def test_class_ids_and_keys_have_the_three_part_layout():
  ids = pretrain_embeddings.class_ids(["arrow-left", "shopping_cart", "c017"])
  assert ids == ["arrowleft", "shoppingcart", "c017"]
  keys = pretrain_embeddings.make_keys("test", ids, [0, 2], ["fa6-solid", "x"])
  assert keys.tolist() == ["test-arrowleft-arrowleft_fa6_solid", "test-c017-c017_x"]
  assert data.parse_key(keys[0]) == ("arrowleft", "arrowleft_fa6_solid")
  with pytest.raises(backbone_lib.InputError, match="rename"):
    pretrain_embeddings.class_ids(["arrow-left", "arrowleft"])
  with pytest.raises(backbone_lib.InputError, match="same name"):
    pretrain_embeddings.make_keys("train", ids, [0, 0], ["a-b", "a_b"])


def test_one_cycle_learning_rate_warms_up_then_anneals_to_zero():
  rate = lambda step: float(pretrain_embeddings.one_cycle_learning_rate(step, 100, 0.5))
  assert rate(0) == pytest.approx(0.02)
  assert rate(15) == pytest.approx(0.26)
  assert rate(30) == pytest.approx(0.5)
  assert rate(65) == pytest.approx(0.25)
  assert rate(100) == pytest.approx(0.0, abs=1e-7)


def test_random_affine_keeps_shape_and_a_uniform_background():
  generator = tf.random.Generator.from_seed(0)
  images = tf.fill([3, 12, 12, 1], 7.0)
  moved = pretrain_embeddings.random_affine(images, generator)
  assert moved.shape == images.shape
  np.testing.assert_allclose(moved, images, rtol=1e-6)
  marked = tf.tensor_scatter_nd_update(images, [[0, 6, 6, 0]], [100.0])
  assert not np.allclose(pretrain_embeddings.random_affine(marked, generator), marked)


# ---- pretrain_embeddings under tf.distribute. ----

# Run in a fresh process: logical devices must be configured before TF initialises them.
MIRRORED_STEP_SCRIPT = textwrap.dedent("""
    import pickle
    import sys
    import numpy as np
    sys.path.insert(0, {root!r})
    import sonnet as snt
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import backbone as backbone_lib
    from tools.data import pretrain_embeddings as pe

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    tf.random.set_seed(0)
    BATCH, CLASSES, SHAPE = 8, 4, (16, 16, 1)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(BATCH, *SHAPE)).astype(np.uint8)
    labels = np.arange(BATCH) % CLASSES
    standardise = backbone_lib.standardiser(images)
    # The first step's rate is peak / 25: 0.1 here, so that the update is large next to rounding.
    config = pe.TrainConfig(batch_size=BATCH, learning_rate=2.5)

    # One device (snt.BatchNorm, as the default strategy trains) and two replicas
    # (CrossReplicaBatchNorm), with the same initial weights.
    one = pe.make_classifier("convnet", CLASSES, SHAPE)
    one(tf.zeros([1, *SHAPE]), is_training=False)  # Creates its variables now.
    two = pe.make_classifier("convnet", CLASSES, SHAPE, mirrored)
    assert len(one.trainable_variables) == len(two.trainable_variables)
    for a, b in zip(one.trainable_variables, two.trainable_variables):
      assert a.shape == b.shape
      a.assign(b)
    initial = [v.numpy() for v in one.trainable_variables]
    step_one, _ = pe.make_train_step(one, CLASSES, 10, config, standardise, SHAPE)
    step_two, _ = pe.make_train_step(two, CLASSES, 10, config, standardise, SHAPE, mirrored)
    loss_one, accuracy_one = step_one(images, labels)
    loss_two, accuracy_two = step_two(images, labels)

    # Each replica convolves its half of the batch (not the whole batch twice).
    for step, count, batch in ((step_one, 7, BATCH), (step_two, 14, BATCH // 2)):
      convolutions = [op for op in step.get_concrete_function().graph.get_operations()
                      if op.type == "Conv2D"]
      assert len(convolutions) == count and {{op.inputs[0].shape[0] for op in convolutions}} == {{
          batch}}, [(op.name, op.inputs[0].shape) for op in convolutions]
    # The same loss, accuracy and update: every tensor's updated values agree to 0.1% of its
    # largest change (float rounding: observed 1e-5 of it); the two replicas' copies are equal.
    np.testing.assert_allclose(float(loss_two), float(loss_one), rtol=1e-5)
    assert float(accuracy_two) == float(accuracy_one)
    for start, a, b in zip(initial, one.trainable_variables, two.trainable_variables):
      change = np.abs(a.numpy() - start).max()
      assert change > 0, a.name
      np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=0, atol=1e-3 * change,
                                 err_msg=b.name)
      first, second = mirrored.experimental_local_results(b)
      np.testing.assert_array_equal(first.numpy(), second.numpy())
    # Batch norm's moving statistics after one step are those of the whole batch: the same
    # means; the variances differ by the factor n / (n - 1) the fused kernel applies to the one
    # device's (n = 8 images x the positions at that layer: 8x8, 8x8, 4x4, 4x4, 2x2, 2x2, 1x1).
    norms = lambda model: [m for m in model.submodules if isinstance(m, snt.BaseBatchNorm)]
    for n, a, b in zip([BATCH * p for p in (64, 64, 16, 16, 4, 4, 1)], norms(one), norms(two)):
      np.testing.assert_allclose(np.ravel(b.moving_mean.value), np.ravel(a.moving_mean.value),
                                 atol=1e-6)
      np.testing.assert_allclose(np.ravel(b.moving_variance.value) * n / (n - 1),
                                 np.ravel(a.moving_variance.value), rtol=1e-4)
      for variable in b.variables:
        first, second = mirrored.experimental_local_results(variable)
        np.testing.assert_array_equal(first.numpy(), second.numpy())

    # A global batch the replicas cannot share equally.
    try:
      pe.make_train_step(two, CLASSES, 10, pe.TrainConfig(batch_size=5), standardise, SHAPE,
                         mirrored)
      raise AssertionError("batch_size=5 accepted")
    except backbone_lib.InputError as e:
      assert str(e) == ("--batch_size=5: expected a multiple of the 2 replicas, which share "
                        "each batch equally"), e

    # The whole tool under the strategy: one step, then the embeddings of every split.
    image_set = pe.ImageSet(np.concatenate([images, images]), np.repeat(np.arange(4), 4),
                            ["a", "b", "c", "d"], [str(i) for i in range(16)])
    paths = pe.pretrain(image_set, {{"train": [0, 1], "val": [2], "test": [3]}},
                        pe.TrainConfig(epochs=1, batch_size=8), {out!r}, mirrored)
    assert sorted(paths) == ["test", "train", "val"]
    for split, count in (("train", 8), ("val", 4), ("test", 4)):
      with open(paths[split], "rb") as f:
        embeddings = pickle.load(f)["embeddings"]
      assert embeddings.shape == (count, 640) and np.isfinite(embeddings).all()
    print("losses", float(loss_one), float(loss_two))
""")


@pytest.mark.slow
def test_two_mirrored_replicas_take_the_one_device_step(tmp_path):
  """One step on two logical CPUs equals one device's on the same batch and initial weights.

  The replicas normalise by the whole batch's statistics (cross-replica batch norm), so the
  comparison is with the default strategy's own step, batch norm in training mode included.
  """
  result = subprocess.run(
      [sys.executable, "-c", MIRRORED_STEP_SCRIPT.format(root=REPO_ROOT,
                                                         out=str(tmp_path / "center"))],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-4000:]
  assert "losses" in result.stdout


def test_batch_size_not_a_multiple_of_the_replicas_is_a_one_line_error(tmp_path):
  three_replicas = types.SimpleNamespace(num_replicas_in_sync=3)
  config = pretrain_embeddings.TrainConfig(batch_size=8)
  with pytest.raises(backbone_lib.InputError) as raised:
    pretrain_embeddings.train(None, np.zeros((16, 4, 4, 1), np.uint8), np.zeros(16, np.int64),
                              config, None, three_replicas)
  assert str(raised.value) == ("--batch_size=8: expected a multiple of the 3 replicas, which "
                               "share each batch equally")
  image_set = pretrain_embeddings.load_image_set(_tiny_image_set(str(tmp_path / "tiny.npz")))
  with pytest.raises(backbone_lib.InputError, match="--batch_size=8: expected a multiple"):
    pretrain_embeddings.pretrain(image_set, {"train": [0], "val": [1], "test": [2]}, config,
                                 str(tmp_path / "out"), three_replicas)
  assert not (tmp_path / "out").exists()  # Refused before anything was built or written.


# ---- nearest_centroid. ----

def test_nearest_centroid_is_perfect_on_separated_classes():
  unit = np.repeat(np.eye(6), 20, axis=0)  # 6 classes, 20 identical unit vectors each.
  rows_by_class = [np.arange(20) + 20 * c for c in range(6)]
  rng = np.random.default_rng(0)
  rows = np.stack([nearest_centroid.sample_rows(rows_by_class, 1, rng) for _ in range(3)])
  assert rows.shape == (3, nearest_centroid.NUM_CLASSES, 1 + nearest_centroid.NUM_QUERIES)
  np.testing.assert_array_equal(nearest_centroid.episode_accuracies(unit, rows, shots=1), 1.0)


def test_nearest_centroid_tool_scores_with_the_baseline():
  # Class 1's queries lie nearer class 0's support in 2 of 3 queries: accuracy (3 + 1) / 6.
  unit = np.array([[1, 0], [0, 1], [1, 0], [1, 0], [1, 0], [0.6, 0.8], [0.8, 0.6], [0.8, 0.6]])
  unit /= np.linalg.norm(unit, axis=1, keepdims=True)
  rows = np.array([[[0, 2, 3, 4], [1, 5, 6, 7]]])  # 2 classes, 1 shot, 3 queries.
  with mock.patch.object(nearest_centroid, "NUM_CLASSES", 2):
    accuracy = nearest_centroid.episode_accuracies(unit, rows, shots=1)
  np.testing.assert_allclose(accuracy, [4 / 6])


# ---- The bundled benchmark. ----

def _bundled_split():
  with open(os.path.join(BUNDLED_ICONS, "split.json")) as f:
    return json.load(f)


def test_bundled_icons_have_the_documented_classes_and_sizes():
  npz = np.load(os.path.join(BUNDLED_ICONS, "icons.npz"))
  split = _bundled_split()
  assert {name: len(split[name]) for name in ("train", "val", "test")} == {
      "train": 64, "val": 16, "test": 20}
  classes = sum((split[name] for name in ("train", "val", "test", "pool")), [])
  assert sorted(classes) == list(npz["class_names"])
  assert npz["images"].dtype == np.uint8 and npz["images"].shape[1:] == (84, 84)
  counts = dict(zip(npz["class_names"], np.bincount(npz["labels"])))
  assert min(counts[name] for name in classes[:100]) >= build_icons.MIN_EXAMPLES
  assert min(counts[name] for name in split["pool"]) >= build_icons.POOL_MIN_EXAMPLES
  held_out = split["val"] + split["test"]
  assert not [name for name in split["pool"] if build_icons.related(name, held_out)]
  assert len(npz["image_names"]) == len(npz["sources"]) == len(npz["images"])


def test_bundled_embeddings_load_match_the_split_and_saw_no_held_out_class_in_pretraining():
  split = _bundled_split()
  with open(os.path.join(BUNDLED_EMBEDDINGS, backbone_lib.PROVENANCE_FILE)) as f:
    record = json.load(f)
  total_bytes = sum(os.path.getsize(os.path.join(folder, name))
                    for folder in (BUNDLED_ICONS, BUNDLED_EMBEDDINGS)
                    for name in os.listdir(folder))
  assert total_bytes < BUNDLED_DATA_LIMIT_BYTES
  assert max(os.path.getsize(os.path.join(BUNDLED_EMBEDDINGS, name))
             for name in os.listdir(BUNDLED_EMBEDDINGS)) < 30e6  # Any one file of the repo.
  backbone = set(record["backbone_trained_on"]["class_ids"])
  bundled = config.DataConfig(dataset_name="icons")  # Found as runner.py finds them.
  for name in ("train", "val", "test"):
    embeddings = data.load_split(bundled, data.MetaSplit(name))
    assert sorted(embeddings.class_names) == sorted(record["pickles"][name]["class_ids"])
    assert embeddings.embedding_dim == record["train_config"]["embedding_dim"]
    assert min(len(rows) for rows in embeddings.rows_by_class) >= 20
    if name != "train":
      assert embeddings.class_names == pretrain_embeddings.class_ids(split[name])
      assert not backbone & set(embeddings.class_names), name
  # The record names the classes of the split file it was made from.
  assert set(record["backbone_trained_on"]["classes"]) <= set(split["train"] + split["pool"])


def test_the_bundled_backbone_makes_the_bundled_embeddings():
  """The shipped backbone is the one the bundled pickles came from: it embeds the val
  images (read from icons.npz, in the pickle's order) to the val pickle's numbers."""
  pe = pretrain_embeddings
  backbone_path = os.path.join(BUNDLED_EMBEDDINGS, backbone_lib.BACKBONE_FILE)
  # PROVENANCE.json names it, with its digest.
  assert backbone_lib.embeddings_backbone(BUNDLED_EMBEDDINGS) == backbone_path
  image_set = pe.load_image_set(os.path.join(BUNDLED_ICONS, "icons.npz"))
  splits = pe.load_split(os.path.join(BUNDLED_ICONS, "split.json"), image_set.class_names)
  network, image_shape, standardise = backbone_lib.load_backbone(backbone_path)
  rows = np.flatnonzero(np.isin(image_set.labels, splits["val"]))
  embeddings = backbone_lib.embedder(network, image_shape, standardise)(image_set.images[rows])
  with open(os.path.join(BUNDLED_EMBEDDINGS, "val_embeddings.pkl"), "rb") as f:
    bundled = pickle.load(f)
  keys = pe.make_keys("val", pe.class_ids(image_set.class_names), image_set.labels[rows],
                      [image_set.image_names[row] for row in rows])
  np.testing.assert_array_equal(keys, bundled["keys"])
  np.testing.assert_allclose(embeddings, bundled["embeddings"], rtol=1e-5, atol=1e-5)


# ---- The icons presets. ----

@pytest.mark.parametrize("name, shots", [("icons_1shot", 1), ("icons_5shot", 5)])
def test_icons_presets_exist_and_make_valid_configs(name, shots):
  preset = config.PRESETS[name]
  assert preset["dataset_name"] == "icons" and preset["num_tr_examples_per_class"] == shots
  classes = (config.DataConfig, config.InnerModelConfig, config.OuterModelConfig,
             config.RunConfig)
  fields = {field.name: cls for cls in classes for field in dataclasses.fields(cls)}
  assert set(preset) <= set(fields) and set(preset) <= set(config.FLAGS)
  for cls in classes:  # Each config validates its values when built.
    cls(**{key: value for key, value in preset.items() if fields[key] is cls})
  # The README's first command meta-trains, validating before the last step.
  assert 0 < preset["checkpoint_steps"] < preset["num_steps_limit"]


def test_icons_presets_are_the_tuning_studys_best_trial_to_two_digits():
  """config.PRESETS cites results/tune_icons_1shot: its best flags, rounded."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results",
                      "tune_icons_1shot", "best_flags.txt")
  with open(path) as f:
    best = dict(line.strip()[2:].split("=", 1) for line in f
                if line.startswith("--") and "=" in line)
  searched = ("outer_lr", "l2_penalty_weight", "orthogonality_penalty_weight", "dropout_rate",
              "kl_weight", "encoder_penalty_weight", "finetuning_lr_init", "inner_lr_init")
  for name in ("icons_1shot", "icons_5shot"):
    preset = config.PRESETS[name]
    for flag in searched:
      assert preset[flag] == float(f"{float(best[flag]):.2g}"), flag
    assert preset["num_latents"] == int(best["num_latents"])
    assert preset["checkpoint_steps"] == int(best["checkpoint_steps"])
  # 5-shot trains as long as the trials; 1-shot longer, chosen on the validations of the
  # study's best trial trained on (results/icons_1shot/tuned6000-seed*).
  assert config.PRESETS["icons_5shot"]["num_steps_limit"] == int(best["num_steps_limit"])
  assert config.PRESETS["icons_1shot"]["num_steps_limit"] == config.ICONS_1SHOT_STEPS == 6000
