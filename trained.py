# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""A trained LEO, loaded: found, checked intact, built and restored, one way for all of leo.

    loaded = trained.load("datasets/models/icons_1shot")   # LEO, its configuration, checkpoint
    found = runfolder.find_checkpoint(path)                 # or: find, build your own LEO ...
    found = trained.restore(leo, found, path)               # ... and restore into it

`restore` is the one place a trained LEO's variables are read: evaluation, prediction,
training's final test and the inspection tool all call it, so every one of them refuses a
damaged checkpoint in one line and reads exactly the variables a LEO has.
"""

import hashlib
from typing import NamedTuple, Optional

from absl import logging
import tensorflow as tf

import config as config_lib
import model
import runfolder
import storage
import transforms
import utils


def restore(leo: model.LEO, found: runfolder.FoundCheckpoint,
            path: Optional[str] = None) -> runfolder.FoundCheckpoint:
  """Restores the checkpoint `found` into `leo` once every tensor of it read back intact, and
  returns what was restored.

  Args:
    leo: a built LEO (any task shape: its variables do not depend on N or K).
    found: the checkpoint (`runfolder.find_checkpoint`).
    path: what `found` was found from. A run training in that folder may replace its best
      between the read of best.json and the restore, and delete the old files: then the new
      best is found again and restored, once, with a warning. Without `path` a checkpoint
      that disappears is an error.

  Raises:
    StorageError: the checkpoint is damaged (one line naming an intact one to use).
  """
  def read(checkpoint: runfolder.FoundCheckpoint) -> runfolder.FoundCheckpoint:
    runfolder.check_intact(checkpoint.prefix, checkpoint.folder)
    # A training checkpoint also holds the optimiser and samplers: only the model is read.
    tf.train.Checkpoint(model=leo).read(checkpoint.prefix).expect_partial(
    ).assert_existing_objects_matched()
    return checkpoint

  try:
    return read(found)
  except (storage.StorageError, tf.errors.NotFoundError) as e:
    moved = runfolder.find_checkpoint(path) if path is not None else found
    if moved.prefix == found.prefix:
      raise storage.StorageError(utils.first_line(e)) from None
  logging.warning("%s was replaced while it was read (a run training in %s elected a new "
                  "best): using %s instead", found.prefix, found.folder, moved.prefix)
  return read(moved)


def weights_digest(leo: model.LEO) -> str:
  """SHA-256 of a LEO's variables (shapes and values, in the module's order): equal for the
  same trained weights wherever their checkpoint lies (a run's best_checkpoint or its
  model.ckpt of that step, a copy of the run)."""
  digest = hashlib.sha256()
  for variable in leo.variables:
    value = variable.numpy()
    digest.update(f"{value.dtype.str}{list(value.shape)}".encode("ascii"))
    digest.update(value.tobytes())
  return digest.hexdigest()


class Loaded(NamedTuple):
  """A trained LEO and what it was trained with."""
  leo: model.LEO
  inner_config: config_lib.InnerModelConfig
  data_config: config_lib.DataConfig  # The embeddings it was meta-trained on.
  checkpoint: runfolder.FoundCheckpoint
  transform: Optional[transforms.EmbeddingTransform]  # Its inputs' transform (None: none).


def load(path: str) -> Loaded:
  """The model `path` names, as an evaluation finds it: a run folder (its best checkpoint),
  a best_checkpoint folder or a checkpoint prefix. The LEO is built for 2-way 1-shot tasks;
  it serves any N and K (`model.LEO.adapt` traces per shape)."""
  found = runfolder.find_checkpoint(path)
  saved = found.config_json
  inner = config_lib.InnerModelConfig(**saved["inner_model_config"])
  leo = model.build(inner, 2, 1, saved["embedding_dim"], saved.get("seed", 0))
  found = restore(leo, found, path)
  return Loaded(leo, inner, config_lib.DataConfig(**saved["data_config"]), found,
                transforms.saved(found.folder, saved))
