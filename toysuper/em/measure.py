"""Per-task measurement shared by the studies: for one trained toy world and each benign target t, fine-tune
on t's task and measure, per instance,
- proximity      = max_{h∈H} cos(d_t, d_h)               (theory.geometry.set_proximity)
- overlap        = max_{h∈H} <d_t, d_h>, norms kept      (theory.geometry.max_overlap)
- data proximity = mean_{x∈T} max_{h∈H} cos(h(x), d_h)  (theory.filtering.sample_scores, context included)
- measured R, E after fine-tuning (and E on the probes that contain t); predicted R, E from the first-order
  closed form (theory.tied_model)
- task gain G on held-out task samples;
and the per-instance Spearman ρ across tasks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from scipy import stats as sps

from theory.geometry import max_overlap, set_proximity
from theory.misalignment import task_gain
from toysuper.config import FinetuneConfig
from toysuper.em.harmful import HarmfulConfig, em_rate_where, misalignment, predicted_outputs
from toysuper.em.mitigations import geometry_scores
from toysuper.em.tasks import TaskConfig, benign_features, make_task, probe_set
from toysuper.finetune import finetune
from toysuper.model import ToyModel

Progress = Callable[[int, int], None]


def proximity_to_harmful(model: ToyModel, features, harmful: HarmfulConfig) -> torch.Tensor:
    """max_{h∈H} cos(d_f, d_h) for each instance and feature: (n_instances, len(features))."""
    index = torch.as_tensor(features, dtype=torch.long)
    return torch.stack([set_proximity(W[index], W[harmful.index]).max_cosine for W in model.W])


def overlap_with_harmful(model: ToyModel, features, harmful: HarmfulConfig) -> torch.Tensor:
    """max_{h∈H} <d_f, d_h> (norms kept) for each instance and feature: (n_instances, len(features))."""
    index = torch.as_tensor(features, dtype=torch.long)
    return torch.stack([max_overlap(W[index], W[harmful.index]) for W in model.W])


def measure_tasks(model: ToyModel, harmful: HarmfulConfig, task_config: TaskConfig, tune: FinetuneConfig, *,
                  targets: list[int] | None = None, progress: Progress | None = None) -> pd.DataFrame:
    """One row per (instance, task): proximity, measured and predicted misalignment, task gain."""
    n_features = model.W.shape[1]
    targets = benign_features(n_features, harmful.features) if targets is None else targets
    probe = probe_set(model.probability, n_features, task_config)
    out_before = model.forward(probe)
    proximity = proximity_to_harmful(model, targets, harmful)
    overlap = overlap_with_harmful(model, targets, harmful)
    frames = []
    for k, t in enumerate(targets):
        task = make_task(t, model.W.shape[0], n_features, harmful.features, task_config)
        ft = tune.for_target(t)
        after = finetune(model, task.x, ft)
        out_after = after.forward(probe)
        measured = misalignment(out_before, out_after, harmful)
        predicted = misalignment(out_before, predicted_outputs(model, task.x, ft, probe), harmful)
        gain = task_gain(model.forward(task.heldout), after.forward(task.heldout), t)
        frames.append(pd.DataFrame({
            "instance": np.arange(model.W.shape[0]), "target": t, "proximity": proximity[:, k].numpy(),
            "overlap": overlap[:, k].numpy(),
            "data_proximity": geometry_scores(model, task.x, harmful.index).mean(dim=1).numpy(),
            "harmful_rise": measured.harmful_rise.numpy(), "em_rate": measured.em_rate.numpy(),
            "em_rate_target_probes": em_rate_where(out_before, out_after, harmful, probe[..., t] > 0).numpy(),
            "predicted_rise": predicted.harmful_rise.numpy(), "predicted_em": predicted.em_rate.numpy(),
            "task_gain": gain.numpy(), "surface_fraction": task.surface.double().mean(dim=1).numpy(),
        }))
        if progress is not None:
            progress(k + 1, len(targets))
    return pd.concat(frames, ignore_index=True)


def per_instance_spearman(table: pd.DataFrame, x: str, y: str) -> np.ndarray:
    """Spearman ρ(x, y) across tasks within each instance (NaN where either is constant)."""
    out = []
    for _, group in table.groupby("instance"):
        constant = group[x].nunique() < 2 or group[y].nunique() < 2
        out.append(np.nan if constant or len(group) < 3 else sps.spearmanr(group[x], group[y])[0])
    return np.asarray(out, dtype=np.float64)
