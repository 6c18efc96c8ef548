"""``theory.regularise`` pieces the real-model guard uses: the orthonormal basis of a direction span (its
projector is ``span_projector``'s) and the squared growth of a set of pre-activations."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.errors import InputError
from theory.regularise import span_basis, span_projector, squared_growth


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
