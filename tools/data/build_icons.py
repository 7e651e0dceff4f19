# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Builds the bundled `icons` few-shot benchmark from the npm package @iconify/json.

A class is a concept ("home", "key", "umbrella"); an example is one icon set's drawing of it,
the shape of Omniglot (class = character, example = one drawer) with ImageNet-like concepts.
The recipe (docs: bundled-benchmark.md):

1. Keep icon sets with a permissive licence that are monochrome and not flags, logos, emoji or
   archived (`allowed_sets`).
2. Normalise icon names to concepts: strip style words and sizes, map synonyms
   (`normalise_name`); plain aliases count, flipped or rotated ones do not (`icon_candidates`).
3. Keep one icon per (set, concept), preferring the plain name, then the shortest
   (`choose_icons`).
4. Render black on white, grayscale, 84x84 with resvg (`render`).
5. Drop near-duplicates within a concept: sibling sets often ship the same drawing
   (`near_duplicates`); drop a set's picture that stands for two concepts
   (`ambiguous_drawings`).
6. Keep concepts with >= 40 examples, take the 100 largest and split them 64/16/20 with a fixed
   seed, semantic near-twins in the same split (`select_classes`, `split_classes`): the
   benchmark.
7. Every other concept with >= 20 examples that is no variant of a val or test concept (no
   shared word, no twin: `related`) is the pool (`pool_classes`), for pretraining the backbone
   and meta-training (tools/data/pretrain_embeddings.py --protocol says which).

Outputs (in --output_dir, default datasets/icons): `icons.npz` (uint8 images [n, 84, 84],
int32 labels [n], class_names [classes], image_names [n], sources [n]), `split.json`
(`train`, `val`, `test`, `pool`: class names; `made_by`: how it was made) and
`ATTRIBUTION.md`. Every step is deterministic and the npz is written with fixed zip
timestamps, so re-running regenerates byte-identical files:

    python -m tools.data.build_icons                      # fetches the package with `npm pack`
    python -m tools.data.build_icons --package_dir=DIR    # or an unpacked package folder
"""

import collections
import dataclasses
import io
import json
import os
import re
import subprocess
import tarfile
import tempfile
import zipfile
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from absl import flags
from absl import logging
import numpy as np
import resvg_py
import tensorflow as tf

import utils

PACKAGE = "@iconify/json"
PACKAGE_VERSION = "2.2.535"  # Pinned: a new release adds icons and would change the classes.
IMAGE_SIZE = 84  # miniImageNet's image size.
DEFAULT_ICON_SIZE = 16  # Iconify's default width and height when a set gives none.
REPO_ROOT = utils.REPOSITORY
DEFAULT_OUTPUT_DIR = os.path.join(REPO_ROOT, "datasets", "icons")

# SPDX ids of licences that allow redistribution with attribution only.
PERMISSIVE_LICENCES = frozenset({
    "MIT", "Apache-2.0", "ISC", "CC0-1.0", "CC-BY-3.0", "CC-BY-4.0", "OFL-1.1", "BSD-3-Clause",
    "Unlicense"})
# Flags and logos are not concepts drawn by many hands; emoji are multicolour; archived sets
# duplicate maintained ones.
EXCLUDED_CATEGORIES = frozenset({"Flags / Maps", "Logos", "Emoji", "Archive / Unmaintained"})

# Style words that name a variant of the same drawing, stripped from the end of a name
# (repeatedly: "home-24-regular" -> "home").
STYLE_SUFFIX = re.compile(
    r"-(?:outlined?|fill(?:ed)?|solid|line(?:ar)?|bold|duotone|light|thin|regular|round(?:ed)?|"
    r"sharp|twotone|o|alt\d*|sm|lg|broken|bulk|mini|micro|stroke|\d+)$")
# Sets that put the style first: ic ("outline-home"), bx ("bxs-home"), ion ("ios-home").
STYLE_PREFIX = re.compile(r"^(?:baseline|outline|round|sharp|twotone|bxs|bx|ios|md)-")
# Names whose last word is part of the concept, not a style ("format-bold" is not "format").
PROTECTED_NAMES = frozenset({"traffic-light", "format-bold", "text-bold", "format-line"})
# Different names for the same concept; twins that sets draw with the same picture are merged
# here (an "edit" icon is a pencil), so that one drawing never sits in two classes.
SYNONYMS = {
    "house": "home", "cog": "settings", "gear": "settings", "envelope": "mail",
    "email": "mail", "delete": "trash", "trash-can": "trash", "bin": "trash",
    "magnify": "search", "x": "close", "times": "close", "add": "plus", "mic": "microphone",
    "cart": "shopping-cart", "plane": "airplane", "print": "printer", "chat": "message",
    "comment": "message", "pencil": "edit", "pen": "edit",
}
# Distinct concepts that look alike: they may both be classes, but always in the same split.
# (Mirror images and rotations count as look-alikes: a left arrow is a flipped right arrow.)
TWIN_GROUPS = (
    ("align-left", "align-right"),
    ("alarm", "clock", "history"),
    ("arrow-down", "arrow-left", "arrow-right", "arrow-up"),
    ("book", "book-open"),
    ("chevron-down", "chevron-left", "chevron-right", "chevron-up"),
    ("copy", "file"),
    ("download", "upload"),
    ("folder", "folder-open"),
    ("forward", "play"),
    ("laptop", "monitor", "tablet"),
    ("lock", "lock-open", "unlock"),
    ("search", "zoom-in", "zoom-out"),
)

DEDUP_SIZE = 24  # Near-duplicates are compared on downsamples of this size ...
DEDUP_THRESHOLD = 0.97  # ... and are duplicates above this cosine of the mean-centred pixels.
# One set's drawings of two concepts above this cosine are one picture under two names (a set
# whose "shopping-bag" is its "shopping-cart"): its label is ambiguous, so both are dropped.
# Higher than DEDUP_THRESHOLD because real twins differ in small details (lock / lock-open).
AMBIGUOUS_THRESHOLD = 0.995
# Animated icons render as their first frame, often an empty or half-drawn stroke.
ANIMATION_TAGS = ("<animate", "<set")
MIN_EXAMPLES = 40  # Smallest class: a 5-way 5-shot task with 15 queries needs 20, twice that.
# Smallest class of the pool (the concepts outside the benchmark): one 5-shot meta-training
# task with 15 queries per class.
POOL_MIN_EXAMPLES = 20
SPLIT_SIZES = (("train", 64), ("val", 16), ("test", 20))  # miniImageNet's class counts.
SPLIT_SEED = 0


@dataclasses.dataclass(frozen=True)
class Icon:
  """One drawable icon of a set: its name, SVG body and view box."""
  name: str
  body: str
  left: float
  top: float
  width: float
  height: float


def normalise_name(name: str) -> str:
  """The concept an icon name stands for: lower case, style words stripped, synonyms mapped."""
  concept = name.lower()
  while concept not in PROTECTED_NAMES:
    stripped = STYLE_PREFIX.sub("", STYLE_SUFFIX.sub("", concept))
    if stripped == concept or not stripped:
      break
    concept = stripped
  return SYNONYMS.get(concept, concept)


def is_plain_name(name: str) -> bool:
  """Whether the name carries no style word, so it names the set's default drawing."""
  lower = name.lower()
  return lower in PROTECTED_NAMES or (not STYLE_SUFFIX.search(lower)
                                      and not STYLE_PREFIX.match(lower))


def allowed_sets(collections_json: Mapping[str, Mapping]) -> Dict[str, Mapping]:
  """The icon sets usable in the benchmark (prefix -> metadata of `collections.json`).

  Keeps monochrome, visible sets with a permissive licence outside `EXCLUDED_CATEGORIES`.
  """
  return {prefix: info for prefix, info in sorted(collections_json.items())
          if info.get("license", {}).get("spdx") in PERMISSIVE_LICENCES
          and info.get("category") not in EXCLUDED_CATEGORIES
          and not info.get("palette", False) and not info.get("hidden", False)}


def icon_candidates(icon_set: Mapping) -> List[Icon]:
  """Every drawable icon of a set in Iconify JSON format, plain aliases included.

  Hidden (deprecated) icons, animated ones and aliases that flip or rotate their parent are
  skipped: a mirrored arrow is another concept.
  """
  defaults = {key: icon_set.get(key, default) for key, default in
              (("left", 0), ("top", 0), ("width", DEFAULT_ICON_SIZE),
               ("height", DEFAULT_ICON_SIZE))}
  icons, aliases = icon_set.get("icons", {}), icon_set.get("aliases", {})

  def resolve(name: str, depth: int = 0) -> Optional[dict]:
    if name in icons:
      icon = icons[name]
      hidden = icon.get("hidden") or any(tag in icon["body"] for tag in ANIMATION_TAGS)
      return None if hidden else dict(icon)
    alias = aliases.get(name)
    if (alias is None or depth > len(aliases)  # Deeper than all aliases: a cycle.
        or alias.get("hidden")
        or any(alias.get(key) for key in ("hFlip", "vFlip", "rotate"))):
      return None
    parent = resolve(alias["parent"], depth + 1)
    if parent is not None:  # An alias may override the parent's view box.
      parent.update({key: value for key, value in alias.items() if key in defaults})
    return parent

  candidates = []
  for name in sorted(set(icons) | set(aliases)):
    icon = resolve(name)
    if icon is not None:
      candidates.append(Icon(name=name, body=icon["body"],
                             **{key: icon.get(key, value) for key, value in defaults.items()}))
  return candidates


def choose_icons(candidates: Iterable[Icon]) -> Dict[str, Icon]:
  """One icon per concept of a set (concept -> icon).

  Prefers a plain name (the set's default style), then the shortest, then the first
  alphabetically, so the choice does not depend on the order of the set's file.
  """
  def preference(icon: Icon):
    return (not is_plain_name(icon.name), len(icon.name), icon.name)

  chosen = {}
  for icon in candidates:
    concept = normalise_name(icon.name)
    if concept not in chosen or preference(icon) < preference(chosen[concept]):
      chosen[concept] = icon
  return chosen


def svg_document(icon: Icon) -> str:
  """A standalone black-on-white SVG of the icon, scaled to IMAGE_SIZE (aspect kept)."""
  body = icon.body.replace("currentColor", "#000")
  return (f'<svg xmlns="http://www.w3.org/2000/svg" '
          f'xmlns:xlink="http://www.w3.org/1999/xlink" width="{IMAGE_SIZE}" '
          f'height="{IMAGE_SIZE}" viewBox="{icon.left} {icon.top} {icon.width} '
          f'{icon.height}">{body}</svg>')


def render(svg: str) -> np.ndarray:
  """Renders an SVG to a grayscale uint8 image [IMAGE_SIZE, IMAGE_SIZE] on white."""
  # System fonts are skipped so that the few icons with text render the same everywhere.
  png = resvg_py.svg_to_bytes(svg_string=svg, background="#ffffff", width=IMAGE_SIZE,
                              height=IMAGE_SIZE, skip_system_fonts=True)
  return tf.io.decode_png(bytes(png), channels=1).numpy()[:, :, 0]


def area_weights(source: int, size: int) -> np.ndarray:
  """float64 [size, source]: the share of each source pixel in each area-averaged pixel."""
  edges = np.arange(size + 1) * source / size  # Output pixel i covers [edges[i], edges[i+1]).
  pixels = np.arange(source)
  overlap = np.clip(np.minimum(edges[1:, None], pixels + 1)
                    - np.maximum(edges[:-1, None], pixels), 0, None)  # [size, source]
  return overlap / overlap.sum(axis=1, keepdims=True)


def area_downsample(images: np.ndarray, size: int) -> np.ndarray:
  """Area-averages square images [n, s, s] to [n, size, size] (any ratio s/size)."""
  weights = area_weights(images.shape[-1], size)
  return np.einsum("is,nst,jt->nij", weights, images.astype(np.float64), weights)


def similarities(images: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Pairwise cosines of mean-centred `DEDUP_SIZE` downsamples of images [n, s, s].

  Returns:
    (similarity float [n, n], blank bool [n]); a blank (uniform) image has similarity 0.
  """
  small = area_downsample(images, DEDUP_SIZE).reshape(len(images), -1)
  small -= small.mean(axis=1, keepdims=True)
  norms = np.linalg.norm(small, axis=1)
  blank = norms < 1e-6
  unit = small / np.where(blank, 1.0, norms)[:, None]
  return unit @ unit.T, blank


def near_duplicates(images: np.ndarray, threshold: float = DEDUP_THRESHOLD) -> np.ndarray:
  """Which images of one concept to drop: blank ones, and any too similar to an earlier one.

  Args:
    images: uint8 [n, s, s], in priority order (earlier ones are kept).
    threshold: cosine (see `similarities`) above which two images are duplicates.

  Returns:
    bool [n], True for images to drop.
  """
  similarity, drop = similarities(images)  # A blank render used something resvg cannot draw.
  for i in range(len(images)):
    if not drop[i]:
      later = np.arange(len(images)) > i
      drop |= later & (similarity[i] > threshold)
  return drop


def ambiguous_drawings(images: np.ndarray, concepts: Sequence[str],
                       threshold: float = AMBIGUOUS_THRESHOLD) -> np.ndarray:
  """Which of one set's images to drop because the same picture stands for another concept.

  Args:
    images: uint8 [n, s, s], one set's drawings.
    concepts: [n] the concept of each image.
    threshold: cosine (see `similarities`) above which two images are the same picture.

  Returns:
    bool [n], True for both members of every such cross-concept pair.
  """
  similarity, _ = similarities(images)
  concepts = np.asarray(concepts)
  same_picture = (similarity > threshold) & (concepts[:, None] != concepts[None, :])
  return same_picture.any(axis=1)


def select_classes(counts: Mapping[str, int], num_classes: int,
                   min_examples: int = MIN_EXAMPLES) -> List[str]:
  """The `num_classes` concepts with most examples (ties: alphabetical), sorted by name."""
  eligible = sorted((concept for concept, count in counts.items() if count >= min_examples),
                    key=lambda concept: (-counts[concept], concept))
  if len(eligible) < num_classes:
    raise ValueError(f"only {len(eligible)} concepts have >= {min_examples} examples, "
                     f"{num_classes} needed")
  return sorted(eligible[:num_classes])


def split_classes(classes: Sequence[str], twin_groups: Sequence[Sequence[str]] = TWIN_GROUPS,
                  split_sizes: Sequence[Tuple[str, int]] = SPLIT_SIZES,
                  seed: int = SPLIT_SEED) -> Dict[str, List[str]]:
  """Splits classes into named splits of fixed sizes, each twin group within one split.

  Twin groups (restricted to `classes`) and the remaining classes form units, shuffled with
  `seed`; each unit goes to the first split, in reverse order of `split_sizes` (test, val,
  train), that still has room for it.

  Returns:
    split name -> sorted class names, in the order of `split_sizes`.
  """
  if sum(size for _, size in split_sizes) != len(classes):
    raise ValueError(f"split sizes {split_sizes} do not add up to {len(classes)} classes")
  units, grouped = [], set()
  for group in twin_groups:
    members = sorted(set(group) & set(classes))
    if members:
      units.append(members)
      grouped.update(members)
  units += [[concept] for concept in sorted(classes) if concept not in grouped]
  units.sort()
  order = np.random.default_rng(seed).permutation(len(units))
  splits = {name: [] for name, _ in split_sizes}
  room = dict(split_sizes)
  for index in order:
    unit = units[index]
    name = next((name for name, _ in reversed(split_sizes) if room[name] >= len(unit)), None)
    if name is None:
      raise ValueError(f"twin group {unit} fits in no split")
    splits[name] += unit
    room[name] -= len(unit)
  return {name: sorted(members) for name, members in splits.items()}


def write_npz(path: str, arrays: Mapping[str, np.ndarray]):
  """np.savez_compressed with fixed zip timestamps, so the same arrays give the same bytes."""
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for name, array in arrays.items():
      buffer = io.BytesIO()
      np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
      info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      archive.writestr(info, buffer.getvalue())


def attribution_markdown(sets: Mapping[str, Mapping], image_counts: Mapping[str, int]) -> str:
  """ATTRIBUTION.md: one table row per icon set used (set, author, licence, URL, images)."""
  lines = [
      "# Attribution",
      "",
      f"The `icons` benchmark renders drawings from these icon sets, as packaged in the npm "
      f"package `{PACKAGE}@{PACKAGE_VERSION}` (MIT). Each set keeps its own licence below. "
      "`icons.npz` names every image's source (`sources`: `<set>:<icon name>`).",
      "",
      "| set | name | author | licence | images |",
      "|---|---|---|---|---|",
  ]
  for prefix in sorted(image_counts):
    info = sets[prefix]
    author, licence = info.get("author", {}), info["license"]
    author_cell = (f"[{author.get('name', '?')}]({author['url']})" if author.get("url")
                   else author.get("name", "?"))
    licence_cell = (f"[{licence['spdx']}]({licence['url']})" if licence.get("url")
                    else licence["spdx"])
    lines.append(f"| `{prefix}` | {info['name']} | {author_cell} | {licence_cell} | "
                 f"{image_counts[prefix]} |")
  return "\n".join(lines) + "\n"


def fetch_package(directory: str) -> str:
  """Downloads and unpacks the pinned package into `directory`; returns the package folder."""
  subprocess.run(["npm", "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--silent"], cwd=directory,
                 check=True, stdout=subprocess.DEVNULL)
  tarball = os.path.join(directory, f"iconify-json-{PACKAGE_VERSION}.tgz")
  with tarfile.open(tarball) as archive:
    archive.extractall(directory, filter="data")
  return os.path.join(directory, "package")


def collect_examples(package_dir: str) -> Tuple[Dict[str, Mapping], Dict[str, Dict[str, Icon]]]:
  """Reads the package: usable sets and, per concept, each set's chosen icon.

  Returns:
    (sets, examples): prefix -> set metadata, and concept -> {prefix: Icon}.
  """
  with open(os.path.join(package_dir, "collections.json")) as f:
    sets = allowed_sets(json.load(f))
  examples = collections.defaultdict(dict)
  for prefix in sets:
    with open(os.path.join(package_dir, "json", f"{prefix}.json")) as f:
      for concept, icon in choose_icons(icon_candidates(json.load(f))).items():
        examples[concept][prefix] = icon
  return sets, dict(examples)


Example = Tuple[str, Icon, np.ndarray]  # (set prefix, icon, image uint8 [84, 84]).


def render_concepts(examples: Mapping[str, Mapping[str, Icon]],
                    min_examples: int) -> Dict[str, List[Example]]:
  """Renders the concepts that can reach `min_examples` and drops near-duplicates.

  Returns:
    concept -> its examples, ordered by set prefix.
  """
  rendered = {}
  for concept in sorted(examples):
    if len(examples[concept]) < min_examples:  # Dropping duplicates only removes examples.
      continue
    prefixes = sorted(examples[concept])
    images = np.stack([render(svg_document(examples[concept][p])) for p in prefixes])
    drop = near_duplicates(images)
    rendered[concept] = [(p, examples[concept][p], image)
                         for p, image, dropped in zip(prefixes, images, drop) if not dropped]
  return rendered


def drop_ambiguous(rendered: Mapping[str, List[Example]]) -> Dict[str, List[Example]]:
  """Removes, set by set, drawings that stand for two concepts (`ambiguous_drawings`)."""
  by_set = collections.defaultdict(list)
  for concept in sorted(rendered):
    for example in rendered[concept]:
      by_set[example[0]].append((concept, example))
  ambiguous = set()
  for prefix, items in by_set.items():
    drop = ambiguous_drawings(np.stack([example[2] for _, example in items]),
                              [concept for concept, _ in items])
    ambiguous.update((concept, prefix) for (concept, _), dropped in zip(items, drop)
                     if dropped)
  return {concept: [example for example in examples if (concept, example[0]) not in ambiguous]
          for concept, examples in rendered.items()}


def related(concept: str, held_out: Iterable[str],
            twin_groups: Sequence[Sequence[str]] = TWIN_GROUPS) -> bool:
  """Whether `concept` is a held-out concept's twin or names a variant of one.

  A variant shares a word with it ("user-plus" and "user", "cloud-upload" and "upload"),
  plurals included ("users"): a backbone trained on "user-plus" has learnt to draw users.
  """
  held_out = set(held_out)
  if any(concept in group and held_out & set(group) for group in twin_groups):
    return True
  words = set(concept.split("-"))
  return any(word in words or f"{word}s" in words or f"{word}es" in words
             for name in held_out for word in name.split("-"))


def pool_classes(rendered: Mapping[str, List[Example]], benchmark: Mapping[str, List[Example]],
                 held_out: Sequence[str], min_examples: int = POOL_MIN_EXAMPLES,
                 twin_groups: Sequence[Sequence[str]] = TWIN_GROUPS
                 ) -> Dict[str, List[Example]]:
  """The concepts outside the benchmark that pretraining and meta-training may use.

  Every rendered concept that is not a benchmark class and not `related` to a held-out (val or
  test) class, less its drawings that stand for another concept of the pool or of the benchmark
  (`drop_ambiguous`; the benchmark's own examples are kept as they are), if `min_examples`
  remain.
  """
  candidates = {concept: examples for concept, examples in rendered.items()
                if concept not in benchmark and not related(concept, held_out, twin_groups)}
  cleaned = drop_ambiguous({**candidates, **benchmark})
  return {concept: cleaned[concept] for concept in sorted(candidates)
          if len(cleaned[concept]) >= min_examples}


def build(package_dir: str, output_dir: str, min_examples: int = MIN_EXAMPLES,
          split_sizes: Sequence[Tuple[str, int]] = SPLIT_SIZES,
          pool_min_examples: int = POOL_MIN_EXAMPLES):
  """Builds the benchmark from an unpacked package folder into `output_dir`.

  The benchmark classes (train, val, test) are the `sum(split_sizes)` largest concepts with
  `min_examples`, as before the pool existed; the pool is every other usable concept
  (`pool_classes`). The split file lists the pool under "pool".
  """
  sets, examples = collect_examples(package_dir)
  logging.info("%d usable icon sets, %d concepts", len(sets), len(examples))
  rendered = render_concepts(examples, min(min_examples, pool_min_examples))
  # Ambiguity among the large concepts only, as when the benchmark was the whole dataset: the
  # val and test images stay the ones results were measured on.
  candidates = drop_ambiguous({concept: items for concept, items in rendered.items()
                               if len(examples[concept]) >= min_examples})
  num_classes = sum(size for _, size in split_sizes)
  classes = select_classes({concept: len(items) for concept, items in candidates.items()},
                           num_classes, min_examples)
  splits = split_classes(classes, split_sizes=split_sizes)
  benchmark = {concept: candidates[concept] for concept in classes}
  held_out = [concept for name, members in splits.items() if name != "train"
              for concept in members]
  pool = pool_classes(rendered, benchmark, held_out, pool_min_examples)
  everything = {**benchmark, **pool}
  class_names = sorted(everything)
  images, labels, image_names, sources = [], [], [], []
  for label, concept in enumerate(class_names):
    for prefix, icon, image in everything[concept]:
      images.append(image)
      labels.append(label)
      image_names.append(prefix)
      sources.append(f"{prefix}:{icon.name}")
  os.makedirs(output_dir, exist_ok=True)
  write_npz(os.path.join(output_dir, "icons.npz"), {
      "images": np.stack(images), "labels": np.asarray(labels, np.int32),
      "class_names": np.asarray(class_names), "image_names": np.asarray(image_names),
      "sources": np.asarray(sources)})
  split_file = dict(splits, pool=sorted(pool), made_by=provenance(
      min_examples, split_sizes, pool_min_examples))
  with open(os.path.join(output_dir, "split.json"), "w") as f:
    json.dump(split_file, f, indent=1)
    f.write("\n")
  with open(os.path.join(output_dir, "ATTRIBUTION.md"), "w") as f:
    f.write(attribution_markdown(sets, collections.Counter(image_names)))
  for name, members in dict(splits, pool=sorted(pool)).items():
    count = sum(len(everything[concept]) for concept in members)
    logging.info("%s: %d classes, %d images", name, len(members), count)


def provenance(min_examples: int, split_sizes: Sequence[Tuple[str, int]],
               pool_min_examples: int) -> Dict[str, object]:
  """How the split file was made: the `made_by` entry of split.json."""
  return {
      "tool": "tools/data/build_icons.py", "command": "python -m tools.data.build_icons",
      "package": f"{PACKAGE}@{PACKAGE_VERSION}",
      "benchmark": f"the {sum(size for _, size in split_sizes)} concepts with most examples "
                   f"(>= {min_examples}), split {dict(split_sizes)} with seed {SPLIT_SEED}, "
                   "look-alikes (TWIN_GROUPS) in one split",
      "pool": f"every other concept with >= {pool_min_examples} examples that shares no word "
              "(plurals included) with a val or test concept and is no twin of one",
  }


def define_flags():
  """The tool's flags, defined only when run as a script (tests import the module)."""
  flags.DEFINE_string("package_dir", None, f"An unpacked {PACKAGE}@{PACKAGE_VERSION} folder. "
                      "Default: fetch it with `npm pack` into a temporary folder.")
  flags.DEFINE_string("output_dir", DEFAULT_OUTPUT_DIR, "Where to write the benchmark.")


def main(argv):
  del argv  # Unused.
  flags_values = flags.FLAGS
  if flags_values.package_dir:
    build(flags_values.package_dir, flags_values.output_dir)
    return
  with tempfile.TemporaryDirectory() as directory:
    build(fetch_package(directory), flags_values.output_dir)


if __name__ == "__main__":
  define_flags()
  utils.run_command(main)
