"""``toysuper simulate``: train a toy model, fine-tune it on a narrow task, compare measured with predicted
amplification. ``run_simulate(config, out)`` is the whole command for a resolved config (``figures`` calls it
too); the typer function only turns flags into overrides."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from cli.configfile import resolve_config
from cli.errors import user_errors
from cli.progress import stdout_console
from cli.toyrun import finished_or_compute, train_or_reuse
from runio.atomic import save_figure, write_csv, write_json
from runio.rundir import RunDir, default_run_dir
from toysuper.config import SimulateConfig
from toysuper.plotting import amplification_figure
from toysuper.simulate import simulate as run_simulation

console = stdout_console()


def _print_summary(summary: dict, out: Path) -> None:
    agree = summary["agreement_preactivation"]
    agree_out = summary["agreement_output"]
    table = Table(title="predicted vs measured amplification (non-target features, all instances)")
    for col in ("quantity", "slope", "R²", "Spearman", "max rel. error", "median rel. error"):
        table.add_column(col, justify="right")
    for name, a in (("pre-activation Δz", agree), ("output Δx̂ (ReLU)", agree_out)):
        table.add_row(name, f"{a['slope']:.3f}", f"{a['r2']:.4f}", f"{a['spearman']:.4f}",
                      f"{a['max_relative_error']:.3g}", f"{a['median_relative_error']:.3g}")
    console.print(table)
    top = Table(title=f"top amplified features (target {summary['target']})")
    for col in ("instance", "feature", "cos to target", "predicted", "measured"):
        top.add_column(col, justify="right")
    for row in summary["top_amplified"][:8]:
        top.add_row(str(row["instance"]), str(row["feature"]), f"{row['similarity']:+.3f}",
                    f"{row['predicted']:+.4g}", f"{row['measured']:+.4g}")
    console.print(top)
    console.print(f"run directory: [bold]{out}[/]")


def run_simulate(config: SimulateConfig, out: Path) -> RunDir:
    """Run (or resume, or show the finished) ``simulate`` experiment in run directory ``out``."""
    run = RunDir.open(out, config.to_dict())

    def compute() -> None:
        trained, training = train_or_reuse(run, config.model, config.train, console)
        result = replace(run_simulation(config, trained=trained), train=training)
        table = result.amplification.table()
        write_csv(run.file("amplification.csv"), table)
        fig = amplification_figure(table, target=config.finetune.target,
                                   probabilities=config.model.feature_probabilities())
        save_figure(fig, run.file("amplification"))
        write_json(run.file("summary.json"), result.summary())

    _print_summary(finished_or_compute(run, "summary.json", compute, console), run.path)
    return run


@user_errors
def simulate(
    features: Optional[int] = typer.Option(None, help="n: number of sparse features."),
    hidden: Optional[int] = typer.Option(None, help="m: hidden dimensions (superposition when m < n)."),
    instances: Optional[int] = typer.Option(None, help="Independent model instances trained at once."),
    feature_probability: Optional[float] = typer.Option(None, help="P(feature active) of the densest instance, in (0, 1]."),
    feature_probability_min: Optional[float] = typer.Option(None, help="P(active) of the sparsest instance (geometric schedule)."),
    importance_decay: Optional[float] = typer.Option(None, help="Importance I_i = decay**i, in (0, 1]."),
    steps: Optional[int] = typer.Option(None, help="Pre-training steps."),
    batch_size: Optional[int] = typer.Option(None, help="Pre-training batch size."),
    lr: Optional[float] = typer.Option(None, help="Pre-training learning rate."),
    train_optimizer: Optional[str] = typer.Option(None, help="Pre-training optimiser: adamw | adam."),
    lr_schedule: Optional[str] = typer.Option(None, help="constant | cosine | linear."),
    target: Optional[int] = typer.Option(None, help="Target feature of the narrow fine-tuning task."),
    optimizer: Optional[str] = typer.Option(None, help="Fine-tuning optimiser: sgd | adam."),
    objective: Optional[str] = typer.Option(None, help="Fine-tuning objective: preactivation | output."),
    ft_lr: Optional[float] = typer.Option(None, help="Fine-tuning learning rate."),
    ft_steps: Optional[int] = typer.Option(None, help="Fine-tuning steps."),
    background: Optional[float] = typer.Option(None, help="P(active) of non-target features in the task data."),
    seed: Optional[int] = typer.Option(None, help="Seed of pre-training (fine-tuning data uses seed+1)."),
    config: Optional[Path] = typer.Option(None, "--config", help=r"TOML file with \[model], \[train], \[finetune] tables."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/simulate-<timestamp>); rerun to resume."),
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
    run_simulate(resolve_config(SimulateConfig, config, overrides), out or default_run_dir(prefix="simulate-"))
