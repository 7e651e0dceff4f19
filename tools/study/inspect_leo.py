# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""What meta-training changed in a LEO run: its learned rates, the subspaces its encoder and
decoder use, and what each stage of the adaptation contributes, checkpoint by checkpoint.

    python -m tools.study.inspect_leo --run=/tmp/leo-icons [--tasks=500] [--output=inspect.md]

For the untrained model (rebuilt from the run's configuration and seed, exactly as the runner
built it at step 0), every committed checkpoint of the run and its best checkpoint, it prints:

- the learned rates: the per-latent inner rate and the per-embedding-dimension fine-tuning
  rate (mean, and range);
- the decoder: the effective rank of its weight-mean matrix W_mu [num_latents, D] (the
  participation ratio of its singular values, out of num_latents), and which share of the
  between-class variance of each split's class means lies in its row space, the space every
  decoded classifier weight lies in ("chance" is num_latents / D, a random subspace's share);
- the encoder: the same share for its column space, the directions it reads;
- stage accuracies, on the same tasks for every checkpoint (evaluation mode): of the weights
  decoded from the encoder's latents, after the latent-space steps, after the fine-tuning
  steps, and nearest centroid beside them; and the share of the fine-tuned weights' squared
  norm that lies outside the decoder's row space (what fine-tuning adds beyond it).
  Validation tasks use every remaining image as a query (the runner's validation); training
  tasks use the training protocol's queries.

It reads the run folder only (config.json and the checkpoints) and never the test split's
tasks (the test class means enter the subspace shares only).
"""

import dataclasses
from typing import Dict, List, Sequence

from absl import flags
import numpy as np

import utils
tf = utils.import_tensorflow()
# pylint: disable=g-import-not-at-top,wrong-import-position
import baselines
import config
import data
import runfolder
import training
import storage
import trained
import transforms

SPLITS = ("train", "val", "test")


@dataclasses.dataclass
class Inspection:
  """One checkpoint's figures (see the module docstring); accuracies are fractions."""
  name: str
  step: int
  inner_lr: np.ndarray
  finetuning_lr: np.ndarray
  decoder_rank: float
  decoder_share: Dict[str, float]
  encoder_share: Dict[str, float]
  stages: Dict[str, Dict[str, float]]  # task split -> stage -> accuracy
  outside_span: Dict[str, float]  # task split -> share of the fine-tuned weights' norm²


def configs_of_run(run: str, seed=None) -> config.Configs:
  saved = runfolder.read_config(run)
  return config.Configs(
      data=config.DataConfig(**saved["data_config"]),
      inner=config.InnerModelConfig(**saved["inner_model_config"]),
      outer=config.OuterModelConfig(**saved["outer_model_config"]),
      run=config.RunConfig(checkpoint_path=run, seed=saved["seed"] if seed is None else seed))


def checkpoints_of_run(run: str) -> List[tuple]:
  """(name, step, prefix or None for the untrained model) of every intact checkpoint."""
  found = [("untrained", 0, None)]
  for name in runfolder.Checkpoints(run, None).committed():
    prefix = storage.join(run, name)
    if not runfolder.damage(prefix):
      found.append((name, int(name.rsplit("-", 1)[1]), prefix))
  best = runfolder.BestCheckpoint(storage.join(run, runfolder.BEST_FOLDER))
  if best.info and not runfolder.damage(best.prefix):
    found.append((f"best (step {best.info['step']})", int(best.info["step"]), best.prefix))
  return found


def between_class_directions(embeddings: data.Embeddings) -> np.ndarray:
  """The split's class means of the L2-normalised embeddings, centred: [classes, D]."""
  unit = embeddings.embeddings / np.linalg.norm(embeddings.embeddings, axis=1, keepdims=True)
  means = np.stack([unit[rows].mean(axis=0) for rows in embeddings.rows_by_class])
  return means - means.mean(axis=0)


def subspace_share(basis: np.ndarray, vectors: np.ndarray) -> float:
  """Share of the vectors' summed squared norm inside the row space of `basis` [r, D]."""
  q, _ = np.linalg.qr(basis.T)  # [D, r], orthonormal columns.
  return float(np.sum((vectors @ q) ** 2) / np.sum(vectors ** 2))


def effective_rank(matrix: np.ndarray) -> float:
  """Participation ratio (Σσ²)² / Σσ⁴ of the singular values σ."""
  power = np.linalg.svd(matrix, compute_uv=False) ** 2
  return float(power.sum() ** 2 / np.sum(power ** 2))


def stage_accuracies(leo, batches: Sequence[data.ProblemInstance]) -> tuple:
  """Mean accuracies of the stages over `batches`, and the fine-tuned weights' share of
  squared norm outside the decoder's row space."""
  leo.is_meta_training = False
  totals = {"decoded": [], "latent steps": [], "fine-tuned": [], "nearest centroid": []}
  outside, q = [], np.linalg.qr(leo.decoder_weights.numpy()[:, :leo.embedding_dim].T)[0]
  for batch in batches:
    batch = leo._as_tensors(batch)  # pylint: disable=protected-access
    latents, _ = leo.forward_encoder(batch)
    _, decoded, _, _ = leo.decode_with_gradients(batch, latents)
    _, adapted, _, gradient = leo.leo_inner_loop(batch, latents)
    finetuned = leo.finetune(batch, gradient, adapted)
    for stage, weights in (("decoded", decoded), ("latent steps", adapted),
                           ("fine-tuned", finetuned)):
      totals[stage].append(leo.calculate_inner_loss(batch.val_input, batch.val_output,
                                                    weights)[1].numpy())
    totals["nearest centroid"].append(baselines.nearest_centroid(batch).numpy())
    w = tf.reduce_mean(finetuned, axis=2).numpy().reshape(-1, leo.embedding_dim)
    outside.append(np.sum((w - (w @ q) @ q.T) ** 2, axis=1) / np.sum(w ** 2, axis=1))
  return ({stage: float(np.mean(np.concatenate(values))) for stage, values in totals.items()},
          float(np.mean(np.concatenate(outside))))


def inspect(run: str, num_tasks: int = 500, batch_size: int = 50,
            log=print) -> List[Inspection]:
  """The figures of every checkpoint of `run` (see the module docstring)."""
  configs, saved = configs_of_run(run), runfolder.read_config(run)
  outer = configs.outer
  episodes = data.Episodes(configs, need_train=True, transform=transforms.saved(run, saved))
  # With train_on_val the train split's classes include the val classes.
  directions = {split: between_class_directions(data.load_split(
      configs.data, data.MetaSplit(split))) for split in SPLITS}
  # One draw of tasks, the same for every checkpoint.
  tasks = {
      "val": [episodes.valid.get_batch(batch_size, outer.num_classes,
                                       outer.num_tr_examples_per_class, episodes.valid_queries)
              for _ in range(max(1, num_tasks // batch_size))],
      "train": [episodes.train.get_batch(batch_size, outer.num_classes,
                                         outer.num_tr_examples_per_class,
                                         outer.num_val_examples_per_class)
                for _ in range(max(1, num_tasks // batch_size))]}
  results = []
  for name, step, prefix in checkpoints_of_run(run):
    leo, _ = training.build_model(configs, episodes.embedding_dim)
    if prefix is not None:
      trained.restore(leo, runfolder.FoundCheckpoint(prefix, saved, step, None, run))
    log(f"inspecting {name}")
    w_mu = leo.decoder_weights.numpy()[:, :leo.embedding_dim]
    encoder = leo.encoder_weights.numpy().T
    stages, outside = {}, {}
    for split, batches in tasks.items():
      stages[split], outside[split] = stage_accuracies(leo, batches)
    results.append(Inspection(
        name=name, step=step, inner_lr=leo.inner_lr.numpy().ravel(),
        finetuning_lr=leo.finetuning_lr.numpy().ravel(), decoder_rank=effective_rank(w_mu),
        decoder_share={s: subspace_share(w_mu, d) for s, d in directions.items()},
        encoder_share={s: subspace_share(encoder, d) for s, d in directions.items()},
        stages=stages, outside_span=outside))
  return results


def _rate(values: np.ndarray) -> str:
  return f"{values.mean():.3g} ({values.min():.3g} to {values.max():.3g})"


def _pct(value: float) -> str:
  return f"{100 * value:.1f}"


def table(results: Sequence[Inspection], num_latents: int, embedding_dim: int) -> str:
  """The markdown tables of `inspect`'s figures."""
  header = ("| checkpoint | inner lr, mean (range) | fine-tuning lr, mean (range) | decoder "
            f"effective rank (of {num_latents}) | decoder span: train / val / test class "
            "variance (%) | encoder span: train / val / test (%) |")
  lines = [header, "|" + "---|" * 6]
  for r in results:
    lines.append(f"| {r.name} | {_rate(r.inner_lr)} | {_rate(r.finetuning_lr)} | "
                 f"{r.decoder_rank:.1f} | "
                 + " / ".join(_pct(r.decoder_share[s]) for s in SPLITS) + " | "
                 + " / ".join(_pct(r.encoder_share[s]) for s in SPLITS) + " |")
  chance = f"chance (a random {num_latents}-d subspace of {embedding_dim}): "
  lines.append(f"\n{chance}{_pct(num_latents / embedding_dim)}%.\n")
  stages = ("decoded", "latent steps", "fine-tuned", "nearest centroid")
  lines += ["| checkpoint | tasks | " + " | ".join(f"{s} (%)" for s in stages)
            + " | fine-tuned weights outside the decoder span (% of norm²) |",
            "|" + "---|" * (len(stages) + 3)]
  for r in results:
    for split in ("train", "val"):
      lines.append(f"| {r.name} | {split} | "
                   + " | ".join(_pct(r.stages[split][s]) for s in stages)
                   + f" | {100 * r.outside_span[split]:.3g} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv  # Unused.
  values = flags.FLAGS
  if not storage.exists(storage.join(values.run, runfolder.CONFIG_FILE)):
    raise utils.LeoError(f"--run={values.run}: expected a run folder (with "
                         f"{runfolder.CONFIG_FILE})")
  results = inspect(values.run, values.num_tasks, log=lambda line: None)
  configs = configs_of_run(values.run)
  text = (f"# What meta-training changed: {values.run}\n\n"
          f"`python -m tools.study.inspect_leo --run={values.run} "
          f"--num_tasks={values.num_tasks}`\n\n"
          + table(results, configs.inner.num_latents, results and len(
              results[0].finetuning_lr)))
  print(text, end="")
  if values.output:
    storage.atomic_write_text(values.output, text)


if __name__ == "__main__":
  flags.DEFINE_string("run", None, "A runner.py run folder.", required=True)
  # Not --tasks: config.py's --tasks names a file of tasks for the runner.
  flags.DEFINE_integer("num_tasks", 500, "Validation and training tasks per checkpoint.")
  flags.DEFINE_string("output", None, "Also write the tables to this file.")
  utils.run_command(main)
