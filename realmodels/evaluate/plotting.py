"""Figures of an evaluation: aligned vs coherent scores with the EM quadrant, EM rate per question with Wilson
intervals, and the mitigation arms' EM rates and reductions against the paper's reference."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from theory.em_rates import EmThresholds  # noqa: E402

PAPER_REDUCTION = 34.5  # % less EM after removing the samples nearest to toxic features (Minegishi et al.)


def score_scatter(table: pd.DataFrame, thresholds: EmThresholds):
    """Each answer at (aligned, coherent); the EM region aligned ≤ α, coherent > κ shaded."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.add_patch(Rectangle((0, thresholds.coherent_min), thresholds.aligned_max, 100 - thresholds.coherent_min,
                           color="C3", alpha=0.12, label="EM: misaligned and coherent"))
    scored = table.dropna(subset=["aligned", "coherent"])
    questions = list(dict.fromkeys(scored["question_id"]))
    for i, question in enumerate(questions):
        part = scored[scored["question_id"] == question]
        ax.scatter(part["aligned"], part["coherent"], s=14, alpha=0.7, color=f"C{i % 10}", label=question)
    ax.axvline(thresholds.aligned_max, color="C3", linestyle="--", linewidth=0.8)
    ax.axhline(thresholds.coherent_min, color="C3", linestyle="--", linewidth=0.8)
    ax.set_xlim(-2, 102)
    ax.set_ylim(-2, 102)
    ax.set_xlabel("aligned (judge, 0-100)")
    ax.set_ylabel("coherent (judge, 0-100)")
    ax.set_title(f"{len(scored)} judged answers ({len(table) - len(scored)} without both scores)")
    ax.legend(fontsize=7, loc="lower right", ncol=1 if len(questions) < 8 else 2)
    fig.tight_layout()
    return fig


def em_per_question(per_question: pd.DataFrame, overall: dict):
    """EM rate per question with Wilson intervals, and the overall rate with its bootstrap interval."""
    fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(per_question) + 2), 3.8))
    x = np.arange(len(per_question))
    rate = per_question["em_rate"].to_numpy(dtype=float)
    low, high = per_question["em_low"].to_numpy(dtype=float), per_question["em_high"].to_numpy(dtype=float)
    ax.bar(x, np.nan_to_num(rate), color="C3", alpha=0.75)
    ax.errorbar(x, rate, yerr=[rate - low, high - rate], fmt="none", ecolor="k", capsize=3, linewidth=1)
    em = overall["em"]
    if em["estimate"] is not None:  # None: no answer had both scores
        ax.axhline(em["estimate"], color="0.3", linestyle="--", linewidth=1,
                   label=f"overall {em['estimate']:.3f} [{em['low']:.3f}, {em['high']:.3f}]")
        ax.legend(fontsize=8)
    ax.set_xticks(x, per_question["question_id"], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("EM rate (Wilson 95%)")
    top = np.nanmax(np.append(high, [em["high"] or 0.0, 0.0]))
    ax.set_ylim(0, max(0.05, float(top)) * 1.15)
    fig.tight_layout()
    return fig


def mitigation_arms(arms: pd.DataFrame):
    """Left: EM rate per arm (bootstrap over questions). Right: reduction vs ``none`` per arm with the paper's
    34.5% for reference. ``arms``: arm, em_rate, em_low, em_high, reduction, reduction_low, reduction_high."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    x = np.arange(len(arms))
    rate = arms["em_rate"].to_numpy(dtype=float)
    left.bar(x, rate, color=[f"C{i}" for i in range(len(arms))], alpha=0.8)
    left.errorbar(x, rate, yerr=[rate - arms["em_low"].to_numpy(dtype=float),
                                 arms["em_high"].to_numpy(dtype=float) - rate], fmt="none", ecolor="k", capsize=3)
    left.set_xticks(x, arms["arm"])
    left.set_ylabel("EM rate (95% CI)")
    others = arms[arms["arm"] != "none"]
    xr = np.arange(len(others))
    red = others["reduction"].to_numpy(dtype=float)
    right.bar(xr, np.nan_to_num(red), color=[f"C{i + 1}" for i in range(len(others))], alpha=0.8)
    right.errorbar(xr, red, yerr=[red - others["reduction_low"].to_numpy(dtype=float),
                                  others["reduction_high"].to_numpy(dtype=float) - red], fmt="none", ecolor="k",
                   capsize=3)
    right.axhline(PAPER_REDUCTION, color="C3", linestyle="--", label=f"paper: geometry filter {PAPER_REDUCTION}%")
    right.axhline(0, color="0.5", linewidth=0.8)
    right.set_xticks(xr, others["arm"])
    right.set_ylabel("EM reduction vs none (%)")
    right.legend(fontsize=8)
    fig.suptitle("mitigation at one removal budget")
    fig.tight_layout()
    return fig
