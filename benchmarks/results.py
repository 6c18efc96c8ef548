"""The results file every benchmark script writes at its end: ``benchmarks/results/<script>.json`` (or ``--results
PATH``), written atomically (``runio.atomic.write_json``), from which ``docs/bench_hook.py`` renders the tables of
the Benchmarks page, so no measured number there is copied by hand.

The file holds ``metadata`` (UTC date, git revision, the command line with its arguments, torch threads, the load
average before the run and after it, CPU count, Python and torch versions) and ``rows``: one per measurement,
``{"measurement", "value" (a finite number), "unit" (a unit or ratio label such as "×" or "s"), "target" (e.g.
">= 0.95", or null), "note"}``. A script creates ``BenchmarkResults`` at the start of ``main`` (the load average
before), calls ``add`` with the numbers it prints and ``write`` last.

    results = BenchmarkResults(__file__)
    results.add("toolkit / bare", 0.997, "×", target=">= 0.95", note="within one process")
    results.write(args.results)   # None: benchmarks/results/<script>.json
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import re
import shlex
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET = re.compile(r"^(>=|<=|>|<)\s*(-?[0-9.]+(?:e-?[0-9]+)?)$")
ROW_KEYS = ("measurement", "value", "unit", "target", "note")
METADATA_KEYS = ("script", "date", "revision", "command", "torch_threads", "load_average_before",
                 "load_average_after", "cpu_count", "python", "torch")


@dataclass(frozen=True)
class Row:
    """One measured number: what it measures, its value and unit (or ratio label), its target and a note."""

    measurement: str
    value: float
    unit: str
    target: str | None = None
    note: str = ""

    def __post_init__(self):
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or not math.isfinite(self.value):
            raise ValueError(f"{self.measurement!r}: value must be a finite number, got {self.value!r}")
        if self.target is not None and not TARGET.match(self.target):
            raise ValueError(f"{self.measurement!r}: target must read like '>= 0.95' or '<= 1.3', got {self.target!r}")


def add_results_option(parser: argparse.ArgumentParser) -> None:
    """Give a benchmark's argument parser ``--results PATH`` (default: benchmarks/results/<script>.json)."""
    parser.add_argument("--results", type=Path, default=None,
                        help="where to write the results JSON (default: benchmarks/results/<script>.json)")


def git_revision() -> str:
    """The checkout's commit (short hash), with ``+dirty`` when tracked code differs from it (changes under docs/,
    to Markdown files and to benchmarks/results/ do not count: they do not change what is measured); ``unknown``
    without git."""
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!docs", ":!*.md", ":!benchmarks/results"], cwd=ROOT,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def command_line(script: Path, argv: list[str]) -> str:
    """``python benchmarks/<script>.py ARGS...`` as run, the home directory shown as ``~``."""
    try:
        shown = script.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        shown = script.name
    words = " ".join(shlex.quote(word) for word in ["python", shown, *argv])
    return words.replace(str(Path.home()), "~")


def cpu_model() -> str:
    """The processor's model name (``model name`` in /proc/cpuinfo, else ``platform.processor()``, else
    "unknown"): speed-ups of small matmuls differ between CPUs (the toy trainer's did, from one machine to the
    next), so a results file names the CPU it was measured on."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def torch_state() -> tuple[str | None, int | None]:
    """(torch version, torch threads) if the script imported torch, else (None, None)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None, None
    return torch.__version__, torch.get_num_threads()


class BenchmarkResults:
    """Collects a benchmark's rows and writes them with the run's metadata; created at the start of ``main``."""

    def __init__(self, script: str | Path, argv: list[str] | None = None):
        self.script = Path(script)
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.load_before = [round(x, 2) for x in os.getloadavg()]
        self.rows: list[Row] = []

    def add(self, measurement: str, value: float, unit: str, target: str | None = None, note: str = "") -> None:
        """Record one measured number (``value`` a finite number, ``target`` like ``>= 0.95`` or None)."""
        self.rows.append(Row(measurement, value, unit, target, note))

    def as_dict(self, torch_threads: int | str | None = None) -> dict:
        """The results file's content; ``torch_threads`` overrides the thread count read from torch (a script that
        compares thread counts says so in words)."""
        version, threads = torch_state()
        metadata = {"script": self.script.stem, "date": self.date, "revision": git_revision(),
                    "command": command_line(self.script, self.argv),
                    "torch_threads": threads if torch_threads is None else torch_threads,
                    "load_average_before": self.load_before,
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                    "cpu_count": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
                    "torch": version}
        return {"metadata": metadata, "rows": [asdict(row) for row in self.rows]}

    def write(self, path: Path | None = None, torch_threads: int | str | None = None) -> Path:
        """Write the results atomically to ``path`` (default benchmarks/results/<script>.json); returns the path."""
        from runio.atomic import write_json

        if not self.rows:
            raise ValueError(f"{self.script.name}: no rows to write")
        path = Path(path) if path is not None else RESULTS_DIR / f"{self.script.stem}.json"
        write_json(path, self.as_dict(torch_threads))
        print(f"results: {path}")
        return path


def check_results(data: dict) -> None:
    """Raise ValueError unless ``data`` has the results file's schema (metadata keys, rows of ROW_KEYS)."""
    if not isinstance(data, dict) or set(data) != {"metadata", "rows"}:
        raise ValueError("a results file holds exactly 'metadata' and 'rows'")
    missing = [key for key in METADATA_KEYS if key not in data["metadata"]]
    if missing:
        raise ValueError(f"metadata lacks {missing}")
    if not data["rows"]:
        raise ValueError("no rows")
    for row in data["rows"]:
        if set(row) != set(ROW_KEYS):
            raise ValueError(f"row {row} does not have the keys {ROW_KEYS}")
        Row(**row)
