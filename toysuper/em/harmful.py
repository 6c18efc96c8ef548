"""Harmful features of the toy world and the misalignment they show after fine-tuning.

A configurable set H of feature indices is labelled harmful. Misalignment is measured on a broad probe set
drawn from the pre-training distribution — never the fine-tuning data — with theory.misalignment:
the harmful rise R (mean rise of x̂_h, h∈H) and the EM rate E (fraction of probes on which some x̂_h newly
exceeds τ). The first-order prediction applies theory.tied_model's closed-form update to the *initial*
model and passes the predicted pre-activations through the ReLU."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from theory import misalignment as metrics
from theory import tied_model
from theory.errors import InputError
from toysuper.config import FinetuneConfig
from toysuper.measure import predicted_update
from toysuper.model import ToyModel


@dataclass(frozen=True)
class HarmfulConfig:
    """The harmful feature set H and the threshold τ of the EM rate."""

    features: tuple[int, ...] = (0, 1, 2)  # indices of the features labelled harmful (non-empty, distinct)
    threshold: float = 0.1  # τ: a harmful output x̂_h > τ counts as "produced" (EM rate)

    def __post_init__(self):
        if len(self.features) == 0:
            raise InputError("harmful.features is empty: label at least one feature harmful")
        if any(f < 0 for f in self.features):
            raise InputError(f"harmful.features must be >= 0, got {list(self.features)}")
        if len(set(self.features)) != len(self.features):
            raise InputError(f"harmful.features has duplicates: {list(self.features)}")
        if not (isinstance(self.threshold, (int, float)) and math.isfinite(self.threshold) and self.threshold >= 0):
            raise InputError(f"harmful.threshold must be a finite number >= 0, got {self.threshold}")

    def check_range(self, n_features: int) -> None:
        bad = [f for f in self.features if f >= n_features]
        if bad:
            raise InputError(f"harmful feature {bad[0]} is out of range: n_features is {n_features} "
                             f"(valid indices 0..{n_features - 1})")
        if len(self.features) >= n_features:
            raise InputError(f"all {n_features} features are harmful: leave at least one benign feature as a task")

    @property
    def index(self) -> Tensor:
        return torch.tensor(self.features, dtype=torch.long)


def harmful_directions(model: ToyModel, harmful: HarmfulConfig) -> Tensor:
    """The rows d_h, h∈H, of every instance: (n_instances, |H|, n_hidden)."""
    return model.W[:, harmful.index, :]


@dataclass(frozen=True)
class Misalignment:
    """Per-instance metrics, each (n_instances,)."""

    harmful_rise: Tensor
    em_rate: Tensor


def misalignment(out_before: Tensor, out_after: Tensor, harmful: HarmfulConfig) -> Misalignment:
    """R and E from probe outputs before/after, each (n_instances, n_probe, n_features)."""
    return Misalignment(metrics.harmful_rise(out_before, out_after, harmful.index),
                        metrics.em_rate(out_before, out_after, harmful.index, harmful.threshold))


def em_rate_where(out_before: Tensor, out_after: Tensor, harmful: HarmfulConfig, where: Tensor) -> Tensor:
    """E restricted to the probes selected by ``where`` (n_instances, n_probe), e.g. those containing the target."""
    return metrics.em_rate(out_before, out_after, harmful.index, harmful.threshold, where=where)


def predicted_outputs(before: ToyModel, task_x: Tensor, config: FinetuneConfig, probe_x: Tensor) -> Tensor:
    """x̂ predicted to first order: ReLU(z + Δz), Δz from K closed-form steps on the initial model."""
    update = predicted_update(before, task_x, config)
    dz = tied_model.preactivation_change(before.W, update, probe_x, order="first")
    return torch.relu(before.preactivation(probe_x) + dz)
