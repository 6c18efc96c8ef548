"""The configs of the analysis commands, frozen and validated in ``__post_init__`` (InputError, one line):
``SelectionConfig`` (features tied to a dataset), ``StudyConfig`` (the geometry study), ``FilterConfig``
(sample filtering) and ``AuditConfig`` (the pre-fine-tuning audit).

Kept apart from the analyses, without torch or scipy, so the CLI resolves and checks them (and renders
their defaults in ``--help``) before anything heavy is imported. ``Criterion`` and ``Alternative`` spell
out the names ``theory.selection`` and ``theory.stats`` accept (a test keeps them equal)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from theory.configs import check_choice
from theory.errors import InputError

Criterion = Literal["mean_diff", "welch_t", "freq_diff", "correlation"]
Alternative = Literal["greater", "less", "two-sided"]
Proximity = Literal["max_cosine", "mean_top_k"]
Representation = Literal["residual", "features"]
Reduce = Literal["max", "mean"]
Weighting = Literal["mean_diff", "uniform"]
POOLED = "all"  # the domain name of the all-domains row


@dataclass(frozen=True)
class SelectionConfig:
    """How features are tied to a dataset."""

    k: int = 50
    """features kept per dataset (top-k by the criterion; fewer when fewer have a positive contrast)"""
    harmful_k: int = 50
    """harmful-behaviour features kept (harmful vs harmless responses)"""
    criterion: Criterion = "mean_diff"
    """mean_diff (mean activation difference), welch_t (Welch's t), freq_diff (firing-rate difference) or
    correlation (point-biserial correlation with the dataset label, the paper's)"""
    selection_fraction: float | None = None
    """fraction of each dataset's samples used to select features; the rest evaluate the selection
    (held-out replication). None: select on all samples, no held-out check"""
    seed: int = 0
    """seed of the selection / evaluation split"""

    def __post_init__(self):
        if self.k < 1 or self.harmful_k < 1:
            raise InputError(f"feature-set sizes must be at least 1, got k={self.k}, harmful_k={self.harmful_k}")
        check_choice(self.criterion, Criterion, "criterion")
        f = self.selection_fraction
        if f is not None and not 0.0 < f < 1.0:
            raise InputError(f"selection fraction must be in (0, 1), got {f}")


@dataclass(frozen=True)
class StudyConfig:
    """How proximity is measured and tested."""

    proximity: Proximity = "max_cosine"
    """per-feature proximity to the harmful set: max_cosine, or mean_top_k (mean of the proximity_k largest)"""
    proximity_k: int = 5
    """neighbours averaged by mean_top_k"""
    alternative: Alternative = "greater"
    """test direction for inducing vs control: greater (inducing closer), less or two-sided"""
    n_permutations: int = 5000
    """permutations for the difference-of-means test"""
    n_bootstrap: int = 2000
    """bootstrap resamples for confidence intervals"""
    n_null: int = 1000
    """random feature sets drawn for the random-feature null"""
    level: float = 0.95
    """confidence level of the intervals"""
    seed: int = 0
    """seed of the permutations, bootstrap and null draws"""
    chunk_size: int = 1024
    """decoder rows per chunk when computing proximities (memory ~ chunk_size x |harmful set|)"""

    def __post_init__(self):
        check_choice(self.proximity, Proximity, "proximity")
        check_choice(self.alternative, Alternative, "alternative")
        for name in ("proximity_k", "n_permutations", "n_bootstrap", "n_null", "chunk_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 < self.level < 1.0:
            raise InputError(f"confidence level must be in (0, 1), got {self.level}")


@dataclass(frozen=True)
class FilterConfig:
    """How samples are scored and removed."""

    fraction: float = 0.1
    """fraction of training samples to remove, in [0, 1)"""
    reduce: Reduce = "max"
    """score = max (or mean) cosine to the toxic directions"""
    representation: Representation = "residual"
    """residual (mean residual vs decoder rows) or features (SAE activations vs one-hot feature axes)"""
    random: bool = False
    """remove a random fraction of the same size instead (the baseline); scores are still written"""
    seed: int = 0
    """seed of the random removal"""

    def __post_init__(self):
        if not (0.0 <= self.fraction < 1.0) or not math.isfinite(self.fraction):  # as theory.filtering.n_to_remove
            raise InputError(f"removal fraction must be in [0, 1), got {self.fraction}")
        check_choice(self.reduce, Reduce, "score reduction")
        check_choice(self.representation, Representation, "representation")


@dataclass(frozen=True)
class AuditConfig:
    """How the audit predicts and scores."""

    weighting: Weighting = "mean_diff"
    """push strength g_t of each dataset feature: its mean activation excess over the control, or 1"""
    normalize: bool = True
    """use unit-norm decoder rows (cosines) rather than raw decoder rows"""
    n_null: int = 1000
    """random feature sets drawn for the safety score"""
    level: float = 0.95
    """central interval of the null reported"""
    seed: int = 0
    """seed of the null draws"""
    high_risk: float = 0.05
    """safety score at or below which the risk level is 'high'"""
    elevated_risk: float = 0.25
    """safety score at or below which the risk level is 'elevated' (else 'typical')"""

    def __post_init__(self):
        check_choice(self.weighting, Weighting, "weighting")
        if self.n_null < 1:
            raise InputError(f"n_null must be at least 1, got {self.n_null}")
        if not 0.0 < self.high_risk <= self.elevated_risk < 1.0:
            raise InputError("risk thresholds must satisfy 0 < high_risk <= elevated_risk < 1")
