# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Every flag of leo, defined once, and the plain config objects built from them.

The flags, their names and defaults are those of the original LEO code (config.py and
runner.py of deepmind/leo); `--seed`, `--preset` and the evaluation and convenience flags
after them are leo's own. Nothing outside this module reads `FLAGS`: the runner calls the
`get_*_config()` builders, which apply the preset, validate every value and return frozen
dataclasses.
"""

import dataclasses
import math
import os
import re
import struct
import sys
from typing import Any, Mapping, Optional, Sequence

from absl import flags

import utils

# Constants of the original that were never flags.
TOTAL_EXAMPLES_PER_CLASS = 600  # Images per class in mini/tieredImageNet val/test classes.
NUM_VALID_BATCHES = 10  # A validation estimate is the mean of this many batches.

MULTIVIEW_DATASET = "miniImageNet"  # The only dataset published with multiview crops.
EMBEDDING_CROPS = ("center", "multiview")
DISTRIBUTION_STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")
# Baselines scored from each task's support set alone, and those fitted on the meta-train
# classes first; baselines.py implements them, in this order.
TASK_BASELINES = ("nearest_centroid", "logistic_regression")
FITTED_BASELINES = ("whitened_nearest_centroid", "simpleshot")
BASELINES = ("none", *TASK_BASELINES, *FITTED_BASELINES)
EVAL_SPLITS = ("test", "val")
# What LEO's input is before its own L2 normalisation (transforms.py): the embeddings as they
# are (the original), or changed by statistics of the meta-train split.
EMBEDDING_TRANSFORMS = ("none", "center", "cl2n", "whiten")
# How an image that is not square becomes the backbone's square (images.py): squashed (resized,
# aspect ratio lost), or padded to a square with white first.
IMAGE_FITS = ("squash", "pad")
IMAGE_FLAGS = ("image_fit",)  # define_image_flags's.

# Flags that choose what one command does, not what the run is: left out of its flags.txt.
# So is the run folder: a replay (`--flagfile=<run>/flags.txt`) can never write into the run
# it replays, whatever the order of its flags.
_COMMAND_ONLY_FLAGS = frozenset({"evaluation_mode", "baseline", "eval_split", "checkpoint_path",
                                 "eval_data_path", "eval_dataset_name", "eval_embedding_crop",
                                 "export_tasks", "tasks", "results_path"})
_DATASET_NAME = r"[A-Za-z0-9][A-Za-z0-9_.]*"

# Every float of a config is used in float32 and every count in TF's int32 shapes.
FLOAT32_MAX = 3.4028234663852886e38
# The smallest normal float32: TF on CPUs flushes smaller magnitudes (subnormals) to 0 in its
# ops, so a learning rate of 1e-40 is a learning rate of 0.
FLOAT32_MIN_NORMAL = 1.1754943508222875e-38
INT32_MAX = 2**31 - 1
# At this many tasks an evaluation's 95% CI is under ±0.01% whatever the accuracy
# (1.96 * 0.5 / sqrt(1e8), per-task accuracies lying in [0, 1]): more change no digit leo
# prints, and take days.
MAX_EVALUATED_TASKS = 10**8
# More intra-op threads than this per core only wait for one another, and TF takes minutes to
# start a hundred thousand.
MAX_THREADS_PER_CORE = 4

# The tuned hyperparameters of the original README, one preset per setting.
_TUNED = ("outer_lr", "l2_penalty_weight", "orthogonality_penalty_weight", "dropout_rate",
          "kl_weight", "encoder_penalty_weight")
ICONS_1SHOT_STEPS = 6000  # Chosen on validation by training the study's best trial on.
_ICONS_TUNED = dict(
    num_steps_limit=3000, checkpoint_steps=500, num_latents=116, inner_lr_init=4.7,
    finetuning_lr_init=0.015, **dict(zip(_TUNED, (2.3e-4, 3.8e-8, 0.026, 0.38, 0.013, 3.3e-6))))
PRESETS = {
    "miniImageNet_1shot": dict(
        dataset_name="miniImageNet", num_tr_examples_per_class=1,
        **dict(zip(_TUNED, (2.739071e-4, 3.623413e-10, 0.188103, 0.307651, 0.756143,
                            5.756821e-6)))),
    "miniImageNet_5shot": dict(
        dataset_name="miniImageNet", num_tr_examples_per_class=5,
        **dict(zip(_TUNED, (4.102361e-4, 8.540338e-9, 1.523998e-3, 0.300299, 0.466387,
                            2.661608e-7)))),
    "tieredImageNet_1shot": dict(
        dataset_name="tieredImageNet", num_tr_examples_per_class=1,
        **dict(zip(_TUNED, (8.659053e-4, 4.148858e-10, 5.451078e-3, 0.475126, 2.034189e-3,
                            8.302962e-5)))),
    "tieredImageNet_5shot": dict(
        dataset_name="tieredImageNet", num_tr_examples_per_class=5,
        **dict(zip(_TUNED, (6.110314e-4, 1.690399e-10, 2.481216e-2, 0.415158, 1.622811,
                            2.672450e-5)))),
    # The bundled icons: the best trial of a 1-shot tools/tune.py study on the icons'
    # validation classes (RESULTS.md: its trials, budget and objective), values rounded to two
    # digits, validated every 500 steps. 1-shot trains 6,000 steps: its validation still rose
    # at the study's 3,000 (RESULTS.md). The 5-shot preset carries the values over untuned,
    # at the study's 3,000 steps (RESULTS.md compares it with the defaults on validation).
    # Both take SimpleShot's centring of the embeddings (--embedding_transform=cl2n): the best
    # input on validation of the four, each trained with these values in 3 seeds (RESULTS.md,
    # "When LEO helps").
    "icons_1shot": dict(
        dataset_name="icons", num_tr_examples_per_class=1, embedding_transform="cl2n",
        **dict(_ICONS_TUNED, num_steps_limit=ICONS_1SHOT_STEPS)),
    "icons_5shot": dict(
        dataset_name="icons", num_tr_examples_per_class=5, embedding_transform="cl2n",
        **_ICONS_TUNED),
}

FLAGS = flags.FLAGS

# ---- Flags of the original config.py (same names, same defaults). ----
flags.DEFINE_string("data_path", None, "Root folder of the unzipped embeddings "
                    "(<data_path>/<dataset_name>/<embedding_crop>/<split>_embeddings.pkl). "
                    "Optional for --dataset_name=icons, which is bundled.")
flags.DEFINE_string("dataset_name", "miniImageNet", "miniImageNet, tieredImageNet, icons "
                    "(bundled) or the name of a folder of embeddings you made.")
flags.DEFINE_string("embedding_crop", "center", "center or multiview (miniImageNet only).")
flags.DEFINE_boolean("train_on_val", False, "Meta-train on the train and val classes.")
flags.DEFINE_integer("inner_unroll_length", 5, "Latent-space adaptation steps.")
flags.DEFINE_integer("finetuning_unroll_length", 5, "Parameter-space fine-tuning steps.")
flags.DEFINE_integer("num_latents", 64, "Dimensionality of the latent space.")
flags.DEFINE_float("inner_lr_init", 1.0, "Initial per-latent-dimension inner learning rate.")
flags.DEFINE_float("finetuning_lr_init", 0.001,
                   "Initial per-embedding-dimension fine-tuning learning rate.")
flags.DEFINE_float("dropout_rate", 0.5, "Probability of dropping an input unit.")
flags.DEFINE_float("kl_weight", 1e-3, "Weight of the KL term (beta).")
flags.DEFINE_float("encoder_penalty_weight", 1e-9, "Weight of the encoder penalty (gamma).")
flags.DEFINE_float("l2_penalty_weight", 1e-8, "Scale of the L2 penalty (lambda_1).")
flags.DEFINE_float("orthogonality_penalty_weight", 1e-3,
                   "Scale of the decoder orthogonality penalty (lambda_2).")
flags.DEFINE_integer("num_classes", 5, "Classes per task (N-way).")
flags.DEFINE_integer("num_tr_examples_per_class", 1, "Support examples per class (K-shot).")
flags.DEFINE_integer("num_val_examples_per_class", 15,
                     "Query examples per class in meta-training tasks.")
flags.DEFINE_integer("metatrain_batch_size", 12, "Tasks per meta-training step.")
flags.DEFINE_integer("metavalid_batch_size", 200, "Tasks per meta-validation batch.")
flags.DEFINE_integer("metatest_batch_size", 200, "Tasks per meta-test batch.")
flags.DEFINE_integer("num_steps_limit", int(1e5), "Meta-training steps.")
flags.DEFINE_float("outer_lr", 1e-4, "Adam learning rate of the outer loop.")
flags.DEFINE_float("gradient_threshold", 0.1,
                   "Element-wise gradient clip value (<= 0 disables).")
flags.DEFINE_float("gradient_norm_threshold", 0.1,
                   "Per-tensor gradient norm clip, after the value clip (<= 0 disables).")

# ---- Flags of the original runner.py. ----
flags.DEFINE_string("checkpoint_path", "/tmp/leo", "Run folder: checkpoints, best_checkpoint, "
                    "config, summaries. In evaluation mode, a run folder or its best_checkpoint.")
flags.DEFINE_integer("checkpoint_steps", 1000,
                     "Steps between checkpoints, summaries and validations.")
flags.DEFINE_boolean("evaluation_mode", False, "Only evaluate a trained model on the test split.")

# ---- leo's own flags. ----
flags.DEFINE_integer("seed", 0, "Seeds episodes, initialisation, dropout and latent sampling.")
flags.DEFINE_enum("preset", None, sorted(PRESETS),
                  "Dataset, shots and the six tuned hyperparameters of the original README "
                  "(icons_*: chosen on the icons' validation classes, with the training "
                  "length). "
                  "Flags given on the command line win over the preset.")
flags.DEFINE_enum("embedding_transform", "none", list(EMBEDDING_TRANSFORMS),
                  "Change every embedding by statistics of the meta-train split before LEO's "
                  "L2 normalisation: none (the original), center (minus the train mean), "
                  "cl2n (L2-normalised, minus their train mean: SimpleShot's), whiten "
                  "(cl2n's, then whitened by the train classes' within-class covariance: "
                  "whitened nearest centroid's). Saved with the run.")
flags.DEFINE_integer("num_eval_examples_per_class", None,
                     "Queries per class in validation and test tasks. Default: all remaining, "
                     "min(600, smallest class of the split) - K, as the original.")
flags.DEFINE_integer("num_test_tasks", 10000, "Tasks in the meta-test estimate.")
flags.DEFINE_integer("log_steps", 100, "Steps between training log lines.")
flags.DEFINE_boolean("evaluate_after_training", True,
                     "Evaluate the best checkpoint on the test split when training ends.")
flags.DEFINE_enum("baseline", "none", list(BASELINES),
                  "Evaluate a baseline on the test episodes instead of LEO.")
flags.DEFINE_enum("eval_split", "test", list(EVAL_SPLITS),
                  "Split that --evaluation_mode and --baseline evaluate on.")
flags.DEFINE_string("eval_data_path", None, "--data_path of the data --evaluation_mode and "
                    "--baseline evaluate on. Default: the run's.")
flags.DEFINE_string("eval_dataset_name", None, "--dataset_name of the data --evaluation_mode "
                    "and --baseline evaluate on (another than the run trained on: "
                    "cross-domain). Default: the run's.")
flags.DEFINE_string("eval_embedding_crop", None, "--embedding_crop of the data "
                    "--evaluation_mode and --baseline evaluate on. Default: the run's.")
flags.DEFINE_string("export_tasks", None, "Also write the evaluated tasks to this file, one "
                    "JSON line per task (class names, support and query keys; tasks.py).")
flags.DEFINE_string("tasks", None, "With --evaluation_mode or --baseline: evaluate on the "
                    "tasks of this file (the format of --export_tasks) instead of sampled "
                    "ones; the file gives their number and shape.")
flags.DEFINE_string("results_path", None, "Folder an evaluation writes its result record "
                    "into (the file is named in the log: 'Result record: <path>'). Default: "
                    "<checkpoint_path>/results (a shipped model's: a temporary folder).")
flags.DEFINE_enum("distribution_strategy", "default", list(DISTRIBUTION_STRATEGIES),
                  "tf.distribute strategy for training and evaluation.")
flags.DEFINE_boolean("jit_compile", False,
                     "Compile the training step and the evaluated model's adaptation with XLA "
                     "(for GPUs; no consistent gain on CPUs, see BENCHMARKS.md).")
flags.DEFINE_integer("intra_op_threads", 0,
                     f"TF intra-op threads, at most {MAX_THREADS_PER_CORE} per core; 0: the "
                     "measured choice for the task shape (distribute.configure_threads).")


def define_image_flags():
  """IMAGE_FLAGS, the flags of the commands that read image folders (predict.py, tools/data/):
  defined by them alone, so that runner.py, which reads embeddings, has none. A command
  declares them its key flags, to list them in its --help."""
  flags.DEFINE_enum(
      "image_fit", IMAGE_FITS[0], list(IMAGE_FITS),
      "How an image of another size than the backbone's square input is made that size. "
      "squash: resized without keeping its aspect ratio, as miniImageNet's images were made. "
      "pad: padded to a square with white first (centred, aspect kept), as "
      "tools/data/build_icons.py drew the icons the shipped backbone and models learned from: "
      "the right choice for them.")


class ConfigError(utils.LeoError):
  """A flag or config value that cannot work."""


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the embeddings are and which of them to use."""
  data_path: Optional[str] = None
  dataset_name: str = "miniImageNet"
  embedding_crop: str = "center"
  train_on_val: bool = False
  total_examples_per_class: int = TOTAL_EXAMPLES_PER_CLASS
  # A configuration saved before leo had transforms has none: it was trained on the input
  # of the original, `none`.
  embedding_transform: str = EMBEDDING_TRANSFORMS[0]

  def __post_init__(self):
    if not re.fullmatch(_DATASET_NAME, self.dataset_name or ""):
      _fail("dataset_name", self.dataset_name,
            "a folder name of letters, digits, '_' or '.' (e.g. miniImageNet, icons)")
    if self.embedding_crop not in EMBEDDING_CROPS:
      _fail("embedding_crop", self.embedding_crop, "one of " + ", ".join(EMBEDDING_CROPS))
    if self.embedding_crop == "multiview" and self.dataset_name != MULTIVIEW_DATASET:
      _fail("embedding_crop", self.embedding_crop,
            f"center: multiview embeddings exist only for {MULTIVIEW_DATASET}")
    _check_int("total_examples_per_class", self.total_examples_per_class, minimum=2)
    if self.embedding_transform not in EMBEDDING_TRANSFORMS:
      _fail("embedding_transform", self.embedding_transform,
            "one of " + ", ".join(EMBEDDING_TRANSFORMS))


@dataclasses.dataclass(frozen=True)
class InnerModelConfig:
  """Hyperparameters of the LEO module (the original's `inner_model_config`)."""
  inner_unroll_length: int = 5
  finetuning_unroll_length: int = 5
  num_latents: int = 64
  inner_lr_init: float = 1.0
  finetuning_lr_init: float = 0.001
  dropout_rate: float = 0.5
  kl_weight: float = 1e-3
  encoder_penalty_weight: float = 1e-9
  l2_penalty_weight: float = 1e-8
  orthogonality_penalty_weight: float = 1e-3

  def __post_init__(self):
    _check_int("inner_unroll_length", self.inner_unroll_length, minimum=1)
    _check_int("finetuning_unroll_length", self.finetuning_unroll_length, minimum=0)
    _check_int("num_latents", self.num_latents, minimum=1)
    _check_float("inner_lr_init", self.inner_lr_init)
    _check_float("finetuning_lr_init", self.finetuning_lr_init)
    _check_float("dropout_rate", self.dropout_rate, minimum=0.0, below=1.0)
    for name in ("kl_weight", "encoder_penalty_weight", "l2_penalty_weight",
                 "orthogonality_penalty_weight"):
      _check_float(name, getattr(self, name), minimum=0.0)


@dataclasses.dataclass(frozen=True)
class OuterModelConfig:
  """Task shapes, batch sizes and the outer optimiser (the original's `outer_model_config`)."""
  num_classes: int = 5
  num_tr_examples_per_class: int = 1
  num_val_examples_per_class: int = 15
  metatrain_batch_size: int = 12
  metavalid_batch_size: int = 200
  metatest_batch_size: int = 200
  num_steps_limit: int = int(1e5)
  outer_lr: float = 1e-4
  gradient_threshold: float = 0.1
  gradient_norm_threshold: float = 0.1
  num_eval_examples_per_class: Optional[int] = None  # None: all remaining images.
  num_test_tasks: int = 10000

  def __post_init__(self):
    _check_int("num_classes", self.num_classes, minimum=2)
    _check_int("num_tr_examples_per_class", self.num_tr_examples_per_class, minimum=1)
    _check_int("num_val_examples_per_class", self.num_val_examples_per_class, minimum=1)
    for name in ("metatrain_batch_size", "metavalid_batch_size", "metatest_batch_size",
                 "num_test_tasks"):
      _check_int(name, getattr(self, name), minimum=1)
    if self.num_test_tasks > MAX_EVALUATED_TASKS:
      _fail("num_test_tasks", self.num_test_tasks, f"an integer in [1, {MAX_EVALUATED_TASKS}]"
            ": at that many tasks the test's 95% CI is under ±0.01% whatever the accuracy")
    if NUM_VALID_BATCHES * self.metavalid_batch_size > MAX_EVALUATED_TASKS:
      _fail("metavalid_batch_size", self.metavalid_batch_size,
            f"an integer in [1, {MAX_EVALUATED_TASKS // NUM_VALID_BATCHES}]: a validation "
            f"scores {NUM_VALID_BATCHES} batches, and at {MAX_EVALUATED_TASKS} tasks its 95% CI "
            "is under ±0.01% whatever the accuracy")
    _check_int("num_steps_limit", self.num_steps_limit, minimum=0)
    _check_float("outer_lr", self.outer_lr)
    # <= 0 disables a clip in the original, so any finite value is allowed.
    _check_float("gradient_threshold", self.gradient_threshold, minimum=-math.inf)
    _check_float("gradient_norm_threshold", self.gradient_norm_threshold, minimum=-math.inf)
    if self.num_eval_examples_per_class is not None:
      _check_int("num_eval_examples_per_class", self.num_eval_examples_per_class, minimum=1)


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """What the runner does with the model: where it writes, how often, and what it reports."""
  checkpoint_path: str = "/tmp/leo"
  checkpoint_steps: int = 1000
  evaluation_mode: bool = False
  seed: int = 0
  log_steps: int = 100
  evaluate_after_training: bool = True
  baseline: str = "none"
  eval_split: str = "test"
  eval_data_path: Optional[str] = None  # None: the run's (each of the three).
  eval_dataset_name: Optional[str] = None
  eval_embedding_crop: Optional[str] = None
  export_tasks: Optional[str] = None
  tasks: Optional[str] = None
  results_path: Optional[str] = None  # None: the run folder's results/ (see evaluation.py).
  distribution_strategy: str = "default"
  jit_compile: bool = False
  intra_op_threads: int = 0

  def __post_init__(self):
    if not self.checkpoint_path:
      _fail("checkpoint_path", self.checkpoint_path, "a folder path")
    # 0 is the original's way of saying "write nothing" in evaluation mode.
    _check_int("checkpoint_steps", self.checkpoint_steps,
               minimum=0 if self.evaluation_mode else 1)
    _check_int("seed", self.seed, minimum=0)
    _check_int("log_steps", self.log_steps, minimum=1)
    if self.baseline not in BASELINES:
      _fail("baseline", self.baseline, "one of " + ", ".join(BASELINES))
    if self.eval_split not in EVAL_SPLITS:
      _fail("eval_split", self.eval_split, "one of " + ", ".join(EVAL_SPLITS))
    if self.eval_dataset_name is not None and not re.fullmatch(_DATASET_NAME,
                                                                self.eval_dataset_name):
      _fail("eval_dataset_name", self.eval_dataset_name,
            "a folder name of letters, digits, '_' or '.' (e.g. icons)")
    if self.eval_embedding_crop is not None and self.eval_embedding_crop not in EMBEDDING_CROPS:
      _fail("eval_embedding_crop", self.eval_embedding_crop,
            "one of " + ", ".join(EMBEDDING_CROPS))
    for name in ("eval_data_path", "export_tasks", "tasks", "results_path"):
      if getattr(self, name) == "":
        _fail(name, "", "a path")
    # Training tests on sampled tasks: a file's tasks would be ignored without a word.
    if self.tasks is not None and not self.evaluation_mode and self.baseline == "none":
      _fail("tasks", self.tasks, "--evaluation_mode or --baseline with it (a training tests "
            f"on sampled tasks; evaluate the trained run with --evaluation_mode "
            f"--tasks={self.tasks})")
    if self.distribution_strategy not in DISTRIBUTION_STRATEGIES:
      _fail("distribution_strategy", self.distribution_strategy,
            "one of " + ", ".join(DISTRIBUTION_STRATEGIES))
    if not isinstance(self.jit_compile, bool):
      _fail("jit_compile", self.jit_compile, "true or false")
    check_threads("intra_op_threads", self.intra_op_threads, minimum=0)


def _flags_of(config_class, leave_out=()) -> tuple:
  return tuple(field.name for field in dataclasses.fields(config_class)
               if field.name in FLAGS and field.name not in leave_out)


# The flags by what they set, as a command's --help lists them (utils.command_help): one
# group per config object, the run's ways of spreading the work over devices apart.
DISTRIBUTION_FLAGS = ("distribution_strategy", "jit_compile", "intra_op_threads")
FLAG_GROUPS = {
    "preset (dataset, shots and tuned values at once)": ("preset",),
    "data": _flags_of(DataConfig),
    "model (LEO's inner loop)": _flags_of(InnerModelConfig),
    "outer loop and tasks": _flags_of(OuterModelConfig),
    "run and evaluation": _flags_of(RunConfig, leave_out=DISTRIBUTION_FLAGS),
    "distribution and speed": DISTRIBUTION_FLAGS,
    "images (the commands that read image folders)": IMAGE_FLAGS,
}


def _fail(name: str, value: Any, expected: str):
  raise ConfigError(f"--{name}={value!r}: expected {expected}")


def _check_int(name: str, value: Any, minimum: int):
  if isinstance(value, bool) or not isinstance(value, int):
    _fail(name, value, "an integer")
  if value < minimum:
    _fail(name, value, f"an integer >= {minimum}")
  if value > INT32_MAX:
    _fail(name, value, f"an integer in [{minimum}, {INT32_MAX}] (TF's int32)")


def _float32(value: float) -> float:
  """`value` (finite, of at most FLOAT32_MAX in magnitude) rounded to float32, as TF holds it."""
  return struct.unpack("f", struct.pack("f", value))[0]


def check_threads(name: str, value: Any, minimum: int):
  """Refuses a thread count below `minimum` or above MAX_THREADS_PER_CORE per core."""
  _check_int(name, value, minimum)
  cores = os.cpu_count() or 1
  if value > MAX_THREADS_PER_CORE * cores:
    _fail(name, value, f"an integer in [{minimum}, {MAX_THREADS_PER_CORE * cores}] "
          f"({MAX_THREADS_PER_CORE} per core of this machine's {cores})")


def _check_float(name: str, value: Any, minimum: float = None, below: float = None):
  """A finite number that float32, where it is used, keeps what it is: > 0 unless a `minimum`
  (inclusive) is given, < `below` if given, and 0 or a normal float32 (TF flushes smaller
  magnitudes to 0)."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    _fail(name, value, "a finite number")
  if abs(value) > FLOAT32_MAX:
    _fail(name, value, f"a number of at most {FLOAT32_MAX:.4g} in magnitude (it is used in "
          "float32)")
  if minimum is None and value <= 0:
    _fail(name, value, "a number > 0")
  if minimum is not None and value < minimum:
    _fail(name, value, f"a number >= {minimum:g}")
  single = _float32(value)
  if value != 0 and abs(single) < FLOAT32_MIN_NORMAL:
    _fail(name, value, (f"a number >= {FLOAT32_MIN_NORMAL:.4g}" if minimum is None else
                        f"0 or a number of at least {FLOAT32_MIN_NORMAL:.4g} in magnitude")
          + " (it is used in float32, where TF flushes smaller ones to 0)")
  if below is not None and single >= below:
    _fail(name, value, f"a number in [{minimum:g}, {below:g})"
          + (f" in float32, where it is {single:g}" if value < below else ""))


def _flag_values(config_class) -> Mapping[str, Any]:
  """The config's fields from the flags, a preset's values filling in flags not given."""
  preset = PRESETS.get(FLAGS.preset, {}) if FLAGS.preset else {}
  values = {}
  for field in dataclasses.fields(config_class):
    if field.name not in FLAGS:  # A constant of the original, not a flag.
      continue
    flag = FLAGS[field.name]
    values[field.name] = (preset[field.name] if field.name in preset and not flag.present
                          else flag.value)
  return values


def explicitly_given() -> set:
  """Names of the flags set on the command line, directly or through `--preset`."""
  given = {name for name in FLAGS if FLAGS[name].present}
  if FLAGS.preset:
    given |= set(PRESETS[FLAGS.preset])
  return given


def get_data_config() -> DataConfig:
  values = _flag_values(DataConfig)
  if FLAGS.baseline != BASELINES[0] and not FLAGS["embedding_transform"].present:
    # A preset's transform is what LEO is given; a baseline sees the embeddings as they are
    # unless --embedding_transform itself is given (the fitted baselines fit their own).
    values["embedding_transform"] = EMBEDDING_TRANSFORMS[0]
  return DataConfig(**values)


def get_inner_model_config() -> InnerModelConfig:
  return InnerModelConfig(**_flag_values(InnerModelConfig))


def get_outer_model_config() -> OuterModelConfig:
  return OuterModelConfig(**_flag_values(OuterModelConfig))


def get_run_config(argv: Optional[Sequence[str]] = None) -> RunConfig:
  """The run config. The command line (`argv`, default sys.argv) is checked for a
  `--checkpoint_path` that a later `--flagfile` overrode (absl lets the last value win): a
  replay of an older run's flags.txt, which named its folder, must not write into that run."""
  argv = list(sys.argv if argv is None else argv)
  last = None  # The last --checkpoint_path written on the command line itself.
  for i, arg in enumerate(argv):
    if arg.startswith("--checkpoint_path="):
      last = arg.partition("=")[2]
    elif arg == "--checkpoint_path" and i + 1 < len(argv):
      last = argv[i + 1]
  if last is not None and last != FLAGS.checkpoint_path:
    _fail("checkpoint_path", last, f"the folder this command uses, but a later --flagfile "
          f"sets --checkpoint_path={FLAGS.checkpoint_path}: put --checkpoint_path after "
          "--flagfile")
  return RunConfig(**_flag_values(RunConfig))


def as_dict(config) -> dict:
  return dataclasses.asdict(config)


@dataclasses.dataclass(frozen=True)
class Configs:
  """Everything a run is made of; saved as JSON (config.json) beside its checkpoints."""
  data: DataConfig
  inner: InnerModelConfig
  outer: OuterModelConfig
  run: RunConfig

  def to_json(self, embedding_dim: int, **digests: Optional[str]):
    """The run's identity as config.json holds it (a run folder belongs to it); a training
    run's holds the digests of its data (`data_digest=data.data_digest(...)`) and of the
    backbone that made them (`backbone_digest=`, where their PROVENANCE.json names one) and,
    with --embedding_transform, of its fitted statistics (`transform_digest=`)."""
    data_config = as_dict(self.data)
    if data_config["embedding_transform"] == EMBEDDING_TRANSFORMS[0]:
      # The original's input, as every configuration saved before transforms existed has it
      # (their identities, and their records' names, stay as they were).
      del data_config["embedding_transform"]
    saved = {"data_config": data_config, "inner_model_config": as_dict(self.inner),
             "outer_model_config": as_dict(self.outer), "seed": self.run.seed,
             "embedding_dim": embedding_dim}
    return dict(saved, **{name: digest for name, digest in digests.items() if digest})

  def flagfile_lines(self) -> list:
    return flagfile_lines(self.data, self.inner, self.outer, self.run)

  def evaluated_data(self) -> DataConfig:
    """The data `--evaluation_mode` and `--baseline` evaluate: the run's, with each of
    `--eval_data_path`, `--eval_dataset_name` and `--eval_embedding_crop` given in its place."""
    run = self.run
    given = {name: value for name, value in (("data_path", run.eval_data_path),
                                             ("dataset_name", run.eval_dataset_name),
                                             ("embedding_crop", run.eval_embedding_crop))
             if value is not None}
    if given.get("embedding_crop", self.data.embedding_crop) == "multiview" and given.get(
        "dataset_name", self.data.dataset_name) != MULTIVIEW_DATASET:
      _fail("eval_embedding_crop", "multiview",
            f"center: multiview embeddings exist only for {MULTIVIEW_DATASET}")
    return dataclasses.replace(self.data, **given)

  @property
  def cross_domain(self) -> bool:
    """Whether the evaluated data are other than the run's (`evaluated_data`)."""
    return self.evaluated_data() != self.data

  def over_saved(self, saved) -> "Configs":
    """A saved run's configuration (its config.json), with the flags given on this command
    line on top: what evaluating a trained run uses."""
    given = explicitly_given()
    sections = {"data": ("data_config", DataConfig),
                "inner": ("inner_model_config", InnerModelConfig),
                "outer": ("outer_model_config", OuterModelConfig)}
    merged = {}
    for attribute, (key, config_class) in sections.items():
      values = dict(saved[key])
      values.update({name: value for name, value in as_dict(getattr(self, attribute)).items()
                     if name in given})
      merged[attribute] = config_class(**values)
    seed = self.run.seed if "seed" in given else saved.get("seed", self.run.seed)
    return Configs(run=dataclasses.replace(self.run, seed=seed), **merged)


def get_configs() -> Configs:
  """Every config of the command line, validated."""
  return Configs(get_data_config(), get_inner_model_config(), get_outer_model_config(),
                 get_run_config())


def _flag_text(name: str, value) -> str:
  if isinstance(value, bool):
    return f"--{name}" if value else f"--no{name}"
  return f"--{name}={value!r}" if isinstance(value, float) else f"--{name}={value}"


def flagfile_lines(*configs) -> list:
  """The configs as absl flagfile lines (`--name=value`, one a line): passing them with
  `--flagfile` gives back the same configs. Floats are written exactly (repr)."""
  lines = []
  for config in configs:
    for field in dataclasses.fields(config):
      value = getattr(config, field.name)
      if field.name in FLAGS and field.name not in _COMMAND_ONLY_FLAGS and value is not None:
        lines.append(_flag_text(field.name, value))
  return lines
