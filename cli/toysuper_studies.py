"""``toysuper`` commands of the emergent-misalignment toy study: ``inducing``, ``mitigate``, ``density``,
``geometry`` and ``figures`` (every figure in figures/, including ``simulate``'s). Each reads its defaults from
the dataclass configs (``toysuper.em.config``, mirrored in toysuper/configs/<study>.toml), then a --config
TOML, then flags (``cli.configfile.resolve_config``; each flag's help ends with the config's default), and
validates all of it before calling the work (``toysuper.runners``; rerun with the same --out to resume) and
printing its result (``cli.toysuper_tables``). ``cli.toysuper_app`` registers ``COMMANDS``, not imported here."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.configfile import config_default, config_option, resolve_config
from cli.errors import user_errors
from cli.jobs_options import RayAddress, check_reachable
from cli.threads import DEFAULT_THREADS, Threads, set_threads
from theory.errors import InputError
from toysuper.config import SimulateConfig
from toysuper.em.config import GeometryConfig, InducingConfig, MitigateConfig, SweepConfig

STUDIES = ("simulate", "inducing", "mitigate", "density", "geometry")
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


def _run(study: str, config, out: Optional[Path], threads: int, **extra) -> None:
    """Set the threads of a validated ``config``, run ``study`` into ``out`` (default runs/<study>-<time>), print it."""
    set_threads(threads)
    from cli.toysuper_tables import show
    from toysuper.runners import RUNNERS  # the work: torch, pandas, matplotlib

    show(study, RUNNERS[study](config, out, **extra))


@user_errors
def inducing(
    config: Optional[Path] = typer.Option(None, "--config",
                                          help="TOML with tables model, train, harmful, task, finetune, analysis."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/inducing-<timestamp>); rerun to resume."),
    harmful: Optional[str] = config_option(InducingConfig, "harmful.features",
                                           "Harmful feature indices, comma-separated (e.g. 0,1,2)."),
    instances: Optional[int] = config_option(InducingConfig, "model.n_instances", "Replicas (seeds) trained at once."),
    features: Optional[int] = config_option(InducingConfig, "model.n_features", "n: number of features."),
    hidden: Optional[int] = config_option(InducingConfig, "model.n_hidden", "m: hidden dimensions."),
    seed: Optional[int] = config_option(InducingConfig, "train.seed", "Pre-training seed."),
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Inducing vs non-inducing tasks: proximity to the harmful set vs the misalignment each task causes."""
    overrides = {"model": {"n_instances": instances, "n_features": features, "n_hidden": hidden},
                 "train": {"seed": seed}, "harmful": {"features": parse_int_list(harmful, "harmful")}}
    _run("inducing", resolve_config(InducingConfig, config, overrides), out, threads)


@user_errors
def mitigate(
    config: Optional[Path] = typer.Option(
        None, "--config", help="TOML with tables model, train, harmful, task, finetune, mitigation, analysis."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/mitigate-<timestamp>); rerun to resume."),
    fraction: Optional[float] = config_option(MitigateConfig, "mitigation.fraction",
                                              "Removal budget: fraction of samples every filter drops, in [0, 1)."),
    miss_rate: Optional[float] = config_option(MitigateConfig, "mitigation.judge_miss_rate",
                                               "P(the surface judge misses an overtly harmful sample)."),
    methods: Optional[str] = config_option(MitigateConfig, "mitigation.methods",
                                           "Comma-separated: geometry,random,judge,regularise,penalty."),
    harmful: Optional[str] = config_option(MitigateConfig, "harmful.features", "Harmful feature indices, comma-separated."),
    instances: Optional[int] = config_option(MitigateConfig, "model.n_instances", "Replicas (seeds) trained at once."),
    seed: Optional[int] = config_option(MitigateConfig, "train.seed", "Pre-training seed."),
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Compare geometry filtering, random removal, a surface judge and a projection regulariser."""
    method_list = None if methods is None else tuple(m.strip() for m in methods.split(",") if m.strip())
    overrides = {"model": {"n_instances": instances}, "train": {"seed": seed},
                 "harmful": {"features": parse_int_list(harmful, "harmful")},
                 "mitigation": {"fraction": fraction, "judge_miss_rate": miss_rate, "methods": method_list}}
    _run("mitigate", resolve_config(MitigateConfig, config, overrides), out, threads)


@user_errors
def density(
    config: Optional[Path] = typer.Option(None, "--config",
                                          help="TOML with the sweep keys and tables train, harmful, task, finetune."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/density-<timestamp>); rerun to resume."),
    workers: Optional[int] = config_option(SweepConfig, "workers", "Cells computed at once (a local Ray with this "
                                           "many CPUs, one torch thread each; 1: in this process)."),
    instances: Optional[int] = config_option(SweepConfig, "n_instances", "Replicas (seeds) per cell."),
    harmful: Optional[str] = config_option(SweepConfig, "harmful.features", "Harmful feature indices, comma-separated."),
    ray_address: RayAddress = None,
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Misalignment and its predictability from geometry across n/m and feature probability (heatmap). The
    sweep's cells use one torch thread per worker, whatever --threads says."""
    check_reachable(ray_address)
    overrides = {"workers": workers, "n_instances": instances, "harmful": {"features": parse_int_list(harmful, "harmful")}}
    _run("density", resolve_config(SweepConfig, config, overrides), out, threads, ray_address=ray_address)


@user_errors
def geometry(
    config: Optional[Path] = typer.Option(None, "--config",
                                          help="TOML with target and tables model, train, harmful, task, finetune."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/geometry-<timestamp>)."),
    target: Optional[int] = typer.Option(None, help="Target feature (default: the benign feature closest to H)."),
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Before/after feature geometry of a small 2-D instance fine-tuned on its most inducing task."""
    _run("geometry", resolve_config(GeometryConfig, config, {"target": target}), out, threads)


@user_errors(flags={"out": "--runs"})
def figures(
    out_dir: Path = typer.Option(Path("figures"), help="Where the figures go (PNG and SVG)."),
    runs: Path = typer.Option(Path("runs/figures"), help="Run directories of the studies (resumed if present)."),
    config_dir: Optional[Path] = typer.Option(None, help="Directory with <study>.toml overrides "
                                                         "(default: the shipped defaults)."),
    workers: Optional[int] = typer.Option(None, help="Cells of the density sweep computed at once."
                                                     + config_default(SweepConfig, "workers")),
    fresh: bool = typer.Option(False, help="Delete the studies' run directories under --runs first."),
    ray_address: RayAddress = None,
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Regenerate every figure of the toy study in figures/ (runs each study with its defaults)."""
    check_reachable(ray_address)
    if config_dir is not None and not config_dir.is_dir():
        raise InputError(f"--config-dir {config_dir} is not a directory")
    configs = {}
    for study in STUDIES:  # resolve everything first: a bad config fails before any work
        file = None if config_dir is None else config_dir / f"{study}.toml"
        file = file if file is not None and file.exists() else None
        overrides = {"workers": workers} if study == "density" else {}
        configs[study] = resolve_config(CONFIG_CLASSES[study], file, overrides)
    set_threads(threads)
    from cli.toysuper_tables import print_figures, rule, show
    from toysuper.runners import run_figures  # the work: torch, pandas, matplotlib

    print_figures(run_figures(configs, out_dir, runs, fresh=fresh, ray_address=ray_address, on_start=rule, on_done=show))


COMMANDS = (inducing, mitigate, density, geometry, figures)  # registered by cli.toysuper_app, in this order
