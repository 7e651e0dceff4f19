# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""Tests of tools/study/compare.py on hand-made result records (no training needed)."""

import json
import os

import pytest

import inprocess
from tools.study import compare
import utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
T_975_2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom.


def write_record(folder, method="leo", seed=0, task_accuracies=(0.8, 0.6), tasks_id=None,
                 num_classes=5, shots=1, queries=15, split="test", step=3000, trained=(5, 1),
                 config=None):
  """Writes a record of the records-spec format to <folder>/results/ and returns its path.

  Records with equal (tasks_id, split, shape, queries, number of tasks, seed) get equal task
  fingerprints; `tasks_id` defaults to the dataset, as two honest evaluations would.
  """
  num_tasks = len(task_accuracies)
  fingerprint = json.dumps([tasks_id or "icons", split, num_classes, shots, queries, num_tasks,
                            seed])
  name = f"{method}-{split}-{num_classes}way{shots}shot-q{queries}-t{num_tasks}-seed{seed}"
  record = {
      "record": "leo-result", "version": 1, "method": method, "split": split,
      "num_classes": num_classes, "num_tr_examples_per_class": shots,
      "queries_per_class": queries, "num_tasks": num_tasks, "seed": seed,
      "accuracy": sum(task_accuracies) / num_tasks,
      "ci95": utils.mean_and_confidence_interval(task_accuracies)[1],
      "task_accuracies": list(task_accuracies), "task_fingerprint": fingerprint,
      "embeddings_digest": "e" * 64, "dataset_name": "icons", "embedding_crop": "center",
      "train_on_val": False,
      "config": dict(config or {"inner_model_config": {"inner_lr": 1.0}, "method": method},
                     seed=seed),
      "trained": None if method != "leo" else {
          "num_classes": trained[0], "num_tr_examples_per_class": trained[1], "step": step,
          "checkpoint": f"{folder}/model.ckpt-{step}", "valid_accuracy": 0.8},
      "summary": "", "command": ["runner.py"], "versions": {}, "created": "", "seconds": 1.0}
  if method == "leo":
    name += f"-step{step}"
  os.makedirs(os.path.join(folder, "results"), exist_ok=True)
  path = os.path.join(folder, "results", name + ".json")
  with open(path, "w") as f:
    json.dump(record, f, indent=2, sort_keys=True)
  return path


def run_compare(*args):
  """`python -m tools.study.compare *args`, run in this process."""
  return inprocess.run(["-m", "tools.study.compare", *args], cwd=ROOT)


def rows_of(text):
  """{first cell: cells} of the markdown table in `text`."""
  rows = [line.strip("|").split(" | ") for line in text.splitlines() if line.startswith("| ")]
  return {cells[0].strip(): [cell.strip() for cell in cells] for cells in rows[1:]}


def study(root, seeds_leo=(0.70, 0.72, 0.74), seeds_baseline=(0.65, 0.66, 0.67)):
  """LEO and nearest_centroid, seeds 0, 1, 2, each seed's pair on identical tasks.

  Every record has two tasks whose mean is the seed's accuracy (difference 0.1 between them).
  """
  for seed, (leo, baseline) in enumerate(zip(seeds_leo, seeds_baseline)):
    write_record(root / f"leo-seed{seed}", "leo", seed, (leo + 0.05, leo - 0.05))
    write_record(root / "baselines", "nearest_centroid", seed, (baseline + 0.05, baseline - 0.05))


# ---- The statistics, by hand. ----

def test_t_interval_of_three_seeds_uses_student_t_with_two_degrees_of_freedom():
  mean, half_width = compare.t_interval([0.70, 0.72, 0.74])
  assert mean == pytest.approx(0.72)
  # std(ddof=1) = 0.02, / sqrt(3) = 0.011547, * t_{0.975,2} = 4.302653: 0.049683.
  assert half_width == pytest.approx(T_975_2 * 0.02 / 3 ** 0.5)
  assert half_width == pytest.approx(0.049683, abs=1e-6)


def test_paired_difference_is_the_normal_interval_of_the_per_task_differences(tmp_path):
  leo = compare.load_records([write_record(tmp_path / "run", "leo", 0, (1.0, 0.8, 0.6, 1.0))])[0]
  baseline = compare.load_records(
      [write_record(tmp_path / "base", "logistic_regression", 0, (0.8, 0.8, 0.4, 0.6))])[0]
  mean, half_width = compare.paired_difference(leo, baseline)
  # Differences 0.2, 0, 0.2, 0.4: mean 0.2, std(ddof=1) = sqrt(0.08 / 3) = 0.163299.
  assert mean == pytest.approx(0.2)
  assert half_width == pytest.approx(1.959964 * 0.163299 / 2, abs=1e-6)


# ---- The table. ----

def test_a_leo_and_a_baseline_record_on_identical_tasks_are_paired(tmp_path):
  write_record(tmp_path / "run", "leo", 0, (1.0, 0.8, 0.6, 1.0))
  write_record(tmp_path / "base", "logistic_regression", 0, (0.8, 0.8, 0.4, 0.6))
  result = run_compare(tmp_path)
  assert result.returncode == 0, result.stderr
  rows = rows_of(result.stdout)
  assert rows["R1"][1:3] == ["record", "leo"] and rows["R1"][8] == "step 3000"
  assert rows["R1"][9] == "85.00 ± 18.77"  # 1.96 * std(ddof=1) 0.191485 / sqrt(4).
  assert rows["R2"][1:3] == ["record", "logistic_regression"]
  assert rows["R1 − R2"][1:3] == ["paired", "leo − logistic_regression"]
  assert rows["R1 − R2"][3:8] == ["test", "5-way 1-shot", "15", "4", "0"]
  assert rows["R1 − R2"][9] == "+20.00 ± 16.00"  # 100 * (0.2 ± 0.160031).
  assert "not paired" not in result.stdout


def test_records_on_different_tasks_are_never_paired_and_one_line_says_why(tmp_path):
  write_record(tmp_path / "run", "leo", 0, (0.8, 0.6))
  write_record(tmp_path / "base", "nearest_centroid", 1, (0.7, 0.5))  # Another seed.
  write_record(tmp_path / "base", "nearest_centroid", 0, (0.7, 0.5, 0.6))  # 3 tasks.
  write_record(tmp_path / "run", "leo", 0, (0.5, 0.5), num_classes=10, shots=5)
  write_record(tmp_path / "other", "logistic_regression", 0, (0.5, 0.5), tasks_id="mini")
  records = compare.load_records([tmp_path])
  ordered, rows, notes = compare.compare(records, asked=[("R1", "R5")])
  ids = {(r.fields["method"], r.fields["seed"], r.fields["num_tasks"], r.fields["num_classes"]):
         f"R{i + 1}" for i, r in enumerate(ordered)}
  assert not [row for row in rows if row[1] != "record"]
  leo = ids["leo", 0, 2, 5]
  assert notes == [
      f"{leo} and R5 are not paired: different task shape (5-way 1-shot vs 10-way 5-shot).",
      f"{ids['logistic_regression', 0, 2, 5]} is not paired with any leo record; closest "
      f"{leo}: different tasks although split, dataset, shape, queries, tasks and seed agree "
      f"(task fingerprints differ).",
      f"{ids['nearest_centroid', 1, 2, 5]} is not paired with any leo record; closest {leo}: "
      f"different seed (0 vs 1).",
      f"{ids['nearest_centroid', 0, 3, 5]} is not paired with any leo record; closest {leo}: "
      f"different number of tasks (2 vs 3)."]
  assert ids["leo", 0, 2, 10] == "R5"


def test_three_seeds_are_aggregated_with_the_t_interval_and_paired_seed_by_seed(tmp_path):
  study(tmp_path)
  result = run_compare(tmp_path, "--output", tmp_path / "RESULTS.md")
  assert result.returncode == 0, result.stderr
  rows = rows_of(result.stdout)
  assert [rows[f"R{i}"][2] for i in range(1, 7)] == ["leo"] * 3 + ["nearest_centroid"] * 3
  assert [rows[f"R{i}"][7] for i in range(1, 7)] == ["0", "1", "2"] * 2
  leo = rows["R1, R2, R3"]
  assert leo[1:3] == ["3 seeds", "leo"] and leo[6:8] == ["3 × 2", "0, 1, 2"]
  assert leo[9:] == ["72.00 ± 4.97", "70.00 to 74.00, sd 2.00"]  # 0.72 ± 0.049683.
  assert rows["R4, R5, R6"][9] == "66.00 ± 2.48"  # 0.66 ± 4.302653 * 0.01 / sqrt(3).
  # Differences 0.05, 0.06, 0.07: 0.06 ± 0.024841.
  over_seeds = rows["R1 − R4, R2 − R5, R3 − R6"]
  assert over_seeds[1:3] == ["paired, 3 seeds", "leo − nearest_centroid"]
  assert over_seeds[9:] == ["+6.00 ± 2.48", "+5.00 to +7.00, sd 1.00"]
  assert [rows[f"R{i} − R{i + 3}"][9] for i in (1, 2, 3)] == ["+5.00 ± 0.00",
                                                             "+6.00 ± 0.00", "+7.00 ± 0.00"]
  assert "R3 − R4" not in rows  # Seeds 2 and 0 are on different tasks.
  with open(tmp_path / "RESULTS.md") as f:
    assert f.read() == result.stdout
  assert "- R1: `" in result.stdout and "leo-seed0/results/leo-test-5way1shot" in result.stdout


def test_a_changed_training_flag_is_not_aggregated_with_other_seeds(tmp_path):
  write_record(tmp_path / "a", "leo", 0, (0.7, 0.7))
  write_record(tmp_path / "b", "leo", 1, (0.8, 0.8), config={"inner_model_config": {
      "inner_lr": 0.5}})
  _, rows, _ = compare.compare(compare.load_records([tmp_path]))
  assert [row[1] for row in rows] == ["record", "record"]


def test_baseline_seeds_aggregate_whatever_leo_values_their_flags_held(tmp_path):
  """A baseline reads no LEO value: records made under other presets are still its seeds."""
  for seed, inner_lr in ((0, 1.0), (1, 4.7), (2, 4.7)):
    write_record(tmp_path / "base", "nearest_centroid", seed, (0.6, 0.6), config={
        "inner_model_config": {"inner_lr": inner_lr}, "data_config": {"name": "icons"}})
  write_record(tmp_path / "other", "nearest_centroid", 3, (0.6, 0.6), config={
      "inner_model_config": {"inner_lr": 1.0}, "data_config": {"name": "other"}})
  _, rows, _ = compare.compare(compare.load_records([tmp_path]))
  assert [row[:3] for row in rows if "seeds" in row[1]] == [
      ["R1, R2, R3", "3 seeds", "nearest_centroid"]]


def test_another_test_shape_than_trained_is_shown_in_the_checkpoint_column(tmp_path):
  write_record(tmp_path / "run", "leo", 0, num_classes=10, shots=5, step=200)
  _, rows, _ = compare.compare(compare.load_records([tmp_path]))
  assert rows[0][4] == "10-way 5-shot" and rows[0][8] == "step 200, trained 5-way 1-shot"


def test_an_empty_reference_pairs_every_two_records_on_identical_tasks(tmp_path):
  write_record(tmp_path / "base", "logistic_regression", 0, (0.9, 0.7))
  write_record(tmp_path / "base", "nearest_centroid", 0, (0.6, 0.6))
  _, rows, notes = compare.compare(compare.load_records([tmp_path]), reference="")
  assert [row[:3] for row in rows if row[1] == "paired"] == [
      ["R1 − R2", "paired", "logistic_regression − nearest_centroid"]]
  assert rows[-1][9] == "+20.00 ± 19.60"  # Differences 0.3, 0.1: 0.2 ± 1.96 * 0.1.
  assert notes == []
  _, rows, _ = compare.compare(compare.load_records([tmp_path]))  # No leo record to pair.
  assert [row[1] for row in rows] == ["record", "record"]


def test_two_checkpoints_of_one_seed_are_not_aggregated_and_a_note_says_why(tmp_path):
  write_record(tmp_path / "run", "leo", 0, (0.7, 0.7), step=100)
  write_record(tmp_path / "run", "leo", 0, (0.8, 0.8), step=200)
  _, rows, notes = compare.compare(compare.load_records([tmp_path]))
  assert [(row[1], row[8]) for row in rows] == [("record", "step 100"), ("record", "step 200"),
                                                ("paired", "")]
  assert notes == ["R1, R2 are not aggregated over seeds: a seed appears twice (another "
                   "checkpoint of the same run?)."]


def test_pairing_an_unknown_row_is_a_one_line_error(tmp_path):
  write_record(tmp_path / "run", "leo", 0)
  result = run_compare(tmp_path, "--pair=R1,R9")
  assert result.returncode == 2 and result.stderr == (
      "tools.study.compare: error: --pair=R1,R9: expected two different row ids (R1..R1) or "
      "record files among those compared\n")


# ---- Inputs. ----

def test_other_json_files_are_skipped_and_each_record_counted_once(tmp_path):
  path = write_record(tmp_path / "run", "leo", 0)
  (tmp_path / "run" / "config.json").write_text(json.dumps({"seed": 0}))
  os.makedirs(tmp_path / "run" / "best_checkpoint")
  (tmp_path / "run" / "best_checkpoint" / "best.json").write_text(json.dumps({"step": 1}))
  (tmp_path / "run" / "notes.json").write_text('{"draft": ')  # A user's, outside results/.
  assert [record.path for record in compare.load_records([tmp_path, path])] == [
      str(tmp_path / "run" / "results" / os.path.basename(path))]


def test_a_truncated_record_is_a_one_line_error_naming_the_file(tmp_path):
  path = write_record(tmp_path / "run", "leo", 0)
  with open(path) as f:
    text = f.read()
  with open(path, "w") as f:
    f.write(text[: len(text) // 2])
  result = run_compare(tmp_path)
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr.count("\n") == 1 and result.stderr.startswith(
      f"tools.study.compare: error: {path}: damaged or unreadable (Unterminated string")
  assert result.stderr.endswith("; it is a result record: rerun the evaluation that made it\n")


def test_a_record_without_its_per_task_accuracies_is_a_one_line_error(tmp_path):
  path = write_record(tmp_path / "run", "leo", 0)
  with open(path) as f:
    record = json.load(f)
  del record["task_accuracies"]
  with open(path, "w") as f:
    json.dump(record, f)
  with pytest.raises(compare.utils.LeoError, match=f"^{path}: 'task_accuracies' is missing, "
                     "expected an array$"):
    compare.load_records([tmp_path])


@pytest.mark.parametrize("field, value, expected", [
    ("task_accuracies", ["0.8", "0.6"], r"task_accuracies holds '0.8', expected numbers in"),
    ("task_accuracies", [0.8, float("nan")], "task_accuracies holds nan, expected numbers"),
    ("accuracy", float("inf"), r"accuracy holds inf, expected numbers in \[0, 1\]"),
    ("ci95", float("nan"), "ci95 holds nan"),
    ("task_accuracies", [], "0 task_accuracies for num_tasks=0, expected one per task and "
     "at least one")], ids=["strings", "nan-task", "inf", "nan-ci", "no-task"])
def test_a_record_with_impossible_numbers_is_a_one_line_error(tmp_path, field, value, expected):
  path = write_record(tmp_path / "run", "leo", 0)
  with open(path) as f:
    record = json.load(f)
  record[field] = value
  record["num_tasks"] = len(record["task_accuracies"])
  with open(path, "w") as f:
    json.dump(record, f)
  with pytest.raises(compare.utils.LeoError, match=f"^{path}: {expected}"):
    compare.load_records([tmp_path])


def test_an_output_into_a_missing_folder_is_refused_before_the_table(tmp_path):
  write_record(tmp_path / "run", "leo", 0)
  missing = tmp_path / "no-such-folder" / "RESULTS.md"
  result = run_compare(tmp_path, f"--output={missing}")
  assert result.returncode == 2 and result.stdout == ""
  assert result.stderr == (f"tools.study.compare: error: --output={missing}: no folder "
                           f"{missing.parent}; create it first\n")


def test_the_output_file_is_whole_or_the_old_one(tmp_path, monkeypatch):
  write_record(tmp_path / "run", "leo", 0)
  path = tmp_path / "RESULTS.md"
  path.write_text("old table\n")
  def full_disk(descriptor):  # The new table's bytes were written; they cannot be stored.
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(os, "fsync", full_disk)
  result = run_compare(tmp_path / "run", f"--output={path}")
  assert result.returncode == 2 and result.stderr == (
      f"tools.study.compare: error: --output={path}: writing failed (No space left on device)\n")
  assert path.read_text() == "old table\n" and sorted(os.listdir(tmp_path)) == [
      "RESULTS.md", "run"]


def test_no_record_is_a_one_line_error(tmp_path):
  result = run_compare(tmp_path)
  assert result.returncode == 2 and result.stderr.count("\n") == 1
  assert "no result records" in result.stderr


# ---- The picture. ----

def test_validation_curve_reads_validations_jsonl_last_step_wins_torn_line_ignored(tmp_path):
  lines = [{"step": 100, "accuracy": 0.5}, {"step": 200, "accuracy": 0.6},
           {"step": 200, "accuracy": 0.65}]
  (tmp_path / "validations.jsonl").write_text(
      "".join(json.dumps(line) + "\n" for line in lines) + '{"step": 300, "acc')
  assert compare.validation_curve(str(tmp_path)) == {100: 0.5, 200: 0.65}


def test_plot_writes_a_png_of_the_event_files_curves_and_the_test_accuracies(tmp_path):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  study(tmp_path)
  for seed in range(3):
    writer = tf.summary.create_file_writer(str(tmp_path / f"leo-seed{seed}"))
    with writer.as_default():
      for step in range(0, 3001, 500):
        tf.summary.scalar(compare.VALID_ACCURACY_TAG, 0.5 + 0.07 * step / 1000 + 0.01 * seed,
                          step=step)
        tf.summary.scalar("metavalid_loss", 1.0, step=step)
    writer.close()
  assert compare.validation_curve(str(tmp_path / "leo-seed2"))[1000] == pytest.approx(0.59)
  figure = tmp_path / "study.png"
  result = run_compare(tmp_path, f"--plot={figure}")
  assert result.returncode == 0, result.stderr
  assert result.stderr == ""  # TF's start-up chatter is silenced.
  with open(figure, "rb") as f:
    png = f.read()
  assert png.startswith(PNG_SIGNATURE) and len(png) > 20_000


def test_a_record_trained_across_several_commits_is_marked(tmp_path):
  one_piece = write_record(tmp_path / "one", step=3000)
  # Made before records listed their commits: the run's versions.json beside results/ says.
  # Sessions from step 0 and 2000 trained the step-3000 checkpoint; the one at 3000 did not.
  write_record(tmp_path / "extended", seed=1, step=3000)
  sessions = [{"leo": "a" * 40, "step": 0}, {"leo": "b" * 40, "step": 2000},
              {"leo": "c" * 40, "step": 3000}]
  with open(tmp_path / "extended" / "versions.json", "w") as f:
    json.dump({"sessions": sessions}, f)
  with open(one_piece) as f:
    record = json.load(f)
  record["trained"]["leo_commits"] = ["d" * 40]
  with open(one_piece, "w") as f:
    json.dump(record, f)
  records = compare.load_records([str(tmp_path)])
  by_seed = {r.fields["seed"]: r for r in records}
  assert compare.record_commits(by_seed[0]) == ["d" * 40]
  assert compare.record_commits(by_seed[1]) == ["a" * 40, "b" * 40]
  text = compare.render_table(records)
  rows = rows_of(text)
  assert "2 commits" in " ".join(rows["R2"]) and "commits" not in " ".join(rows["R1"])
  assert ("R2 was trained across 2 leo commits (aaaaaaaaaaaa, bbbbbbbbbbbb): a run made in one "
          "piece at one commit may differ from it in the last digits.") in text


def test_plot_has_a_paired_panel_against_the_baseline_and_its_validation_level(
    tmp_path, monkeypatch):
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  study(tmp_path)
  write_record(tmp_path / "baselines-val", "nearest_centroid", 0, (0.61, 0.63), split="val")
  (tmp_path / "leo-seed0" / "validations.jsonl").write_text(
      "".join(json.dumps({"step": step, "accuracy": 0.5 + step / 10000}) + "\n"
              for step in (0, 500, 1000)))
  figures = []
  monkeypatch.setattr(pyplot, "close", figures.append)
  records = compare.load_records([str(tmp_path)])
  compare.plot(str(tmp_path / "study.png"), compare.find_runs([str(tmp_path)]), records)
  curves, accuracies, paired = figures[0].axes
  assert paired.get_title() == "Paired difference from nearest centroid"
  # LEO − nearest centroid in seeds 0, 1, 2: +5, +6, +7 points.
  (x, _), = paired.lines[0].get_xydata()
  assert x == pytest.approx(6.0)
  assert [label.get_text() for label in paired.get_yticklabels()] == ["leo, 5-way 1-shot, 3 seeds"]
  levels = [line.get_ydata()[0] for line in curves.lines if line.get_linestyle() != "-"]
  assert levels == [pytest.approx(62.0)]  # The baseline's validation accuracy, as a line.
  assert accuracies.get_title() == "Meta-test accuracy, 95% CI"


def test_plot_is_sized_to_its_panels_with_one_colour_per_method_and_the_forests_numbers(
    tmp_path, monkeypatch):
  from matplotlib import colors, pyplot  # pylint: disable=g-import-not-at-top
  study(tmp_path)
  for method, seed in (("logistic_regression", 0), ("simpleshot", 0)):
    write_record(tmp_path / "baselines", method, seed, (0.68, 0.62))
  write_record(tmp_path / "baselines-val", "simpleshot", 0, (0.61, 0.63), split="val")
  write_record(tmp_path / "baselines-val", "nearest_centroid", 0, (0.60, 0.62), split="val")
  (tmp_path / "leo-seed0" / "validations.jsonl").write_text(
      "".join(json.dumps({"step": step, "accuracy": 0.5 + step / 10000}) + "\n"
              for step in (0, 500, 1000)))
  figures = []
  monkeypatch.setattr(pyplot, "close", figures.append)
  compare.plot(str(tmp_path / "study.png"), compare.find_runs([str(tmp_path)]),
               compare.load_records([str(tmp_path)]))
  figure, = figures
  # Three panels of 4 test points: 4.6 + 3.2 + 2.6 inches of data and their labels, at 150
  # dpi; the old layout's fixed widths and shared spacing made it 2775 px wide.
  assert figure.get_figwidth() * 150 < 2300
  curves, accuracies, paired = figure.axes
  hex_of = lambda artist: colors.to_hex(artist.get_color())
  points_of = lambda axes: [hex_of(line) for line in axes.lines if line.get_marker() == "o"]
  # The test panel: one point per method, left to right as the table (LEO first).
  points = points_of(accuracies)
  assert len(points) == 4 and len(set(points)) == 4
  leo, logistic, nearest, simpleshot = points
  # The same method has the same colour in every panel: curves, baselines' levels, forest.
  assert {hex_of(line) for line in curves.lines if line.get_linestyle() == "-"} == {leo}
  assert sorted(hex_of(line) for line in curves.lines if line.get_linestyle() != "-") == sorted(
      [nearest, simpleshot])
  assert points_of(paired) == [leo, logistic, simpleshot]
  # Beside each row of the forest, its mean difference ± 95% CI in points (LEO: +6 over the
  # seeds' +5, +6, +7; one seed of the others: the paired interval of its two tasks).
  numbers, = paired.child_axes
  texts = [label.get_text() for label in numbers.get_yticklabels()]
  assert texts[0] == compare.interval(0.06, compare.t_interval([0.05, 0.06, 0.07])[1],
                                      signed=True)
  assert texts[0].startswith("+6.00 ± ") and len(texts) == 3
  # The legend is the figure's, outside the panels, not the curves panel's.
  assert curves.get_legend() is None and len(figure.legends) == 1
