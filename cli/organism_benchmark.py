"""``realmodels organism benchmark``: the mitigation benchmark on the model organism
(``realmodels.experiments.benchmark.run_benchmark``: every data and training arm on (domain, seed) cells, EM and
task retention with paired intervals, the budget curve, resumable, on Ray workers). This module parses the options
into a ``BenchmarkConfig`` and prints the table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.errors import user_errors
from cli.jobs_options import RayAddress, Workers
from cli.realmodels_mitigate import floats, ints
from cli.realmodels_tables import console, fmt

FT, ARM = "Fine-tuning", "Arms"


@user_errors(flags={"domains": "--domain", "seeds": "--seeds", "max_steps": "--max-steps",
                    "curve_domains": "--curve-domain"})
def benchmark(
    out: Annotated[Path, typer.Option(help="Benchmark directory (rerun to resume; a finished one: regenerates "
                                           "the tables and figures).")] = Path("runs/organism-benchmark"),
    organism: Annotated[Optional[Path], typer.Option(help="An `organism build` directory (default: the embedded "
                                                          "organism).")] = None,
    domain: Annotated[Optional[list[str]], typer.Option(help="Domain of the cells (repeatable; default: health, "
                                                             "career, legal).")] = None,
    seeds: Annotated[str, typer.Option(help="Seeds of the cells (comma-separated).")] = "0,1,2",
    arms: Annotated[Optional[str], typer.Option(help="Comma-separated arms (default: all).", rich_help_panel=ARM)
                    ] = None,
    budget: Annotated[float, typer.Option(help="Main budget: every arm on every cell.", rich_help_panel=ARM)] = 0.25,
    budgets: Annotated[str, typer.Option(help="Budget curve of the data arms (comma-separated).",
                                         rich_help_panel=ARM)] = "0.1,0.25,0.5",
    curve_domain: Annotated[Optional[list[str]], typer.Option(help="Domain whose cells run the budget curve "
                                                                   "(repeatable; default: health).",
                                                              rich_help_panel=ARM)] = None,
    curve_seeds: Annotated[str, typer.Option(help="Seeds whose cells run the budget curve.", rich_help_panel=ARM)
                           ] = "0",
    guard_weight: Annotated[float, typer.Option(help="λ of the one-sided guard.", rich_help_panel=ARM)] = 1.0,
    kl_weight: Annotated[float, typer.Option(help="λ of KL to the base model.", rich_help_panel=ARM)] = 1.0,
    steer_gaps: Annotated[float, typer.Option(help="Preventative steering α in units of the direction's norm.",
                                              rich_help_panel=ARM)] = 1.0,
    caft: Annotated[str, typer.Option(help="The caft arm: direction | features.", rich_help_panel=ARM)] = "direction",
    max_steps: Annotated[int, typer.Option(help="Optimiser steps of every fine-tune.", rich_help_panel=FT)] = 100,
    samples_per_paraphrase: Annotated[int, typer.Option(help="Answers per question paraphrase.")] = 1,
    n_heldout: Annotated[int, typer.Option(help="Held-out task conversations per domain.")] = 100,
    workers: Workers = 2, ray_address: RayAddress = None,
) -> None:
    """The mitigation benchmark: every arm (data filters, interleaving, in-training defences) on domains x seeds
    of the organism, EM and task retention with paired bootstrap intervals, Pareto and budget-curve figures."""
    from runio.jobs import check_reachable, check_workers

    check_workers(workers)
    check_reachable(ray_address)
    from realmodels.evaluate.mitigate import ARMS
    from realmodels.experiments.benchmark import BENCHMARK_DOMAINS, BenchmarkConfig, check_arms, run_benchmark
    from realmodels.experiments.organism import Organism
    from realmodels.organism.study import StudyRecipe

    chosen = tuple(a.strip() for a in arms.split(",") if a.strip()) if arms else ARMS
    check_arms(chosen)
    cfg = BenchmarkConfig(domains=tuple(domain) if domain else BENCHMARK_DOMAINS, seeds=tuple(ints(seeds, "--seeds")),
                          arms=chosen, budget=budget, budgets=tuple(floats(budgets, "--budgets")),
                          curve_domains=tuple(curve_domain) if curve_domain else ("health",),
                          curve_seeds=tuple(ints(curve_seeds, "--curve-seeds")), recipe=StudyRecipe(max_steps=max_steps),
                          samples_per_paraphrase=samples_per_paraphrase, n_heldout=n_heldout, caft=caft,
                          guard_weight=guard_weight, kl_weight=kl_weight, steer_gaps=steer_gaps)
    result = run_benchmark(cfg, organism=Organism.load(organism), out=out, workers=workers, ray_address=ray_address)
    summary = result.summary
    console.print(f"[bold]budget {cfg.budget:g}, {len(summary['cells'])} cells[/] (base task loss "
                  f"{fmt(summary['base_task_nll'], '.4f')})")
    for row in summary["arms"]:
        console.print(f"  {row['arm']:>10}  EM {fmt(row['em_rate'])} [{fmt(row['em_low'])}, {fmt(row['em_high'])}]  "
                      f"reduction {fmt(row['reduction'], '.1f')}%  retention {fmt(row['task_retention'], '.2f')} "
                      f"[{fmt(row['retention_low'], '.2f')}, {fmt(row['retention_high'], '.2f')}]")
    console.print(f"tables: {result.path / 'benchmark.md'}, {result.path / 'arms.csv'}; figures in "
                  f"{result.path / 'figures'}; {summary['seconds_this_run']:.0f} s this run")
