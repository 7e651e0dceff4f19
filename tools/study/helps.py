# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""When LEO helps: one table row per data setting, LEO beside every baseline, paired.

    python -m tools.study.helps "icons, 1-shot=results/icons_1shot/tuned6000-seed0,..." ...

Each argument is `<label>=<path>[,<path>...]`: the result records of one setting (files or
folders, as tools/study/compare.py takes them; test-split records only). A row gives LEO's test
accuracy (with its input, `--embedding_transform`, and the mean validation accuracy of its
tested checkpoints) and each baseline's, and under each baseline LEO's paired difference from it on
identical tasks: over the seeds both have (a Student t interval, the number of seeds said),
or over the tasks of one seed. The last column names the best baseline and whether LEO is
above it, below it or level (the interval of the difference holds 0).
"""

from typing import Dict, List, Sequence, Tuple

import numpy as np

import config
from tools.study import compare
import utils

METHODS = ("leo",) + config.BASELINES[1:]
USAGE_ARGUMENTS = "<label>=<path>[,<path>...] ..."  # One row each.


def _test_records(label: str, paths: Sequence[str]) -> Dict[str, List[compare.Record]]:
  """{method: its test records, in seed order} of one row; one task shape per row."""
  records = [record for record in compare.load_records(paths)
             if record.fields["split"] == "test"]
  shapes = {compare.setting(record) for record in records}
  if len(shapes) != 1:
    raise utils.LeoError(f"{label}: expected the test records of one setting, found "
                         f"{len(shapes)} ({', '.join(map(str, sorted(shapes, key=str)))})")
  by_method = {}
  for record in sorted(records, key=lambda record: record.fields["seed"]):
    by_method.setdefault(record.fields["method"], []).append(record)
  for method, group in by_method.items():
    if len({record.fields["seed"] for record in group}) != len(group):
      raise utils.LeoError(f"{label}: two {method} records of one seed: "
                           f"{', '.join(record.path for record in group)}")
  return by_method


def _accuracy(group: Sequence[compare.Record]) -> Tuple[float, float]:
  """Mean and 95% half-width: over the seeds (t), or over the tasks of the one record."""
  if len(group) > 1:
    return compare.t_interval([record.fields["accuracy"] for record in group])
  return group[0].fields["accuracy"], group[0].fields["ci95"]


def _difference(leo: Sequence[compare.Record], baseline: Sequence[compare.Record]):
  """(mean, half-width, the paired LEO records) of LEO − baseline over the seeds on identical
  tasks; None if no seed of theirs is on identical tasks."""
  on_tasks = {compare.tasks_key(record): record for record in baseline}
  pairs = [(record, on_tasks[compare.tasks_key(record)]) for record in leo
           if compare.tasks_key(record) in on_tasks]
  if not pairs:
    return None
  if len(pairs) == 1:
    return (*compare.paired_difference(*pairs[0]), [pairs[0][0]])
  return (*compare.t_interval([a.fields["accuracy"] - b.fields["accuracy"]
                               for a, b in pairs]), [a for a, _ in pairs])


def _seeds(group: Sequence[compare.Record]) -> str:
  return f"{len(group)} seeds" if len(group) > 1 else f"seed {group[0].fields['seed']}"


def row(label: str, paths: Sequence[str]) -> List[str]:
  """The cells of one setting's row."""
  by_method = _test_records(label, paths)
  if "leo" not in by_method:
    raise utils.LeoError(f"{label}: no LEO test record among {', '.join(paths)}")
  leo = by_method["leo"]
  fields = leo[0].fields
  inputs = {record.fields["config"].get("data_config", {}).get("embedding_transform", "none")
            for record in leo}
  if len(inputs) != 1:
    raise utils.LeoError(f"{label}: LEO records of {len(inputs)} embedding transforms "
                         f"({', '.join(sorted(inputs))}), expected one a row")
  validation = np.mean([record.fields["trained"]["valid_accuracy"] for record in leo])
  cells = [label, compare._shape(fields), inputs.pop(),  # pylint: disable=protected-access
           f"{compare.interval(*_accuracy(leo))} ({_seeds(leo)}; val {validation:.2%})"]
  best, verdict = None, ""
  for method in METHODS[1:]:
    group = by_method.get(method)
    if not group:
      cells.append("not run")
      continue
    accuracy = _accuracy(group)
    difference = _difference(leo, group)
    cell = compare.interval(*accuracy) + (f" ({_seeds(group)})" if len(group) != len(leo)
                                          else "")
    if difference:
      cell += (f"; LEO − it {compare.interval(*difference[:2], signed=True)} "
               f"({_seeds(difference[2])})")
    cells.append(cell)
    if difference and (best is None or accuracy[0] > best[1]):
      best = (method, accuracy[0], difference)
  if best:
    mean, half_width, _ = best[2]
    verdict = ("LEO above" if mean - half_width > 0 else "LEO below" if mean + half_width < 0
               else "level with")
    verdict += f" {best[0].replace('_', ' ')}"
  return cells + [verdict]


def render(rows: Sequence[Tuple[str, Sequence[str]]], command: str) -> str:
  header = (["data", "task", "LEO's input", "LEO"] + [method.replace("_", " ") for method in METHODS[1:]]
            + ["LEO and the best baseline"])
  lines = [f"Produced by `{command}`.", "", "| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row(label, paths)) + " |" for label, paths in rows]
  lines += ["", "Test accuracy (%) ± the 95% interval: Student t over the seeds where there "
            "are several, else normal over the tasks of the one seed; \"LEO − it\": LEO's paired "
            "difference from the baseline on identical tasks (the same fingerprint), likewise. "
            "The best baseline is the one of highest accuracy that LEO is paired with; \"level "
            "with\": the interval of the difference holds 0. LEO's input: its "
            "--embedding_transform; val: the mean over its seeds of the validation accuracy of "
            "the checkpoint tested (the best)."]
  return "\n".join(lines) + "\n"


def main(argv):
  rows = []
  for argument in argv[1:]:
    label, separator, paths = argument.partition("=")
    if not separator or not label or not paths:
      raise utils.LeoError(f"{argument!r}: expected <label>=<path>[,<path>...]")
    rows.append((label, paths.split(",")))
  if not rows:
    raise utils.LeoError(f"no {USAGE_ARGUMENTS} given")
  print(render(rows, " ".join(["python -m tools.study.helps"]
                              + [f'"{argument}"' for argument in argv[1:]])), end="")


if __name__ == "__main__":
  utils.run_command(main, arguments=USAGE_ARGUMENTS)
