"""SAE model diffing: how every feature's activation on the same probes changes from one model to another.

For probes s = 1..n and features j, with A (n, n_features) the activations under the base model and B under the
fine-tuned one (the same probes, row by row):

    mean_before_j = (1/n) Σ_s A_sj,   mean_after_j = (1/n) Σ_s B_sj,   diff_j = mean_after_j − mean_before_j
    se_j = sd_s(B_sj − A_sj) / √n      (the paired standard error of diff_j; NaN for n = 1)
    freq_before_j = (1/n) #{s: A_sj > 0}, freq_after_j likewise (the fraction of probes the feature fires on)

Features are ranked by diff_j, largest increase first (ties: lower index first). ``top_overlap`` asks whether a
marked set (the harmful features) is over-represented among the top k movers: the count, its expectation
k·|M|/n_features under a uniformly random ranking, and the hypergeometric tail P(X ≥ count)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from theory.errors import InputError


@dataclass(frozen=True)
class FeatureDiff:
    """Per feature (n_features,) float64: the module docstring's quantities."""

    mean_before: Tensor
    mean_after: Tensor
    diff: Tensor
    se: Tensor
    freq_before: Tensor
    freq_after: Tensor

    def ranking(self) -> Tensor:
        """Feature indices by diff, largest first (a stable sort: ties keep the lower index first)."""
        return torch.sort(-self.diff, stable=True).indices


def feature_diff(before: Tensor, after: Tensor) -> FeatureDiff:
    """The paired change of every feature (module docstring); ``before``, ``after`` (n_probes, n_features) are the
    activations of the same probes under the two models."""
    if before.shape != after.shape or before.ndim != 2:
        raise InputError(f"activations before {tuple(before.shape)} and after {tuple(after.shape)} must be the same "
                         "(n_probes, n_features) matrix shape")
    if before.shape[0] == 0:
        raise InputError("no probes: nothing to diff")
    a, b = before.double(), after.double()
    paired = b - a
    n = a.shape[0]
    se = paired.std(0, correction=1) / n ** 0.5 if n > 1 else torch.full((a.shape[1],), float("nan"),
                                                                          dtype=torch.float64)
    return FeatureDiff(mean_before=a.mean(0), mean_after=b.mean(0), diff=paired.mean(0), se=se,
                       freq_before=(a > 0).double().mean(0), freq_after=(b > 0).double().mean(0))


@dataclass(frozen=True)
class TopOverlap:
    """``count`` marked features among the top ``k``; ``expected`` = k·|M|/n under a random ranking; ``p_value`` =
    P(X ≥ count) for X hypergeometric (n features, |M| marked, k drawn)."""

    k: int
    count: int
    expected: float
    p_value: float


def top_overlap(ranking: Tensor, marked: list[int], k: int) -> TopOverlap:
    """How many ``marked`` feature indices are among the first ``k`` of ``ranking`` (module docstring)."""
    from scipy.stats import hypergeom

    n = int(ranking.numel())
    if not 0 < k <= n:
        raise InputError(f"k must be in 1..{n}, got {k}")
    marked_set = set(marked)
    count = sum(int(i) in marked_set for i in ranking[:k].tolist())
    return TopOverlap(k=k, count=count, expected=k * len(marked_set) / n,
                      p_value=float(hypergeom.sf(count - 1, n, len(marked_set), k)))
