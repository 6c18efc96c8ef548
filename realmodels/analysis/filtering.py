"""Geometry-aware data filtering on a real checkpoint: score every training sample by its proximity to the
toxic (harmful-behaviour) SAE features with ``theory.filtering.sample_scores`` and remove the top fraction,
or a random fraction of the same size as the baseline.

Representations (n_samples, ·) and toxic directions (n_toxic, ·):
- ``residual``: each sample's mean residual over its assistant tokens r_i (d_model) against the toxic
  features' decoder rows d_t: score_i = max_t cos(r_i, d_t) (or the mean over t);
- ``features``: its SAE feature-activation vector f_i (d_sae) against the one-hot axes e_t
  (``theory.filtering.feature_axis_scores``): the share of the sample's feature activity on toxic feature t.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from realmodels.analysis.configs import FilterConfig
from theory.errors import InputError
from theory.filtering import Removal, choose_removal, feature_axis_scores, sample_scores

if TYPE_CHECKING:
    from realmodels.data.activations import SampleActivations



def score_samples(acts: SampleActivations, decoder: Tensor | None, toxic: list[int], config: FilterConfig) -> Tensor:
    """Proximity of every sample of ``acts`` to the toxic features -> (n_samples,) float:
    ``theory.filtering.sample_scores`` of the mean residuals against the toxic decoder rows (``decoder``
    (d_sae, d_model) is needed for this representation only), or ``feature_axis_scores`` of the SAE
    activations against the toxic features' axes."""
    toxic_idx = torch.as_tensor(list(toxic), dtype=torch.long)
    if toxic_idx.numel() == 0:
        raise InputError("the toxic feature set is empty: give at least one harmful feature")
    if config.representation == "residual":
        return sample_scores(acts.residual_mean.float(), decoder[toxic_idx].float(), reduce=config.reduce)
    return feature_axis_scores(acts.feature_acts, toxic_idx, reduce=config.reduce)


@dataclass(frozen=True)
class FilterResult:
    """``kept_lines`` / ``removed_lines``: the training file's lines (original order); ``scores``: a table
    with one row per sample (line number, score, rank by score, removed)."""

    kept_lines: list[str]
    removed_lines: list[str]
    scores: pd.DataFrame
    removal: Removal


def apply_filter(lines: list[str], scores: Tensor, config: FilterConfig,
                 n_tokens: Tensor | None = None) -> FilterResult:
    """Split the training file's lines by ``choose_removal``; ``lines[i]`` is sample i."""
    scores = scores.detach().double().cpu()
    if len(lines) != scores.numel():
        raise InputError(f"the training file has {len(lines)} samples but {scores.numel()} were scored")
    removal = choose_removal(scores, config.fraction, random=config.random, seed=config.seed)
    removed = np.zeros(len(lines), dtype=bool)
    removed[removal.removed] = True
    s = scores.numpy()
    rank = np.empty(len(lines), dtype=np.int64)
    rank[np.lexsort((np.arange(len(lines)), -s))] = np.arange(1, len(lines) + 1)
    table = pd.DataFrame({"sample": np.arange(len(lines)), "score": s, "rank": rank, "removed": removed})
    if n_tokens is not None:
        table["n_tokens"] = n_tokens.cpu().numpy()
    return FilterResult(kept_lines=[lines[i] for i in removal.keep], removed_lines=[lines[i] for i in removal.removed],
                        scores=table, removal=removal)
