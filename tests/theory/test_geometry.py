"""theory.geometry: cosines, chunked top-k neighbours (against brute force), set proximity, feature
dimensionality, zero rows, scale invariance and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from strategies import DTYPE, KINDS, _gen, geometries, log_uniform, make_directions, seeds
from theory.errors import InputError
from theory.geometry import (cosine_similarity, feature_dimensionality, max_overlap, row_norms, set_proximity, top_k_neighbours,
                             unit_rows)

chunk_sizes = st.one_of(st.just(1), st.integers(2, 15), st.just(10_000))


def direct_cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a_i, b_j) = <a_i, b_j> / (||a_i|| ||b_j||) in numpy; 0 when either row is zero."""
    a_np, b_np = a.numpy(), b.numpy()
    na, nb = np.sqrt((a_np**2).sum(1)), np.sqrt((b_np**2).sum(1))
    denom = np.outer(na, nb)
    return torch.from_numpy(np.divide(a_np @ b_np.T, denom, out=np.zeros_like(denom), where=denom > 0))


def with_zero_rows(directions: torch.Tensor, seed: int, p: float = 0.2) -> torch.Tensor:
    mask = torch.rand(directions.shape[0], generator=_gen(seed)) < p
    return directions.masked_fill(mask[:, None], 0.0)


def assert_valid_neighbours(nb, sims: torch.Tensor, k: int, *, excluded_diagonal: bool) -> None:
    """nb matches brute-force top-k of ``sims``: same sorted values, and the indices are distinct, point
    at those values and (in self mode) never at the query itself. Ties may be broken either way."""
    brute = sims.clone()
    if excluded_diagonal:
        brute.fill_diagonal_(-torch.inf)
    expected = torch.topk(brute, k, dim=1).values
    torch.testing.assert_close(nb.values, expected, rtol=0, atol=1e-12)
    assert nb.values.shape == nb.indices.shape == (sims.shape[0], k)
    torch.testing.assert_close(torch.gather(sims, 1, nb.indices), nb.values, rtol=0, atol=1e-12)
    for row in nb.indices.tolist():
        assert len(set(row)) == k
    if excluded_diagonal:
        assert not bool((nb.indices == torch.arange(sims.shape[0])[:, None]).any())
    assert bool((nb.values[:, :-1] >= nb.values[:, 1:] - 1e-15).all())  # sorted descending


# ------------------------------------------------------------------------------- cosine similarity

@given(geometries(), geometries(), seeds)
def test_cosine_similarity_matches_direct_formula(ga, gb, seed):
    a = with_zero_rows(ga.directions, seed)
    b = gb.directions[:, : a.shape[1]] if gb.d >= a.shape[1] else torch.nn.functional.pad(gb.directions, (0, a.shape[1] - gb.d))
    cos = cosine_similarity(a, b)
    torch.testing.assert_close(cos, direct_cosine(a, b), rtol=0, atol=1e-12)
    assert bool((cos.abs() <= 1 + 1e-12).all())
    nonzero = row_norms(a) > 0
    torch.testing.assert_close(torch.diagonal(cosine_similarity(a, a))[nonzero], torch.ones(int(nonzero.sum()), dtype=DTYPE))


@given(geometries(), seeds)
def test_cosine_invariant_to_positive_row_rescaling(geom, seed):
    scales = 10 ** (4 * torch.rand(geom.n, generator=_gen(seed), dtype=DTYPE) - 2)
    torch.testing.assert_close(cosine_similarity(geom.directions * scales[:, None], geom.directions),
                               cosine_similarity(geom.directions, geom.directions), rtol=0, atol=1e-12)


def test_known_cosines_and_unit_rows():
    d = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=DTYPE)
    cos = cosine_similarity(d, d)
    assert cos[0, 1] == 0 and cos[0, 2] == -1 and cos[0, 3] == pytest.approx(1 / math.sqrt(2))
    assert bool((cos[4] == 0).all() and (cos[:, 4] == 0).all())
    torch.testing.assert_close(row_norms(unit_rows(d)), torch.tensor([1.0, 1, 1, 1, 0], dtype=DTYPE))
    assert row_norms(d.float()).dtype == torch.float32 and row_norms(d.half()).dtype == torch.float32


# ------------------------------------------------------------------------------- top-k neighbours

@given(geometries(), st.data(), chunk_sizes, st.booleans(), seeds)
def test_top_k_self_matches_brute_force(geom, data, chunk, exclude_self, zero_seed):
    directions = with_zero_rows(geom.directions, zero_seed)
    k_max = geom.n - 1 if exclude_self else geom.n
    k = data.draw(st.integers(1, k_max))
    finished = []
    nb = top_k_neighbours(directions, k, chunk_size=chunk, exclude_self=exclude_self, progress=finished.append)
    assert_valid_neighbours(nb, direct_cosine(directions, directions), k, excluded_diagonal=exclude_self)
    assert sum(finished) == geom.n and len(finished) == math.ceil(geom.n / chunk)


@given(geometries(), st.data(), chunk_sizes, seeds)
def test_top_k_with_separate_queries_matches_brute_force(geom, data, chunk, seed):
    kind = data.draw(st.sampled_from(KINDS))
    n_q = data.draw(st.integers(1, 12))
    queries = make_directions(kind if kind != "orthogonal" else "random", n_q, geom.d, _gen(seed))
    k = data.draw(st.integers(1, geom.n))
    nb = top_k_neighbours(geom.directions, k, queries=queries, chunk_size=chunk)
    assert_valid_neighbours(nb, direct_cosine(queries, geom.directions), k, excluded_diagonal=False)


@given(geometries(kinds=("random",), min_d=2), chunk_sizes, seeds)
def test_top_k_invariant_to_positive_row_rescaling(geom, chunk, seed):
    scales = 10 ** (4 * torch.rand(geom.n, generator=_gen(seed), dtype=DTYPE) - 2)
    k = geom.n - 1
    plain = top_k_neighbours(geom.directions, k, chunk_size=chunk)
    scaled = top_k_neighbours(geom.directions * scales[:, None], k, chunk_size=chunk)
    torch.testing.assert_close(scaled.values, plain.values, rtol=0, atol=1e-12)
    sorted_sims = torch.sort(cosine_similarity(geom.directions, geom.directions), dim=1).values
    if bool((sorted_sims.diff(dim=1) > 1e-9).all()):  # no near-ties: the order itself is unchanged
        assert torch.equal(scaled.indices, plain.indices)


def test_top_k_antipodal_and_duplicate():
    d = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [2.0, 0.01], [0.0, 1.0]], dtype=DTYPE)
    nb = top_k_neighbours(d, 1, chunk_size=2)
    assert nb.indices[:, 0].tolist() == [2, 3, 0, 2]
    assert nb.values[1, 0] == pytest.approx(0.0, abs=1e-12)
    nb_all = top_k_neighbours(d, 4, exclude_self=False, chunk_size=3)
    assert nb_all.indices[:, 0].tolist() == [0, 1, 2, 3]  # itself first
    assert bool((nb_all.values[:3, -1] < -0.99).all())  # the antipode (or near-antipode) last


# ------------------------------------------------------------------------------- set proximity

@given(geometries(), geometries(), st.integers(1, 15), chunk_sizes, seeds)
def test_set_proximity_matches_brute_force(gf, gr, k, chunk, seed):
    features = make_directions("random", gf.n, gr.d, _gen(seed))
    reference = gr.directions
    prox = set_proximity(features, reference, k=k, chunk_size=chunk)
    cos = direct_cosine(features, reference)
    k_eff = min(k, reference.shape[0])
    torch.testing.assert_close(prox.max_cosine, cos.max(dim=1).values, rtol=0, atol=1e-12)
    torch.testing.assert_close(prox.mean_top_k, torch.topk(cos, k_eff, dim=1).values.mean(dim=1), rtol=0, atol=1e-12)
    torch.testing.assert_close(torch.gather(cos, 1, prox.nearest[:, None])[:, 0], prox.max_cosine, rtol=0, atol=1e-12)
    assert bool((prox.mean_top_k <= prox.max_cosine + 1e-12).all())


@given(geometries())
def test_a_set_is_at_distance_zero_from_itself(geom):
    prox = set_proximity(geom.directions, geom.directions)
    torch.testing.assert_close(prox.max_cosine, torch.ones(geom.n, dtype=DTYPE), rtol=0, atol=1e-12)


@given(geometries(), geometries(), seeds, log_uniform(1e-3, 1e3))
def test_max_overlap_is_the_max_dot_product_and_scales_with_norms(gf, gr, seed, scale):
    """max_r <d_i, d_r>; on unit rows it is max_cosine; scaling every reference row by s > 0 scales it by s;
    shortening one reference row can change which row is nearest, unlike the cosine."""
    features = make_directions("random", gf.n, gr.d, _gen(seed))
    reference = gr.directions
    overlap = max_overlap(features, reference)
    torch.testing.assert_close(overlap, (features @ reference.T).max(dim=1).values, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(max_overlap(features, scale * reference), scale * overlap, rtol=1e-9, atol=1e-12)
    unit_f, unit_r = features / row_norms(features)[:, None], reference / row_norms(reference)[:, None]
    torch.testing.assert_close(max_overlap(unit_f, unit_r), set_proximity(unit_f, unit_r).max_cosine,
                               rtol=0, atol=1e-12)


def test_max_overlap_sees_a_short_direction_that_the_cosine_does_not():
    target = torch.tensor([[1.0, 0.0]], dtype=DTYPE)
    harmful = torch.tensor([[0.1, 0.0], [0.6, 0.8]], dtype=DTYPE)  # aligned but short; farther but long
    assert set_proximity(target, harmful).max_cosine.item() == pytest.approx(1.0)
    assert max_overlap(target, harmful).item() == pytest.approx(0.6)
    with pytest.raises(InputError, match="dimension"):
        max_overlap(target, torch.ones(1, 3, dtype=DTYPE))


# ------------------------------------------------------------------------------- feature dimensionality

@given(st.integers(1, 8), st.data(), seeds, log_uniform(1e-3, 1e3))
def test_feature_dimensionality_of_orthogonal_features_is_one(d, data, seed, scale):
    n = data.draw(st.integers(1, d))
    directions = make_directions("orthogonal", n, d, _gen(seed)) * scale
    torch.testing.assert_close(feature_dimensionality(directions), torch.ones(n, dtype=DTYPE), rtol=1e-10, atol=0)


@given(st.integers(1, 4), st.data(), seeds)
def test_feature_dimensionality_of_antipodal_pairs_is_half(n_pairs, data, seed):
    d = data.draw(st.integers(n_pairs, 8))
    u = make_directions("orthogonal", n_pairs, d, _gen(seed))
    scale = 0.5 + torch.rand(n_pairs, 1, generator=_gen(seed + 1), dtype=DTYPE)
    directions = torch.cat([u * scale, -u * scale])  # equal norms within a pair
    torch.testing.assert_close(feature_dimensionality(directions), torch.full((2 * n_pairs,), 0.5, dtype=DTYPE),
                               rtol=1e-10, atol=0)


@given(geometries(), seeds, log_uniform(1e-3, 1e3))
def test_feature_dimensionality_zero_rows_and_global_scale(geom, seed, scale):
    """0 for a zero row, in (0, 1] otherwise, unchanged by a global rescaling and by adding zero rows."""
    directions = with_zero_rows(geom.directions, seed, p=0.3)
    dims = feature_dimensionality(directions)
    zero = row_norms(directions) == 0
    assert bool((dims[zero] == 0).all())
    assert bool((dims[~zero] > 0).all() and (dims[~zero] <= 1 + 1e-10).all())
    torch.testing.assert_close(feature_dimensionality(directions * scale), dims, rtol=1e-9, atol=1e-12)
    if (~zero).any():
        torch.testing.assert_close(feature_dimensionality(directions[~zero]), dims[~zero], rtol=1e-12, atol=0)
    # direct formula D_i = ||W_i||² / Σ_j (Ŵ_i · W_j)²
    w = directions
    direct = torch.stack([
        (w[i] @ w[i]) / sum((w[i] @ w[j] / w[i].norm()) ** 2 for j in range(w.shape[0])) if not zero[i]
        else torch.tensor(0.0, dtype=DTYPE) for i in range(w.shape[0])])
    torch.testing.assert_close(dims, direct, rtol=1e-10, atol=0)


def test_all_zero_directions():
    assert torch.equal(feature_dimensionality(torch.zeros(3, 2, dtype=DTYPE)), torch.zeros(3, dtype=DTYPE))
    nb = top_k_neighbours(torch.zeros(3, 2, dtype=DTYPE), 2)
    assert bool((nb.values == 0).all())


# ------------------------------------------------------------------------------- input validation

@pytest.mark.parametrize("bad", [
    torch.zeros(3, dtype=DTYPE),  # not a matrix
    torch.zeros(2, 3, 4, dtype=DTYPE),
    torch.zeros(0, 3, dtype=DTYPE),  # empty
    torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=DTYPE),
    torch.tensor([[1.0, float("inf")], [0.0, 1.0]], dtype=DTYPE),
    torch.tensor([[1.0, 0.0], [-float("inf"), 1.0]], dtype=DTYPE),
    torch.tensor([[float("nan"), 0.0], [-float("inf"), float("inf")]], dtype=torch.float32),
])
def test_bad_directions_raise_input_error(bad):
    with pytest.raises(InputError):
        top_k_neighbours(bad, 1, exclude_self=False)
    with pytest.raises(InputError):
        feature_dimensionality(bad)
    with pytest.raises(InputError):
        set_proximity(torch.ones(2, bad.shape[-1] if bad.ndim else 1, dtype=DTYPE), bad)


def test_bad_queries_and_k_raise_input_error():
    d = torch.randn(5, 3, dtype=DTYPE)
    for k in (0, 5, -1):
        with pytest.raises(InputError):
            top_k_neighbours(d, k)
    top_k_neighbours(d, 5, exclude_self=False)  # k = n is fine without self-exclusion
    with pytest.raises(InputError):
        top_k_neighbours(d, 6, exclude_self=False)
    with pytest.raises(InputError):
        top_k_neighbours(d, 1, queries=torch.randn(2, 4, dtype=DTYPE))
    with pytest.raises(InputError):
        top_k_neighbours(d, 1, queries=torch.randn(0, 3, dtype=DTYPE))
    with pytest.raises(InputError):
        top_k_neighbours(d, 1, queries=torch.full((1, 3), float("nan"), dtype=DTYPE))
    with pytest.raises(InputError):
        set_proximity(torch.randn(2, 4, dtype=DTYPE), d)
    assert issubclass(InputError, ValueError)
