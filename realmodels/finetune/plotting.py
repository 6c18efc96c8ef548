"""Figures of a fine-tuning run: the training loss (``train_log.csv``) and the monitor's drift
(``monitor.csv``, ``monitor_features.csv``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from realmodels.finetune.monitor import MONITOR_FEATURES  # noqa: E402


def loss_figure(train_log: Path):
    """Task loss (and the guard's penalty, when there is one; learning rate on the right axis) against the step."""
    frame = pd.read_csv(train_log) if Path(train_log).is_file() else pd.DataFrame(
        columns=["step", "task_loss", "guard_penalty", "lr"])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(frame["step"], frame["task_loss"], color="C0", marker="." if len(frame) < 50 else None, label="task loss")
    if frame["guard_penalty"].notna().any():
        ax.plot(frame["step"], frame["guard_penalty"], color="C3", linestyle=":", label="guard penalty")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (assistant tokens)")
    lr_ax = ax.twinx()
    lr_ax.plot(frame["step"], frame["lr"], color="0.6", linestyle="--", label="learning rate")
    lr_ax.set_ylabel("learning rate", color="0.4")
    ax.set_title("fine-tuning loss")
    fig.tight_layout()
    return fig


def monitor_figure(monitor_csv: Path, *, alarm: float | None = None):
    """Left: each monitored feature's rise μ_j(s) − μ_j(0) against the step (thin: harmful red, targets blue;
    thick: the set means). Right: the alarm ratio ρ_H/ρ_T with the threshold; rank-1 runs add cos(B, B_prev)."""
    rows = pd.read_csv(monitor_csv)
    features_path = Path(monitor_csv).with_name(MONITOR_FEATURES)
    per_feature = pd.read_csv(features_path) if features_path.is_file() else pd.DataFrame()
    rank1 = rows["b_cos_prev"].notna().any()
    fig, axes = plt.subplots(1, 3 if rank1 else 2, figsize=(13 if rank1 else 9, 3.5))
    ax = axes[0]
    for group, color in (("harmful", "C3"), ("target", "C0")):
        part = per_feature[per_feature["group"] == group] if len(per_feature) else per_feature
        for _, feature in part.groupby("feature") if len(part) else []:
            ax.plot(feature["step"], feature["rise"], color=color, alpha=0.2, linewidth=0.8)
    ax.plot(rows["step"], rows["harmful_rise"], color="C3", linewidth=2.5, label="harmful features (mean)")
    ax.plot(rows["step"], rows["targets_rise"], color="C0", linewidth=2.5, label="training-data features (mean)")
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("rise of mean activation on the probes")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(rows["step"], rows["ratio"], color="C2", marker=".")
    if alarm is not None:
        ax.axhline(alarm, color="C3", linestyle="--", label=f"alarm {alarm:g}")
        ax.legend(fontsize=8)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("harmful rise / targets' rise")
    if rank1:
        ax = axes[2]
        ax.plot(rows["step"], rows["b_cos_prev"], color="C4", marker=".")
        ax.set_ylim(-1.05, 1.05)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("cos(B, B at previous row)")
        ax.set_title("rank-1 adapter direction")
    fig.suptitle("training-time SAE monitor")
    fig.tight_layout()
    return fig
