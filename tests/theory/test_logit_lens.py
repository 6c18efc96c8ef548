"""theory.logit_lens: the chunked read-out equals one matmul, top/bottom-k are the k largest / smallest logits
(ties to the lower id), the histogram counts every non-zero value once and keeps the zeros apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.errors import InputError
from theory.logit_lens import activation_histogram, top_bottom, unembed


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 4), d=st.integers(1, 6), vocab=st.integers(1, 40), chunk=st.integers(1, 50),
       bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_chunked_unembedding_equals_one_matmul(n, d, vocab, chunk, bias, seed):
    gen = torch.Generator().manual_seed(seed)
    x, w = torch.randn(n, d, generator=gen), torch.randn(vocab, d, generator=gen, dtype=torch.float64)
    b = torch.randn(vocab, generator=gen) if bias else None
    expected = x @ w.float().T + (b if bias else 0)
    assert torch.allclose(unembed(x, w, b, chunk=chunk), expected, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(logits=st.lists(st.lists(st.integers(-3, 3), min_size=6, max_size=6), min_size=1, max_size=3),
       k=st.integers(1, 8))
def test_top_bottom_are_the_k_largest_and_smallest_ties_to_the_lower_id(logits, k):
    values = torch.tensor(logits, dtype=torch.float32)
    ranked = top_bottom(values, k)
    for row, ids in enumerate(values.tolist()):
        by_value = sorted(range(len(ids)), key=lambda i: (-ids[i], i))
        assert ranked.promoted_ids[row].tolist() == by_value[:k]
        assert ranked.suppressed_ids[row].tolist() == sorted(range(len(ids)), key=lambda i: (ids[i], i))[:k]
        assert ranked.promoted[row].tolist() == [ids[i] for i in by_value[:k]]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(0.001, 50, allow_nan=False), max_size=30), n_zero=st.integers(0, 20),
       bins=st.integers(1, 12))
def test_histogram_counts_each_nonzero_value_once_and_the_zeros_apart(values, n_zero, bins):
    hist = activation_histogram(np.array(values), n_zero, bins)
    assert sum(hist.counts) == len(values) and len(hist.counts) == bins and len(hist.edges) == bins + 1
    assert hist.n_zero == n_zero and hist.edges[0] == 0.0
    if values:
        assert hist.edges[-1] == pytest.approx(max(values)) and hist.counts[-1] >= 1


def test_bad_sizes_are_input_errors():
    with pytest.raises(InputError, match="model width"):
        unembed(torch.zeros(2, 3), torch.zeros(5, 4))
    with pytest.raises(InputError, match="k must be"):
        top_bottom(torch.zeros(1, 3), 0)
    with pytest.raises(InputError, match="n_bins"):
        activation_histogram(np.zeros(0), 0, 0)
