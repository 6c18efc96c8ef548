"""Hypothesis strategies for the theory tests: feature geometries, dimensions, targets, step sizes, inputs.

Tensors are built from a drawn seed with a torch.Generator (fast, shrinkable through the seed and the
drawn sizes) and are float64 throughout, so precision tests can ask for ~1e-12.

Geometry kinds (rows of ``directions`` (n, d) are the feature directions d_j):
- ``random``: i.i.d. Gaussian rows (generic: every pair has a non-zero similarity);
- ``orthogonal``: rows of a QR-orthogonal matrix with positive scales (n <= d; <d_i, d_j> = 0 exactly);
- ``antipodal``: pairs (u, -s u) (similarity -1), an odd n gets one extra random row;
- ``near_duplicate``: a few base rows plus small perturbations (similarities near 1, near-ties);
- ``mixture``: blocks of the kinds above, rows shuffled.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st
from torch import Tensor

DTYPE = torch.float64
KINDS = ("random", "orthogonal", "antipodal", "near_duplicate", "mixture")
MAX_N, MAX_D = 12, 8

seeds = st.integers(min_value=0, max_value=2**31 - 1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(gen: torch.Generator, *shape: int) -> Tensor:
    return torch.randn(*shape, generator=gen, dtype=DTYPE)


def _uniform(gen: torch.Generator, *shape: int, low: float = 0.0, high: float = 1.0) -> Tensor:
    return low + (high - low) * torch.rand(*shape, generator=gen, dtype=DTYPE)


def orthogonal_matrix(d: int, gen: torch.Generator) -> Tensor:
    """A Haar-random element of O(d) (QR of a Gaussian matrix with the sign of R's diagonal fixed)."""
    q, r = torch.linalg.qr(_randn(gen, d, d))
    return q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(d, dtype=DTYPE))


def make_directions(kind: str, n: int, d: int, gen: torch.Generator, *, eps: float = 1e-2) -> Tensor:
    """(n, d) directions of the given kind (``orthogonal`` needs n <= d)."""
    if kind == "random":
        return _randn(gen, n, d)
    if kind == "orthogonal":
        if n > d:
            raise ValueError(f"an orthogonal set needs n <= d, got n={n}, d={d}")
        return orthogonal_matrix(d, gen)[:n] * _uniform(gen, n, 1, low=0.5, high=2.0)
    if kind == "antipodal":
        base = _randn(gen, (n + 1) // 2, d)
        pairs = torch.stack([base, -base * _uniform(gen, base.shape[0], 1, low=0.5, high=2.0)], dim=1)
        return pairs.reshape(-1, d)[:n]
    if kind == "near_duplicate":
        n_base = int(torch.randint(1, max(2, n // 2) + 1, (1,), generator=gen))
        base = _randn(gen, n_base, d)
        return base[torch.arange(n) % n_base] + eps * _randn(gen, n, d)
    if kind == "mixture":
        blocks, left = [], n
        while left > 0:
            size = int(torch.randint(1, left + 1, (1,), generator=gen))
            choices = ["random", "antipodal", "near_duplicate"] + (["orthogonal"] if size <= d else [])
            sub = choices[int(torch.randint(len(choices), (1,), generator=gen))]
            blocks.append(make_directions(sub, size, d, gen, eps=eps))
            left -= size
        return torch.cat(blocks)[torch.randperm(n, generator=gen)]
    raise ValueError(f"unknown geometry kind {kind!r}")


@dataclass(frozen=True)
class Geometry:
    """A drawn feature dictionary: ``directions`` (n, d) float64, its ``kind`` and a ``target`` index."""

    directions: Tensor
    kind: str
    target: int
    seed: int

    @property
    def n(self) -> int:
        return self.directions.shape[0]

    @property
    def d(self) -> int:
        return self.directions.shape[1]

    def __repr__(self) -> str:  # short falsifying examples
        return f"Geometry(kind={self.kind!r}, n={self.n}, d={self.d}, target={self.target}, seed={self.seed})"


@st.composite
def geometries(draw, kinds=KINDS, min_n: int = 2, max_n: int = MAX_N, min_d: int = 1, max_d: int = MAX_D) -> Geometry:
    """Feature dictionaries of every kind; ``orthogonal`` draws d >= n >= 2 (so d >= 2)."""
    kind = draw(st.sampled_from(kinds))
    if kind == "orthogonal":
        d = draw(st.integers(max(min_d, min_n, 2), max_d))
        n = draw(st.integers(max(min_n, 2), min(max_n, d)))
    else:
        n = draw(st.integers(min_n, max_n))
        d = draw(st.integers(min_d, max_d))
    eps = draw(st.sampled_from([1e-4, 1e-3, 1e-2, 1e-1]))
    seed = draw(seeds)
    directions = make_directions(kind, n, d, _gen(seed), eps=eps)
    target = draw(st.integers(0, n - 1))
    return Geometry(directions=directions, kind=kind, target=target, seed=seed)


@st.composite
def gaussian(draw, *shape: int, scale: float = 1.0) -> Tensor:
    """A float64 Gaussian tensor of the given shape."""
    return scale * _randn(_gen(draw(seeds)), *shape)


@st.composite
def sparse_features(draw, *shape: int, signed: bool | None = None) -> Tensor:
    """Toy-model inputs: each entry is active with a drawn probability, magnitude U[0, 1] (or signed)."""
    gen = _gen(draw(seeds))
    p_active = draw(st.sampled_from([0.2, 0.5, 1.0]))
    signed = draw(st.booleans()) if signed is None else signed
    values = _uniform(gen, *shape, low=-1.0 if signed else 0.0, high=1.0)
    return values * (torch.rand(*shape, generator=gen, dtype=DTYPE) < p_active)


@st.composite
def orthogonal_matrices(draw, d: int) -> Tensor:
    return orthogonal_matrix(d, _gen(draw(seeds)))


def log_uniform(low: float, high: float) -> st.SearchStrategy[float]:
    """Floats spread evenly in log scale on [low, high]."""
    import math

    return st.floats(math.log10(low), math.log10(high)).map(lambda e: float(10.0**e))


learning_rates = log_uniform(1e-3, 1e-1)
step_norms = log_uniform(1e-3, 1e-2)  # ||Δθ|| for first-order tests (the step is rescaled to this size)
gains = st.builds(lambda s, m: s * m, st.sampled_from([-1.0, 1.0]), log_uniform(0.1, 10.0))
batch_sizes = st.integers(1, 5)
input_dims = st.integers(1, 6)
