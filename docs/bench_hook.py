"""MkDocs hook that renders the benchmark tables from the benchmark scripts' own results files, so no measured number on
the Benchmarks page is copied by hand.

A marker ``<!-- benchmark-table: NAME -->`` on a page is replaced by a caption (the command that produced the numbers,
its date and git revision, the load average before and after it, CPU count, torch version and threads) and a table
with one row per measurement of ``benchmarks/results/NAME.json`` (written by ``benchmarks/results.py``): the
measurement, its value and unit, its target with whether the value meets it, and the script's note. A marker whose
results file is missing or malformed stops the build (``PluginError``) naming the file and the script to run.
"""

from __future__ import annotations

import json
import operator
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"<!--\s*benchmark-table:\s*([\w-]+)\s*-->")
TARGET = re.compile(r"^(>=|<=|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)$")
COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
SHOWN = {">=": "≥", "<=": "≤", ">": ">", "<": "<"}
ROW_KEYS = ("measurement", "value", "unit", "target", "note")


def format_value(value: float, unit: str) -> str:
    """``value`` with three significant figures or more (thousands separated) followed by ``unit``."""
    size = abs(value)
    if value == int(value) and size < 1e15:
        number = f"{int(value):,}"
    elif size >= 1000:
        number = f"{value:,.0f}"
    elif size >= 100:
        number = f"{value:.1f}"
    elif size >= 10:
        number = f"{value:.2f}"
    elif size >= 1:
        number = f"{value:.3f}"
    else:
        number = f"{value:.3g}"
    return number + unit if unit in ("×", "%") else f"{number} {unit}".rstrip()


def format_target(target: str | None, value: float) -> str:
    """``≥ 0.95: met`` or ``≥ 0.95: **missed**`` for a target such as ``>= 0.95``; empty without one."""
    if not target:
        return ""
    match = TARGET.match(target)
    if match is None:
        raise ValueError(f"target {target!r} is not like '>= 0.95'")
    op, bound = match.groups()
    met = COMPARE[op](value, float(bound))
    return f"{SHOWN[op]} {bound}: " + ("met" if met else "**missed**")


def cell(text: str) -> str:
    """Text safe inside a markdown table cell (pipes escaped, one line)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def render_table(data: dict, source: str) -> str:
    """The caption line and the markdown table of one results file's content ``data`` (``source``: its path as shown)."""
    meta, rows = data["metadata"], data["rows"]
    before, after = meta["load_average_before"][0], meta["load_average_after"][0]
    threads = meta.get("torch_threads")
    runtime = ", ".join(part for part in (f"torch {meta['torch']}" if meta.get("torch") else "",
                                          f"{threads} torch thread(s)" if threads is not None else "") if part)
    caption = (f"*`{meta['command']}` — {meta['date']}, revision `{meta['revision']}`; load average "
               f"{before:.2f} before, {after:.2f} after, on {meta['cpu_count']} CPUs"
               + (f" ({meta['cpu']})" if meta.get("cpu") else "")
               + (f"; {runtime}" if runtime else "") + f" (generated from `{source}`).*")
    lines = [caption, "", "| measurement | value | target | note |", "|---|---|---|---|"]
    for row in rows:
        missing = [key for key in ROW_KEYS if key not in row]
        if missing:
            raise ValueError(f"row {row} lacks {missing}")
        value = row["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"row {row['measurement']!r}: value {value!r} is not a number")
        lines.append(f"| {cell(row['measurement'])} | **{format_value(value, row['unit'])}** | "
                     f"{format_target(row['target'], value)} | {cell(row['note'])} |")
    return "\n".join(lines)


def table_for(name: str, results_dir: Path | None = None) -> str:
    """The rendered table of ``results_dir/NAME.json`` (default benchmarks/results/); a missing or malformed file is a
    PluginError saying which script writes it."""
    path = (results_dir or RESULTS_DIR) / f"{name}.json"
    shown = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    if not path.is_file():
        raise PluginError(f"benchmark table '{name}': no results file {shown}; run `python benchmarks/{name}.py` "
                          "(it writes that file) and commit it")
    try:
        return render_table(json.loads(path.read_text(encoding="utf-8")), shown)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise PluginError(f"benchmark table '{name}': {shown} is not a valid results file: {exc}") from exc


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Replace every benchmark-table marker of the page by its rendered table."""
    return MARKER.sub(lambda match: table_for(match.group(1)), markdown)
