"""The skeleton every ``realmodels`` analysis command shares (``run_command``): the model options opened as a
``Session`` (checked without loading anything, so bad input fails before a run directory exists), the run
directory opened for the resolved config (or reopened to resume), a finished run's saved summary shown,
else the command's stages run and their ``summary.json`` written and shown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cli.realmodels_inputs import dataset_file
from cli.realmodels_tables import console
from runio.atomic import read_json, write_json
from runio.rundir import RunDir, default_run_dir
from theory.errors import InputError

if TYPE_CHECKING:
    from realmodels.loading.session import Session

SUMMARY = "summary.json"
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
    out: Path | None
    progress: bool

    def session(self, run_path: Path) -> Session:
        """A ``Session`` on the chosen model; activations are cached in ``--cache-dir`` or the run's
        ``activations/``. Every model option is checked here (the device map too), nothing is loaded."""
        from realmodels.loading.session import ModelChoice, Session

        choice = ModelChoice(checkpoint=self.checkpoint, model=self.model,
                             sae=None if self.sae is None else str(self.sae), layer=self.layer, dtype=self.dtype,
                             chat_template=None if self.chat_template is None else str(self.chat_template),
                             max_length=self.max_length)
        return Session(choice, device_map=self.device_map, batch_size=self.batch_size,
                       cache_dir=self.cache_dir if self.cache_dir is not None else run_path / "activations",
                       progress=self.progress, ignore_memory_check=self.ignore_memory_check)


def show_if_finished(run: RunDir, show: Show) -> bool:
    """When the run's summary is on disk: say so, show it and return True (nothing is recomputed)."""
    if not run.done(SUMMARY):
        return False
    console.print("[green]already finished[/]: showing the saved summary (delete the directory to recompute)")
    show(read_json(run.file(SUMMARY)), run.path)
    return True


def run_command(command: str, options: ModelOptions, config: dict, compute: Callable[[Session, RunDir], dict],
                show: Show, *, resume_finished: bool = True) -> None:
    """Open the session and the run directory ``--out`` (default runs/<command>-<timestamp>) for the config
    ``{"command", "model", **config}``; then show the saved summary of a finished run, or ``compute`` the
    summary (the stages write their files into the run), write it and show it.

    ``resume_finished=False``: always compute (stages still resume from their cached files), for a command
    whose outputs depend on options outside its config."""
    path = options.out or default_run_dir(prefix=f"{command}-")
    session = options.session(path)
    run = RunDir.open(path, {"command": command, "model": session.choice.to_config(), **config})
    if resume_finished and show_if_finished(run, show):
        return
    summary = compute(session, run)
    write_json(run.file(SUMMARY), summary)
    show(summary, run.path)


def harmful_pair(harmful: Path | None, harmless: Path | None, hint: str) -> tuple[Path, Path]:
    """The checked --harmful and --harmless files, both required (``hint`` ends the message)."""
    if harmful is None or harmless is None:
        raise InputError(f"--harmful and --harmless chat JSONL files are required ({hint})")
    return dataset_file(harmful, "--harmful"), dataset_file(harmless, "--harmless")
