"""``toysuper simulate``: train a toy model, fine-tune it on a narrow task, compare measured with predicted
amplification. The typer function turns flags into overrides and validates the whole config before it
imports the work (``toysuper.runners.run_simulate``, which ``figures`` calls too) and prints its result
(``cli.toysuper_tables``): a bad flag fails in a fraction of a second. Each override's help ends with the config's default."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.configfile import config_option, resolve_config
from cli.errors import user_errors
from cli.threads import DEFAULT_THREADS, Threads, set_threads
from toysuper.config import SimulateConfig


def _option(key: str, help: str):
    return config_option(SimulateConfig, key, help)


@user_errors
def simulate(
    features: Optional[int] = _option("model.n_features", "n: number of sparse features."),
    hidden: Optional[int] = _option("model.n_hidden", "m: hidden dimensions (superposition when m < n)."),
    instances: Optional[int] = _option("model.n_instances", "Independent model instances trained at once."),
    feature_probability: Optional[float] = _option("model.feature_probability",
                                                  "P(feature active) of the densest instance, in (0, 1]."),
    feature_probability_min: Optional[float] = _option("model.feature_probability_min",
                                                      "P(active) of the sparsest instance (geometric schedule)."),
    importance_decay: Optional[float] = _option("model.importance_decay", "Importance I_i = decay**i, in (0, 1]."),
    steps: Optional[int] = _option("train.steps", "Pre-training steps (0: keep the initialisation)."),
    batch_size: Optional[int] = _option("train.batch_size", "Pre-training batch size."),
    lr: Optional[float] = _option("train.lr", "Pre-training learning rate."),
    train_optimizer: Optional[str] = _option("train.optimizer", "Pre-training optimiser: adamw | adam."),
    lr_schedule: Optional[str] = _option("train.lr_schedule", "Pre-training schedule: constant | cosine | linear."),
    target: Optional[int] = _option("finetune.target", "Target feature of the narrow fine-tuning task."),
    optimizer: Optional[str] = _option("finetune.optimizer", "Fine-tuning optimiser: sgd | adam."),
    objective: Optional[str] = _option("finetune.objective", "Fine-tuning objective: preactivation | output."),
    ft_lr: Optional[float] = _option("finetune.lr", "Fine-tuning learning rate."),
    ft_steps: Optional[int] = _option("finetune.steps", "Fine-tuning steps."),
    background: Optional[float] = _option("finetune.background_probability",
                                         "P(active) of non-target features in the task data."),
    seed: Optional[int] = _option("train.seed", "Seed of pre-training (fine-tuning data uses seed+1)."),
    config: Optional[Path] = typer.Option(None, "--config", help=r"TOML file with \[model], \[train], \[finetune] tables."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/simulate-<timestamp>); rerun to resume."),
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Train a toy model, fine-tune it on a narrow task, compare measured with predicted amplification."""
    overrides = {
        "model": {"n_features": features, "n_hidden": hidden, "n_instances": instances,
                  "feature_probability": feature_probability, "feature_probability_min": feature_probability_min,
                  "importance_decay": importance_decay},
        "train": {"steps": steps, "batch_size": batch_size, "lr": lr, "optimizer": train_optimizer,
                  "lr_schedule": lr_schedule, "seed": seed},
        "finetune": {"target": target, "optimizer": optimizer, "objective": objective, "lr": ft_lr,
                     "steps": ft_steps, "background_probability": background,
                     "seed": None if seed is None else seed + 1},
    }
    resolved = resolve_config(SimulateConfig, config, overrides)
    set_threads(threads)
    from cli.toysuper_tables import show
    from toysuper.runners import run_simulate  # the work: torch, pandas, matplotlib

    show("simulate", run_simulate(resolved, out))
