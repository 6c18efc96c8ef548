"""The organism study's figure: emergent misalignment per fine-tuning domain and training set."""

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
