"""sizes.py: impossible products of valid flags are refused in one line, before any work."""

import types

import pytest

import config
import sizes

GB = 2**30
MINI = dict(embedding_dim=640,
            train=types.SimpleNamespace(largest_class=600, num_classes=64))  # miniImageNet.


def _configs(**changes):
  inner = config.InnerModelConfig(**{k: v for k, v in changes.items()
                                     if k in config.InnerModelConfig.__dataclass_fields__})
  outer = config.OuterModelConfig(**{k: v for k, v in changes.items()
                                     if k in config.OuterModelConfig.__dataclass_fields__})
  return types.SimpleNamespace(inner=inner, outer=outer)


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
    (dict(metavalid_batch_size=1_000_000_000),
     r"^--metavalid_batch_size=1000000000: a validation's per-task results alone would take "
     r"149.0 GB and the run at least 149.0 GB, more than this machine's 16.0 GB: lower them$"),
    (dict(inner_unroll_length=100_000), r"^--inner_unroll_length=100000, "
     r"--finetuning_unroll_length=5, .*: the inner loops' decoded weights, kept for the outer "
     r"gradient alone would take 22\d.\d GB")])
def test_what_cannot_fit_is_one_line_naming_the_flags(changes, expected):
  with pytest.raises(sizes.SizeError, match=expected) as error:
    sizes.check(_configs(**changes), memory=16 * GB, **MINI)
  assert "\n" not in str(error.value)


def test_an_evaluation_counts_only_its_own_tensors():
  huge_training = _configs(metatrain_batch_size=100_000_000)
  sizes.check(huge_training, 640, memory=16 * GB)
  with pytest.raises(sizes.SizeError, match="--num_test_tasks=2000000000: the test's"):
    sizes.check(_configs(num_test_tasks=2_000_000_000), 640, memory=16 * GB)
