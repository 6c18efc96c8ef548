"""The ``realmodels organism`` sub-app: ``build`` (write the synthetic chat world, pre-train the model organism on it
and train its SAE, resumably: ``realmodels.experiments.organism.run_organism_build``; the result works with every
command as ``--model OUT/model --sae OUT/sae --layer L``), ``world`` (``write_organism_world``), ``study``
(``cli.organism_study``) and ``causal`` (``cli.organism_causal``), both registered here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.errors import user_errors
from cli.realmodels_options import Progress
from cli.realmodels_tables import console, fmt
from cli.threads import DEFAULT_THREADS, Threads, check_threads

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
    from realmodels.sae.config import SaeConfig
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


from cli.organism_study import study  # noqa: E402  (registers `organism study` on organism_app)

organism_app.command("study")(study)

from cli.organism_causal import causal  # noqa: E402  (registers `organism causal` on organism_app)

organism_app.command("causal")(causal)

from cli.organism_benchmark import benchmark  # noqa: E402  (registers `organism benchmark` on organism_app)

organism_app.command("benchmark")(benchmark)
