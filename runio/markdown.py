"""Result tables as GitHub markdown (the ``study.md`` reports)."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A markdown table: ``header`` then one line per row, each cell ``str()``-ed."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])
