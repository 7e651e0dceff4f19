# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Meta-trains LEO, keeps the best checkpoint by validation accuracy, and evaluates it.

    python runner.py --data_path=$EMBEDDINGS                        # train, then test the best
    python runner.py --evaluation_mode --checkpoint_path=/tmp/leo   # test a trained run
    python runner.py --baseline=nearest_centroid                    # a baseline, same tasks

The command: flags (config.py) -> configs -> one of three commands, `training.train`,
`evaluation.evaluate_checkpoint` or `evaluation.evaluate_baseline`. Restarting a training
command resumes it; a folder belongs to one configuration (runfolder.py), and every evaluation
leaves a result record (records.py). An error a user can act on is one line and exit code 2;
Ctrl-C stops a training at its next safe point with one line saying how to resume (exit code
130, as a shell reports a command Ctrl-C stopped).
"""

import signal
import sys

from absl import app
from absl import logging

import config
import utils

INTERRUPTED_STATUS = 130  # A shell's status for a command stopped by Ctrl-C (128 + SIGINT).


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}: every option is a --flag")
  logging.get_absl_handler().addFilter(utils.OwnLinesOrWarnings())
  try:
    configs = config.get_configs()  # Every value is checked before TF, slow to load, is.
    utils.import_tensorflow()  # Quietly, before the modules that use it.
    # pylint: disable=g-import-not-at-top
    import distribute
    import evaluation
    import training
    # pylint: enable=g-import-not-at-top
    distribute.configure_threads(configs)
    # Before any tensor exists: collective ops are configured when the strategy is made.
    strategy = distribute.make_strategy(configs.run.distribution_strategy)
    if configs.run.baseline != "none":
      evaluation.evaluate_baseline(configs, strategy)
    elif configs.run.evaluation_mode:
      evaluation.evaluate_checkpoint(configs, strategy)
    else:
      stop = training.StopRequest()
      signal.signal(signal.SIGINT, stop)
      training.train(configs, strategy, stop)
  except utils.Interrupted as e:
    sys.stderr.write(f"runner.py: {e}\n")
    sys.exit(INTERRUPTED_STATUS)
  except KeyboardInterrupt:
    sys.stderr.write("runner.py: interrupted (Ctrl-C); what was committed is kept: rerun the "
                     "same command to resume or redo it\n")
    sys.exit(INTERRUPTED_STATUS)
  except utils.LeoError as e:
    sys.stderr.write(f"runner.py: error: {e}\n")
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
