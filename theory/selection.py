"""Which features does a dataset use? Contrast each feature's activations on a dataset A against a control
dataset B and keep the k features with the largest contrast.

Inputs are per-sample feature activations ``acts`` of shape (n_samples, n_features), dense or sparse COO
(real models: each sample's SAE activations averaged over its assistant tokens). Per feature j, with
means μ, unbiased variances s² and firing rates p = fraction of samples with a_j > 0:

- ``mean_diff``: μ_A,j − μ_B,j                                       (mean activation difference)
- ``welch_t``:   (μ_A,j − μ_B,j) / sqrt(s²_A,j / n_A + s²_B,j / n_B + ε)   (Welch's t statistic)
- ``freq_diff``: p_A,j − p_B,j                                       (firing-rate difference)
- ``correlation``: the point-biserial correlation of a_j with the label y (1 on A, 0 on B) over the pooled
  samples, r_j = (μ_A,j − μ_B,j) √(π_A π_B) / σ_j, π = n/(n_A + n_B), σ_j the pooled population standard
  deviation (Pearson's r of a_j and y; scipy.stats.pointbiserialr). The paper's "correlation with the dataset
  label". A feature constant over both datasets (σ_j = 0, r undefined) scores 0.

Only features with a strictly positive contrast are "tied to A"; ties in the ranking go to the lower index.
A held-out check (``validate_selection``) asks whether the chosen features still have a positive contrast
on samples not used to choose them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

from theory.errors import InputError

Criterion = Literal["mean_diff", "welch_t", "freq_diff", "correlation"]
CRITERIA: tuple[str, ...] = get_args(Criterion)
EPS = 1e-12


@dataclass(frozen=True)
class ColumnMoments:
    """Per-feature sufficient statistics over n samples, each (n_features,) float64."""

    n: int
    mean: Tensor
    mean_sq: Tensor
    frac_active: Tensor

    @property
    def variance(self) -> Tensor:
        """Unbiased variance s² = n/(n-1) (E[a²] − E[a]²), clamped at 0 against rounding."""
        return ((self.mean_sq - self.mean**2) * self.n / max(self.n - 1, 1)).clamp_min(0.0)


def column_moments(acts: Tensor) -> ColumnMoments:
    """Mean, mean square and firing rate of every column of ``acts`` (n_samples, n_features), dense or
    sparse COO; sparse input is never densified (sums run over the stored entries)."""
    if acts.ndim != 2:
        raise InputError(f"activations must be a (n_samples, n_features) matrix, got shape {tuple(acts.shape)}")
    n, n_features = acts.shape
    if n == 0:
        raise InputError("a dataset has no samples: at least one is needed to identify its features")
    if acts.is_sparse:
        acts = acts.coalesce()
        cols, vals = acts.indices()[1], acts.values().to(torch.float64)
        zeros = torch.zeros(n_features, dtype=torch.float64)
        total = zeros.index_add(0, cols, vals)
        total_sq = zeros.index_add(0, cols, vals * vals)
        active = zeros.index_add(0, cols, (vals > 0).to(torch.float64))
    else:
        a = acts.to(torch.float64)
        total, total_sq, active = a.sum(0), (a * a).sum(0), (a > 0).to(torch.float64).sum(0)
    if not (torch.isfinite(total).all() and torch.isfinite(total_sq).all()):
        raise InputError("activations contain NaN or infinite values")
    return ColumnMoments(n=n, mean=total / n, mean_sq=total_sq / n, frac_active=active / n)


def contrast_scores(acts_a: Tensor, acts_b: Tensor, criterion: Criterion = "mean_diff") -> Tensor:
    """Per-feature contrast of dataset A against control B (see the module docstring): (n_features,) float64."""
    if criterion not in CRITERIA:
        raise InputError(f"unknown feature-selection criterion {criterion!r} (choose from {', '.join(CRITERIA)})")
    if acts_a.ndim != 2 or acts_b.ndim != 2 or acts_a.shape[1] != acts_b.shape[1]:
        raise InputError(f"activation matrices disagree on the number of features: {tuple(acts_a.shape)} "
                         f"vs {tuple(acts_b.shape)}")
    a, b = column_moments(acts_a), column_moments(acts_b)
    if criterion == "mean_diff":
        return a.mean - b.mean
    if criterion == "freq_diff":
        return a.frac_active - b.frac_active
    if criterion == "correlation":
        return point_biserial(a, b)
    if a.n < 2 or b.n < 2:
        raise InputError(f"criterion welch_t needs at least 2 samples per dataset, got {a.n} and {b.n}")
    return (a.mean - b.mean) / torch.sqrt(a.variance / a.n + b.variance / b.n + EPS)


def point_biserial(a: ColumnMoments, b: ColumnMoments) -> Tensor:
    """Per-feature point-biserial correlation of the activations with the label 1 on A, 0 on B (module docstring):
    (n_features,) float64; 0 where the pooled variance vanishes (below 1e-12 of the mean square: rounding)."""
    n = a.n + b.n
    pi_a, pi_b = a.n / n, b.n / n
    mean = pi_a * a.mean + pi_b * b.mean
    mean_sq = pi_a * a.mean_sq + pi_b * b.mean_sq
    variance = (mean_sq - mean**2).clamp_min(0.0)
    constant = variance <= 1e-12 * mean_sq
    r = (a.mean - b.mean) * (pi_a * pi_b) ** 0.5 / torch.where(constant, torch.ones_like(variance), variance).sqrt()
    return torch.where(constant, torch.zeros_like(r), r)


def top_k_features(scores: Tensor, k: int, *, what: str = "the dataset", than: str = "the control") -> Tensor:
    """Indices of the (up to) k features with the largest strictly positive score, best first.

    Fewer than k come back when fewer features have a positive contrast; none is an InputError (an empty
    feature set). ``what``/``than`` name the two datasets in that message."""
    if k < 1:
        raise InputError(f"the number of features to select must be at least 1, got {k}")
    scores = torch.as_tensor(scores, dtype=torch.float64)
    positive = int((scores > 0).sum())
    if positive == 0:
        raise InputError(f"no feature is more active in {what} than in {than}: the feature set would be empty "
                         "(are the two datasets the same?)")
    order = torch.argsort(-scores, stable=True)  # descending; equal scores keep ascending index
    return order[: min(k, positive)]


@dataclass(frozen=True)
class SelectionCheck:
    """A selection re-measured on held-out samples: ``replication`` = fraction of the selected features
    whose held-out contrast is still > 0; ``mean_selected`` / ``mean_all``: mean held-out contrast of the
    selected features / of all features (the chance level)."""

    n_selected: int
    replication: float
    mean_selected: float
    mean_all: float

    def to_dict(self) -> dict:
        """The check as a JSON-ready dict."""
        return {"n_selected": self.n_selected, "replication": self.replication,
                "mean_selected": self.mean_selected, "mean_all": self.mean_all}


def validate_selection(heldout_scores: Tensor, selected: Tensor) -> SelectionCheck:
    """Check a selection made on one split with contrast scores (n_features,) computed on a disjoint split."""
    heldout_scores = torch.as_tensor(heldout_scores, dtype=torch.float64)
    chosen = heldout_scores[torch.as_tensor(selected, dtype=torch.long)]
    if chosen.numel() == 0:
        raise InputError("the selected feature set is empty: nothing to validate")
    return SelectionCheck(n_selected=int(chosen.numel()), replication=float((chosen > 0).double().mean()),
                          mean_selected=float(chosen.mean()), mean_all=float(heldout_scores.mean()))
