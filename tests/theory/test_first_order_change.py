"""theory.amplification.first_order_change (the JVP made to scale) and calibrated_to_targets: exact for an
affine function, error O(‖Δθ‖²) otherwise, equal to predict_change for one SGD step; the calibration matches
the targets' mean and refuses a non-positive one."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from theory.amplification import calibrated_to_targets, first_order_change, predict_change, representation_jacobian

DTYPE = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), d=st.integers(1, 6), m=st.integers(1, 6))
def test_exact_for_an_affine_function(seed, d, m):
    g = _gen(seed)
    w, dw, b, x = (torch.randn(*shape, generator=g, dtype=DTYPE) for shape in ((d, m), (d, m), (d,), (m,)))
    value, change = first_order_change(lambda w_: w_ @ x + b, (w,), (dw,))
    torch.testing.assert_close(value, w @ x + b)
    torch.testing.assert_close(change, ((w + dw) @ x + b) - (w @ x + b))


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000))
def test_error_falls_as_the_square_of_the_step(seed):
    g = _gen(seed)
    w1, w2, dw1, dw2 = (torch.randn(5, 5, generator=g, dtype=DTYPE) for _ in range(4))
    x = torch.randn(5, generator=g, dtype=DTYPE)

    def h(params):  # a pytree of parameters, as functional_call takes them
        return params["w2"] @ torch.tanh(params["w1"] @ x)

    params = {"w1": w1, "w2": w2}

    def error(eta: float) -> float:
        step = {"w1": eta * dw1, "w2": eta * dw2}
        _, change = first_order_change(h, (params,), (step,))
        return float((h({k: params[k] + step[k] for k in params}) - h(params) - change).norm())

    assert 3.8 < error(1e-3) / error(5e-4) < 4.2


def test_equals_predict_change_for_one_sgd_step():
    g = _gen(0)
    d, m, n = 4, 3, 6
    w = torch.randn(d * m, generator=g, dtype=DTYPE)
    directions = torch.randn(n, d, generator=g, dtype=DTYPE)
    train, probe = torch.randn(5, m, generator=g, dtype=DTYPE), torch.randn(2, m, generator=g, dtype=DTYPE)

    def h(params, x):
        return torch.tanh(params.reshape(d, m) @ x)

    jac_train = representation_jacobian(h, w, train).mean(0)
    step = 0.1 * jac_train.T @ directions[1]  # Δθ = η g J̄ᵀ d_t
    want = predict_change(directions, 1, representation_jacobian(h, w, probe), jac_train, lr=0.1)
    got = torch.stack([first_order_change(lambda p, x=x: directions @ h(p, x), (w,), (step,))[1] for x in probe])
    torch.testing.assert_close(got, want)


def test_calibration_matches_the_targets_mean_without_the_measurement():
    prediction = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=DTYPE)
    reference = torch.tensor([3.0, 5.0, 0.0, 1.0], dtype=DTYPE)
    targets = torch.tensor([0, 1])
    scaled, scale = calibrated_to_targets(prediction, reference, targets)
    assert scale == 8.0 / 3.0
    assert float(scaled[targets].mean()) == float(reference[targets].mean())
    for bad in (-reference, torch.zeros(4, dtype=DTYPE)):
        same, none = calibrated_to_targets(prediction, bad, targets)
        assert none is None and same is prediction
    assert calibrated_to_targets(-prediction, reference, targets)[1] is None
