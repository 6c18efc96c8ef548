"""Inducing vs non-inducing tasks: does a task's geometric proximity to the harmful set predict the
misalignment that fine-tuning on it causes?

For one trained toy world (n_instances replicas) and every benign target t (one task each; measured by
toysuper.em.measure):
- proximity    = max_{h∈H} cos(d_t, d_h)               (theory.geometry.set_proximity)
- data proximity = mean_{x∈T} max_{h∈H} cos(h(x), d_h)  (theory.filtering.sample_scores, context included)
- measured R, E after fine-tuning (and E on the probes that contain t); predicted R, E from the first-order
  closed form (theory.tied_model)
- task gain G on held-out task samples.
Then: (a) correlation of proximity with R and E (pooled with a paired bootstrap CI, and per instance with
a bootstrap CI over instances), agreement of prediction and measurement; (b) inducing (E above the
threshold, default the median E) vs non-inducing tasks: is the target features' proximity larger
(Mann-Whitney, permutation, bootstrap CI, Cliff's δ), and larger than for random benign features (null)?"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from theory.agreement import agreement
from theory.stats import bootstrap_mean_ci, compare_sets, correlation_with_ci
from toysuper.em.config import AnalysisConfig, InducingConfig
from toysuper.em.measure import Progress, measure_tasks, per_instance_spearman
from toysuper.model import ToyModel
from toysuper.train import train


def correlations(table: pd.DataFrame, x: str, y: str, analysis: AnalysisConfig) -> dict:
    """Pooled correlation (paired bootstrap CI) and the mean per-instance Spearman (bootstrap CI over instances)."""
    out: dict = {"x": x, "y": y}
    if table[x].nunique() < 2 or table[y].nunique() < 2:
        out["pooled"] = None
    else:
        corr = correlation_with_ci(table[x], table[y], level=analysis.level, n_bootstrap=analysis.n_bootstrap,
                                   seed=analysis.seed)
        out["pooled"] = {"spearman": corr.spearman.to_dict(), "pearson": corr.pearson.to_dict(),
                         "spearman_p": corr.spearman_p, "n": corr.n}
    rho = per_instance_spearman(table, x, y)
    rho = rho[np.isfinite(rho)]
    out["per_instance_spearman"] = rho.tolist()
    out["per_instance_mean"] = (bootstrap_mean_ci(rho, level=analysis.level, n_resamples=analysis.n_bootstrap,
                                                  seed=analysis.seed).to_dict() if rho.size >= 2 else None)
    return out


def inducing_split(table: pd.DataFrame, threshold: float | None) -> tuple[np.ndarray, float]:
    """Boolean mask of inducing tasks (EM rate > threshold; default the median EM rate) and the threshold."""
    em = table["em_rate"].to_numpy()
    thr = float(np.median(em)) if threshold is None else float(threshold)
    return em > thr, thr


def compare_inducing(values: np.ndarray, inducing: np.ndarray, analysis: AnalysisConfig, *, null: bool) -> dict | None:
    """Inducing vs non-inducing values (one-sided: inducing larger), and optionally the random-set null
    (random task sets of the same size) — ``theory.stats.compare_sets``."""
    if inducing.sum() < 2 or (~inducing).sum() < 2:
        return None
    result = compare_sets(values, np.flatnonzero(inducing), np.flatnonzero(~inducing),
                          null_pool=np.arange(values.size) if null else None, alternative="greater",
                          level=analysis.level, n_permutations=analysis.n_permutations,
                          n_bootstrap=analysis.n_bootstrap, n_null=analysis.n_null_draws, seed=analysis.seed)
    comp = result.comparison.to_dict()
    if null:
        comp["random_null"] = result.null_a.to_dict()
    return comp


def analyse(table: pd.DataFrame, analysis: AnalysisConfig) -> dict:
    """The inducing study's summary: Spearman correlations (pooled and per seed, with intervals) of proximity, data
    proximity and overlap against harmful rise and EM rate, the theory's agreement with the measured rise, and the
    inducing vs non-inducing comparisons of proximity."""
    inducing, thr = inducing_split(table, analysis.inducing_threshold)
    theory_ok = table["harmful_rise"].nunique() > 2 and table["predicted_rise"].nunique() > 2
    theory = agreement(table["predicted_rise"], table["harmful_rise"]).to_dict() if theory_ok else None
    return {
        "n_tasks": int(table["target"].nunique()), "n_instances": int(table["instance"].nunique()),
        "proximity_vs_rise": correlations(table, "proximity", "harmful_rise", analysis),
        "proximity_vs_em": correlations(table, "proximity", "em_rate", analysis),
        "data_proximity_vs_rise": correlations(table, "data_proximity", "harmful_rise", analysis),
        "overlap_vs_rise": correlations(table, "overlap", "harmful_rise", analysis),
        "theory_vs_measured_rise": theory,
        "theory_vs_measured_em": correlations(table, "predicted_em", "em_rate", analysis),
        "inducing_threshold_em": thr, "n_inducing": int(inducing.sum()), "n_non_inducing": int((~inducing).sum()),
        "inducing_vs_non_inducing": compare_inducing(table["proximity"].to_numpy(), inducing, analysis, null=True),
        "inducing_vs_non_inducing_data": compare_inducing(table["data_proximity"].to_numpy(), inducing, analysis, null=False),
        "means": {c: float(table[c].mean()) for c in ("harmful_rise", "em_rate", "predicted_rise", "task_gain")},
    }


@dataclass
class InducingResult:
    """The pre-trained model, one table row per (instance, task) and the summary (``analyse``)."""
    model: ToyModel
    table: pd.DataFrame
    summary: dict


def run_inducing(config: InducingConfig, *, trained: ToyModel | None = None,
                 on_train_step: Callable | None = None, progress: Progress | None = None) -> InducingResult:
    """Train (unless ``trained`` is given), fine-tune on every benign task, measure, analyse."""
    model = trained if trained is not None else train(config.model, config.train, progress=on_train_step).model
    table = measure_tasks(model, config.harmful, config.task, config.finetune, progress=progress)
    table["inducing"] = inducing_split(table, config.analysis.inducing_threshold)[0]
    return InducingResult(model, table, analyse(table, config.analysis))
