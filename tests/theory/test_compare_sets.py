"""theory.stats.compare_sets — the one set-vs-reference comparison — and Interval.to_dict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.stats import (Interval, bootstrap_mean_ci, compare_proximity, compare_sets, random_set_null)

FAST = dict(n_permutations=200, n_bootstrap=200, n_null=100)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(8, 40), shift=st.floats(-1, 1))
def test_compare_sets_is_its_parts(seed, n, shift):
    """Each field equals the function it delegates to, on the same items and seed."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=n)
    values[: n // 3] += shift
    a, b, pool = np.arange(n // 3), np.arange(n // 3, 2 * n // 3), np.arange(n)
    got = compare_sets(values, a, b, null_pool=pool, seed=seed, **FAST)
    assert got.comparison == compare_proximity(values[a], values[b], n_permutations=200, n_bootstrap=200, seed=seed)
    assert got.mean_a == bootstrap_mean_ci(values[a], n_resamples=200, seed=seed)
    assert got.mean_b == bootstrap_mean_ci(values[b], n_resamples=200, seed=seed)
    null = random_set_null(lambda idx: float(values[idx].mean()), float(values[a].mean()), pool=pool,
                           set_size=a.size, n_draws=100, seed=seed)
    assert got.null_a == null
    assert got.mean_a.estimate == pytest.approx(values[a].mean())


def test_a_set_far_above_the_rest_is_significant_and_beats_the_null():
    values = np.concatenate([np.linspace(0.8, 0.9, 10), np.linspace(0.0, 0.3, 30)])
    got = compare_sets(values, np.arange(10), np.arange(10, 40), null_pool=np.arange(40), seed=1, **FAST)
    assert got.comparison.mannwhitney_p < 1e-4 and got.comparison.cliffs_delta == 1.0
    assert got.comparison.difference.low > 0.4
    assert got.null_a.p_value < 0.05 and got.null_b.p_value > 0.5


def test_without_a_pool_there_is_no_null():
    values = np.arange(10.0)
    got = compare_sets(values, [0, 1, 2], [5, 6, 7], **FAST)
    assert got.null_a is None and got.null_b is None


def test_interval_to_dict_is_the_one_serialisation():
    assert Interval(1.0, 0.5, 1.5, 0.9).to_dict() == {"estimate": 1.0, "low": 0.5, "high": 1.5, "level": 0.9}
