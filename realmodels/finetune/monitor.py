"""The training-time monitor: every ``every`` optimiser steps, the SAE feature means on a fixed probe set.

At step s, μ_j(s) = the mean activation of SAE feature j over all assistant tokens of the probes (the model as
it is at step s, at the SAE's layer). For a feature set S the rise is ρ_S(s) = mean_{j∈S} [μ_j(s) − μ_j(0)],
μ(0) the base model's (computed before training, so a resumed run has the same baseline). Sets: the harmful
features H (harmful vs harmless responses) and the targets T (the features tied to the training data against
the control data), both chosen on the base model; the top movers are the features with the largest |μ_j(s) −
μ_j(0)| at that step.

Alarm: r(s) = ρ_H(s) / ρ_T(s), the harmful features' rise in units of the targets' rise (undefined while
ρ_T(s) ≤ ``min_target_rise``); ``alarm`` X stops the run (a checkpoint is saved) or warns when r(s) > X. r = 1
means the harmful features rise as much as the features the data is about; the isotropic theory predicts
r ≈ mean cos(d_h, v)/mean cos(d_t, v) for the push direction v.

Rank-1 adapters: each row also holds cos(B(s), B(s_prev)) between the adapter's B vector now and at the
previous row, and ‖B(s)‖ — the turn of the direction Turner et al. describe as the phase transition."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import Tensor
from transformers import TrainerCallback

from realmodels.data.activations import compute_activations
from realmodels.data.chat import TokenizedChat
from realmodels.finetune.config import MonitorConfig
from realmodels.finetune.lora import rank1_direction
from realmodels.loading.bundle import ModelBundle
from runio.atomic import save_torch, write_csv

MONITOR = "monitor.csv"
MONITOR_FEATURES = "monitor_features.csv"
DIRECTIONS = "monitor_directions.pt"
COLUMNS = ("step", "harmful_mean", "harmful_rise", "targets_mean", "targets_rise", "ratio", "alarm", "top_movers",
           "b_cos_prev", "b_norm")
FEATURE_COLUMNS = ("step", "feature", "group", "mean", "rise")


def probe_means(bundle: ModelBundle, probes: list[TokenizedChat], *, batch_size: int) -> Tensor:
    """μ (d_sae,) float32: every SAE feature's mean activation over all assistant tokens of ``probes``."""
    acts = compute_activations(bundle, probes, batch_size=batch_size, progress=False)
    weights = acts.n_tokens.to(torch.float32)
    return (acts.dense_features() * weights[:, None]).sum(0) / weights.sum()


@dataclass(frozen=True)
class MonitorSets:
    """The monitored features: ``harmful`` (H) and ``targets`` (the training data's features, T)."""
    harmful: list[int]
    targets: list[int]


def alarm_ratio(harmful_rise: float, targets_rise: float, min_target_rise: float) -> float:
    """ρ_H / ρ_T, NaN while ρ_T ≤ ``min_target_rise`` (module docstring)."""
    return harmful_rise / targets_rise if targets_rise > min_target_rise else math.nan


class Monitor(TrainerCallback):
    """Writes ``monitor.csv`` (one row per monitored step), ``monitor_features.csv`` (the harmful, target and
    top-mover features' means per step) and, for rank-1 adapters, the B vectors; raises the alarm."""

    def __init__(self, bundle: ModelBundle, probes: list[TokenizedChat], sets: MonitorSets, config: MonitorConfig,
                 out: Path, *, batch_size: int = 8, warn: Callable[[str], None] = print):
        self.bundle, self.probes, self.sets, self.config = bundle, probes, sets, config
        self.out, self.batch_size, self.warn = Path(out), batch_size, warn
        self.baseline = probe_means(bundle, probes, batch_size=batch_size)  # the base model's μ(0)
        self.rows: list[dict] = []
        self.feature_rows: list[dict] = []
        self.directions: dict[int, Tensor] = {}
        self.alarmed_at: int | None = None

    def _truncate(self, step: int) -> None:
        """Keep what was recorded up to ``step`` (a resumed run records the later steps again)."""
        for name, attr in ((MONITOR, "rows"), (MONITOR_FEATURES, "feature_rows")):
            path = self.out / name
            rows = pd.read_csv(path).to_dict("records") if path.is_file() else []
            setattr(self, attr, [row for row in rows if int(row["step"]) <= step])
        path = self.out / DIRECTIONS
        saved = torch.load(path, weights_only=True) if path.is_file() else {}
        self.directions = {int(s): v for s, v in saved.items() if int(s) <= step}

    def record(self, model, step: int) -> dict:
        """Measure at ``step`` and append the rows (files rewritten atomically)."""
        was_training = model.training
        model.eval()
        means = probe_means(self.bundle, self.probes, batch_size=self.batch_size)
        model.train(was_training)
        rise = means - self.baseline
        harmful, targets = self.sets.harmful, self.sets.targets
        h_rise, t_rise = float(rise[harmful].mean()), float(rise[targets].mean())
        ratio = alarm_ratio(h_rise, t_rise, self.config.min_target_rise)
        alarm = self.config.alarm is not None and not math.isnan(ratio) and ratio > self.config.alarm
        movers = torch.argsort(rise.abs(), descending=True)[:self.config.top_movers].tolist()
        direction = rank1_direction(model)
        b_cos = math.nan
        if direction is not None:
            previous = self.directions[max(self.directions)] if self.directions else None
            if previous is not None and previous.norm() > 0 and direction.norm() > 0:
                b_cos = float(torch.nn.functional.cosine_similarity(direction, previous, dim=0))
            self.directions[step] = direction
            save_torch(self.out / DIRECTIONS, {str(s): v for s, v in self.directions.items()})
        row = {"step": step, "harmful_mean": float(means[harmful].mean()), "harmful_rise": h_rise,
               "targets_mean": float(means[targets].mean()), "targets_rise": t_rise, "ratio": ratio, "alarm": alarm,
               "top_movers": " ".join(f"{j}:{float(rise[j]):+.4g}" for j in movers), "b_cos_prev": b_cos,
               "b_norm": math.nan if direction is None else float(direction.norm())}
        self.rows.append(row)
        for group, features in (("harmful", harmful), ("target", targets), ("mover", movers)):
            self.feature_rows.extend({"step": step, "feature": j, "group": group, "mean": float(means[j]),
                                      "rise": float(rise[j])} for j in features)
        write_csv(self.out / MONITOR, pd.DataFrame(self.rows, columns=list(COLUMNS)))
        write_csv(self.out / MONITOR_FEATURES, pd.DataFrame(self.feature_rows, columns=list(FEATURE_COLUMNS)))
        return row

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        """Drop rows after the (resumed) start step and record the starting point when there is none."""
        self._truncate(state.global_step)
        if not self.rows:
            self.record(model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        """Every ``every`` steps: record a row; on an alarm warn, and with ``alarm_action`` "stop" end training after
        saving a checkpoint."""
        if state.global_step % self.config.every:
            return control
        row = self.record(model, state.global_step)
        if row["alarm"]:
            message = (f"alarm at step {state.global_step}: the harmful features rose {row['ratio']:.3g}× as much as "
                       f"the training data's features (threshold {self.config.alarm:g})")
            if self.config.alarm_action == "stop":
                self.alarmed_at = self.alarmed_at if self.alarmed_at is not None else state.global_step
                control.should_training_stop = True
                control.should_save = True
                self.warn(message + ": stopping")
            else:
                self.warn(message)
        return control

    def summary(self) -> dict:
        """The last row's rises and ratio (None when not computed), the first alarm step, and the sizes of the feature
        and probe sets."""
        last = self.rows[-1] if self.rows else {}
        ratio = last.get("ratio")
        return {"rows": len(self.rows), "harmful_rise": last.get("harmful_rise"),
                "targets_rise": last.get("targets_rise"),
                "ratio": None if ratio is None or math.isnan(ratio) else ratio,  # NaN: not computed (JSON null)
                "alarm_step": self.alarmed_at if self.alarmed_at is not None else next(
                    (int(row["step"]) for row in self.rows if bool(row["alarm"])), None),
                "n_harmful": len(self.sets.harmful), "n_targets": len(self.sets.targets), "n_probes": len(self.probes)}
