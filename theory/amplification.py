"""First-order change of every feature's pre-activation after a narrow fine-tuning step (general model).

Setting. Representation h_θ(x) ∈ R^d; a frozen feature dictionary with rows d_j (n_features, d); the
pre-activation a_j(x) = <d_j, h_θ(x)>. The narrow loss L(θ) = -g · mean_{x∈T} a_t(x) pushes the target
feature t up (g > 0), so ∂L/∂h(x) = -(g/|T|) d_t. One preconditioned step (P = I for SGD, diagonal for
Adam-like optimisers) is

    Δθ = -η P ∇_θ L = η g P J̄ᵀ d_t,           J(x) = ∂h_θ(x)/∂θ ∈ R^{d×p},  J̄ = mean_{x∈T} J(x)

and, by Taylor's theorem, every feature on a probe x' changes by

    Δa_j(x') = η g d_jᵀ J(x') P J̄ᵀ d_t + O(‖Δθ‖²) = η g d_jᵀ Θ_P(x', T) d_t + O(η²),

with Θ_P(x', T) = J(x') P J̄ᵀ the d×d (preconditioned) tangent kernel. The O(η²) term vanishes exactly
when h is linear in θ.

Isotropic case. For a linear layer h = W x (θ = W), Θ(x', x) = <x', x> I, so

    Δa_j(x') = η g <x̄, x'> <d_j, d_t>        (exact for one step)

— amplification is proportional to similarity with the target, orthogonal features do not move, and
anti-aligned features are suppressed.

Adam's first step. With bias correction m̂ = ∇, v̂ = ∇² so Δθ = -η ∇/(|∇| + ε): the preconditioner is
P = diag(1 / (|∇_θ L| + ε)) (an elementwise sign step), see ``adam_first_step_preconditioner``.

Made to scale (``first_order_change``). For any update Δθ — one step as above, or a whole fine-tuning run's
weight change (e.g. a LoRA adapter's ΔW = s B A) — the first-order change of any differentiable f (the
representation h_θ(x'), a feature's pre-activation) is the Jacobian-vector product

    f(θ + Δθ) − f(θ) = J_f(θ) Δθ + O(‖Δθ‖²),

computed in one forward-mode pass (a few times the cost of f) without forming J_f. With f = θ ↦ d_jᵀ h_θ(x')
and Δθ = η g P J̄ᵀ d_t it is ``predict_change``; the O(‖Δθ‖²) remainder vanishes when f is affine in θ.
``calibrated_to_targets`` fixes the unknown scale η <x̄, x'> of the isotropic prediction without the
measurement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.func import jacrev, jvp

from theory.errors import InputError


def tangent_kernel(jac_probe: Tensor, jac_train: Tensor, precond: Tensor | None = None) -> Tensor:
    """Θ_P(x', T) = J(x') P J̄ᵀ: (..., d, p) x (d, p) [x (p,)] -> (..., d, d)."""
    right = jac_train if precond is None else jac_train * precond
    return jac_probe @ right.T


def predict_change(
    directions: Tensor,
    target: int,
    jac_probe: Tensor,
    jac_train_mean: Tensor,
    *,
    lr: float,
    g: float = 1.0,
    precond: Tensor | None = None,
) -> Tensor:
    """Δa_j(x') = η g d_jᵀ J(x') P J̄ᵀ d_t for all probes and features.

    directions (n_features, d); jac_probe (n_probe, d, p); jac_train_mean (d, p); precond (p,) or None.
    Returns (n_probe, n_features). Never forms the d×d kernel: v = P J̄ᵀ d_t (p,), then D J(x') v.
    """
    v = jac_train_mean.T @ directions[target]
    if precond is not None:
        v = v * precond
    dh = jac_probe @ v  # (n_probe, d): the first-order change of the representation
    return lr * g * dh @ directions.T


def isotropic_prediction(directions: Tensor, target: int, input_overlap: Tensor, *, lr: float, g: float = 1.0) -> Tensor:
    """Linear layer h = W x: Δa_j(x') = η g <x̄, x'> <d_j, d_t>. input_overlap (n_probe,) -> (n_probe, n_features)."""
    return lr * g * input_overlap[:, None] * (directions @ directions[target])[None, :]


def adam_first_step_preconditioner(grad: Tensor, eps: float = 1e-8) -> Tensor:
    """P = 1 / (|∇L| + ε): Adam's (and AdamW's, before weight decay) bias-corrected first step is -η P ∇L."""
    return 1.0 / (grad.abs() + eps)


def representation_jacobian(h_fn: Callable[[Tensor, Tensor], Tensor], params: Tensor, inputs: Tensor) -> Tensor:
    """J(x) = ∂h_θ(x)/∂θ for a model written as h_fn(params (p,), x) -> (d,); inputs (n, ...) -> (n, d, p)."""
    jac = jacrev(h_fn, argnums=0)
    return torch.stack([jac(params, x) for x in inputs])


def isotropic_set_contributions(directions: Tensor, target_directions: Tensor, target_weights: Tensor) -> Tensor:
    """The terms g_t <d_j, d_t> of ``isotropic_set_prediction``: (n_features, d), (n_targets, d), (n_targets,)
    -> (n_features, n_targets); row j sums to Δa_j (in units of η <x̄, x'>)."""
    dtype = torch.promote_types(directions.dtype, torch.float32)
    return (directions.to(dtype) @ target_directions.to(dtype).T) * target_weights.to(dtype)[None, :]


def isotropic_set_prediction(directions: Tensor, target_directions: Tensor, target_weights: Tensor) -> Tensor:
    """Several targets pushed at once, isotropic kernel: Δa_j(x') = η <x̄, x'> Σ_t g_t <d_j, d_t>.

    The narrow loss L = -mean_{x∈T} Σ_t g_t a_t(x) has ∂L/∂h = -Σ_t g_t d_t; with Θ(x', x) = <x, x'> I one step
    gives the formula above, i.e. the sum of the single-target predictions (``isotropic_prediction``). It is
    computed as D v with v = Σ_t g_t d_t (one matrix-vector product: no (n_features x n_targets) matrix), in
    units of η <x̄, x'>, which every feature shares. directions (n_features, d), target_directions
    (n_targets, d), target_weights g (n_targets,) -> (n_features,).

    For a frozen SAE dictionary in a real model this is the isotropic-kernel approximation, not an exact
    result: the true kernel J(x') P J(x)ᵀ of a transformer is not proportional to the identity."""
    dtype = torch.promote_types(directions.dtype, torch.float32)
    v = target_weights.to(dtype) @ target_directions.to(dtype)
    return directions.to(dtype) @ v


def relative_amplification(predicted: Tensor, target_predicted: Tensor) -> Tensor:
    """r_j = Δa_j / mean_t Δa_t: each feature's predicted change as a multiple of the mean predicted change of
    the targets themselves (scale-free: η and <x̄, x'> cancel). predicted (n,), target_predicted (n_targets,).
    An InputError when the targets' mean change is not positive (the step would not push them up)."""
    scale = target_predicted.mean()
    if not scale > 0:
        raise InputError(f"the targets' mean predicted change is {float(scale):.3g}, not positive")
    return predicted / scale


def amplification_risk(relative: Tensor) -> float:
    """mean_j max(r_j, 0) over a feature set (e.g. the harmful features): their mean predicted relative
    amplification, a predicted suppression counting as 0 (it cannot offset another feature's increase)."""
    if relative.numel() == 0:
        raise InputError("the feature set is empty: no amplification risk to compute")
    return float(relative.clamp_min(0).mean())


def first_order_change(fn: Callable[..., Any], primals: tuple, tangents: tuple) -> tuple[Any, Any]:
    """(f(θ), J_f(θ) Δθ): the value and the first-order change f(θ + Δθ) − f(θ) = J_f(θ) Δθ + O(‖Δθ‖²) of any
    differentiable ``fn`` at ``primals`` θ along ``tangents`` Δθ (tuples of tensors or pytrees of tensors of
    the same structure, shapes and dtypes), by one forward-mode pass (``torch.func.jvp``): J_f is never formed.
    Exact (to rounding) when ``fn`` is affine in θ. ``fn`` must be functional (no in-place change of state
    torch.func cannot trace, e.g. no ``requires_grad_`` inside)."""
    if len(primals) != len(tangents):
        raise ValueError(f"{len(primals)} primals but {len(tangents)} tangents")
    return jvp(fn, tuple(primals), tuple(tangents))


def calibrated_to_targets(prediction: Tensor, reference: Tensor, targets: Tensor) -> tuple[Tensor, float | None]:
    """Fix the unknown scale c of a prediction known up to a factor (the isotropic one, in units of η <x̄, x'>)
    from another prediction of the same change, not from the measurement: c = mean_t reference_t / mean_t
    prediction_t over the ``targets`` (indices), so that the targets' mean predicted change is the same under
    both. Returns (c · prediction, c), or (prediction, None) unscaled when either mean is not positive (the
    reference would not push the targets up, or the prediction's sign is undefined there).
    prediction, reference (n_features,), targets (n_targets,) long."""
    if targets.numel() == 0:
        raise InputError("no target features: nothing to calibrate the prediction's scale on")
    want, have = float(reference[targets].double().mean()), float(prediction[targets].double().mean())
    if not (want > 0 and have > 0):
        return prediction, None
    scale = want / have
    return prediction * scale, scale
