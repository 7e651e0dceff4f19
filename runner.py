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

from absl import flags

import config
import utils

flags.adopt_module_key_flags(config)  # Every flag of config.py is the runner's (its --help).


def main(argv):
  del argv  # No arguments (utils.run_command).
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
  except KeyboardInterrupt:  # Before training listens for it, or during an evaluation.
    raise utils.Interrupted("interrupted (Ctrl-C); what was committed is kept: rerun the same "
                            "command to resume or redo it") from None


if __name__ == "__main__":
  utils.run_command(main)
