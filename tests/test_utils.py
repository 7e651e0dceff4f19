"""utils.py: confidence intervals, the CPU model."""

import math

import pytest

import utils


def test_confidence_interval_is_1_96_standard_errors():
  values = [0.2, 0.4, 0.6, 0.8]
  mean, half_width = utils.mean_and_confidence_interval(values)
  std = math.sqrt(sum((v - 0.5) ** 2 for v in values) / 3)  # Sample std, ddof=1.
  assert mean == pytest.approx(0.5)
  assert half_width == pytest.approx(1.959963984540054 * std / 2)
  assert utils.mean_and_confidence_interval([0.7]) == (0.7, 0.0)
  with pytest.raises(ValueError):
    utils.mean_and_confidence_interval([])


def test_cpu_model_names_a_processor():
  assert isinstance(utils.cpu_model(), str) and utils.cpu_model()
