"""``realmodels organism study``: the paper's whole study on the model organism
(``realmodels.experiments.study.run_study``: geometry, audit, fine-tuning arms, amplification, evaluation,
mitigation and the misalignment direction, each stage its own resumable run directory; ``commands.sh`` lists each
stage's command line). This module parses the options into a ``StudyConfig`` and prints the outcome."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.errors import user_errors
from cli.jobs_options import RayAddress, Workers
from cli.realmodels_mitigate import ints
from cli.realmodels_tables import console

FT, EV, MIT = "Fine-tuning", "Evaluation", "Mitigation"


@user_errors(flags={"domains": "--domain", "mitigate_domains": "--mitigate-domain", "batch_size": "--train-batch-size"})
def study(
    out: Annotated[Path, typer.Option(help="Study directory (rerun to resume).")] = Path("runs/organism-study"),
    organism: Annotated[Optional[Path], typer.Option(help="An `organism build` directory (default: the embedded "
                                                          "organism).")] = None,
    domain: Annotated[Optional[list[str]], typer.Option(help="Fine-tuning domain (repeatable; default: health, "
                                                             "career, legal).")] = None,
    seeds: Annotated[str, typer.Option(help="Seeds of the fine-tuning data and the adapter init (comma-separated).")
                     ] = "0,1,2",
    r: Annotated[int, typer.Option(help="LoRA rank.", rich_help_panel=FT)] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA alpha.", rich_help_panel=FT)] = 16.0,
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=FT)] = 1e-3,
    max_steps: Annotated[int, typer.Option(help="Optimiser steps.", rich_help_panel=FT)] = 200,
    train_batch_size: Annotated[int, typer.Option(help="Conversations per step.", rich_help_panel=FT)] = 16,
    samples_per_paraphrase: Annotated[int, typer.Option(help="Answers per question paraphrase.",
                                                        rich_help_panel=EV)] = 2,
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit.", rich_help_panel=EV)] = 64,
    ratio: Annotated[float, typer.Option(help="EM holds when inducing >= RATIO x each control (intervals apart).",
                                         rich_help_panel=EV)] = 3.0,
    harmful_k: Annotated[int, typer.Option(help="Harmful SAE features.")] = 20,
    mitigate_domain: Annotated[Optional[list[str]], typer.Option(
        help="Domain of a mitigation experiment (repeatable; default: health; 'none' for none).",
        rich_help_panel=MIT)] = None,
    budget: Annotated[float, typer.Option(help="Removal budget of every mitigation arm.", rich_help_panel=MIT)] = 1 / 3,
    random_seeds: Annotated[str, typer.Option(help="Seeds of the random-removal arm.", rich_help_panel=MIT)] = "0,1",
    amplification: Annotated[bool, typer.Option(help="Measured vs predicted amplification of the seed-0 inducing "
                                                     "arms.")] = True,
    workers: Workers = 2, ray_address: RayAddress = None,
) -> None:
    """The paper's study on the organism: geometry, audit, fine-tuning arms (inducing + two controls, several
    seeds), amplification, evaluation, mitigation and the misalignment direction (resumable)."""
    from runio.jobs import check_reachable, check_workers

    check_workers(workers)
    check_reachable(ray_address)
    from realmodels.experiments.organism import Organism
    from realmodels.experiments.study import run_study
    from realmodels.organism.study import STUDY_DOMAINS, StudyConfig, StudyRecipe

    mitigations = ("health",) if mitigate_domain is None else tuple(d for d in mitigate_domain if d != "none")
    cfg = StudyConfig(domains=tuple(domain) if domain else STUDY_DOMAINS, seeds=tuple(ints(seeds, "--seeds")),
                      recipe=StudyRecipe(r=r, alpha=alpha, lr=lr, max_steps=max_steps, batch_size=train_batch_size),
                      samples_per_paraphrase=samples_per_paraphrase, max_new_tokens=max_new_tokens, ratio=ratio,
                      harmful_k=harmful_k, mitigate_domains=mitigations, budget=budget,
                      random_seeds=tuple(ints(random_seeds, "--random-seeds")) if mitigations else (0,),
                      amplification=amplification)
    result = run_study(cfg, organism=Organism.load(organism), out=out, workers=workers, ray_address=ray_address)
    summary, path = result.summary, result.path
    held = summary["em_holds"]
    console.print(f"emergent misalignment (inducing >= {cfg.ratio:g}x both controls, intervals apart) holds for "
                  f"{held['pairs']} of {held['of']} (domain, seed) pairs; every seed: "
                  f"{', '.join(held['domains_all_seeds']) or 'no domain'}")
    console.print(f"tables: {path / 'study.md'}, {path / 'em.csv'}; figure {path / 'em_rates.png'}; "
                  f"{summary['seconds_this_run']:.0f} s this run")
