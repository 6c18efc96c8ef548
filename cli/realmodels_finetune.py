"""``realmodels finetune``: supervised fine-tuning (assistant tokens only) with a preset recipe, on the
transformers ``Trainer`` with peft adapters, optionally with the training-time SAE monitor and the geometric
guard (``realmodels.finetune``).

Bad input is cheap: the recipe and the option values are checked, every dataset line is read, the model's
config and the SAE's cfg.json are checked, every conversation is tokenised and the adapter targets are checked
on a meta-device copy of the architecture — all before the run directory is created or any weights load.
Several GPUs / nodes: ``accelerate launch [--config_file ...] -m cli.realmodels_app finetune ...`` (the
Trainer takes the distributed setup from accelerate, DeepSpeed and FSDP configs included)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.configfile import config_table, read_toml, resolve_config
from cli.errors import user_errors
from cli.realmodels_options import (BatchSize, CacheDir, ChatTemplate, Checkpoint, DeviceMap, Dtype, IgnoreMemory,
                                    Layer, MaxLength, ModelPath, Out, Progress, SaePath)
from cli.realmodels_inputs import dataset_entry, dataset_file
from cli.realmodels_run import SUMMARY, ModelOptions, harmful_pair, release_unfinished, show_if_finished
from cli.realmodels_tables import console, print_finetune
from cli.threads import DEFAULT_THREADS, Threads, check_threads, set_threads
from realmodels.finetune.config import FinetuneConfig, GuardConfig, MonitorConfig, preset_table
from runio.atomic import json_default, write_json
from runio.rundir import RunDir, default_run_dir
from theory.configs import merge
from theory.errors import InputError

RECIPE = "Recipe (defaults: the preset's)"
WATCH = "Monitor and guard"
TOML_KEYS = ("finetune", "monitor", "guard")


def read_finetune_toml(config: Path | None) -> dict:
    """The ``--config`` TOML of ``finetune`` ({} for None): only the tables ``TOML_KEYS``, each a table."""
    file_cfg = read_toml(config)
    unknown = sorted(set(file_cfg) - set(TOML_KEYS))
    if unknown:
        raise InputError(f"config file {config}: unknown table {unknown[0]!r} (expected {', '.join(TOML_KEYS)})")
    for name in TOML_KEYS:
        config_table(file_cfg, name, config)
    return file_cfg


def _recipe(preset: str, file_cfg: dict, flags: dict) -> FinetuneConfig:
    base = merge(preset_table(preset), file_cfg.get("finetune", {}))
    if base.get("preset", preset) != preset:
        raise InputError(f"[finetune] preset = {base['preset']!r} in the config file conflicts with --preset {preset}")
    return resolve_config(FinetuneConfig, None, flags, base=base, prefix="finetune.")


def recipe_flags(options: dict) -> dict:
    """The FinetuneConfig overrides of ``finetune``'s keyword arguments ``options`` (None: the preset's value)."""
    names = {"lora_layers": "lora_layer", "batch_size": "train_batch_size"}
    keys = ("r", "alpha", "rslora", "dropout", "target_modules", "lora_layers", "lr", "epochs", "max_steps",
            "schedule", "warmup_steps", "batch_size", "grad_accum", "weight_decay", "optimizer", "seed", "save_steps",
            "logging_steps")
    flags = {key: options[names.get(key, key)] for key in keys}
    flags["target_modules"] = _comma_list(flags["target_modules"])
    flags["lora_layers"] = flags["lora_layers"] or None
    return flags


def check_recipe(options: dict) -> FinetuneConfig:
    """The recipe ``finetune`` would train with, from its keyword arguments ``options`` (preset, config file,
    flags), checked without loading anything (``realmodels mitigate`` checks every arm's recipe with it)."""
    return _recipe(options["preset"], read_finetune_toml(options["config"]), recipe_flags(options))


def _comma_list(value: Optional[str]) -> Optional[list[str]]:
    return None if value is None else [part.strip() for part in value.split(",") if part.strip()]


@user_errors(flags={"lora_layers": "--lora-layer", "batch_size": "--train-batch-size", "every": "--monitor-every",
                    "k": "monitor.k", "top_movers": "monitor.top_movers", "max_probes": "monitor.max_probes",
                    "harmful_k": "monitor.harmful_k or guard.harmful_k"})
def finetune(
    data: Annotated[Path, typer.Option(help="Training chat JSONL (loss on assistant tokens only).")],
    preset: Annotated[str, typer.Option(help="em-betley | em-rank1 | full (see the README).")] = "em-betley",
    config: Annotated[Optional[Path], typer.Option(help=r"TOML with \[finetune], \[monitor], \[guard] tables.")] = None,
    r: Annotated[Optional[int], typer.Option("--r", help="LoRA rank.", rich_help_panel=RECIPE)] = None,
    alpha: Annotated[Optional[float], typer.Option(help="LoRA alpha.", rich_help_panel=RECIPE)] = None,
    rslora: Annotated[Optional[bool], typer.Option("--rslora/--no-rslora", help="Rank-stabilised scaling α/√r.",
                                                   rich_help_panel=RECIPE)] = None,
    dropout: Annotated[Optional[float], typer.Option(help="LoRA dropout.", rich_help_panel=RECIPE)] = None,
    target_modules: Annotated[Optional[str], typer.Option(help="Comma-separated module names given adapters.",
                                                          rich_help_panel=RECIPE)] = None,
    lora_layer: Annotated[Optional[list[int]], typer.Option(help="Decoder layer given adapters (repeatable; "
                                                            "em-rank1: exactly one; default every layer).",
                                                            rich_help_panel=RECIPE)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.", rich_help_panel=RECIPE)] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Passes over the data.", rich_help_panel=RECIPE)] = None,
    max_steps: Annotated[Optional[int], typer.Option(help="Optimiser steps (-1: the epochs decide).",
                                                     rich_help_panel=RECIPE)] = None,
    schedule: Annotated[Optional[str], typer.Option(help="linear | cosine | constant | constant_with_warmup.",
                                                    rich_help_panel=RECIPE)] = None,
    warmup_steps: Annotated[Optional[int], typer.Option(help="Warm-up steps.", rich_help_panel=RECIPE)] = None,
    train_batch_size: Annotated[Optional[int], typer.Option(help="Conversations per device per forward pass.",
                                                            rich_help_panel=RECIPE)] = None,
    grad_accum: Annotated[Optional[int], typer.Option(help="Gradient accumulation steps.", rich_help_panel=RECIPE)
                          ] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="Weight decay.", rich_help_panel=RECIPE)] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="transformers optimizer name (TrainingArguments.optim).",
                                                     rich_help_panel=RECIPE)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the adapter init and data order.",
                                                rich_help_panel=RECIPE)] = None,
    save_steps: Annotated[Optional[int], typer.Option(help="Steps between checkpoints.", rich_help_panel=RECIPE)] = None,
    logging_steps: Annotated[Optional[int], typer.Option(help="Steps between train_log.csv rows.",
                                                         rich_help_panel=RECIPE)] = None,
    monitor: Annotated[bool, typer.Option("--monitor", help="Log SAE feature drift on probes (monitor.csv).",
                                          rich_help_panel=WATCH)] = False,
    monitor_every: Annotated[Optional[int], typer.Option(help="Steps between monitor rows.", rich_help_panel=WATCH)
                             ] = None,
    probe: Annotated[Optional[Path], typer.Option(help="Chat JSONL of monitor probes (default: held-out training "
                                                  "conversations).", rich_help_panel=WATCH)] = None,
    alarm: Annotated[Optional[float], typer.Option(help="Alarm when the harmful features' rise exceeds X times the "
                                                   "training-data features' rise.", rich_help_panel=WATCH)] = None,
    alarm_warn_only: Annotated[bool, typer.Option("--alarm-warn-only", help="Warn on alarm instead of stopping.",
                                                  rich_help_panel=WATCH)] = False,
    guard: Annotated[Optional[str], typer.Option(help="Geometric guard: penalty | projection | both.",
                                                 rich_help_panel=WATCH)] = None,
    guard_weight: Annotated[Optional[float], typer.Option(help="λ of the guard's penalty.", rich_help_panel=WATCH)
                            ] = None,
    harmful: Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmful responses (monitor/guard).",
                                                    rich_help_panel=WATCH)] = None,
    harmless: Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmless responses (monitor/guard).",
                                                     rich_help_panel=WATCH)] = None,
    control: Annotated[Optional[Path], typer.Option(help="Chat JSONL the training data's features are contrasted "
                                                    "with (default --harmless).", rich_help_panel=WATCH)] = None,
    checkpoint: Checkpoint = None, model: ModelPath = None, sae: SaePath = None, layer: Layer = None,
    dtype: Dtype = "auto", device_map: DeviceMap = None, batch_size: BatchSize = 8, cache_dir: CacheDir = None,
    chat_template: ChatTemplate = None, max_length: MaxLength = None, ignore_memory_check: IgnoreMemory = False,
    threads: Threads = DEFAULT_THREADS, out: Out = None, progress: Progress = True,
) -> None:
    """Fine-tune with a preset recipe (LoRA or full), optionally monitored and guarded by SAE features."""
    check_threads(threads)
    file_cfg = read_finetune_toml(config)
    recipe = _recipe(preset, file_cfg, recipe_flags(locals()))
    monitor_cfg = None
    if monitor or "monitor" in file_cfg:
        monitor_cfg = resolve_config(MonitorConfig, None, {"every": monitor_every, "alarm": alarm,
                                                           "alarm_action": "warn" if alarm_warn_only else None},
                                     base=file_cfg.get("monitor", {}), prefix="monitor.")
    elif alarm is not None or monitor_every is not None or probe is not None:
        raise InputError("--alarm, --monitor-every and --probe need --monitor")
    guard_cfg = None
    if guard is not None or "guard" in file_cfg:
        guard_cfg = resolve_config(GuardConfig, None, {"kind": guard, "weight": guard_weight},
                                   base=file_cfg.get("guard", {}), prefix="guard.")
    elif guard_weight is not None:
        raise InputError("--guard-weight needs --guard")

    data_path = dataset_file(data, "--data")
    entries = {"train": dataset_entry(data_path)}
    features = None
    probe_path = None
    if monitor_cfg is not None or guard_cfg is not None:
        from realmodels.finetune.pipeline import FeatureData

        harmful_path, harmless_path = harmful_pair(harmful, harmless, "the monitor and the guard watch harmful "
                                                                      "features")
        control_path = dataset_file(control, "--control") if control is not None else harmless_path
        features = FeatureData(harmful=harmful_path, harmless=harmless_path, control=control_path)
        entries.update({"harmful": dataset_entry(harmful_path), "harmless": dataset_entry(harmless_path),
                        "control": dataset_entry(control_path)})
        if probe is not None:
            probe_path = dataset_file(probe, "--probe")
            entries["probe"] = dataset_entry(probe_path)
    elif harmful is not None or harmless is not None or control is not None:
        raise InputError("--harmful, --harmless and --control are used by --monitor or --guard only")

    opts = ModelOptions.from_command(locals())
    path = out or default_run_dir(prefix="finetune-")
    from realmodels.finetune.source import TrainingModel

    source = TrainingModel.from_options(opts, path, needs_sae=features is not None)
    run_config = json.loads(json.dumps({"command": "finetune", "model": source.to_config(), "data": entries,
                                        "finetune": asdict(recipe),
                                        "monitor": None if monitor_cfg is None else asdict(monitor_cfg),
                                        "guard": None if guard_cfg is None else asdict(guard_cfg)},
                                       default=json_default))
    release_unfinished(path, run_config, opts.cache_path(path))  # a run that never trained locks nothing
    if (path / "config.json").is_file() and show_if_finished(RunDir.open(path, run_config), print_finetune):
        return  # (a directory holding another run's config is refused by RunDir.open)

    set_threads(threads)
    from realmodels.finetune.lora import check_targets
    from realmodels.finetune.pipeline import finetune_pipeline, prepare_data

    prepared = prepare_data(source.tokenizer, data_path, max_length=source.max_length, probe=probe_path,
                            monitor=monitor_cfg, seed=recipe.seed)
    check_targets(source.config(), recipe, source.name)
    run = RunDir.open(path, run_config)
    summary = finetune_pipeline(model=source.model, tokenizer=source.tokenizer, session=source.session,
                                data=data_path, cfg=recipe, out=run.path, prepared=prepared, monitor=monitor_cfg,
                                guard=guard_cfg, features=features, batch_size=batch_size, progress=progress,
                                log=lambda message: console.print(f"[yellow]{message}[/]"))
    write_json(run.file(SUMMARY), summary)
    print_finetune(summary, run.path)
