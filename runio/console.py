"""The stdout console every runner and command prints through (rich markup: ``[yellow]...[/]``), the ``Log``
callable a runner takes, and the progress bar of long loops (a runner's, shown by the CLI as it is)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

Log = Callable[[str], None]
"""Prints one line (rich markup allowed): a runner's ``log`` argument, ``console.print`` by default."""


def stdout_console() -> Console:
    """The terminal's width on a terminal; 150 columns in logs and pipes (rich's 80 crushes the tables)."""
    return Console(width=None if sys.stdout.isatty() else 150)


console = stdout_console()
"""The process's stdout console: ``console.print`` is the runners' default ``log``."""


def make_progress(transient: bool = False) -> Progress:
    """A rich progress display: description, bar, done/total, an info field, elapsed and remaining time."""
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
