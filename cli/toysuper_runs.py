"""The work of every ``toysuper`` command for a resolved config: open (or resume) the run directory, compute
what is missing, write it atomically, print the summary. ``cli.toysuper_simulate`` and ``cli.toysuper_studies``
(the typer commands) import this module only after the config is valid, so a bad flag fails before torch,
pandas and matplotlib load. Undefined values in a summary are null and print as n/a."""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from rich.table import Table

from cli.progress import progress_bar, stdout_console
from cli.toyrun import finished_or_compute, train_or_reuse
from runio.atomic import atomic_path, save_figure, write_csv, write_json
from runio.jobs import resumable_map
from runio.rundir import RunDir
from toysuper.config import SimulateConfig
from toysuper.em import plots
from toysuper.em.config import GeometryConfig, InducingConfig, MitigateConfig, SweepConfig
from toysuper.em.geometry import run_geometry
from toysuper.em.inducing import run_inducing
from toysuper.em.mitigate import run_mitigations
from toysuper.em.sweep import cells, results_table, run_cell, summary as sweep_summary
from toysuper.plotting import amplification_figure
from toysuper.simulate import simulate as run_simulation

console = stdout_console()
FIGURES = {  # figures/ name -> (study, file stem in its run directory)
    "amplification": ("simulate", "amplification"),
    "em_proximity_vs_misalignment": ("inducing", "proximity_vs_misalignment"),
    "em_inducing_vs_non_inducing": ("inducing", "inducing_vs_non_inducing"),
    "em_mitigations": ("mitigate", "mitigations"),
    "em_density_heatmap": ("density", "density_heatmap"),
    "em_geometry_before_after": ("geometry", "geometry_before_after"),
}


def _num(value, spec: str) -> str:
    """``value`` formatted, or n/a when undefined (None, NaN)."""
    return "n/a" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def _fmt(interval: dict | None, scale: float = 1.0, fmt: str = ".2f") -> str:
    if interval is None or interval["estimate"] is None:
        return "n/a"
    low, high = (_num(None if interval[k] is None else interval[k] * scale, fmt) for k in ("low", "high"))
    return f"{interval['estimate'] * scale:{fmt}} [{low}, {high}]"


def _print_notes(summary: dict) -> None:
    for note in summary.get("notes", ()):
        console.print(f"note: {note}")


# ---------------------------------------------------------------- simulate


def run_simulate(config: SimulateConfig, out: Path) -> RunDir:
    """Run (or resume, or show the finished) ``simulate`` experiment in run directory ``out``."""
    run = RunDir.open(out, config.to_dict())

    def compute() -> None:
        trained, training = train_or_reuse(run, config.model, config.train, console)
        result = replace(run_simulation(config, trained=trained), train=training)
        table = result.amplification.table()
        write_csv(run.file("amplification.csv"), table)
        fig = amplification_figure(table, target=config.finetune.target,
                                   probabilities=config.model.feature_probabilities())
        save_figure(fig, run.file("amplification"))
        write_json(run.file("summary.json"), result.summary())

    _print_simulate(finished_or_compute(run, "summary.json", compute, console), run.path)
    return run


def _print_simulate(summary: dict, out: Path) -> None:
    table = Table(title="predicted vs measured amplification (non-target features, all instances)")
    for col in ("quantity", "slope", "R²", "Spearman", "max rel. error", "median rel. error"):
        table.add_column(col, justify="right")
    for name, key in (("pre-activation Δz", "agreement_preactivation"), ("output Δx̂ (ReLU)", "agreement_output")):
        a = summary[key]
        table.add_row(name, _num(a["slope"], ".3f"), _num(a["r2"], ".4f"), _num(a["spearman"], ".4f"),
                      _num(a["max_relative_error"], ".3g"), _num(a["median_relative_error"], ".3g"))
    console.print(table)
    top = Table(title=f"top amplified features (target {summary['target']})")
    for col in ("instance", "feature", "cos to target", "predicted", "measured"):
        top.add_column(col, justify="right")
    for row in summary["top_amplified"][:8]:
        top.add_row(str(row["instance"]), str(row["feature"]), f"{row['similarity']:+.3f}",
                    f"{row['predicted']:+.4g}", f"{row['measured']:+.4g}")
    console.print(top)
    _print_notes(summary)
    console.print(f"run directory: [bold]{out}[/]")


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
        console.print(f"theory vs measured harmful rise: slope {_num(agree['slope'], '.3f')}, "
                      f"R² {_num(agree['r2'], '.4f')}, median rel. error {_num(agree['median_relative_error'], '.3f')}")
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
                      _num(m["em_target_probes_reduction_percent"]["estimate"], ".1f"),
                      _num(m["em_other_probes_reduction_percent"]["estimate"], ".1f"),
                      _fmt(m["task_retention_percent"], fmt=".1f"), f"{m['surface_harmful_removed_percent']:.0f}")
    console.print(table)
    console.print("drop: samples removed per task; R: harmful rise; E: EM rate (|t: on probes containing the target, "
                  "|¬t: on the others); overt %: share of the samples with an active harmful feature that were removed")
    console.print("paper (real LLM, context only): geometry filtering "
                  f"-{s['paper_geometry_reduction_percent']}% misalignment")
    _print_notes(s)
    console.print(f"run directory: [bold]{out}[/]")


# ---------------------------------------------------------------- density


def density_jobs(grid: list) -> list[tuple[str, object]]:
    """(key, cell) jobs, the most features first: the last cells to start are the short ones, so no worker waits
    long on another at the end (the table is sorted by ratio and probability whatever the order)."""
    return [(c.key, c) for c in sorted(grid, key=lambda c: -c.n_features)]


def study_density(cfg: SweepConfig, out: Path, *, ray_address: str | None = None) -> RunDir:
    """The sweep's cells are jobs of ``runio.jobs.resumable_map`` (``cfg.workers`` at once; on the Ray cluster at
    ``ray_address`` if given), one JSON each under ``cells/``."""
    identity = {k: v for k, v in cfg.to_dict().items() if k != "workers"}  # results do not depend on workers
    run = RunDir.open(out, identity)
    grid = cells(cfg)
    with progress_bar("density sweep cells", len(grid)) as update:
        report = resumable_map(density_jobs(grid), run_cell, run.file("cells"), workers=cfg.workers,
                               ray_address=ray_address, on_done=lambda done, total, name: update(done, name))
    console.print(f"cells: {report.computed} computed, {report.skipped} already finished (skipped)")
    frame = results_table(list(report.results.values()))
    write_csv(run.file("density.csv"), frame)
    save_figure(plots.density_figure(frame), run.file("density_heatmap"))
    summary = sweep_summary(frame)
    write_json(run.file("summary.json"), summary)
    _print_density(frame, run.path)
    _print_notes(summary)
    return run


def _print_density(frame, out: Path) -> None:
    table = Table(title="superposition density sweep (means over tasks x seeds)")
    for col in ("n/m", "p", "E %", "E|t %", "R", "prox", "ρ", "per-seed ρ [CI]", "ρ overlap", "ρ theory"):
        table.add_column(col, justify="right", no_wrap=True)
    for row in frame.to_dict("records"):
        rho = row["spearman_per_instance"]
        per_seed = "n/a" if _num(rho, ".2f") == "n/a" else \
            f"{rho:.2f} [{row['spearman_per_instance_low']:.2f}, {row['spearman_per_instance_high']:.2f}]"
        table.add_row(str(row["ratio"]), f"{row['probability']:g}", f"{100 * row['em_rate']:.2f}",
                      f"{100 * row['em_rate_target_probes']:.1f}", f"{row['harmful_rise']:.1e}", f"{row['proximity']:.2f}",
                      _num(row["spearman_pooled"], ".2f"), per_seed, _num(row.get("spearman_overlap"), ".2f"),
                      _num(row["spearman_theory"], ".3f"))
    console.print(table)
    console.print("E: EM rate on all probes; E|t: on probes containing the target; R: harmful rise; prox: mean max cos "
                  "of targets to H; ρ: Spearman(prox, R) pooled over tasks x seeds; ρ overlap: the same for "
                  "max_h <d_t, d_h> (norms kept); ρ theory: Spearman(first-order prediction, R)")
    console.print(f"run directory: [bold]{out}[/]")


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


# ---------------------------------------------------------------- figures


RUNNERS: dict[str, Callable] = {"simulate": run_simulate, "inducing": study_inducing, "mitigate": study_mitigate,
                                "density": study_density, "geometry": study_geometry}


def run_figures(configs: dict, out_dir: Path, runs: Path, *, fresh: bool, ray_address: str | None = None) -> None:
    """Run every study of ``configs`` (study -> resolved config, in order) under ``runs`` and copy the figures
    into ``out_dir`` (the density sweep on the Ray cluster at ``ray_address``, if given)."""
    start = time.perf_counter()
    timings = {}
    for study, config in configs.items():
        if fresh and (runs / study).exists():
            shutil.rmtree(runs / study)
        console.rule(f"[bold]{study}")
        t0 = time.perf_counter()
        extra = {"ray_address": ray_address} if study == "density" else {}
        RUNNERS[study](config, runs / study, **extra)
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
