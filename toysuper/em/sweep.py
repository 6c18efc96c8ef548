"""Superposition-density sweep: misalignment, and how well geometry predicts it, across features per
dimension n/m and feature probability p.

A cell (n = ratio·m, p) trains ``n_instances`` replicas, fine-tunes each on up to ``max_tasks`` benign
tasks (toysuper.em.measure.measure_tasks) and reports the mean harmful rise R and EM rate E, the mean proximity
of targets to H, and the Spearman ρ between proximity and R (pooled over tasks × instances, and the mean
per-instance ρ; null where R is flat, as at n = m). ``run_cell`` is pure and deterministic (its own seeds),
so cells can run in any order, in any process, and be skipped once written. The context pool is clipped
to the benign features available when n is small (recorded in the cell)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats as sps

from runio.atomic import nan_to_none
from theory.stats import bootstrap_mean_ci
from toysuper.config import ModelConfig
from toysuper.em.config import SweepConfig, TaskConfig, benign_features
from toysuper.em.measure import measure_tasks, per_instance_spearman
from toysuper.train import train


@dataclass(frozen=True)
class Cell:
    """One cell of the density sweep: n/m ``ratio`` and feature probability ``probability`` under ``sweep``'s settings.
    """
    sweep: SweepConfig
    ratio: int
    probability: float

    @property
    def n_features(self) -> int:
        """n = ratio·m."""
        return self.ratio * self.sweep.n_hidden

    @property
    def key(self) -> str:
        """The cell's name in the run's files: ``ratio<r>_p<p>``."""
        return f"ratio{self.ratio}_p{self.probability:g}"

    def model_config(self) -> ModelConfig:
        """The cell's toy model: n = ratio·m features, the sweep's m, instances and importance, the cell's probability.
        """
        with warnings.catch_warnings():  # ratio 1 (n = m) is the no-superposition control, on purpose
            warnings.simplefilter("ignore")
            return ModelConfig(n_features=self.n_features, n_hidden=self.sweep.n_hidden,
                               n_instances=self.sweep.n_instances, feature_probability=self.probability,
                               feature_probability_min=None, importance_decay=self.sweep.importance_decay)

    def task_config(self) -> TaskConfig:
        """The sweep's task with the context pool shrunk to fit the cell's benign non-target features."""
        room = self.n_features - len(self.sweep.harmful.features) - 1
        return replace(self.sweep.task, context_size=min(self.sweep.task.context_size, room))


def cells(config: SweepConfig) -> list[Cell]:
    """The grid, densest superposition last."""
    return [Cell(config, r, p) for r in sorted(config.ratios) for p in config.probabilities]


FLAT = 1e-6  # spread of R below this (outputs are O(1), float32) is noise: nothing for geometry to rank


def _spearman(x: pd.Series, y: pd.Series) -> float | None:
    """Spearman ρ, or None (null) when x or y is flat (e.g. n = m: no superposition, no misalignment to rank)."""
    return None if np.ptp(x) < FLAT or np.ptp(y) < FLAT else float(sps.spearmanr(x, y)[0])


def run_cell(cell: Cell) -> dict:
    """Train, fine-tune on the cell's tasks, summarise. Deterministic given the cell."""
    sweep = cell.sweep
    result = train(cell.model_config(), sweep.train)
    task_config = cell.task_config()
    targets = benign_features(cell.n_features, sweep.harmful.features)[: sweep.max_tasks]
    table = measure_tasks(result.model, sweep.harmful, task_config, sweep.finetune, targets=targets)
    rho = per_instance_spearman(table, "proximity", "harmful_rise")
    rho = rho[np.isfinite(rho)] if np.ptp(table["harmful_rise"]) >= FLAT else rho[:0]
    rho_ci = bootstrap_mean_ci(rho, n_resamples=sweep.n_bootstrap, seed=0) if rho.size >= 2 else None
    return {
        "key": cell.key, "ratio": cell.ratio, "n_features": cell.n_features, "n_hidden": sweep.n_hidden,
        "probability": cell.probability, "n_tasks": len(targets), "context_size": task_config.context_size,
        "final_train_loss": float(np.mean(result.loss_history[-1])) if result.loss_history else None,
        "harmful_rise": float(table["harmful_rise"].mean()), "em_rate": float(table["em_rate"].mean()),
        "em_rate_target_probes": float(table["em_rate_target_probes"].mean()),
        "predicted_rise": float(table["predicted_rise"].mean()), "task_gain": float(table["task_gain"].mean()),
        "proximity": float(table["proximity"].mean()), "proximity_max": float(table["proximity"].max()),
        "spearman_pooled": _spearman(table["proximity"], table["harmful_rise"]),
        "spearman_overlap": _spearman(table["overlap"], table["harmful_rise"]),
        "spearman_theory": _spearman(table["predicted_rise"], table["harmful_rise"]),
        "spearman_per_instance": None if rho_ci is None else rho_ci.estimate,
        "spearman_per_instance_low": None if rho_ci is None else rho_ci.low,
        "spearman_per_instance_high": None if rho_ci is None else rho_ci.high,
    }


SPEARMAN_COLUMNS = ("spearman_pooled", "spearman_overlap", "spearman_theory", "spearman_per_instance",
                    "spearman_per_instance_low", "spearman_per_instance_high")
FLAT_NOTE = ("a spearman_* value is null where it is undefined: its variables are flat in the cell (e.g. n/m = 1: "
             "no superposition, no harmful rise to rank), or, per instance, fewer than 2 instances have a defined rho")


def results_table(results: list[dict]) -> pd.DataFrame:
    """One row per cell; the Spearman columns as floats (NaN where a cell has null)."""
    frame = pd.DataFrame(results).sort_values(["ratio", "probability"], ascending=[True, False]).reset_index(drop=True)
    columns = [c for c in SPEARMAN_COLUMNS if c in frame]
    frame[columns] = frame[columns].astype(float)
    return frame


def summary(frame: pd.DataFrame) -> dict:
    """summary.json of the sweep: every cell, NaN as null (and a note saying why, when there is one)."""
    cells = nan_to_none(frame.to_dict("records"))
    flat = any(cell.get(c, 0.0) is None for cell in cells for c in SPEARMAN_COLUMNS)
    return {"cells": cells, "notes": [FLAT_NOTE]} if flat else {"cells": cells}
