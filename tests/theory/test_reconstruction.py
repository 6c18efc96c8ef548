"""``theory.reconstruction``: FVU is 0 for a perfect reconstruction, 1 for the mean, invariant to shifting both
x and x̂ and to scaling both; L0 and the dead fraction count non-zeros."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.reconstruction import dead_fraction, fvu, l0, sae_quality


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(2, 40), d=st.integers(1, 8), shift=st.floats(-5, 5),
       scale=st.floats(0.1, 10))
def test_fvu_bounds_and_invariances(seed, n, d, shift, scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    noise = torch.randn(n, d, generator=g, dtype=torch.float64)
    assert fvu(x, x) == 0.0
    assert fvu(x, x.mean(0).expand_as(x)) == pytest.approx(1.0)
    x_hat = x + 0.3 * noise
    assert fvu(x + shift, x_hat + shift) == pytest.approx(fvu(x, x_hat), rel=1e-9, abs=1e-12)
    assert fvu(scale * x, scale * x_hat) == pytest.approx(fvu(x, x_hat), rel=1e-9)


def test_l0_and_dead_fraction_count_non_zeros():
    codes = torch.tensor([[0.0, 2.0, 0.0, 0.0], [1.0, 3.0, 0.0, 0.0], [0.0, 0.5, 0.0, 0.0]])
    assert l0(codes) == pytest.approx(4 / 3) and dead_fraction(codes) == 0.5
    assert sae_quality(torch.eye(3), torch.eye(3), codes) == {"fvu": 0.0, "l0": pytest.approx(4 / 3),
                                                             "dead_fraction": 0.5, "n_tokens": 3}
    with pytest.raises(ValueError, match="variance is zero"):
        fvu(torch.ones(3, 2), torch.zeros(3, 2))
