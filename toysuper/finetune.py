"""Narrow fine-tuning of a trained toy model on a task set T (autograd + torch.optim, independent of
the closed forms in theory/, so that measurement can check the theory).

Objectives (registry ``OBJECTIVES``), each a per-instance loss summed over instances:
- "preactivation": L = -g · mean_{x∈T} z_t(x)       (push the target's pre-activation up)
- "output":        L = -g · mean_{x∈T} ReLU(z_t(x)) (push the target's output up; ReLU-gated)
Optimisers (registry ``OPTIMIZERS``, name -> torch constructor and the closed form of its first step that
toysuper.measure repeats): "sgd" (isotropic update) and "adam" (sign-like diagonal preconditioner);
full-batch steps.
``grad_transform`` (optional) edits the gradients before each step — the hook for regularisers such as
projecting updates off harmful directions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from theory import tied_model
from theory.tied_model import Update, preactivation
from toysuper.config import FinetuneConfig
from toysuper.model import ToyModel

Objective = Callable[[Tensor, Tensor, Tensor, int, float], Tensor]


def _preactivation_objective(W: Tensor, b: Tensor, x: Tensor, target: int, g: float) -> Tensor:
    return -g * preactivation(W, b, x)[..., target].mean(dim=-1).sum()


def _output_objective(W: Tensor, b: Tensor, x: Tensor, target: int, g: float) -> Tensor:
    return -g * torch.relu(preactivation(W, b, x)[..., target]).mean(dim=-1).sum()


OBJECTIVES: dict[str, Objective] = {"preactivation": _preactivation_objective, "output": _output_objective}

GradTransform = Callable[[Tensor, Tensor], None]  # (grad_W, grad_b) edited in place


@dataclass(frozen=True)
class Optimizer:
    """A fine-tuning optimiser: its torch constructor ``make(params, lr=η)`` and its first step in closed form
    (theory.tied_model), ``first_update(∇L, η)``."""

    make: Callable[..., torch.optim.Optimizer]
    first_update: Callable[[Update, float], Update]


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer(torch.optim.SGD, tied_model.sgd_update),  # Δθ = -η ∇L
    "adam": Optimizer(torch.optim.Adam, tied_model.adam_first_update),  # Δθ₁ = -η ∇/(|∇| + ε)
}


def finetune(model: ToyModel, task_x: Tensor, config: FinetuneConfig, *, objective: Objective | None = None,
             grad_transform: GradTransform | None = None) -> ToyModel:
    """Fine-tune a copy of ``model`` for ``config.steps`` full-batch steps on task_x (n_inst, N, n)."""
    W = model.W.clone().requires_grad_(True)
    b = model.b.clone().requires_grad_(True)
    loss_fn = objective or OBJECTIVES[config.objective]
    opt = OPTIMIZERS[config.optimizer].make([W, b], lr=config.lr)
    for _ in range(config.steps):
        opt.zero_grad(set_to_none=False)
        loss_fn(W, b, task_x, config.target, config.strength).backward()
        if grad_transform is not None:
            grad_transform(W.grad, b.grad)
        opt.step()
    return ToyModel(W.detach(), b.detach(), model.importance, model.probability)
