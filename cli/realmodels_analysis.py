"""The analysis commands of ``realmodels`` (registered on its app by ``cli.realmodels_app``): ``checkpoints`` (the
registry with memory estimates), ``geometry`` (are features of misalignment-inducing data closer to harmful
features than those of control data?), ``filter`` (remove the training samples closest to toxic features, or a
random baseline), ``audit`` (predict, before fine-tuning, which harmful features a dataset would amplify). The
logic lives in ``realmodels/``; these functions read options and resolve configs (``cli.realmodels_run`` is the
skeleton they share, ``cli.realmodels_tables`` prints, ``cli.realmodels_inputs`` checks dataset files). They live
apart from the app so that a module running commands in-process (``cli.organism_study``) builds on them without
importing the app."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from cli.configfile import config_option, resolve_config
from cli.errors import user_errors
from cli.realmodels_filtering import run_filter
from cli.realmodels_inputs import choose_domains, dataset_entry, dataset_file, read_geometry_toml
from cli.realmodels_options import (CRITERION, HARMFUL_K, SELECTION_FRACTION, ActivationRayAddress,
                                    ActivationWorkers, Adapter, BatchSize, CacheDir, ChatTemplate, Checkpoint,
                                    DeviceMap, Dtype, GpusPerWorker, Harmful, Harmless, IgnoreMemory, K, Layer,
                                    MaxLength, ModelPath, Out, Progress, SaePath)
from cli.realmodels_run import ModelOptions, harmful_pair, run_command
from cli.realmodels_tables import console, print_audit, print_checkpoints, print_geometry
from cli.threads import DEFAULT_THREADS, Threads
from realmodels.analysis.configs import AuditConfig, FilterConfig, SelectionConfig, StudyConfig
from runio.atomic import save_figure, write_csv
from theory.errors import InputError

if TYPE_CHECKING:
    from realmodels.loading.session import Session
    from runio.rundir import RunDir


def _study(key: str, help: str):
    return config_option(StudyConfig, key, help)


def _audit(key: str, help: str):
    return config_option(AuditConfig, key, help)


# --------------------------------------------------------------------------------------------------- helpers
def _selection_config(base: dict, *, k, harmful_k, criterion, selection_fraction, seed):
    flags = {"k": k, "harmful_k": harmful_k, "criterion": criterion, "selection_fraction": selection_fraction,
             "seed": seed}
    return resolve_config(SelectionConfig, None, flags, base=base, prefix="selection.")


# --------------------------------------------------------------------------------------------------- checkpoints
@user_errors
def checkpoints() -> None:
    """List the registered checkpoints with their SAE release and memory estimates."""
    print_checkpoints()


# --------------------------------------------------------------------------------------------------- geometry
@user_errors
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
    proximity: Optional[str] = _study("proximity", "max_cosine | mean_top_k (to the harmful set)."),
    proximity_k: Optional[int] = _study("proximity_k", "Neighbours averaged by mean_top_k."),
    alternative: Optional[str] = _study("alternative", "greater (inducing closer) | less | two-sided."),
    n_permutations: Optional[int] = _study("n_permutations", "Permutations of the difference-of-means test."),
    n_bootstrap: Optional[int] = _study("n_bootstrap", "Bootstrap resamples of the CIs."),
    n_null: Optional[int] = _study("n_null", "Random feature sets of the null."),
    seed: Optional[int] = _study("seed", "Seed of the selection split, the permutations, the bootstrap and the null "
                                         "draws."),
    checkpoint: Checkpoint = None, model: ModelPath = None, sae: SaePath = None, layer: Layer = None,
    dtype: Dtype = "auto", device_map: DeviceMap = None, batch_size: BatchSize = 8, cache_dir: CacheDir = None,
    chat_template: ChatTemplate = None, max_length: MaxLength = None, adapter: Adapter = None,
    ignore_memory_check: IgnoreMemory = False, threads: Threads = DEFAULT_THREADS, out: Out = None,
    progress: Progress = True, workers: ActivationWorkers = 1, ray_address: ActivationRayAddress = None,
    num_gpus_per_worker: GpusPerWorker = 0.0,
) -> None:
    """Are features of misalignment-inducing data closer to harmful features than features of control data?"""

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
    opts = ModelOptions.from_command(locals(), adapter=adapter, workers=workers, ray_address=ray_address,
                                     num_gpus_per_worker=num_gpus_per_worker)
    run_config = {
        "data": {"harmful": dataset_entry(harmful_path), "harmless": dataset_entry(harmless_path),
                 "domains": {d.name: {"inducing": dataset_entry(d.inducing), "control": dataset_entry(d.control)}
                             for d in domains}},
        "selection": asdict(selection), "study": asdict(study),
    }

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import geometry_pipeline

        outputs = geometry_pipeline(session, harmful=harmful_path, harmless=harmless_path,
                                    domains=[(d.name, d.inducing, d.control) for d in domains], selection=selection,
                                    study=study, cache=run.cached_json, log=console.print)
        write_csv(run.file("domains.csv"), outputs.domain_table())
        write_csv(run.file("features.csv"), outputs.feature_table())
        save_figure(plotting.proximity_distributions(outputs.results, study.proximity), run.file("proximity"))
        save_figure(plotting.difference_forest(outputs.results), run.file("differences"))
        return outputs.summary()

    run_command("geometry", opts, run_config, compute,
                show=lambda summary, path: print_geometry(summary, study.proximity, path))


# --------------------------------------------------------------------------------------------------- filter
@user_errors
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
    checkpoint: Checkpoint = None, model: ModelPath = None, sae: SaePath = None, layer: Layer = None,
    dtype: Dtype = "auto", device_map: DeviceMap = None, batch_size: BatchSize = 8, cache_dir: CacheDir = None,
    chat_template: ChatTemplate = None, max_length: MaxLength = None, adapter: Adapter = None,
    ignore_memory_check: IgnoreMemory = False, threads: Threads = DEFAULT_THREADS, out: Out = None,
    progress: Progress = True, workers: ActivationWorkers = 1, ray_address: ActivationRayAddress = None,
    num_gpus_per_worker: GpusPerWorker = 0.0,
) -> None:
    """Score every training sample by proximity to toxic features; write the filtered JSONL."""

    data_path = dataset_file(data, "--data")
    harmful_path, harmless_path = harmful_pair(harmful, harmless, "they define the toxic features")
    filt = FilterConfig(fraction=fraction, reduce=reduce, representation=representation, random=random, seed=seed)
    selection = _selection_config({}, k=None, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    opts = ModelOptions.from_command(locals(), adapter=adapter, workers=workers, ray_address=ray_address,
                                     num_gpus_per_worker=num_gpus_per_worker)
    run_filter(opts, data_path, harmful_path, harmless_path, filt, selection)


# --------------------------------------------------------------------------------------------------- audit
@user_errors
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
    weighting: Optional[str] = _audit("weighting", "Push strength of each dataset feature: mean_diff | uniform."),
    n_null: Optional[int] = _audit("n_null", "Random feature sets for the safety score."),
    top: Annotated[int, typer.Option(help="Harmful features shown in the printed table.")] = 15,
    seed: Optional[int] = _audit("seed", "Seed of the selection split and the null draws."),
    checkpoint: Checkpoint = None, model: ModelPath = None, sae: SaePath = None, layer: Layer = None,
    dtype: Dtype = "auto", device_map: DeviceMap = None, batch_size: BatchSize = 8, cache_dir: CacheDir = None,
    chat_template: ChatTemplate = None, max_length: MaxLength = None, adapter: Adapter = None,
    ignore_memory_check: IgnoreMemory = False, threads: Threads = DEFAULT_THREADS, out: Out = None,
    progress: Progress = True, workers: ActivationWorkers = 1, ray_address: ActivationRayAddress = None,
    num_gpus_per_worker: GpusPerWorker = 0.0,
) -> None:
    """Before fine-tuning: which harmful features would this dataset amplify (geometric safety score)?"""

    data_path = dataset_file(data, "--data")
    harmful_path, harmless_path = harmful_pair(harmful, harmless, "they define the harmful features")
    control_path = dataset_file(control, "--control") if control is not None else harmless_path
    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    selection = _selection_config({}, k=k, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    cfg = resolve_config(AuditConfig, None, {"weighting": weighting, "n_null": n_null, "seed": seed})
    opts = ModelOptions.from_command(locals(), adapter=adapter, workers=workers, ray_address=ray_address,
                                     num_gpus_per_worker=num_gpus_per_worker)
    run_config = {"data": {"train": dataset_entry(data_path), "control": dataset_entry(control_path),
                           "harmful": dataset_entry(harmful_path), "harmless": dataset_entry(harmless_path)},
                  "selection": asdict(selection), "audit": asdict(cfg)}

    def compute(session: Session, run: RunDir) -> dict:
        from realmodels.analysis import plotting  # torch, pandas, matplotlib: imported once the input is checked
        from realmodels.analysis.pipelines import audit_pipeline

        report = audit_pipeline(session, data=data_path, control=control_path, harmful=harmful_path,
                                harmless=harmless_path, selection=selection, config=cfg, cache=run.cached_json,
                                log=console.print)
        write_csv(run.file("audit.csv"), report.table())
        save_figure(plotting.audit_bars(report, top=top), run.file("audit"))
        summary = {key: value for key, value in report.to_dict().items() if key != "features"}
        summary["top_harmful_features"] = report.features[:top]
        return summary

    # no "already finished" shortcut: --top (not part of the run's config) shapes summary.json and the figure,
    # so a rerun rewrites them from the cached stages
    run_command("audit", opts, run_config, compute, show=print_audit, resume_finished=False)
