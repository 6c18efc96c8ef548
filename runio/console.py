"""The stdout console every runner and command prints through (rich markup: ``[yellow]...[/]``)."""

from __future__ import annotations

import sys

from rich.console import Console


def stdout_console() -> Console:
    """The terminal's width on a terminal; 150 columns in logs and pipes (rich's 80 crushes the tables)."""
    return Console(width=None if sys.stdout.isatty() else 150)


console = stdout_console()
"""The process's stdout console: ``console.print`` is the runners' default ``log``."""
