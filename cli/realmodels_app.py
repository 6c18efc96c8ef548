"""``realmodels``: the SAE feature geometry of emergent misalignment on real checkpoints.

Commands: ``checkpoints`` (the registry with memory estimates), ``geometry`` (are features of
misalignment-inducing data closer to harmful features than those of control data?), ``filter`` (remove the
training samples closest to toxic features, or a random baseline), ``audit`` (predict, before fine-tuning,
which harmful features a dataset would amplify). The logic lives in ``realmodels/``; this module reads
options and resolves configs; ``cli.realmodels_run`` is the skeleton the analysis commands share (session, run
directory, resume), ``cli.realmodels_tables`` prints, ``cli.realmodels_inputs`` checks dataset files."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import torch
import typer

from cli.configfile import resolve_config
from cli.errors import run_app, user_errors
from cli.realmodels_inputs import choose_domains, dataset_entry, dataset_file, read_geometry_toml
from cli.realmodels_run import ModelOptions, harmful_pair, run_command
from cli.realmodels_tables import console, print_audit, print_checkpoints, print_filter, print_geometry
from runio.atomic import save_figure, write_csv, write_text
from runio.rundir import RunDir
from theory.errors import InputError

if TYPE_CHECKING:
    from realmodels.loading.session import Session

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SAE feature geometry of emergent misalignment on real checkpoints.")

MODEL = "Model (--checkpoint, or --model with --sae)"
RUN = "Run"

Checkpoint = Annotated[Optional[str], typer.Option(help="Registered checkpoint (see `realmodels checkpoints`).",
                                                   rich_help_panel=MODEL)]
ModelPath = Annotated[Optional[str], typer.Option("--model", help="Local HF model directory or hub id (with --sae).",
                                                  rich_help_panel=MODEL)]
SaePath = Annotated[Optional[Path], typer.Option("--sae", help="SAE directory saved by sae-lens SAE.save_model.",
                                                 rich_help_panel=MODEL)]
Layer = Annotated[Optional[int], typer.Option(help="Layer whose resid_post the SAE reads (default: the checkpoint's "
                                                   "only SAE layer).", rich_help_panel=MODEL)]
Dtype = Annotated[str, typer.Option(help="Model weights: auto | float32 | bfloat16 | float16.", rich_help_panel=MODEL)]
DeviceMap = Annotated[Optional[str], typer.Option(
    help="transformers/accelerate device_map: auto | balanced | balanced_low_0 | sequential | cpu, or a JSON file "
         "{module: device} (default: CPU). Disk offload goes to <cache-dir>/offload.", rich_help_panel=MODEL)]
BatchSize = Annotated[int, typer.Option(help="Conversations per forward pass.", rich_help_panel=MODEL)]
CacheDir = Annotated[Optional[Path], typer.Option(help="Activation cache (default: <out>/activations).",
                                                  rich_help_panel=MODEL)]
ChatTemplate = Annotated[Optional[Path], typer.Option(help="Jinja chat template replacing the tokenizer's.",
                                                      rich_help_panel=MODEL)]
MaxLength = Annotated[Optional[int], typer.Option(help="Truncate each conversation to this many tokens.",
                                                  rich_help_panel=MODEL)]
IgnoreMemory = Annotated[bool, typer.Option("--ignore-memory-check", help="Load even if the RAM estimate exceeds "
                                            "what is available.", rich_help_panel=MODEL)]
Harmful = Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmful responses.")]
Harmless = Annotated[Optional[Path], typer.Option(help="Chat JSONL of harmless responses (the harmful features' control).")]
K = Annotated[Optional[int], typer.Option("--k", help="Features tied to each dataset (top-k).")]
HarmfulK = Annotated[Optional[int], typer.Option(help="Harmful-behaviour features (top-k, harmful vs harmless).")]
Criterion = Annotated[Optional[str], typer.Option(help="Feature selection: mean_diff | welch_t | freq_diff.")]
SelectionFraction = Annotated[Optional[float], typer.Option(
    help="Select features on this fraction of each dataset; the rest checks them (held-out replication).")]
Seed = Annotated[Optional[int], typer.Option(help="Seed of splits, permutations, bootstrap, nulls, random removal.")]
Out = Annotated[Optional[Path], typer.Option(help="Run directory (default runs/<command>-<timestamp>); rerun to resume.",
                                             rich_help_panel=RUN)]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.", rich_help_panel=RUN)]


@app.callback()
def _root() -> None:
    """SAE feature geometry of emergent misalignment on real checkpoints."""


# --------------------------------------------------------------------------------------------------- helpers
def _selection_config(base: dict, *, k, harmful_k, criterion, selection_fraction, seed):
    from realmodels.analysis.features import SelectionConfig

    flags = {"k": k, "harmful_k": harmful_k, "criterion": criterion, "selection_fraction": selection_fraction,
             "seed": seed}
    return resolve_config(SelectionConfig, None, flags, base=base, prefix="selection.")


# --------------------------------------------------------------------------------------------------- checkpoints
@app.command()
@user_errors
def checkpoints() -> None:
    """List the registered checkpoints with their SAE release and memory estimates."""
    print_checkpoints()


# --------------------------------------------------------------------------------------------------- geometry
@app.command()
@user_errors
def geometry(
    domain: Annotated[Optional[list[str]], typer.Option(
        help="NAME=INDUCING.jsonl,CONTROL.jsonl (repeatable): a misalignment-inducing dataset and its control.")] = None,
    only: Annotated[Optional[list[str]], typer.Option(help="Run only these domains (repeatable).")] = None,
    config: Annotated[Optional[Path], typer.Option(help=r"TOML with harmful, harmless, \[domains.NAME], \[selection], \[study].")] = None,
    harmful: Harmful = None,
    harmless: Harmless = None,
    k: K = None,
    harmful_k: HarmfulK = None,
    criterion: Criterion = None,
    selection_fraction: SelectionFraction = None,
    proximity: Annotated[Optional[str], typer.Option(help="max_cosine | mean_top_k (to the harmful set).")] = None,
    proximity_k: Annotated[Optional[int], typer.Option(help="Neighbours averaged by mean_top_k.")] = None,
    alternative: Annotated[Optional[str], typer.Option(help="greater (inducing closer) | less | two-sided.")] = None,
    n_permutations: Annotated[Optional[int], typer.Option(help="Permutations of the difference-of-means test.")] = None,
    n_bootstrap: Annotated[Optional[int], typer.Option(help="Bootstrap resamples of the CIs.")] = None,
    n_null: Annotated[Optional[int], typer.Option(help="Random feature sets of the null.")] = None,
    seed: Seed = None,
    checkpoint: Checkpoint = None, model: ModelPath = None, sae: SaePath = None, layer: Layer = None,
    dtype: Dtype = "auto", device_map: DeviceMap = None, batch_size: BatchSize = 8, cache_dir: CacheDir = None,
    chat_template: ChatTemplate = None, max_length: MaxLength = None, ignore_memory_check: IgnoreMemory = False,
    out: Out = None, progress: Progress = True,
) -> None:
    """Are features of misalignment-inducing data closer to harmful features than features of control data?"""
    from realmodels.analysis import plotting
    from realmodels.analysis.geometry import StudyConfig
    from realmodels.analysis.pipelines import geometry_pipeline

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
    opts = ModelOptions(checkpoint=checkpoint, model=model, sae=sae, layer=layer, dtype=dtype, device_map=device_map,
                        batch_size=batch_size, cache_dir=cache_dir, chat_template=chat_template, max_length=max_length,
                        ignore_memory_check=ignore_memory_check, out=out, progress=progress)
    run_config = {
        "data": {"harmful": dataset_entry(harmful_path), "harmless": dataset_entry(harmless_path),
                 "domains": {d.name: {"inducing": dataset_entry(d.inducing), "control": dataset_entry(d.control)}
                             for d in domains}},
        "selection": asdict(selection), "study": asdict(study),
    }

    def compute(session: Session, run: RunDir) -> dict:
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
@app.command("filter")
@user_errors
def filter_(
    data: Annotated[Path, typer.Option(help="Training chat JSONL to filter.")],
    harmful: Harmful = None,
    harmless: Harmless = None,
    fraction: Annotated[float, typer.Option(help="Fraction of samples to remove, in [0, 1).")] = 0.1,
    random: Annotated[bool, typer.Option("--random", help="Random removal at the same fraction (the baseline).")] = False,
    reduce: Annotated[str, typer.Option(help="Score = max | mean cosine to the toxic directions.")] = "max",
    representation: Annotated[str, typer.Option(
        help="residual (mean residual vs toxic decoder rows) | features (SAE activations vs toxic axes).")] = "residual",
    harmful_k: HarmfulK = None,
    criterion: Criterion = None,
    selection_fraction: SelectionFraction = None,
    seed: Annotated[int, typer.Option(help="Seed of the random removal and of the selection split.")] = 0,
    checkpoint: Checkpoint = None, model: ModelPath = None, sae: SaePath = None, layer: Layer = None,
    dtype: Dtype = "auto", device_map: DeviceMap = None, batch_size: BatchSize = 8, cache_dir: CacheDir = None,
    chat_template: ChatTemplate = None, max_length: MaxLength = None, ignore_memory_check: IgnoreMemory = False,
    out: Out = None, progress: Progress = True,
) -> None:
    """Score every training sample by proximity to toxic features; write the filtered JSONL."""
    from realmodels.analysis import plotting
    from realmodels.analysis.filtering import FilterConfig
    from realmodels.analysis.pipelines import filter_pipeline

    data_path = dataset_file(data, "--data")
    harmful_path, harmless_path = harmful_pair(harmful, harmless, "they define the toxic features")
    filt = FilterConfig(fraction=fraction, reduce=reduce, representation=representation, random=random, seed=seed)
    selection = _selection_config({}, k=None, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    opts = ModelOptions(checkpoint=checkpoint, model=model, sae=sae, layer=layer, dtype=dtype, device_map=device_map,
                        batch_size=batch_size, cache_dir=cache_dir, chat_template=chat_template, max_length=max_length,
                        ignore_memory_check=ignore_memory_check, out=out, progress=progress)
    run_config = {"data": {"train": dataset_entry(data_path), "harmful": dataset_entry(harmful_path),
                           "harmless": dataset_entry(harmless_path)},
                  "selection": asdict(selection), "filter": asdict(filt)}

    def compute(session: Session, run: RunDir) -> dict:
        outputs = filter_pipeline(session, data=data_path, harmful=harmful_path, harmless=harmless_path,
                                  selection=selection, config=filt, cache=run.cached_json, log=console.print)
        result = outputs.result
        write_csv(run.file("scores.csv"), result.scores)
        write_text(run.file("filtered.jsonl"), "".join(line + "\n" for line in result.kept_lines))
        write_text(run.file("removed.jsonl"), "".join(line + "\n" for line in result.removed_lines))
        save_figure(plotting.score_histogram(result.scores, outputs.method), run.file("scores"))
        return outputs.summary()

    run_command("filter", opts, run_config, compute, show=print_filter)


# --------------------------------------------------------------------------------------------------- audit
@app.command()
@user_errors
def audit(
    data: Annotated[Path, typer.Option(help="Fine-tuning chat JSONL to audit.")],
    harmful: Harmful = None,
    harmless: Harmless = None,
    control: Annotated[Optional[Path], typer.Option(
        help="Chat JSONL the dataset's features are contrasted with (default: --harmless).")] = None,
    k: K = None,
    harmful_k: HarmfulK = None,
    criterion: Criterion = None,
    selection_fraction: SelectionFraction = None,
    weighting: Annotated[Optional[str], typer.Option(help="Push strength of each dataset feature: mean_diff | uniform.")] = None,
    n_null: Annotated[Optional[int], typer.Option(help="Random feature sets for the safety score.")] = None,
    top: Annotated[int, typer.Option(help="Harmful features shown in the printed table.")] = 15,
    seed: Seed = None,
    checkpoint: Checkpoint = None, model: ModelPath = None, sae: SaePath = None, layer: Layer = None,
    dtype: Dtype = "auto", device_map: DeviceMap = None, batch_size: BatchSize = 8, cache_dir: CacheDir = None,
    chat_template: ChatTemplate = None, max_length: MaxLength = None, ignore_memory_check: IgnoreMemory = False,
    out: Out = None, progress: Progress = True,
) -> None:
    """Before fine-tuning: which harmful features would this dataset amplify (geometric safety score)?"""
    from realmodels.analysis import plotting
    from realmodels.analysis.audit import AuditConfig
    from realmodels.analysis.pipelines import audit_pipeline

    data_path = dataset_file(data, "--data")
    harmful_path, harmless_path = harmful_pair(harmful, harmless, "they define the harmful features")
    control_path = dataset_file(control, "--control") if control is not None else harmless_path
    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    selection = _selection_config({}, k=k, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    cfg = resolve_config(AuditConfig, None, {"weighting": weighting, "n_null": n_null, "seed": seed})
    opts = ModelOptions(checkpoint=checkpoint, model=model, sae=sae, layer=layer, dtype=dtype, device_map=device_map,
                        batch_size=batch_size, cache_dir=cache_dir, chat_template=chat_template, max_length=max_length,
                        ignore_memory_check=ignore_memory_check, out=out, progress=progress)
    run_config = {"data": {"train": dataset_entry(data_path), "control": dataset_entry(control_path),
                           "harmful": dataset_entry(harmful_path), "harmless": dataset_entry(harmless_path)},
                  "selection": asdict(selection), "audit": asdict(cfg)}

    def compute(session: Session, run: RunDir) -> dict:
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


def main() -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    run_app(app)


if __name__ == "__main__":
    main()
