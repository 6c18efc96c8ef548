"""Feature identification on real checkpoints: the SAE features tied to a dataset (top-k by contrast against
a control dataset, criterion from ``theory.selection``) and the harmful-behaviour features (harmful vs
harmless responses), with disjoint selection / evaluation splits.

Activations are ``SampleActivations`` (``realmodels.data.activations``): ``feature_acts`` (n_samples, d_sae),
sparse COO, each sample's SAE activations averaged over its assistant tokens.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from realmodels.analysis.configs import Criterion, SelectionConfig
from theory.errors import InputError
from theory.selection import contrast_scores, top_k_features, validate_selection

if TYPE_CHECKING:
    from realmodels.data.activations import SampleActivations


@dataclass(frozen=True)
class SampleSplit:
    """Disjoint sample indices (sorted): ``select`` chooses features, ``evaluate`` checks them."""

    select: np.ndarray
    evaluate: np.ndarray


def split_samples(n_samples: int, selection_fraction: float, *, seed: int = 0, name: str = "dataset") -> SampleSplit:
    """Random disjoint split: round(fraction * n) samples to select, the rest (at least one each) to evaluate.

    The permutation depends on (seed, name) only, so a dataset (named by its role, e.g. "harmful") is split
    the same way wherever it is used."""
    if not 0.0 < selection_fraction < 1.0:
        raise InputError(f"selection fraction must be in (0, 1), got {selection_fraction}")
    n_select = int(round(selection_fraction * n_samples))
    if n_select < 1 or n_select > n_samples - 1:
        raise InputError(f"{name} has {n_samples} samples: too few to split {selection_fraction:g} / "
                         f"{1 - selection_fraction:g} into two non-empty parts")
    order = np.random.default_rng([seed, zlib.crc32(name.encode())]).permutation(n_samples)
    return SampleSplit(select=np.sort(order[:n_select]), evaluate=np.sort(order[n_select:]))


def take_samples(acts: SampleActivations, indices) -> SampleActivations:
    """The same ``SampleActivations`` restricted to rows ``indices`` (sparse rows stay sparse)."""
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
    return dataclasses.replace(acts, feature_acts=torch.index_select(acts.feature_acts, 0, idx),
                               residual_mean=acts.residual_mean[idx], n_tokens=acts.n_tokens[idx])


def dataset_features(acts_a: SampleActivations, acts_b: SampleActivations, k: int,
                     criterion: Criterion = "mean_diff", *,
                     names: tuple[str, str] = ("the dataset", "the control")) -> Tensor:
    """Indices (best first, long) of the up-to-k SAE features most tied to dataset A against control B."""
    scores = contrast_scores(acts_a.feature_acts, acts_b.feature_acts, criterion)
    return top_k_features(scores, k, what=names[0], than=names[1])


def harmful_features(harmful: SampleActivations, harmless: SampleActivations, k: int,
                     criterion: Criterion = "mean_diff") -> Tensor:
    """The harmful-behaviour features: top-k of harmful responses against harmless ones."""
    return dataset_features(harmful, harmless, k, criterion, names=("harmful", "harmless"))


@dataclass(frozen=True)
class FeatureSelection:
    """Features tied to dataset A against B: ``indices`` best first with their ``scores`` (criterion) and
    ``mean_diff`` (μ_A − μ_B, used as push strengths); ``active``: features with a non-zero activation on
    some sample of A or B (the pool for random-feature nulls); ``heldout``: the held-out check, if a split was used."""

    name: str
    indices: list[int]
    scores: list[float]
    mean_diff: list[float]
    active: list[int]
    criterion: str
    n_select: tuple[int, int]
    heldout: dict | None

    def to_dict(self) -> dict:
        """The selection as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureSelection":
        """The inverse of ``to_dict`` (``n_select`` back to a tuple)."""
        return cls(**{**data, "n_select": tuple(data["n_select"])})


def split_activations(acts: SampleActivations, config: SelectionConfig,
                      name: str) -> tuple[SampleActivations, SampleActivations | None]:
    """(selection part, evaluation part) of a dataset's activations; (all, None) without a split."""
    if config.selection_fraction is None:
        return acts, None
    split = split_samples(int(acts.feature_acts.shape[0]), config.selection_fraction, seed=config.seed, name=name)
    return take_samples(acts, split.select), take_samples(acts, split.evaluate)


def select_features(acts_a: SampleActivations, acts_b: SampleActivations, config: SelectionConfig, *,
                    names: tuple[str, str], k: int | None = None, name: str = "") -> FeatureSelection:
    """Features tied to A (vs B), chosen on the selection split (or all samples) and, with a split, checked
    on the held-out samples. ``names`` are the datasets' roles (e.g. ("harmful", "harmless")): they seed
    each dataset's split (``split_samples``) and name the datasets in messages."""
    k = config.k if k is None else k
    heldout = None
    sel_a, eval_a = split_activations(acts_a, config, names[0])
    sel_b, eval_b = split_activations(acts_b, config, names[1])
    scores = contrast_scores(sel_a.feature_acts, sel_b.feature_acts, config.criterion)
    chosen = top_k_features(scores, k, what=names[0], than=names[1])
    mean_diff = scores if config.criterion == "mean_diff" else contrast_scores(
        sel_a.feature_acts, sel_b.feature_acts, "mean_diff")
    if config.selection_fraction is not None:
        heldout_scores = contrast_scores(eval_a.feature_acts, eval_b.feature_acts, config.criterion)
        heldout = {**validate_selection(heldout_scores, chosen).to_dict(),
                   "scores": heldout_scores[chosen].tolist(),
                   "n_evaluate": [int(eval_a.feature_acts.shape[0]), int(eval_b.feature_acts.shape[0])]}
    return FeatureSelection(
        name=name, indices=chosen.tolist(), scores=scores[chosen].tolist(), mean_diff=mean_diff[chosen].tolist(),
        active=active_features(acts_a, acts_b).tolist(), criterion=config.criterion,
        n_select=(int(sel_a.feature_acts.shape[0]), int(sel_b.feature_acts.shape[0])), heldout=heldout)


def active_features(*datasets: SampleActivations) -> Tensor:
    """Indices of features with a non-zero activation on any sample of any of the datasets (sorted)."""
    active = None
    for acts in datasets:
        x = acts.feature_acts
        if x.is_sparse:
            x = x.coalesce()
            hit = torch.zeros(x.shape[1], dtype=torch.bool)
            hit[x.indices()[1][x.values() != 0]] = True
        else:
            hit = (x != 0).any(dim=0)
        active = hit if active is None else active | hit
    return torch.nonzero(active).flatten()
