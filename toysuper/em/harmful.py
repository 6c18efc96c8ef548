"""Harmful features of the toy world and the misalignment they show after fine-tuning.

A configurable set H of feature indices is labelled harmful. Misalignment is measured on a broad probe set
drawn from the pre-training distribution — never the fine-tuning data — with theory.misalignment:
the harmful rise R (mean rise of x̂_h, h∈H) and the EM rate E (fraction of probes on which some x̂_h newly
exceeds τ). The first-order prediction applies theory.tied_model's closed-form update to the *initial*
model and passes the predicted pre-activations through the ReLU."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from theory import misalignment as metrics
from theory import tied_model
from toysuper.config import FinetuneConfig
from toysuper.em.config import HarmfulConfig
from toysuper.measure import predicted_update
from toysuper.model import ToyModel


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
