# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""tools/study/helps.py: the "When LEO helps" table from hand-made records."""

import pytest

from test_compare import study, write_record
from tools.study import helps
import utils


def test_a_row_pairs_leo_with_each_baseline_over_seeds_and_names_the_best(tmp_path):
  study(tmp_path)  # LEO 70, 72, 74 and nearest centroid 65, 66, 67, seeds 0-2.
  write_record(tmp_path / "baselines", "simpleshot", 0, (0.95, 0.85))  # 90, seed 0 only.
  cells = helps.row("tiny", [str(tmp_path)])
  header = ["data", "task", "input", "LEO"] + list(helps.METHODS[1:]) + ["verdict"]
  by_column = dict(zip(header, cells))
  assert by_column["input"] == "none"
  assert by_column["LEO"] == "72.00 ± 4.97 (3 seeds; val 80.00%)"
  assert by_column["nearest_centroid"] == "66.00 ± 2.48; LEO − it +6.00 ± 2.48 (3 seeds)"
  # 1.96 * std(ddof=1) 0.070711 / sqrt(2): ± 9.80.
  assert by_column["simpleshot"] == "90.00 ± 9.80 (seed 0); LEO − it -20.00 ± 0.00 (seed 0)"
  assert by_column["logistic_regression"] == "not run"
  assert by_column["verdict"] == "LEO below simpleshot"


def test_records_of_two_settings_in_one_row_are_a_one_line_error(tmp_path):
  study(tmp_path)
  write_record(tmp_path / "five", "leo", 0, (0.9, 0.8), shots=5)
  with pytest.raises(utils.LeoError, match="expected the test records of one setting"):
    helps.row("mixed", [str(tmp_path)])


def test_a_row_names_leos_embedding_transform_and_holds_one(tmp_path):
  config = {"data_config": {"embedding_transform": "cl2n"}}
  for seed, accuracies in enumerate(((0.8, 0.6), (0.9, 0.7))):
    write_record(tmp_path / f"cl2n-seed{seed}", "leo", seed, accuracies, config=config)
  write_record(tmp_path / "baselines", "nearest_centroid", 0, (0.5, 0.5))
  assert helps.row("cl2n", [str(tmp_path)])[2] == "cl2n"
  write_record(tmp_path / "none-seed2", "leo", 2, (0.8, 0.6))
  with pytest.raises(utils.LeoError, match="LEO records of 2 embedding transforms \\(cl2n, "
                     "none\\), expected one a row"):
    helps.row("mixed", [str(tmp_path)])
