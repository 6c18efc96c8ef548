"""Figures of the emergent-misalignment toy studies (matplotlib + seaborn; callers save them)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

COLORS = {"inducing": "#c0392b", "non-inducing": "#2c7fb8", "harmful": "#c0392b", "target": "#2c7fb8",
          "context": "#e69f00", "other": "0.55"}
METHOD_LABELS = {"geometry": "geometry\nfilter", "random": "random\nremoval", "judge": "surface\njudge",
                 "regularise": "projection\nregulariser", "penalty": "growth\npenalty"}


def _theme() -> None:
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.9)


def _binned(x: np.ndarray, y: np.ndarray, bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Means of y in quantile bins of x (the trend of a scatter)."""
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
    keep = [k for k in range(len(edges) - 1) if (idx == k).any()]
    return np.array([x[idx == k].mean() for k in keep]), np.array([y[idx == k].mean() for k in keep])


def proximity_figure(table: pd.DataFrame, summary: dict):
    """Left: proximity of the target to H vs measured harmful rise (dots) and the first-order prediction
    (crosses, binned trend line). Right: measured vs predicted with y = x."""
    _theme()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    group = np.where(table["inducing"], "inducing", "non-inducing")
    for name in ("non-inducing", "inducing"):
        rows = table[group == name]
        ax1.scatter(rows["proximity"], rows["harmful_rise"], s=16, color=COLORS[name], alpha=0.75,
                    label=f"{name} (measured)")
    ax1.scatter(table["proximity"], table["predicted_rise"], s=14, marker="x", color="0.3", alpha=0.5,
                label="theory (first order)")
    bx, by = _binned(table["proximity"].to_numpy(), table["predicted_rise"].to_numpy())
    ax1.plot(bx, by, color="0.1", lw=1.5, label="theory, binned mean")
    rho = summary["proximity_vs_rise"]["pooled"]
    if rho is not None:
        s = rho["spearman"]
        ax1.set_title(f"Spearman ρ = {s['estimate']:.2f} [{s['low']:.2f}, {s['high']:.2f}]", fontsize=10)
    ax1.axhline(0, color="0.5", lw=0.8)
    ax1.set(xlabel="proximity of target to harmful set (max cos)", ylabel="harmful rise R (mean Δx̂_h on probe)")
    ax1.legend(fontsize=7, loc="upper left")
    points = ax2.scatter(table["predicted_rise"], table["harmful_rise"], s=16, c=table["proximity"], cmap="viridis")
    fig.colorbar(points, ax=ax2, label="proximity (max cos)", shrink=0.85)
    lo = min(table["predicted_rise"].min(), table["harmful_rise"].min())
    hi = max(table["predicted_rise"].max(), table["harmful_rise"].max())
    ax2.plot([lo, hi], [lo, hi], color="0.3", ls="--", lw=1, label="y = x")
    agree = summary.get("theory_vs_measured_rise")
    if agree:
        ax2.set_title(f"slope {agree['slope']:.2f}, R² {agree['r2']:.3f}", fontsize=10)
    ax2.set(xlabel="predicted R (first order)", ylabel="measured R")
    for ax in (ax1, ax2):
        ax.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    ax2.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    ax2.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def inducing_figure(table: pd.DataFrame, summary: dict):
    """Proximity to H of the targets of inducing vs non-inducing tasks, with the random-feature null."""
    _theme()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    frame = table.assign(group=np.where(table["inducing"], "inducing", "non-inducing"))
    order = ["inducing", "non-inducing"]
    panels = (("proximity", "inducing_vs_non_inducing", "target feature: max cos to harmful set"),
              ("data_proximity", "inducing_vs_non_inducing_data", "task data: mean max cos(h(x), d_h)"))
    for ax, (column, key, label) in zip(axes, panels):
        sns.boxplot(data=frame, x="group", y=column, order=order, ax=ax, width=0.45, fliersize=0,
                    palette=[COLORS[g] for g in order], hue="group", legend=False, boxprops={"alpha": 0.35})
        rng_state = np.random.get_state()  # seaborn jitters with numpy's global state: fix it, then restore
        np.random.seed(0)
        sns.stripplot(data=frame, x="group", y=column, order=order, ax=ax, size=3.5, jitter=0.18,
                      palette=[COLORS[g] for g in order], hue="group", legend=False)
        np.random.set_state(rng_state)
        comp = summary.get(key)
        title = "too few tasks in a group"
        if comp is not None:
            title = (f"Δmean {comp['difference']['estimate']:+.3f} [{comp['difference']['low']:+.3f}, "
                     f"{comp['difference']['high']:+.3f}], MW p={comp['mannwhitney_p']:.1g}, δ={comp['cliffs_delta']:.2f}")
            null = comp.get("random_null")
            if null is not None:
                lo, hi = null["null_quantiles"]
                ax.axhspan(lo, hi, color="0.6", alpha=0.25, label="random-feature null, 95% of means")
                ax.axhline(null["observed"], color=COLORS["inducing"], ls=":", lw=1.2,
                           label=f"inducing mean (null p={null['p_value']:.1g})")
                ax.legend(fontsize=7, loc="lower left")
        ax.set_title(title, fontsize=8.5)
        ax.set(xlabel=f"tasks (EM rate > {summary['inducing_threshold_em']:.2%} vs ≤)", ylabel=label)
    fig.tight_layout()
    return fig


def density_figure(results: pd.DataFrame):
    """Heatmaps over n/m (rows) and feature probability (columns): EM rate (all probes and probes containing
    the target), and Spearman ρ(·, R) for the cosine proximity and for the overlap max_h <d_t, d_h>."""
    _theme()
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    panels = (("em_rate", "EM rate E, all probes (%)", 100.0, ".2f", "rocket_r"),
              ("em_rate_target_probes", "E on probes containing the target (%)", 100.0, ".1f", "rocket_r"),
              ("spearman_pooled", "ρ(max cos to H, R); blank: R flat", 1.0, ".2f", "vlag"),
              ("spearman_overlap", "ρ(max <d_t, d_h>, R): norms kept", 1.0, ".2f", "vlag"))
    for ax, (column, title, scale, fmt, cmap) in zip(axes, panels):
        if column not in results:  # cells computed before the column existed
            results = results.assign(**{column: float("nan")})
        grid = results.pivot(index="ratio", columns="probability", values=column).sort_index(ascending=False) * scale
        grid = grid[sorted(grid.columns, reverse=True)].astype(float)
        kwargs = {"vmin": -1, "vmax": 1, "center": 0} if column.startswith("spearman") else {}
        sns.heatmap(grid, annot=True, fmt=fmt, cmap=cmap, ax=ax, cbar=False, annot_kws={"fontsize": 8}, **kwargs)
        ax.grid(False)
        ax.set_title(title, fontsize=10)
        ax.set(xlabel="feature probability p", ylabel="features per dimension n/m")
        ax.set_xticklabels([f"{p:g}" for p in grid.columns])
    fig.tight_layout()
    return fig


def _intervals(summary: dict, methods: list[str], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, low, high) of every method's interval ``key``, as floats (NaN where the summary has null)."""
    return tuple(np.array([summary["methods"][m][key][part] for m in methods], dtype=float)
                 for part in ("estimate", "low", "high"))


def mitigation_figure(summary: dict):
    """Misalignment reduction (R and E) and task retention per mitigation, with CIs; the paper's figure beside."""
    _theme()
    methods = list(summary["methods"])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(methods))
    bars = (("rise_reduction_percent", "harmful rise R", "#c0392b"), ("em_reduction_percent", "EM rate E", "#e67e22"),
            ("em_target_probes_reduction_percent", "E on probes with the target", "#f5b041"),
            ("em_other_probes_reduction_percent", "E on the other probes", "#7d3c98"))
    width = 0.8 / len(bars)
    for k, (key, label, color) in enumerate(bars):
        est, lo, hi = _intervals(summary, methods, key)
        ax1.bar(x + (k - (len(bars) - 1) / 2) * width, est, width=width, color=color, alpha=0.85, label=label,
                yerr=[np.nan_to_num(est - lo), np.nan_to_num(hi - est)], capsize=2)
    floor = -100.0  # bars below are clipped and labelled with their value
    ax1.set_ylim(floor, 110)
    for patch in list(ax1.patches):
        if patch.get_height() < floor:
            ax1.text(patch.get_x() + patch.get_width() / 2, floor + 3, f"{patch.get_height():.0f}", rotation=90,
                     ha="center", va="bottom", fontsize=7, color="k")
    if "geometry" in methods:
        gx = methods.index("geometry")
        ax1.scatter([gx], [summary["paper_geometry_reduction_percent"]], marker="D", color="k", zorder=5,
                    label=f"paper, real LLM: {summary['paper_geometry_reduction_percent']}% (context only)")
    ax1.axhline(0, color="0.3", lw=0.8)
    ax1.set_xticks(x, [METHOD_LABELS.get(m, m) for m in methods], fontsize=8)
    ax1.set(ylabel="misalignment reduction (%)", title="reduction vs unmitigated fine-tuning (95% CI over seeds)")
    ax1.title.set_fontsize(9.5)
    ax1.legend(fontsize=7.5)
    est, lo, hi = _intervals(summary, methods, "task_retention_percent")
    ax2.bar(x, est, color="#2c7fb8", alpha=0.85, yerr=[est - lo, hi - est], capsize=3)
    ax2.axhline(100, color="0.3", lw=0.8, ls="--")
    ax2.set_xticks(x, [METHOD_LABELS.get(m, m) for m in methods], fontsize=8)
    ax2.set(ylabel="target-task gain kept (%)", title="task retention")
    ax2.title.set_fontsize(9.5)
    fig.tight_layout()
    return fig


def geometry_figure(result: dict):
    """Left: the 2-D feature directions before (faint) and after (solid) fine-tuning. Right: every feature's
    mean output change on the probe against its cosine to the target (measured dots, predicted crosses)."""
    _theme()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.4))
    before, after = np.asarray(result["W_before"]), np.asarray(result["W_after"])
    t, harmful, context = result["target"], set(result["harmful"]), set(result["context"])

    def kind(j: int) -> str:
        return "target" if j == t else "harmful" if j in harmful else "context" if j in context else "other"

    for j in range(before.shape[0]):
        c = COLORS[kind(j)]
        ax1.plot([0, before[j, 0]], [0, before[j, 1]], color=c, alpha=0.35, lw=6, solid_capstyle="round")
        ax1.annotate("", xy=after[j], xytext=(0, 0), arrowprops={"arrowstyle": "->", "color": c, "lw": 1.6})
        ax1.text(*(after[j] * 1.08), str(j), color=c, fontsize=8, ha="center", va="center")
    lim = 1.2 * max(np.abs(before).max(), np.abs(after).max())
    ax1.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal",
            title="feature directions W_j: before (wide, faint), after (arrows)")
    ax1.title.set_fontsize(9.5)
    for name in ("target", "harmful", "context", "other"):
        ax1.plot([], [], color=COLORS[name], label=name)
    ax1.legend(fontsize=7, loc="lower right")
    cos = np.asarray(result["cosine_to_target"])
    measured, predicted = np.asarray(result["measured_change"]), np.asarray(result["predicted_change"])
    others = [j for j in range(cos.size) if j != t]
    for j in others:
        ax2.scatter(cos[j], measured[j], color=COLORS[kind(j)], s=40, zorder=3)
        ax2.scatter(cos[j], predicted[j], color=COLORS[kind(j)], marker="x", s=40, zorder=3)
        ax2.annotate(str(j), (cos[j], measured[j]), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax2.axhline(0, color="0.5", lw=0.8)
    ax2.set(xlabel=f"cos(d_j, d_target={t})", ylabel="mean Δx̂_j on probe (dots measured, × predicted)",
            title=f"harmful rise R = {result['harmful_rise']:.2e}, EM rate = {result['em_rate']:.2%}")
    ax2.title.set_fontsize(9.5)
    fig.tight_layout()
    return fig
