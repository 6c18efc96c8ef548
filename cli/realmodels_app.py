"""``realmodels``: the SAE feature geometry of emergent misalignment on real checkpoints.

Commands: ``checkpoints`` (the registry with memory estimates), ``geometry`` (are features of
misalignment-inducing data closer to harmful features than those of control data?), ``filter`` (remove the
training samples closest to toxic features, or a random baseline), ``audit`` (predict, before fine-tuning,
which harmful features a dataset would amplify). The logic lives in ``realmodels/``; this module reads
options, manages the run directory and prints."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import torch
import typer
from rich.table import Table

from cli.errors import run_app, user_errors
from cli.progress import stdout_console
from cli.realmodels_inputs import choose_domains, dataset_entry, dataset_file, read_geometry_toml
from runio.atomic import read_json, save_figure, write_csv, write_json, write_text
from runio.rundir import RunDir, default_run_dir
from theory.configs import merge, strict_from_dict
from theory.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SAE feature geometry of emergent misalignment on real checkpoints.")
console = stdout_console()

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
def _model_choice(checkpoint, model, sae, layer, dtype, chat_template, max_length, device_map):
    """The checked model options (the device map too, so that a bad one fails before the run directory)."""
    from realmodels.loading.placement import parse_device_map
    from realmodels.loading.session import ModelChoice

    parse_device_map(device_map)

    return ModelChoice(checkpoint=checkpoint, model=model, sae=None if sae is None else str(sae), layer=layer,
                       dtype=dtype, chat_template=None if chat_template is None else str(chat_template),
                       max_length=max_length).resolved()


def _session(choice, run: RunDir, *, device_map, batch_size, cache_dir, ignore_memory_check, progress):
    from realmodels.loading.session import Session

    return Session(choice, device_map=device_map, batch_size=batch_size,
                   cache_dir=cache_dir if cache_dir is not None else run.file("activations"), progress=progress,
                   ignore_memory_check=ignore_memory_check)


def _selection_config(base: dict, *, k, harmful_k, criterion, selection_fraction, seed):
    from realmodels.analysis.features import SelectionConfig

    flags = {"k": k, "harmful_k": harmful_k, "criterion": criterion, "selection_fraction": selection_fraction,
             "seed": seed}
    return strict_from_dict(SelectionConfig, merge(base, flags), prefix="selection.")


def _harmful_pair(harmful: Path | None, harmless: Path | None, defines: str) -> tuple[Path, Path]:
    """The checked --harmful and --harmless files, both required."""
    if harmful is None or harmless is None:
        raise InputError(f"--harmful and --harmless chat JSONL files are required (they define the {defines})")
    return dataset_file(harmful, "--harmful"), dataset_file(harmless, "--harmless")


def _open_run(out: Path | None, prefix: str, config: dict) -> RunDir:
    return RunDir.open(out or default_run_dir(prefix=f"{prefix}-"), config)


def _fmt(x: float, spec: str = ".3f") -> str:
    return "nan" if x is None or not np.isfinite(x) else format(x, spec)


# --------------------------------------------------------------------------------------------------- checkpoints
@app.command()
@user_errors
def checkpoints() -> None:
    """List the registered checkpoints with their SAE release and memory estimates."""
    from realmodels.loading.memory import SAE_PEAK_COPIES
    from realmodels.loading.registry import REGISTRY, memory_estimate_gb

    table = Table(title="registered checkpoints", caption="GB = parameters x bytes per parameter (1e9 bytes); "
                  "SAE: peak RAM while sae-lens loads it (float32)")
    for col, justify in (("name", "left"), ("model / SAE release", "left"), ("SAE layers", "right"),
                         ("d_model / d_sae", "right"), ("params", "right"), ("weights", "right"),
                         ("float32", "right"), ("SAE", "right")):
        table.add_column(col, justify=justify, no_wrap=col in ("name", "model / SAE release"))
    for spec in REGISTRY.values():
        layers = list(spec.layers)
        span = ("none" if not layers else f"{layers[0]}-{layers[-1]}" if layers == list(range(layers[0], layers[-1] + 1))
                else ",".join(map(str, layers)))
        d_sae = "?" if spec.d_sae is None else f"{spec.d_sae:,}"
        sae_gb = "?" if spec.d_sae is None else f"{SAE_PEAK_COPIES * spec.hidden_size * spec.d_sae * 4 / 1e9:.1f} GB"
        table.add_row(spec.name, f"{spec.model_id}\n{spec.sae_release}", span, f"{spec.hidden_size:,} / {d_sae}",
                      f"{spec.n_params / 1e9:.2f} B", f"{memory_estimate_gb(spec):.1f} GB {spec.default_dtype}",
                      f"{memory_estimate_gb(spec, 'float32'):.1f} GB", sae_gb)
    console.print(table)


# --------------------------------------------------------------------------------------------------- geometry
def _print_geometry(rows: list[dict], proximity: str, out: Path) -> None:
    table = Table(title=f"proximity to harmful features ({proximity}): inducing vs control")
    for col in ("domain", "n ind/ctl", "inducing [CI]", "control [CI]", "difference [CI]", "MW p", "perm p",
                "Cliff's δ", "null p (ind)"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["domain"], f"{r['n_inducing']}/{r['n_control']}",
                      f"{_fmt(r['mean_inducing'])} [{_fmt(r['inducing_ci_low'])}, {_fmt(r['inducing_ci_high'])}]",
                      f"{_fmt(r['mean_control'])} [{_fmt(r['control_ci_low'])}, {_fmt(r['control_ci_high'])}]",
                      f"{_fmt(r['difference'], '+.3f')} [{_fmt(r['difference_ci_low'], '+.3f')}, "
                      f"{_fmt(r['difference_ci_high'], '+.3f')}]",
                      _fmt(r["mannwhitney_p"], ".3g"), _fmt(r["permutation_p"], ".3g"), _fmt(r["cliffs_delta"], "+.2f"),
                      _fmt(r["null_p_inducing"], ".3g"))
    console.print(table)
    console.print(f"run directory: [bold]{out}[/]")


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
    from realmodels.analysis.pipelines import geometry_pipeline
    from realmodels.analysis.geometry import StudyConfig

    file_cfg = read_geometry_toml(config)
    domains = choose_domains(file_cfg.get("domains", []), domain or [], only or [])
    harmful_path = harmful if harmful is not None else file_cfg.get("harmful")
    harmless_path = harmless if harmless is not None else file_cfg.get("harmless")
    if harmful_path is None or harmless_path is None:
        raise InputError("--harmful and --harmless chat JSONL files are required (or harmful/harmless in --config)")
    harmful_path, harmless_path = dataset_file(harmful_path, "--harmful"), dataset_file(harmless_path, "--harmless")
    selection = _selection_config(file_cfg.get("selection", {}), k=k, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    study_flags = {"proximity": proximity, "proximity_k": proximity_k, "alternative": alternative,
                   "n_permutations": n_permutations, "n_bootstrap": n_bootstrap, "n_null": n_null, "seed": seed}
    study = strict_from_dict(StudyConfig, merge(file_cfg.get("study", {}), study_flags), prefix="study.")
    choice = _model_choice(checkpoint, model, sae, layer, dtype, chat_template, max_length, device_map)
    run_config = {
        "command": "geometry", "model": choice.to_config(),
        "data": {"harmful": dataset_entry(harmful_path), "harmless": dataset_entry(harmless_path),
                 "domains": {d.name: {"inducing": dataset_entry(d.inducing), "control": dataset_entry(d.control)}
                             for d in domains}},
        "selection": asdict(selection), "study": asdict(study),
    }
    run = _open_run(out, "geometry", run_config)
    if run.done("summary.json"):
        console.print("[green]already finished[/]: showing the saved summary (delete the directory to recompute)")
        _print_geometry(read_json(run.file("summary.json"))["domains"], study.proximity, run.path)
        return
    session = _session(choice, run, device_map=device_map, batch_size=batch_size, cache_dir=cache_dir,
                       ignore_memory_check=ignore_memory_check, progress=progress)
    outputs = geometry_pipeline(session, harmful=harmful_path, harmless=harmless_path,
                                domains=[(d.name, d.inducing, d.control) for d in domains], selection=selection,
                                study=study, cache=run.cached_json, log=console.print)
    write_csv(run.file("domains.csv"), outputs.domain_table())
    write_csv(run.file("features.csv"), outputs.feature_table())
    save_figure(plotting.proximity_distributions(outputs.results, study.proximity), run.file("proximity"))
    save_figure(plotting.difference_forest(outputs.results), run.file("differences"))
    summary = outputs.summary()
    write_json(run.file("summary.json"), summary)
    rows = summary["domains"]
    _print_geometry(rows, study.proximity, run.path)


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
    harmful_path, harmless_path = _harmful_pair(harmful, harmless, "toxic features")
    filt = FilterConfig(fraction=fraction, reduce=reduce, representation=representation, random=random, seed=seed)
    selection = _selection_config({}, k=None, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    choice = _model_choice(checkpoint, model, sae, layer, dtype, chat_template, max_length, device_map)
    run_config = {"command": "filter", "model": choice.to_config(),
                  "data": {"train": dataset_entry(data_path), "harmful": dataset_entry(harmful_path),
                           "harmless": dataset_entry(harmless_path)},
                  "selection": asdict(selection), "filter": asdict(filt)}
    run = _open_run(out, "filter", run_config)
    if run.done("summary.json"):
        console.print("[green]already finished[/]: showing the saved summary (delete the directory to recompute)")
        _print_filter(read_json(run.file("summary.json")), run.path)
        return
    session = _session(choice, run, device_map=device_map, batch_size=batch_size, cache_dir=cache_dir,
                       ignore_memory_check=ignore_memory_check, progress=progress)
    outputs = filter_pipeline(session, data=data_path, harmful=harmful_path, harmless=harmless_path,
                              selection=selection, config=filt, cache=run.cached_json, log=console.print)
    result = outputs.result
    write_csv(run.file("scores.csv"), result.scores)
    write_text(run.file("filtered.jsonl"), "".join(line + "\n" for line in result.kept_lines))
    write_text(run.file("removed.jsonl"), "".join(line + "\n" for line in result.removed_lines))
    save_figure(plotting.score_histogram(result.scores, outputs.method), run.file("scores"))
    summary = outputs.summary()
    write_json(run.file("summary.json"), summary)
    _print_filter(summary, run.path)


def _print_filter(summary: dict, out: Path) -> None:
    table = Table(title=f"{summary['method']} filtering")
    for col in ("samples", "removed", "kept", "mean score removed", "mean score kept", "toxic features",
                "score AUC harmful vs harmless"):
        table.add_column(col, justify="right")
    v = summary["score_validity"]
    table.add_row(str(summary["n_samples"]), str(summary["n_removed"]), str(summary["n_kept"]),
                  _fmt(summary["mean_score_removed"]), _fmt(summary["mean_score_kept"]),
                  str(len(summary["toxic_features"])),
                  f"{_fmt(v['auc'])} ({'held-out' if v['held_out'] else 'in-sample'})")
    console.print(table)
    console.print(f"filtered data: [bold]{out / 'filtered.jsonl'}[/] (removed: removed.jsonl, scores: scores.csv)")


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
    harmful_path, harmless_path = _harmful_pair(harmful, harmless, "harmful features")
    control_path = dataset_file(control, "--control") if control is not None else harmless_path
    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    selection = _selection_config({}, k=k, harmful_k=harmful_k, criterion=criterion,
                                  selection_fraction=selection_fraction, seed=seed)
    cfg = strict_from_dict(AuditConfig, merge({}, {"weighting": weighting, "n_null": n_null, "seed": seed}))
    choice = _model_choice(checkpoint, model, sae, layer, dtype, chat_template, max_length, device_map)
    run_config = {"command": "audit", "model": choice.to_config(),
                  "data": {"train": dataset_entry(data_path), "control": dataset_entry(control_path),
                           "harmful": dataset_entry(harmful_path), "harmless": dataset_entry(harmless_path)},
                  "selection": asdict(selection), "audit": asdict(cfg)}
    run = _open_run(out, "audit", run_config)
    session = _session(choice, run, device_map=device_map, batch_size=batch_size, cache_dir=cache_dir,
                       ignore_memory_check=ignore_memory_check, progress=progress)
    report = audit_pipeline(session, data=data_path, control=control_path, harmful=harmful_path,
                            harmless=harmless_path, selection=selection, config=cfg, cache=run.cached_json,
                            log=console.print)
    write_csv(run.file("audit.csv"), report.table())
    save_figure(plotting.audit_bars(report, top=top), run.file("audit"))
    summary = {key: value for key, value in report.to_dict().items() if key != "features"}
    summary["top_harmful_features"] = report.features[:top]
    write_json(run.file("summary.json"), summary)
    _print_audit(report, top, run.path)


def _print_audit(report, top: int, out: Path) -> None:
    table = Table(title=f"predicted amplification of harmful features (top {min(top, len(report.features))} "
                        f"of {report.n_harmful_features})")
    for col in ("harmful feature", "relative amplification", "Δa (η<x̄,x'> units)", "via dataset feature",
                "cosine", "direct"):
        table.add_column(col, justify="right")
    for row in report.features[:top]:
        table.add_row(str(row["harmful_feature"]), _fmt(row["relative_amplification"], "+.3f"),
                      _fmt(row["predicted_change"], "+.3g"), str(row["top_dataset_feature"]),
                      _fmt(row["cosine_to_top"], "+.3f"), "yes" if row["direct"] else "")
    console.print(table)
    colour = {"high": "bold red", "elevated": "yellow", "typical": "green"}[report.risk_level]
    console.print(f"geometric safety score [bold]{report.safety_score:.3f}[/] ([{colour}]{report.risk_level} risk[/]): "
                  f"risk {report.risk:.3f} vs random feature sets {report.null['null_mean']:.3f} "
                  f"(z = {_fmt(report.null['z_score'], '+.2f')}, {report.null['n_draws']} draws)")
    console.print(f"[dim]{report.assumption}[/]")
    console.print(f"run directory: [bold]{out}[/]")


def main() -> None:
    torch.set_num_threads(min(2, torch.get_num_threads()))
    run_app(app)


if __name__ == "__main__":
    main()
