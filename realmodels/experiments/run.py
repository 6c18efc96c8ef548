"""The skeleton every SAE-reading runner shares (``run_analysis``), in the order that makes bad input cheap:

1. the datasets were opened by the runner (``realmodels.data.dataset.Dataset``: every line checked, hashed);
2. the model opened as a ``Session``: names, paths, the layer against the model's config.json, the SAE's
   cfg.json, nothing loaded, nothing imported from torch;
3. for a new run, every conversation rendered and tokenised as the activations will read it (the tokenizer
   loads, no weights; the tokenisation is kept for the activations);
4. the run directory opened for the resolved config (or reopened to resume; a directory whose run never
   produced a result takes the new config, see ``release_unfinished``);
5. a finished run's saved summary returned as it is, else the runner's stages run and ``summary.json`` is written.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.experiments.spec import DEFAULT_CACHE, ModelSpec, RunOptions
from runio.atomic import json_default, read_json, write_json
from runio.console import console
from runio.jobs import set_threads
from runio.rundir import ALREADY_FINISHED, CONFIG_NAME, RunDir, default_run_dir
from theory.errors import InputError

if TYPE_CHECKING:
    from realmodels.data.dataset import Dataset
    from realmodels.loading.session import Session

SUMMARY = "summary.json"
Log = Callable[[str], None]  # prints one line (rich markup allowed); a runner's ``log`` argument


def recorded_config(path: Path) -> dict | None:
    """The config.json of the run in ``path`` (None when there is none or it is damaged)."""
    try:
        return read_json(path / CONFIG_NAME) if (path / CONFIG_NAME).is_file() else None
    except InputError:
        return None


def release_unfinished(path: Path, config: dict, cache_dir: Path, *, failures: tuple[Path, ...] = (),
                       idle: tuple[Path, ...] = (), log: Log = console.print) -> None:
    """Let a new config into ``path`` when the run there never produced a result: the directory holds only its
    config.json, activation caches (keyed by content, so they stay valid and are kept), ``failures`` (entries
    that only report a failure, e.g. a job's error file: removed) and ``idle`` entries (kept: e.g. a stage's run
    directory that produced nothing, which its own runner releases). Any other file is a (partial) result of the
    recorded config, which ``RunDir.open`` then refuses to mix with another."""
    existing = path / CONFIG_NAME
    if not existing.is_file() or recorded_config(path) == config:
        return
    keep = {existing.resolve(), (path / DEFAULT_CACHE).resolve(), Path(cache_dir).resolve(),
            *(Path(f).resolve() for f in (*failures, *idle))}
    if any(entry.resolve() not in keep and not entry.name.startswith(".") for entry in path.iterdir()):
        return
    log(f"[yellow]{path} holds only the config of a run that produced no result: starting the new run there "
        "(activation caches are kept)[/]")
    for failure in failures:
        if Path(failure).is_dir():
            shutil.rmtree(failure)
        elif Path(failure).exists():
            Path(failure).unlink()
    existing.unlink()


def holds_no_result(path: Path) -> bool:
    """Whether run directory ``path`` holds nothing but its config.json, activation or judge caches and hidden
    files (what a run that failed before its first result leaves)."""
    allowed = {CONFIG_NAME, DEFAULT_CACHE, "judge_cache"}
    return path.is_dir() and all(entry.name in allowed or entry.name.startswith(".") for entry in path.iterdir())


def finished_summary(run: RunDir, log: Log) -> dict | None:
    """The saved summary of a finished run (saying so), else None."""
    if not run.done(SUMMARY):
        return None
    log(ALREADY_FINISHED)
    return read_json(run.file(SUMMARY))


def resolved(config: dict) -> dict:
    """``config`` as its config.json holds it (paths as strings, tuples as lists)."""
    return json.loads(json.dumps(config, default=json_default))


def with_run_dir(command: str, options: RunOptions) -> RunOptions:
    """``options`` with ``out`` fixed (``runs/<command>-<timestamp>`` when not given), for a runner that opens a
    second session in the same run directory (its activation cache) before ``run_analysis``."""
    return options if options.out is not None else replace(options, out=default_run_dir(prefix=f"{command}-"))


@dataclass(frozen=True)
class Outcome:
    """A run skeleton's outcome: the run directory, its summary, and whether it was finished before (nothing was
    recomputed) rather than computed now."""

    run: RunDir
    summary: dict
    already_finished: bool


def run_analysis(command: str, model: ModelSpec, options: RunOptions, config: dict, datasets: list[Dataset],
                 compute: Callable[[Session, RunDir], dict], *, merge_adapter: bool = True,
                 resume_finished: bool = True, log: Log = console.print) -> Outcome:
    """Run ``compute`` (module docstring) in ``options.out`` (default runs/<command>-<timestamp>) for the config
    ``{"command", "model", **config}``, where ``datasets`` are the runner's opened datasets.

    ``resume_finished=False``: always compute (stages still resume from their cached files), for a runner whose
    outputs depend on options outside its config."""
    path = options.out or default_run_dir(prefix=f"{command}-")
    session = options.session(model, path, merge_adapter=merge_adapter)
    set_threads(options.threads)
    full = resolved({"command": command, "model": session.choice.to_config(), **config})
    if recorded_config(path) != full:  # a new run: its conversations were never tokenised
        session.check_datasets(datasets)
        release_unfinished(path, full, options.cache_path(path), log=log)
    run = RunDir.open(path, full)
    if resume_finished and (summary := finished_summary(run, log)) is not None:
        session.close()
        return Outcome(run, summary, True)
    try:
        summary = compute(session, run)
    finally:
        session.close()  # a Ray pool of model workers, if any, stops here (also on an error or Ctrl-C)
    write_json(run.file(SUMMARY), summary)
    return Outcome(run, summary, False)
