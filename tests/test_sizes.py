"""sizes.py: impossible products of valid flags are refused in one line, before any work."""

import types

import pytest

import config
import sizes

GB = 2**30
MINI = dict(embedding_dim=640,
            train=types.SimpleNamespace(largest_class=600, num_classes=64))  # miniImageNet.


def _configs(**changes):
  sections = {name: config_class(**{k: v for k, v in changes.items()
                                    if k in config_class.__dataclass_fields__})
              for name, config_class in (("inner", config.InnerModelConfig),
                                         ("outer", config.OuterModelConfig),
                                         ("run", config.RunConfig))}
  return types.SimpleNamespace(**sections)


@pytest.mark.parametrize("preset", sorted(config.PRESETS))
def test_every_preset_and_the_defaults_fit_in_a_few_gigabytes(preset):
  values = {k: v for k, v in config.PRESETS[preset].items()
            if k in config.InnerModelConfig.__dataclass_fields__
            or k in config.OuterModelConfig.__dataclass_fields__}
  sizes.check(_configs(**values), memory=2 * GB, **MINI)
  sizes.check(_configs(), memory=2 * GB, **MINI)


@pytest.mark.parametrize("changes, expected", [
    (dict(metatrain_batch_size=100_000_000),
     r"^--metatrain_batch_size=100000000, --num_classes=5, --num_tr_examples_per_class=1, "
     r"--num_val_examples_per_class=15: the episodes of a training step would hold "
     r"5,120,000,000,000 elements, more than TF's int32 shapes index \(2,147,483,647\): "
     r"lower them$"),
    (dict(num_latents=1_000_000), r"^--num_latents=1000000: a relation network weight would "
     r"hold 4,000,000,000,000 elements"),
    (dict(metavalid_batch_size=10_000_000),
     r"^--metavalid_batch_size=10000000: a validation's per-task results alone would take "
     r"1.5 GB and the run at least 1.5 GB, more than this machine's 1.0 GB: lower them$"),
    # (5 * 90)^2 pairs of 2 * 64 numbers for each of the 101 tasks an evaluation call holds
    # at least (EVAL_TASKS_PER_CALL // 2 + 1): 2,617,920,000; a training step's 12 hold 12/101.
    (dict(num_tr_examples_per_class=90),
     r"^--num_classes=5, --num_tr_examples_per_class=90, --num_latents=64: the relation "
     r"network's pairs of an evaluation call would hold 2,617,920,000 elements, more than TF's "
     r"int32 shapes index \(2,147,483,647\): lower them$"),
    (dict(inner_unroll_length=100_000), r"^--inner_unroll_length=100000, "
     r"--finetuning_unroll_length=5, .*: the inner loops' decoded weights, kept for the outer "
     r"gradient alone would take 22\d.\d GB")])
def test_what_cannot_fit_is_one_line_naming_the_flags(changes, expected):
  memory = GB if "metavalid_batch_size" in changes else 16 * GB
  with pytest.raises(sizes.SizeError, match=expected) as error:
    sizes.check(_configs(**changes), memory=memory, **MINI)
  assert "\n" not in str(error.value)


def test_an_evaluation_counts_only_its_own_tensors():
  huge_training = _configs(metatrain_batch_size=100_000_000)
  sizes.check(huge_training, 640, memory=16 * GB)
  with pytest.raises(sizes.SizeError, match="--num_test_tasks=100000000: the test's"):
    sizes.check(_configs(num_test_tasks=100_000_000), 640, memory=GB)


def test_an_evaluation_call_holds_its_evaluations_tasks_and_a_baseline_no_relation_pairs():
  large_support = dict(num_tr_examples_per_class=90)
  with pytest.raises(sizes.SizeError, match="relation network's pairs of an evaluation call"):
    sizes.check(_configs(**large_support), 640, memory=16 * GB)
  # 20 tasks in all (a call of 20, 20 * 25,920,000 pairs' numbers), or a baseline's call.
  sizes.check(_configs(num_test_tasks=20, **large_support), 640, memory=16 * GB)
  sizes.check(_configs(baseline="nearest_centroid", **large_support), 640, memory=16 * GB)
