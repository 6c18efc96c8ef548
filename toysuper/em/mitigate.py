"""Mitigations compared on the same fine-tuning sets and the same removal budget.

For one trained toy world and every benign task (or the first ``max_tasks``), fine-tune once per method
(``toysuper.em.mitigations``: none, geometry, random, judge, regularise) on the *same* samples, and measure the
harmful rise R, the EM rate E (on all probes, and split into probes that contain the target and the rest)
and the held-out task gain G. Per method, against "none" (theory.misalignment):

    reduction % = 100 (1 - Σ_tasks M_mitigated / Σ_tasks M_none),  CI: bootstrap over instances (seeds)
    task retention % = 100 Σ_tasks G_mitigated / Σ_tasks G_none

Context only (not a target): the paper reports -34.5 % misalignment for geometry filtering of real data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from runio.atomic import nan_to_none
from theory.misalignment import reduction_percent, retention_percent, task_gain
from toysuper.em.config import MitigateAnalysis, MitigateConfig
from toysuper.em.harmful import em_rate_where, misalignment
from toysuper.em.measure import Progress
from toysuper.em.mitigations import apply, n_removed, plan, removed_mask
from toysuper.em.tasks import make_task, probe_set
from toysuper.model import ToyModel
from toysuper.train import train

PAPER_GEOMETRY_REDUCTION_PERCENT = 34.5  # Minegishi et al. (ACL 2026): filtering near toxic features, -34.5 %


def measure_mitigations(model: ToyModel, config: MitigateConfig, *, progress: Progress | None = None) -> pd.DataFrame:
    """One row per (instance, task, method)."""
    n_inst, n_features = model.W.shape[:2]
    probe = probe_set(model.probability, n_features, config.task)
    out_before = model.forward(probe)
    methods = ("none",) + tuple(m for m in config.mitigation.methods if m != "none")
    targets = config.targets()
    frames = []
    for k, t in enumerate(targets):
        task = make_task(t, n_inst, n_features, config.harmful.features, config.task)
        ft = config.finetune.for_target(t)
        held_before = model.forward(task.heldout)
        for j, name in enumerate(methods):
            chosen = plan(name, model, task, config.harmful.features, config.mitigation,
                          seed=config.mitigation.seed * 1_000_003 + 101 * t + j)
            after = apply(model, task, chosen, ft)
            out_after = after.forward(probe)
            mis = misalignment(out_before, out_after, config.harmful)
            on_target = probe[..., t] > 0
            dropped = removed_mask(chosen, task.x.shape[1])
            frames.append(pd.DataFrame({
                "instance": np.arange(n_inst), "target": t, "method": name,
                "n_removed": n_removed(config.mitigation, name, task.x.shape[1]),
                "removed_surface": (dropped & task.surface).sum(dim=1).numpy(),
                "n_surface": task.surface.sum(dim=1).numpy(),
                "harmful_rise": mis.harmful_rise.numpy(), "em_rate": mis.em_rate.numpy(),
                "em_rate_target_probes": em_rate_where(out_before, out_after, config.harmful, on_target).numpy(),
                "em_rate_other_probes": em_rate_where(out_before, out_after, config.harmful, ~on_target).numpy(),
                "task_gain": task_gain(held_before, after.forward(task.heldout), t).numpy(),
            }))
        if progress is not None:
            progress(k + 1, len(targets))
    return pd.concat(frames, ignore_index=True)


def summarise(table: pd.DataFrame, analysis: MitigateAnalysis) -> dict:
    """Per method: reduction % of R and E, task retention %, with bootstrap CIs over instances."""
    def matrix(method: str, column: str) -> np.ndarray:  # (n_instances, n_tasks)
        return table[table["method"] == method].pivot(index="instance", columns="target", values=column).to_numpy()

    kw = dict(level=analysis.level, n_bootstrap=analysis.n_bootstrap, seed=analysis.seed)

    def versus_none(fn, method: str, column: str) -> dict:  # null where the baseline sums to 0 (0/0)
        return nan_to_none(fn(matrix("none", column), matrix(method, column), **kw).to_dict())

    out = {}
    for method in [m for m in table["method"].unique() if m != "none"]:
        rows = table[table["method"] == method]
        out[method] = {
            "rise_reduction_percent": versus_none(reduction_percent, method, "harmful_rise"),
            "em_reduction_percent": versus_none(reduction_percent, method, "em_rate"),
            "em_target_probes_reduction_percent": versus_none(reduction_percent, method, "em_rate_target_probes"),
            "em_other_probes_reduction_percent": versus_none(reduction_percent, method, "em_rate_other_probes"),
            "task_retention_percent": versus_none(retention_percent, method, "task_gain"),
            "n_removed_per_task": int(rows["n_removed"].iloc[0]),
            "surface_harmful_removed_percent": float(100 * rows["removed_surface"].sum() / max(1, rows["n_surface"].sum())),
        }
    base = table[table["method"] == "none"]
    summary = {"methods": out, "baseline": {c: float(base[c].mean()) for c in
                                            ("harmful_rise", "em_rate", "em_rate_target_probes",
                                             "em_rate_other_probes", "task_gain")},
               "n_tasks": int(table["target"].nunique()), "n_instances": int(table["instance"].nunique()),
               "paper_geometry_reduction_percent": PAPER_GEOMETRY_REDUCTION_PERCENT}
    if any(interval["estimate"] is None for m in out.values() for interval in m.values() if isinstance(interval, dict)):
        summary["notes"] = ["a reduction or retention percentage is null where the unmitigated baseline sums to 0 "
                            "over the tasks (nothing to reduce or keep, e.g. finetune.steps = 0)"]
    return summary


@dataclass
class MitigateResult:
    """The pre-trained model, one table row per (instance, task, method) and the summary (``summarise``)."""
    model: ToyModel
    table: pd.DataFrame
    summary: dict


def run_mitigations(config: MitigateConfig, *, trained: ToyModel | None = None, on_train_step: Callable | None = None,
                    progress: Progress | None = None) -> MitigateResult:
    """Train (unless ``trained`` is given), run every mitigation on every benign task, measure and summarise."""
    model = trained if trained is not None else train(config.model, config.train, progress=on_train_step).model
    table = measure_mitigations(model, config, progress=progress)
    return MitigateResult(model, table, summarise(table, config.analysis))
