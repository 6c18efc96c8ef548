"""``realmodels sae train``: train a TopK SAE on a model's residual stream at one layer and report its held-out
quality (``realmodels.experiments.sae.run_sae_train``); the SAE works with every command as ``--sae OUT/sae``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.dataclass_options import with_options
from cli.errors import user_errors
from cli.realmodels_options import MODEL_OPTIONS, RUN_OPTIONS
from cli.realmodels_tables import console, fmt
from realmodels.data.corpus import WINDOW
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.sae.config import SaeConfig

sae_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                      help="SAEs the toolkit trains.")
SAE = "SAE"
DEFAULTS = SaeConfig()


@sae_app.command("train")
@user_errors
@with_options(model=MODEL_OPTIONS.replace(exclude=("sae", "layer", "adapter")),
              options=RUN_OPTIONS.replace(exclude=("cache_dir", "workers", "ray_address", "num_gpus_per_worker")))
def train(
    layer: Annotated[int, typer.Option(help="Layer whose resid_post the SAE reads.")],
    data: Annotated[list[Path] | None, typer.Option(help="Chat JSONL whose assistant tokens train (and test) the "
                                                    "SAE; repeat for several.")] = None,
    text: Annotated[list[str] | None, typer.Option(help="Plain text trained on at every token: a UTF-8 file, or "
                                                   "python-docs (the documentation Python ships); repeat for "
                                                   "several.")] = None,
    window: Annotated[int, typer.Option(help="Tokens per window of --text.")] = WINDOW,
    d_sae: Annotated[int, typer.Option(help="SAE latents.", rich_help_panel=SAE)] = DEFAULTS.d_sae,
    k: Annotated[int, typer.Option("--k", help="Active latents per token (TopK); the target L0 (JumpReLU).",
                                   rich_help_panel=SAE)] = DEFAULTS.k,
    architecture: Annotated[str, typer.Option(help="topk | jumprelu.", rich_help_panel=SAE)] = DEFAULTS.architecture,
    l0_coefficient: Annotated[float, typer.Option(help="Weight of the JumpReLU L0 penalty.", rich_help_panel=SAE)
                              ] = DEFAULTS.l0_coefficient,
    steps: Annotated[int, typer.Option(help="Training steps.", rich_help_panel=SAE)] = DEFAULTS.steps,
    sae_batch_size: Annotated[int, typer.Option(help="Activations per step.", rich_help_panel=SAE)
                              ] = DEFAULTS.batch_size,
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=SAE)] = DEFAULTS.lr,
    n_conversations: Annotated[int, typer.Option(help="Training conversations and text windows (at most).",
                                                 rich_help_panel=SAE)
                               ] = DEFAULTS.n_conversations,
    seed: Annotated[int, typer.Option(help="Seed of the split, the initialisation and the batches.",
                                      rich_help_panel=SAE)] = DEFAULTS.seed,
    heldout: Annotated[float, typer.Option(help="Share of the conversations and windows held out to measure the "
                                          "SAE.")] = 0.1,
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """Train a TopK or JumpReLU SAE (sae-lens's trainer) at one layer; report FVU, L0 and dead latents on held-out text."""
    from realmodels.experiments.sae import run_sae_train

    config = SaeConfig(d_sae=d_sae, k=k, steps=steps, batch_size=sae_batch_size, lr=lr,
                       n_conversations=n_conversations, seed=seed, architecture=architecture,
                       l0_coefficient=l0_coefficient)
    result = run_sae_train(data, layer, config, text=text or (), window=window, heldout=heldout, model=model,
                           options=options)
    s = result.summary
    for part in ("heldout", "train"):
        q = s[part]
        console.print(f"{part}: FVU {fmt(q['fvu'], '.4f')}, L0 {fmt(q['l0'], '.2f')}, dead latents "
                      f"{fmt(100 * q['dead_fraction'], '.1f')}% ({q['n_tokens']} tokens)")
    console.print(f"SAE ({s['d_sae']} latents, k {s['k']}, layer {s['layer']}): [bold]--sae {result.sae} --layer "
                  f"{s['layer']}[/]")
