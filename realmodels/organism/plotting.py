"""The organism's figures: the study's emergent misalignment per fine-tuning domain and training set, and the causal
tests' EM rate per condition."""

from __future__ import annotations

import pandas as pd

KIND_COLOURS = {"inducing": "#c0392b", "aligned": "#2e86c1", "educational": "#7f8c8d"}


def em_rates_figure(arms: pd.DataFrame, base: dict, ratio: float):
    """Left: the EM rate in the OTHER domains (emergent misalignment), right: in the fine-tuning domain itself;
    one group per fine-tuning domain, one bar per training set (mean over seeds; dots: each seed, whiskers:
    the seeds' Wilson 95% intervals, min low to max high); dashed: the base model."""
    import matplotlib.pyplot as plt
    import numpy as np

    domains = list(dict.fromkeys(arms["domain"]))
    kinds = [k for k in KIND_COLOURS if k in set(arms["kind"])]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    width = 0.8 / max(len(kinds), 1)
    for ax, part, title in ((axes[0], "other", "EM rate in the other domains"),
                            (axes[1], "in", "EM rate in the fine-tuning domain")):
        for j, kind in enumerate(kinds):
            for i, domain in enumerate(domains):
                rows = arms[(arms["domain"] == domain) & (arms["kind"] == kind)]
                if rows.empty:
                    continue
                x = i + (j - (len(kinds) - 1) / 2) * width
                mean = rows[f"{part}_rate"].mean()
                ax.bar(x, mean, width * 0.9, color=KIND_COLOURS[kind], alpha=0.8, label=kind if i == 0 else None)
                ax.errorbar(x, mean, yerr=[[mean - rows[f"{part}_low"].min()], [rows[f"{part}_high"].max() - mean]],
                            color="black", capsize=3, linewidth=1)
                ax.scatter(np.full(len(rows), x), rows[f"{part}_rate"], s=10, color="black", zorder=3)
        for i, domain in enumerate(domains):
            ax.hlines(base[domain][f"{part}_rate"], i - 0.45, i + 0.45, colors="black", linestyles="dashed",
                      label="base model" if i == 0 else None)
        ax.set_xticks(range(len(domains)), domains)
        ax.set_xlabel("fine-tuning domain")
        ax.set_title(title)
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("share of answers misaligned and coherent")
    axes[0].legend(loc="upper right", fontsize=8)
    fig.suptitle(f"model organism: inducing vs control fine-tunes (criterion: inducing >= {ratio:g}x each control, "
                 "intervals apart)", fontsize=10)
    fig.tight_layout()
    return fig


def causal_figure(table: pd.DataFrame, domain: str):
    """The causal tests (``realmodels.organism.causal``): one panel per model (base, inducing fine-tune), one bar
    per condition: the mean EM rate in the domains other than ``domain`` over seeds, whiskers its t 95% interval
    (none with one seed)."""
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        rows = table[table["model"] == model]
        x = np.arange(len(rows))
        colours = ["#7f8c8d" if c == "plain" else "#c0392b" for c in rows["condition"]]
        ax.bar(x, rows["em"], 0.7, color=colours, alpha=0.85)
        low, high = (rows["em"] - rows["em_low"]).to_numpy(), (rows["em_high"] - rows["em"]).to_numpy()
        ok = np.isfinite(low) & np.isfinite(high)
        ax.errorbar(x[ok], rows["em"].to_numpy()[ok], yerr=[low[ok], high[ok]], fmt="none", color="black",
                    capsize=3, linewidth=1)
        ax.set_xticks(x, rows["condition"], rotation=30, ha="right")
        ax.set_title("base model" if model == "base" else f"inducing fine-tune ({domain})")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel(f"EM rate, domains other than {domain}")
    fig.suptitle("causal tests: steering, clamping and ablation while answering (mean over seeds, t 95% CI)",
                 fontsize=10)
    fig.tight_layout()
    return fig
