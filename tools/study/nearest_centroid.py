# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Sanity check of embeddings: cosine nearest-centroid accuracy on random few-shot episodes.

    python -m tools.study.nearest_centroid \\
        --embeddings=datasets/embeddings/icons/center/test_embeddings.pkl
"""

from typing import Sequence, Tuple

from absl import app
from absl import flags
import numpy as np

import utils

utils.import_tensorflow()  # Before data.py imports it: TF's start-up chatter silenced.
import data  # pylint: disable=g-import-not-at-top,wrong-import-position

NUM_CLASSES = 5
NUM_QUERIES = 15  # Per class, as LEO's meta-training tasks.
SHOTS = (1, 5)


def episode_accuracy(rows_by_class: Sequence[np.ndarray], unit_embeddings: np.ndarray,
                     shots: int, rng: np.random.Generator) -> float:
  """Query accuracy of one N-way episode classified by the nearest support centroid.

  Args:
    rows_by_class: each class's rows of `unit_embeddings`.
    unit_embeddings: L2-normalised embeddings [images, dim].
    shots: support examples per class.
    rng: draws the classes and, without replacement, each class's images.
  """
  classes = rng.choice(len(rows_by_class), NUM_CLASSES, replace=False)
  picks = np.stack([rng.choice(rows_by_class[c], shots + NUM_QUERIES, replace=False)
                    for c in classes])  # [classes, shots + queries]
  centroids = unit_embeddings[picks[:, :shots]].mean(axis=1)
  centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
  queries = unit_embeddings[picks[:, shots:]]  # [classes, queries, dim]
  predictions = np.argmax(queries @ centroids.T, axis=-1)
  return float(np.mean(predictions == np.arange(NUM_CLASSES)[:, None]))


def evaluate(path: str, shots: int, episodes: int, seed: int) -> Tuple[float, float]:
  """Mean accuracy and 95% half-width over `episodes` episodes of the split at `path`."""
  split = data.load_embeddings(path)
  unit = split.embeddings / np.linalg.norm(split.embeddings, axis=1, keepdims=True)
  rng = np.random.default_rng(seed)
  return utils.mean_and_confidence_interval(
      [episode_accuracy(split.rows_by_class, unit, shots, rng) for _ in range(episodes)])


def main(argv):
  del argv  # Unused.
  values = flags.FLAGS
  for shots in SHOTS:
    mean, half_width = evaluate(values.embeddings, shots, values.episodes, values.seed)
    print(f"{NUM_CLASSES}-way {shots}-shot, {NUM_QUERIES} queries, {values.episodes} episodes: "
          f"{100 * mean:.1f} +- {100 * half_width:.1f} %")


if __name__ == "__main__":
  flags.DEFINE_string("embeddings", None, "A <split>_embeddings.pkl.", required=True)
  flags.DEFINE_integer("episodes", 2000, "Episodes per setting.")
  # --seed (seeds the episodes) is leo's own, defined by config.py (imported by data.py).
  app.run(main)
