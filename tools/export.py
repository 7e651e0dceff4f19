# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Exports a trained LEO as a SavedModel that TensorFlow alone loads and adapts.

    python -m tools.export --checkpoint_path=datasets/models/icons_1shot --output=exports/1shot

--checkpoint_path: a run folder (its best checkpoint), its best_checkpoint folder or a
checkpoint prefix. --output: a new folder, or an earlier export, which is replaced. The export
has the signatures `from_images` (uint8 support [classes, shots, H, W, C] and queries
[queries, H, W, C], the input of the backbone that made the run's embeddings) and
`from_embeddings` (float32 support [classes, shots, D] and queries [queries, D]), both for any
number of classes (2 or more), shots and queries, both returning `probabilities` [queries,
classes] and `predicted` [queries]; --nofrom_images leaves the first out (a run on embeddings
without a backbone). The logic is exporting.py's; an error a user can act on is one line and
exit code 2.
"""

from absl import flags
from absl import logging

import config  # pylint: disable=unused-import  # Defines --checkpoint_path.
import utils

flags.DEFINE_string("output", None, "The export's folder: a new one, or an earlier export, "
                    "which is replaced.")
flags.DEFINE_bool("from_images", True, "Export the from_images signature (the run's "
                  "embeddings' backbone inside); --nofrom_images: from_embeddings alone.")
flags.mark_flags_as_required(["output"])
flags.declare_key_flag("checkpoint_path")
flags.FLAGS.set_default("checkpoint_path", None)
flags.mark_flag_as_required("checkpoint_path")


def main(argv):
  del argv  # No arguments (utils.run_command).
  values = flags.FLAGS
  import exporting  # pylint: disable=g-import-not-at-top  # TF: after the flags parse.
  manifest = exporting.export(values.checkpoint_path, values.output, values.from_images)
  logging.info("Exported %s (step %s) to %s: signatures %s", manifest["checkpoint"],
               manifest["step"], values.output, ", ".join(manifest["signatures"]))


if __name__ == "__main__":
  utils.run_command(main)
