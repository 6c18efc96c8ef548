"""``realmodels lm-study``: the paper's study on a pretrained LM with the SAEs the toolkit trained
(``realmodels.experiments.lm_study.run_lm_study``); this module parses the options into an ``LmStudyConfig`` and
prints the arms' table."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.dataclass_options import help_of, with_options
from cli.errors import user_errors
from cli.realmodels_options import MODEL_OPTIONS, RUN_OPTIONS
from cli.realmodels_tables import console
from realmodels.experiments.spec import ModelSpec, RunOptions
from realmodels.lmstudy.config import LmStudyConfig
from theory.errors import ParamError

FT, MIT = "Fine-tuning", "Mitigation"
DEFAULTS = LmStudyConfig()


def layer_saes(values: list[str]) -> dict[int, Path]:
    """``LAYER=DIR`` pairs, in order (the first layer is the study's main layer)."""
    saes: dict[int, Path] = {}
    for value in values:
        layer, sep, path = value.partition("=")
        if not sep or not layer.strip().isdigit() or not path:
            raise ParamError(f"`sae` must be LAYER=DIR (e.g. 15=runs/sae15/sae), got {value!r}")
        if int(layer) in saes:
            raise ParamError(f"`sae` names layer {int(layer)} twice")
        saes[int(layer)] = Path(path)
    return saes


@user_errors(flags={"sae": "--layer-sae"})
@with_options(model=MODEL_OPTIONS.replace(exclude=("sae", "layer", "adapter")),
              options=RUN_OPTIONS.replace(exclude=("cache_dir", "workers", "ray_address", "num_gpus_per_worker")))
def lm_study(
    data: Annotated[Path, typer.Option(help="Datasets in the `realmodels english` layout.")],
    layer_sae: Annotated[list[str], typer.Option(help="LAYER=DIR: an SAE (`realmodels sae train`'s OUT/sae) and the "
                                                      "layer it reads; repeat; the first is the main layer.")],
    domain: Annotated[str, typer.Option(help=help_of(LmStudyConfig, "domain"))] = DEFAULTS.domain,
    geometry_domain: Annotated[Optional[list[str]], typer.Option(
        help="Domain of the geometry stage (repeatable; default: health, career, legal, finance).")] = None,
    k: Annotated[int, typer.Option("--k", help=help_of(LmStudyConfig, "k"))] = DEFAULTS.k,
    harmful_k: Annotated[int, typer.Option(help=help_of(LmStudyConfig, "harmful_k"))] = DEFAULTS.harmful_k,
    lr: Annotated[float, typer.Option(help="Learning rate.", rich_help_panel=FT)] = DEFAULTS.recipe.lr,
    r: Annotated[int, typer.Option(help="LoRA rank.", rich_help_panel=FT)] = DEFAULTS.recipe.r,
    alpha: Annotated[float, typer.Option(help="LoRA alpha.", rich_help_panel=FT)] = DEFAULTS.recipe.alpha,
    max_steps: Annotated[int, typer.Option(help="Optimiser steps.", rich_help_panel=FT)] = DEFAULTS.recipe.max_steps,
    guard: Annotated[str, typer.Option(help="Guard of the inducing-guard arm: penalty | projection | both | none.",
                                       rich_help_panel=FT)] = DEFAULTS.guard,
    budget: Annotated[float, typer.Option(help=help_of(LmStudyConfig, "budget"), rich_help_panel=MIT)
                      ] = DEFAULTS.budget,
    n_samples: Annotated[int, typer.Option(help=help_of(LmStudyConfig, "n_samples"))] = DEFAULTS.n_samples,
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """The paper's study on a pretrained LM: geometry and audit at every SAE layer, fine-tuning arms (monitored),
    the guard, offline mitigation arms, amplification (resumable)."""
    from realmodels.experiments.lm_study import run_lm_study

    recipe = replace(DEFAULTS.recipe, lr=lr, r=r, alpha=alpha, max_steps=max_steps)
    config = LmStudyConfig(domain=domain, geometry_domains=tuple(geometry_domain or DEFAULTS.geometry_domains),
                           k=k, harmful_k=harmful_k, guard=None if guard == "none" else guard, budget=budget,
                           n_samples=n_samples, recipe=recipe)
    result = run_lm_study(data, model, layer_saes(layer_sae), config, options=options)
    console.print(result.table("arms").to_string(index=False))
    console.print(f"report: [bold]{result.path / 'study.md'}[/]")
