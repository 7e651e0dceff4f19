# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of tools/data/build_glyphs.py on the typefaces matplotlib ships (no download)."""

import json
import os
import shutil

import matplotlib
import numpy as np

from tools.data import build_glyphs
from tools.data import pretrain_embeddings

MPL_FONTS = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
TEXT_FACES = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSerif-Italic",
              "DejaVuSansMono", "STIXGeneral", "STIXGeneralItalic", "cmr10", "cmss10", "cmtt10")


def _fonts(tmp_path, names):
  folder = tmp_path / "fonts"
  folder.mkdir(exist_ok=True)
  for name in names:
    shutil.copy(os.path.join(MPL_FONTS, f"{name}.ttf"), folder)
  return str(folder)


def _ink_rows(image):
  rows = np.flatnonzero((image < 128).any(axis=1))
  return rows.min(), rows.max()


def test_a_typeface_draws_every_character_on_one_baseline_at_one_scale():
  images = build_glyphs.draw_typeface(os.path.join(MPL_FONTS, "DejaVuSans.ttf"))
  assert sorted(images) == sorted(build_glyphs.CHARACTERS)
  assert all(image.shape == (84, 84) and image.dtype == np.uint8 for image in images.values())
  (o_top, o_bottom), (big_top, big_bottom) = _ink_rows(images["o"]), _ink_rows(images["O"])
  assert abs(o_bottom - big_bottom) <= 1 and big_top < o_top - 10  # "o" is the smaller.
  assert _ink_rows(images["g"])[1] > big_bottom + 5  # The descender goes below the baseline.
  margin = (84 - build_glyphs.GLYPH_BOX) // 2
  for image in images.values():  # Ink stays inside the glyph box.
    assert (image[:margin - 1] == 255).all() and (image[:, 84 - margin + 1:] == 255).all()


def test_missing_characters_and_all_capital_faces_are_skipped():
  # A size variant of STIX's large symbols: no letters or digits of its own.
  symbols = build_glyphs.draw_typeface(os.path.join(MPL_FONTS, "STIXSizOneSymReg.ttf"))
  assert len(symbols) < build_glyphs.MIN_COVERAGE * len(build_glyphs.CHARACTERS)
  images = build_glyphs.draw_typeface(os.path.join(MPL_FONTS, "DejaVuSans.ttf"))
  capitals = dict(images, a=images["A"], b=images["B"])
  assert sorted(set(images) - set(build_glyphs.drop_same_case(capitals))) == ["a", "b"]
  assert build_glyphs.drop_same_case(images) == images


def test_readable_shares_tell_text_faces_from_a_picture_face():
  faces = {name: build_glyphs.draw_typeface(os.path.join(MPL_FONTS, f"{name}.ttf"))
           for name in TEXT_FACES[:6]}
  rng = np.random.default_rng(0)  # Letters drawn as unrelated pictures: a random scribble each.
  faces["pictures"] = {c: np.where(rng.random((84, 84)) < 0.3, 0, 255).astype(np.uint8)
                       for c in build_glyphs.CHARACTERS}
  shares = build_glyphs.readable_shares(faces)
  assert shares["pictures"] < build_glyphs.MIN_READABLE
  assert min(shares[name] for name in TEXT_FACES[:6]) > 0.6


def test_build_writes_a_reproducible_split_with_look_alikes_together(tmp_path):
  fonts = _fonts(tmp_path, TEXT_FACES + ("STIXSizOneSymReg",))
  record = build_glyphs.build(fonts, str(tmp_path / "a"), num_faces=8, made_by={"test": 1})
  build_glyphs.build(fonts, str(tmp_path / "b"), num_faces=8, made_by={"test": 1})
  for name in ("glyphs.npz", "split.json"):
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
  assert record["font_files"] == 11 and record["faces_drawing_half"] == 10
  assert len(record["faces_chosen"]) == 8 and record["test"] == 1

  image_set = pretrain_embeddings.load_image_set(str(tmp_path / "a" / "glyphs.npz"))
  assert image_set.images.shape[1:] == (84, 84, 1) and len(image_set.class_names) == 62
  assert set(image_set.image_names) <= set(record["faces_chosen"])
  splits = pretrain_embeddings.load_split(str(tmp_path / "a" / "split.json"),
                                          image_set.class_names)
  assert [len(splits[name]) for name in ("train", "val", "test")] == [40, 10, 12]
  split = json.loads((tmp_path / "a" / "split.json").read_text())
  home = {c: name for name in ("train", "val", "test") for c in split[name]}
  for group in build_glyphs.TWIN_GROUPS:
    assert len({home[c] for c in group}) == 1, group
  counts = np.bincount(image_set.labels, minlength=62)
  assert counts.min() >= 6 and counts.max() <= 8  # Near-duplicate faces dropped per class.


def test_class_names_give_distinct_ids():
  names = [build_glyphs.class_name(c) for c in build_glyphs.CHARACTERS]
  assert names[:2] == ["digit-0", "digit-1"] and "upper-A" in names and "lower-a" in names
  assert len(set(pretrain_embeddings.class_ids(names))) == 62
