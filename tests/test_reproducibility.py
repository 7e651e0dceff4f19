"""What docs/protocol.md and RESULTS.md promise, pinned: on one machine a command gives the same
numbers every time, and a run stopped and resumed is the uninterrupted run, with one device
and with two replicas."""

import glob
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import config
import fixtures
import test_runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_configs(root: str, run_dir: str, num_steps_limit: int = 8,
                 evaluate_after_training: bool = True) -> config.Configs:
  return config.Configs(
      data=config.DataConfig(data_path=root, dataset_name="tiny"),
      inner=config.InnerModelConfig(num_latents=8, inner_unroll_length=2,
                                    finetuning_unroll_length=2),
      outer=config.OuterModelConfig(num_val_examples_per_class=3, metatrain_batch_size=4,
                                    metavalid_batch_size=4, metatest_batch_size=10,
                                    num_test_tasks=20, num_steps_limit=num_steps_limit,
                                    outer_lr=1e-3),
      run=config.RunConfig(checkpoint_path=run_dir, checkpoint_steps=2, log_steps=2,
                           evaluate_after_training=evaluate_after_training))


def outcome(run_dir: str):
  """Every number a run leaves: its validations (without their times), the variables of its
  latest and best checkpoints, and its test record's per-task accuracies."""
  validations = {}
  for line in open(os.path.join(run_dir, "validations.jsonl")):
    entry = json.loads(line)
    validations[entry["step"]] = (entry["accuracy"], entry["ci95"], entry["loss"])
  best = json.load(open(os.path.join(run_dir, "best_checkpoint", "best.json")))

  def variables(prefix):
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}

  (record_path,) = glob.glob(os.path.join(run_dir, "results", "*.json"))
  record = json.load(open(record_path))
  return dict(validations=validations, best_step=best["step"], best_accuracy=best["accuracy"],
              latest=variables(tf.train.latest_checkpoint(run_dir)),
              best=variables(os.path.join(run_dir, "best_checkpoint", best["checkpoint"])),
              test=(record["task_accuracies"], record["task_fingerprint"], record["summary"]))


def assert_same_outcome(actual, expected):
  assert actual["validations"] == expected["validations"]
  assert (actual["best_step"], actual["best_accuracy"]) == (expected["best_step"],
                                                            expected["best_accuracy"])
  for kind in ("latest", "best"):
    assert actual[kind].keys() == expected[kind].keys()
    for name, value in expected[kind].items():
      np.testing.assert_array_equal(actual[kind][name], value, err_msg=f"{kind} {name}")
  assert actual["test"] == expected["test"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  return fixtures.make_dataset(str(tmp_path_factory.mktemp("embeddings")), dim=16)


def test_two_fresh_runs_and_a_resumed_one_leave_the_same_numbers(tiny_run, tmp_path):
  """The session's tiny run (conftest.py: `runner.py` with test_runner.TINY, made by
  whichever test process asked first) against the same command run again here, and against it
  stopped at step 3 (its latest checkpoint) and resumed to 6 by the same command."""
  data_path, made, _ = tiny_run
  first = outcome(made)
  command = [f"--data_path={data_path}", *test_runner.TINY]
  second = str(tmp_path / "second")
  assert test_runner.run(*command, f"--checkpoint_path={second}").returncode == 0
  assert_same_outcome(outcome(second), first)
  resumed = str(tmp_path / "resumed")
  stopped = test_runner.run(*command, f"--checkpoint_path={resumed}", "--num_steps_limit=3",
                            "--noevaluate_after_training")
  assert stopped.returncode == 0, stopped.stderr[-3000:]
  again = test_runner.run(*command, f"--checkpoint_path={resumed}")
  assert again.returncode == 0 and "Resuming from" in again.stderr, again.stderr[-3000:]
  assert_same_outcome(outcome(resumed), first)
  assert len(first["validations"]) == 3  # Steps 0, 3, 6.


# A fresh process: logical devices must be configured before TF initialises them.
MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    sys.path[:0] = [{root!r}, {tests!r}]
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import distribute, training
    import test_reproducibility as spec
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    run = lambda folder, **kwargs: training.train(spec.tiny_configs({data!r}, folder, **kwargs),
                                                  strategy)
    run({folder!r} + "/first")
    run({folder!r} + "/second")
    run({folder!r} + "/resumed", num_steps_limit=4, evaluate_after_training=False)
    run({folder!r} + "/resumed")
    first = spec.outcome({folder!r} + "/first")
    spec.assert_same_outcome(spec.outcome({folder!r} + "/second"), first)
    spec.assert_same_outcome(spec.outcome({folder!r} + "/resumed"), first)
    print("same")
""")


@pytest.mark.slow
def test_with_two_replicas_too(dataset, tmp_path):
  script = MIRRORED_SCRIPT.format(root=ROOT, tests=os.path.join(ROOT, "tests"), data=dataset,
                                  folder=str(tmp_path))
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == "same"
