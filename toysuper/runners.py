"""The toy experiments as functions to call from Python (the ``toysuper`` commands are a thin shell around them):
``run_simulate``, ``run_inducing``, ``run_mitigate``, ``run_density``, ``run_geometry`` and ``run_figures``.

Each takes its config (the dataclass; a mapping of overrides of its defaults, nested tables as dicts; or None for
the defaults) and a run directory ``out`` (default runs/<study>-<timestamp>). It checks every input before it
writes anything, opens the run directory (or reopens it to resume: work already saved there is not redone, and a
different config there is an InputError), computes what is missing, writes each file atomically and returns a
``toysuper.runs.ToyRun``: the run directory, its summary, its tables as DataFrames, its figures. Messages go to
``log`` (the ``print`` of ``runio.console.console`` by default); the long loops show a rich progress bar.

    >>> from toysuper.runners import run_simulate
    >>> run = run_simulate({"model": {"n_features": 6, "n_hidden": 2}, "train": {"steps": 100}}, "runs/sim")
    >>> run.summary["agreement_preactivation"]["r2"], run.table("amplification").head()
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from runio.atomic import atomic_path, save_figure, write_csv, write_json
from runio.console import Log, console, progress_bar
from runio.jobs import check_reachable, resumable_map
from runio.rundir import RunDir
from theory.errors import ParamError
from toysuper.config import SimulateConfig
from toysuper.em import geometry, inducing, mitigate, plots, sweep
from toysuper.em.config import GeometryConfig, InducingConfig, MitigateConfig, SweepConfig
from toysuper.plotting import amplification_figure
from toysuper.runs import SUMMARY, ToyRun, finished_or_compute, resolve, run_path, train_or_reuse
from toysuper.simulate import simulate


class SimulateRun(ToyRun):
    """``amplification``: measured vs predicted amplification per instance and feature (and its figure)."""
    TABLES = FIGURES = ("amplification",)


class InducingRun(ToyRun):
    """``tasks``: one row per task x seed; figures of proximity vs misalignment and inducing vs non-inducing."""
    TABLES = ("tasks",)
    FIGURES = ("proximity_vs_misalignment", "inducing_vs_non_inducing")


class MitigateRun(ToyRun):
    """``mitigations``: one row per task x seed x method (and its figure)."""
    TABLES = FIGURES = ("mitigations",)


@dataclass
class DensityRun(ToyRun):
    """``density``: one row per grid cell (and its heatmap); ``computed``/``skipped``: cells this call computed,
    cells already finished in the run directory."""
    computed: int = 0
    skipped: int = 0
    TABLES = ("density",)
    FIGURES = ("density_heatmap",)


class GeometryRun(ToyRun):
    """``summary``: what geometry.json holds (directions before and after, changes, R, E); one figure."""
    FIGURES = ("geometry_before_after",)


def run_simulate(config: SimulateConfig | Mapping | None = None, out: str | Path | None = None, *,
                 log: Log = console.print) -> SimulateRun:
    """Train a toy model, fine-tune it on a narrow task, compare measured with first-order predicted
    amplification: ``amplification.csv``, its figure and ``summary.json`` in ``out``."""
    config = resolve(SimulateConfig, config)
    run = RunDir.open(run_path(out, "simulate"), config.to_dict())

    def compute() -> None:
        trained, training = train_or_reuse(run, config.model, config.train, log)
        result = replace(simulate(config, trained=trained), train=training)
        table = result.amplification.table()
        write_csv(run.file("amplification.csv"), table)
        save_figure(amplification_figure(table, target=config.finetune.target,
                                         probabilities=config.model.feature_probabilities()), run.file("amplification"))
        write_json(run.file(SUMMARY), result.summary())

    return SimulateRun(run.path, *finished_or_compute(run, SUMMARY, compute, log))


def run_inducing(config: InducingConfig | Mapping | None = None, out: str | Path | None = None, *,
                 log: Log = console.print) -> InducingRun:
    """Inducing vs non-inducing tasks (``toysuper.em.inducing``): ``tasks.csv``, two figures, ``summary.json``."""
    config = resolve(InducingConfig, config)
    run = RunDir.open(run_path(out, "inducing"), config.to_dict())

    def compute() -> None:
        model, _ = train_or_reuse(run, config.model, config.train, log)
        with progress_bar("fine-tuning tasks", config.model.n_features - len(config.harmful.features)) as update:
            result = inducing.run_inducing(config, trained=model, progress=lambda done, total: update(done))
        write_csv(run.file("tasks.csv"), result.table)
        save_figure(plots.proximity_figure(result.table, result.summary), run.file("proximity_vs_misalignment"))
        save_figure(plots.inducing_figure(result.table, result.summary), run.file("inducing_vs_non_inducing"))
        write_json(run.file(SUMMARY), result.summary)

    return InducingRun(run.path, *finished_or_compute(run, SUMMARY, compute, log))


def run_mitigate(config: MitigateConfig | Mapping | None = None, out: str | Path | None = None, *,
                 log: Log = console.print) -> MitigateRun:
    """The mitigations at one removal budget (``toysuper.em.mitigate``): ``mitigations.csv``, its figure,
    ``summary.json``."""
    config = resolve(MitigateConfig, config)
    run = RunDir.open(run_path(out, "mitigate"), config.to_dict())

    def compute() -> None:
        model, _ = train_or_reuse(run, config.model, config.train, log)
        with progress_bar("mitigations per task", len(config.targets())) as update:
            result = mitigate.run_mitigations(config, trained=model, progress=lambda done, total: update(done))
        write_csv(run.file("mitigations.csv"), result.table)
        save_figure(plots.mitigation_figure(result.summary), run.file("mitigations"))
        write_json(run.file(SUMMARY), result.summary)

    return MitigateRun(run.path, *finished_or_compute(run, SUMMARY, compute, log))


def density_jobs(grid: list) -> list[tuple[str, object]]:
    """(key, cell) jobs, the most features first: the last cells to start are the short ones, so no worker waits
    long on another at the end (the table is sorted by ratio and probability whatever the order)."""
    return [(c.key, c) for c in sorted(grid, key=lambda c: -c.n_features)]


def run_density(config: SweepConfig | Mapping | None = None, out: str | Path | None = None, *,
                workers: int | None = None, ray_address: str | None = None, log: Log = console.print) -> DensityRun:
    """The superposition-density sweep (``toysuper.em.sweep``): its cells are jobs of
    ``runio.jobs.resumable_map``, one JSON each under ``cells/`` (``workers`` at once, default ``config.workers``;
    on the Ray cluster at ``ray_address`` if given); then ``density.csv``, the heatmap and ``summary.json``."""
    config = resolve(SweepConfig, config)
    config = config if workers is None else replace(config, workers=workers)
    check_reachable(ray_address)
    identity = {k: v for k, v in config.to_dict().items() if k != "workers"}  # results do not depend on workers
    run, grid = RunDir.open(run_path(out, "density"), identity), sweep.cells(config)
    with progress_bar("density sweep cells", len(grid)) as update:
        report = resumable_map(density_jobs(grid), sweep.run_cell, run.file("cells"), workers=config.workers,
                               ray_address=ray_address, on_done=lambda done, total, name: update(done, name))
    log(f"cells: {report.computed} computed, {report.skipped} already finished (skipped)")
    frame = sweep.results_table(list(report.results.values()))
    write_csv(run.file("density.csv"), frame)
    save_figure(plots.density_figure(frame), run.file("density_heatmap"))
    summary = sweep.summary(frame)
    write_json(run.file(SUMMARY), summary)
    return DensityRun(run.path, summary, report.computed == 0, report.computed, report.skipped)


def run_geometry(config: GeometryConfig | Mapping | None = None, out: str | Path | None = None, *,
                 log: Log = console.print) -> GeometryRun:
    """Before/after geometry of a 2-D instance (``toysuper.em.geometry``): ``geometry.json`` and its figure."""
    config = resolve(GeometryConfig, config)
    run = RunDir.open(run_path(out, "geometry"), config.to_dict())

    def compute() -> None:
        with console.status("training a 2-D instance and fine-tuning it"):
            result = geometry.run_geometry(config).to_dict()
        save_figure(plots.geometry_figure(result), run.file("geometry_before_after"))
        write_json(run.file("geometry.json"), result)

    return GeometryRun(run.path, *finished_or_compute(run, "geometry.json", compute, log, announce=False))


RUNNERS: dict[str, Callable[..., ToyRun]] = {"simulate": run_simulate, "inducing": run_inducing,
                                             "mitigate": run_mitigate, "density": run_density,
                                             "geometry": run_geometry}
CONFIGS = {"simulate": SimulateConfig, "inducing": InducingConfig, "mitigate": MitigateConfig,
           "density": SweepConfig, "geometry": GeometryConfig}
FIGURES = {  # figures/ name -> (study, file stem in its run directory)
    "amplification": ("simulate", "amplification"),
    "em_proximity_vs_misalignment": ("inducing", "proximity_vs_misalignment"),
    "em_inducing_vs_non_inducing": ("inducing", "inducing_vs_non_inducing"),
    "em_mitigations": ("mitigate", "mitigations"),
    "em_density_heatmap": ("density", "density_heatmap"),
    "em_geometry_before_after": ("geometry", "geometry_before_after"),
}


@dataclass
class FiguresRun:
    """``written``: the files copied into ``out_dir``; ``runs``: each study's run; ``timings``: seconds per study;
    ``total_seconds``: the whole call."""
    out_dir: Path
    written: list[Path]
    runs: dict[str, ToyRun]
    timings: dict[str, float]
    total_seconds: float


def run_figures(configs: Mapping[str, object] | None = None, out_dir: str | Path = "figures",
                runs: str | Path = "runs/figures", *, fresh: bool = False, ray_address: str | None = None,
                log: Log = console.print, on_start: Callable[[str], None] | None = None,
                on_done: Callable[[str, ToyRun], None] | None = None) -> FiguresRun:
    """Run every study (``configs``: study -> its config as the runners take it, defaults for the studies not
    given) in ``runs``/<study> (deleted first if ``fresh``, else resumed) and copy the figures into ``out_dir``
    (PNG and SVG; the density sweep on the Ray cluster at ``ray_address``, if given). Every config is checked
    before any work. ``on_start(study)`` (default: ``log`` the study's name) and ``on_done(study, run)`` are
    called around each study."""
    configs = dict(configs or {})
    if unknown := sorted(set(configs) - set(RUNNERS)):
        raise ParamError(f"`configs` has no study {unknown[0]!r} (studies: {', '.join(RUNNERS)})")
    resolved = {study: resolve(CONFIGS[study], configs.get(study)) for study in RUNNERS}
    check_reachable(ray_address)
    out_dir, runs, start = Path(out_dir), Path(runs), time.perf_counter()
    results, timings = {}, {}
    for study, config in resolved.items():
        if fresh and (runs / study).exists():
            shutil.rmtree(runs / study)
        (on_start or (lambda name: log(f"[bold]{name}[/]")))(study)
        t0 = time.perf_counter()
        extra = {"ray_address": ray_address} if study == "density" else {}
        results[study] = RUNNERS[study](config, runs / study, log=log, **extra)
        timings[study] = time.perf_counter() - t0
        if on_done is not None:
            on_done(study, results[study])
    written = []
    for name, (study, stem) in FIGURES.items():
        for ext in ("png", "svg"):
            target = out_dir / f"{name}.{ext}"
            with atomic_path(target) as tmp:
                shutil.copyfile(runs / study / f"{stem}.{ext}", tmp)
            written.append(target)
    return FiguresRun(out_dir, written, results, timings, time.perf_counter() - start)
