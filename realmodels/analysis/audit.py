"""Pre-fine-tuning audit: which harmful-behaviour features would fine-tuning on a dataset amplify, and by how
much, predicted from the SAE dictionary's geometry alone.

Prediction (``theory.amplification.isotropic_set_prediction``): fine-tuning on the dataset pushes its own
features t up with strengths g_t (its mean activation excess over the control, or uniform); to first order
and under the isotropic-kernel approximation (tangent kernel Θ(x', x) ∝ I, exact only for a linear layer; a
transformer's kernel is not isotropic) every feature j changes by Δa_j ∝ Σ_t g_t <d_j, d_t>, d = SAE decoder
rows (unit-normalised by default), the dictionary held frozen. Reported per harmful feature h: Δa_h and the
relative amplification r_h = Δa_h / mean_t Δa_t (a multiple of the change the data's own features get).

Risk R = mean_h max(r_h, 0) (``theory.amplification.amplification_risk``). Geometric safety score = the
random-feature null's p-value (``theory.stats.random_set_null``): the share of random feature sets of the
same size and push strengths, drawn from the features active in the data, whose R is at least this
dataset's. Near 0: the dataset's features sit unusually close to the harmful ones; ~0.5: typical; 1: far.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from theory.amplification import (amplification_risk, isotropic_set_contributions, isotropic_set_prediction,
                                  relative_amplification)
from realmodels.analysis.configs import AuditConfig
from theory.errors import InputError
from theory.geometry import cosine_similarity, unit_rows
from theory.stats import random_set_null

ASSUMPTION = ("first-order prediction under the isotropic-kernel approximation (Θ(x', x) ∝ I, exact only for "
              "a linear layer; a transformer's tangent kernel is not isotropic), frozen SAE dictionary: "
              "Δa_j ∝ Σ_t g_t <d_j, d_t> over the dataset's features t with push strengths g_t")


@dataclass(frozen=True)
class AuditReport:
    """The risk report. ``features``: one row per harmful feature, most amplified first."""

    n_dataset_features: int
    n_harmful_features: int
    risk: float
    safety_score: float
    risk_level: str
    null: dict
    target_mean_change: float
    features: list[dict] = field(repr=False)
    assumption: str = ASSUMPTION

    def to_dict(self) -> dict:
        """The report as a JSON-ready dict."""
        return asdict(self)

    def table(self) -> pd.DataFrame:
        """The per-feature rows (``features``) as a DataFrame."""
        return pd.DataFrame(self.features)


def push_strengths(mean_diff: list[float], weighting: str) -> Tensor:
    """g_t: the dataset features' mean activation excess (clamped at a tiny positive floor) or all ones."""
    g = torch.as_tensor(mean_diff, dtype=torch.float64)
    return torch.ones_like(g) if weighting == "uniform" else g.clamp_min(1e-12)


def audit(decoder: Tensor, dataset_ids: list[int], dataset_mean_diff: list[float], harmful_ids: list[int],
          pool: np.ndarray, config: AuditConfig) -> AuditReport:
    """Predict the harmful features' amplification from the dataset features and score it against random sets.

    decoder (d_sae, d_in); dataset_ids with their mean activation differences (selection order); harmful_ids;
    pool: feature indices eligible for random sets (active, not harmful)."""
    if len(dataset_ids) == 0 or len(harmful_ids) == 0:
        raise InputError("the audit needs a non-empty dataset feature set and a non-empty harmful feature set")
    rows = unit_rows if config.normalize else (lambda x: x.double())

    def directions(ids) -> Tensor:
        return rows(decoder[torch.as_tensor(np.asarray(ids, dtype=np.int64))].double())

    g = push_strengths(dataset_mean_diff, config.weighting)
    harm, targets = directions(harmful_ids), directions(dataset_ids)

    def relative(target_dirs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(Δa of the harmful features, Δa of the targets, harmful relative amplification)."""
        pred_t = isotropic_set_prediction(target_dirs, target_dirs, g)
        pred_h = isotropic_set_prediction(harm, target_dirs, g)
        return pred_h, pred_t, relative_amplification(pred_h, pred_t)

    predicted, target_predicted, rel = relative(targets)
    risk = amplification_risk(rel)
    pool = np.asarray(pool, dtype=np.int64)
    if pool.size < len(dataset_ids):
        raise InputError(f"the random-feature pool has {pool.size} features, fewer than the {len(dataset_ids)} "
                         "dataset features")
    null = random_set_null(lambda idx: amplification_risk(relative(directions(idx))[2]), risk, pool=pool,
                           set_size=len(dataset_ids), n_draws=config.n_null, seed=config.seed, level=config.level)
    contributions = isotropic_set_contributions(harm, targets, g)  # (n_harmful, n_dataset)
    top = contributions.argmax(dim=1)
    cosines = cosine_similarity(harm, targets)
    dataset_set = set(int(i) for i in dataset_ids)
    features = []
    for h, hid in enumerate(harmful_ids):
        t = int(top[h])
        features.append({
            "harmful_feature": int(hid), "predicted_change": float(predicted[h]), "relative_amplification": float(rel[h]),
            "top_dataset_feature": int(dataset_ids[t]), "top_contribution": float(contributions[h, t]),
            "cosine_to_top": float(cosines[h, t]), "max_cosine_to_dataset": float(cosines[h].max()),
            "direct": int(hid) in dataset_set,
        })
    features.sort(key=lambda row: (-row["relative_amplification"], row["harmful_feature"]))
    safety = null.p_value
    level = "high" if safety <= config.high_risk else "elevated" if safety <= config.elevated_risk else "typical"
    return AuditReport(n_dataset_features=len(dataset_ids), n_harmful_features=len(harmful_ids), risk=risk,
                       safety_score=safety, risk_level=level, null=null.to_dict(),
                       target_mean_change=float(target_predicted.mean()), features=features)
