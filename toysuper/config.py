"""Configs for the toy model of superposition, its training and the narrow fine-tuning task.

Frozen dataclasses validated in ``__post_init__`` (an InputError names the bad field); built from dicts
or TOML with ``theory.configs.strict_from_dict`` (unknown keys are errors). Each field's docstring says what the
key means; the ``toysuper`` commands override some keys with flags (``cli.toysuper_simulate``), whose help ends
with the config's default."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from theory.configs import DictConfig
from theory.errors import InputError


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


def _finite(**values: float) -> None:
    for name, value in values.items():
        _check(isinstance(value, (int, float)) and math.isfinite(value), f"{name} must be a finite number, got {value}")


@dataclass(frozen=True)
class ModelConfig:
    """The toy model x̂ = ReLU(WᵀWx + b): n features squeezed into m hidden dimensions, many instances."""

    n_features: int = 20
    """n: number of sparse input features."""
    n_hidden: int = 5
    """m: hidden dimensions (superposition when m < n)."""
    n_instances: int = 8
    """Independent models trained at once (one feature-probability each)."""
    feature_probability: float = 0.1
    """P(feature active) for the densest instance, in (0, 1]."""
    feature_probability_min: float | None = 0.01
    """Sparsest instance (geometric schedule); None: all equal."""
    importance_decay: float = 0.9
    """Importance I_i = decay**i, in (0, 1]."""

    def __post_init__(self):
        _check(self.n_features >= 2, f"n_features must be >= 2, got {self.n_features}")
        _check(self.n_hidden >= 1, f"n_hidden must be >= 1, got {self.n_hidden}")
        _check(self.n_instances >= 1, f"n_instances must be >= 1, got {self.n_instances}")
        p_min = self.feature_probability if self.feature_probability_min is None else self.feature_probability_min
        _finite(feature_probability=self.feature_probability, feature_probability_min=p_min,
                importance_decay=self.importance_decay)
        for name, p in (("feature_probability", self.feature_probability), ("feature_probability_min", p_min)):
            _check(0 < p <= 1, f"{name} must be in (0, 1], got {p}")
        _check(p_min <= self.feature_probability,
               f"feature_probability_min ({p_min}) must not exceed feature_probability ({self.feature_probability})")
        _check(0 < self.importance_decay <= 1, f"importance_decay must be in (0, 1], got {self.importance_decay}")
        if self.n_hidden >= self.n_features:
            warnings.warn(f"n_hidden={self.n_hidden} >= n_features={self.n_features}: no superposition is needed",
                          stacklevel=2)

    def feature_probabilities(self) -> list[float]:
        """Per-instance P(active): geometric from feature_probability down to feature_probability_min."""
        p_min = self.feature_probability if self.feature_probability_min is None else self.feature_probability_min
        if self.n_instances == 1:
            return [self.feature_probability]
        ratio = (p_min / self.feature_probability) ** (1 / (self.n_instances - 1))
        return [self.feature_probability * ratio**i for i in range(self.n_instances)]

    def importances(self) -> list[float]:
        """Per-feature importance I_i = ``importance_decay``**i, i = 0..n_features-1."""
        return [self.importance_decay**i for i in range(self.n_features)]


@dataclass(frozen=True)
class TrainConfig:
    """Pre-training of the toy model on sparse-uniform data (importance-weighted MSE, AdamW)."""

    steps: int = 4000
    """Optimisation steps."""
    batch_size: int = 1024
    """Samples per step per instance."""
    lr: float = 1e-2
    """Peak learning rate."""
    optimizer: Literal["adamw", "adam"] = "adamw"
    """Adam or AdamW (decoupled weight decay)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    lr_schedule: Literal["constant", "cosine", "linear"] = "constant"
    """After the warm-up: constant, or a cosine / linear decay to 0 over the remaining steps."""
    warmup_steps: int = 0
    """Linear warm-up steps."""
    seed: int = 0
    """Seeds init and data."""
    log_every: int = 100
    """Loss evaluated every this many steps."""

    def __post_init__(self):
        _check(self.steps >= 0, f"steps must be >= 0, got {self.steps}")
        _check(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        _finite(lr=self.lr, weight_decay=self.weight_decay)
        _check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _check(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        _check(0 <= self.warmup_steps, f"warmup_steps must be >= 0, got {self.warmup_steps}")
        _check(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step``: linear warm-up, then constant / cosine / linear decay to 0."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        frac = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * frac))
        if self.lr_schedule == "linear":
            return self.lr * (1 - frac)
        return self.lr


@dataclass(frozen=True)
class FinetuneConfig:
    """Narrow fine-tuning: L = -g · mean_{x∈T} φ(x) z_t(x), ``steps`` full-batch steps of ``optimizer``
    (toysuper.finetune.OPTIMIZERS) on a task set T where the target t is active — the one fine-tuning config of
    the toy world. ``simulate`` reads all of it (n_samples .. seed draw its own T and probe set); the studies
    (toysuper.em) draw their tasks from their [task] table, set t per task (``for_target``) and read and write
    only the ``OPTIMISATION`` fields (their default instance: toysuper.em.config.study_finetune)."""

    target: int = 0
    """Target feature t (0-based)."""
    objective: Literal["preactivation", "output"] = "preactivation"
    """Push z_t, or ReLU(z_t)."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """Plain SGD (isotropic) or Adam (sign-like preconditioner)."""
    lr: float = 0.005
    """Fine-tuning learning rate η."""
    steps: int = 20
    """Full-batch fine-tuning steps."""
    strength: float = 1.0
    """g: the loss's gradient scale."""
    n_samples: int = 256
    """Size of the fine-tuning set T."""
    target_magnitude_min: float = 0.5
    """x_t ~ U[min, 1] on every task sample."""
    background_probability: float = 0.0
    """Other features' P(active) in T (0: perfectly narrow task)."""
    n_probe: int = 2048
    """Probe inputs, drawn from the broad pre-training distribution."""
    seed: int = 1
    """Seeds the task set and the probe set."""

    OPTIMISATION: ClassVar[tuple[str, ...]] = ("objective", "optimizer", "lr", "steps", "strength")

    def __post_init__(self):
        _check(self.target >= 0, f"target must be >= 0, got {self.target}")
        _check(isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0,
               f"finetune.lr must be a finite number > 0, got {self.lr}")
        _check(self.steps >= 0, f"finetune.steps must be >= 0, got {self.steps}")
        _check(isinstance(self.strength, (int, float)) and math.isfinite(self.strength),
               f"finetune.strength must be a finite number, got {self.strength}")
        _check(self.n_samples >= 1 and self.n_probe >= 1, "n_samples and n_probe must be >= 1")
        _finite(target_magnitude_min=self.target_magnitude_min, background_probability=self.background_probability)
        _check(0 <= self.target_magnitude_min <= 1, f"target_magnitude_min must be in [0, 1], got {self.target_magnitude_min}")
        _check(0 <= self.background_probability <= 1,
               f"background_probability must be in [0, 1], got {self.background_probability}")

    def for_target(self, target: int) -> FinetuneConfig:
        """The same fine-tuning aimed at feature ``target`` (one task of a study)."""
        return replace(self, target=target)

    def optimisation(self) -> dict:
        """The ``OPTIMISATION`` fields, in order: a study's [finetune] table."""
        return {name: getattr(self, name) for name in self.OPTIMISATION}


@dataclass(frozen=True)
class SimulateConfig(DictConfig):
    """Everything ``toysuper simulate`` needs."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The toy model ([model])."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Its pre-training ([train])."""
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    """The narrow fine-tuning task and its optimisation ([finetune])."""

    def __post_init__(self):
        _check(self.finetune.target < self.model.n_features,
               f"target feature {self.finetune.target} is out of range: n_features is {self.model.n_features} "
               f"(valid targets 0..{self.model.n_features - 1})")

