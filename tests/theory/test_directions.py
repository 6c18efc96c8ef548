"""theory.directions: project_out is the orthogonal projection onto u's complement (idempotent, orthogonal to u,
never longer, orthogonal components unchanged, scale invariant in u, dtype and shape kept); mean_difference is
the difference of means (antisymmetric, translation invariant); bad inputs are InputErrors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from strategies import DTYPE, _gen, _randn, gains, log_uniform, orthogonal_matrix, seeds
from theory.errors import InputError
from theory.directions import gap_fraction, mean_difference, project_out, unit

dims = st.integers(1, 8)
batch_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=2).map(tuple)
scales = log_uniform(1e-6, 1e6)


@st.composite
def vectors_and_direction(draw):
    """h (*batch, d) and a nonzero u (d,), float64, u at a drawn scale."""
    d, shape, seed = draw(dims), draw(batch_shapes), draw(seeds)
    gen = _gen(seed)
    h = _randn(gen, *shape, d) * draw(log_uniform(1e-3, 1e3))
    u = _randn(gen, d)
    u = (u if bool(u.abs().max() > 0) else torch.ones(d, dtype=DTYPE)) * draw(scales)
    return h, u


def _tol(h: torch.Tensor) -> float:
    return 1e-12 * (1.0 + float(torch.linalg.vector_norm(h, dim=-1).max())) if h.numel() else 1e-12


# ------------------------------------------------------------------------------------------- project_out

@given(vectors_and_direction())
def test_project_out_is_idempotent(case):
    h, u = case
    once = project_out(h, u)
    torch.testing.assert_close(project_out(once, u), once, rtol=0, atol=_tol(h))


@given(vectors_and_direction())
def test_project_out_is_orthogonal_to_u(case):
    h, u = case
    dots = project_out(h, u) @ (u / torch.linalg.vector_norm(u))
    assert bool((dots.abs() <= _tol(h)).all()), dots


@given(vectors_and_direction())
def test_project_out_never_lengthens(case):
    h, u = case
    before, after = torch.linalg.vector_norm(h, dim=-1), torch.linalg.vector_norm(project_out(h, u), dim=-1)
    assert bool((after <= before * (1 + 1e-12) + 1e-300).all())


@given(dims, batch_shapes, seeds, scales, gains)
def test_components_orthogonal_to_u_are_unchanged(d, shape, seed, scale, along):
    """h = c·q₀ + v with v in span(q₁..q_{d−1}) ⟂ u = s·q₀: project_out(h, u) = v (and v itself is kept)."""
    gen = _gen(seed)
    q = orthogonal_matrix(d, gen)
    v = _randn(gen, *shape, d - 1) @ q[1:]
    h = v + along * q[0]
    u = scale * q[0]
    torch.testing.assert_close(project_out(h, u), v, rtol=0, atol=_tol(h))
    torch.testing.assert_close(project_out(v, u), v, rtol=0, atol=_tol(v))


@given(vectors_and_direction(), gains)
def test_project_out_is_scale_invariant_in_u(case, c):
    h, u = case
    torch.testing.assert_close(project_out(h, c * u), project_out(h, u), rtol=0, atol=_tol(h))


@given(vectors_and_direction())
def test_project_out_matches_the_projection_matrix(case):
    h, u = case
    n = u.numpy() / np.linalg.norm(u.numpy())
    expected = h.numpy() @ (np.eye(len(n)) - np.outer(n, n))
    np.testing.assert_allclose(project_out(h, u).numpy(), expected, rtol=0, atol=_tol(h))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_project_out_keeps_dtype_and_shape(dtype):
    h = torch.randn(2, 3, 5, generator=_gen(0)).to(dtype)
    out = project_out(h, torch.randn(5, generator=_gen(1), dtype=torch.float64))
    assert out.dtype == dtype and out.shape == h.shape


def test_unit_handles_tiny_and_huge_directions():
    for scale in (1e-300, 1e300):
        u = torch.tensor([3.0, 4.0], dtype=DTYPE) * scale
        torch.testing.assert_close(unit(u), torch.tensor([0.6, 0.8], dtype=DTYPE), rtol=0, atol=1e-15)


@pytest.mark.parametrize("h, u, match", [
    (torch.ones(2, 3), torch.zeros(3), "zero vector"),
    (torch.ones(2, 3), torch.ones(4), "disagree"),
    (torch.ones(2, 3), torch.ones(1, 3), "disagree"),
    (torch.ones(2, 3), torch.tensor([1.0, float("nan"), 0.0]), "NaN"),
    (torch.ones(2, 3, dtype=torch.int64), torch.ones(3), "float"),
    (torch.ones(3), torch.ones(3, dtype=torch.int64), "float"),
])
def test_project_out_bad_inputs(h, u, match):
    with pytest.raises(InputError, match=match):
        project_out(h, u)


# ---------------------------------------------------------------------------------------- mean_difference

@st.composite
def two_samples(draw):
    d, seed = draw(dims), draw(seeds)
    gen = _gen(seed)
    return _randn(gen, draw(st.integers(1, 10)), d), _randn(gen, draw(st.integers(1, 10)), d) + draw(gains)


@given(two_samples())
def test_mean_difference_is_the_difference_of_means(case):
    a, b = case
    np.testing.assert_allclose(mean_difference(a, b).numpy(), a.numpy().mean(0) - b.numpy().mean(0), rtol=0,
                               atol=1e-12)


@given(two_samples())
def test_mean_difference_is_antisymmetric(case):
    a, b = case
    torch.testing.assert_close(mean_difference(b, a), -mean_difference(a, b), rtol=0, atol=0)


@given(two_samples(), seeds, log_uniform(1e-3, 1e3))
def test_mean_difference_is_translation_invariant(case, seed, scale):
    a, b = case
    t = scale * _randn(_gen(seed), a.shape[1])
    torch.testing.assert_close(mean_difference(a + t, b + t), mean_difference(a, b), rtol=0, atol=1e-12 * (1 + scale))


@pytest.mark.parametrize("dtype_a, dtype_b, expected", [
    (torch.float32, torch.float32, torch.float32), (torch.float64, torch.float64, torch.float64),
    (torch.float32, torch.float64, torch.float64), (torch.bfloat16, torch.bfloat16, torch.float32),
])
def test_mean_difference_dtype(dtype_a, dtype_b, expected):
    out = mean_difference(torch.ones(3, 4, dtype=dtype_a), torch.zeros(2, 4, dtype=dtype_b))
    assert out.dtype == expected and out.shape == (4,)
    assert bool((out == 1).all())


@pytest.mark.parametrize("a, b, match", [
    (torch.ones(0, 3), torch.ones(2, 3), "a is empty"),
    (torch.ones(2, 3), torch.ones(0, 3), "b is empty"),
    (torch.ones(2, 3), torch.ones(2, 4), "different widths"),
    (torch.ones(3), torch.ones(2, 3), r"\(n, d\) matrix"),
    (torch.ones(2, 3, dtype=torch.int64), torch.ones(2, 3), "float"),
    (torch.ones(2, 3), torch.full((2, 3), float("inf")), "NaN or infinite"),
])
def test_mean_difference_bad_inputs(a, b, match):
    with pytest.raises(InputError, match=match):
        mean_difference(a, b)


# ----------------------------------------------------------------------------------------------- gap_fraction
@given(dims, seeds, st.floats(-3, 3, allow_nan=False), gains)
def test_gap_fraction_of_a_shift_along_u_is_its_length_in_units_of_u(d, seed, t, c):
    """after = before + t·u (+ anything orthogonal to u) moves every row by t gaps; c·u measures t/c."""
    g = _gen(seed)
    before, u = _randn(g, 5, d), _randn(g, d)
    noise = project_out(_randn(g, 5, d), u)
    after = before + t * u + noise
    got = gap_fraction(before, after, u)
    assert torch.allclose(got, torch.full((5,), t, dtype=got.dtype), atol=1e-4 * (1 + abs(t)))
    assert torch.allclose(gap_fraction(before, after, c * u), got / c, atol=1e-4 * (1 + abs(t / c)), rtol=1e-4)


@given(dims, seeds)
def test_gap_fraction_is_antisymmetric_and_translation_invariant(d, seed):
    g = _gen(seed)
    before, after, u, shift = _randn(g, 4, d), _randn(g, 4, d), _randn(g, d), _randn(g, d)
    forward = gap_fraction(before, after, u)
    assert torch.allclose(gap_fraction(after, before, u), -forward, atol=1e-5)
    assert torch.allclose(gap_fraction(before + shift, after + shift, u), forward, atol=1e-4)


def test_gap_fraction_rejects_mismatched_shapes():
    with pytest.raises(InputError, match="disagree"):
        gap_fraction(torch.zeros(3, 4), torch.zeros(2, 4), torch.ones(4))


# ------------------------------------------------------------------------------------------------ steer
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from theory.directions import steer  # noqa: E402


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(1, 12), alpha=st.floats(-5, 5), beta=st.floats(-5, 5))
def test_steer_is_additive_moves_only_along_v_and_zero_is_identity(seed, d, alpha, beta):
    g = torch.Generator().manual_seed(seed)
    h, v = torch.randn(4, d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    assert torch.equal(steer(h, v, 0.0), h)
    torch.testing.assert_close(steer(steer(h, v, alpha), v, beta), steer(h, v, alpha + beta))
    moved = steer(h, v, alpha) - h
    torch.testing.assert_close(moved, alpha * v.expand_as(h))


# ------------------------------------------------------------------------------------ projection_difference
from theory.directions import projection_difference  # noqa: E402


@given(dims, seeds, st.floats(-3, 3, allow_nan=False), gains)
def test_projection_difference_is_the_shift_along_the_unit_direction(d, seed, t, c):
    """trained = base + t·û (+ anything orthogonal to u) gives t on every row, for u and |c|·u alike."""
    g = _gen(seed)
    base, u = _randn(g, 5, d), _randn(g, d)
    noise = project_out(_randn(g, 5, d), u)
    trained = base + t * unit(u).double() + noise
    got = projection_difference(trained, base, u)
    assert torch.allclose(got, torch.full((5,), t, dtype=got.dtype), atol=1e-4 * (1 + abs(t)))
    assert torch.allclose(projection_difference(trained, base, abs(c) * u), got, atol=1e-4 * (1 + abs(t)))


@given(dims, seeds)
def test_projection_difference_is_antisymmetric_and_translation_invariant(d, seed):
    g = _gen(seed)
    trained, base, u, shift = _randn(g, 4, d), _randn(g, 4, d), _randn(g, d), _randn(g, d)
    forward = projection_difference(trained, base, u)
    assert torch.allclose(projection_difference(base, trained, u), -forward, atol=1e-6)
    assert torch.allclose(projection_difference(trained + shift, base + shift, u), forward, atol=1e-5)


def test_projection_difference_rejects_a_direction_of_the_wrong_width():
    with pytest.raises(InputError, match="disagree"):
        projection_difference(torch.zeros(3, 4), torch.zeros(3, 4), torch.ones(5))
