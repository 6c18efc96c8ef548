"""Config pieces shared by the emergent-misalignment studies: the fine-tuning optimisation, the default toy
world (model and pre-training), and the cross-field checks of a world.

Instances are seeds: every study trains ``model.n_instances`` independent replicas (own init, own data,
same feature probability), and confidence intervals are taken over them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from theory.errors import InputError
from toysuper.config import FinetuneConfig, ModelConfig, TrainConfig
from toysuper.harmful import HarmfulConfig
from toysuper.tasks import TaskConfig


@dataclass(frozen=True)
class TuneConfig:
    """Narrow fine-tuning: L = -g · mean_{x∈T} φ(x) z_t(x), full batch, on each task's samples."""

    objective: Literal["preactivation", "output"] = "preactivation"  # push z_t, or ReLU(z_t)
    optimizer: Literal["sgd", "adam"] = "sgd"  # SGD (isotropic, theory exact to first order) or Adam
    lr: float = 0.01  # fine-tuning learning rate η
    steps: int = 20  # full-batch steps K
    strength: float = 1.0  # g: the loss's gradient scale

    def __post_init__(self):
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"finetune.lr must be a finite number > 0, got {self.lr}")
        if self.steps < 0:
            raise InputError(f"finetune.steps must be >= 0, got {self.steps}")
        if not (isinstance(self.strength, (int, float)) and math.isfinite(self.strength)):
            raise InputError(f"finetune.strength must be a finite number, got {self.strength}")

    def for_target(self, target: int) -> FinetuneConfig:
        return FinetuneConfig(target=target, objective=self.objective, optimizer=self.optimizer, lr=self.lr,
                              steps=self.steps, strength=self.strength)


def study_model() -> ModelConfig:
    """20 features in 5 dimensions, uniform importance, P(active) 0.05, 8 replicas (seeds)."""
    return ModelConfig(n_features=20, n_hidden=5, n_instances=8, feature_probability=0.05,
                       feature_probability_min=None, importance_decay=1.0)


def study_train() -> TrainConfig:
    return TrainConfig(steps=2000, batch_size=512, lr=1e-2)


def check_world(model: ModelConfig, harmful: HarmfulConfig, task: TaskConfig) -> None:
    """Cross-field checks: replicas share one probability, H fits, the context pool fits."""
    if model.n_instances < 2:
        raise InputError(f"model.n_instances must be >= 2 (instances are the seeds of the CIs), got {model.n_instances}")
    p_min = model.feature_probability_min
    if p_min is not None and p_min != model.feature_probability:
        raise InputError("model.feature_probability_min must be unset (or equal feature_probability): the studies' "
                         "instances are replicas (seeds) and must share one feature probability")
    harmful.check_range(model.n_features)
    task.check_room(model.n_features, len(harmful.features))
