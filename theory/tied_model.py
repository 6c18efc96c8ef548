"""Exact one-step change of the tied-weights toy model of superposition (Elhage et al. 2022).

Model (one instance). W ∈ R^{n×d} with rows d_j (feature directions), b ∈ R^n:

    h(x) = Wᵀ x,     z(x) = W h(x) + b = W Wᵀ x + b,     x̂(x) = ReLU(z(x)).

Narrow task. L(W, b) = -g · mean_{x∈T} φ(x) z_t(x), with φ ≡ 1 (objective "preactivation") or
φ(x) = 1[z_t(x) > 0] (objective "output": L = -g mean x̂_t). W is used twice — as the encoder
(h = Wᵀx) and as the decoder (z_j = <d_j, h>) — so both uses contribute to the gradient:

    ∇_W L = -g (x̃ d_tᵀ + e_t h̃ᵀ),   ∇_b L = -g φ̄ e_t,   x̃ = mean φ(x) x,  h̃ = Wᵀ x̃,  φ̄ = mean φ(x).

Any update (ΔW, Δb) changes the pre-activations on a probe x' *exactly* by (z is bilinear in W)

    Δz(x') = ΔW h(x')          (decoder: d_j moves;        row j: <Δd_j, h(x')>)
           + W ΔWᵀ x'          (encoder: h moves;          row j: <d_j, Δh(x')>)
           + ΔW ΔWᵀ x'         (second order, O(η²))
           + Δb.

For one SGD step, ΔW = η g (x̃ d_tᵀ + e_t h̃ᵀ) and, for every j ≠ t,

    Δz_j(x') = η g [ <d_j, d_t> <x̃, x'>  +  <d_j, h̃> x'_t  +  x̃_j <d_t, h(x')> ]
             + η² g² x̃_j <d_t, d_t <x̃, x'> + h̃ x'_t>.

The first bracket is the isotropic term (∝ similarity <d_j, d_t>); the second is the representation's
push along h̃ seen by probes that contain the target; the third is the co-occurrence of feature j in
the fine-tuning data. For purely narrow data (x̃ = c e_t, h̃ = c d_t) it collapses to

    Δz_j(x') = 2 η g c <d_j, d_t> x'_t        (j ≠ t; exact: ΔW_j = 0, so no O(η²) term),

where ΔW = 2 η g c e_t d_tᵀ moves only d_t: the factor 2 is the two uses of d_t in z_t (encoder and
decoder) adding equally to d_t's gradient, and for j ≠ t the whole change arrives through the encoder
term W ΔWᵀ x' (the decoder term ΔW h is zero on row j).

Where it is exact, first-order, or gated:
- Δz given (ΔW, Δb): exact for any update (``preactivation_change(order="exact")``).
- The gradient: exact for "preactivation"; for "output" it is the a.e. gradient with the gates φ(x)
  frozen at the current W (a step that flips a gate is still described exactly by the Δz formula,
  but the next gradient differs).
- Several steps predicted from the initial W: first order in the total update (error O((Kη)²)).
- Adam's first step: ΔW = η ∇/(|∇|+ε) applied to -∇L, i.e. an elementwise sign step; plug it in.
  K Adam steps ≈ K first steps is first order only: it holds while each gradient component changes by a
  small fraction over the K steps (Adam's m̂/√v̂ equals the sign only for a constant gradient).
- Post-ReLU outputs: Δx̂_j = ReLU(z_j + Δz_j) - ReLU(z_j) — equal to Δz_j only where both are > 0.

All functions accept leading instance dimensions: W (..., n, d), b (..., n), x (..., batch, n).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Objective = Literal["preactivation", "output"]
Order = Literal["exact", "first"]


@dataclass(frozen=True)
class Update:
    """A parameter change of the tied model: dW (..., n, d), db (..., n)."""

    dW: Tensor
    db: Tensor

    def __mul__(self, factor: float) -> "Update":
        return Update(self.dW * factor, self.db * factor)

    __rmul__ = __mul__


def hidden(W: Tensor, x: Tensor) -> Tensor:
    """h(x) = Wᵀ x for a batch: W (..., n, d), x (..., B, n) -> (..., B, d)."""
    return x @ W


def preactivation(W: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """z(x) = W Wᵀ x + b: (..., B, n)."""
    return hidden(W, x) @ W.transpose(-1, -2) + b[..., None, :]


def narrow_gradient(W: Tensor, b: Tensor, x_train: Tensor, target: int, *, g: float = 1.0,
                    objective: Objective = "preactivation") -> Update:
    """Closed-form ∇L for L = -g mean φ(x) z_t(x): ∇_W = -g (x̃ d_tᵀ + e_t h̃ᵀ), ∇_b = -g φ̄ e_t."""
    if objective == "preactivation":
        gate = torch.ones_like(x_train[..., 0])
    elif objective == "output":
        gate = (preactivation(W, b, x_train)[..., target] > 0).to(x_train.dtype)
    else:
        raise ValueError(f"unknown objective {objective!r}")
    x_tilde = (gate[..., None] * x_train).mean(dim=-2)  # (..., n)
    h_tilde = (x_tilde[..., None, :] @ W)[..., 0, :]  # (..., d)
    d_t = W[..., target, :]
    grad_W = -g * x_tilde[..., :, None] * d_t[..., None, :]
    grad_W[..., target, :] -= g * h_tilde
    grad_b = torch.zeros_like(b)
    grad_b[..., target] = -g * gate.mean(dim=-1)
    return Update(grad_W, grad_b)


def sgd_update(grad: Update, lr: float) -> Update:
    """(ΔW, Δb) = -η ∇L."""
    return grad * (-lr)


def adam_first_update(grad: Update, lr: float, eps: float = 1e-8) -> Update:
    """Adam's bias-corrected first step: -η ∇/(|∇| + ε) elementwise (≈ -η sign ∇)."""
    return Update(-lr * grad.dW / (grad.dW.abs() + eps), -lr * grad.db / (grad.db.abs() + eps))


def change_terms(W: Tensor, update: Update, x_probe: Tensor) -> dict[str, Tensor]:
    """The four exact terms of Δz(x') (each (..., P, n)): decoder, encoder, second_order, bias."""
    dWt = update.dW.transpose(-1, -2)
    dh = hidden(update.dW, x_probe)  # Δh(x') = ΔWᵀ x'
    return {
        "decoder": hidden(W, x_probe) @ dWt,
        "encoder": dh @ W.transpose(-1, -2),
        "second_order": dh @ dWt,
        "bias": update.db[..., None, :].expand(*x_probe.shape[:-1], update.db.shape[-1]),
    }


def preactivation_change(W: Tensor, update: Update, x_probe: Tensor, *, order: Order = "exact") -> Tensor:
    """Δz(x') = ΔW h + W ΔWᵀ x' + Δb [+ ΔW ΔWᵀ x' if exact]: (..., P, n)."""
    terms = change_terms(W, update, x_probe)
    total = terms["decoder"] + terms["encoder"] + terms["bias"]
    return total + terms["second_order"] if order == "exact" else total


def output_change(W: Tensor, b: Tensor, update: Update, x_probe: Tensor, *, order: Order = "exact") -> Tensor:
    """Δx̂(x') = ReLU(z + Δz) - ReLU(z): the ReLU-gated change of the model's outputs, (..., P, n)."""
    z = preactivation(W, b, x_probe)
    return torch.relu(z + preactivation_change(W, update, x_probe, order=order)) - torch.relu(z)


def similarity_term(W: Tensor, target: int, x_train: Tensor, x_probe: Tensor, *, lr: float, g: float = 1.0) -> Tensor:
    """The isotropic component η g <d_j, d_t> <x̄, x'> alone, (..., P, n) (objective "preactivation")."""
    sims = W @ W[..., target, :, None]  # (..., n, 1)
    overlap = x_probe @ x_train.mean(dim=-2)[..., :, None]  # (..., P, 1)
    return lr * g * overlap * sims.transpose(-1, -2)
