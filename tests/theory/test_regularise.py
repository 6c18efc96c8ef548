"""``theory.regularise`` pieces the real-model guard uses: the orthonormal basis of a direction span (its
projector is ``span_projector``'s), the squared growth of a set of pre-activations and its one-sided variant
(only rises count)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.errors import InputError
from theory.regularise import one_sided_growth, span_basis, span_projector, squared_growth


@given(seed=st.integers(0, 10_000), k=st.integers(1, 5), d=st.integers(2, 7), collinear=st.booleans())
def test_span_basis_is_orthonormal_and_spans_the_rows(seed, k, d, collinear):
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(k, d, generator=gen, dtype=torch.float64)
    if collinear and k > 1:
        dirs[-1] = -3.0 * dirs[0]
    basis = span_basis(dirs)
    rank = int(torch.linalg.matrix_rank(dirs))
    assert basis.shape == (d, rank)
    assert torch.allclose(basis.T @ basis, torch.eye(rank, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(basis @ basis.T, span_projector(dirs), atol=1e-10)
    assert torch.allclose(dirs @ basis @ basis.T, dirs, atol=1e-10)  # every row lies in the span
    v = torch.randn(d, generator=gen, dtype=torch.float64)
    residual = v - basis @ (basis.T @ v)
    assert torch.allclose(dirs @ residual, torch.zeros(k, dtype=torch.float64), atol=1e-9)


def test_span_basis_rejects_an_empty_set():
    with pytest.raises(InputError):
        span_basis(torch.zeros(0, 3))


@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), h=st.integers(1, 5))
def test_squared_growth(seed, n, h):
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n, h, generator=gen, dtype=torch.float64)
    dz = torch.randn(n, h, generator=gen, dtype=torch.float64)
    assert torch.allclose(squared_growth(z0 + dz, z0), (dz ** 2).sum(-1))
    assert torch.all(squared_growth(z0, z0) == 0)
    assert torch.allclose(squared_growth(z0 - dz, z0), squared_growth(z0 + dz, z0))  # a fall counts as a rise


@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), h=st.integers(1, 5))
def test_one_sided_growth_is_zero_when_nothing_rises_and_the_squared_growth_when_all_rise(seed, n, h):
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n, h, generator=gen, dtype=torch.float64)
    step = torch.rand(n, h, generator=gen, dtype=torch.float64) + 1e-3
    assert torch.equal(one_sided_growth(z0 - step, z0), torch.zeros(n, dtype=torch.float64))
    assert torch.equal(one_sided_growth(z0, z0), torch.zeros(n, dtype=torch.float64))
    assert torch.equal(one_sided_growth(z0 + step, z0), squared_growth(z0 + step, z0))


@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), h=st.integers(1, 5))
def test_one_sided_growth_has_no_gradient_for_falling_features(seed, n, h):
    """d/dz relu(z − z0)² = 2 (z − z0) where z rose, 0 where it fell: mixed signs checked entry by entry."""
    gen = torch.Generator().manual_seed(seed)
    z0 = torch.randn(n, h, generator=gen, dtype=torch.float64)
    delta = torch.randn(n, h, generator=gen, dtype=torch.float64)
    delta = torch.where(delta == 0, torch.ones_like(delta), delta)
    z = (z0 + delta).requires_grad_(True)
    one_sided_growth(z, z0).sum().backward()
    expected = torch.where(delta > 0, 2 * (z.detach() - z0), torch.zeros_like(delta))
    assert torch.allclose(z.grad, expected, rtol=0, atol=1e-12)
    assert torch.equal(z.grad[delta < 0], torch.zeros_like(z.grad[delta < 0]))
