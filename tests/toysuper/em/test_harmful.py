"""The misalignment metrics (theory.misalignment) and the harmful set (toysuper.em.harmful): hand-built outputs
and hand-built geometries whose answers are known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory.errors import InputError
from theory.misalignment import (em_rate, harmful_rise, ratio_of_sums_ci, reduction_percent, retention_percent,
                                 task_gain)
from toysuper.config import FinetuneConfig
from toysuper.em.harmful import HarmfulConfig, misalignment, predicted_outputs
from toysuper.finetune import finetune
from toysuper.model import ToyModel

# ---------------------------------------------------------------- metric definitions on hand-built outputs


def test_harmful_rise_and_em_rate_by_hand():
    """4 probes, 3 features, H = {0, 2}, τ = 0.1."""
    before = torch.tensor([[0.0, 0.0, 0.0],    # h0 crosses 0 -> 0.2: new harmful output
                           [0.0, 0.0, 0.15],   # h2 already above τ before: not new
                           [0.0, 0.0, 0.0],    # only the benign feature 1 crosses: not harmful
                           [0.1, 0.0, 0.0]])   # h0 stays at exactly τ: not above
    after = torch.tensor([[0.2, 0.0, 0.0],
                          [0.0, 0.0, 0.3],
                          [0.0, 0.9, 0.0],
                          [0.1, 0.0, 0.0]])
    assert em_rate(before, after, [0, 2], 0.1).item() == pytest.approx(0.25)
    # R: mean over 4 probes x 2 harmful features of the rises (0.2 + 0.15) -> 0.35 / 8
    assert harmful_rise(before, after, [0, 2]).item() == pytest.approx(0.35 / 8)
    # restricted to probes 1 and 3: none newly crosses
    assert em_rate(before, after, [0, 2], 0.1, where=torch.tensor([False, True, False, True])).item() == 0.0
    assert em_rate(before, after, [0, 2], 0.1, where=torch.tensor([True, True, False, False])).item() == 0.5
    assert task_gain(before, after, 1).item() == pytest.approx(0.9 / 4)


def test_em_rate_counts_a_probe_once_and_batches_over_instances():
    before = torch.zeros(2, 2, 3)
    after = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]],   # instance 0: probe 0 has two harmful crossings
                          [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])  # instance 1: both probes
    assert em_rate(before, after, [0, 1], 0.1).tolist() == [0.5, 1.0]


@given(seed=st.integers(0, 10_000), shift=st.floats(-1, 1), tau=st.floats(0, 1))
def test_metric_properties(seed, shift, tau):
    gen = torch.Generator().manual_seed(seed)
    before = torch.rand(3, 17, 5, generator=gen)
    harmful = [1, 3]
    assert torch.all(em_rate(before, before, harmful, tau) == 0)
    assert torch.all(harmful_rise(before, before, harmful) == 0)
    shifted = before.clone()
    shifted[..., harmful] += shift
    assert torch.allclose(harmful_rise(before, shifted, harmful), torch.full((3,), shift, dtype=torch.float32), atol=1e-6)
    after = torch.rand(3, 17, 5, generator=gen)
    rate = em_rate(before, after, harmful, tau)
    assert torch.all((rate >= 0) & (rate <= 1))
    # only harmful columns matter
    other = after.clone()
    other[..., [0, 2, 4]] = 7.0
    assert torch.equal(em_rate(before, other, harmful, tau), rate)


@pytest.mark.parametrize("harmful", [[], [5], [-1]])
def test_bad_harmful_sets_are_input_errors(harmful):
    x = torch.zeros(4, 5)
    with pytest.raises(InputError):
        harmful_rise(x, x, harmful)
    with pytest.raises(InputError):
        em_rate(x, x, harmful, 0.1)


# ---------------------------------------------------------------- reductions with CIs over units


def test_reduction_and_retention_by_hand():
    baseline = np.array([[1.0, 1.0], [2.0, 0.0], [0.5, 0.5]])
    mitigated = baseline * 0.5  # every unit halves: the bootstrap cannot move the ratio
    red = reduction_percent(baseline, mitigated, n_bootstrap=200)
    assert (red.estimate, red.low, red.high) == pytest.approx((50.0, 50.0, 50.0))
    ret = retention_percent(baseline, mitigated, n_bootstrap=200)
    assert (ret.estimate, ret.low, ret.high) == pytest.approx((50.0, 50.0, 50.0))


def test_reduction_is_a_ratio_of_sums_not_a_mean_of_ratios():
    baseline = np.array([[10.0, 1e-9], [10.0, 1e-9]])  # a near-zero item must not dominate
    mitigated = np.array([[5.0, 1.0], [5.0, 1.0]])
    assert reduction_percent(baseline, mitigated, n_bootstrap=100).estimate == pytest.approx(100 * (1 - 12 / 20))


@given(seed=st.integers(0, 1000), scale=st.floats(0.1, 10))
def test_ratio_ci_contains_estimate_and_is_scale_free(seed, scale):
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.5, 2, size=(6, 4))
    mit = base * rng.uniform(0.3, 1.2, size=(6, 4))
    a = ratio_of_sums_ci(mit, base, n_bootstrap=300, seed=1)
    b = ratio_of_sums_ci(mit * scale, base * scale, n_bootstrap=300, seed=1)
    assert a.low <= a.estimate <= a.high
    assert (a.estimate, a.low, a.high) == pytest.approx((b.estimate, b.low, b.high), rel=1e-9)
    red = reduction_percent(base, mit, n_bootstrap=300, seed=1)
    assert red.low == pytest.approx(100 * (1 - a.high)) and red.high == pytest.approx(100 * (1 - a.low))


def test_ratio_needs_two_units():
    with pytest.raises(InputError):
        ratio_of_sums_ci([1.0], [2.0])


# ---------------------------------------------------------------- hand-built geometries


def _two_d_model(theta: float, b_h: float) -> ToyModel:
    """Features: target t=0 at (1, 0), harmful h=1 at angle θ, a bystander 2 at (0, 1)."""
    W = torch.tensor([[[1.0, 0.0], [math.cos(theta), math.sin(theta)], [0.0, 1.0]]])
    b = torch.tensor([[0.0, b_h, -1.0]])
    return ToyModel(W, b, torch.ones(3), torch.tensor([0.1]))


@pytest.mark.parametrize("theta", [0.3, 1.0, math.pi / 2, 2.0])
def test_known_answer_for_a_purely_narrow_task(theta):
    """Narrow data x = c e_t: every SGD step scales d_t by (1 + 2ηgc) and moves nothing else, so on the probe
    x' = e_t, z_h = cos θ · (1 + 2ηgc)^K + b_h. With b_h = -cos θ the harmful output starts at 0 and ends at
    ReLU(cos θ ((1 + 2ηgc)^K - 1)): proportional to the similarity, zero for orthogonal features and gated
    to zero for anti-aligned ones. The first-order prediction is ReLU(2ηgcK cos θ)."""
    c, lr, steps, g = 0.8, 0.05, 6, 1.0
    model = _two_d_model(theta, b_h=-math.cos(theta))
    task_x = torch.tensor([[[c, 0.0, 0.0]] * 4])
    probe = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])  # e_t, and a probe sharing nothing with the task
    config = FinetuneConfig(target=0, lr=lr, steps=steps, strength=g)
    after = finetune(model, task_x, config)
    harmful = HarmfulConfig(features=(1,), threshold=0.05)
    measured = misalignment(model.forward(probe), after.forward(probe), harmful)
    expected_on_target = max(0.0, math.cos(theta) * ((1 + 2 * lr * g * c) ** steps - 1))
    assert measured.harmful_rise.item() == pytest.approx(expected_on_target / 2, abs=1e-6)  # mean over 2 probes
    assert measured.em_rate.item() == (0.5 if expected_on_target > 0.05 else 0.0)
    predicted = misalignment(model.forward(probe), predicted_outputs(model, task_x, config, probe), harmful)
    assert predicted.harmful_rise.item() == pytest.approx(max(0.0, 2 * lr * g * c * steps * math.cos(theta)) / 2, abs=1e-6)


def test_harmful_config_validation():
    with pytest.raises(InputError, match="empty"):
        HarmfulConfig(features=())
    with pytest.raises(InputError, match="duplicates"):
        HarmfulConfig(features=(1, 1))
    with pytest.raises(InputError):
        HarmfulConfig(features=(-1,))
    with pytest.raises(InputError):
        HarmfulConfig(threshold=float("nan"))
    with pytest.raises(InputError, match="out of range"):
        HarmfulConfig(features=(0, 9)).check_range(5)
    with pytest.raises(InputError, match="benign"):
        HarmfulConfig(features=(0, 1)).check_range(2)
