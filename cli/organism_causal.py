"""``realmodels organism causal``: causal tests on the model organism (``realmodels.experiments.causal.run_causal``:
the base model with the harmful SAE features or the misalignment direction u_L raised by steering, the inducing
fine-tunes with the harmful features clamped to 0 or u_L ablated, each evaluation its own resumable run directory;
``commands.sh`` lists each stage's command line). This module parses the options into a ``CausalConfig`` and prints
the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.dataclass_options import help_of
from cli.errors import user_errors
from cli.realmodels_mitigate import ints
from cli.realmodels_tables import console
from realmodels.organism.causal import CausalConfig

FT, EV = "Fine-tuning", "Evaluation"


def _help(key: str, **kwargs):
    return typer.Option(help=help_of(CausalConfig, key), **kwargs)


@user_errors(flags={"batch_size": "--train-batch-size"})
def causal(
    out: Annotated[Path, typer.Option(help="Run directory (rerun to resume).")] = Path("runs/organism-causal"),
    organism: Annotated[Optional[Path], typer.Option(help="An `organism build` directory (default: the embedded "
                                                          "organism).")] = None,
    domain: Annotated[str, _help("domain")] = CausalConfig.domain,
    seeds: Annotated[str, typer.Option(help="Seeds of the fine-tuning data, the adapter init and the answers' "
                                            "sampling (comma-separated).")] = "0,1,2",
    r: Annotated[int, typer.Option(help="LoRA rank.", rich_help_panel=FT)] = 8,
    lora_alpha: Annotated[float, typer.Option(help="LoRA alpha.", rich_help_panel=FT)] = 16.0,
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=FT)] = 1e-3,
    max_steps: Annotated[int, typer.Option(help="Optimiser steps.", rich_help_panel=FT)] = 200,
    train_batch_size: Annotated[int, typer.Option(help="Conversations per step.", rich_help_panel=FT)] = 16,
    samples_per_paraphrase: Annotated[int, _help("samples_per_paraphrase", rich_help_panel=EV)
                                      ] = CausalConfig.samples_per_paraphrase,
    max_new_tokens: Annotated[int, _help("max_new_tokens", rich_help_panel=EV)] = CausalConfig.max_new_tokens,
    harmful_k: Annotated[int, _help("harmful_k")] = CausalConfig.harmful_k,
    alpha: Annotated[float, _help("alpha")] = CausalConfig.alpha,
) -> None:
    """Causal tests on the organism: raise the harmful SAE features or the misalignment direction in the base
    model (steering), clamp the features to 0 or ablate the direction in inducing fine-tunes; EM per condition
    with CIs over seeds (resumable)."""
    from realmodels.experiments.causal import run_causal
    from realmodels.experiments.organism import Organism
    from realmodels.organism.study import StudyRecipe

    cfg = CausalConfig(domain=domain, seeds=tuple(ints(seeds, "--seeds")),
                       recipe=StudyRecipe(r=r, alpha=lora_alpha, lr=lr, max_steps=max_steps,
                                          batch_size=train_batch_size),
                       samples_per_paraphrase=samples_per_paraphrase, max_new_tokens=max_new_tokens,
                       harmful_k=harmful_k, alpha=alpha)
    result = run_causal(cfg, organism=Organism.load(organism), out=out)  # every stage runs on one thread
    console.print((result.path / "causal.md").read_text(encoding="utf-8"))
    console.print(f"tables: {result.path / 'conditions.csv'}, {result.path / 'rates.csv'}; figure "
                  f"{result.path / 'causal.png'}; {result.summary['seconds_this_run']:.0f} s this run"
                  + (" (everything was already finished)" if result.already_finished else ""))
