"""The options the ``realmodels`` commands share (model, run, feature selection), as typer ``Annotated``
types: one definition each, imported by every command module (``cli.realmodels_app`` and the commands in their
own modules, which it registers)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from cli.configfile import config_option
from cli.dataclass_options import OptionGroup
from cli.progress import quiet_library_bars
from realmodels.analysis.configs import SelectionConfig
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.finetune.config import MAX_COUNT
from realmodels.finetune.config import check_count as check_param_count
from realmodels.loading.session import DEFAULT_MAX_LENGTH
from cli.jobs_options import GPUS_HELP
from theory.errors import InputError, ParamError

MODEL = "Model (--checkpoint, or --model with --sae; neither: the embedded model organism)"
RUN = "Run"

MODEL_OPTIONS = OptionGroup(ModelSpec, panel=MODEL, decls={
    "model": ("--model",), "sae": ("--sae",), "adapter": ("--adapter",),
    "ignore_memory_check": ("--ignore-memory-check",)})
"""The model options of every command reading a model (``realmodels.experiments.spec.ModelSpec``)."""
RUN_OPTIONS = OptionGroup(RunOptions, panel=RUN, decls={
    "progress": ("--progress/--no-progress",), "workers": ("--workers",), "threads": ("--threads",),
    "num_gpus_per_worker": ("--num-gpus-per-worker",)}, extra={
    "progress": {"callback": quiet_library_bars}, "workers": {"show_default": True},
    "threads": {"show_default": True}, "num_gpus_per_worker": {"show_default": True},
    "ray_address": {"show_default": "none: a local Ray"}})
"""The run options (``realmodels.experiments.spec.RunOptions``)."""
SINGLE_PROCESS = ("workers", "ray_address", "num_gpus_per_worker")  # run options of a command without Ray workers

# TEMPORARY: the typed-out options of the commands not yet generated from ModelSpec/RunOptions
Checkpoint = Annotated[Optional[str], typer.Option(help="Registered checkpoint (see `realmodels checkpoints`).",
                                                   rich_help_panel=MODEL)]
ModelPath = Annotated[Optional[str], typer.Option("--model", help="Local HF model directory or hub id (with --sae).",
                                                  rich_help_panel=MODEL)]
SaePath = Annotated[Optional[Path], typer.Option("--sae", help="SAE directory saved by sae-lens SAE.save_model.",
                                                 rich_help_panel=MODEL)]
Layer = Annotated[Optional[int], typer.Option(help="Layer whose resid_post the SAE reads (default: the checkpoint's "
                                                   "only SAE layer).", rich_help_panel=MODEL)]
Dtype = Annotated[str, typer.Option(help="Model weights: auto | float32 | bfloat16 | float16.", rich_help_panel=MODEL)]
DeviceMap = Annotated[Optional[str], typer.Option(
    help="transformers/accelerate device_map: auto | balanced | balanced_low_0 | sequential | cpu, or a JSON file "
         "{module: device} (default: CPU). Disk offload goes to <cache-dir>/offload.", rich_help_panel=MODEL)]
BatchSize = Annotated[int, typer.Option(help="Conversations per forward pass.", rich_help_panel=MODEL)]
CacheDir = Annotated[Optional[Path], typer.Option(help="Activation cache (default: <out>/activations).",
                                                  rich_help_panel=MODEL)]
ChatTemplate = Annotated[Optional[Path], typer.Option(help="Jinja chat template replacing the tokenizer's.",
                                                      rich_help_panel=MODEL)]
MaxLength = Annotated[Optional[int], typer.Option(
    help="Tokens kept of each conversation, truncated while tokenising (a warning counts the truncated ones; one "
         "left without assistant tokens is an error)" + escape(f" [default: the model's context, at most "
                                                              f"{DEFAULT_MAX_LENGTH}]"), rich_help_panel=MODEL)]
Adapter = Annotated[Optional[Path], typer.Option(
    "--adapter", rich_help_panel=MODEL,
    help="peft adapter directory (or a `realmodels finetune` run directory): run on base model + adapter.")]
IgnoreMemory = Annotated[bool, typer.Option("--ignore-memory-check", help="Load even if the RAM estimate exceeds "
                                            "what is available.", rich_help_panel=MODEL)]
Out = Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<command>-<timestamp>); rerun to resume.",
                                             rich_help_panel=RUN)]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.", rich_help_panel=RUN,
                                        callback=quiet_library_bars)]
ActivationWorkers = Annotated[int, typer.Option(
    "--workers", rich_help_panel=RUN, show_default=True,
    help="Model workers computing the activations: 1 in this process, without Ray; N: N Ray actors (a local Ray "
         "started for the command), each loading the model once, on contiguous shards of each dataset, merged into "
         "the same cache (equal tensors).")]
ActivationRayAddress = Annotated[Optional[str], typer.Option(
    "--ray-address", rich_help_panel=RUN, show_default="none: a local Ray",
    help="Compute the activations on a running Ray cluster (auto, ray://HOST:PORT or HOST:PORT), --workers actors; "
         "shards and caches go under --cache-dir, which must then be on a filesystem every node shares.")]
GpusPerWorker = Annotated[float, typer.Option("--num-gpus-per-worker", help=GPUS_HELP, rich_help_panel=RUN,
                                              show_default=True)]



Harmful = Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmful responses.")]
Harmless = Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmless responses (the harmful features' control).")]
# defaults of config-backed options (None = keep the config's value; the help shows the config's default)
K = config_option(SelectionConfig, "k", "Features tied to each dataset (top-k).", "--k")
HARMFUL_K = config_option(SelectionConfig, "harmful_k", "Harmful-behaviour features (top-k, harmful vs harmless).")
CRITERION = config_option(SelectionConfig, "criterion", "Feature selection: mean_diff | welch_t | freq_diff.")
SELECTION_FRACTION = config_option(SelectionConfig, "selection_fraction", "Select features on this fraction of "
                                   "each dataset; the rest checks them (held-out replication)" +
                                   escape(" [default: select on all samples]"))

def harmful_pair(harmful: Path | None, harmless: Path | None, hint: str) -> tuple[Path, Path]:
    """The --harmful and --harmless files (which must exist), both required (``hint`` ends the message)."""
    from cli.realmodels_inputs import dataset_file

    if harmful is None or harmless is None:
        raise InputError(f"--harmful and --harmless chat JSONL files are required ({hint})")
    return dataset_file(harmful, "--harmful"), dataset_file(harmless, "--harmless")


def check_count(value: int, flag: str, minimum: int = 1, maximum: int = MAX_COUNT) -> None:
    """InputError unless the option ``flag``'s ``value`` is an integer in [``minimum``, ``maximum``]: the library's
    ``realmodels.finetune.config.check_count``, its message naming ``flag``."""
    try:
        check_param_count(value, "value", minimum, maximum)
    except ParamError as exc:
        raise InputError(exc.renamed(lambda _: flag)) from None


def check_max_length(value: int | None) -> None:
    """``--max-length``: None (the model's context) or at least one token."""
    if value is not None:
        check_count(value, "--max-length")
