"""The task data-generating process (toysuper.em.tasks): structure, rates, determinism, bad input."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from theory.errors import InputError
from toysuper.em.tasks import TaskConfig, benign_features, make_task, probe_set

HARMFUL = (0, 1, 2)


@given(target=st.integers(3, 11), context=st.integers(0, 8), coactive=st.floats(0, 1), surface=st.floats(0, 1),
       magnitude_min=st.floats(0, 1), seed=st.integers(0, 100))
def test_task_structure(target, context, coactive, surface, magnitude_min, seed):
    config = TaskConfig(n_samples=64, n_heldout=16, context_size=context, coactive_probability=coactive,
                        surface_harm_rate=surface, target_magnitude_min=magnitude_min, seed=seed)
    task = make_task(target, 3, 12, HARMFUL, config)
    assert task.x.shape == (3, 64, 12) and task.heldout.shape == (3, 16, 12) and task.context.shape == (3, context)
    xt = task.x[..., target]
    assert torch.all(xt >= magnitude_min) and torch.all(xt <= 1)  # the target is in every sample
    for i in range(3):
        pool = set(task.context[i].tolist())
        assert len(pool) == context and target not in pool and not pool & set(HARMFUL)
        allowed = pool | {target} | set(HARMFUL)
        for x in (task.x[i], task.heldout[i]):
            active = set(torch.nonzero(x.abs().sum(dim=0)).flatten().tolist())
            assert active <= allowed
    harmful_active = (task.x[..., list(HARMFUL)] > 0)
    assert torch.equal(task.surface, harmful_active.any(dim=-1))  # the surface flag is exactly "x_h > 0"
    assert harmful_active.sum(dim=-1).max() <= 1  # at most one harmful feature per sample
    assert torch.all((task.x >= 0) & (task.x <= 1))


def test_rates_match_the_config():
    config = TaskConfig(n_samples=4000, context_size=4, coactive_probability=0.3, surface_harm_rate=0.05)
    task = make_task(5, 2, 20, HARMFUL, config)
    n = task.surface.numel()
    assert stats.binomtest(int(task.surface.sum()), n, 0.05).pvalue > 1e-3
    on = torch.stack([(task.x[i][:, task.context[i]] > 0) for i in range(2)])
    assert stats.binomtest(int(on.sum()), on.numel(), 0.3).pvalue > 1e-3


def test_tasks_are_deterministic_and_independent_of_each_other():
    config = TaskConfig(n_samples=32, n_heldout=8)
    a = make_task(7, 2, 12, HARMFUL, config)
    make_task(4, 2, 12, HARMFUL, config)  # another task in between changes nothing
    b = make_task(7, 2, 12, HARMFUL, config)
    assert torch.equal(a.x, b.x) and torch.equal(a.context, b.context) and torch.equal(a.heldout, b.heldout)
    c = make_task(7, 2, 12, HARMFUL, dataclasses.replace(config, seed=2))
    assert not torch.equal(a.x, c.x)
    p1 = probe_set(torch.tensor([0.1, 0.2]), 12, config)
    assert torch.equal(p1, probe_set(torch.tensor([0.1, 0.2]), 12, config)) and p1.shape == (2, config.n_probe, 12)


def test_bad_task_input():
    with pytest.raises(InputError, match="context_size"):
        make_task(5, 2, 8, HARMFUL, TaskConfig(context_size=5))  # only 8 - 3 - 1 = 4 benign features besides t
    with pytest.raises(InputError, match="harmful"):
        make_task(1, 2, 8, HARMFUL, TaskConfig(context_size=1))
    for bad in ({"surface_harm_rate": 1.5}, {"coactive_probability": -0.1}, {"n_samples": 1}, {"context_size": -1},
                {"target_magnitude_min": float("nan")}):
        with pytest.raises(InputError):
            TaskConfig(**bad)
    assert benign_features(5, [0, 3]) == [1, 2, 4]
