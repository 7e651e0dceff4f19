"""config.py: the original's flags and defaults, presets, and validation of every value."""

import math
import os

from absl import flags
from absl.testing import flagsaver
import pytest

import config

FLAGS = flags.FLAGS

# Reference section 4: every flag of the original with its default.
ORIGINAL_DEFAULTS = {
    "data_path": None, "dataset_name": "miniImageNet", "embedding_crop": "center",
    "train_on_val": False, "inner_unroll_length": 5, "finetuning_unroll_length": 5,
    "num_latents": 64, "inner_lr_init": 1.0, "finetuning_lr_init": 0.001,
    "dropout_rate": 0.5, "kl_weight": 1e-3, "encoder_penalty_weight": 1e-9,
    "l2_penalty_weight": 1e-8, "orthogonality_penalty_weight": 1e-3, "num_classes": 5,
    "num_tr_examples_per_class": 1, "num_val_examples_per_class": 15,
    "metatrain_batch_size": 12, "metavalid_batch_size": 200, "metatest_batch_size": 200,
    "num_steps_limit": 100000, "outer_lr": 1e-4, "gradient_threshold": 0.1,
    "gradient_norm_threshold": 0.1, "checkpoint_path": "/tmp/leo", "checkpoint_steps": 1000,
    "evaluation_mode": False,
}


def _parse(*args):
  FLAGS.unparse_flags()
  FLAGS(["runner.py", *args])


@pytest.fixture(autouse=True)
def _restore_flags():
  with flagsaver.flagsaver():
    yield
  FLAGS.unparse_flags()


def test_every_original_flag_exists_with_its_default():
  _parse()
  for name, default in ORIGINAL_DEFAULTS.items():
    assert FLAGS[name].default == default, name
  assert FLAGS.seed == 0


def test_builders_return_the_original_config_dicts():
  _parse()
  data_config = config.as_dict(config.get_data_config())
  assert data_config == {"data_path": None, "dataset_name": "miniImageNet",
                         "embedding_crop": "center", "train_on_val": False,
                         "total_examples_per_class": 600, "embedding_transform": "none"}
  inner = config.as_dict(config.get_inner_model_config())
  assert set(inner) == {"inner_unroll_length", "finetuning_unroll_length", "num_latents",
                        "inner_lr_init", "finetuning_lr_init", "dropout_rate", "kl_weight",
                        "encoder_penalty_weight", "l2_penalty_weight",
                        "orthogonality_penalty_weight"}
  outer = config.as_dict(config.get_outer_model_config())
  for name, value in list(inner.items()) + list(outer.items()):
    if name in ORIGINAL_DEFAULTS:
      assert value == ORIGINAL_DEFAULTS[name], name
  assert outer["num_eval_examples_per_class"] is None and outer["num_test_tasks"] == 10000
  run = config.get_run_config()
  assert (run.checkpoint_path, run.checkpoint_steps, run.evaluation_mode) == ("/tmp/leo", 1000,
                                                                             False)


@pytest.mark.parametrize("name", sorted(config.PRESETS))
def test_presets_set_dataset_shots_and_the_six_tuned_values(name):
  _parse(f"--preset={name}")
  preset = config.PRESETS[name]
  inner, outer = config.get_inner_model_config(), config.get_outer_model_config()
  assert config.get_data_config().dataset_name == preset["dataset_name"]
  assert outer.num_tr_examples_per_class == (5 if name.endswith("5shot") else 1)
  for field in ("l2_penalty_weight", "orthogonality_penalty_weight", "dropout_rate",
                "kl_weight", "encoder_penalty_weight"):
    assert getattr(inner, field) == preset[field]
  assert outer.outer_lr == preset["outer_lr"]


def test_the_readme_table_values_of_one_preset():
  _parse("--preset=miniImageNet_1shot")
  inner, outer = config.get_inner_model_config(), config.get_outer_model_config()
  assert (outer.outer_lr, inner.l2_penalty_weight, inner.orthogonality_penalty_weight,
          inner.dropout_rate, inner.kl_weight, inner.encoder_penalty_weight) == (
              2.739071e-4, 3.623413e-10, 0.188103, 0.307651, 0.756143, 5.756821e-6)


def test_a_flag_given_explicitly_wins_over_the_preset():
  _parse("--preset=tieredImageNet_5shot", "--outer_lr=0.5", "--num_tr_examples_per_class=1")
  assert config.get_outer_model_config().outer_lr == 0.5
  assert config.get_outer_model_config().num_tr_examples_per_class == 1
  assert config.get_inner_model_config().kl_weight == 1.622811
  assert config.get_data_config().dataset_name == "tieredImageNet"


def test_unknown_preset_is_a_flag_error():
  with pytest.raises(flags.IllegalFlagValueError):
    _parse("--preset=omniglot_1shot")


BAD_VALUES = [
    ("num_classes", 1, "an integer >= 2"), ("num_classes", 0, "an integer >= 2"),
    ("num_tr_examples_per_class", 0, ">= 1"), ("num_val_examples_per_class", -3, ">= 1"),
    ("metatrain_batch_size", 0, ">= 1"), ("metavalid_batch_size", -1, ">= 1"),
    ("metatest_batch_size", 0, ">= 1"), ("num_test_tasks", 0, ">= 1"),
    ("num_steps_limit", -1, ">= 0"), ("num_eval_examples_per_class", 0, ">= 1"),
    ("inner_unroll_length", 0, "an integer >= 1"), ("finetuning_unroll_length", -1, ">= 0"),
    ("num_latents", 0, ">= 1"), ("outer_lr", 0.0, "> 0"), ("outer_lr", -1e-4, "> 0"),
    ("outer_lr", math.nan, "a finite number"), ("inner_lr_init", math.inf, "finite"),
    ("finetuning_lr_init", 0.0, "> 0"), ("dropout_rate", 1.0, r"in \[0, 1\)"),
    ("dropout_rate", -0.1, ">= 0"), ("dropout_rate", math.nan, "finite"),
    ("kl_weight", -1.0, ">= 0"), ("l2_penalty_weight", math.nan, "finite"),
    ("encoder_penalty_weight", -1e-9, ">= 0"), ("orthogonality_penalty_weight", -1, ">= 0"),
    ("gradient_threshold", math.nan, "finite"), ("checkpoint_steps", 0, ">= 1"),
    ("log_steps", 0, ">= 1"), ("seed", -1, ">= 0"),
    ("dataset_name", "../etc", "folder name"), ("dataset_name", "", "folder name"),
    ("embedding_crop", "corner", "center, multiview"),
    # Finite in float64 but not in float32, where they are used:
    ("inner_lr_init", 1e39, "at most 3.403e\\+38 in magnitude"),
    ("kl_weight", -1e39, "at most 3.403e\\+38"), ("gradient_threshold", 1e300, "float32"),
    ("intra_op_threads", 2**31, r"\[0, 2147483647\] \(TF's int32\)"),
    ("num_latents", 10**12, "int32"),
    # Values float32 turns into forbidden ones: 1, or 0 (TF flushes subnormals to 0).
    ("dropout_rate", 0.99999999999, r"^--dropout_rate=0.99999999999: expected a number in "
     r"\[0, 1\) in float32, where it is 1$"),
    ("finetuning_lr_init", 1e-50, r": expected a number >= 1.175e-38 \(it is used in float32, "
     r"where TF flushes smaller ones to 0\)$"),
    ("outer_lr", 1e-40, r"a number >= 1.175e-38 \(it is used in float32"),
    ("inner_lr_init", 1.1e-38, r"a number >= 1.175e-38"),
    ("kl_weight", 1e-40, r"expected 0 or a number of at least 1.175e-38 in magnitude"),
    ("l2_penalty_weight", 1e-300, r"0 or a number of at least 1.175e-38"),
    ("gradient_threshold", 1e-45, r"0 or a number of at least 1.175e-38"),
    ("gradient_norm_threshold", -1e-39, r"0 or a number of at least 1.175e-38"),
    # Evaluations beyond what changes a printed digit, threads beyond the machine's.
    ("num_test_tasks", 10**8 + 1, r": expected an integer in \[1, 100000000\]: at that many "
     r"tasks the test's 95% CI is under ±0.01% whatever the accuracy$"),
    ("metavalid_batch_size", 10**8, r"^--metavalid_batch_size=100000000: expected an integer "
     r"in \[1, 10000000\]: a validation scores 10 batches, and at 100000000 tasks its 95% CI"),
    ("intra_op_threads", 100000, rf"^--intra_op_threads=100000: expected an integer in "
     rf"\[0, {4 * os.cpu_count()}\] \(4 per core of this machine's {os.cpu_count()}\)$"),
    # A file's tasks are for evaluations: a training would ignore them.
    ("tasks", "t.jsonl", r"^--tasks='t.jsonl': expected --evaluation_mode or --baseline with it "
     r"\(a training tests on sampled tasks; evaluate the trained run with --evaluation_mode "
     r"--tasks=t.jsonl\)$"),
]


@pytest.mark.parametrize("name,value,expected", BAD_VALUES)
def test_an_impossible_value_names_the_flag_the_value_and_what_is_allowed(name, value, expected):
  _parse(f"--{name}={value}")
  builders = (config.get_data_config, config.get_inner_model_config,
              config.get_outer_model_config, config.get_run_config)
  with pytest.raises(config.ConfigError, match=expected) as error:
    for build in builders:
      build()
  assert str(error.value).startswith(f"--{name}=")
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("flags", [
    ["--dropout_rate=0.99999994"],  # The largest float32 below 1.
    ["--outer_lr=1.1754943508222875e-38", "--kl_weight=1.1754943508222875e-38"],
    ["--kl_weight=0", "--gradient_threshold=0", "--gradient_norm_threshold=-1e-30"],
    ["--num_test_tasks=100000000", "--metavalid_batch_size=10000000"],
    [f"--intra_op_threads={4 * os.cpu_count()}"],
    ["--tasks=t.jsonl", "--evaluation_mode"], ["--tasks=t.jsonl", "--baseline=simpleshot"],
])
def test_values_at_the_edges_of_what_works_are_accepted(flags):
  _parse(*flags)
  config.get_configs()


def test_a_checkpoint_path_overridden_by_a_later_flagfile_is_refused(tmp_path):
  old_flags = tmp_path / "flags.txt"  # An older leo's flags.txt named its run folder.
  old_flags.write_text("--seed=3\n--checkpoint_path=/runs/run1\n")
  for argv in (["--checkpoint_path=/runs/new", f"--flagfile={old_flags}"],
               ["--checkpoint_path", "/runs/new", f"--flagfile={old_flags}"]):
    _parse(*argv)
    with pytest.raises(config.ConfigError, match=r"^--checkpoint_path='/runs/new': expected the "
                       r"folder this command uses, but a later --flagfile sets "
                       r"--checkpoint_path=/runs/run1: put --checkpoint_path after --flagfile$"):
      config.get_run_config(["runner.py"] + argv)
  argv = [f"--flagfile={old_flags}", "--checkpoint_path=/runs/new"]
  _parse(*argv)
  assert config.get_run_config(["runner.py"] + argv).checkpoint_path == "/runs/new"


@pytest.mark.parametrize("dataset,crop,ok", [
    ("miniImageNet", "multiview", True), ("tieredImageNet", "multiview", False),
    ("icons", "multiview", False), ("my_own_data", "center", True),
    ("my_own_data", "multiview", False), ("tieredImageNet", "center", True)])
def test_dataset_and_crop_combinations(dataset, crop, ok):
  if ok:
    config.DataConfig(dataset_name=dataset, embedding_crop=crop)
  else:
    with pytest.raises(config.ConfigError, match="--embedding_crop='multiview'"):
      config.DataConfig(dataset_name=dataset, embedding_crop=crop)


def test_evaluation_mode_accepts_checkpoint_steps_zero():
  assert config.RunConfig(evaluation_mode=True, checkpoint_steps=0).checkpoint_steps == 0


def test_a_wrongly_typed_flag_is_rejected_by_the_parser():
  with pytest.raises(flags.IllegalFlagValueError):
    _parse("--num_classes=five")
