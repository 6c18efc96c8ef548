"""Config pieces shared by the emergent-misalignment studies: the studies' default world (model, pre-training,
fine-tuning), ``StudyConfig`` (the base of every study config) and ``WorldConfig`` (a study's whole toy world,
checked across fields).

Instances are seeds: every study trains ``model.n_instances`` independent replicas (own init, own data,
same feature probability), and confidence intervals are taken over them. A study's [finetune] table holds
only the optimisation fields of the one fine-tuning config (toysuper.config.FinetuneConfig.OPTIMISATION):
its tasks come from [task] and the target is set per task.

Every config of the studies lives here (the study modules re-export theirs) and this module imports no torch,
so the CLI checks a whole config before it imports the heavy modules."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Literal

from runio.jobs import check_workers
from theory.configs import DictConfig
from theory.errors import InputError
from toysuper.config import FinetuneConfig, ModelConfig, TrainConfig

MITIGATION_METHODS = ("none", "geometry", "random", "judge", "regularise", "penalty")  # toysuper.em.mitigations


@dataclass(frozen=True)
class HarmfulConfig:
    """The harmful feature set H and the threshold τ of the EM rate."""

    features: tuple[int, ...] = (0, 1, 2)
    """Indices of the features labelled harmful (non-empty, distinct)."""
    threshold: float = 0.1
    """τ: a harmful output x̂_h > τ counts as "produced" (EM rate)."""

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
        """An InputError unless every harmful index is below ``n_features`` and at least one feature is benign."""
        bad = [f for f in self.features if f >= n_features]
        if bad:
            raise InputError(f"harmful feature {bad[0]} is out of range: n_features is {n_features} "
                             f"(valid indices 0..{n_features - 1})")
        if len(self.features) >= n_features:
            raise InputError(f"all {n_features} features are harmful: leave at least one benign feature as a task")

    @property
    def index(self):
        """H as a long tensor (imports torch: the config itself does not)."""
        import torch

        return torch.tensor(self.features, dtype=torch.long)


@dataclass(frozen=True)
class TaskConfig:
    """The data-generating process of every task and the broad probe set."""

    n_samples: int = 256
    """Fine-tuning samples per task and instance."""
    n_heldout: int = 256
    """Held-out samples of the same task (target-task metric)."""
    target_magnitude_min: float = 0.5
    """x_t ~ U[min, 1] in every sample, min in [0, 1]."""
    context_size: int = 4
    """Co-occurring benign features per task (drawn at random per instance)."""
    coactive_probability: float = 0.3
    """P(a context feature is active in a sample), x_c ~ U[0, 1]."""
    surface_harm_rate: float = 0.05
    """P(a sample also has one harmful feature active), x_h ~ U[0, 1]."""
    n_probe: int = 4096
    """Broad probe inputs, drawn from the pre-training distribution."""
    seed: int = 1
    """Seeds the tasks and the probe set."""

    def __post_init__(self):
        if self.n_samples < 2 or self.n_heldout < 1 or self.n_probe < 1:
            raise InputError("task.n_samples must be >= 2, task.n_heldout and task.n_probe >= 1")
        if self.context_size < 0:
            raise InputError(f"task.context_size must be >= 0, got {self.context_size}")
        for name in ("target_magnitude_min", "coactive_probability", "surface_harm_rate"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value <= 1):
                raise InputError(f"task.{name} must be in [0, 1], got {value}")

    def check_room(self, n_features: int, n_harmful: int) -> None:
        """The context pool must fit among the benign non-target features."""
        room = n_features - n_harmful - 1
        if self.context_size > room:
            raise InputError(f"task.context_size={self.context_size} is too large: only {room} benign features "
                             f"besides the target (n_features={n_features}, {n_harmful} harmful)")


def benign_features(n_features: int, harmful) -> list[int]:
    """Features not labelled harmful: the possible targets (and context features)."""
    bad = set(int(h) for h in harmful)
    return [j for j in range(n_features) if j not in bad]


@dataclass(frozen=True)
class MitigationConfig:
    """Which mitigations to compare, at what removal budget."""

    methods: tuple[str, ...] = ("geometry", "random", "judge", "regularise", "penalty")
    """The mitigations compared against "none" (``MITIGATION_METHODS``)."""
    fraction: float = 0.1
    """Removal budget f in [0, 1): every filter drops round(f·N) samples."""
    judge_miss_rate: float = 0.2
    """P(the judge misses a sample whose harmful feature is active), in [0, 1]."""
    score_reduce: Literal["max", "mean"] = "max"
    """Geometry score: max or mean cosine over harmful directions."""
    penalty_weight: float = 10.0
    """λ of the "penalty" method, >= 0."""
    seed: int = 0
    """Seeds random removal and the judge's misses."""

    def __post_init__(self):
        if not (isinstance(self.fraction, (int, float)) and math.isfinite(self.fraction) and 0 <= self.fraction < 1):
            raise InputError(f"mitigation.fraction (removal fraction) must be in [0, 1), got {self.fraction}")
        if not (isinstance(self.judge_miss_rate, (int, float)) and 0 <= self.judge_miss_rate <= 1):
            raise InputError(f"mitigation.judge_miss_rate must be in [0, 1], got {self.judge_miss_rate}")
        if not (isinstance(self.penalty_weight, (int, float)) and math.isfinite(self.penalty_weight)
                and self.penalty_weight >= 0):
            raise InputError(f"mitigation.penalty_weight must be a finite number >= 0, got {self.penalty_weight}")
        if len(self.methods) == 0:
            raise InputError("mitigation.methods is empty: name at least one of " + ", ".join(sorted(MITIGATION_METHODS)))
        unknown = [m for m in self.methods if m not in MITIGATION_METHODS]
        if unknown:
            raise InputError(f"unknown mitigation '{unknown[0]}' (choose from {', '.join(sorted(MITIGATION_METHODS))})")
        if len(set(self.methods)) != len(self.methods):
            raise InputError(f"mitigation.methods has duplicates: {list(self.methods)}")




def study_model() -> ModelConfig:
    """20 features in 5 dimensions, uniform importance, P(active) 0.05, 8 replicas (seeds)."""
    return ModelConfig(n_features=20, n_hidden=5, n_instances=8, feature_probability=0.05,
                       feature_probability_min=None, importance_decay=1.0)


def study_train() -> TrainConfig:
    """The studies' pre-training: 2000 steps of 512 samples, learning rate 1e-2."""
    return TrainConfig(steps=2000, batch_size=512, lr=1e-2)


def study_finetune(lr: float = 0.01) -> FinetuneConfig:
    """The studies' fine-tuning: SGD on z_t, 20 steps, η = 0.01 (twice simulate's)."""
    return FinetuneConfig(lr=lr)


class StudyConfig(DictConfig):
    """Base of the study configs (dataclasses with a ``finetune: FinetuneConfig`` field): writes and checks
    their [finetune] table as the optimisation fields only."""

    def to_dict(self) -> dict:
        """The config as a dict with [finetune] reduced to its optimisation fields."""
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
    """The toy model ([model]; default ``study_model``)."""
    train: TrainConfig = field(default_factory=study_train)
    """Its pre-training ([train]; default ``study_train``)."""
    harmful: HarmfulConfig = field(default_factory=HarmfulConfig)
    """The harmful feature set H and the EM threshold ([harmful])."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """The tasks' data-generating process and the probe set ([task])."""
    finetune: FinetuneConfig = field(default_factory=study_finetune)
    """The fine-tuning optimisation ([finetune]; default ``study_finetune``)."""

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


# ---------------------------------------------------------------- the studies


@dataclass(frozen=True)
class AnalysisConfig:
    """Statistics of the study."""

    inducing_threshold: float | None = None
    """A task is inducing if its EM rate exceeds this (unset: the median)."""
    level: float = 0.95
    """Confidence level of every interval."""
    n_bootstrap: int = 2000
    """Bootstrap resamples."""
    n_permutations: int = 5000
    """Permutation-test resamples."""
    n_null_draws: int = 2000
    """Random feature sets in the null."""
    seed: int = 0
    """Seeds the resampling."""

    def __post_init__(self):
        if not 0 < self.level < 1:
            raise InputError(f"analysis.level must be in (0, 1), got {self.level}")
        if min(self.n_bootstrap, self.n_permutations, self.n_null_draws) < 10:
            raise InputError("analysis.n_bootstrap, n_permutations and n_null_draws must be >= 10")


@dataclass(frozen=True)
class InducingConfig(WorldConfig):
    """Everything ``toysuper inducing`` needs: the world's tables, then [analysis]."""

    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    """The statistics ([analysis])."""


@dataclass(frozen=True)
class MitigateAnalysis:
    """Statistics of ``toysuper mitigate``: the confidence level and the bootstrap over instances."""
    level: float = 0.95
    """Confidence level."""
    n_bootstrap: int = 5000
    """Bootstrap resamples over instances."""
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.level < 1:
            raise InputError(f"analysis.level must be in (0, 1), got {self.level}")
        if self.n_bootstrap < 10:
            raise InputError(f"analysis.n_bootstrap must be >= 10, got {self.n_bootstrap}")


@dataclass(frozen=True)
class MitigateConfig(WorldConfig):
    """Everything ``toysuper mitigate`` needs: the world's tables, then [mitigation], [analysis], max_tasks."""

    mitigation: MitigationConfig = field(default_factory=MitigationConfig)
    """The mitigations compared and their budget ([mitigation])."""
    analysis: MitigateAnalysis = field(default_factory=MitigateAnalysis)
    """The statistics ([analysis])."""
    max_tasks: int | None = None
    """Use only the first max_tasks benign targets (unset: all)."""

    def __post_init__(self):
        super().__post_init__()
        if self.max_tasks is not None and self.max_tasks < 1:
            raise InputError(f"max_tasks must be >= 1, got {self.max_tasks}")

    def targets(self) -> list[int]:
        """The benign targets fine-tuned on: every benign feature, or the first ``max_tasks``."""
        targets = benign_features(self.model.n_features, self.harmful.features)
        return targets if self.max_tasks is None else targets[: self.max_tasks]


def geometry_model() -> ModelConfig:
    """The geometry figure's model: 5 features in 2 dimensions, one instance, P(active) 0.05, uniform importance."""
    return ModelConfig(n_features=5, n_hidden=2, n_instances=1, feature_probability=0.05,
                       feature_probability_min=None, importance_decay=1.0)


@dataclass(frozen=True)
class GeometryConfig(StudyConfig):
    """Everything ``toysuper geometry`` needs."""

    model: ModelConfig = field(default_factory=geometry_model)
    """The toy model ([model]; 2 hidden dimensions, drawn as the figure)."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=3000, batch_size=512, lr=1e-2))
    """Its pre-training ([train])."""
    harmful: HarmfulConfig = field(default_factory=lambda: HarmfulConfig(features=(0,)))
    """The harmful feature set ([harmful]; feature 0)."""
    task: TaskConfig = field(default_factory=lambda: TaskConfig(context_size=1))
    """The task's data-generating process ([task]; one context feature)."""
    finetune: FinetuneConfig = field(default_factory=lambda: study_finetune(lr=0.02))
    """The fine-tuning optimisation ([finetune]; η = 0.02)."""
    target: int | None = None
    """The task's target (unset: the benign feature closest to the harmful set)."""

    def __post_init__(self):
        if self.model.n_hidden != 2:
            raise InputError(f"the geometry figure draws 2-D directions: model.n_hidden must be 2, "
                             f"got {self.model.n_hidden}")
        self.check_finetune()
        self.harmful.check_range(self.model.n_features)
        self.task.check_room(self.model.n_features, len(self.harmful.features))
        if self.target is not None and self.target not in benign_features(self.model.n_features, self.harmful.features):
            raise InputError(f"target {self.target} must be a benign feature index below {self.model.n_features}")


def _sweep_task() -> TaskConfig:
    return TaskConfig(context_size=2, surface_harm_rate=0.0)


@dataclass(frozen=True)
class SweepConfig(StudyConfig):
    """Everything ``toysuper density`` needs."""

    n_hidden: int = 5
    """m: hidden dimensions, fixed across the grid."""
    ratios: tuple[int, ...] = (1, 2, 4, 8)
    """n/m: features per hidden dimension (n = ratio·m)."""
    probabilities: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01)
    """Feature probability p (pre-training and probes)."""
    n_instances: int = 6
    """Replicas (seeds) per cell."""
    importance_decay: float = 1.0
    """Importance I_i = decay**i."""
    max_tasks: int = 12
    """Benign targets per cell (the first ones)."""
    workers: int = 2
    """Cells computed at once (Ray workers, runio.jobs; 1: in this process)."""
    n_bootstrap: int = 1000
    """Bootstrap resamples of the per-instance ρ CI."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=2000, batch_size=512, lr=1e-2))
    """Pre-training of every cell's model ([train])."""
    harmful: HarmfulConfig = field(default_factory=lambda: HarmfulConfig(features=(0, 1)))
    """The harmful feature set ([harmful]; features 0 and 1)."""
    task: TaskConfig = field(default_factory=_sweep_task)
    """The tasks' data-generating process ([task]; 2 context features, no surface harm; the context shrinks to fit small
    cells)."""
    finetune: FinetuneConfig = field(default_factory=study_finetune)
    """The fine-tuning optimisation ([finetune])."""

    def __post_init__(self):
        if self.n_hidden < 1 or self.n_instances < 2 or self.max_tasks < 1 or self.workers < 1:
            raise InputError("n_hidden, max_tasks and workers must be >= 1 and n_instances >= 2")
        check_workers(self.workers)  # at most runio.jobs.MAX_WORKERS, before the sweep's run directory is written
        if not self.ratios or any(r < 1 for r in self.ratios):
            raise InputError(f"ratios must be a non-empty list of integers >= 1, got {list(self.ratios)}")
        if not self.probabilities or any(not 0 < p <= 1 for p in self.probabilities):
            raise InputError(f"probabilities must be a non-empty list in (0, 1], got {list(self.probabilities)}")
        if len(set(self.ratios)) != len(self.ratios) or len(set(self.probabilities)) != len(self.probabilities):
            raise InputError("ratios and probabilities must not repeat")
        if self.n_bootstrap < 10:
            raise InputError(f"n_bootstrap must be >= 10, got {self.n_bootstrap}")
        self.check_finetune()
        self.harmful.check_range(min(self.ratios) * self.n_hidden)
