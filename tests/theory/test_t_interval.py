"""theory.stats.t_mean_ci: the mean with Student's t interval over a few values (one per seed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.errors import InputError
from theory.stats import t_mean_ci

values = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=12)


def test_a_hand_computation():
    """[1, 2, 3]: mean 2, s = 1, t_{2, 0.975} = 4.302653 → 2 ± 4.302653 / √3."""
    got = t_mean_ci([1.0, 2.0, 3.0])
    assert got.estimate == 2.0 and got.level == 0.95
    assert got.high - 2.0 == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-12)
    assert 2.0 - got.low == pytest.approx(4.302652729749464 / math.sqrt(3), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(values=values, shift=st.floats(-100, 100))
def test_symmetric_about_the_mean_and_translation_equivariant(values, shift):
    got, moved = t_mean_ci(values), t_mean_ci(np.asarray(values) + shift)
    assert got.estimate == pytest.approx(np.mean(values), abs=1e-9)
    assert got.low <= got.estimate <= got.high
    assert got.high - got.estimate == pytest.approx(got.estimate - got.low, abs=1e-6)
    assert moved.estimate == pytest.approx(got.estimate + shift, abs=1e-6)
    assert moved.high - moved.low == pytest.approx(got.high - got.low, rel=1e-6, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(values=values)
def test_a_higher_level_is_wider(values):
    assert t_mean_ci(values, level=0.99).high - t_mean_ci(values, level=0.99).low >= \
        t_mean_ci(values, level=0.9).high - t_mean_ci(values, level=0.9).low - 1e-12


def test_one_value_has_no_interval_and_equal_values_a_point():
    one = t_mean_ci([0.25])
    assert one.estimate == 0.25 and math.isnan(one.low) and math.isnan(one.high)
    same = t_mean_ci([0.5, 0.5, 0.5])
    assert (same.low, same.estimate, same.high) == (0.5, 0.5, 0.5)
    for bad in ([], [1.0, float("nan")]):
        with pytest.raises(InputError):
            t_mean_ci(bad)
