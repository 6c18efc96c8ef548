"""Rich progress bars and the stdout console shared by the CLIs."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

from runio.console import stdout_console  # noqa: F401  (the CLIs' console, re-exported)

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from runio.rundir import ALREADY_FINISHED  # noqa: F401  (re-exported for the toysuper commands)


def make_progress(transient: bool = False) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), transient=transient)


@contextmanager
def progress_bar(description: str, total: int, *, refresh_every: int = 1):
    """Yield ``update(done, info="")``; the bar is redrawn at most every ``refresh_every`` units."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total, info="")
        last = [0]

        def update(done: int, info: str | None = None) -> None:
            if info is not None:
                progress.update(task, info=info)
            if done - last[0] >= refresh_every or done == total:
                progress.update(task, completed=done)
                last[0] = done

        yield update


def quiet_library_bars(progress: bool) -> bool:
    """With ``--no-progress`` (``progress`` False), the libraries' own bars go quiet too: transformers' "Loading
    weights" and huggingface_hub's downloads (through their switch, the environment variable they read at import, and
    their functions when already imported; nothing heavy is imported here). The typer callback of ``--progress``."""
    if not progress:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        if "huggingface_hub.utils" in sys.modules:
            sys.modules["huggingface_hub.utils"].disable_progress_bars()
        if "transformers.utils.logging" in sys.modules:
            sys.modules["transformers.utils.logging"].disable_progress_bar()
    return progress
