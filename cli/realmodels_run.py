"""The skeleton every ``realmodels`` analysis command shares (``run_command``), in the order that makes bad
input cheap:

1. the model options opened as a ``Session``: names, paths, the layer against the model's config.json, the
   SAE's cfg.json (the commands have already checked every line of every dataset), nothing loaded, nothing
   imported from torch;
2. for a new run, every conversation rendered and tokenised as the activations will be (the tokenizer loads,
   no weights);
3. the run directory opened for the resolved config (or reopened to resume; a directory whose run never
   produced a result takes the new config, see ``release_unfinished``);
4. a finished run's saved summary shown, else the command's stages run and ``summary.json`` written and shown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Self

from cli.jobs_options import check_gpus, check_reachable, check_workers
from cli.progress import ALREADY_FINISHED
from cli.realmodels_inputs import dataset_file
from cli.realmodels_options import check_count, check_max_length
from cli.realmodels_tables import console
from cli.threads import check_threads, set_threads
from runio.atomic import json_default, read_json, write_json
from runio.rundir import CONFIG_NAME, RunDir, default_run_dir
from theory.errors import InputError

if TYPE_CHECKING:
    from realmodels.loading.session import Session

SUMMARY = "summary.json"
DEFAULT_CACHE = "activations"  # --cache-dir default, below --out
Show = Callable[[dict, Path], None]


@dataclass(frozen=True)
class ModelOptions:
    """The model and run options common to the analysis commands (see their ``--help``)."""

    checkpoint: str | None
    model: str | None
    sae: Path | None
    layer: int | None
    dtype: str
    device_map: str | None
    batch_size: int
    cache_dir: Path | None
    chat_template: Path | None
    max_length: int | None
    ignore_memory_check: bool
    threads: int
    out: Path | None
    progress: bool
    adapter: Path | None = None
    workers: int = 1  # model workers computing activations: 1 in this process, else Ray actors (realmodels.data.pool)
    ray_address: str | None = None
    num_gpus_per_worker: float = 0.0

    @classmethod
    def from_command(cls, params: dict, **rest) -> Self:
        """The options from a command's parameters: the fields without a default (every model command has them,
        under these names) taken from ``params`` (the command's ``locals()``) by name; the others (adapter,
        workers, ...) and any override passed as ``rest``."""
        common = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        return cls(**{**{name: params[name] for name in common}, **rest})

    def __post_init__(self):
        check_threads(self.threads)  # before any heavy import, with the other option checks
        check_count(self.batch_size, "--batch-size")
        check_max_length(self.max_length)
        if self.layer is not None:
            check_count(self.layer, "--layer", minimum=0)
        check_workers(self.workers)
        check_reachable(self.ray_address)
        check_gpus(self.num_gpus_per_worker)
        if self.num_gpus_per_worker > 0 and not self.on_ray:
            raise InputError("--num-gpus-per-worker is for Ray workers (--workers > 1 or --ray-address); in this "
                             "process the model goes where --device-map puts it")

    def specs(self):
        """The library's (``ModelSpec``, ``RunOptions``) of these options."""
        from realmodels.experiments.spec import ModelSpec, RunOptions

        model = ModelSpec(checkpoint=self.checkpoint, model=self.model, sae=self.sae, layer=self.layer,
                          dtype=self.dtype, device_map=self.device_map, batch_size=self.batch_size,
                          chat_template=self.chat_template, max_length=self.max_length, adapter=self.adapter,
                          ignore_memory_check=self.ignore_memory_check)
        return model, RunOptions(out=self.out, cache_dir=self.cache_dir, threads=self.threads, progress=self.progress,
                                 workers=self.workers, ray_address=self.ray_address,
                                 num_gpus_per_worker=self.num_gpus_per_worker)

    @property
    def on_ray(self) -> bool:
        """Activations computed by Ray actors (``realmodels.data.pool``) rather than this process."""
        return self.workers > 1 or self.ray_address is not None

    def cache_path(self, run_path: Path) -> Path:
        return self.cache_dir if self.cache_dir is not None else run_path / DEFAULT_CACHE

    def session(self, run_path: Path, *, merge_adapter: bool = True) -> Session:
        """A ``Session`` on the chosen model (+ ``--adapter``, merged into its weights unless ``merge_adapter`` is
        False); activations are cached in ``--cache-dir`` or the run's ``activations/``. Every model option is
        checked here (the device map and the adapter too), nothing is loaded. With ``--workers N`` > 1 or
        ``--ray-address`` the activations are computed by Ray actors (started at the first dataset not cached,
        stopped by ``Session.close``)."""
        from realmodels.loading.session import ModelChoice, Session

        choice = ModelChoice(checkpoint=self.checkpoint, model=self.model,
                             sae=None if self.sae is None else str(self.sae), layer=self.layer, dtype=self.dtype,
                             chat_template=None if self.chat_template is None else str(self.chat_template),
                             max_length=self.max_length, adapter=None if self.adapter is None else str(self.adapter))
        pool = None
        if self.on_ray:
            from realmodels.data.pool import ActivationPool

            pool = ActivationPool(self.workers, self.ray_address, self.num_gpus_per_worker, self.threads)
        return Session(choice, device_map=self.device_map, batch_size=self.batch_size,
                       cache_dir=self.cache_path(run_path), progress=self.progress,
                       ignore_memory_check=self.ignore_memory_check, merge_adapter=merge_adapter, shard_runner=pool)


def recorded_config(path: Path) -> dict | None:
    """The config.json of the run in ``path`` (None when there is none or it is damaged)."""
    try:
        return read_json(path / CONFIG_NAME) if (path / CONFIG_NAME).is_file() else None
    except InputError:
        return None


def release_unfinished(path: Path, config: dict, cache_dir: Path, *, failures: tuple[Path, ...] = (),
                       idle: tuple[Path, ...] = ()) -> None:
    """Let a new config into ``path`` when the run there never produced a result: the directory holds only its
    config.json, activation caches (keyed by content, so they stay valid and are kept), ``failures`` (entries
    that only report a failure, e.g. a job's error file: removed) and ``idle`` entries (kept: e.g. a stage's run
    directory that produced nothing, which its own command releases). Any other file is a (partial) result of the
    recorded config, which ``RunDir.open`` then refuses to mix with another."""
    import shutil

    existing = path / CONFIG_NAME
    if not existing.is_file() or recorded_config(path) == config:
        return
    keep = {existing.resolve(), (path / DEFAULT_CACHE).resolve(), Path(cache_dir).resolve(),
            *(Path(f).resolve() for f in (*failures, *idle))}
    if any(entry.resolve() not in keep and not entry.name.startswith(".") for entry in path.iterdir()):
        return
    console.print(f"[yellow]{path} holds only the config of a run that produced no result: starting the new run "
                  "there (activation caches are kept)[/]")
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


def _dataset_paths(data: dict) -> Iterator[Path]:
    """The path of every dataset entry (``{"path", "sha256"}``) in a config's ``data`` table."""
    for value in data.values():
        if isinstance(value, dict) and "sha256" in value:
            yield Path(value["path"])
        elif isinstance(value, dict):
            yield from _dataset_paths(value)


def show_if_finished(run: RunDir, show: Show) -> bool:
    """When the run's summary is on disk: say so, show it and return True (nothing is recomputed)."""
    if not run.done(SUMMARY):
        return False
    console.print(ALREADY_FINISHED)
    show(read_json(run.file(SUMMARY)), run.path)
    return True


def run_command(command: str, options: ModelOptions, config: dict, compute: Callable[[Session, RunDir], dict],
                show: Show, *, resume_finished: bool = True) -> None:
    """Run a command (module docstring) in ``--out`` (default runs/<command>-<timestamp>) for the config
    ``{"command", "model", **config}``; ``config["data"]`` holds its dataset entries (``dataset_entry``).

    ``resume_finished=False``: always compute (stages still resume from their cached files), for a command
    whose outputs depend on options outside its config."""
    path = options.out or default_run_dir(prefix=f"{command}-")
    session = options.session(path)
    set_threads(options.threads)
    full = json.loads(json.dumps({"command": command, "model": session.choice.to_config(), **config},
                                 default=json_default))
    if recorded_config(path) != full:  # a new run: its conversations were never tokenised
        session.check_datasets(list(_dataset_paths(config["data"])))
        release_unfinished(path, full, options.cache_path(path))
    run = RunDir.open(path, full)
    if resume_finished and show_if_finished(run, show):
        return
    try:
        summary = compute(session, run)
    finally:
        session.close()  # a Ray pool of model workers, if any, stops here (also on an error or Ctrl-C)
    write_json(run.file(SUMMARY), summary)
    show(summary, run.path)


def harmful_pair(harmful: Path | None, harmless: Path | None, hint: str) -> tuple[Path, Path]:
    """The checked --harmful and --harmless files, both required (``hint`` ends the message)."""
    if harmful is None or harmless is None:
        raise InputError(f"--harmful and --harmless chat JSONL files are required ({hint})")
    return dataset_file(harmful, "--harmful"), dataset_file(harmless, "--harmless")
