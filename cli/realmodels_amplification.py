"""``realmodels amplification``: after fine-tuning, every SAE feature's measured change on probe conversations
against its first-order (JVP) prediction and the similarity-only (isotropic) prediction from the features tied to
the training data (``realmodels.experiments.amplification.run_amplification``; ``cli.realmodels_app`` registers it)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from cli.configfile import resolve_config
from cli.dataclass_options import with_options
from cli.errors import user_errors
from cli.realmodels_inputs import dataset_file
from cli.realmodels_options import (CRITERION, HARMFUL_K, MODEL_OPTIONS, RUN_OPTIONS, SINGLE_PROCESS, Adapter,
                                    Finetuned, Harmful, Harmless, K, harmful_pair)
from cli.realmodels_tables import console, fmt
from realmodels.analysis.configs import SelectionConfig
from realmodels.experiments.spec import ModelSpec, RunOptions


def print_amplification(summary: dict, out: Path) -> None:
    """Print the agreement table (R², Spearman, slope and max relative error of each prediction against the measured
    feature changes) and the harmful features' mean measured and predicted change, from the run's ``summary``."""
    table = Table(title=f"measured vs predicted change of {summary['n_features']} SAE features "
                        f"({summary['n_probes']} probes, {summary['n_tokens']} assistant tokens)")
    for col in ("prediction", "R²", "Spearman", "slope", "max rel. error"):
        table.add_column(col, justify="right")
    labels = {"first_order": "first order (JVP)", "isotropic": "isotropic (similarity)",
              "similarity": "cos(d_j, v)", "first_order_output": "first order, activations"}
    for key, label in labels.items():
        a = summary["agreement"][key]
        table.add_row(label, fmt(a["r2"]), fmt(a["spearman"]), fmt(a["slope"], ".3g"), fmt(a["max_relative_error"]))
    console.print(table)
    h = summary["harmful"]
    console.print(f"harmful features ({len(h['features'])}): mean change measured {fmt(h['mean_measured'], '+.3g')}, "
                  f"first order {fmt(h['mean_predicted'], '+.3g')}, isotropic "
                  f"{fmt(h['mean_predicted_isotropic'], '+.3g')}")
    console.print(f"run directory: [bold]{out}[/]")


@user_errors
@with_options(model=MODEL_OPTIONS.replace(exclude=("adapter",)), options=RUN_OPTIONS.replace(exclude=SINGLE_PROCESS))
def amplification(
    probe: Annotated[Path, typer.Option(help="Chat JSONL of probe conversations (changes are averaged over their "
                                             "assistant tokens).")],
    adapter: Adapter = None,
    finetuned: Finetuned = None,
    data: Annotated[Optional[Path], typer.Option(
        help="The fine-tuning chat JSONL (default: the one recorded by the finetune run directory --adapter or "
             "--finetuned).")] = None,
    control: Annotated[Optional[Path], typer.Option(
        help="Chat JSONL the training data's features are contrasted with (default: --harmless).")] = None,
    harmful: Harmful = None,
    harmless: Harmless = None,
    k: Optional[int] = K,
    harmful_k: Optional[int] = HARMFUL_K,
    criterion: Optional[str] = CRITERION,
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """After fine-tuning (a LoRA --adapter, or a full --finetuned checkpoint against the base model): every SAE
    feature's measured change vs its first-order and isotropic predictions."""
    from realmodels.experiments.amplification import run_amplification

    probe_path = dataset_file(probe, "--probe")
    data_path = dataset_file(data, "--data") if data is not None else None
    harmful_path, harmless_path = harmful_pair(harmful, harmless, "they define the harmful features")
    control_path = dataset_file(control, "--control") if control is not None else None
    selection = resolve_config(SelectionConfig, None, {"k": k, "harmful_k": harmful_k, "criterion": criterion},
                               prefix="selection.")
    result = run_amplification(probe_path, harmful_path, harmless_path, model=replace(model, adapter=adapter),
                               data=data_path, control=control_path, selection=selection, finetuned=finetuned,
                               options=options)
    print_amplification(result.summary, result.path)
