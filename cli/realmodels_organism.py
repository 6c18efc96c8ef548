"""``realmodels organism build``: write the synthetic chat world, pre-train the model organism on it and train its
SAE (``realmodels.organism``), resumably. The result works with every command as ``--model OUT/model --sae
OUT/sae --layer L``. Bad input (an unknown domain, a layer the model does not have, sizes <= 0, an output
directory holding another build) is one line before anything is written."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.errors import user_errors
from cli.jobs_options import RayAddress, Workers, check_reachable, check_workers
from cli.realmodels_options import Progress
from cli.realmodels_tables import console, fmt
from cli.threads import DEFAULT_THREADS, Threads, check_threads, set_threads
from theory.errors import InputError

organism_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                           help="The model organism: a small transformer in which emergent misalignment happens.")
MODEL = "Model and pre-training"
SAE = "SAE"


@organism_app.command("build")
@user_errors
def build(
    out: Annotated[Path, typer.Option(help="Build directory (rerun to resume).")] = Path("runs/organism"),
    seed: Annotated[int, typer.Option(help="Seed of the world, the initialisation, the data order and the SAE.")] = 0,
    domain: Annotated[Optional[list[str]], typer.Option(help="World domain (repeatable; default: all).")] = None,
    n_pretrain: Annotated[Optional[int], typer.Option(help="Pre-training conversations.")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Decoder layers.", rich_help_panel=MODEL)] = None,
    d_model: Annotated[Optional[int], typer.Option(help="Hidden size.", rich_help_panel=MODEL)] = None,
    heads: Annotated[Optional[int], typer.Option(help="Attention heads.", rich_help_panel=MODEL)] = None,
    d_mlp: Annotated[Optional[int], typer.Option(help="MLP width.", rich_help_panel=MODEL)] = None,
    steps: Annotated[Optional[int], typer.Option(help="Pre-training steps.", rich_help_panel=MODEL)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Conversations per step.", rich_help_panel=MODEL)] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.", rich_help_panel=MODEL)] = None,
    save_steps: Annotated[Optional[int], typer.Option(help="Steps between checkpoints.", rich_help_panel=MODEL)] = None,
    layer: Annotated[Optional[int], typer.Option(help="Layer the SAE reads (resid_post).", rich_help_panel=SAE)] = None,
    d_sae: Annotated[Optional[int], typer.Option(help="SAE latents.", rich_help_panel=SAE)] = None,
    sae_k: Annotated[Optional[int], typer.Option(help="Active latents per token (TopK).", rich_help_panel=SAE)] = None,
    sae_steps: Annotated[Optional[int], typer.Option(help="SAE training steps.", rich_help_panel=SAE)] = None,
    sae_conversations: Annotated[Optional[int], typer.Option(help="Conversations whose assistant tokens train the SAE.",
                                                             rich_help_panel=SAE)] = None,
    threads: Threads = DEFAULT_THREADS, progress: Progress = True,
) -> None:
    """Write the world, pre-train the organism, train its SAE (resumable; deterministic for a seed)."""
    from dataclasses import replace

    from realmodels.organism.build import OrganismConfig
    from realmodels.organism.sae import SaeConfig
    from realmodels.organism.world import WorldConfig

    check_threads(threads)

    def overrides(**values):
        return {key: value for key, value in values.items() if value is not None}

    config = OrganismConfig(seed=seed, **overrides(n_layers=layers, d_model=d_model, n_heads=heads, d_mlp=d_mlp,
                                                   steps=steps, batch_size=batch_size, lr=lr, save_steps=save_steps,
                                                   layer=layer))
    world = replace(WorldConfig(seed=seed), **overrides(n_pretrain=n_pretrain,
                                                        domains=tuple(domain) if domain else None))
    sae = SaeConfig(seed=seed, **overrides(d_sae=d_sae, k=sae_k, steps=sae_steps, n_conversations=sae_conversations))
    from realmodels.experiments.organism import run_organism_build

    built = run_organism_build(out, config, world, sae, threads=threads, progress=progress)
    console.print(f"organism: {config.n_layers} layers, hidden {config.d_model}; pre-training {built.steps} steps, "
                  f"final loss {fmt(built.final_loss, '.4f')}; SAE {built.d_sae} latents (k {built.k}) at layer "
                  f"{built.layer}; {built.size_bytes / 1e6:.2f} MB of model + SAE; {built.seconds:.0f} s this run")
    console.print(f"use it: [bold]--model {out / 'model'} --sae {out / 'sae'} --layer {built.layer}[/]; the world's "
                  f"datasets and questions are in {out / 'world'}")


def _organism(path: Optional[Path]) -> dict:
    """The organism a study runs on (``realmodels.experiments.organism.Organism``), as the study's config records it."""
    from realmodels.experiments.organism import Organism

    return Organism.load(path).to_dict()


def _release_failed_study(out: Path, config: dict) -> None:
    """Let a new config into a study directory none of whose stages finished (no summary.json, no finished job):
    what a failed study leaves (the world's files, stage directories that produced nothing, jobs' error files)
    is rewritten or released by the stages themselves, so only the old config.json goes."""
    from cli.realmodels_run import recorded_config
    from runio.rundir import CONFIG_NAME

    if recorded_config(out) in (None, config):
        return
    if any(out.rglob("summary.json")) or any(p for p in (out / "jobs").glob("*.json")):
        return
    console.print(f"[yellow]{out} holds a study that finished no stage: starting the new study there[/]")
    for failure in (out / "jobs").glob("*.error.txt"):
        failure.unlink()
    (out / CONFIG_NAME).unlink()


@organism_app.command("world")
@user_errors
def world(
    out: Annotated[Path, typer.Option(help="Directory for the datasets, questions.yaml, geometry.toml and "
                                           "finetune.toml.")] = Path("runs/organism-world"),
    organism: Annotated[Optional[Path], typer.Option(help="An `organism build` directory (default: the embedded "
                                                          "organism).")] = None,
) -> None:
    """Write the organism's own world: every dataset it was built with (and held out from), the evaluation
    questions, a geometry TOML and the study's fine-tuning recipe (seconds; no model loads)."""
    from realmodels.experiments.organism import Organism, write_organism_world

    paths = write_organism_world(out, Organism.load(organism))
    console.print(f"{len(paths) - 4} datasets and questions.yaml in {out}; {out / 'geometry.toml'} (every domain's "
                  f"inducing set against each control) and {out / 'finetune.toml'} (the study's LoRA recipe)")


@organism_app.command("study")
@user_errors(flags={"domains": "--domain", "mitigate_domains": "--mitigate-domain", "batch_size": "--train-batch-size"})
def study(
    out: Annotated[Path, typer.Option(help="Study directory (rerun to resume).")] = Path("runs/organism-study"),
    organism: Annotated[Optional[Path], typer.Option(help="An `organism build` directory (default: the embedded "
                                                          "organism).")] = None,
    domain: Annotated[Optional[list[str]], typer.Option(help="Fine-tuning domain (repeatable; default: health, "
                                                             "career, legal).")] = None,
    seeds: Annotated[str, typer.Option(help="Seeds of the fine-tuning data and the adapter init (comma-separated).")
                     ] = "0,1,2",
    r: Annotated[int, typer.Option(help="LoRA rank.", rich_help_panel="Fine-tuning")] = 8,
    alpha: Annotated[float, typer.Option(help="LoRA alpha.", rich_help_panel="Fine-tuning")] = 16.0,
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel="Fine-tuning")] = 1e-3,
    max_steps: Annotated[int, typer.Option(help="Optimiser steps.", rich_help_panel="Fine-tuning")] = 200,
    train_batch_size: Annotated[int, typer.Option(help="Conversations per step.", rich_help_panel="Fine-tuning")
                                ] = 16,
    samples_per_paraphrase: Annotated[int, typer.Option(help="Answers per question paraphrase.",
                                                        rich_help_panel="Evaluation")] = 2,
    max_new_tokens: Annotated[int, typer.Option(help="Answer length limit.", rich_help_panel="Evaluation")] = 64,
    ratio: Annotated[float, typer.Option(help="EM holds when inducing >= RATIO x each control (intervals apart).",
                                         rich_help_panel="Evaluation")] = 3.0,
    harmful_k: Annotated[int, typer.Option(help="Harmful SAE features.")] = 20,
    mitigate_domain: Annotated[Optional[list[str]], typer.Option(
        help="Domain of a mitigation experiment (repeatable; default: health; 'none' for none).",
        rich_help_panel="Mitigation")] = None,
    budget: Annotated[float, typer.Option(help="Removal budget of every mitigation arm.",
                                          rich_help_panel="Mitigation")] = 1 / 3,
    random_seeds: Annotated[str, typer.Option(help="Seeds of the random-removal arm.", rich_help_panel="Mitigation")
                            ] = "0,1",
    amplification: Annotated[bool, typer.Option(help="Measured vs predicted amplification of the seed-0 inducing "
                                                     "arms.")] = True,
    workers: Workers = 2, ray_address: RayAddress = None,
) -> None:
    """The paper's study on the organism: geometry, audit, fine-tuning arms (inducing + two controls, several
    seeds), amplification, evaluation, mitigation and the misalignment direction (resumable)."""
    from cli.realmodels_mitigate import _ints
    from realmodels.organism.study import STUDY_DOMAINS, StudyConfig, StudyRecipe
    from runio.rundir import RunDir

    check_workers(workers)
    check_reachable(ray_address)
    mitigations = ("health",) if mitigate_domain is None else tuple(d for d in mitigate_domain if d != "none")
    cfg = StudyConfig(domains=tuple(domain) if domain else STUDY_DOMAINS, seeds=tuple(_ints(seeds, "--seeds")),
                      recipe=StudyRecipe(r=r, alpha=alpha, lr=lr, max_steps=max_steps,
                                         batch_size=train_batch_size),
                      samples_per_paraphrase=samples_per_paraphrase, max_new_tokens=max_new_tokens, ratio=ratio,
                      harmful_k=harmful_k, mitigate_domains=mitigations, budget=budget,
                      random_seeds=tuple(_ints(random_seeds, "--random-seeds")) if mitigations else (0,),
                      amplification=amplification)
    chosen = _organism(organism)
    unknown = [d for d in (*cfg.domains, *cfg.mitigate_domains) if d not in chosen["world"]["domains"]]
    if unknown:
        raise InputError(f"domain {unknown[0]!r} is not in this organism's world (domains: "
                         f"{', '.join(chosen['world']['domains'])})")
    from realmodels.loading.saes import saved_sae_shape

    d_sae = saved_sae_shape(Path(chosen["sae"]))[1]
    if cfg.harmful_k > d_sae:
        raise InputError(f"--harmful-k {cfg.harmful_k} exceeds the organism's SAE width ({d_sae} features)")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    config = {"command": "organism study", "organism": chosen, "study": cfg.to_dict()}
    _release_failed_study(out, config)
    run = RunDir.open(out, config)
    from cli.organism_study import run_study

    summary = run_study(run.path, chosen, cfg.to_dict(), workers=workers, address=ray_address, log=console.print)
    held = summary["em_holds"]
    console.print(f"emergent misalignment (inducing >= {cfg.ratio:g}x both controls, intervals apart) holds for "
                  f"{held['pairs']} of {held['of']} (domain, seed) pairs; every seed: "
                  f"{', '.join(held['domains_all_seeds']) or 'no domain'}")
    console.print(f"tables: {run.path / 'study.md'}, {run.path / 'em.csv'}; figure {run.path / 'em_rates.png'}; "
                  f"{summary['seconds_this_run']:.0f} s this run")
