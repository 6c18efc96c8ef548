"""Measured vs predicted amplification of every feature after narrow fine-tuning.

Measured: Δz_j = mean_{x'∈probe} [z_j^after(x') - z_j^before(x')] (pre-activation) and the same for the
outputs x̂_j = ReLU(z_j). Predicted (theory.tied_model, from the *initial* W only): the first-order change
under the total update K·ΔW₁, where ΔW₁ is the closed-form first step (SGD: -η∇L; Adam: -η∇/(|∇|+ε),
repeated K times — first order, valid while each gradient component changes by a small fraction). Similarity: cos(d_j, d_t) and the
raw dot product <d_j, d_t> (the isotropic term is ∝ the dot product)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from theory import tied_model
from theory.agreement import Agreement, agreement
from theory.geometry import cosine_similarity
from toysuper.config import FinetuneConfig
from toysuper.finetune import OPTIMIZERS
from toysuper.model import ToyModel


def predicted_update(model: ToyModel, task_x: Tensor, config: FinetuneConfig) -> tied_model.Update:
    """K · ΔW₁: the closed-form first step of the configured optimiser, repeated ``config.steps`` times."""
    grad = tied_model.narrow_gradient(model.W, model.b, task_x, config.target, g=config.strength,
                                      objective=config.objective)
    return OPTIMIZERS[config.optimizer].first_update(grad, config.lr) * float(config.steps)


@dataclass(frozen=True)
class Amplification:
    """Per-instance, per-feature results, each (n_instances, n_features)."""

    cosine: Tensor
    dot: Tensor
    predicted: Tensor
    measured: Tensor
    predicted_output: Tensor
    measured_output: Tensor
    target: int

    def table(self) -> pd.DataFrame:
        """One row per (instance, non-target feature): the amplification.csv table."""
        n_inst, n_feat = self.cosine.shape
        rows = {
            "instance": torch.arange(n_inst).repeat_interleave(n_feat),
            "feature": torch.arange(n_feat).repeat(n_inst),
            "similarity": self.cosine.reshape(-1), "dot": self.dot.reshape(-1),
            "predicted": self.predicted.reshape(-1), "measured": self.measured.reshape(-1),
            "predicted_output": self.predicted_output.reshape(-1), "measured_output": self.measured_output.reshape(-1),
        }
        frame = pd.DataFrame({k: v.numpy() for k, v in rows.items()})
        frame["error"] = frame["measured"] - frame["predicted"]
        return frame[frame["feature"] != self.target].reset_index(drop=True)

    def agreement(self, output: bool = False) -> Agreement:
        """Agreement of the predicted with the measured change over the non-target features: of the pre-activations, or
        with ``output`` of the ReLU outputs."""
        frame = self.table()
        return agreement(frame["predicted_output" if output else "predicted"],
                         frame["measured_output" if output else "measured"])


def measure_amplification(before: ToyModel, after: ToyModel, task_x: Tensor, probe_x: Tensor,
                          config: FinetuneConfig) -> Amplification:
    """Compare the fine-tuned model with the first-order prediction on probe_x (n_inst, P, n)."""
    t = config.target
    z0, z1 = before.preactivation(probe_x), after.preactivation(probe_x)
    update = predicted_update(before, task_x, config)
    dz_pred = tied_model.preactivation_change(before.W, update, probe_x, order="first")
    cos = torch.stack([cosine_similarity(W, W[t : t + 1])[:, 0] for W in before.W])
    return Amplification(
        cosine=cos,
        dot=(before.W @ before.W[:, t, :, None])[..., 0],
        predicted=dz_pred.mean(dim=1),
        measured=(z1 - z0).mean(dim=1),
        predicted_output=(torch.relu(z0 + dz_pred) - torch.relu(z0)).mean(dim=1),
        measured_output=(torch.relu(z1) - torch.relu(z0)).mean(dim=1),
        target=t,
    )
