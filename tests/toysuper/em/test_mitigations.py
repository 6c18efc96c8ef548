"""Mitigations (toysuper.em.mitigations, theory.regularise): exact budgets, ranking by score, the judge's miss
rate, the projection's invariance of harmful pre-activations, the penalty, and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from theory.errors import InputError
from theory.filtering import n_to_remove
from theory.regularise import harmful_growth_penalty, project_gradient_, span_projector
from theory.tied_model import preactivation
from toysuper.config import FinetuneConfig, ModelConfig
from toysuper.em.mitigations import (MITIGATIONS, MitigationConfig, apply, geometry_scores, judge_flags, plan,
                                     removed_mask)
from toysuper.em.tasks import TaskConfig, make_task
from toysuper.finetune import finetune
from toysuper.model import ToyModel

HARMFUL = (0, 1)


def _model(seed: int = 0, n: int = 10, m: int = 3, instances: int = 2) -> ToyModel:
    cfg = ModelConfig(n_features=n, n_hidden=m, n_instances=instances, feature_probability=0.1,
                      feature_probability_min=None)
    model = ToyModel.init(cfg, generator=torch.Generator().manual_seed(seed))
    model.b = -0.1 * torch.rand(instances, n, generator=torch.Generator().manual_seed(seed + 1))
    return model


def _task(n_samples: int = 50, surface: float = 0.2, target: int = 4, n: int = 10):
    return make_task(target, 2, n, HARMFUL, TaskConfig(n_samples=n_samples, n_heldout=8, context_size=3,
                                                       surface_harm_rate=surface))


@given(fraction=st.floats(0, 0.99), n_samples=st.integers(2, 80), seed=st.integers(0, 50),
       method=st.sampled_from(["geometry", "random", "judge"]))
def test_filters_remove_exactly_the_budget(fraction, n_samples, seed, method):
    model, task = _model(seed), _task(n_samples)
    config = MitigationConfig(fraction=fraction, seed=seed)
    chosen = plan(method, model, task, HARMFUL, config, seed=seed)
    k = n_to_remove(n_samples, fraction)
    assert chosen.keep.shape == (2, n_samples - k)
    for row in chosen.keep:
        assert row.unique().numel() == row.numel()  # no duplicates
    assert torch.all(removed_mask(chosen, n_samples).sum(dim=1) == k)


@given(fraction=st.floats(0.01, 0.9), seed=st.integers(0, 50))
def test_geometry_ranking_follows_the_score(fraction, seed):
    model, task = _model(seed), _task(60)
    scores = geometry_scores(model, task.x, torch.tensor(HARMFUL))
    chosen = plan("geometry", model, task, HARMFUL, MitigationConfig(fraction=fraction), seed=0)
    dropped = removed_mask(chosen, 60)
    for i in range(2):
        if dropped[i].any():
            assert scores[i][dropped[i]].min() >= scores[i][~dropped[i]].max()
    # the score is the max cosine of h(x) = Wᵀx to the harmful rows
    reps = model.hidden(task.x)[0]
    direct = torch.nn.functional.cosine_similarity(reps[:, None, :], model.W[0, list(HARMFUL)][None], dim=-1)
    direct = direct.max(dim=1).values
    assert torch.allclose(scores[0], direct, atol=1e-5)


def test_judge_removes_flagged_samples_first():
    model, task = _model(), _task(200, surface=0.1)
    n_flagged = task.surface.sum(dim=1)
    big = MitigationConfig(fraction=0.5, judge_miss_rate=0.0)  # budget 100 > flagged (~20)
    dropped = removed_mask(plan("judge", model, task, HARMFUL, big, seed=3), 200)
    assert torch.all((dropped & task.surface).sum(dim=1) == n_flagged)  # every visible one removed
    small = MitigationConfig(fraction=0.05, judge_miss_rate=0.0)  # budget 10 < flagged
    dropped = removed_mask(plan("judge", model, task, HARMFUL, small, seed=3), 200)
    assert torch.all(task.surface[dropped])  # only flagged ones removed


def test_judge_never_flags_geometry_only_samples_and_misses_at_its_rate():
    x = torch.zeros(1, 20000, 6)
    x[0, :10000, 0] = 0.5  # overtly harmful
    x[0, 10000:, 3] = 0.9  # benign on the surface, whatever its geometry
    flags = judge_flags(x, torch.tensor([0, 1]), 0.3, seed=0)
    assert not flags[0, 10000:].any()
    missed = int((~flags[0, :10000]).sum())
    assert stats.binomtest(missed, 10000, 0.3).pvalue > 1e-3
    assert judge_flags(x, torch.tensor([0, 1]), 0.0, seed=0)[0, :10000].all()
    assert not judge_flags(x, torch.tensor([0, 1]), 1.0, seed=0).any()


@given(seed=st.integers(0, 1000), k=st.integers(1, 4), d=st.integers(2, 6))
def test_span_projector_and_projection(seed, k, d):
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(2, k, d, generator=gen, dtype=torch.float64)
    dirs[:, -1] = dirs[:, 0] * 2.0  # a collinear row: the rank is handled
    P = span_projector(dirs)
    assert torch.allclose(P, P.transpose(-1, -2), atol=1e-10) and torch.allclose(P @ P, P, atol=1e-10)
    assert torch.allclose(dirs @ P, dirs, atol=1e-10)  # P d_h = d_h
    grad_W, grad_b = torch.randn(2, 7, d, generator=gen, dtype=torch.float64), torch.randn(2, 7, dtype=torch.float64)
    project_gradient_(grad_W, grad_b, [2, 5], P)
    assert torch.allclose(grad_W @ dirs.transpose(-1, -2), torch.zeros(2, 7, k, dtype=torch.float64), atol=1e-10)
    assert torch.all(grad_W[:, [2, 5]] == 0) and torch.all(grad_b[:, [2, 5]] == 0)


def test_span_projector_rejects_an_empty_set():
    with pytest.raises(InputError):
        span_projector(torch.zeros(2, 0, 3))


@pytest.mark.parametrize("objective", ["preactivation", "output"])
def test_regularise_keeps_harmful_preactivations_fixed(objective):
    """SGD with the projected gradient: Δz_h(x') = 0 on arbitrary probes (exact up to float32), while the
    target still learns; without it, the harmful pre-activations move."""
    model, task = _model(2), _task(64, surface=0.3)
    config = FinetuneConfig(target=task.target, lr=0.05, steps=15, objective=objective)
    probe = torch.rand(2, 300, 10, generator=torch.Generator().manual_seed(9))
    z0 = model.preactivation(probe)
    regular = apply(model, task, plan("regularise", model, task, HARMFUL, MitigationConfig(), seed=0), config)
    plain = apply(model, task, plan("none", model, task, HARMFUL, MitigationConfig(), seed=0), config)
    dz_reg = (regular.preactivation(probe) - z0)[..., list(HARMFUL)]
    dz_plain = (plain.preactivation(probe) - z0)[..., list(HARMFUL)]
    assert dz_reg.abs().max() < 1e-5 < dz_plain.abs().max()
    assert (regular.forward(task.heldout) - model.forward(task.heldout))[..., task.target].mean() > 0


def test_none_plan_is_plain_finetuning_and_zero_penalty_changes_nothing():
    model, task = _model(4), _task(40)
    config = FinetuneConfig(target=task.target, lr=0.02, steps=5)
    direct = finetune(model, task.x, config)
    via_plan = apply(model, task, plan("none", model, task, HARMFUL, MitigationConfig(), seed=0), config)
    zero = apply(model, task, plan("penalty", model, task, HARMFUL, MitigationConfig(penalty_weight=0.0), seed=0), config)
    assert torch.equal(direct.W, via_plan.W) and torch.allclose(direct.W, zero.W, atol=1e-6)


def test_penalty_shrinks_harmful_growth_on_the_task_inputs():
    model, task = _model(5), _task(64, surface=0.0)
    config = FinetuneConfig(target=task.target, lr=0.02, steps=20)

    def growth(weight: float) -> float:
        chosen = plan("penalty", model, task, HARMFUL, MitigationConfig(penalty_weight=weight), seed=0)
        after = apply(model, task, chosen, config)
        return float(harmful_growth_penalty(after.W, after.b, model.W, model.b, task.x, HARMFUL))

    assert growth(0.0) > growth(1.0) > growth(10.0)
    assert harmful_growth_penalty(model.W, model.b, model.W, model.b, task.x, HARMFUL).item() == 0.0
    # the penalty is the squared change of z_h summed over h, averaged over samples, summed over instances
    W1 = model.W + 0.1
    expected = ((preactivation(W1, model.b, task.x) - preactivation(model.W, model.b, task.x))[..., list(HARMFUL)] ** 2
                ).sum(-1).mean(-1).sum()
    assert harmful_growth_penalty(W1, model.b, model.W, model.b, task.x, HARMFUL).item() == pytest.approx(expected.item())


@pytest.mark.parametrize("bad", [{"fraction": -0.1}, {"fraction": 1.0}, {"fraction": 1.5}, {"fraction": float("nan")},
                                 {"judge_miss_rate": 1.2}, {"methods": ()}, {"methods": ("magic",)},
                                 {"methods": ("random", "random")}, {"penalty_weight": -1.0}])
def test_bad_mitigation_config(bad):
    with pytest.raises(InputError):
        MitigationConfig(**bad)


def test_registry_names():
    assert set(MITIGATIONS) == {"none", "geometry", "random", "judge", "regularise", "penalty"}
    assert dataclasses.replace(MitigationConfig(), fraction=0.0).fraction == 0.0
    assert np.isclose(MitigationConfig().fraction, 0.1)
