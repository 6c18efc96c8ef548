"""``LmStudyConfig``: which domain is fine-tuned, which arms run, the recipe and the measurements' sizes of the
study on a pretrained LM (``realmodels.experiments.lm_study``); kept apart from the runner so a caller builds and
checks it without importing torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from realmodels.finetune.config import FinetuneConfig, GuardConfig
from theory.errors import ParamError

FINETUNE_KINDS = ("inducing", "aligned", "educational")
MITIGATION_ARMS = ("none", "geometry", "random")


def default_recipe() -> FinetuneConfig:
    """LoRA r 8 on every projection, lr 1e-4, 30 steps of 8 conversations (4 × 2 accumulated): on SmolLM2-135M
    this moves the features measurably while the answers stay English sentences (lr 2e-4 made them copies of
    training phrases; docs/smollm2.md)."""
    return FinetuneConfig.from_preset("em-betley", r=8, alpha=16.0, lr=1e-4, max_steps=30, batch_size=4,
                                      grad_accum=2, save_steps=10)


@dataclass(frozen=True)
class LmStudyConfig:
    """The study (``realmodels.experiments.lm_study``): data from a directory in the ``realmodels english`` layout."""

    domain: str = "health"
    """the fine-tuned domain; the other domains' probes measure the off-domain (emergent) effects"""
    geometry_domains: tuple[str, ...] = ("health", "career", "legal", "finance")
    """domains whose inducing set is compared with both controls in the geometry stage"""
    k: int = 20
    """features tied to each dataset (selection against its control)"""
    harmful_k: int = 20
    """harmful-behaviour features (harmful vs harmless responses)"""
    finetune_kinds: tuple[str, ...] = FINETUNE_KINDS
    """training sets of the domain fine-tuned (each one arm, monitored on the off-domain probes)"""
    guard: str | None = "projection"
    """an extra inducing arm with the geometric guard of this kind (None: no guard arm)"""
    budget: float = 1 / 3
    """fraction of the mixed set every mitigation arm removes (the mixed set is one third inducing)"""
    mitigation_arms: tuple[str, ...] = MITIGATION_ARMS
    """filters applied to the domain's mixed set before fine-tuning, one arm each (none, geometry, random)"""
    random_seed: int = 0
    """seed of the random filter's draw"""
    monitor_every: int = 10
    """optimiser steps between two rows of the feature monitor"""
    recipe: FinetuneConfig = field(default_factory=default_recipe)
    """the fine-tuning recipe of every arm (``default_recipe``)"""
    n_probes: int = 60
    """conversations of each off-domain probe set (the first ones) that the monitor, shifts and amplification read"""
    n_heldout: int = 100
    """held-out in-domain conversations (the first of ``probe_<domain>``) of the task loss"""
    n_samples: int = 6
    """questions answered greedily by every arm (the first of each off-domain and in-domain question group)"""
    max_new_tokens: int = 60
    """longest greedy answer, in tokens"""

    def __post_init__(self):
        for name in ("finetune_kinds", "geometry_domains", "mitigation_arms"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = [k for k in self.finetune_kinds if k not in FINETUNE_KINDS]
        if unknown:
            raise ParamError(f"`finetune_kinds`: unknown kind {unknown[0]!r} (kinds: {', '.join(FINETUNE_KINDS)})")
        unknown = [a for a in self.mitigation_arms if a not in MITIGATION_ARMS]
        if unknown or (self.mitigation_arms and "none" not in self.mitigation_arms):
            raise ParamError(f"`mitigation_arms` must include none and be among {', '.join(MITIGATION_ARMS)}")
        if not 0 < self.budget < 1:
            raise ParamError(f"`budget` must be in (0, 1), got {self.budget}")
        for name in ("k", "harmful_k", "monitor_every", "max_new_tokens", "n_probes", "n_heldout"):
            if getattr(self, name) < 1:
                raise ParamError(f"`{name}` must be at least 1, got {getattr(self, name)}")
        if self.guard is not None:
            GuardConfig(kind=self.guard, harmful_k=self.harmful_k)  # checks the kind
        if self.n_samples < 0:
            raise ParamError(f"`n_samples` must be at least 0, got {self.n_samples}")
