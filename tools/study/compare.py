# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Compares result records: one markdown table of accuracies, pairs on identical tasks, seeds.

    python -m tools.study.compare runs/                        # every record under runs/
    python -m tools.study.compare runs/ --output=RESULTS.md    # the same table, also written there
    python -m tools.study.compare runs/ --pair=R1,R4           # ask about two rows (or record files)
    python -m tools.study.compare runs/ --plot=study.png       # validation curves, test accuracies and
                                                         # paired differences from a baseline
    python -m tools.study.compare runs/ --reference=           # pair any two records on equal tasks

Rows, in this order for each evaluated setting (split, N-way K-shot, queries, tasks):
- each record (`<folder>/results/*.json`, written by runner.py): mean ± 95% CI over its tasks;
- "paired": two records on identical tasks (equal `task_fingerprint` and number of tasks:
  `same_tasks`), one of them of the
  `--reference` method: the mean per-task difference ± its 95% CI (normal, tasks are many);
- "N seeds": records that differ only in their seed: the mean of the per-seed means ± the 95%
  Student t interval (n-1 degrees of freedom) and their spread;
- "paired, N seeds": the reference against another method seed by seed, each seed's pair on
  identical tasks: the mean difference ± its t interval.
Records on different tasks are never paired; a one-line note says why.
"""

import collections
import glob
import io
import json
import math
import os
import sys
import textwrap
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from absl import flags
from absl import logging
import numpy as np
from scipy import stats

import records
import runfolder
import storage
import utils

VALID_ACCURACY_TAG = "metavalid_valid_accuracy"
CONFIDENCE = 0.95


class Record(NamedTuple):
  path: str
  fields: dict


# ---- Loading. ----

def load_records(paths: Sequence[str]) -> List[Record]:
  """Every result record in `paths` (record files, or folders searched at any depth:
  `records.find_records`), each once."""
  found = {}
  for path in map(os.fspath, paths):
    if os.path.isdir(path):
      in_path = records.find_records(path)
    elif os.path.lexists(path):  # A file, or what read_record refuses in one line (a FIFO).
      in_path = [(path, records.read_record(path))]
    else:
      raise utils.LeoError(f"{path}: no such file or folder")
    for file, fields in in_path:
      found.setdefault(os.path.realpath(file), Record(file, fields))
  return list(found.values())


# ---- Statistics. ----

def t_interval(values: Sequence[float]) -> Tuple[float, float]:
  """Mean of a handful of values (one per seed) and the half-width of its 95% t interval.

  half_width = t_{0.975, n-1} * std(ddof=1) / sqrt(n): with n = 3 seeds t is 4.30, not 1.96.
  """
  values = np.asarray(values, dtype=np.float64)
  if values.size < 2:
    raise ValueError(f"a t interval needs at least 2 values, got {values.size}")
  quantile = stats.t.ppf(0.5 + CONFIDENCE / 2, df=values.size - 1)
  return float(values.mean()), float(quantile * values.std(ddof=1) / math.sqrt(values.size))


def tasks_key(record: Record) -> Tuple[str, int]:
  """Equal for records on identical tasks: their task fingerprint and number of tasks (a
  record of one task never stands for the first of a hundred)."""
  return record.fields["task_fingerprint"], record.fields["num_tasks"]


def same_tasks(a: Record, b: Record) -> bool:
  return tasks_key(a) == tasks_key(b)


def paired_difference(a: Record, b: Record) -> Tuple[float, float]:
  """Mean per-task accuracy difference a - b on identical tasks and its 95% half-width."""
  if not same_tasks(a, b):
    raise ValueError(f"{a.path} and {b.path} are not on identical tasks")
  return utils.mean_and_confidence_interval(
      np.subtract(a.fields["task_accuracies"], b.fields["task_accuracies"]))


def task_differences(a: Record, b: Record) -> List[str]:
  """Why two records are on different tasks, e.g. ["different seed (0 vs 1)"]; [] if the
  settings agree (their tasks may still differ: only equal fingerprints prove identity)."""
  return [f"different {what} ({first} vs {second})" for what, first, second in (
      ("split", a.fields["split"], b.fields["split"]),
      ("dataset", a.fields.get("dataset_name"), b.fields.get("dataset_name")),
      ("task shape", _shape(a.fields), _shape(b.fields)),
      ("queries per class", a.fields["queries_per_class"], b.fields["queries_per_class"]),
      ("number of tasks", a.fields["num_tasks"], b.fields["num_tasks"]),
      ("seed", a.fields["seed"], b.fields["seed"])) if first != second]


def why_not_paired(a: Record, b: Record) -> str:
  """One line: what makes the tasks of two records differ."""
  return "; ".join(task_differences(a, b)) or (
      "different tasks although split, dataset, shape, queries, tasks and seed agree (task "
      "fingerprints differ)")


# ---- Grouping. ----

def setting(record: Record) -> tuple:
  """What an evaluation measured apart from the method: rows are grouped by it."""
  fields = record.fields
  return (fields["split"], fields["num_classes"], fields["num_tr_examples_per_class"],
          fields["queries_per_class"], fields["num_tasks"], fields.get("dataset_name"))


# What a baseline's result depends on in its record's config: the model's sections there are
# the flags' LEO values, which a baseline never reads.
BASELINE_CONFIG_KEYS = ("data_config", "embedding_dim")


def _seed_key(record: Record) -> tuple:
  """Equal for records that differ only in their seed (the evaluation's and the config's)."""
  config = {key: value for key, value in record.fields["config"].items() if key != "seed"}
  if record.fields["method"] != "leo":
    config = {key: value for key, value in config.items() if key in BASELINE_CONFIG_KEYS}
  return (record.fields["method"],) + setting(record) + (
      json.dumps(config, sort_keys=True),)


def group_by_seed(records: Sequence[Record]) -> List[List[Record]]:
  """Records grouped by everything but the seed, each group in seed order, in input order."""
  groups = collections.defaultdict(list)
  for record in records:
    groups[_seed_key(record)].append(record)
  return [sorted(group, key=lambda record: record.fields["seed"]) for group in groups.values()]


def _order(records: Sequence[Record], reference: str) -> List[Record]:
  """Setting, then the reference method first, then run, seed and step: the table's order."""
  first_path = {}
  for group in group_by_seed(records):
    for record in group:
      first_path[record.path] = min(member.path for member in group)
  def key(record):
    fields = record.fields
    step = (fields.get("trained") or {}).get("step") or 0
    return (setting(record), fields["method"] != reference, fields["method"],
            first_path[record.path], fields["seed"], step, record.path)
  return sorted(records, key=key)


# ---- The table. ----

def _percent(value: float, signed: bool = False) -> str:
  return f"{100 * value:+.2f}" if signed else f"{100 * value:.2f}"


def interval(mean: float, half_width: float, signed: bool = False) -> str:
  return f"{_percent(mean, signed)} ± {100 * half_width:.2f}"


def _spread(values: Sequence[float], signed: bool = False) -> str:
  return (f"{_percent(min(values), signed)} to {_percent(max(values), signed)}, "
          f"sd {100 * np.std(values, ddof=1):.2f}")


def _shape(fields: dict) -> str:
  return f"{fields['num_classes']}-way {fields['num_tr_examples_per_class']}-shot"


def _meta_trained_elsewhere(fields: dict) -> str:
  """"cross-domain from <data>" for a record tested on other data than it learnt from, else
  ""."""
  learnt, tested = fields.get("meta_trained_on"), fields.get("tested_on")
  if not learnt or not tested or all(learnt.get(key) == tested.get(key) for key in
                                     ("dataset_name", "embedding_crop", "data_path")):
    return ""
  return f"cross-domain from {learnt['dataset_name']}"


def _trained(fields: dict) -> str:
  """LEO's checkpoint step, its training shape where it differs from the evaluated one, and
  its meta-training data where they are not the evaluated data."""
  trained = fields.get("trained") or {}
  parts = [f"step {trained['step']}"] if trained.get("step") is not None else []
  parts += [_meta_trained_elsewhere(fields)] if _meta_trained_elsewhere(fields) else []
  shape = (trained.get("num_classes"), trained.get("num_tr_examples_per_class"))
  if None not in shape and shape != (fields["num_classes"], fields["num_tr_examples_per_class"]):
    parts.append(f"trained {_shape(trained)}")
  return ", ".join(parts)


def record_commits(record: Record) -> List[str]:
  """leo's commits that trained a LEO record's checkpoint: the record's own list, or for a
  record made before records held it, its run's (`runfolder.training_commits` of the folder
  holding its results/ folder); [] where unknown or a baseline."""
  trained = record.fields.get("trained") or {}
  if "leo_commits" in trained:
    return list(trained["leo_commits"])
  try:
    return runfolder.training_commits(os.path.dirname(os.path.dirname(record.path)),
                                      trained.get("step"))
  except storage.StorageError:
    return []  # A note the table can do without.


def _commit_notes(ordered: List[Record], ids: Dict[str, str]) -> List[str]:
  notes = []
  for record in ordered:
    commits = record_commits(record)
    if len(commits) > 1:
      notes.append(f"{ids[record.path]} was trained across {len(commits)} leo commits "
                   f"({', '.join(commit[:12] for commit in commits)}): a run made in one "
                   "piece at one commit may differ from it in the last digits.")
  return notes


def _pairs(ordered: List[Record], ids: Dict[str, str], reference: str,
           asked: Sequence[Tuple[str, str]]) -> Tuple[List[Tuple[Record, Record]], List[str]]:
  """Pairs on identical tasks (a of the reference method, or any with reference ""), the
  pairs asked for, and a note for each asked or reference-less pair on different tasks."""
  pairs = [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]
           if same_tasks(a, b) and (not reference or a.fields["method"] == reference)]
  notes = []
  by_name = {name: record for record in ordered
             for name in (ids[record.path], os.path.realpath(record.path))}
  for names in asked:
    found = [by_name.get(name, by_name.get(os.path.realpath(name))) for name in names]
    if None in found or found[0] is found[1]:
      raise utils.LeoError(f"--pair={','.join(names)}: expected two different row ids "
                           f"(R1..R{len(ordered)}) or record files among those compared")
    a, b = sorted(found, key=ordered.index)
    if not same_tasks(a, b):
      notes.append(f"{ids[a.path]} and {ids[b.path]} are not paired: {why_not_paired(a, b)}.")
    elif not any(a is first and b is second for first, second in pairs):
      pairs.append((a, b))
  paired = {record.path for pair in pairs for record in pair}
  references = [record for record in ordered if record.fields["method"] == reference]
  for record in ordered:
    if references and record.path not in paired and record.fields["method"] != reference:
      closest = min(references, key=lambda other: len(task_differences(other, record)))
      notes.append(f"{ids[record.path]} is not paired with any {reference} record; closest "
                   f"{ids[closest.path]}: {why_not_paired(closest, record)}.")
  return pairs, notes


def _seed_groups(ordered: List[Record], ids: Dict[str, str]) -> Tuple[List[List[Record]],
                                                                      List[str]]:
  """Groups of two or more records that differ only in their seed, and a note for each
  group where a seed appears twice (not aggregated)."""
  groups, notes = [], []
  for group in group_by_seed(ordered):
    if len({record.fields["seed"] for record in group}) == len(group) > 1:
      groups.append(group)
    elif len(group) > 1:
      notes.append(f"{', '.join(ids[record.path] for record in group)} are not aggregated over "
                   f"seeds: a seed appears twice (another checkpoint of the same run?).")
  return groups, notes


def _setting_cells(record: Record, seeds: int = 1) -> list:
  """The split, task, queries and tasks cells of a row (tasks per seed for aggregates)."""
  fields = record.fields
  tasks = f"{seeds} × {fields['num_tasks']}" if seeds > 1 else fields["num_tasks"]
  return [fields["split"], _shape(fields), fields["queries_per_class"], tasks]


def _record_row(record: Record, ids: Dict[str, str]) -> list:
  fields = record.fields
  commits = len(record_commits(record))
  checkpoint = ", ".join([_trained(fields)] * bool(_trained(fields))
                         + [f"{commits} commits"] * (commits > 1))
  return [ids[record.path], "record", fields["method"], *_setting_cells(record),
          fields["seed"], checkpoint, interval(fields["accuracy"], fields["ci95"]), ""]


def _pair_row(a: Record, b: Record, ids: Dict[str, str]) -> list:
  return [f"{ids[a.path]} − {ids[b.path]}", "paired",
          f"{a.fields['method']} − {b.fields['method']}", *_setting_cells(a), a.fields["seed"],
          "", interval(*paired_difference(a, b), signed=True), ""]


def _seed_row(group: List[Record], ids: Dict[str, str]) -> list:
  accuracies = [record.fields["accuracy"] for record in group]
  trained_shapes = {_trained(record.fields).partition("trained ")[2] for record in group}
  return [", ".join(ids[record.path] for record in group), f"{len(group)} seeds",
          group[0].fields["method"], *_setting_cells(group[0], len(group)),
          ", ".join(str(record.fields["seed"]) for record in group),
          ", ".join(f"trained {shape}" for shape in sorted(trained_shapes) if shape),
          interval(*t_interval(accuracies)), _spread(accuracies)]


def _paired_over_seeds(first: List[Record], second: List[Record],
                       ids: Dict[str, str]) -> Tuple[Optional[list], Optional[str]]:
  """The row of two seed groups paired seed by seed on identical tasks, and a note naming a
  seed they share but on different tasks."""
  seconds = {record.fields["seed"]: record for record in second}
  pairs = [(a, seconds[a.fields["seed"]]) for a in first if a.fields["seed"] in seconds]
  matched = [(a, b) for a, b in pairs if same_tasks(a, b)]
  unmatched = [(a, b) for a, b in pairs if not same_tasks(a, b)]
  note = (f"{ids[unmatched[0][0].path]} and {ids[unmatched[0][1].path]} are not paired over "
          f"seeds: {why_not_paired(*unmatched[0])}.") if unmatched else None
  if len(matched) < 2:
    return None, note
  differences = [a.fields["accuracy"] - b.fields["accuracy"] for a, b in matched]
  row = [", ".join(f"{ids[a.path]} − {ids[b.path]}" for a, b in matched),
         f"paired, {len(matched)} seeds",
         f"{first[0].fields['method']} − {second[0].fields['method']}",
         *_setting_cells(first[0], len(matched)),
         ", ".join(str(a.fields["seed"]) for a, _ in matched), "",
         interval(*t_interval(differences), signed=True), _spread(differences, signed=True)]
  return row, note


def compare(records: Sequence[Record], reference: str = "leo",
            asked: Sequence[Tuple[str, str]] = ()) -> Tuple[List[Record], List[list], List[str]]:
  """The table's rows and notes.

  Args:
    records: the records to compare.
    reference: the method every pair and every paired-over-seeds row is taken against; ""
      pairs every two records on identical tasks.
    asked: pairs the user asked about, as row ids ("R3") or record paths.

  Returns:
    (records in table order (row ids R1, R2, ...), rows [row, kind, method, split, task,
    queries, tasks, seed, checkpoint, accuracy, spread], notes of one line each).
  """
  ordered = _order(records, reference)
  ids = {record.path: f"R{index + 1}" for index, record in enumerate(ordered)}
  pairs, notes = _pairs(ordered, ids, reference, asked)
  seed_groups, seed_notes = _seed_groups(ordered, ids)
  notes += seed_notes + _commit_notes(ordered, ids)
  rows = []
  for where in dict.fromkeys(setting(record) for record in ordered):
    rows += [_record_row(record, ids) for record in ordered if setting(record) == where]
    rows += [_pair_row(a, b, ids) for a, b in pairs if setting(a) == where]
    groups = [group for group in seed_groups if setting(group[0]) == where]
    rows += [_seed_row(group, ids) for group in groups]
    for i, first in enumerate(groups):
      for second in groups[i + 1:]:
        if not reference or first[0].fields["method"] == reference:
          row, note = _paired_over_seeds(first, second, ids)
          rows += [row] if row else []
          notes += [note] if note else []
  return ordered, rows, notes


HEADER = ["row", "kind", "method", "split", "task", "queries", "tasks", "seed", "checkpoint",
          "accuracy (%)", "spread (%)"]


def render_table(records: Sequence[Record], reference: str = "leo",
                 asked: Sequence[Tuple[str, str]] = (), command: str = "") -> str:
  """The markdown of the comparison: the table, its notes and the record of each row id."""
  ordered, rows, notes = compare(records, reference, asked)
  lines = [f"Produced by `{command}`.", ""] if command else []
  lines += ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
  lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
  lines += ["", "± is the half-width of the 95% confidence interval: normal over the tasks for "
            "records and paired rows (paired: over the per-task differences on identical "
            "tasks); Student t with n-1 degrees of freedom over the per-seed means for seed "
            "rows. Spread: the per-seed minimum to maximum and standard deviation."]
  lines += [""] + notes if notes else []
  lines += [""] + [f"- R{index + 1}: `{_display_path(record.path)}`"
                   for index, record in enumerate(ordered)]
  return "\n".join(lines) + "\n"


def _display_path(path: str) -> str:
  """`path` relative to the working directory when it lies below it, else absolute."""
  relative = os.path.relpath(path)
  return os.path.abspath(path) if relative.startswith(os.pardir) else relative


# ---- The picture. ----

def find_runs(paths: Sequence[str]) -> List[str]:
  """Run folders in `paths` (themselves or below): folders with validations or event files."""
  runs = []
  for path in paths:
    for folder, files in sorted(storage.walk(path)) if os.path.isdir(path) else ():
      if records.VALIDATIONS_FILE in files or any(
          name.startswith("events.out.tfevents.") for name in files):
        runs.append(folder)
  return list(dict.fromkeys(runs))


def _import_tensorflow():
  """TF (start-up chatter silenced) and its event protocol buffer."""
  tensorflow = utils.import_tensorflow()
  from tensorflow.core.util import event_pb2  # pylint: disable=g-import-not-at-top
  return tensorflow, event_pb2


def validation_curve(run: str) -> Dict[int, float]:
  """{step: validation accuracy} of a run: its event files, else its validations.jsonl.

  A resumed run may repeat a step: the last value written wins. A torn last line of
  validations.jsonl or a torn last event (a crash while appending) is ignored, with what
  follows a damaged event of its file (a warning names it). Only regular files are read.
  """
  curve = {}
  event_files = sorted((path for path in glob.glob(os.path.join(run, "events.out.tfevents.*"))
                        if os.path.isfile(path)), key=os.path.getmtime)
  if event_files:
    tf, event_pb2 = _import_tensorflow()
    for path in event_files:
      try:
        for serialized in tf.data.TFRecordDataset(path):
          event = event_pb2.Event.FromString(serialized.numpy())
          for value in event.summary.value:
            if value.tag == VALID_ACCURACY_TAG:
              curve[event.step] = float(tf.make_ndarray(value.tensor))
      except tf.errors.DataLossError as e:
        logging.warning("%s: %s; its events before that are used", path, utils.first_line(e))
  if not curve:
    curve = {v["step"]: float(v["accuracy"]) for v in records.read_validations(run)}
  return dict(sorted(curve.items()))


class _Entry(NamedTuple):
  label: str
  method: str  # Its colour.
  mean: float
  half_width: float
  setting: tuple
  rows: str  # The table's row ids, to tell apart points of equal labels.


def _test_entries(records: Sequence[Record], reference: str) -> List[_Entry]:
  """The right panel's points: each test-split seed aggregate and lone record, in table order."""
  ordered = _order(records, reference)
  ids = {record.path: f"R{index + 1}" for index, record in enumerate(ordered)}
  entries = []
  for group in group_by_seed([record for record in ordered if record.fields["split"] == "test"]):
    aggregate = len(group) > 1 and len({record.fields["seed"] for record in group}) == len(group)
    for members in [group] if aggregate else [[record] for record in group]:
      fields = members[0].fields
      method = textwrap.fill(fields["method"].replace("_", " "), width=12)
      seeds = f"{len(members)} seeds" if aggregate else f"seed {fields['seed']}"
      mean, half_width = (t_interval([record.fields["accuracy"] for record in members])
                          if aggregate else (fields["accuracy"], fields["ci95"]))
      entries.append(_Entry(f"{method}\n{_shape(fields)}\n{seeds}", fields["method"], mean,
                            half_width,
                            setting(members[0]),
                            ",".join(ids[record.path] for record in members)))
  repeated = collections.Counter(entry.label for entry in entries)
  return [entry._replace(label=f"{entry.label}\n{entry.rows}")
          if repeated[entry.label] > 1 else entry for entry in entries]


def _paired_entries(records: Sequence[Record], reference: str, against: str) -> List[_Entry]:
  """The forest panel's points: each test-split method (a seed group, or a lone record) minus
  `against` on identical tasks: over seeds, the t interval of the per-seed differences; for
  one seed, the paired interval over its tasks."""
  ordered = _order([record for record in records if record.fields["split"] == "test"],
                   reference)
  ids = {record.path: f"R{index + 1}" for index, record in enumerate(ordered)}
  baseline_on = {tasks_key(record): record for record in ordered
                 if record.fields["method"] == against}
  entries = []
  for group in group_by_seed([record for record in ordered
                              if record.fields["method"] != against]):
    pairs = [(record, baseline_on[tasks_key(record)]) for record in group
             if tasks_key(record) in baseline_on]
    seeds = {a.fields["seed"] for a, _ in pairs}
    if not pairs or (len(pairs) > 1 and len(seeds) < len(pairs)):  # A seed twice: no pooling.
      continue
    fields = pairs[0][0].fields
    mean, half_width = (t_interval([a.fields["accuracy"] - b.fields["accuracy"]
                                    for a, b in pairs])
                        if len(pairs) > 1 else paired_difference(*pairs[0]))
    label = (f"{fields['method'].replace('_', ' ')}, {_shape(fields)}, "
             + (f"{len(pairs)} seeds" if len(pairs) > 1 else f"seed {fields['seed']}"))
    entries.append(_Entry(label, fields["method"], mean, half_width, setting(pairs[0][0]),
                          ",".join(ids[a.path] for a, _ in pairs)))
  return entries


def _validation_levels(records: Sequence[Record]) -> Dict[Tuple[str, str], float]:
  """{(method, label): accuracy} of the baselines' validation records (a mean over their
  seeds): the level a LEO run's validation curve has to rise above."""
  levels = collections.defaultdict(list)
  for record in records:
    fields = record.fields
    if fields["split"] == "val" and fields["method"] != "leo":
      levels[fields["method"], f"{fields['method'].replace('_', ' ')}, {_shape(fields)}"].append(
          fields["accuracy"])
  return {key: float(np.mean(values)) for key, values in sorted(levels.items())}


def _run_labels(runs: Sequence[str]) -> List[str]:
  """Runs named below their common folder: "seed0", not "../../runs/study/seed0"."""
  absolute = [os.path.abspath(run) for run in runs]
  common = os.path.commonpath(absolute) if len(runs) > 1 else os.path.dirname(absolute[0])
  return [os.path.relpath(run, common) if run != common else os.path.basename(run)
          for run in absolute]


# Inches: what a panel's data needs (the test panel's per point), then what the labels
# beside the panels take; the figure is their sum, so no panel gets space it does not use.
CURVES_WIDTH = 4.6
TEST_WIDTH_PER_POINT, MIN_TEST_WIDTH = 0.8, 2.4
PAIRED_WIDTH = 2.6
LABELS_WIDTH = 0.7  # Each panel's y axis label and tick labels.
PAIRED_LABEL_CHARACTERS = 28  # A longer row label of the forest is broken after its method.
INCHES_PER_CHARACTER = 0.055  # In "small" type.
PANEL_HEIGHT = 3.4
LEGEND_ROW_HEIGHT = 0.22
RUN_MARKERS = ("o", "s", "^", "D", "v", "P", "X")  # Runs of one method told apart.
BASELINE_DASHES = (":", "--", "-.", (0, (3, 1, 1, 1, 1, 1)), (0, (5, 1)))


def _method_colours(methods: Sequence[str]) -> Dict[str, tuple]:
  """A distinct colour of a qualitative colormap for each method, in order of appearance."""
  from matplotlib import colormaps  # pylint: disable=g-import-not-at-top
  methods = list(dict.fromkeys(methods))
  palette = colormaps["tab10" if len(methods) <= 10 else "tab20"].colors
  return {method: palette[index % len(palette)] for index, method in enumerate(methods)}


def plot(path: str, runs: Sequence[str], records: Sequence[Record], reference: str = "leo",
         against: str = "nearest_centroid"):
  """Writes one figure: validation accuracy against step, with the baselines' validation
  accuracy as lines (left); test accuracies (middle); each method's paired difference from
  `against` on identical test tasks, a forest plot with its mean ± 95% CI beside each row
  (right). A panel with nothing to show is left out; one colour per method in all panels,
  one legend below them."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  curves = {run: validation_curve(run) for run in runs}
  curves = {run: curve for run, curve in curves.items() if curve}
  entries = _test_entries(records, reference)
  paired = [entry._replace(label=entry.label.replace(", ", "\n", 1))
            if len(entry.label) > PAIRED_LABEL_CHARACTERS else entry
            for entry in _paired_entries(records, reference, against)]
  levels = _validation_levels(records) if curves else {}
  if not curves and not entries:
    raise utils.LeoError(f"--plot={path}: no validation curve and no test record to plot")
  colours = _method_colours(["leo"] * bool(curves) + [method for method, _ in levels]
                            + [entry.method for entry in entries + paired])
  widths = ([CURVES_WIDTH] * bool(curves)
            + [max(MIN_TEST_WIDTH, TEST_WIDTH_PER_POINT * len(entries))] * bool(entries)
            + [PAIRED_WIDTH] * bool(paired))
  # The forest's row labels on its left, its numbers on its right.
  labels = LABELS_WIDTH * len(widths) + bool(paired) * INCHES_PER_CHARACTER * (
      PAIRED_LABEL_CHARACTERS + len("+00.00 ± 0.00"))
  legend_rows = math.ceil((len(curves) + len(levels)) / 2)
  figure, axes = pyplot.subplots(
      1, len(widths), squeeze=False, width_ratios=widths, layout="constrained",
      figsize=(sum(widths) + labels, PANEL_HEIGHT + LEGEND_ROW_HEIGHT * legend_rows))
  axes = list(axes[0])
  if curves:
    curve_axes = axes.pop(0)
    for label, curve, marker in zip(_run_labels(list(curves)), curves.values(),
                                    RUN_MARKERS * len(curves)):
      curve_axes.plot(list(curve), [100 * value for value in curve.values()], marker=marker,
                      markersize=3.5, linewidth=1.4, color=colours["leo"], label=label)
    for ((method, label), level), style in zip(levels.items(),
                                               BASELINE_DASHES * len(levels)):
      curve_axes.axhline(100 * level, color=colours[method], linestyle=style, linewidth=1.4,
                         label=f"{label} (val)")
    curve_axes.set(xlabel="training step", ylabel="validation accuracy (%)",
                   title="Meta-validation accuracy")
    curve_axes.grid(alpha=0.3)
    # Below the panels: the curves keep all their room.
    figure.legend(*curve_axes.get_legend_handles_labels(), loc="outside lower center",
                  ncols=2, fontsize="small", frameon=False)
  if entries:
    test_axes = axes.pop(0)
    for position, entry in enumerate(entries):
      test_axes.errorbar(position, 100 * entry.mean, yerr=100 * entry.half_width, fmt="o",
                         capsize=5, markersize=6, color=colours[entry.method])
    for position in range(1, len(entries)):
      if entries[position].setting != entries[position - 1].setting:
        # Another task shape has another chance level: a line keeps them apart.
        test_axes.axvline(position - 0.5, color="grey", linewidth=0.8, linestyle="--")
    test_axes.set_xticks(range(len(entries)), [entry.label for entry in entries],
                         fontsize="small")
    test_axes.set_xlim(-0.6, len(entries) - 0.4)
    test_axes.set(ylabel="test accuracy (%)", title="Meta-test accuracy, 95% CI")
    test_axes.grid(axis="y", alpha=0.3)
  if paired:
    paired_axes = axes.pop(0)
    positions = list(range(len(paired)))[::-1]  # The first entry on top, as the table's.
    for position, entry in zip(positions, paired):
      paired_axes.errorbar(100 * entry.mean, position, xerr=100 * entry.half_width, fmt="o",
                           capsize=4, markersize=5, color=colours[entry.method])
    paired_axes.axvline(0, color="grey", linewidth=1)  # Left of it, the baseline is better.
    paired_axes.set_yticks(positions, [entry.label for entry in paired], fontsize="small")
    paired_axes.set_ylim(-0.5, len(paired) - 0.5)
    # The numbers of the table's paired rows, beside the points they are.
    numbers = paired_axes.secondary_yaxis("right")
    numbers.set_yticks(positions, [interval(entry.mean, entry.half_width, signed=True)
                                   for entry in paired], fontsize="small")
    numbers.tick_params(length=0)
    paired_axes.set(xlabel="test accuracy difference (points), 95% CI",
                    title=f"Paired difference from {against.replace('_', ' ')}")
    paired_axes.grid(axis="x", alpha=0.3)
  image = io.BytesIO()
  figure.savefig(image, dpi=150, format=os.path.splitext(path)[1][1:] or "png")
  pyplot.close(figure)
  write_output("plot", path, image.getvalue())


def _check_writable(flag: str, path: Optional[str]):
  """Refuses, before any work, an output file whose folder does not exist."""
  folder = os.path.dirname(os.path.abspath(path)) if path else None
  if folder and not os.path.isdir(folder):
    raise utils.LeoError(f"--{flag}={path}: no folder {folder}; create it first")


def write_output(flag: str, path: str, contents: bytes):
  """Writes `path` whole, or leaves the old file (a full disk, a killed process)."""
  try:
    storage.atomic_write(path, contents)
  except OSError as error:
    raise utils.LeoError(f"--{flag}={path}: writing failed "
                         f"({error.strerror or error})") from None


def main(argv):
  values = flags.FLAGS
  paths = argv[1:]
  if not paths:
    raise utils.LeoError("usage: python -m tools.study.compare PATH... (result records or folders)")
  asked = [tuple(pair.split(",")) for pair in values.pair]
  for pair in asked:
    if len(pair) != 2:
      raise utils.LeoError(f"--pair={','.join(pair)}: expected two rows or records, A,B")
  for flag in ("output", "plot"):
    _check_writable(flag, values[flag].value)
  found = load_records(paths)
  if values.plot:
    plot(values.plot, find_runs(paths), found, values.reference, values.plot_against)
  if not found:
    if values.plot:
      return
    raise utils.LeoError(f"{' '.join(paths)}: no result records (JSON with \"record\": "
                         f"\"{records.RECORD_KIND}\") found")
  text = render_table(found, values.reference, asked,
                      command=" ".join(["python -m tools.study.compare"] + sys.argv[1:]))
  print(text, end="")
  if values.output:
    write_output("output", values.output, text.encode("utf-8"))


if __name__ == "__main__":
  flags.DEFINE_string("reference", "leo", "Method every pair is taken against ('' pairs all).")
  flags.DEFINE_multi_string("pair", [], "Two rows (R1,R4) or record files to pair or explain.")
  flags.DEFINE_string("output", None, "Also write the table to this file (e.g. RESULTS.md).")
  flags.DEFINE_string("plot", None, "Write the figure (validation curves, test accuracies, "
                      "paired differences from --plot_against).")
  flags.DEFINE_string("plot_against", "nearest_centroid", "The baseline the figure's paired "
                      "panel takes every other method's test records against.")
  utils.run_command(main, arguments="PATH...")
