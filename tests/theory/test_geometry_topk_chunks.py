"""theory.geometry.top_k_neighbours (chunked, reused buffer) against the brute-force cosine matrix."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.geometry import cosine_similarity, set_proximity, top_k_neighbours


@st.composite
def cases(draw):
    n, d = draw(st.integers(2, 30)), draw(st.integers(1, 8))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    directions = torch.randn(n, d, generator=gen, dtype=dtype) * torch.rand(n, 1, generator=gen, dtype=dtype) * 3
    if draw(st.booleans()):  # a zero row: cosine 0 to everything
        directions[draw(st.integers(0, n - 1))] = 0
    queries = None
    if draw(st.booleans()):
        queries = torch.randn(draw(st.integers(1, 12)), d, generator=gen, dtype=dtype)
    chunk = draw(st.integers(1, 40))
    return directions, queries, chunk, draw(st.data())


@given(cases())
def test_chunked_top_k_equals_brute_force(case):
    directions, queries, chunk, data = case
    self_mode = queries is None
    k = data.draw(st.integers(1, directions.shape[0] - (1 if self_mode else 0)))
    nb = top_k_neighbours(directions, k, queries, chunk_size=chunk)
    sims = cosine_similarity(directions if self_mode else queries, directions).double()
    if self_mode:
        sims.fill_diagonal_(-torch.inf)
    expected = torch.topk(sims, k, dim=1).values
    torch.testing.assert_close(nb.values.double(), expected, rtol=1e-5, atol=1e-5)
    # the returned indices realise the returned values
    torch.testing.assert_close(sims.gather(1, nb.indices), expected, rtol=1e-5, atol=1e-5)
    if self_mode:
        assert not (nb.indices == torch.arange(directions.shape[0])[:, None]).any()


@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_result_does_not_depend_on_chunk_size(chunk):
    gen = torch.Generator().manual_seed(0)
    directions = torch.randn(23, 5, generator=gen)
    reference = top_k_neighbours(directions, 4, chunk_size=1000)
    nb = top_k_neighbours(directions, 4, chunk_size=chunk)
    torch.testing.assert_close(nb.values, reference.values)
    assert torch.equal(nb.indices, reference.indices)


def test_low_precision_directions_are_compared_in_float32():
    gen = torch.Generator().manual_seed(1)
    directions = torch.randn(20, 6, generator=gen).to(torch.bfloat16)
    nb = top_k_neighbours(directions, 3, chunk_size=7)
    assert nb.values.dtype == torch.float32
    expected = torch.topk(cosine_similarity(directions, directions).fill_diagonal_(-torch.inf), 3, dim=1).values
    torch.testing.assert_close(nb.values, expected, rtol=2e-2, atol=2e-2)


def test_set_proximity_of_a_whole_dictionary_to_a_small_set():
    gen = torch.Generator().manual_seed(2)
    decoder = torch.randn(50, 8, generator=gen)
    harmful = decoder[[3, 10, 41]]
    prox = set_proximity(decoder, harmful, k=2, chunk_size=16)
    sims = cosine_similarity(decoder, harmful)
    torch.testing.assert_close(prox.max_cosine, sims.max(dim=1).values)
    torch.testing.assert_close(prox.mean_top_k, torch.topk(sims, 2, dim=1).values.mean(dim=1))
    assert prox.nearest[[3, 10, 41]].tolist() == [0, 1, 2]


@given(st.integers(1, 40), st.integers(1, 9), st.data())
def test_a_single_nan_or_inf_anywhere_is_an_input_error(n, d, data):
    from theory.errors import InputError

    directions = torch.randn(n, d)
    bad = data.draw(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    directions[data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, d - 1))] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        top_k_neighbours(directions, 1, queries=torch.ones(1, d))
    with pytest.raises(InputError, match="NaN or infinite"):
        set_proximity(directions, torch.ones(2, d))
