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
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    set_threads(threads)
    from realmodels.organism.build import build_organism

    started = time.perf_counter()
    result = build_organism(out, config, world, sae, progress=progress)
    elapsed = time.perf_counter() - started
    size = sum(p.stat().st_size for sub in ("model", "sae") for p in (out / sub).rglob("*") if p.is_file())
    console.print(f"organism: {config.n_layers} layers, hidden {config.d_model}; pre-training {result.steps} steps, "
                  f"final loss {fmt(result.final_loss, '.4f')}; SAE {sae.d_sae} latents (k {sae.k}) at layer "
                  f"{config.layer}; {size / 1e6:.2f} MB of model + SAE; {elapsed:.0f} s this run")
    console.print(f"use it: [bold]--model {out / 'model'} --sae {out / 'sae'} --layer {config.layer}[/]; the world's "
                  f"datasets and questions are in {out / 'world'}")
