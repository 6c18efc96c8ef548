"""Before/after geometry of one small instance (m = 2, so every feature direction can be drawn).

Train a 2-D toy model, pick the benign target closest to the harmful set (or the configured one), fine-tune
on its task, and record the feature directions before and after together with every feature's mean output
change on the broad probe (measured, and first-order predicted)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from theory.geometry import cosine_similarity
from toysuper.em.config import GeometryConfig, benign_features
from toysuper.em.harmful import misalignment, predicted_outputs
from toysuper.em.measure import proximity_to_harmful
from toysuper.em.tasks import make_task, probe_set
from toysuper.finetune import finetune
from toysuper.train import train


@dataclass
class GeometryResult:
    """What ``run_geometry`` measured on instance 0: the feature directions W before and after fine-tuning (n_features,
    2), the target, harmful and context features, every feature's cosine to the target, its measured and first-order
    predicted mean output change over the probe set (n_features,), the harmful rise and the EM rate."""
    W_before: torch.Tensor
    """Feature directions before fine-tuning, (n_features, 2), instance 0."""
    W_after: torch.Tensor
    target: int
    harmful: list[int]
    context: list[int]
    cosine_to_target: torch.Tensor
    """cos(W_j, W_t) of every feature j with the target t before fine-tuning, (n_features,)."""
    measured_change: torch.Tensor
    """Mean Δx̂_j over the probe, (n_features,)."""
    predicted_change: torch.Tensor
    harmful_rise: float
    em_rate: float

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict (tensors as lists)."""
        return {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}


def run_geometry(config: GeometryConfig) -> GeometryResult:
    """Train the 2-D toy model, fine-tune it on one task (the target given, or the benign feature closest to the harmful
    set) and measure the change of every feature's output on the probe set, measured and predicted to first order."""
    model = train(config.model, config.train).model
    benign = benign_features(config.model.n_features, config.harmful.features)
    if config.target is None:
        target = benign[int(proximity_to_harmful(model, benign, config.harmful)[0].argmax())]
    else:
        target = config.target
    task = make_task(target, model.W.shape[0], config.model.n_features, config.harmful.features, config.task)
    ft = config.finetune.for_target(target)
    after = finetune(model, task.x, ft)
    probe = probe_set(model.probability, config.model.n_features, config.task)
    out0, out1 = model.forward(probe), after.forward(probe)
    pred = predicted_outputs(model, task.x, ft, probe)
    mis = misalignment(out0, out1, config.harmful)
    return GeometryResult(
        W_before=model.W[0], W_after=after.W[0], target=target, harmful=list(config.harmful.features),
        context=task.context[0].tolist(),
        cosine_to_target=cosine_similarity(model.W[0], model.W[0, target:target + 1])[:, 0],
        measured_change=(out1 - out0)[0].mean(dim=0), predicted_change=(pred - out0)[0].mean(dim=0),
        harmful_rise=float(mis.harmful_rise[0]), em_rate=float(mis.em_rate[0]),
    )
