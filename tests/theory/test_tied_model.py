"""theory.tied_model against autograd: the tied toy model z = W Wᵀ x + b, x̂ = ReLU(z), rows of W the
feature directions, trained one step on the narrow loss L = -g mean φ(x) z_t(x).

The reference path (``ref_preactivation``, ``ref_loss``, torch.optim) never calls theory/; every
closed form in tied_model — gradient, exact and first-order Δz, the per-feature formula of the
docstring, the narrow-data collapse to 2 η g c <d_j, d_t> x'_t, the ReLU gating — is checked against it.
All shapes may carry leading instance dimensions: W (..., n, d), b (..., n), x (..., B, n).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

from strategies import (DTYPE, KINDS, _gen, batch_sizes, gains, gaussian, learning_rates, make_directions,
                        orthogonal_matrices, seeds, sparse_features, step_norms)
from theory.tied_model import (Update, adam_first_update, change_terms, hidden, narrow_gradient, output_change,
                               preactivation, preactivation_change, sgd_update, similarity_term)

OBJECTIVES = ("preactivation", "output")


# ----------------------------------------------------------------------------------------------- setups

@dataclass(frozen=True)
class TiedSetup:
    W: Tensor  # (..., n, d)
    b: Tensor  # (..., n)
    x_train: Tensor  # (..., B, n)
    x_probe: Tensor  # (..., P, n)
    target: int
    g: float
    kind: str

    @property
    def n(self) -> int:
        return self.W.shape[-2]

    def __repr__(self) -> str:
        return (f"TiedSetup(kind={self.kind!r}, W={tuple(self.W.shape)}, B={self.x_train.shape[-2]}, "
                f"P={self.x_probe.shape[-2]}, target={self.target}, g={self.g:.4g})")


@st.composite
def tied_setups(draw, kinds=KINDS, g=gains, batched: bool | None = None) -> TiedSetup:
    """One instance (no leading dims) or 1-3 stacked instances of the same kind and size."""
    kind = draw(st.sampled_from(kinds))
    if kind == "orthogonal":
        d = draw(st.integers(2, 8))
        n = draw(st.integers(2, d))
    else:
        n, d = draw(st.integers(2, 12)), draw(st.integers(1, 8))
    batched = draw(st.booleans()) if batched is None else batched
    lead = (draw(st.integers(1, 3)),) if batched else ()
    gen = _gen(draw(seeds))
    instances = [make_directions(kind, n, d, gen) for _ in range(lead[0] if lead else 1)]
    W = torch.stack(instances) if lead else instances[0]
    b = draw(gaussian(*lead, n, scale=0.3))
    x_train = draw(sparse_features(*lead, draw(batch_sizes), n))
    x_probe = draw(sparse_features(*lead, draw(batch_sizes), n))
    return TiedSetup(W, b, x_train, x_probe, draw(st.integers(0, n - 1)), draw(g), kind)


# ------------------------------------------------------------------------------- reference (autograd)

def ref_preactivation(W: Tensor, b: Tensor, x: Tensor) -> Tensor:
    """z_j(x) = Σ_k <d_j, d_k> x_k + b_j, written independently of theory/."""
    return torch.einsum("...jd,...kd,...bk->...bj", W, W, x) + b[..., None, :]


def ref_loss(W: Tensor, b: Tensor, x: Tensor, target: int, g: float, objective: str) -> Tensor:
    """L = -g mean_x φ z_t (summed over instances, whose gradients are independent)."""
    z_t = ref_preactivation(W, b, x)[..., target]
    phi_z = z_t if objective == "preactivation" else torch.relu(z_t)
    return (-g * phi_z.mean(dim=-1)).sum()


def autograd_step(s: TiedSetup, lr: float, *, objective: str = "preactivation", optimiser: str = "sgd",
                  steps: int = 1, x_train: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``steps`` optimiser steps on the narrow loss; returns (W', b', ∇_W L, ∇_b L at the start)."""
    x_train = s.x_train if x_train is None else x_train
    W, b = s.W.clone().requires_grad_(True), s.b.clone().requires_grad_(True)
    opt = {"sgd": lambda: torch.optim.SGD([W, b], lr=lr), "adam": lambda: torch.optim.Adam([W, b], lr=lr)}[optimiser]()
    grads = None
    for _ in range(steps):
        opt.zero_grad()
        ref_loss(W, b, x_train, s.target, s.g, objective).backward()
        if grads is None:
            grads = (W.grad.detach().clone(), b.grad.detach().clone())
        opt.step()
    return W.detach(), b.detach(), *grads


def measured_dz(s: TiedSetup, W_new: Tensor, b_new: Tensor) -> Tensor:
    return ref_preactivation(W_new, b_new, s.x_probe) - ref_preactivation(s.W, s.b, s.x_probe)


def z_of(s: TiedSetup) -> Tensor:
    """The probes' pre-activations (the scale of a measured change's rounding error)."""
    return ref_preactivation(s.W, s.b, s.x_probe)


def scale_of(*tensors: Tensor) -> float:
    return max([1.0, *(float(t.abs().max()) for t in tensors if t.numel())])


def close(actual: Tensor, expected: Tensor, rel: float = 1e-12, *, also: tuple[Tensor, ...] = ()) -> None:
    """|actual - expected| ≤ rel · max(1, |expected|, |also|): ``also`` carries the pre-activations when
    ``expected`` is a measured difference z' - z (whose rounding error scales with |z|, not |Δz|)."""
    torch.testing.assert_close(actual, expected, rtol=0, atol=rel * scale_of(expected, *also))


# ------------------------------------------------------------------------------- gradient

@pytest.mark.parametrize("objective", OBJECTIVES)
@settings(max_examples=30)
@given(s=tied_setups())
def test_narrow_gradient_matches_autograd(objective, s):
    """∇_W L = -g (x̃ d_tᵀ + e_t h̃ᵀ), ∇_b L = -g φ̄ e_t (encoder and decoder uses of W both count)."""
    _, _, grad_W, grad_b = autograd_step(s, 0.0, objective=objective)
    grad = narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g, objective=objective)
    close(grad.dW, grad_W)
    close(grad.db, grad_b)


def test_narrow_gradient_rejects_unknown_objective():
    W = torch.eye(3, dtype=DTYPE)
    with pytest.raises(ValueError, match="objective"):
        narrow_gradient(W, torch.zeros(3, dtype=DTYPE), torch.ones(2, 3, dtype=DTYPE), 0, objective="loss")


def test_model_functions_match_reference():
    torch.manual_seed(0)
    W, b, x = torch.randn(2, 5, 3, dtype=DTYPE), torch.randn(2, 5, dtype=DTYPE), torch.randn(2, 4, 5, dtype=DTYPE)
    close(hidden(W, x), torch.einsum("ind,ibn->ibd", W, x))
    close(preactivation(W, b, x), ref_preactivation(W, b, x))


# ------------------------------------------------------------------------------- exact one-step change

@pytest.mark.parametrize("objective", OBJECTIVES)
@settings(max_examples=30)
@given(s=tied_setups(), lr=learning_rates)
def test_exact_change_matches_one_sgd_step(objective, s, lr):
    """Δz(x') = ΔW h + W ΔWᵀ x' + ΔW ΔWᵀ x' + Δb reproduces the autograd SGD step to fp precision,
    and the four change_terms add up to it."""
    W_new, b_new, _, _ = autograd_step(s, lr, objective=objective)
    update = sgd_update(narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g, objective=objective), lr)
    close(update.dW, W_new - s.W)
    close(update.db, b_new - s.b)
    measured = measured_dz(s, W_new, b_new)
    close(preactivation_change(s.W, update, s.x_probe, order="exact"), measured, also=(z_of(s),))
    close(sum(change_terms(s.W, update, s.x_probe).values()), measured, also=(z_of(s),))


@pytest.mark.parametrize("objective", OBJECTIVES)
@settings(max_examples=40)
@given(s=tied_setups(), lr=learning_rates)
def test_exact_change_matches_adam_first_step(objective, s, lr):
    """adam_first_update equals torch.optim.Adam's first step (an elementwise sign step), and the exact
    Δz formula reproduces the change it causes."""
    W_new, b_new, _, _ = autograd_step(s, lr, objective=objective, optimiser="adam")
    update = adam_first_update(narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g, objective=objective), lr)
    close(update.dW, W_new - s.W)
    close(update.db, b_new - s.b)
    close(preactivation_change(s.W, update, s.x_probe, order="exact"), measured_dz(s, W_new, b_new), also=(z_of(s),))


@settings(max_examples=30)
@given(s=tied_setups(), update_seed=seeds, scale=st.floats(1e-3, 10.0))
def test_exact_change_holds_for_any_update(s, update_seed, scale):
    """z is a polynomial of degree 2 in W: the exact formula holds for an arbitrary (ΔW, Δb), small or large."""
    gen = _gen(update_seed)
    update = Update(scale * torch.randn(s.W.shape, generator=gen, dtype=DTYPE),
                    scale * torch.randn(s.b.shape, generator=gen, dtype=DTYPE))
    measured = ref_preactivation(s.W + update.dW, s.b + update.db, s.x_probe) - ref_preactivation(s.W, s.b, s.x_probe)
    close(preactivation_change(s.W, update, s.x_probe, order="exact"), measured, also=(z_of(s), ref_preactivation(s.W + update.dW, s.b + update.db, s.x_probe)))
    terms = change_terms(s.W, update, s.x_probe)
    close(terms["decoder"], torch.einsum("...jd,...kd,...pk->...pj", update.dW, s.W, s.x_probe))
    close(terms["encoder"], torch.einsum("...jd,...kd,...pk->...pj", s.W, update.dW, s.x_probe))
    close(terms["second_order"], torch.einsum("...jd,...kd,...pk->...pj", update.dW, update.dW, s.x_probe))


@settings(max_examples=30)
@given(s=tied_setups(), lr=learning_rates)
def test_first_order_error_is_exactly_quadratic(s, lr):
    """order="first" misses only ΔW ΔWᵀ x', which is η² times a fixed matrix: the error shrinks by
    exactly 4 when η halves."""
    grad = narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g)

    def error(eta: float) -> Tensor:
        W_new, b_new, _, _ = autograd_step(s, eta)
        return measured_dz(s, W_new, b_new) - preactivation_change(s.W, sgd_update(grad, eta), s.x_probe, order="first")

    e_full, e_half = error(lr), error(lr / 2)
    close(e_full, change_terms(s.W, sgd_update(grad, lr), s.x_probe)["second_order"], also=(z_of(s),))
    torch.testing.assert_close(e_full, 4 * e_half, rtol=1e-6, atol=1e-11 * scale_of(z_of(s)))


@settings(max_examples=30)
@given(s=tied_setups(), step=step_norms)
def test_several_steps_are_first_order_in_the_total_update(s, step):
    """K SGD steps vs the first-order prediction from the initial W with K times the initial step:
    error O((K η)²) (shrinks ~4x when η halves)."""
    k = 3
    grad = narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g)
    lr = step / max(float(grad.dW.norm()), 1e-12)

    def error(eta: float) -> Tensor:
        W_new, b_new, _, _ = autograd_step(s, eta, steps=k)
        return measured_dz(s, W_new, b_new) - preactivation_change(s.W, sgd_update(grad, k * eta), s.x_probe, order="first")

    e_full, e_half = float(error(lr).norm()), float(error(lr / 2).norm())
    if e_full > 1e-10 * scale_of(z_of(s)):
        assert e_full / e_half >= 3.5, f"{e_full:.3e} -> {e_half:.3e}"


@settings(max_examples=30)
@given(s=tied_setups(), step=step_norms)
def test_several_adam_steps_are_first_order_in_the_total_update(s, step):
    """K Adam steps vs K copies of its first (sign) step: m̂/√v̂ drifts from ±1 as each gradient
    component's magnitude changes, so the match is first order, not exact — in the regime where every
    component changes by a small fraction over the K steps (checked here: ≤ 5%), the error shrinks ~4x
    when η halves. (Where a component changes by tens of per cent, or flips sign, even that fails.)"""
    k = 3
    grad = narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g)
    lr = step / s.W.numel() ** 0.5
    first = adam_first_update(grad, lr)
    late = narrow_gradient(s.W + (k - 1) * first.dW, s.b + (k - 1) * first.db, s.x_train, s.target, g=s.g)
    active = grad.dW.abs() > 1e-6
    if bool(active.any()) and float(((late.dW - grad.dW).abs()[active] / grad.dW.abs()[active]).max()) > 0.05:
        return  # outside the small-relative-change regime: the first-order statement does not apply

    def error(eta: float) -> Tensor:
        W_new, b_new, _, _ = autograd_step(s, eta, optimiser="adam", steps=k)
        return measured_dz(s, W_new, b_new) - preactivation_change(s.W, adam_first_update(grad, k * eta), s.x_probe)

    e_full, e_half = float(error(lr).norm()), float(error(lr / 2).norm())
    if e_full > 1e-10 * scale_of(z_of(s)):
        assert e_full / e_half >= 3.5, f"{e_full:.3e} -> {e_half:.3e}"


# ------------------------------------------------------------------------------- closed forms per feature

@settings(max_examples=30)
@given(s=tied_setups(), lr=learning_rates)
def test_per_feature_formula_of_the_docstring(s, lr):
    """For j ≠ t, one SGD step on the pre-activation objective gives
    Δz_j = η g [<d_j,d_t><x̃,x'> + <d_j,h̃> x'_t + x̃_j <d_t,h(x')>] + η² g² x̃_j <d_t, d_t<x̃,x'> + h̃ x'_t>."""
    W_new, b_new, _, _ = autograd_step(s, lr)
    measured = measured_dz(s, W_new, b_new)
    t, W, xp = s.target, s.W, s.x_probe
    x_tilde = s.x_train.mean(dim=-2)  # (..., n)
    h_tilde = torch.einsum("...n,...nd->...d", x_tilde, W)
    d_t = W[..., t, :]
    sims = torch.einsum("...jd,...d->...j", W, d_t)[..., None, :]  # (..., 1, n)
    overlap = torch.einsum("...pn,...n->...p", xp, x_tilde)[..., :, None]  # (..., P, 1)
    x_t = xp[..., :, t, None]  # (..., P, 1)
    proj_h = torch.einsum("...jd,...d->...j", W, h_tilde)[..., None, :]
    cooc = x_tilde[..., None, :] * torch.einsum("...pn,...nd,...d->...p", xp, W, d_t)[..., :, None]
    push = overlap * (d_t * d_t).sum(-1)[..., None, None] + x_t * (d_t * h_tilde).sum(-1)[..., None, None]
    predicted = lr * s.g * (sims * overlap + proj_h * x_t + cooc) + (lr * s.g) ** 2 * x_tilde[..., None, :] * push
    others = [j for j in range(s.n) if j != t]
    close(predicted[..., others], measured[..., others], also=(z_of(s),))
    # and its first bracket's first term is similarity_term
    close(similarity_term(W, t, s.x_train, xp, lr=lr, g=s.g), lr * s.g * sims * overlap)


@settings(max_examples=30)
@given(s=tied_setups(), lr=learning_rates, c_seed=seeds)
def test_narrow_data_collapses_to_twice_the_similarity(s, lr, c_seed):
    """Purely narrow data x = c_i e_t (x̃ = c e_t, h̃ = c d_t): for j ≠ t, exactly
    Δz_j(x') = 2 η g c <d_j, d_t> x'_t = 2 · similarity_term_j. The 2 is the two uses of d_t in z_t
    (decoder x̃_t d_t and encoder h̃ = c d_t) adding equally to the gradient on d_t; only row t moves
    (ΔW = 2ηgc e_t d_tᵀ), so for j ≠ t the whole change arrives through the encoder term Δh = ΔWᵀx'."""
    t, lead, n_train = s.target, s.x_train.shape[:-2], s.x_train.shape[-2]
    coeffs = 0.1 + torch.rand(*lead, n_train, generator=_gen(c_seed), dtype=DTYPE)
    x_train = torch.zeros_like(s.x_train)
    x_train[..., t] = coeffs
    W_new, b_new, _, _ = autograd_step(s, lr, x_train=x_train)
    measured = measured_dz(s, W_new, b_new)
    c = coeffs.mean(dim=-1)[..., None, None]
    sims = torch.einsum("...jd,...d->...j", s.W, s.W[..., t, :])[..., None, :]
    expected = 2 * lr * s.g * c * sims * s.x_probe[..., :, t, None]
    others = [j for j in range(s.n) if j != t]
    close(measured[..., others], expected[..., others], also=(z_of(s),))
    close(measured[..., others], 2 * similarity_term(s.W, t, x_train, s.x_probe, lr=lr, g=s.g)[..., others], also=(z_of(s),))
    # ΔW_j = 0 for j ≠ t: the exact and first-order predictions coincide on those features, the decoder
    # term vanishes there and the encoder term carries all of it
    update = sgd_update(narrow_gradient(s.W, s.b, x_train, t, g=s.g), lr)
    close(update.dW[..., others, :], torch.zeros_like(update.dW[..., others, :]))
    close(update.dW[..., t, :], 2 * lr * s.g * c[..., 0] * s.W[..., t, :])
    close(preactivation_change(s.W, update, s.x_probe, order="first")[..., others], measured[..., others], also=(z_of(s),))
    terms = change_terms(s.W, update, s.x_probe)
    close(terms["encoder"][..., others], measured[..., others], also=(z_of(s),))
    assert float(terms["decoder"][..., others].abs().max()) == 0.0


@settings(max_examples=30)
@given(s=tied_setups(), lr=learning_rates, c_seed=seeds, k=st.integers(1, 6))
def test_narrow_data_k_sgd_steps_are_geometric(s, lr, c_seed, k):
    """Narrow data, K SGD steps: only d_t moves, d_t ← (1 + 2ηgc) d_t per step, so for j ≠ t exactly
    Δz_j(x') = ((1 + 2ηgc)^K - 1) <d_j, d_t> x'_t (the first-order K·ΔW₁ prediction gives 2Kηgc)."""
    t = s.target
    x_train = torch.zeros_like(s.x_train)
    x_train[..., t] = 0.1 + torch.rand(s.x_train.shape[:-1], generator=_gen(c_seed), dtype=DTYPE)
    W_new, b_new, _, _ = autograd_step(s, lr, x_train=x_train, steps=k)
    c = x_train[..., t].mean(dim=-1)[..., None, None]
    sims = torch.einsum("...jd,...d->...j", s.W, s.W[..., t, :])[..., None, :]
    expected = ((1 + 2 * lr * s.g * c) ** k - 1) * sims * s.x_probe[..., :, t, None]
    others = [j for j in range(s.n) if j != t]
    close(measured_dz(s, W_new, b_new)[..., others], expected[..., others],
          also=(z_of(s), ref_preactivation(W_new, b_new, s.x_probe)))


@settings(max_examples=30)
@given(s=tied_setups(kinds=("orthogonal",)), lr=learning_rates, c_seed=seeds)
def test_narrow_data_leaves_orthogonal_features_untouched(s, lr, c_seed):
    """Orthogonal dictionary and narrow data: every j ≠ t keeps its pre-activation exactly."""
    t = s.target
    x_train = torch.zeros_like(s.x_train)
    x_train[..., t] = 0.1 + torch.rand(s.x_train.shape[:-1], generator=_gen(c_seed), dtype=DTYPE)
    W_new, b_new, _, _ = autograd_step(s, lr, x_train=x_train)
    others = [j for j in range(s.n) if j != t]
    assert float(measured_dz(s, W_new, b_new)[..., others].abs().max()) <= 1e-12 * scale_of(z_of(s))


# ------------------------------------------------------------------------------- outputs and invariances

@pytest.mark.parametrize("objective", OBJECTIVES)
@settings(max_examples=30)
@given(s=tied_setups(), lr=learning_rates)
def test_output_change_is_the_relu_gated_change(objective, s, lr):
    """Δx̂ = ReLU(z + Δz) - ReLU(z) matches autograd; it equals Δz where z and z + Δz are both > 0 and
    vanishes where both are ≤ 0."""
    W_new, b_new, _, _ = autograd_step(s, lr, objective=objective)
    update = sgd_update(narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g, objective=objective), lr)
    z, z_new = ref_preactivation(s.W, s.b, s.x_probe), ref_preactivation(W_new, b_new, s.x_probe)
    out = output_change(s.W, s.b, update, s.x_probe, order="exact")
    close(out, torch.relu(z_new) - torch.relu(z), also=(z,))
    dz = preactivation_change(s.W, update, s.x_probe)
    both_on, both_off = (z > 0) & (z + dz > 0), (z <= 0) & (z + dz <= 0)
    close(out[both_on], dz[both_on], also=(z,))
    assert torch.equal(out[both_off], torch.zeros_like(out[both_off]))


@pytest.mark.parametrize("objective", OBJECTIVES)
@settings(max_examples=30)
@given(data=st.data())
def test_rotation_of_hidden_space_changes_nothing(objective, data):
    """W -> W Q (Q orthogonal): h -> Qᵀ h, z unchanged; the gradient rotates (∇_W -> ∇_W Q) and every
    predicted change (exact, first order, output, similarity term) is unchanged."""
    s = data.draw(tied_setups())
    lr = data.draw(learning_rates)
    q = data.draw(orthogonal_matrices(s.W.shape[-1]))
    Wq = s.W @ q
    close(ref_preactivation(Wq, s.b, s.x_probe), ref_preactivation(s.W, s.b, s.x_probe))
    grad = narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g, objective=objective)
    grad_q = narrow_gradient(Wq, s.b, s.x_train, s.target, g=s.g, objective=objective)
    close(grad_q.dW, grad.dW @ q)
    close(grad_q.db, grad.db)
    up, up_q = sgd_update(grad, lr), sgd_update(grad_q, lr)
    for order in ("exact", "first"):
        close(preactivation_change(Wq, up_q, s.x_probe, order=order), preactivation_change(s.W, up, s.x_probe, order=order))
        close(output_change(Wq, s.b, up_q, s.x_probe, order=order), output_change(s.W, s.b, up, s.x_probe, order=order))
    close(similarity_term(Wq, s.target, s.x_train, s.x_probe, lr=lr), similarity_term(s.W, s.target, s.x_train, s.x_probe, lr=lr))


@settings(max_examples=30)
@given(s=tied_setups(batched=True), lr=learning_rates)
def test_instances_are_independent(s, lr):
    """Batched instances give the same answers as each instance alone."""
    grad = narrow_gradient(s.W, s.b, s.x_train, s.target, g=s.g, objective="output")
    dz = preactivation_change(s.W, sgd_update(grad, lr), s.x_probe)
    for i in range(s.W.shape[0]):
        gi = narrow_gradient(s.W[i], s.b[i], s.x_train[i], s.target, g=s.g, objective="output")
        close(gi.dW, grad.dW[i])
        close(gi.db, grad.db[i])
        close(preactivation_change(s.W[i], sgd_update(gi, lr), s.x_probe[i]), dz[i])


def test_update_scaling():
    u = Update(torch.ones(2, 2, dtype=DTYPE), torch.ones(2, dtype=DTYPE))
    for scaled in (u * 3.0, 3.0 * u):
        assert torch.equal(scaled.dW, 3 * u.dW) and torch.equal(scaled.db, 3 * u.db)
