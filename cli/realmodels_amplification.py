"""``realmodels amplification``: after fine-tuning, every SAE feature's measured change on probe conversations
against its first-order (JVP) prediction and the similarity-only (isotropic) prediction from the features tied to
the training data — ``toysuper simulate``'s measurement on a real model (``realmodels.analysis.amplification``).

``cli.realmodels_app`` registers it on its app. Bad input is cheap: the datasets are
read and the adapter checked against the base model (files only, no torch) before the run directory is created."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.table import Table

from cli.configfile import resolve_config
from cli.errors import user_errors
from cli.realmodels_inputs import dataset_entry, dataset_file
from cli.realmodels_options import (CRITERION, HARMFUL_K, MODEL, BatchSize, CacheDir, ChatTemplate, Checkpoint,
                                    DeviceMap, Dtype, Harmful, Harmless, IgnoreMemory, K, Layer, MaxLength, ModelPath,
                                    Out, Progress, SaePath)
from cli.realmodels_run import ModelOptions, harmful_pair, run_command
from cli.realmodels_tables import console, fmt
from cli.threads import DEFAULT_THREADS, Threads
from realmodels.analysis.configs import SelectionConfig
from runio.atomic import read_json, save_figure, write_csv
from theory.errors import InputError

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir

FINETUNE_CONFIG = "config.json"  # a `realmodels finetune` run's config: data.train.path is its training file


@dataclass(frozen=True)
class UnmergedModelOptions(ModelOptions):
    """The model options with the adapter loaded as a ``PeftModel`` (not merged): the command needs the base
    model (adapter disabled) and its weight change, not only the fine-tuned model."""

    def session(self, run_path: Path, *, merge_adapter: bool = False) -> Session:
        return super().session(run_path, merge_adapter=False)


def training_data(adapter: Path, data: Path | None) -> Path:
    """``--data``, else the training file recorded by the ``realmodels finetune`` run directory ``adapter``."""
    if data is not None:
        return dataset_file(data, "--data")
    config_path = Path(adapter).expanduser() / FINETUNE_CONFIG
    if not (Path(adapter).expanduser() / "adapter").is_dir() or not config_path.is_file():
        raise InputError(f"--data is required: {adapter} is not a `realmodels finetune` run directory (with "
                         f"adapter/ and {FINETUNE_CONFIG}) that records its training data")
    try:
        path = read_json(config_path)["data"]["train"]["path"]
    except (KeyError, TypeError):
        raise InputError(f"{config_path} records no training data (data.train.path); pass --data") from None
    return dataset_file(path, f"--data (recorded in {config_path})")


def print_amplification(summary: dict, out: Path) -> None:
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
def amplification(
    adapter: Annotated[Path, typer.Option(
        "--adapter", rich_help_panel=MODEL,
        help="peft LoRA adapter directory, or a `realmodels finetune` run directory (adapter/ + config.json).")],
    probe: Annotated[Path, typer.Option(help="Chat JSONL of probe conversations (changes are averaged over their "
                                             "assistant tokens).")],
    data: Annotated[Optional[Path], typer.Option(
        help="The fine-tuning chat JSONL (default: the one recorded by the finetune run directory --adapter).")] = None,
    control: Annotated[Optional[Path], typer.Option(
        help="Chat JSONL the training data's features are contrasted with (default: --harmless).")] = None,
    harmful: Harmful = None,
    harmless: Harmless = None,
    k: Optional[int] = K,
    harmful_k: Optional[int] = HARMFUL_K,
    criterion: Optional[str] = CRITERION,
    checkpoint: Checkpoint = None, model: ModelPath = None, sae: SaePath = None, layer: Layer = None,
    dtype: Dtype = "auto", device_map: DeviceMap = None, batch_size: BatchSize = 8, cache_dir: CacheDir = None,
    chat_template: ChatTemplate = None, max_length: MaxLength = None, ignore_memory_check: IgnoreMemory = False,
    threads: Threads = DEFAULT_THREADS, out: Out = None, progress: Progress = True,
) -> None:
    """After fine-tuning: every SAE feature's measured change vs its first-order and isotropic predictions."""

    probe_path = dataset_file(probe, "--probe")
    data_path = training_data(adapter, data)
    harmful_path, harmless_path = harmful_pair(harmful, harmless, "they define the harmful features")
    control_path = dataset_file(control, "--control") if control is not None else harmless_path
    selection = resolve_config(SelectionConfig, None, {"k": k, "harmful_k": harmful_k, "criterion": criterion},
                               prefix="selection.")
    opts = UnmergedModelOptions.from_command(locals(), adapter=adapter)
    run_config = {"data": {"probe": dataset_entry(probe_path), "train": dataset_entry(data_path),
                           "control": dataset_entry(control_path), "harmful": dataset_entry(harmful_path),
                           "harmless": dataset_entry(harmless_path)},
                  "selection": asdict(selection)}

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import amplification_pipeline

        report = amplification_pipeline(session, probe=probe_path, data=data_path, control=control_path,
                                        harmful=harmful_path, harmless=harmless_path, selection=selection,
                                        cache=run.cached_json, log=console.print)
        write_csv(run.file("amplification.csv"), report.table)
        save_figure(plotting.amplification_scatter(report.table, report.summary), run.file("amplification"))
        return report.summary

    run_command("amplification", opts, run_config, compute, show=print_amplification)
