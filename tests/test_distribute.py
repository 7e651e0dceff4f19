"""tf.distribute: replicas share the tasks of a step and agree with one device."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf

import fixtures
import test_runner

ROOT = test_runner.ROOT

# Run in a fresh process: logical devices must be configured before TF initialises them.
MIRRORED_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, {root!r})
    import tensorflow as tf
    import config, data, evaluation, training
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    configs = config.Configs(
        data=config.DataConfig(data_path={data!r}, dataset_name="tiny"),
        inner=config.InnerModelConfig(num_latents=8, inner_unroll_length=2,
                                      finetuning_unroll_length=2),
        outer=config.OuterModelConfig(num_val_examples_per_class=3, metatrain_batch_size=4,
                                      metavalid_batch_size=4, outer_lr=1e-3),
        run=config.RunConfig(checkpoint_path="unused"))
    results = {{}}
    for name, strategy in (("one device", tf.distribute.get_strategy()), ("mirrored", mirrored)):
      episodes = data.Episodes(configs, need_train=True)  # Same seed: same episodes.
      leo, meta_optimizer = training.build_model(configs, episodes.embedding_dim, strategy)
      if name == "one device":
        initial = [v.numpy() for v in leo.trainable_variables]
      else:
        for variable, value in zip(leo.trainable_variables, initial):
          variable.assign(value)
      step = training.make_train_step(leo, meta_optimizer, episodes.train, configs.outer,
                                    strategy=strategy)
      losses = [float(step()[0]) for _ in range(3)]
      evaluate = evaluation.Evaluator(evaluation.LEOScores(leo), episodes.valid, 8, 5, 1,
                                  episodes.valid_queries, strategy)
      results[name] = (losses, evaluate(16)[1], [v.numpy() for v in leo.trainable_variables],
                       strategy.num_replicas_in_sync)
    (losses_1, accuracies_1, variables_1, replicas_1) = results["one device"]
    (losses_2, accuracies_2, variables_2, replicas_2) = results["mirrored"]
    assert (replicas_1, replicas_2) == (1, 2)
    np.testing.assert_allclose(losses_2, losses_1, rtol=1e-5)
    np.testing.assert_allclose(accuracies_2, accuracies_1, atol=1e-6)
    for one, two in zip(variables_1, variables_2):
      # Adam divides tiny gradients by their own size: float rounding shows at ~1e-5.
      np.testing.assert_allclose(two, one, atol=1e-4)
    print("losses", losses_1, losses_2)
""")


@pytest.mark.slow
def test_two_mirrored_replicas_train_and_evaluate_like_one_device(tmp_path):
  root = fixtures.make_dataset(str(tmp_path), dim=16)
  result = subprocess.run(
      [sys.executable, "-c", MIRRORED_SCRIPT.format(root=ROOT, data=root)],
      capture_output=True, text=True, timeout=300,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  assert result.returncode == 0, result.stderr[-4000:]
  assert "losses" in result.stdout


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _run_workers(flags, timeout=300):
  """Two workers of one multi-worker run on loopback; both must finish in `timeout` s."""
  cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}))
    processes.append(subprocess.Popen(
        [sys.executable, test_runner.RUNNER, "--distribution_strategy=multi_worker_mirrored",
         *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        cwd=ROOT))
  try:
    outputs = [p.communicate(timeout=timeout) for p in processes]
  finally:
    for p in processes:
      p.kill()
  for p, (_, stderr) in zip(processes, outputs):
    assert p.returncode == 0, stderr[-4000:]
  return outputs


@pytest.mark.slow
def test_two_workers_train_resume_and_only_the_chief_writes(tmp_path):
  root = fixtures.make_dataset(str(tmp_path / "data"), dim=16)
  run_dir = tmp_path / "run"
  flags = [f"--data_path={root}", f"--checkpoint_path={run_dir}", *test_runner.TINY,
           "--num_steps_limit=4", "--checkpoint_steps=2"]
  outputs = _run_workers(flags)
  assert "Metatest accuracy:" in outputs[0][0]  # The chief reports...
  assert "Metatest accuracy:" not in outputs[1][0]  # ...the other worker does not.
  assert tf.train.latest_checkpoint(str(run_dir)).endswith("model.ckpt-4")
  assert not [name for name in os.listdir(run_dir) if name.startswith(".worker")]
  outputs = _run_workers(flags[:-2] + ["--num_steps_limit=6", "--checkpoint_steps=2",
                                       "--noevaluate_after_training"])
  for _, stderr in outputs:
    assert "at step 4" in stderr and "Training done: 6 steps" in stderr
  assert tf.train.latest_checkpoint(str(run_dir)).endswith("model.ckpt-6")
  assert not [name for name in os.listdir(run_dir) if name.startswith(".worker")]
