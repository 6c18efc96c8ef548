"""The analysis commands of ``realmodels`` (registered on its app by ``cli.realmodels_app``): ``checkpoints`` (the
registry with memory estimates), ``geometry``, ``filter``, ``audit`` — each parses its options into the library's
configs and calls one runner of ``realmodels.experiments``, then prints its summary (``cli.realmodels_tables``).
The model and run options are generated from ``ModelSpec`` and ``RunOptions`` (``cli.dataclass_options``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.configfile import config_option, resolve_config
from cli.dataclass_options import with_options
from cli.errors import user_errors
from cli.realmodels_inputs import choose_domains, dataset_file, read_geometry_toml
from cli.realmodels_options import (CRITERION, HARMFUL_K, MODEL_OPTIONS, RUN_OPTIONS, SELECTION_FRACTION, Harmful,
                                    Harmless, K, harmful_pair)
from cli.realmodels_tables import print_audit, print_checkpoints, print_filter, print_geometry
from realmodels.analysis.configs import AuditConfig, FilterConfig, SelectionConfig, StudyConfig
from realmodels.experiments.spec import ModelSpec, RunOptions


def _study(key: str):
    return config_option(StudyConfig, key)


def _audit(key: str):
    return config_option(AuditConfig, key)


def _selection_config(base: dict, *, k, harmful_k, criterion, selection_fraction, seed):
    flags = {"k": k, "harmful_k": harmful_k, "criterion": criterion, "selection_fraction": selection_fraction,
             "seed": seed}
    return resolve_config(SelectionConfig, None, flags, base=base, prefix="selection.")


@user_errors
def checkpoints() -> None:
    """List the registered checkpoints with their SAE release and memory estimates."""
    print_checkpoints()


@user_errors
@with_options(model=MODEL_OPTIONS, options=RUN_OPTIONS)
def geometry(
    domain: Annotated[Optional[list[str]], typer.Option(
        help="NAME=INDUCING.jsonl,CONTROL.jsonl (repeatable): a misalignment-inducing dataset and its control.")] = None,
    only: Annotated[Optional[list[str]], typer.Option(help="Run only these domains (repeatable).")] = None,
    config: Annotated[Optional[Path], typer.Option(help=r"TOML with harmful, harmless, \[domains.NAME], \[selection], \[study].")] = None,
    harmful: Harmful = None,
    harmless: Harmless = None,
    k: Optional[int] = K,
    harmful_k: Optional[int] = HARMFUL_K,
    criterion: Optional[str] = CRITERION,
    selection_fraction: Optional[float] = SELECTION_FRACTION,
    proximity: Optional[str] = _study("proximity"),
    proximity_k: Optional[int] = _study("proximity_k"),
    alternative: Optional[str] = _study("alternative"),
    n_permutations: Optional[int] = _study("n_permutations"),
    n_bootstrap: Optional[int] = _study("n_bootstrap"),
    n_null: Optional[int] = _study("n_null"),
    seed: Optional[int] = config_option(StudyConfig, "seed", "Seed of the selection split, the permutations, the "
                                                             "bootstrap and the null draws."),
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """Are features of misalignment-inducing data closer to harmful features than features of control data?"""
    from realmodels.experiments.geometry import run_geometry

    file_cfg = read_geometry_toml(config)
    domains = choose_domains(file_cfg.get("domains", []), domain or [], only or [])
    harmful_path, harmless_path = harmful_pair(harmful if harmful is not None else file_cfg.get("harmful"),
                                               harmless if harmless is not None else file_cfg.get("harmless"),
                                               "or harmful/harmless in --config")
    selection = _selection_config(file_cfg.get("selection", {}), k=k, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    study_flags = {"proximity": proximity, "proximity_k": proximity_k, "alternative": alternative,
                   "n_permutations": n_permutations, "n_bootstrap": n_bootstrap, "n_null": n_null, "seed": seed}
    study = resolve_config(StudyConfig, None, study_flags, base=file_cfg.get("study", {}), prefix="study.")
    result = run_geometry(harmful_path, harmless_path, domains, selection=selection, study=study, model=model,
                          options=options)
    print_geometry(result.summary, study.proximity, result.path)


@user_errors
@with_options(model=MODEL_OPTIONS, options=RUN_OPTIONS)
def filter_(
    data: Annotated[Path, typer.Option(help="Training chat JSONL to filter.")],
    harmful: Harmful = None,
    harmless: Harmless = None,
    fraction: Annotated[float, typer.Option(help="Fraction of samples to remove, in [0, 1).")] = FilterConfig.fraction,
    random: Annotated[bool, typer.Option("--random", help="Random removal at the same fraction (the baseline).")
                      ] = FilterConfig.random,
    reduce: Annotated[str, typer.Option(help="Score = max | mean cosine to the toxic directions.")] = FilterConfig.reduce,
    representation: Annotated[str, typer.Option(
        help="residual (mean residual vs toxic decoder rows) | features (SAE activations vs toxic axes).")
    ] = FilterConfig.representation,
    harmful_k: Optional[int] = HARMFUL_K,
    criterion: Optional[str] = CRITERION,
    selection_fraction: Optional[float] = SELECTION_FRACTION,
    seed: Annotated[int, typer.Option(help="Seed of the random removal and of the selection split.")] = FilterConfig.seed,
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """Score every training sample by proximity to toxic features; write the filtered JSONL."""
    from realmodels.experiments.filter import run_filter

    data_path = dataset_file(data, "--data")
    harmful_path, harmless_path = harmful_pair(harmful, harmless, "they define the toxic features")
    filt = FilterConfig(fraction=fraction, reduce=reduce, representation=representation, random=random, seed=seed)
    selection = _selection_config({}, k=None, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    result = run_filter(data_path, harmful_path, harmless_path, filt, selection=selection, model=model,
                        options=options)
    print_filter(result.summary, result.path)


@user_errors
@with_options(model=MODEL_OPTIONS, options=RUN_OPTIONS)
def audit(
    data: Annotated[Path, typer.Option(help="Fine-tuning chat JSONL to audit.")],
    harmful: Harmful = None,
    harmless: Harmless = None,
    control: Annotated[Optional[Path], typer.Option(
        help="Chat JSONL the dataset's features are contrasted with (default: --harmless).")] = None,
    k: Optional[int] = K,
    harmful_k: Optional[int] = HARMFUL_K,
    criterion: Optional[str] = CRITERION,
    selection_fraction: Optional[float] = SELECTION_FRACTION,
    weighting: Optional[str] = _audit("weighting"),
    n_null: Optional[int] = _audit("n_null"),
    top: Annotated[int, typer.Option(help="Harmful features shown in the printed table.")] = 15,
    seed: Optional[int] = config_option(AuditConfig, "seed", "Seed of the selection split and the null draws."),
    *, model: ModelSpec, options: RunOptions,
) -> None:
    """Before fine-tuning: which harmful features would this dataset amplify (geometric safety score)?"""
    from realmodels.experiments.audit import run_audit

    data_path = dataset_file(data, "--data")
    harmful_path, harmless_path = harmful_pair(harmful, harmless, "they define the harmful features")
    control_path = dataset_file(control, "--control") if control is not None else None
    selection = _selection_config({}, k=k, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    cfg = resolve_config(AuditConfig, None, {"weighting": weighting, "n_null": n_null, "seed": seed})
    result = run_audit(data_path, harmful_path, harmless_path, control=control_path, config=cfg, selection=selection,
                       top=top, model=model, options=options)
    print_audit(result.summary, result.path)
