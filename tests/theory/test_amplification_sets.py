"""theory.amplification's multi-target isotropic prediction (the audit's maths): against the single-target
formula, against an autograd SGD step on a linear layer (where it is exact), and its invariances."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.amplification import (amplification_risk, isotropic_prediction, isotropic_set_contributions,
                                  isotropic_set_prediction, relative_amplification)
from theory.errors import InputError


@st.composite
def dictionaries(draw):
    """directions (n, d), distinct target indices and positive push strengths g, all float64."""
    n, d = draw(st.integers(2, 12)), draw(st.integers(1, 8))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    directions = torch.randn(n, d, generator=gen, dtype=torch.float64)
    targets = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
    g = 0.1 + torch.rand(len(targets), generator=gen, dtype=torch.float64) * 5
    return directions, torch.tensor(targets), g


@given(dictionaries())
def test_set_prediction_is_the_sum_of_single_target_predictions(case):
    directions, targets, g = case
    single = sum(isotropic_prediction(directions, int(t), torch.ones(1, dtype=torch.float64), lr=1.0, g=float(gt))[0]
                 for t, gt in zip(targets, g))
    torch.testing.assert_close(isotropic_set_prediction(directions, directions[targets], g), single)
    contributions = isotropic_set_contributions(directions, directions[targets], g)
    assert contributions.shape == (directions.shape[0], targets.numel())
    torch.testing.assert_close(contributions.sum(dim=1), single)


@given(dictionaries(), st.integers(1, 4), st.floats(1e-3, 1e-1))
def test_set_prediction_is_exact_for_one_sgd_step_of_a_linear_layer(case, n_inputs, lr):
    """h = W x; L = -mean_x Σ_t g_t <d_t, W x>; one SGD step changes a_j(x') by η <x̄, x'> Σ_t g_t <d_j, d_t>."""
    directions, targets, g = case
    d = directions.shape[1]
    gen = torch.Generator().manual_seed(7)
    p_in = 3
    W = torch.randn(d, p_in, generator=gen, dtype=torch.float64, requires_grad=True)
    xs = torch.randn(n_inputs, p_in, generator=gen, dtype=torch.float64)
    probe = torch.randn(p_in, generator=gen, dtype=torch.float64)
    before = directions @ (W.detach() @ probe)
    loss = -((xs @ W.T) @ directions[targets].T * g).sum(dim=1).mean()
    loss.backward()
    with torch.no_grad():
        W_after = W - lr * W.grad
    measured = directions @ (W_after @ probe) - before
    predicted = lr * float(xs.mean(0) @ probe) * isotropic_set_prediction(directions, directions[targets], g)
    torch.testing.assert_close(measured, predicted, rtol=1e-9, atol=1e-10)


@given(dictionaries(), st.floats(0.1, 10.0), st.floats(0.1, 10.0))
def test_relative_amplification_is_scale_free(case, c_dir, c_g):
    directions, targets, g = case
    unit = directions / directions.norm(dim=1, keepdim=True)
    pred_t = isotropic_set_prediction(unit[targets], unit[targets], g)
    if not pred_t.mean() > 1e-6:
        return
    rel = relative_amplification(isotropic_set_prediction(unit, unit[targets], g), pred_t)
    scaled = c_dir * unit
    rel_scaled = relative_amplification(isotropic_set_prediction(scaled, scaled[targets], c_g * g),
                                        isotropic_set_prediction(scaled[targets], scaled[targets], c_g * g))
    torch.testing.assert_close(rel_scaled, rel)
    torch.testing.assert_close(rel[targets].mean(), torch.tensor(1.0, dtype=torch.float64))


def test_orthogonal_features_do_not_move_and_antialigned_ones_are_suppressed():
    directions = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]], dtype=torch.float64)
    pred = isotropic_set_prediction(directions, directions[[0]], torch.tensor([2.0], dtype=torch.float64))
    torch.testing.assert_close(pred, torch.tensor([2.0, 0.0, -2.0, 1.2], dtype=torch.float64))
    rel = relative_amplification(pred, pred[[0]])
    assert amplification_risk(rel[1:]) == pytest.approx((0.0 + 0.0 + 0.6) / 3)


def test_non_positive_target_change_and_empty_sets_are_input_errors():
    with pytest.raises(InputError, match="not positive"):
        relative_amplification(torch.ones(3), torch.tensor([-1.0, 0.5]))
    with pytest.raises(InputError, match="empty"):
        amplification_risk(torch.zeros(0))
