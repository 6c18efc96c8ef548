"""Atomic file writes: text, JSON, CSV, figures and torch payloads go to a temp file in the same directory
and are renamed onto their path (``os.replace``), so a reader — or a resumed run — never sees half a file.

Used by the CLIs' run directories and by realmodels' activation caches; no maths, no torch import at module
level (``save_torch`` imports it when called)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def atomic_path(path: Path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual umask-respecting mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_default(obj: Any):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=json_default, allow_nan=True) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_csv(path: Path, frame) -> None:
    """Write a pandas DataFrame as CSV atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def save_figure(fig, stem: Path, formats: tuple[str, ...] = ("png", "svg"), dpi: int = 150) -> list[Path]:
    """Save a matplotlib figure as stem.png and stem.svg atomically; closes the figure. Byte-reproducible:
    SVGs get no date and fixed element ids (svg.hashsalt)."""
    import matplotlib.pyplot as plt

    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        metadata = {"Date": None} if fmt in ("svg", "pdf") else None
        with atomic_path(path) as tmp, plt.rc_context({"svg.hashsalt": Path(stem).name}):
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    plt.close(fig)
    return paths


def save_torch(path: Path, payload: Any) -> None:
    """``torch.save`` atomically, through a file object so that the archive's records do not carry the random
    temp-file name (the same payload gives the same bytes)."""
    import torch

    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
