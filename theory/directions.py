"""A direction in the residual stream and its removal (the misalignment direction of issue 12).

- ``mean_difference(a, b)`` = (1/n) Σ_i a_i − (1/m) Σ_j b_j for a (n, d), b (m, d): the difference of mean
  residuals between two sets of answers (e.g. rogue vs aligned). Antisymmetric and translation invariant; computed
  in the wider of the inputs' dtypes and float32.
- ``project_out(h, u)`` = h − (h·û) û with û = u / ‖u‖ for h (..., d), u (d,) nonzero: the orthogonal projection
  onto u's complement, applied to every vector along h's last axis. Idempotent, orthogonal to u, never longer than
  h, leaves the components orthogonal to u unchanged and depends on u only through its line (u and c·u, c ≠ 0,
  give the same result). Computed in the wider of h's dtype and float32, returned in h's dtype.
- ``gap_fraction(before, after, u)`` = ((after_i − before_i)·u) / ‖u‖², per row i, for paired residuals
  before/after (n, d) and u = mean(rogue) − mean(aligned): how far each residual moved along u, in units of the
  whole rogue−aligned gap (1: as far as from the aligned to the rogue mean). Linear in the shift, antisymmetric
  in (before, after), invariant to a common translation, and scales as 1/c when u becomes c·u.
- ``steer(h, v, alpha)`` = h + α v for h (..., d), v (d,): activation steering (Turner et al. 2023; Chen et al.
  2025's persona vectors), added to every vector along h's last axis. α = 0 returns h unchanged bit for bit;
  linear in α, so steering by α then β equals steering by α + β (up to rounding); moves h·v̂ by α‖v‖ and leaves
  the components orthogonal to v unchanged.
- ``projection_difference(trained, base, u)`` = (t_i − b_i)·û per row i, for paired residuals trained/base (n, d)
  and û = u / ‖u‖: Chen et al. (2025)'s data screen — how much further along the trait direction a training
  sample's response lies than the base model's own response to the same prompt. Depends on u only through its
  direction (u and c·u, c > 0, agree), antisymmetric in (trained, base), invariant to a common translation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from theory.errors import InputError


def _finite(x: Tensor) -> bool:
    return x.numel() == 0 or bool(torch.isfinite(x).all())


def _check_sample(x: Tensor, name: str) -> None:
    if not x.is_floating_point():
        raise InputError(f"{name} must be a float tensor, got {x.dtype}")
    if x.ndim != 2:
        raise InputError(f"{name} must be a (n, d) matrix, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise InputError(f"{name} is empty: a mean needs at least one vector")
    if not _finite(x):
        raise InputError(f"{name} contains NaN or infinite values")


def mean_difference(a: Tensor, b: Tensor) -> Tensor:
    """mean(a) − mean(b), shape (d,), for a (n, d) and b (m, d), n, m ≥ 1 (module docstring)."""
    _check_sample(a, "a")
    _check_sample(b, "b")
    if a.shape[1] != b.shape[1]:
        raise InputError(f"a and b have different widths: a is (n, {a.shape[1]}), b is (m, {b.shape[1]})")
    dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
    return a.to(dtype).mean(dim=0) - b.to(dtype).mean(dim=0)


def unit(u: Tensor) -> Tensor:
    """û = u / ‖u‖ for a nonzero, finite (d,) vector u, in the wider of u's dtype and float32. Rescaled by its
    largest entry first, so tiny or huge (but finite) vectors do not under- or overflow."""
    if not u.is_floating_point() or u.ndim != 1:
        raise InputError(f"the direction must be a 1-D float vector, got shape {tuple(u.shape)} and {u.dtype}")
    if not _finite(u):
        raise InputError("the direction contains NaN or infinite values")
    u = u.to(torch.promote_types(u.dtype, torch.float32))
    scale = u.abs().max() if u.numel() else u.new_zeros(())
    if not bool(scale > 0):
        raise InputError("the direction is the zero vector: there is nothing to project out")
    u = u / scale
    return u / torch.linalg.vector_norm(u)


def project_out(h: Tensor, u: Tensor) -> Tensor:
    """h − (h·û) û along h's last axis, h (..., d), u (d,) nonzero; same shape and dtype as h (module docstring)."""
    if not h.is_floating_point():
        raise InputError(f"h must be a float tensor, got {h.dtype}")
    if h.ndim == 0 or h.shape[-1] != u.shape[-1] or u.ndim != 1:
        raise InputError(f"h (..., d) and the direction (d,) disagree: shapes {tuple(h.shape)} and {tuple(u.shape)}")
    u_hat = unit(u.to(h.device))
    dtype = torch.promote_types(h.dtype, u_hat.dtype)
    wide, u_hat = h.to(dtype), u_hat.to(dtype)
    return (wide - (wide @ u_hat)[..., None] * u_hat).to(h.dtype)


def gap_fraction(before: Tensor, after: Tensor, u: Tensor) -> Tensor:
    """((after − before)·u) / ‖u‖² per row, shape (n,), for before and after (n, d) and a nonzero u (d,)
    (module docstring)."""
    _check_sample(before, "before")
    _check_sample(after, "after")
    if before.shape != after.shape or before.shape[1] != u.shape[-1]:
        raise InputError(f"before {tuple(before.shape)}, after {tuple(after.shape)} and the direction "
                         f"{tuple(u.shape)} disagree")
    u_hat = unit(u)
    norm = torch.linalg.vector_norm(u.to(u_hat.dtype))
    dtype = torch.promote_types(torch.promote_types(before.dtype, after.dtype), u_hat.dtype)
    return ((after.to(dtype) - before.to(dtype)) @ u_hat.to(dtype)) / norm.to(dtype)


def steer(h: Tensor, v: Tensor, alpha: float) -> Tensor:
    """h + α v along h's last axis (module docstring); h itself when α = 0."""
    if v.ndim != 1 or h.shape[-1] != v.shape[0]:
        raise InputError(f"the steering vector has shape {tuple(v.shape)}, the residuals {tuple(h.shape)}")
    if alpha == 0:
        return h
    return h + alpha * v.to(h.dtype)


def projection_difference(trained: Tensor, base: Tensor, u: Tensor) -> Tensor:
    """(trained_i − base_i)·û per row, shape (n,), for trained and base (n, d) and a nonzero u (d,) (module
    docstring)."""
    _check_sample(trained, "trained")
    _check_sample(base, "base")
    if trained.shape != base.shape or trained.shape[1] != u.shape[-1] or u.ndim != 1:
        raise InputError(f"trained {tuple(trained.shape)}, base {tuple(base.shape)} and the direction "
                         f"{tuple(u.shape)} disagree")
    u_hat = unit(u)
    dtype = torch.promote_types(torch.promote_types(trained.dtype, base.dtype), u_hat.dtype)
    return (trained.to(dtype) - base.to(dtype)) @ u_hat.to(dtype)
