"""theory.amplification against autograd: one real optimiser step on a model h_θ(x) versus the
tangent-kernel prediction Δa_j(x') = η g d_jᵀ J(x') P J̄ᵀ d_t.

Models: the linear layer h = W x (the isotropic case, where the prediction is exact) and a one-hidden-
layer tanh MLP h = W2 tanh(W1 x + b1) + b2 (a generic non-linear model, where it is first order).
Both are written as functions of a flat parameter vector, as ``representation_jacobian`` expects.
The loss is the narrow objective L = -g mean_{x∈T} <d_t, h_θ(x)>, differentiated by autograd and stepped
by torch.optim (SGD, Adam, AdamW): nothing in the measurement path uses theory/.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from torch import Tensor
from torch.func import jvp

from strategies import (DTYPE, KINDS, Geometry, batch_sizes, gains, gaussian, geometries, input_dims,
                        learning_rates, orthogonal_matrices, step_norms)
from theory.amplification import (adam_first_step_preconditioner, isotropic_prediction, predict_change,
                                  representation_jacobian, tangent_kernel)

HFn = Callable[[Tensor, Tensor], Tensor]


# ----------------------------------------------------------------------------------------------- models

@dataclass(frozen=True)
class Model:
    name: str
    h: HFn  # h(params (p,), x (m,)) -> (d,)
    n_params: int


def linear_model(d: int, m: int) -> Model:
    return Model("linear", lambda params, x: params.reshape(d, m) @ x, d * m)


def mlp_model(d: int, m: int, width: int) -> Model:
    sizes = (width * m, width, d * width, d)

    def h(params: Tensor, x: Tensor) -> Tensor:
        w1, b1, w2, b2 = torch.split(params, sizes)
        return w2.reshape(d, width) @ torch.tanh(w1.reshape(width, m) @ x + b1) + b2

    return Model("mlp", h, sum(sizes))


def rotated(model: Model, q: Tensor) -> Model:
    """The same model with its hidden space rotated: h -> Q h."""
    return Model(model.name + "_rotated", lambda params, x: q @ model.h(params, x), model.n_params)


@dataclass(frozen=True)
class Setup:
    geometry: Geometry
    model: Model
    params: Tensor
    x_train: Tensor  # (n_train, m)
    x_probe: Tensor  # (n_probe, m)
    g: float

    @property
    def directions(self) -> Tensor:
        return self.geometry.directions

    @property
    def target(self) -> int:
        return self.geometry.target

    def __repr__(self) -> str:
        return (f"Setup({self.geometry!r}, model={self.model.name}, p={self.model.n_params}, "
                f"n_train={len(self.x_train)}, n_probe={len(self.x_probe)}, g={self.g:.4g})")


@st.composite
def setups(draw, model_kind: str = "linear", kinds=KINDS, g=gains) -> Setup:
    geometry = draw(geometries(kinds=kinds))
    m = draw(input_dims)
    if model_kind == "linear":
        model = linear_model(geometry.d, m)
        scale = 1.0
    else:
        model = mlp_model(geometry.d, m, draw(st.integers(2, 5)))
        scale = 0.7
    params = draw(gaussian(model.n_params, scale=scale))
    x_train = draw(gaussian(draw(batch_sizes), m))
    x_probe = draw(gaussian(draw(batch_sizes), m))
    return Setup(geometry, model, params, x_train, x_probe, draw(g))


# ------------------------------------------------------------------------------- autograd measurement

def loss_fn(model: Model, params: Tensor, directions: Tensor, target: int, x_train: Tensor, g: float) -> Tensor:
    """L = -g mean_{x∈T} <d_t, h_θ(x)>."""
    return -g * torch.stack([directions[target] @ model.h(params, x) for x in x_train]).mean()


def activations(model: Model, params: Tensor, directions: Tensor, x: Tensor) -> Tensor:
    """a_j(x) = <d_j, h_θ(x)>: (n_probe, n_features)."""
    with torch.no_grad():
        return torch.stack([model.h(params, xi) for xi in x]) @ directions.T


def measured_change(s: Setup, lr: float, *, g: float | None = None, optimiser: str = "sgd",
                    model: Model | None = None, directions: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One autograd optimiser step; returns (a(x'; θ + Δθ) - a(x'; θ), ∇_θ L)."""
    model = model or s.model
    directions = s.directions if directions is None else directions
    g = s.g if g is None else g
    params = s.params.clone().requires_grad_(True)
    opt = {"sgd": lambda: torch.optim.SGD([params], lr=lr),
           "adam": lambda: torch.optim.Adam([params], lr=lr),
           "adamw": lambda: torch.optim.AdamW([params], lr=lr, weight_decay=0.0)}[optimiser]()
    opt.zero_grad()
    loss_fn(model, params, directions, s.target, s.x_train, g).backward()
    grad = params.grad.detach().clone()
    opt.step()
    change = activations(model, params.detach(), directions, s.x_probe) - activations(model, s.params, directions, s.x_probe)
    return change, grad


def jacobians(s: Setup, model: Model | None = None) -> tuple[Tensor, Tensor]:
    """(J(x') for every probe (n_probe, d, p), J̄ = mean_{x∈T} J(x) (d, p)) by theory's jacrev helper."""
    model = model or s.model
    return (representation_jacobian(model.h, s.params, s.x_probe),
            representation_jacobian(model.h, s.params, s.x_train).mean(dim=0))


def predicted_change(s: Setup, lr: float, *, g: float | None = None, precond: Tensor | None = None,
                     model: Model | None = None, directions: Tensor | None = None,
                     jacs: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """predict_change for the setup (Jacobians computed unless given)."""
    jac_probe, jac_train_mean = jacs if jacs is not None else jacobians(s, model)
    directions = s.directions if directions is None else directions
    return predict_change(directions, s.target, jac_probe, jac_train_mean, lr=lr,
                          g=s.g if g is None else g, precond=precond)


def input_overlap(s: Setup) -> Tensor:
    """<x̄, x'> for every probe."""
    return s.x_probe @ s.x_train.mean(dim=0)


def sgd_lr_for_step(s: Setup, step_norm: float) -> float:
    """The SGD learning rate that makes ||Δθ|| = step_norm, so first-order tests see a controlled step."""
    params = s.params.clone().requires_grad_(True)
    loss_fn(s.model, params, s.directions, s.target, s.x_train, s.g).backward()
    return step_norm / float(params.grad.norm())


def scale_of(*tensors: Tensor) -> float:
    return max([1.0, *(float(t.abs().max()) for t in tensors if t.numel())])


def assert_quadratic_error(err_full: Tensor, err_half: Tensor, *, noise: float) -> None:
    """Halving η divides an O(η²) error by ~4 (by 8 or more if the η² coefficient vanishes).

    A wrong first-order prediction leaves an O(η) error, which only halves."""
    e_full, e_half = float(err_full.norm()), float(err_half.norm())
    if e_full <= noise:  # already at floating-point precision: nothing to scale
        return
    assert e_half > 0 and e_full / e_half >= 3.5, f"error {e_full:.3e} -> {e_half:.3e} when η halves (ratio {e_full / max(e_half, 1e-300):.2f})"


# ------------------------------------------------------------------------------- the linear layer (exact)

@settings(max_examples=40)
@given(setups("linear"), learning_rates)
def test_linear_model_sgd_step_matches_prediction_exactly(s, lr):
    """For h = W x one SGD step changes a_j(x') by exactly η g <x̄, x'> <d_j, d_t> (no O(η²) term),
    and predict_change with autograd Jacobians, isotropic_prediction and the tangent kernel agree."""
    measured, _ = measured_change(s, lr)
    jacs = jacobians(s)
    general = predicted_change(s, lr, jacs=jacs)
    isotropic = isotropic_prediction(s.directions, s.target, input_overlap(s), lr=lr, g=s.g)
    tol = 1e-10 * scale_of(measured) + 10 * resolution(s)
    torch.testing.assert_close(general, measured, rtol=0, atol=tol)
    torch.testing.assert_close(isotropic, measured, rtol=0, atol=tol)
    # the kernel itself is isotropic: Θ(x', x̄) = <x', x̄> I
    kernel = tangent_kernel(*jacs)
    eye = torch.eye(s.geometry.d, dtype=DTYPE)
    torch.testing.assert_close(kernel, input_overlap(s)[:, None, None] * eye, rtol=0,
                               atol=1e-12 * scale_of(kernel))


def isotropic_views(s: Setup, lr: float) -> dict[str, Tensor]:
    """The same Δa three ways: measured by autograd, predict_change, isotropic_prediction."""
    measured, _ = measured_change(s, lr)
    return {"measured": measured, "predict_change": predicted_change(s, lr),
            "isotropic_prediction": isotropic_prediction(s.directions, s.target, input_overlap(s), lr=lr, g=s.g)}


def resolution(s: Setup) -> float:
    """Absolute precision of a measured change a(θ') - a(θ): a few ulps of the activations."""
    return 1e-12 * scale_of(activations(s.model, s.params, s.directions, s.x_probe))


@settings(max_examples=40)
@given(setups("linear", kinds=("orthogonal",)), learning_rates)
def test_orthogonal_features_do_not_move(s, lr):
    """Isotropic case: <d_j, d_t> = 0 ⇒ Δa_j = 0 (measured by autograd, and predicted); the target
    itself moves by η g <x̄, x'> ||d_t||²."""
    others = [j for j in range(s.geometry.n) if j != s.target]
    expected_target = lr * s.g * input_overlap(s) * s.directions[s.target].pow(2).sum()
    for name, change in isotropic_views(s, lr).items():
        assert float(change[:, others].abs().max()) <= 10 * resolution(s), name
        torch.testing.assert_close(change[:, s.target], expected_target, rtol=1e-9, atol=10 * resolution(s), msg=name)


@settings(max_examples=40)
@given(setups("linear"), learning_rates)
def test_sign_follows_similarity(s, lr):
    """Isotropic case: sign(Δa_j(x')) = sign(<d_j, d_t>) · sign(g <x̄, x'>) — aligned features are
    amplified, anti-aligned ones (e.g. an antipodal partner) suppressed; the target moves with
    sign(g <x̄, x'>). Checked wherever |Δa_j| is clearly above the measurement resolution."""
    sims = s.directions @ s.directions[s.target]
    overlap = input_overlap(s)
    size = (lr * abs(s.g) * overlap.abs())[:, None] * sims.abs()[None, :]  # |Δa_j(x')|
    mask = size > 100 * resolution(s)
    expected = (torch.sign(sims)[None, :] * torch.sign(s.g * overlap)[:, None]).expand_as(size)
    for name, change in isotropic_views(s, lr).items():
        assert torch.equal(torch.sign(change)[mask], expected[mask]), name


@settings(max_examples=40)
@given(setups("linear"), learning_rates)
def test_rank_of_amplification_equals_rank_of_similarity(s, lr):
    """Isotropic case: on each probe the features are ordered by Δa_j exactly as by <d_j, d_t> (reversed
    when g <x̄, x'> < 0): every clearly ordered pair keeps its order, and Spearman ρ = ±1 (identical
    argsort) when all similarities are clearly distinct."""
    sims = s.directions @ s.directions[s.target]
    overlap = input_overlap(s)
    diff_sims = sims[:, None] - sims[None, :]
    views = isotropic_views(s, lr)
    for p in range(len(s.x_probe)):
        direction = float(np.sign(s.g * float(overlap[p])))
        gaps = lr * abs(s.g * float(overlap[p])) * diff_sims  # predicted Δa_i - Δa_j
        ordered = gaps > 100 * resolution(s)  # pairs (i, j) with Δa_i clearly above Δa_j
        distinct = bool((ordered | ordered.T | torch.eye(len(sims), dtype=torch.bool)).all())
        for name, change in views.items():
            diff = (change[p][:, None] - change[p][None, :]) * direction
            assert bool((diff[ordered] > 0).all()), name
            if distinct and len(sims) >= 3:
                assert stats.spearmanr(change[p].numpy(), sims.numpy()).statistic == pytest.approx(direction), name
                assert np.array_equal(np.argsort(change[p].numpy() * direction), np.argsort(sims.numpy())), name


@settings(max_examples=40)
@given(setups("linear"), learning_rates, st.floats(0.1, 10.0))
def test_linear_model_change_is_linear_in_lr_and_g(s, lr, c):
    """Isotropic case: Δa(c η, g) = Δa(η, c g) = c Δa(η, g) and Δa(η, -g) = -Δa(η, g), exactly."""
    base, _ = measured_change(s, lr)
    tol = (1e-10 * scale_of(base) + 10 * resolution(s)) * max(1.0, c)
    torch.testing.assert_close(measured_change(s, c * lr)[0], c * base, rtol=0, atol=tol)
    torch.testing.assert_close(measured_change(s, lr, g=c * s.g)[0], c * base, rtol=0, atol=tol)
    torch.testing.assert_close(measured_change(s, lr, g=-s.g)[0], -base, rtol=0, atol=tol)
    jacs = jacobians(s)
    pred = predicted_change(s, lr, jacs=jacs)
    torch.testing.assert_close(predicted_change(s, c * lr, jacs=jacs), c * pred, rtol=0, atol=tol)
    torch.testing.assert_close(predicted_change(s, lr, g=c * s.g, jacs=jacs), c * pred, rtol=0, atol=tol)


@pytest.mark.parametrize("optimiser", ["adam", "adamw"])
@settings(max_examples=30)
@given(s=setups("linear"), lr=learning_rates)
def test_linear_model_adam_first_step_matches_preconditioned_prediction(optimiser, s, lr):
    """Adam's (and AdamW's with weight_decay=0) first step is Δθ = -η ∇L / (|∇L| + ε); for h = W x the
    preconditioned prediction with P = adam_first_step_preconditioner(∇L) is exact."""
    measured, grad = measured_change(s, lr, optimiser=optimiser)
    pred = predicted_change(s, lr, precond=adam_first_step_preconditioner(grad))
    torch.testing.assert_close(pred, measured, rtol=0, atol=1e-10 * scale_of(measured) + 10 * resolution(s))


def test_adam_preconditioner_differs_from_sgd():
    """Guard for the Adam tests: on a generic setup the sign step is not a rescaled gradient step, so
    dropping the preconditioner cannot go unnoticed."""
    torch.manual_seed(0)
    d, m = 3, 4
    s = Setup(Geometry(torch.randn(5, d, dtype=DTYPE), "random", 1, 0), linear_model(d, m),
              torch.randn(d * m, dtype=DTYPE), torch.randn(3, m, dtype=DTYPE), torch.randn(2, m, dtype=DTYPE), 1.0)
    measured, grad = measured_change(s, 0.01, optimiser="adam")
    sgd = predicted_change(s, 0.01)
    ratio = measured / sgd
    assert float(ratio.max() - ratio.min()) > 1e-3


# ------------------------------------------------------------------------------- a non-linear model (first order)

@settings(max_examples=40)
@given(setups("mlp"), step_norms)
def test_mlp_sgd_prediction_error_is_second_order(s, step):
    """Non-linear h: the tangent-kernel prediction is first order — the error of one SGD step shrinks
    ~4x when η halves — and is small compared with the change itself."""
    lr = sgd_lr_for_step(s, step)
    jacs = jacobians(s)
    pred = predicted_change(s, lr, jacs=jacs)
    err_full = measured_change(s, lr)[0] - pred
    err_half = measured_change(s, lr / 2)[0] - predicted_change(s, lr / 2, jacs=jacs)
    assert_quadratic_error(err_full, err_half, noise=100 * resolution(s))


@settings(max_examples=30)
@given(setups("mlp"), step_norms)
def test_mlp_error_is_the_second_order_taylor_term(s, step):
    """The first-order error is exactly ½ η² g² d_jᵀ ∂²h(x')[v, v] + O(η³), v = J̄ᵀ d_t (computed by
    forward-over-forward jvp): what is left shrinks ~8x when η halves."""
    jacs = jacobians(s)
    v = jacs[1].T @ s.directions[s.target]

    def second_derivative(x: Tensor) -> Tensor:
        first = lambda p: jvp(lambda q: s.model.h(q, x), (p,), (v,))[1]  # noqa: E731
        return jvp(first, (s.params,), (v,))[1]

    second = 0.5 * s.g**2 * torch.stack([second_derivative(x) for x in s.x_probe]) @ s.directions.T
    lr = sgd_lr_for_step(s, step)

    def residual(eta: float) -> Tensor:
        return measured_change(s, eta)[0] - predicted_change(s, eta, jacs=jacs) - eta**2 * second

    r_full, r_half = float(residual(lr).norm()), float(residual(lr / 2).norm())
    if r_full > 100 * resolution(s):
        assert r_full / r_half >= 6.0, f"residual {r_full:.3e} -> {r_half:.3e}"


@settings(max_examples=30)
@given(setups("mlp"), step_norms, st.floats(0.2, 5.0))
def test_mlp_change_is_linear_in_lr_and_g_for_small_lr(s, step, c):
    """SGD's step depends on η g only (Δa(η, c g) = Δa(c η, g) to fp precision); the measured change
    departs from linearity in η by O(η²): ||Δa(2η) - 2Δa(η)|| shrinks ~4x when η halves."""
    lr = sgd_lr_for_step(s, step)
    base = measured_change(s, lr)[0]
    torch.testing.assert_close(measured_change(s, lr, g=c * s.g)[0], measured_change(s, c * lr)[0],
                               rtol=1e-9, atol=10 * resolution(s))

    def nonlinearity(eta: float) -> Tensor:
        return measured_change(s, 2 * eta)[0] - 2 * measured_change(s, eta)[0]

    assert_quadratic_error(nonlinearity(lr), nonlinearity(lr / 2), noise=100 * resolution(s))
    assert float(nonlinearity(lr).norm()) <= 0.1 * float(base.norm()) + 1e-12


@pytest.mark.parametrize("optimiser", ["adam", "adamw"])
@settings(max_examples=20)
@given(s=setups("mlp"), step=step_norms)
def test_mlp_adam_first_step_prediction_error_is_second_order(optimiser, s, step):
    """Non-linear h, Adam's first step: the preconditioned prediction is first order in η."""
    lr = step / s.model.n_params**0.5  # a sign step has ||Δθ|| ≈ η √p
    jacs = jacobians(s)

    def error(eta: float) -> tuple[Tensor, Tensor]:
        measured, grad = measured_change(s, eta, optimiser=optimiser)
        pred = predicted_change(s, eta, precond=adam_first_step_preconditioner(grad), jacs=jacs)
        return measured - pred, pred

    err_full, pred = error(lr)
    assert_quadratic_error(err_full, error(lr / 2)[0], noise=100 * resolution(s))


# ------------------------------------------------------------------------------- rotation invariance

@pytest.mark.parametrize("model_kind", ["linear", "mlp"])
@settings(max_examples=30)
@given(data=st.data())
def test_rotation_of_hidden_space_changes_nothing(model_kind, data):
    """h -> Q h and d_j -> Q d_j for an orthogonal Q: both the autograd change and every prediction are
    unchanged (Θ -> Q Θ Qᵀ, so d_jᵀ Θ d_t is invariant)."""
    s = data.draw(setups(model_kind))
    q = data.draw(orthogonal_matrices(s.geometry.d))
    lr = sgd_lr_for_step(s, data.draw(step_norms))
    model_q, directions_q = rotated(s.model, q), s.directions @ q.T
    measured, _ = measured_change(s, lr)
    measured_q, _ = measured_change(s, lr, model=model_q, directions=directions_q)
    pred = predicted_change(s, lr)
    pred_q = predicted_change(s, lr, model=model_q, directions=directions_q)
    tol = 1e-10 * scale_of(measured, pred) + 10 * resolution(s)
    torch.testing.assert_close(measured_q, measured, rtol=0, atol=tol)
    torch.testing.assert_close(pred_q, pred, rtol=0, atol=tol)
    overlap = input_overlap(s)
    torch.testing.assert_close(isotropic_prediction(directions_q, s.target, overlap, lr=lr, g=s.g),
                               isotropic_prediction(s.directions, s.target, overlap, lr=lr, g=s.g), rtol=0, atol=tol)


# ------------------------------------------------------------------------------- small unit checks

def test_predict_change_shapes_and_precond_identity():
    """P = 1 is SGD; output shape (n_probe, n_features)."""
    torch.manual_seed(1)
    directions, jp, jt = torch.randn(7, 3, dtype=DTYPE), torch.randn(4, 3, 10, dtype=DTYPE), torch.randn(3, 10, dtype=DTYPE)
    plain = predict_change(directions, 2, jp, jt, lr=0.1, g=2.0)
    assert plain.shape == (4, 7)
    torch.testing.assert_close(predict_change(directions, 2, jp, jt, lr=0.1, g=2.0, precond=torch.ones(10, dtype=DTYPE)), plain)
    # against the explicit kernel: η g d_jᵀ Θ d_t
    kernel = tangent_kernel(jp, jt)
    torch.testing.assert_close(plain, 0.1 * 2.0 * torch.einsum("jd,pde,e->pj", directions, kernel, directions[2]))
    p = torch.rand(10, dtype=DTYPE) + 0.5
    torch.testing.assert_close(predict_change(directions, 2, jp, jt, lr=0.1, g=2.0, precond=p),
                               0.2 * torch.einsum("jd,pde,e->pj", directions, tangent_kernel(jp, jt, p), directions[2]))


@given(gaussian(20, scale=3.0))
def test_adam_preconditioner_is_a_sign_step(grad):
    """P ∇ = ∇ / (|∇| + ε) ≈ sign(∇)."""
    step = adam_first_step_preconditioner(grad) * grad
    torch.testing.assert_close(step, grad / (grad.abs() + 1e-8), rtol=1e-15, atol=0)
    big = grad.abs() > 1e-4
    torch.testing.assert_close(step[big], torch.sign(grad[big]), rtol=1e-4, atol=0)
