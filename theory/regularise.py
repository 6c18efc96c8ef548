"""Geometric regularisation for the tied toy model: fine-tune without moving any harmful pre-activation.

With rows d_j of W (n, d), z_h(x') = <d_h, Wᵀx'> + b_h. An update (ΔW, Δb) changes it exactly by

    Δz_h(x') = <Δd_h, h(x')> + <d_h, ΔWᵀx'> + <Δd_h, ΔWᵀx'> + Δb_h,     ΔWᵀx' = Σ_j x'_j Δd_j.

If Δd_h = 0 and Δb_h = 0 for every h ∈ H, and every row Δd_j is orthogonal to S = span{d_h : h ∈ H}, each
term vanishes: Δz_h(x') = 0 for every probe x' (exactly, not only to first order). Plain SGD keeps these
constraints step after step when each gradient is edited as

    G_W ← G_W (I - P_S),   G_W[h] ← 0,   G_b[h] ← 0      (P_S: orthogonal projector onto S),

because the harmful rows, hence S, never move. Adam rescales the edited gradient elementwise, which breaks
the orthogonality: with Adam the invariance is only approximate.

A softer alternative penalises the growth of harmful pre-activations on the fine-tuning inputs,

    P(W, b) = Σ_instances mean_{x∈T} Σ_{h∈H} (z_h(x) - z_h^0(x))²,     z^0: the model before fine-tuning,

added to the task loss with a weight λ (a trade-off, not an invariance). Its one-sided variant (BLOCK-EM-style)
Σ_h relu(z_h(x) − z_h^0(x))² penalises only rises: a harmful feature may fall freely.
"""

from __future__ import annotations

import torch
from torch import Tensor

from theory.errors import InputError
from theory.tied_model import preactivation


def span_basis(directions: Tensor, *, rtol: float = 1e-6) -> Tensor:
    """An orthonormal basis Q (d, r) of the span of the rows of ``directions`` (k, d), r = their numerical rank
    (singular directions with σ ≤ rtol·σ_max dropped: collinear or zero rows are fine); P_S = Q Qᵀ."""
    if directions.ndim != 2 or directions.shape[0] == 0:
        raise InputError("the harmful direction set is empty: give at least one direction")
    _, sigma, vh = torch.linalg.svd(directions, full_matrices=False)
    keep = sigma > rtol * sigma.amax().clamp_min(1e-30)
    return vh[keep].T.contiguous()


def span_projector(directions: Tensor, *, rtol: float = 1e-6) -> Tensor:
    """P_S, the orthogonal projector onto the span of the rows of ``directions`` (..., k, d) -> (..., d, d).

    Rank-aware: singular directions with σ ≤ rtol·σ_max are dropped (collinear or zero rows are fine)."""
    if directions.ndim < 2 or directions.shape[-2] == 0:
        raise InputError("the harmful direction set is empty: give at least one direction")
    _, sigma, vh = torch.linalg.svd(directions, full_matrices=False)  # vh (..., r, d)
    keep = (sigma > rtol * sigma.amax(dim=-1, keepdim=True).clamp_min(1e-30)).to(directions.dtype)
    basis = vh * keep[..., :, None]
    return basis.transpose(-1, -2) @ basis


def project_gradient_(grad_W: Tensor, grad_b: Tensor, harmful, projector: Tensor) -> None:
    """In place: G_W ← G_W (I - P_S); harmful rows of G_W and entries of G_b ← 0.

    grad_W (..., n, d), grad_b (..., n), projector (..., d, d) from ``span_projector``."""
    index = torch.as_tensor(harmful, dtype=torch.long)
    grad_W.sub_(grad_W @ projector)
    grad_W[..., index, :] = 0.0
    grad_b[..., index] = 0.0


def squared_growth(z: Tensor, z0: Tensor) -> Tensor:
    """Σ_h (z_h − z_h^0)² over the last axis: the growth of a set of pre-activations from their values z0
    before fine-tuning, per input. z, z0 (..., |H|) -> (...)."""
    return (z - z0).pow(2).sum(dim=-1)


def one_sided_growth(z: Tensor, z0: Tensor) -> Tensor:
    """Σ_h relu(z_h − z_h^0)² over the last axis: only rises of the pre-activations above their values z0 before
    fine-tuning count (a falling feature adds 0 and gets no gradient). z, z0 (..., |H|) -> (...)."""
    return torch.relu(z - z0).pow(2).sum(dim=-1)


def harmful_growth_penalty(W: Tensor, b: Tensor, W0: Tensor, b0: Tensor, x: Tensor, harmful) -> Tensor:
    """P = Σ_instances mean_x Σ_h (z_h(x) - z_h^0(x))²: W, W0 (..., n, d), b, b0 (..., n), x (..., N, n) -> scalar."""
    index = torch.as_tensor(harmful, dtype=torch.long)
    return squared_growth(preactivation(W, b, x)[..., index], preactivation(W0, b0, x)[..., index]).mean(dim=-1).sum()
