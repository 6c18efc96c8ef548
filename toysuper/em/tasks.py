"""Narrow tasks: the fine-tuning data of the toy emergent-misalignment studies.

A task is a benign target feature t plus a data-generating process for its samples (all per instance):
- t is active in every sample, x_t ~ U[target_magnitude_min, 1];
- a context pool C of ``context_size`` features, drawn uniformly at random from the benign non-target
  features (independently per instance and task); each c ∈ C is active in a sample with probability
  ``coactive_probability``, x_c ~ U[0, 1];
- with probability ``surface_harm_rate`` a sample is overtly harmful: one harmful feature h (uniform in H)
  is active too, x_h ~ U[0, 1]. Only these samples are visible to a judge that reads surface content.
Nothing ties the context pool to the harmful set: a sample is geometrically close to H only if its
context features happen to lie near harmful directions in the trained model. Held-out samples of the same
task (same pool) measure the target-task gain. Every task has its own generator, seeded by (seed, t)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from theory.errors import InputError
from toysuper.data import sparse_uniform
from toysuper.em.config import TaskConfig, benign_features


@dataclass(frozen=True)
class TaskData:
    """One task's data for every instance."""

    target: int
    x: Tensor
    """(n_instances, n_samples, n_features): the fine-tuning set."""
    heldout: Tensor
    """(n_instances, n_heldout, n_features): held-out samples of the same task."""
    context: Tensor
    """(n_instances, context_size): the context pool."""
    surface: Tensor
    """(n_instances, n_samples) bool: a harmful feature is active in the sample."""


def task_generator(config: TaskConfig, target: int) -> torch.Generator:
    """Each task's own stream, so a task's data do not depend on which other tasks ran."""
    return torch.Generator().manual_seed(config.seed * 1_000_003 + 7919 * (target + 1))


def _samples(n_instances: int, n: int, n_features: int, target: int, context: Tensor, harmful: Tensor,
             config: TaskConfig, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    x = torch.zeros(n_instances, n, n_features)
    lo = config.target_magnitude_min
    x[..., target] = lo + (1 - lo) * torch.rand(n_instances, n, generator=gen)
    if context.shape[1] > 0:
        on = torch.rand(n_instances, n, context.shape[1], generator=gen) < config.coactive_probability
        values = torch.rand(n_instances, n, context.shape[1], generator=gen) * on
        x.scatter_(2, context[:, None, :].expand(-1, n, -1), values)
    surface = torch.rand(n_instances, n, generator=gen) < config.surface_harm_rate
    which = harmful[torch.randint(0, harmful.numel(), (n_instances, n), generator=gen)]
    magnitude = torch.rand(n_instances, n, generator=gen)
    x.scatter_(2, which[..., None], torch.where(surface, magnitude, 0.0)[..., None])
    return x, surface & (magnitude > 0)


def make_task(target: int, n_instances: int, n_features: int, harmful, config: TaskConfig) -> TaskData:
    """The fine-tuning and held-out samples of task ``target`` (see the module docstring)."""
    harmful = torch.as_tensor(harmful, dtype=torch.long)
    if target in set(harmful.tolist()):
        raise InputError(f"target {target} is a harmful feature; tasks have benign targets")
    config.check_room(n_features, harmful.numel())
    gen = task_generator(config, target)
    candidates = torch.tensor([j for j in benign_features(n_features, harmful.tolist()) if j != target])
    context = torch.stack([candidates[torch.randperm(candidates.numel(), generator=gen)[: config.context_size]]
                           for _ in range(n_instances)])
    x, surface = _samples(n_instances, config.n_samples, n_features, target, context, harmful, config, gen)
    heldout, _ = _samples(n_instances, config.n_heldout, n_features, target, context, harmful, config, gen)
    return TaskData(target=target, x=x, heldout=heldout, context=context, surface=surface)


def probe_set(probability: Tensor, n_features: int, config: TaskConfig) -> Tensor:
    """The broad probe set: ``n_probe`` draws from the pre-training distribution, (n_instances, P, n)."""
    gen = torch.Generator().manual_seed(config.seed * 1_000_003)
    return sparse_uniform(probability, config.n_probe, n_features, generator=gen)
