"""The options the ``realmodels`` commands share: the model and run options generated from
``realmodels.experiments.spec`` (``MODEL_OPTIONS``, ``RUN_OPTIONS``: ``cli.dataclass_options``), the feature
selection's config options and the harmful/harmless datasets — one definition each, imported by every command
module."""

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
from theory.errors import InputError

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

Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.", rich_help_panel=RUN,
                                        callback=quiet_library_bars)]
"""``--progress`` of a command without the other run options (``organism build``)."""
Harmful = Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmful responses.")]
Harmless = Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmless responses (the harmful features' control).")]
# defaults of config-backed options (None = keep the config's value; the help shows the config's default)
K = config_option(SelectionConfig, "k", "Features tied to each dataset (top-k).", "--k")
HARMFUL_K = config_option(SelectionConfig, "harmful_k", "Harmful-behaviour features (top-k, harmful vs harmless).")
CRITERION = config_option(SelectionConfig, "criterion", "Feature selection: mean_diff | welch_t | freq_diff | "
                          "correlation (point-biserial with the dataset label, the paper's).")
SELECTION_FRACTION = config_option(SelectionConfig, "selection_fraction", "Select features on this fraction of "
                                   "each dataset; the rest checks them (held-out replication)" +
                                   escape(" [default: select on all samples]"))

def harmful_pair(harmful: Path | None, harmless: Path | None, hint: str) -> tuple[Path, Path]:
    """The --harmful and --harmless files (which must exist), both required (``hint`` ends the message)."""
    from cli.realmodels_inputs import dataset_file

    if harmful is None or harmless is None:
        raise InputError(f"--harmful and --harmless chat JSONL files are required ({hint})")
    return dataset_file(harmful, "--harmful"), dataset_file(harmless, "--harmless")
