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


def amplification_scatter(table: pd.DataFrame, summary: dict) -> Figure:
    """Measured change of every SAE feature against the first-order (JVP) prediction, against the isotropic
    (similarity-only) prediction, and the activation-level version; harmful features and the training data's
    features highlighted, y = x dashed, R² and Spearman in the titles."""
    panels = (("predicted", "measured", "first_order", "predicted (first order: J(x') ΔW)"),
              ("predicted_isotropic", "measured", "isotropic", "predicted (isotropic: similarity only)"),
              ("predicted_output", "measured_output", "first_order_output", "predicted activation change"))
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 4.4))
    groups = (("other", ~table["harmful"] & ~table["target"], "0.65", 10),
              ("training-data feature", table["target"], PALETTE["control"], 22),
              ("harmful feature", table["harmful"], PALETTE["inducing"], 22))
    for ax, (x, y, key, xlabel) in zip(axes, panels):
        for label, rows, colour, size in groups:
            ax.scatter(table.loc[rows, x], table.loc[rows, y], s=size, color=colour, alpha=0.8, label=label,
                       linewidths=0)
        lo = float(min(table[x].min(), table[y].min()))
        hi = float(max(table[x].max(), table[y].max()))
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--")
        stats = summary["agreement"][key]
        r2, rho = stats["r2"], stats["spearman"]
        ax.set_title(f"R² {'nan' if r2 is None else f'{r2:.3f}'}, Spearman "
                     f"{'nan' if rho is None else f'{rho:.3f}'}", fontsize=10)
        unscaled = key == "isotropic" and summary["isotropic_scale"] is None
        ax.set_xlabel(xlabel + (" (unscaled)" if unscaled else ""))
        ax.set_ylabel("measured activation change" if key.endswith("output") else "measured pre-activation change")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Amplification of every SAE feature after fine-tuning ({summary['n_tokens']} probe tokens)")
    sns.despine(fig)
    fig.tight_layout()
    return fig


def diff_figure(table: pd.DataFrame, summary: dict, top: int = 10) -> Figure:
    """SAE model diffing: every feature's mean activation under the fine-tuned model against the base model (y = x
    dashed), and the ``top`` largest increases and decreases as bars with ±1 paired standard error; harmful features
    (when known) in red."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.0, 4.6))
    harmful = table["harmful"].astype(bool)
    for label, rows, colour, size in (("other", ~harmful, "0.6", 10), ("harmful feature", harmful,
                                                                         PALETTE["inducing"], 24)):
        if rows.any():
            left.scatter(table.loc[rows, "mean_base"], table.loc[rows, "mean_finetuned"], s=size, color=colour,
                         alpha=0.8, linewidths=0, label=label)
    hi = float(max(table["mean_base"].max(), table["mean_finetuned"].max(), 0.0))
    left.plot([0.0, hi], [0.0, hi], color="0.3", lw=1, ls="--")
    left.set_xlabel("mean activation, base model")
    left.set_ylabel("mean activation, fine-tuned model")
    left.legend(fontsize=8, loc="upper left")
    movers = pd.concat([table.head(top), table.tail(top).iloc[::-1]]).drop_duplicates("feature")
    positions = np.arange(len(movers))[::-1]
    colours = [PALETTE["inducing"] if h else PALETTE["control"] for h in movers["harmful"].astype(bool)]
    right.barh(positions, movers["diff"], xerr=movers["se"].fillna(0.0), color=colours, alpha=0.85)
    right.set_yticks(positions, [f"#{f}" for f in movers["feature"]], fontsize=7)
    right.axvline(0.0, color="0.3", lw=1)
    right.set_xlabel("diff (fine-tuned − base), ±1 s.e.")
    right.set_title(f"top {top} increases and decreases", fontsize=10)
    fig.suptitle(f"SAE model diff of {summary['n_features']} features on {summary['n_probes']} probes")
    sns.despine(fig)
    fig.tight_layout()
    return fig
