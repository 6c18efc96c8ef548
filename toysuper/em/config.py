"""Config pieces shared by the emergent-misalignment studies: the studies' default world (model, pre-training,
fine-tuning), ``StudyConfig`` (the base of every study config) and ``WorldConfig`` (a study's whole toy world,
checked across fields).

Instances are seeds: every study trains ``model.n_instances`` independent replicas (own init, own data,
same feature probability), and confidence intervals are taken over them. A study's [finetune] table holds
only the optimisation fields of the one fine-tuning config (toysuper.config.FinetuneConfig.OPTIMISATION):
its tasks come from [task] and the target is set per task."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from theory.configs import DictConfig
from theory.errors import InputError
from toysuper.config import FinetuneConfig, ModelConfig, TrainConfig
from toysuper.em.harmful import HarmfulConfig
from toysuper.em.tasks import TaskConfig


def study_model() -> ModelConfig:
    """20 features in 5 dimensions, uniform importance, P(active) 0.05, 8 replicas (seeds)."""
    return ModelConfig(n_features=20, n_hidden=5, n_instances=8, feature_probability=0.05,
                       feature_probability_min=None, importance_decay=1.0)


def study_train() -> TrainConfig:
    return TrainConfig(steps=2000, batch_size=512, lr=1e-2)


def study_finetune(lr: float = 0.01) -> FinetuneConfig:
    """The studies' fine-tuning: SGD on z_t, 20 steps, η = 0.01 (twice simulate's)."""
    return FinetuneConfig(lr=lr)


class StudyConfig(DictConfig):
    """Base of the study configs (dataclasses with a ``finetune: FinetuneConfig`` field): writes and checks
    their [finetune] table as the optimisation fields only."""

    def to_dict(self) -> dict:
        data = super().to_dict()
        data["finetune"] = self.finetune.optimisation()
        return data

    def check_finetune(self) -> None:
        """A key of simulate's own task set (or the target) set in a study's [finetune] is an unknown key (found
        by its value: one set to FinetuneConfig's default is indistinguishable, and harmless)."""
        default = FinetuneConfig()
        for f in fields(FinetuneConfig):
            if f.name not in FinetuneConfig.OPTIMISATION and getattr(self.finetune, f.name) != getattr(default, f.name):
                raise InputError(f"unknown config key 'finetune.{f.name}' "
                                 f"(valid keys: {', '.join(sorted(FinetuneConfig.OPTIMISATION))})")


@dataclass(frozen=True)
class WorldConfig(StudyConfig):
    """The toy world a study trains and fine-tunes (inducing's and mitigate's [model], [train], [harmful],
    [task], [finetune] tables), checked across fields: replicas share one probability, H fits, the context
    pool fits."""

    model: ModelConfig = field(default_factory=study_model)
    train: TrainConfig = field(default_factory=study_train)
    harmful: HarmfulConfig = field(default_factory=HarmfulConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    finetune: FinetuneConfig = field(default_factory=study_finetune)

    def __post_init__(self):
        model = self.model
        if model.n_instances < 2:
            raise InputError(f"model.n_instances must be >= 2 (instances are the seeds of the CIs), "
                             f"got {model.n_instances}")
        p_min = model.feature_probability_min
        if p_min is not None and p_min != model.feature_probability:
            raise InputError("model.feature_probability_min must be unset (or equal feature_probability): the "
                             "studies' instances are replicas (seeds) and must share one feature probability")
        self.harmful.check_range(model.n_features)
        self.task.check_room(model.n_features, len(self.harmful.features))
        self.check_finetune()
