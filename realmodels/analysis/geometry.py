"""The geometry study on a real checkpoint: are the SAE features tied to misalignment-inducing data closer to
the harmful-behaviour features than the features tied to non-inducing (control) data? One domain at a time
(health, career, legal, finance, ...), with the same theory/ functions as the toy study.

Per feature j, proximity to the harmful set H (``theory.geometry.set_proximity`` over SAE decoder rows):
max_{h∈H} cos(d_j, d_h) ("max_cosine") or the mean of the k largest ("mean_top_k"). Features in H itself
(proximity 1 by identity) are left out of both sets and counted. Then, per domain
(``theory.stats``): inducing vs control by Mann-Whitney U and a permutation test on the difference of
means, a bootstrap CI of that difference, Cliff's δ, Cohen's d, bootstrap CIs of each set's mean, and a null
from random feature sets of the same size drawn from the features active in the study's datasets.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from realmodels.analysis.configs import POOLED, StudyConfig
from theory.errors import InputError, ParamError
from theory.geometry import set_proximity
from theory.stats import compare_sets

if TYPE_CHECKING:
    from realmodels.analysis.features import FeatureSelection



@dataclass(frozen=True)
class HarmfulProximity:
    """Every feature's proximity to the harmful set: ``values`` (d_sae,) and ``nearest`` (d_sae,) harmful
    feature index (into the decoder), for the harmful feature indices ``harmful``."""

    values: np.ndarray
    nearest: np.ndarray
    harmful: np.ndarray


def harmful_proximity(decoder: Tensor, harmful: list[int], config: StudyConfig) -> HarmfulProximity:
    """``theory.geometry.set_proximity`` of all decoder rows (d_sae, d_in) to the harmful rows, chunked."""
    harmful_idx = np.asarray(harmful, dtype=np.int64)
    if harmful_idx.size == 0:
        raise InputError("the harmful feature set is empty")
    prox = set_proximity(decoder, decoder[torch.as_tensor(harmful_idx)], k=config.proximity_k,
                         chunk_size=config.chunk_size)
    values = prox.max_cosine if config.proximity == "max_cosine" else prox.mean_top_k
    return HarmfulProximity(values=values.double().numpy(), nearest=harmful_idx[prox.nearest.numpy()],
                            harmful=harmful_idx)


def null_pool(active: list[int], harmful: list[int]) -> np.ndarray:
    """Features eligible for random sets: active in some dataset of the study and not harmful."""
    return np.setdiff1d(np.asarray(active, dtype=np.int64), np.asarray(harmful, dtype=np.int64))


@dataclass(frozen=True)
class DomainGeometry:
    """One domain's result; ``*_ids`` / ``*_values`` are the compared features (harmful ones removed)."""

    domain: str
    inducing_ids: list[int]
    control_ids: list[int]
    inducing_values: list[float]
    control_values: list[float]
    inducing_nearest: list[int]
    control_nearest: list[int]
    inducing_in_harmful: int
    control_in_harmful: int
    inducing_mean: dict
    control_mean: dict
    comparison: dict
    null_inducing: dict
    null_control: dict

    def to_dict(self) -> dict:
        """The result as a JSON-ready dict."""
        return asdict(self)

    def table_row(self) -> dict:
        """One flat row of the per-domain table."""
        c, ni, nc = self.comparison, self.null_inducing, self.null_control
        return {
            "domain": self.domain, "n_inducing": len(self.inducing_ids), "n_control": len(self.control_ids),
            "inducing_in_harmful": self.inducing_in_harmful, "control_in_harmful": self.control_in_harmful,
            "mean_inducing": self.inducing_mean["estimate"], "inducing_ci_low": self.inducing_mean["low"],
            "inducing_ci_high": self.inducing_mean["high"], "mean_control": self.control_mean["estimate"],
            "control_ci_low": self.control_mean["low"], "control_ci_high": self.control_mean["high"],
            "difference": c["difference"]["estimate"], "difference_ci_low": c["difference"]["low"],
            "difference_ci_high": c["difference"]["high"], "mannwhitney_p": c["mannwhitney_p"],
            "permutation_p": c["permutation_p"], "cliffs_delta": c["cliffs_delta"], "cohens_d": c["cohens_d"],
            "null_mean": ni["null_mean"], "null_q_low": ni["null_quantiles"][0], "null_q_high": ni["null_quantiles"][1],
            "null_p_inducing": ni["p_value"], "null_z_inducing": ni["z_score"],
            "null_p_control": nc["p_value"], "null_z_control": nc["z_score"],
        }


def _without(ids: list[int], harmful: np.ndarray) -> tuple[np.ndarray, int]:
    ids = np.asarray(ids, dtype=np.int64)
    keep = ~np.isin(ids, harmful)
    return ids[keep], int((~keep).sum())


def domain_geometry(domain: str, proximity: HarmfulProximity, inducing: list[int], control: list[int],
                    pool: np.ndarray, config: StudyConfig) -> DomainGeometry:
    """Inducing vs control features of one domain against the harmful set (see the module docstring)."""
    ind_ids, ind_overlap = _without(inducing, proximity.harmful)
    ctl_ids, ctl_overlap = _without(control, proximity.harmful)
    for label, ids, overlap in (("inducing", ind_ids, ind_overlap), ("control", ctl_ids, ctl_overlap)):
        if ids.size < 2:
            raise ParamError(f"domain {domain}: only {ids.size} {label} feature(s) left after removing {overlap} "
                             "that are themselves harmful features; at least 2 are needed (raise `k`)")
    for ids in (ind_ids, ctl_ids):
        if ids.size > pool.size:
            raise InputError(f"domain {domain}: the random-feature pool has {pool.size} features, fewer than the "
                             f"set size {ids.size}")
    result = compare_sets(proximity.values, ind_ids, ctl_ids, null_pool=pool, alternative=config.alternative,
                          level=config.level, n_permutations=config.n_permutations, n_bootstrap=config.n_bootstrap,
                          n_null=config.n_null, seed=config.seed)
    return DomainGeometry(
        domain=domain, inducing_ids=ind_ids.tolist(), control_ids=ctl_ids.tolist(),
        inducing_values=proximity.values[ind_ids].tolist(), control_values=proximity.values[ctl_ids].tolist(),
        inducing_nearest=proximity.nearest[ind_ids].tolist(), control_nearest=proximity.nearest[ctl_ids].tolist(),
        inducing_in_harmful=ind_overlap, control_in_harmful=ctl_overlap, inducing_mean=result.mean_a.to_dict(),
        control_mean=result.mean_b.to_dict(), comparison=result.comparison.to_dict(),
        null_inducing=result.null_a.to_dict(), null_control=result.null_b.to_dict(),
    )


def pooled_geometry(results: list[DomainGeometry], proximity: HarmfulProximity, pool: np.ndarray,
                    config: StudyConfig) -> DomainGeometry:
    """All domains together ("all"): the union of their inducing sets vs the union of their control sets
    (a feature listed by several domains counts once)."""
    inducing = sorted({i for r in results for i in r.inducing_ids})
    control = sorted({i for r in results for i in r.control_ids})
    return domain_geometry(POOLED, proximity, inducing, control, pool, config)


def domain_table(results: list[DomainGeometry]) -> pd.DataFrame:
    """One row per domain result (``DomainGeometry.table_row``) as a DataFrame."""
    return pd.DataFrame([r.table_row() for r in results])


def feature_table(results: list[DomainGeometry], selections: dict[str, FeatureSelection]) -> pd.DataFrame:
    """One row per (domain, set, feature): proximity, nearest harmful feature and the selection score.

    ``selections`` maps "<domain>/inducing" and "<domain>/control" to their ``FeatureSelection``."""
    rows = []
    for r in results:
        for label in ("inducing", "control"):
            sel = selections.get(f"{r.domain}/{label}")
            score = dict(zip(sel.indices, sel.scores)) if sel else {}
            ids, values, nearest = (getattr(r, f"{label}_{part}") for part in ("ids", "values", "nearest"))
            for j, value, h in zip(ids, values, nearest):
                rows.append({"domain": r.domain, "set": label, "feature": j, "proximity": value,
                             "nearest_harmful": h, "selection_score": score.get(j, np.nan)})
    return pd.DataFrame(rows)
