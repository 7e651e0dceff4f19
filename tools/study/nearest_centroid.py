# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Sanity check of embeddings: the nearest-centroid baseline (`baselines.nearest_centroid`,
cosine) on random few-shot episodes of one embeddings file.

    python -m tools.study.nearest_centroid \\
        --embeddings=datasets/embeddings/icons/center/test_embeddings.pkl
"""

from typing import Sequence, Tuple

from absl import flags
import numpy as np

import utils

tf = utils.import_tensorflow()  # Before data.py imports it: TF's start-up chatter silenced.
# pylint: disable=g-import-not-at-top,wrong-import-position
import baselines
import data
# pylint: enable=g-import-not-at-top,wrong-import-position

NUM_CLASSES = 5
NUM_QUERIES = 15  # Per class, as LEO's meta-training tasks.
SHOTS = (1, 5)
EPISODES_PER_CALL = 200  # Their queries' embeddings: ~40 MB at 640 dimensions.


def sample_rows(rows_by_class: Sequence[np.ndarray], shots: int,
                rng: np.random.Generator) -> np.ndarray:
  """Rows `[classes, shots + queries]` of one N-way episode: `rng` draws the classes and,
  without replacement, each class's images (support first)."""
  classes = rng.choice(len(rows_by_class), NUM_CLASSES, replace=False)
  return np.stack([rng.choice(rows_by_class[c], shots + NUM_QUERIES, replace=False)
                   for c in classes])


def episode_accuracies(unit_embeddings: np.ndarray, rows: np.ndarray,
                       shots: int) -> np.ndarray:
  """`baselines.nearest_centroid`'s query accuracy `[episodes]` of the episodes of `rows`
  `[episodes, classes, shots + queries]` of L2-normalised embeddings `[images, dim]`."""
  episodes = unit_embeddings[rows]  # [episodes, classes, shots + queries, dim]
  labels = np.broadcast_to(np.arange(NUM_CLASSES, dtype=np.int32)[None, :, None, None],
                           rows[:, :, shots:].shape + (1,))
  problem = data.ProblemInstance(episodes[:, :, :shots], None, None, episodes[:, :, shots:],
                                 labels, None)
  return baselines.nearest_centroid(problem).numpy()


def evaluate(path: str, shots: int, episodes: int, seed: int) -> Tuple[float, float]:
  """Mean accuracy and 95% half-width over `episodes` episodes of the split at `path`."""
  split = data.load_embeddings(path)
  unit = split.embeddings / np.linalg.norm(split.embeddings, axis=1, keepdims=True)
  rng = np.random.default_rng(seed)
  rows = np.stack([sample_rows(split.rows_by_class, shots, rng) for _ in range(episodes)])
  return utils.mean_and_confidence_interval(np.concatenate([
      episode_accuracies(unit, chunk, shots)
      for chunk in np.split(rows, range(EPISODES_PER_CALL, episodes, EPISODES_PER_CALL))]))


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
  flags.declare_key_flag("seed")
  utils.run_command(main)
