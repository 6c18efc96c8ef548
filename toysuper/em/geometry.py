"""Before/after geometry of one small instance (m = 2, so every feature direction can be drawn).

Train a 2-D toy model, pick the benign target closest to the harmful set (or the configured one), fine-tune
on its task, and record the feature directions before and after together with every feature's mean output
change on the broad probe (measured, and first-order predicted)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from theory.errors import InputError
from theory.geometry import cosine_similarity
from toysuper.config import FinetuneConfig, ModelConfig, TrainConfig
from toysuper.em.config import StudyConfig, study_finetune
from toysuper.em.harmful import HarmfulConfig, misalignment, predicted_outputs
from toysuper.em.measure import proximity_to_harmful
from toysuper.em.tasks import TaskConfig, benign_features, make_task, probe_set
from toysuper.finetune import finetune
from toysuper.train import train


def _model() -> ModelConfig:
    return ModelConfig(n_features=5, n_hidden=2, n_instances=1, feature_probability=0.05,
                       feature_probability_min=None, importance_decay=1.0)


@dataclass(frozen=True)
class GeometryConfig(StudyConfig):
    """Everything ``toysuper geometry`` needs."""

    model: ModelConfig = field(default_factory=_model)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, batch_size=512, lr=1e-2))
    harmful: HarmfulConfig = field(default_factory=lambda: HarmfulConfig(features=(0,)))
    task: TaskConfig = field(default_factory=lambda: TaskConfig(context_size=1))
    finetune: FinetuneConfig = field(default_factory=lambda: study_finetune(lr=0.02))
    target: int | None = None  # the task's target (unset: the benign feature closest to the harmful set)

    def __post_init__(self):
        if self.model.n_hidden != 2:
            raise InputError(f"the geometry figure draws 2-D directions: model.n_hidden must be 2, "
                             f"got {self.model.n_hidden}")
        self.check_finetune()
        self.harmful.check_range(self.model.n_features)
        self.task.check_room(self.model.n_features, len(self.harmful.features))
        if self.target is not None and self.target not in benign_features(self.model.n_features, self.harmful.features):
            raise InputError(f"target {self.target} must be a benign feature index below {self.model.n_features}")


@dataclass
class GeometryResult:
    W_before: torch.Tensor  # (n_features, 2), instance 0
    W_after: torch.Tensor
    target: int
    harmful: list[int]
    context: list[int]
    cosine_to_target: torch.Tensor  # (n_features,)
    measured_change: torch.Tensor  # mean Δx̂_j over the probe, (n_features,)
    predicted_change: torch.Tensor
    harmful_rise: float
    em_rate: float

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}


def run_geometry(config: GeometryConfig) -> GeometryResult:
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
