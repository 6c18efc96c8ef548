"""theory.selection: contrast criteria (dense == sparse, against numpy/scipy), top-k selection, held-out check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from theory.errors import InputError
from theory.selection import (CRITERIA, column_moments, contrast_scores, top_k_features, validate_selection)


@st.composite
def activation_pairs(draw):
    """Two non-negative, sparse-ish activation matrices with the same number of features."""
    n_features = draw(st.integers(1, 12))
    n_a, n_b = draw(st.integers(2, 9)), draw(st.integers(2, 9))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    p = draw(st.sampled_from([0.1, 0.5, 1.0]))

    def acts(n):
        values = torch.rand(n, n_features, generator=gen, dtype=torch.float64) * 3
        return values * (torch.rand(n, n_features, generator=gen, dtype=torch.float64) < p)

    return acts(n_a), acts(n_b)


@given(activation_pairs(), st.sampled_from(CRITERIA))
def test_sparse_input_gives_the_dense_scores(pair, criterion):
    a, b = pair
    dense = contrast_scores(a, b, criterion)
    sparse = contrast_scores(a.to_sparse(), b.to_sparse(), criterion)
    torch.testing.assert_close(sparse, dense, rtol=1e-9, atol=1e-9)


@given(activation_pairs(), st.sampled_from(CRITERIA))
def test_contrast_is_antisymmetric(pair, criterion):
    a, b = pair
    torch.testing.assert_close(contrast_scores(a, b, criterion), -contrast_scores(b, a, criterion))


@given(activation_pairs())
def test_criteria_match_numpy_and_scipy(pair):
    a, b = (x.numpy() for x in pair)
    np.testing.assert_allclose(contrast_scores(*pair, "mean_diff").numpy(), a.mean(0) - b.mean(0), atol=1e-12)
    np.testing.assert_allclose(contrast_scores(*pair, "freq_diff").numpy(), (a > 0).mean(0) - (b > 0).mean(0),
                               atol=1e-12)
    varied = (a.var(0, ddof=1) > 1e-6) & (b.var(0, ddof=1) > 1e-6)
    t = stats.ttest_ind(a, b, equal_var=False).statistic
    np.testing.assert_allclose(contrast_scores(*pair, "welch_t").numpy()[varied], t[varied], rtol=1e-6)


@given(activation_pairs(), st.booleans())
def test_correlation_is_scipys_point_biserial_r_with_the_dataset_label(pair, add_constant):
    """r_j = pointbiserialr(label, a_j) over the pooled samples (label 1 on A, 0 on B); a constant column (scipy:
    NaN) scores 0."""
    a, b = pair
    if add_constant:
        a, b = torch.cat([a, torch.full((len(a), 1), 1.5, dtype=a.dtype)], 1), \
            torch.cat([b, torch.full((len(b), 1), 1.5, dtype=b.dtype)], 1)
    scores = contrast_scores(a, b, "correlation").numpy()
    pooled = torch.cat([a, b]).numpy()
    label = np.r_[np.ones(len(a)), np.zeros(len(b))]
    for j in range(pooled.shape[1]):
        if np.ptp(pooled[:, j]) == 0:
            assert scores[j] == 0.0
        else:
            assert scores[j] == pytest.approx(stats.pointbiserialr(label, pooled[:, j]).statistic, rel=1e-9,
                                              abs=1e-12), j
    assert np.all(np.abs(scores) <= 1 + 1e-12)


def test_column_moments_variance_is_unbiased():
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 2.0]])
    m = column_moments(x.to_sparse())
    torch.testing.assert_close(m.variance, torch.tensor([4.0, 4.0 / 3.0], dtype=torch.float64))
    torch.testing.assert_close(m.frac_active, torch.tensor([1.0, 1.0 / 3.0], dtype=torch.float64))


@given(st.lists(st.sampled_from([-1.0, 0.0, 0.5, 1.0, 2.0]), min_size=1, max_size=15), st.integers(1, 20))
def test_top_k_keeps_positive_scores_best_first_ties_by_index(values, k):
    scores = torch.tensor(values, dtype=torch.float64)
    if not (scores > 0).any():
        with pytest.raises(InputError, match="empty"):
            top_k_features(scores, k)
        return
    chosen = top_k_features(scores, k).tolist()
    assert len(chosen) == min(k, int((scores > 0).sum()))
    assert all(values[i] > 0 for i in chosen)
    keys = [(-values[i], i) for i in chosen]
    assert keys == sorted(keys)  # descending score, ascending index on ties
    worst_kept = min(values[i] for i in chosen)
    assert all(values[j] <= worst_kept for j in range(len(values)) if j not in chosen)


def test_bad_inputs_are_input_errors():
    a = torch.ones(3, 4)
    with pytest.raises(InputError, match="at least 1"):
        top_k_features(torch.ones(4), 0)
    with pytest.raises(InputError, match="criterion"):
        contrast_scores(a, a, "ratio")
    with pytest.raises(InputError, match="number of features"):
        contrast_scores(a, torch.ones(3, 5))
    with pytest.raises(InputError, match="no samples"):
        contrast_scores(torch.ones(0, 4), a)
    with pytest.raises(InputError, match="NaN"):
        contrast_scores(torch.full((2, 4), float("nan")), a)
    with pytest.raises(InputError, match="2 samples"):
        contrast_scores(torch.ones(1, 4), a, "welch_t")
    with pytest.raises(InputError, match="more active in harmful than in harmless"):
        top_k_features(contrast_scores(a, a), 3, what="harmful", than="harmless")


def test_validate_selection_counts_held_out_replication():
    check = validate_selection(torch.tensor([0.5, -0.2, 0.1, 0.0]), torch.tensor([0, 1, 2]))
    assert check.n_selected == 3
    assert check.replication == pytest.approx(2 / 3)
    assert check.mean_selected == pytest.approx(0.4 / 3)
    assert check.mean_all == pytest.approx(0.1)
