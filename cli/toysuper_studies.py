"""``toysuper`` commands of the emergent-misalignment toy study: ``inducing``, ``mitigate``, ``density``,
``geometry`` and ``figures`` (every figure in figures/, including ``simulate``'s, through
``cli.toysuper_simulate.run_simulate``). Each reads its defaults from the dataclass configs (mirrored in
toysuper/configs/<study>.toml), then a --config TOML, then flags (``cli.configfile.resolve_config``); writes a
run directory atomically; and resumes when rerun with the same --out. ``cli.toysuper_app`` registers
``COMMANDS``; this module does not import it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from cli.configfile import resolve_config
from cli.errors import user_errors
from cli.parallel import resumable_map
from cli.progress import progress_bar, stdout_console
from cli.toyrun import finished_or_compute, train_or_reuse
from cli.toysuper_simulate import run_simulate
from runio.atomic import atomic_path, save_figure, write_csv, write_json
from runio.rundir import RunDir, default_run_dir
from theory.errors import InputError
from toysuper.config import SimulateConfig
from toysuper.em import plots
from toysuper.em.geometry import GeometryConfig, run_geometry
from toysuper.em.inducing import InducingConfig, run_inducing
from toysuper.em.mitigate import MitigateConfig, run_mitigations
from toysuper.em.sweep import SweepConfig, cells, results_table, run_cell

console = stdout_console()
STUDIES = ("simulate", "inducing", "mitigate", "density", "geometry")
FIGURES = {  # figures/ name -> (study, file stem in its run directory)
    "amplification": ("simulate", "amplification"),
    "em_proximity_vs_misalignment": ("inducing", "proximity_vs_misalignment"),
    "em_inducing_vs_non_inducing": ("inducing", "inducing_vs_non_inducing"),
    "em_mitigations": ("mitigate", "mitigations"),
    "em_density_heatmap": ("density", "density_heatmap"),
    "em_geometry_before_after": ("geometry", "geometry_before_after"),
}
CONFIG_CLASSES = {"simulate": SimulateConfig, "inducing": InducingConfig, "mitigate": MitigateConfig,
                  "density": SweepConfig, "geometry": GeometryConfig}


def parse_int_list(text: str | None, name: str) -> tuple[int, ...] | None:
    """"0,1,2" -> (0, 1, 2); "" -> () (validated by the config); None -> None (unset)."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(",") if part != "")
    except ValueError:
        raise InputError(f"--{name} must be comma-separated integers, got {text!r}") from None


def _fmt(interval: dict | None, scale: float = 1.0, fmt: str = ".2f") -> str:
    if interval is None:
        return "n/a"
    return (f"{interval['estimate'] * scale:{fmt}} [{interval['low'] * scale:{fmt}}, "
            f"{interval['high'] * scale:{fmt}}]")


# ---------------------------------------------------------------- inducing


def study_inducing(cfg: InducingConfig, out: Path) -> RunDir:
    run = RunDir.open(out, cfg.to_dict())

    def compute() -> None:
        model, _ = train_or_reuse(run, cfg.model, cfg.train, console)
        n_tasks = cfg.model.n_features - len(cfg.harmful.features)
        with progress_bar("fine-tuning tasks", n_tasks) as update:
            result = run_inducing(cfg, trained=model, progress=lambda done, total: update(done))
        write_csv(run.file("tasks.csv"), result.table)
        save_figure(plots.proximity_figure(result.table, result.summary), run.file("proximity_vs_misalignment"))
        save_figure(plots.inducing_figure(result.table, result.summary), run.file("inducing_vs_non_inducing"))
        write_json(run.file("summary.json"), result.summary)

    _print_inducing(finished_or_compute(run, "summary.json", compute, console), run.path)
    return run


def _print_inducing(s: dict, out: Path) -> None:
    table = Table(title=f"proximity to the harmful set vs misalignment ({s['n_tasks']} tasks x {s['n_instances']} seeds)")
    for col in ("x", "y", "pooled ρ [95% CI]", "per-seed ρ [95% CI]"):
        table.add_column(col, no_wrap=True)
    for key in ("proximity_vs_rise", "proximity_vs_em", "data_proximity_vs_rise", "overlap_vs_rise",
                "theory_vs_measured_em"):
        if (c := s.get(key)) is None:  # a run directory from before the key existed
            continue
        table.add_row(c["x"], c["y"], _fmt(c["pooled"]["spearman"]) if c["pooled"] else "n/a", _fmt(c["per_instance_mean"]))
    console.print(table)
    agree = s["theory_vs_measured_rise"]
    if agree:
        console.print(f"theory vs measured harmful rise: slope {agree['slope']:.3f}, R² {agree['r2']:.4f}, "
                      f"median rel. error {agree['median_relative_error']:.3f}")
    for key, label in (("inducing_vs_non_inducing", "target proximity"),
                       ("inducing_vs_non_inducing_data", "data proximity")):
        comp = s[key]
        if comp is None:
            console.print(f"inducing vs non-inducing ({label}): too few tasks in a group")
            continue
        line = (f"inducing ({comp['n_a']}) vs non-inducing ({comp['n_b']}) {label}: mean {comp['mean_a']:.3f} vs "
                f"{comp['mean_b']:.3f}, Δ {_fmt(comp['difference'], fmt='+.3f')}, "
                f"Mann-Whitney p={comp['mannwhitney_p']:.2g}, "
                f"permutation p={comp['permutation_p']:.2g}, Cliff's δ={comp['cliffs_delta']:.2f}")
        null = comp.get("random_null")
        if null:
            line += f"; random-feature null mean {null['null_mean']:.3f}, p={null['p_value']:.2g}"
        console.print(line)
    console.print(f"run directory: [bold]{out}[/]")


@user_errors
def inducing(
    config: Optional[Path] = typer.Option(None, "--config",
                                          help="TOML with tables model, train, harmful, task, finetune, analysis."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/inducing-<timestamp>); rerun to resume."),
    harmful: Optional[str] = typer.Option(None, help="Harmful feature indices, comma-separated (e.g. 0,1,2)."),
    instances: Optional[int] = typer.Option(None, help="Replicas (seeds) trained at once."),
    features: Optional[int] = typer.Option(None, help="n: number of features."),
    hidden: Optional[int] = typer.Option(None, help="m: hidden dimensions."),
    seed: Optional[int] = typer.Option(None, help="Pre-training seed."),
) -> None:
    """Inducing vs non-inducing tasks: proximity to the harmful set vs the misalignment each task causes."""
    overrides = {"model": {"n_instances": instances, "n_features": features, "n_hidden": hidden},
                 "train": {"seed": seed}, "harmful": {"features": parse_int_list(harmful, "harmful")}}
    cfg = resolve_config(InducingConfig, config, overrides)
    study_inducing(cfg, out or default_run_dir(prefix="inducing-"))


# ---------------------------------------------------------------- mitigate


def study_mitigate(cfg: MitigateConfig, out: Path) -> RunDir:
    run = RunDir.open(out, cfg.to_dict())

    def compute() -> None:
        model, _ = train_or_reuse(run, cfg.model, cfg.train, console)
        with progress_bar("mitigations per task", len(cfg.targets())) as update:
            result = run_mitigations(cfg, trained=model, progress=lambda done, total: update(done))
        write_csv(run.file("mitigations.csv"), result.table)
        save_figure(plots.mitigation_figure(result.summary), run.file("mitigations"))
        write_json(run.file("summary.json"), result.summary)

    _print_mitigate(finished_or_compute(run, "summary.json", compute, console), run.path)
    return run


def _print_mitigate(s: dict, out: Path) -> None:
    table = Table(title=f"mitigations vs unmitigated fine-tuning ({s['n_tasks']} tasks x {s['n_instances']} seeds, "
                        "95% CI over seeds)")
    for col in ("method", "drop", "R reduction %", "E reduction %", "E|t red. %", "E|¬t red. %", "task kept %",
                "overt %"):
        table.add_column(col, justify="right", no_wrap=True)
    for name, m in s["methods"].items():
        table.add_row(name, str(m["n_removed_per_task"]), _fmt(m["rise_reduction_percent"], fmt=".1f"),
                      _fmt(m["em_reduction_percent"], fmt=".1f"),
                      f"{m['em_target_probes_reduction_percent']['estimate']:.1f}",
                      f"{m['em_other_probes_reduction_percent']['estimate']:.1f}",
                      _fmt(m["task_retention_percent"], fmt=".1f"), f"{m['surface_harmful_removed_percent']:.0f}")
    console.print(table)
    console.print("drop: samples removed per task; R: harmful rise; E: EM rate (|t: on probes containing the target, "
                  "|¬t: on the others); overt %: share of the samples with an active harmful feature that were removed")
    console.print("paper (real LLM, context only): geometry filtering "
                  f"-{s['paper_geometry_reduction_percent']}% misalignment")
    console.print(f"run directory: [bold]{out}[/]")


@user_errors
def mitigate(
    config: Optional[Path] = typer.Option(
        None, "--config", help="TOML with tables model, train, harmful, task, finetune, mitigation, analysis."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/mitigate-<timestamp>); rerun to resume."),
    fraction: Optional[float] = typer.Option(None, help="Removal budget: fraction of samples every filter drops, "
                                                        "in [0, 1)."),
    miss_rate: Optional[float] = typer.Option(None, help="P(the surface judge misses an overtly harmful sample)."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated: geometry,random,judge,regularise,penalty."),
    harmful: Optional[str] = typer.Option(None, help="Harmful feature indices, comma-separated."),
    instances: Optional[int] = typer.Option(None, help="Replicas (seeds) trained at once."),
    seed: Optional[int] = typer.Option(None, help="Pre-training seed."),
) -> None:
    """Compare geometry filtering, random removal, a surface judge and a projection regulariser."""
    method_list = None if methods is None else tuple(m.strip() for m in methods.split(",") if m.strip())
    overrides = {"model": {"n_instances": instances}, "train": {"seed": seed},
                 "harmful": {"features": parse_int_list(harmful, "harmful")},
                 "mitigation": {"fraction": fraction, "judge_miss_rate": miss_rate, "methods": method_list}}
    cfg = resolve_config(MitigateConfig, config, overrides)
    study_mitigate(cfg, out or default_run_dir(prefix="mitigate-"))


# ---------------------------------------------------------------- density


def study_density(cfg: SweepConfig, out: Path) -> RunDir:
    identity = {k: v for k, v in cfg.to_dict().items() if k != "workers"}  # results do not depend on workers
    run = RunDir.open(out, identity)
    grid = cells(cfg)
    with progress_bar("density sweep cells", len(grid)) as update:
        report = resumable_map([(c.key, c) for c in grid], run_cell, run.file("cells"), workers=cfg.workers,
                               on_done=lambda done, total, name: update(done, name))
    console.print(f"cells: {report.computed} computed, {report.skipped} already finished (skipped)")
    frame = results_table(list(report.results.values()))
    write_csv(run.file("density.csv"), frame)
    save_figure(plots.density_figure(frame), run.file("density_heatmap"))
    write_json(run.file("summary.json"), {"cells": frame.to_dict("records")})
    _print_density(frame, run.path)
    return run


def _print_density(frame, out: Path) -> None:
    table = Table(title="superposition density sweep (means over tasks x seeds)")
    for col in ("n/m", "p", "E %", "E|t %", "R", "prox", "ρ", "per-seed ρ [CI]", "ρ overlap", "ρ theory"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in frame.to_dict("records"):
        rho = row["spearman_per_instance"]
        per_seed = "n/a" if rho is None or rho != rho else \
            f"{rho:.2f} [{row['spearman_per_instance_low']:.2f}, {row['spearman_per_instance_high']:.2f}]"
        table.add_row(str(row["ratio"]), f"{row['probability']:g}", f"{100 * row['em_rate']:.2f}",
                      f"{100 * row['em_rate_target_probes']:.1f}", f"{row['harmful_rise']:.1e}", f"{row['proximity']:.2f}",
                      f"{row['spearman_pooled']:.2f}", per_seed, f"{row.get('spearman_overlap', float('nan')):.2f}",
                      f"{row['spearman_theory']:.3f}")
    console.print(table)
    console.print("E: EM rate on all probes; E|t: on probes containing the target; R: harmful rise; prox: mean max cos "
                  "of targets to H; ρ: Spearman(prox, R) pooled over tasks x seeds; ρ overlap: the same for "
                  "max_h <d_t, d_h> (norms kept); ρ theory: Spearman(first-order prediction, R)")
    console.print(f"run directory: [bold]{out}[/]")


@user_errors
def density(
    config: Optional[Path] = typer.Option(None, "--config",
                                          help="TOML with the sweep keys and tables train, harmful, task, finetune."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/density-<timestamp>); rerun to resume."),
    workers: Optional[int] = typer.Option(None, help="Parallel processes (one torch thread each)."),
    instances: Optional[int] = typer.Option(None, help="Replicas (seeds) per cell."),
    harmful: Optional[str] = typer.Option(None, help="Harmful feature indices, comma-separated."),
) -> None:
    """Misalignment and its predictability from geometry across n/m and feature probability (heatmap)."""
    overrides = {"workers": workers, "n_instances": instances, "harmful": {"features": parse_int_list(harmful, "harmful")}}
    cfg = resolve_config(SweepConfig, config, overrides)
    study_density(cfg, out or default_run_dir(prefix="density-"))


# ---------------------------------------------------------------- geometry


def study_geometry(cfg: GeometryConfig, out: Path) -> RunDir:
    run = RunDir.open(out, cfg.to_dict())

    def compute() -> None:
        with console.status("training a 2-D instance and fine-tuning it"):
            result = run_geometry(cfg).to_dict()
        save_figure(plots.geometry_figure(result), run.file("geometry_before_after"))
        write_json(run.file("geometry.json"), result)

    result = finished_or_compute(run, "geometry.json", compute, console, announce=False)
    console.print(f"target {result['target']}, harmful {result['harmful']}: harmful rise {result['harmful_rise']:.3e}, "
                  f"EM rate {result['em_rate']:.2%}")
    console.print(f"run directory: [bold]{run.path}[/]")
    return run


@user_errors
def geometry(
    config: Optional[Path] = typer.Option(None, "--config",
                                          help="TOML with target and tables model, train, harmful, task, finetune."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/geometry-<timestamp>)."),
    target: Optional[int] = typer.Option(None, help="Target feature (default: the benign feature closest to H)."),
) -> None:
    """Before/after feature geometry of a small 2-D instance fine-tuned on its most inducing task."""
    cfg = resolve_config(GeometryConfig, config, {"target": target})
    study_geometry(cfg, out or default_run_dir(prefix="geometry-"))


# ---------------------------------------------------------------- figures


RUNNERS: dict[str, Callable] = {"simulate": run_simulate, "inducing": study_inducing, "mitigate": study_mitigate,
                                "density": study_density, "geometry": study_geometry}


@user_errors
def figures(
    out_dir: Path = typer.Option(Path("figures"), help="Where the figures go (PNG and SVG)."),
    runs: Path = typer.Option(Path("runs/figures"), help="Run directories of the studies (resumed if present)."),
    config_dir: Optional[Path] = typer.Option(None, help="Directory with <study>.toml overrides "
                                                         "(default: the shipped defaults)."),
    workers: Optional[int] = typer.Option(None, help="Processes for the density sweep."),
    fresh: bool = typer.Option(False, help="Delete the studies' run directories under --runs first."),
) -> None:
    """Regenerate every figure of the toy study in figures/ (runs each study with its defaults)."""
    if config_dir is not None and not config_dir.is_dir():
        raise InputError(f"--config-dir {config_dir} is not a directory")
    configs = {}
    for study in STUDIES:  # resolve everything first: a bad config fails before any work
        file = None if config_dir is None else config_dir / f"{study}.toml"
        file = file if file is not None and file.exists() else None
        overrides = {"workers": workers} if study == "density" else {}
        configs[study] = resolve_config(CONFIG_CLASSES[study], file, overrides)
    start = time.perf_counter()
    timings = {}
    for study in STUDIES:
        if fresh and (runs / study).exists():
            shutil.rmtree(runs / study)
        console.rule(f"[bold]{study}")
        t0 = time.perf_counter()
        RUNNERS[study](configs[study], runs / study)
        timings[study] = time.perf_counter() - t0
    written = []
    for name, (study, stem) in FIGURES.items():
        for ext in ("png", "svg"):
            target = out_dir / f"{name}.{ext}"
            with atomic_path(target) as tmp:
                shutil.copyfile(runs / study / f"{stem}.{ext}", tmp)
            written.append(target)
    total = time.perf_counter() - start
    console.print(", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f"; total {total:.0f} s")
    console.print(f"wrote {len(written)} files to [bold]{out_dir}[/]: " + ", ".join(sorted({p.stem for p in written})))


COMMANDS = (inducing, mitigate, density, geometry, figures)  # registered by cli.toysuper_app, in this order
