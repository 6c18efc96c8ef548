"""Figures for the simulate experiment (seaborn)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def amplification_figure(table: pd.DataFrame, *, target: int, probabilities: list[float] | None = None):
    """Left: measured (dots) and predicted (crosses) amplification against <d_j, d_t> (the isotropic term
    is proportional to this dot product; its slope per instance is 2ηgc·E[x'_t], larger for denser instances).
    Right: measured against predicted with the identity line. Colour: instance."""
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.4))
    frame = table.copy()
    label = "instance" if probabilities is None else "P(active)"
    frame[label] = frame["instance"] if probabilities is None else [f"{probabilities[i]:.3g}" for i in frame["instance"]]
    palette = sns.color_palette("viridis", n_colors=frame[label].nunique())
    sns.scatterplot(data=frame, x="dot", y="measured", hue=label, palette=palette, s=28, ax=ax1, legend=False)
    sns.scatterplot(data=frame, x="dot", y="predicted", hue=label, palette=palette, marker="X", s=30,
                    ax=ax1, legend=False, alpha=0.6)
    ax1.axhline(0, color="0.5", lw=0.8)
    ax1.axvline(0, color="0.5", lw=0.8)
    ax1.set(xlabel=f"similarity to the target: <d_j, d_{target}>", ylabel="Δ pre-activation (mean over probes)",
            title="measured (dots) and predicted (crosses)")
    sns.scatterplot(data=frame, x="predicted", y="measured", hue=label, palette=palette, s=28, ax=ax2)
    lo, hi = min(frame["predicted"].min(), frame["measured"].min()), max(frame["predicted"].max(), frame["measured"].max())
    ax2.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", label="y = x")
    ax2.set(xlabel="predicted (first order, theory)", ylabel="measured (after fine-tuning)",
            title="measured vs predicted")
    ax2.legend(title=label, fontsize=8, title_fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig
