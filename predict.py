# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Classifies new images with a trained LEO adapted to a few labelled ones.

    python predict.py --support=my_classes/ --queries=unlabelled/ [--output=predictions.csv]
    python predict.py --support=my_classes/ --queries=a.png,b.png --checkpoint_path=runs/mine

--support: a folder with one sub-folder of K images per class (any N, any K; the class names
are the sub-folders' names), or an embeddings file. --queries: a folder of images, an image
file, a comma-separated list of them, or an embeddings file. --checkpoint_path: a run folder,
its best_checkpoint or a checkpoint prefix; default: the shipped icons model for the support's
K (1-shot for K = 1, else 5-shot). Prints a table of each query's predicted class and class
probabilities; --output writes them as CSV or JSON. The logic is prediction.py's; an error a
user can act on is one line and exit code 2.
"""

from absl import flags
from absl import logging

import config  # Defines --checkpoint_path.
import utils

flags.DEFINE_string("support", None, "A folder with one sub-folder of K images per class, or "
                    "an embeddings file (.pkl) whose keys name the classes.")
flags.DEFINE_string("queries", None, "A folder of images, an image file, a comma-separated "
                    "list of them, or an embeddings file (.pkl).")
flags.DEFINE_string("output", None, "Also write the predictions to this .csv or .json file.")
flags.mark_flags_as_required(["support", "queries"])
config.define_image_flags()
for name in ("checkpoint_path", *config.IMAGE_FLAGS):
  flags.declare_key_flag(name)
flags.FLAGS.set_default("checkpoint_path", None)  # None: the shipped model for the support's K.


def main(argv):
  del argv  # No arguments (utils.run_command).
  values = flags.FLAGS
  import prediction  # pylint: disable=g-import-not-at-top  # TF: after the flags parse.
  if values.output:
    prediction.check_output(values.output)
  predictor, support = prediction.load_for_support(values.support, values.checkpoint_path,
                                                    values.image_fit)
  queries = prediction.read_queries(values.queries, predictor, values.image_fit)
  probabilities = predictor.predict(support.embeddings, queries.embeddings)
  num_classes, shots, _ = support.embeddings.shape
  logging.info("%s adapted to %s: %d-way %d-shot", predictor.name, values.support,
               num_classes, shots)
  print(prediction.table(queries, support.class_names, probabilities), flush=True)
  if values.output:
    prediction.write(values.output, queries, support.class_names, probabilities,
                     predictor.name)
    logging.info("Predictions written to %s", values.output)


if __name__ == "__main__":
  utils.run_command(main)
