"""theory.model_diff: the paired feature diff of the same probes under two models (a model against itself is zero,
swapping the models negates it, the diff is the difference of the means, frequencies count firing probes, the
standard error is the paired one), the ranking, and the top-k overlap against a hand count and scipy."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.errors import InputError
from theory.model_diff import feature_diff, top_overlap

DTYPE = torch.float64


def _acts(seed: int, n: int, f: int) -> torch.Tensor:
    """Sparse non-negative activations (about half zero), like an SAE's."""
    g = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, f, generator=g, dtype=DTYPE))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 9), f=st.integers(1, 7))
def test_properties(seed, n, f):
    a, b = _acts(seed, n, f), _acts(seed + 1, n, f)
    d = feature_diff(a, b)
    torch.testing.assert_close(d.diff, b.mean(0) - a.mean(0))
    torch.testing.assert_close(d.mean_before, a.mean(0))
    torch.testing.assert_close(d.mean_after, b.mean(0))
    torch.testing.assert_close(d.se, (b - a).std(0) / n ** 0.5)
    assert torch.equal(d.freq_after, (b > 0).sum(0).double() / n)
    back = feature_diff(b, a)
    torch.testing.assert_close(back.diff, -d.diff)
    torch.testing.assert_close(back.se, d.se)
    same = feature_diff(a, a)
    assert torch.equal(same.diff, torch.zeros(f, dtype=DTYPE)) and torch.equal(same.se, torch.zeros(f, dtype=DTYPE))
    ranked = d.ranking()
    assert sorted(ranked.tolist()) == list(range(f))
    assert all(d.diff[ranked[i]] >= d.diff[ranked[i + 1]] for i in range(f - 1))


def test_ties_rank_the_lower_index_first_and_one_probe_has_no_se():
    d = feature_diff(torch.zeros(1, 4), torch.tensor([[1.0, 2.0, 2.0, 0.0]]))
    assert d.ranking().tolist() == [1, 2, 0, 3]
    assert torch.isnan(d.se).all()


def test_top_overlap_counts_and_matches_scipy():
    from scipy.stats import hypergeom

    ranking = torch.tensor([5, 3, 0, 1, 2, 4, 6, 7, 8, 9])
    overlap = top_overlap(ranking, [3, 0, 9], 3)
    assert overlap.count == 2 and overlap.expected == pytest.approx(0.9)
    assert overlap.p_value == pytest.approx(float(hypergeom.sf(1, 10, 3, 3)))
    assert top_overlap(ranking, [3, 0, 9], 10).p_value == pytest.approx(1.0)  # every feature drawn: certain


def test_bad_input():
    with pytest.raises(InputError, match="same"):
        feature_diff(torch.zeros(3, 4), torch.zeros(2, 4))
    with pytest.raises(InputError, match="no probes"):
        feature_diff(torch.zeros(0, 4), torch.zeros(0, 4))
    with pytest.raises(InputError, match="k must be"):
        top_overlap(torch.arange(4), [1], 5)
