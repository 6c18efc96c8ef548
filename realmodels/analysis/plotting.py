"""Figures for the real-checkpoint commands (seaborn). Each function returns a matplotlib Figure; the CLI
saves it as PNG and SVG (``runio.atomic.save_figure``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from realmodels.analysis.audit import AuditReport
    from realmodels.analysis.geometry import DomainGeometry

PALETTE = {"inducing": "#c0392b", "control": "#2e86c1"}


def proximity_distributions(results: list[DomainGeometry], proximity_label: str) -> Figure:
    """Per domain: the proximity of inducing vs control features to the harmful set (box + points), with the
    random-feature null's central interval shaded."""
    rows = [{"domain": r.domain, "set": s, "proximity": v}
            for r in results for s, vals in (("inducing", r.inducing_values), ("control", r.control_values)) for v in vals]
    frame = pd.DataFrame(rows)
    order = [r.domain for r in results]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.8 * len(order) + 1.5), 4.0))
    for i, r in enumerate(results):
        low, high = r.null_inducing["null_quantiles"]
        ax.add_patch(plt.Rectangle((i - 0.45, low), 0.9, high - low, color="0.85", zorder=0, lw=0))
        ax.hlines(r.null_inducing["null_mean"], i - 0.45, i + 0.45, colors="0.5", linestyles="--", zorder=1)
    sns.boxplot(data=frame, x="domain", y="proximity", hue="set", order=order, hue_order=list(PALETTE),
                palette=PALETTE, showfliers=False, ax=ax, boxprops={"alpha": 0.5})
    rng_state = np.random.get_state()  # seaborn jitters with numpy's global state: fix it, then restore
    np.random.seed(0)
    sns.stripplot(data=frame, x="domain", y="proximity", hue="set", order=order, hue_order=list(PALETTE),
                  palette=PALETTE, dodge=True, size=3, alpha=0.8, ax=ax, legend=False)
    np.random.set_state(rng_state)
    ax.set_ylabel(f"proximity to harmful features ({proximity_label})")
    ax.set_xlabel("")
    ax.set_title("Inducing vs control features (grey: random-feature null, central interval)")
    sns.despine(fig)
    return fig


def difference_forest(results: list[DomainGeometry]) -> Figure:
    """Per domain: mean proximity difference (inducing − control) with its bootstrap CI and the test p-values."""
    fig, ax = plt.subplots(figsize=(6.0, 0.6 * len(results) + 1.5))
    ys = np.arange(len(results))[::-1]
    for y, r in zip(ys, results):
        d = r.comparison["difference"]
        ax.errorbar(d["estimate"], y, xerr=[[d["estimate"] - d["low"]], [d["high"] - d["estimate"]]], fmt="o",
                    color=PALETTE["inducing"], capsize=3)
        ax.annotate(f"MW p={r.comparison['mannwhitney_p']:.2g}  perm p={r.comparison['permutation_p']:.2g}",
                    (d["high"], y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    ax.axvline(0.0, color="0.4", lw=1, ls="--")
    ax.set_yticks(ys, [r.domain for r in results])
    ax.set_xlabel("mean proximity difference, inducing − control (bootstrap CI)")
    sns.despine(fig)
    return fig


def score_histogram(scores: pd.DataFrame, method: str) -> Figure:
    """Filter scores: kept vs removed samples."""
    frame = scores.assign(status=np.where(scores["removed"], "removed", "kept"))
    fig, ax = plt.subplots(figsize=(6.0, 3.5))
    sns.histplot(data=frame, x="score", hue="status", hue_order=["kept", "removed"], multiple="stack",
                 palette={"kept": "0.6", "removed": PALETTE["inducing"]}, bins=min(50, max(5, len(frame) // 4)), ax=ax)
    ax.set_xlabel("proximity to toxic features")
    ax.set_title(f"Sample scores ({method} removal)")
    sns.despine(fig)
    return fig


def audit_bars(report: AuditReport, top: int = 20) -> Figure:
    """Predicted relative amplification of the most amplified harmful features."""
    frame = report.table().head(top).copy()
    frame["feature"] = frame["harmful_feature"].astype(str)
    fig, ax = plt.subplots(figsize=(6.0, 0.3 * len(frame) + 1.5))
    sns.barplot(data=frame, y="feature", x="relative_amplification", color=PALETTE["inducing"], ax=ax)
    ax.axvline(0.0, color="0.4", lw=1)
    ax.set_xlabel("predicted amplification relative to the dataset's own features")
    ax.set_ylabel("harmful feature")
    ax.set_title(f"Geometric safety score {report.safety_score:.3f} ({report.risk_level} risk)")
    sns.despine(fig)
    return fig
