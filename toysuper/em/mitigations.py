"""Mitigations of emergent misalignment, compared on the same fine-tuning set and removal budget.

Registry ``MITIGATIONS`` (name -> planner). A plan says which samples to keep (per instance) and optionally
edits the fine-tuning gradients:
- "none":       keep everything (the baseline).
- "geometry":   score_i = max_h cos(h(x_i), d_h), h(x) = Wᵀx (theory.filtering.sample_scores); drop the
                round(f·N) highest scores.
- "random":     drop round(f·N) samples uniformly at random (theory.filtering.random_removal).
- "judge":      a surface judge flags samples in which a harmful feature is itself active (x_h > 0), and
                misses each such sample with probability ``judge_miss_rate``; it drops the flagged samples
                first and, to spend the same budget, random unflagged ones (it knows nothing more).
                It never sees samples that are harmful only through geometry.
- "regularise": keep everything; project every W-gradient row off span{d_h} and freeze the harmful rows
                and biases (theory.regularise): harmful pre-activations stay fixed under SGD.
- "penalty":    keep everything; add λ Σ mean_{x∈T} Σ_h (z_h(x) - z_h^0(x))² to the task loss (a soft version
                that only sees the fine-tuning inputs; λ = ``penalty_weight``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from theory.filtering import n_to_remove, random_removal, remove_top_fraction, sample_scores
from theory.regularise import harmful_growth_penalty, project_gradient_, span_projector
from toysuper.config import FinetuneConfig
from toysuper.em.config import MITIGATION_METHODS, MitigationConfig
from toysuper.em.tasks import TaskData
from toysuper.finetune import OBJECTIVES, GradTransform, Objective, finetune
from toysuper.model import ToyModel


@dataclass
class Plan:
    """How a mitigation changes fine-tuning: the sample indices kept (n_instances, n_keep), an optional gradient
    transform, and an optional penalty (λ, harmful indices) adding λ·``harmful_growth_penalty``."""
    keep: Tensor
    """(n_instances, n_keep) sample indices kept (same count in every instance)."""
    grad_transform: GradTransform | None = None
    penalty: tuple[float, Tensor] | None = None
    """(λ, harmful indices): add λ·harmful_growth_penalty."""


@dataclass(frozen=True)
class Context:
    """What a mitigation sees: the pre-trained model, the task's data, the harmful indices (|H|,), the mitigation config
    and the seed of this (task, method)."""
    model: ToyModel
    task: TaskData
    harmful: Tensor
    """(|H|,) harmful feature indices."""
    config: MitigationConfig
    seed: int
    """A stream for this (task, method)."""


def _keep_all(ctx: Context) -> Plan:
    n_inst, n = ctx.task.x.shape[:2]
    return Plan(torch.arange(n).expand(n_inst, n).clone())


def _from_removals(removals) -> Plan:
    return Plan(torch.stack([torch.as_tensor(r.keep, dtype=torch.long) for r in removals]))


def geometry_scores(model: ToyModel, x: Tensor, harmful: Tensor, reduce: str = "max") -> Tensor:
    """Per-sample proximity of h(x) = Wᵀx to the harmful directions, (n_instances, N)."""
    reps = model.hidden(x)
    return torch.stack([sample_scores(reps[i], model.W[i, harmful], reduce=reduce) for i in range(reps.shape[0])])


def judge_flags(x: Tensor, harmful: Tensor, miss_rate: float, *, seed: int) -> Tensor:
    """Surface judge: flags samples with some x_h > 0, missing each with probability ``miss_rate``. (I, N) bool."""
    visible = (x[..., harmful] > 0).any(dim=-1)
    missed = torch.rand(visible.shape, generator=torch.Generator().manual_seed(seed)) < miss_rate
    return visible & ~missed


def _geometry(ctx: Context) -> Plan:
    scores = geometry_scores(ctx.model, ctx.task.x, ctx.harmful, ctx.config.score_reduce)
    return _from_removals(remove_top_fraction(s, ctx.config.fraction) for s in scores)


def _random(ctx: Context) -> Plan:
    n_inst, n = ctx.task.x.shape[:2]
    return _from_removals(random_removal(n, ctx.config.fraction, seed=ctx.seed * 1000 + i) for i in range(n_inst))


def _judge(ctx: Context) -> Plan:
    flags = judge_flags(ctx.task.x, ctx.harmful, ctx.config.judge_miss_rate, seed=ctx.seed)
    # flagged first (score >= 1), then a random order among the rest: the budget is spent exactly
    jitter = torch.rand(flags.shape, generator=torch.Generator().manual_seed(ctx.seed + 1))
    return _from_removals(remove_top_fraction(f.double() + 0.5 * j, ctx.config.fraction) for f, j in zip(flags, jitter))


def _regularise(ctx: Context) -> Plan:
    projector = span_projector(ctx.model.W[:, ctx.harmful, :])
    harmful = ctx.harmful

    def transform(grad_W: Tensor, grad_b: Tensor) -> None:
        project_gradient_(grad_W, grad_b, harmful, projector)

    plan = _keep_all(ctx)
    plan.grad_transform = transform
    return plan


def _penalty(ctx: Context) -> Plan:
    plan = _keep_all(ctx)
    plan.penalty = (ctx.config.penalty_weight, ctx.harmful)
    return plan


MITIGATIONS: dict[str, Callable[[Context], Plan]] = {
    "none": _keep_all, "geometry": _geometry, "random": _random, "judge": _judge, "regularise": _regularise,
    "penalty": _penalty,
}
assert tuple(MITIGATIONS) == MITIGATION_METHODS, "MitigationConfig's vocabulary must name exactly the registry"


def plan(name: str, model: ToyModel, task: TaskData, harmful, config: MitigationConfig, *, seed: int) -> Plan:
    """The plan of mitigation ``name`` for one task (``MITIGATIONS[name]`` on its context)."""
    return MITIGATIONS[name](Context(model, task, torch.as_tensor(harmful, dtype=torch.long), config, seed))


def n_removed(config: MitigationConfig, name: str, n_samples: int) -> int:
    """The budget a method spends: round(f·N) for the filters, 0 for the others."""
    return n_to_remove(n_samples, config.fraction) if name in ("geometry", "random", "judge") else 0


def penalised_objective(model: ToyModel, objective: str, weight: float, harmful: Tensor) -> Objective:
    """The task loss plus λ·harmful_growth_penalty against ``model`` (the weights before fine-tuning)."""
    base, W0, b0 = OBJECTIVES[objective], model.W, model.b

    def loss(W: Tensor, b: Tensor, x: Tensor, target: int, g: float) -> Tensor:
        return base(W, b, x, target, g) + weight * harmful_growth_penalty(W, b, W0, b0, x, harmful)

    return loss


def apply(model: ToyModel, task: TaskData, chosen: Plan, config: FinetuneConfig) -> ToyModel:
    """Fine-tune on the kept samples with the plan's gradient edit and penalty."""
    x = torch.gather(task.x, 1, chosen.keep[..., None].expand(-1, -1, task.x.shape[-1]))
    objective = None if chosen.penalty is None else penalised_objective(model, config.objective, *chosen.penalty)
    return finetune(model, x, config, objective=objective, grad_transform=chosen.grad_transform)


def removed_mask(chosen: Plan, n_samples: int) -> Tensor:
    """(n_instances, N) bool: the samples a plan dropped."""
    mask = torch.ones(chosen.keep.shape[0], n_samples, dtype=torch.bool)
    mask.scatter_(1, chosen.keep, False)
    return mask
