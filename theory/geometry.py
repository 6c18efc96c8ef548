"""Geometry of feature directions: norms, cosine similarity, chunked nearest neighbours, set proximity,
and the feature dimensionality of Elhage et al. (2022).

Directions are always a matrix ``directions`` of shape (n_features, d): one row per feature (toy: the
columns W_i of W, transposed; real: SAE decoder rows). Every all-pairs computation is chunked over
query rows so that a 131,072 x 3,584 decoder never needs an (n x n) matrix or a normalised copy:
peak extra memory is ``chunk_size * n_features`` similarities plus O(n_features) norms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from theory.errors import InputError

EPS = 1e-12


def row_norms(directions: Tensor) -> Tensor:
    """||d_i||_2 for every row, shape (n_features,), computed in float32 (or the input's wider dtype)."""
    dtype = torch.promote_types(directions.dtype, torch.float32)
    return torch.linalg.vector_norm(directions.to(dtype), dim=-1)


def unit_rows(directions: Tensor) -> Tensor:
    """d_i / ||d_i||; zero rows stay zero."""
    norms = row_norms(directions).clamp_min(EPS)
    return directions.to(norms.dtype) / norms[..., None]


def cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    """cos(a_i, b_j) = <a_i, b_j> / (||a_i|| ||b_j||), shape (n_a, n_b). Zero rows give 0."""
    return unit_rows(a) @ unit_rows(b).T


def _validate_directions(directions: Tensor, name: str = "directions") -> None:
    if directions.ndim != 2:
        raise InputError(f"{name} must be a (n_features, d) matrix, got shape {tuple(directions.shape)}")
    if directions.shape[0] == 0:
        raise InputError(f"{name} is empty: at least one feature direction is needed")
    if not _all_finite(directions):
        raise InputError(f"{name} contains NaN or infinite values")


def _all_finite(x: Tensor) -> bool:
    """torch.isfinite(x).all() in one pass without temporaries: the min and max propagate NaN and are ±inf
    iff some entry is (isfinite builds |x| and boolean copies as large as x: ~2.6 GiB and ~15x slower for
    a 131,072 x 3,584 decoder)."""
    if x.numel() == 0 or not x.is_floating_point():
        return True
    low, high = torch.aminmax(x)
    return bool(torch.isfinite(low) & torch.isfinite(high))


@dataclass(frozen=True)
class Neighbours:
    """Top-k neighbours of each query: ``values`` and ``indices`` have shape (n_queries, k)."""

    values: Tensor
    indices: Tensor


def top_k_neighbours(
    directions: Tensor,
    k: int,
    queries: Tensor | None = None,
    *,
    chunk_size: int = 1024,
    exclude_self: bool = True,
    progress=None,
) -> Neighbours:
    """For each query row q, the k rows d_j of ``directions`` with the largest cos(q, d_j).

    ``queries`` defaults to ``directions`` itself (all pairs); then ``exclude_self`` drops j = i.
    Works in chunks of ``chunk_size`` query rows: memory O(chunk_size * n_features) (one reused float32
    buffer: 512 MiB for 1024 x 131,072), never a normalised copy of ``directions``: each chunk of queries
    is normalised (m x d) — or, when there are fewer directions than dimensions (a small reference set),
    the (m x n) similarities are — and the similarities are divided by the directions' norms in place.
    ``progress``, if given, is called with the number of query rows finished after each chunk.
    """
    _validate_directions(directions)
    n_features = directions.shape[0]
    self_mode = queries is None
    queries = directions if self_mode else queries
    _validate_directions(queries, "queries")
    if queries.shape[1] != directions.shape[1]:
        raise InputError(f"queries have d={queries.shape[1]} but directions have d={directions.shape[1]}")
    k_max = n_features - (1 if self_mode and exclude_self else 0)
    if not 1 <= k <= k_max:
        raise InputError(f"k must be between 1 and {k_max}, got {k}")
    compute_dtype = torch.promote_types(directions.dtype, torch.float32)
    inv_norms = 1.0 / row_norms(directions).clamp_min(EPS)
    values = torch.empty(queries.shape[0], k, dtype=compute_dtype)
    indices = torch.empty(queries.shape[0], k, dtype=torch.long)
    # One (chunk_size, n_features) buffer reused by every chunk: the matrix product writes into it and the
    # column scaling happens in place, so the loop does not allocate (and page-fault) a fresh block per chunk.
    direct = directions.dtype == compute_dtype
    buffer = torch.empty(min(chunk_size, queries.shape[0]), n_features, dtype=compute_dtype) if direct else None
    for start in range(0, queries.shape[0], chunk_size):
        stop = min(start + chunk_size, queries.shape[0])
        q = queries[start:stop].to(directions.dtype)
        inv_q = 1.0 / row_norms(q).clamp_min(EPS)
        scale_rows_after = n_features < q.shape[1]  # (m, n) similarities smaller than the (m, d) queries
        if not scale_rows_after:
            q = q * inv_q.to(q.dtype)[:, None]  # unit queries
        if direct:
            sims = torch.mm(q, directions.T, out=buffer[: stop - start])
        else:
            sims = (q @ directions.T).to(compute_dtype)
        if scale_rows_after:
            sims.mul_(inv_q[:, None])
        sims.mul_(inv_norms)
        if self_mode and exclude_self:
            rows = torch.arange(stop - start)
            sims[rows, rows + start] = -torch.inf
        chunk = torch.topk(sims, k, dim=1)
        values[start:stop], indices[start:stop] = chunk.values, chunk.indices
        del sims
        if progress is not None:
            progress(stop - start)
    return Neighbours(values=values, indices=indices)


@dataclass(frozen=True)
class SetProximity:
    """Per-feature proximity of a feature set to a reference set, each shape (n_features,).

    ``max_cosine``: max_r cos(d_i, d_r).  ``mean_top_k``: mean of the k largest cos(d_i, d_r).
    ``nearest``: index (into the reference set) of the closest reference direction."""

    max_cosine: Tensor
    mean_top_k: Tensor
    nearest: Tensor


def set_proximity(features: Tensor, reference: Tensor, *, k: int = 1, chunk_size: int = 1024) -> SetProximity:
    """Proximity of every row of ``features`` (n_a, d) to the set ``reference`` (n_ref, d), by cosine.

    A feature that is itself in the reference set has max_cosine 1; callers that want to exclude
    identity should remove shared features first (see ``theory.stats``)."""
    _validate_directions(reference, "reference set")
    k = min(k, reference.shape[0])
    nb = top_k_neighbours(reference, k, queries=features, chunk_size=chunk_size, exclude_self=False)
    return SetProximity(max_cosine=nb.values[:, 0], mean_top_k=nb.values.mean(dim=1), nearest=nb.indices[:, 0])


def max_overlap(features: Tensor, reference: Tensor) -> Tensor:
    """max_r <d_i, d_r> for every row of ``features`` (n_a, d) against ``reference`` (n_ref, d): (n_a,).

    The unnormalised counterpart of ``set_proximity(...).max_cosine``. The isotropic first-order change of
    a reference feature under a push on d_i is ∝ <d_r, d_i> (``theory.amplification``), so where feature
    norms differ (a partly represented feature has a short d_r) this, not the cosine, is what it scales with."""
    _validate_directions(features, "features")
    _validate_directions(reference, "reference set")
    if features.shape[1] != reference.shape[1]:
        raise InputError(f"features have dimension {features.shape[1]} but the reference set {reference.shape[1]}")
    dtype = torch.promote_types(torch.promote_types(features.dtype, reference.dtype), torch.float32)
    return (features.to(dtype) @ reference.to(dtype).T).amax(dim=1)


def feature_dimensionality(directions: Tensor) -> Tensor:
    """Elhage et al. (2022): D_i = ||W_i||^2 / sum_j (W_hat_i . W_j)^2, shape (n_features,).

    1 for a feature with a dedicated dimension, 1/2 for an antipodal pair, 0 for a feature not
    represented (||W_i|| = 0). ``directions`` rows are the W_i."""
    _validate_directions(directions)
    d = directions.to(torch.promote_types(directions.dtype, torch.float32))
    sq_norms = (d * d).sum(dim=1)
    interference = (unit_rows(d) @ d.T).pow(2).sum(dim=1)
    return torch.where(sq_norms > EPS, sq_norms / interference.clamp_min(EPS), torch.zeros_like(sq_norms))
