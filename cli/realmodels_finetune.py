"""``realmodels finetune``: supervised fine-tuning (assistant tokens only) with a preset recipe, on the
transformers ``Trainer`` with peft adapters, optionally with the training-time SAE monitor, the geometric
guard and the in-training defences (``realmodels.experiments.finetune.run_finetune``; the recipe's resolution:
``cli.finetune_recipe``).

Bad input is cheap: the recipe and the option values are checked, every dataset line is read, the model's
config and the SAE's cfg.json are checked, every conversation is tokenised and the adapter targets are checked
on a meta-device copy of the architecture — all before the run directory is created or any weights load.
Several GPUs / nodes: ``accelerate launch [--config_file ...] -m cli.realmodels_app finetune ...`` (the
Trainer takes the distributed setup from accelerate, DeepSpeed and FSDP configs included)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.dataclass_options import help_of, with_options
from cli.errors import user_errors
from cli.finetune_recipe import defence_config, read_finetune_toml, recipe_flags, resolve_recipe, watch_configs
from cli.realmodels_options import MODEL_OPTIONS, RUN_OPTIONS, SINGLE_PROCESS
from cli.realmodels_tables import print_finetune
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.finetune.config import DefenceConfig

RECIPE = "Recipe (defaults: the preset's)"
WATCH = "Monitor and guard"
DEFEND = "Defences (while training only)"


@user_errors(flags={"lora_layers": "--lora-layer", "every": "--monitor-every",
                    "k": "monitor.k", "top_movers": "monitor.top_movers", "max_probes": "monitor.max_probes",
                    "harmful_k": "monitor.harmful_k, guard.harmful_k or defence.harmful_k"})
@with_options(model=MODEL_OPTIONS.replace(exclude=("adapter",)),
              options=RUN_OPTIONS.replace(exclude=SINGLE_PROCESS))  # finetune has no adapter or Ray options
def finetune(
    data: Annotated[Path, typer.Option(help="Training chat JSONL (loss on assistant tokens only).")],
    preset: Annotated[str, typer.Option(help="em-betley | em-rank1 | full (see docs/real-models/finetune.md).")] = "em-betley",
    config: Annotated[Optional[Path], typer.Option(help=r"TOML with \[finetune], \[monitor], \[guard], \[defence] "
                                                   "tables.")] = None,
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
    guard: Annotated[Optional[str], typer.Option(help="Geometric guard: penalty | projection | both | rise (one-sided "
                                                 "penalty: only rises penalised).",
                                                 rich_help_panel=WATCH)] = None,
    guard_weight: Annotated[Optional[float], typer.Option(help="λ of the guard's penalty.", rich_help_panel=WATCH)
                            ] = None,
    harmful: Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmful responses (monitor/guard).",
                                                    rich_help_panel=WATCH)] = None,
    harmless: Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmless responses (monitor/guard).",
                                                     rich_help_panel=WATCH)] = None,
    control: Annotated[Optional[Path], typer.Option(help="Chat JSONL the training data's features are contrasted "
                                                    "with (default --harmless).", rich_help_panel=WATCH)] = None,
    caft: Annotated[Optional[str], typer.Option(help=help_of(DefenceConfig, "caft"), rich_help_panel=DEFEND)] = None,
    direction: Annotated[Optional[Path], typer.Option(help=help_of(DefenceConfig, "direction"),
                                                      rich_help_panel=DEFEND)] = None,
    steer_alpha: Annotated[Optional[float], typer.Option(help=help_of(DefenceConfig, "steer_alpha"),
                                                         rich_help_panel=DEFEND)] = None,
    kl_weight: Annotated[Optional[float], typer.Option(help=help_of(DefenceConfig, "kl_weight"),
                                                       rich_help_panel=DEFEND)] = None,
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """Fine-tune with a preset recipe (LoRA or full), optionally monitored and guarded by SAE features."""
    file_cfg = read_finetune_toml(config)
    recipe = resolve_recipe(preset, file_cfg, recipe_flags(locals()))
    monitor_cfg, guard_cfg = watch_configs(file_cfg, monitor=monitor, monitor_every=monitor_every, alarm=alarm,
                                           alarm_warn_only=alarm_warn_only, probe=probe, guard=guard,
                                           guard_weight=guard_weight)
    defence_cfg = defence_config(file_cfg, caft=caft, direction=direction, steer_alpha=steer_alpha,
                                 kl_weight=kl_weight)
    from realmodels.experiments.finetune import run_finetune

    result = run_finetune(data, recipe=recipe, monitor=monitor_cfg, guard=guard_cfg, harmful=harmful,
                          harmless=harmless, control=control, probe=probe, model=model, options=options,
                          defence=defence_cfg)
    print_finetune(result.summary, result.path)
