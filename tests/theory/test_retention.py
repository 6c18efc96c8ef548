"""theory.retention.task_retention: 1 for the undefended fine-tune, 0 for the base model, linear in the arm's
loss between them, invariant to the order of units; NaN when nothing was learned; bad shapes are InputErrors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from theory.errors import InputError
from theory.retention import task_retention

losses = st.lists(st.floats(0.5, 5.0), min_size=1, max_size=8)


@given(losses, st.lists(st.floats(0.01, 1.0), min_size=8, max_size=8), st.floats(-0.5, 1.5), st.integers(0, 99))
def test_retention_is_one_for_none_zero_for_base_and_linear_between(base, drop, t, seed):
    base = np.array(base)
    none = base - np.array(drop[:len(base)])
    arm = base - t * (base - none)
    assert task_retention(base, none, none, seed=seed).estimate == pytest.approx(1.0)
    assert task_retention(base, base, none, seed=seed).estimate == pytest.approx(0.0, abs=1e-12)
    got = task_retention(base, arm, none, seed=seed)
    assert got.estimate == pytest.approx(t, abs=1e-9)
    assert got.low <= got.estimate + 1e-9 and got.estimate <= got.high + 1e-9
    order = np.random.default_rng(seed).permutation(len(base))
    assert task_retention(base[order], arm[order], none[order], seed=seed).estimate == pytest.approx(got.estimate)


def test_retention_is_nan_when_the_undefended_fine_tune_learned_nothing():
    assert math.isnan(task_retention([1.0, 2.0], [1.0, 2.0], [1.5, 2.0]).estimate)


def test_retention_rejects_unequal_or_non_finite_losses():
    with pytest.raises(InputError, match="equal-length"):
        task_retention([1.0, 2.0], [1.0], [0.5, 1.0])
    with pytest.raises(InputError, match="NaN"):
        task_retention([1.0, float("nan")], [1.0, 1.0], [0.5, 1.0])
