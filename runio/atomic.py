"""Atomic file writes: text, JSON, CSV, figures and torch payloads go to a temp file in the same directory
and are renamed onto their path (``os.replace``), so a reader — or a resumed run — never sees half a file.

An OS error of a write (read-only filesystem, no permission, full disk) is re-raised naming the destination's
directory, never the temp file, and the temp file is removed: nothing half-written is left. JSON is strict
(NaN and ±inf are not JSON and are refused); ``nan_to_none`` turns the values a summary legitimately leaves
undefined into null first, and ``read_json`` reports a damaged file as an InputError naming it.

Used by the CLIs' run directories and by realmodels' activation caches; no maths, no torch import at module
level (``save_torch`` imports it when called)."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from theory.errors import ParamError

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextmanager
def _about_directory(directory: Path, temp_prefix: str):
    """Re-raise an OSError about a temp file, or about no file (a failed write or flush), as one about
    ``directory`` (same errno, so the same OSError subclass); any other error passes unchanged."""
    try:
        yield
    except OSError as exc:
        name = exc.filename
        if exc.errno is None or (name is not None and not Path(os.fsdecode(name)).name.startswith(temp_prefix)):
            raise
        raise OSError(exc.errno, exc.strerror, str(directory)) from exc


@contextmanager
def atomic_path(path: Path, suffix: str = ""):
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    prefix = f".{path.name}."
    path.parent.mkdir(parents=True, exist_ok=True)
    with _about_directory(path.parent, prefix):
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    try:
        with _about_directory(path.parent, prefix):
            yield Path(tmp)
            os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual umask-respecting mode
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file renamed into place)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def json_default(obj: Any):
    """``json.dumps``'s ``default``: arrays and tensors (anything with ``tolist``) as lists, paths as strings; any other
    object a TypeError."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def nan_to_none(data: Any) -> Any:
    """``data`` with every float NaN or ±inf (in dicts, lists and tuples, recursively) replaced by None: for the
    values a summary legitimately leaves undefined (a correlation of constant values, a ratio over a zero
    baseline), which JSON writes as null."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: nan_to_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [nan_to_none(value) for value in data]
    return data


def write_json(path: Path, data: Any) -> None:
    """Strict JSON: a NaN or ±inf left in ``data`` is a bug (ValueError); pass undefined values as None."""
    write_text(path, json.dumps(data, indent=2, default=json_default, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a damaged file (not UTF-8, not JSON, nested too deeply: ``runio.reading.loads_json``)
    is an InputError naming it."""
    from runio.reading import JsonError, loads_json

    try:
        return loads_json(Path(path).read_text(encoding="utf-8"))
    except (JsonError, UnicodeDecodeError) as exc:
        raise ParamError(f"{path} is damaged (not valid JSON: {exc}); delete it and rerun with the same `out` "
                         "to recompute it") from None


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


def copy_figures(stems: dict[str, Path], dest: Path | None, prefix: str,
                 formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """Copy each figure ``stems[name]`` (``<stem>.png``/``.svg``, as ``save_figure`` writes them) atomically to
    ``dest/<prefix>_<name>.<fmt>`` (nothing when ``dest`` is None); returns the PNG paths of ``stems``."""
    if dest is not None:
        Path(dest).mkdir(parents=True, exist_ok=True)
        for name, stem in stems.items():
            for fmt in formats:
                with atomic_path(Path(dest) / f"{prefix}_{name}.{fmt}") as tmp:
                    shutil.copyfile(f"{stem}.{fmt}", tmp)
    return [Path(f"{stem}.png") for stem in stems.values()]


def save_torch(path: Path, payload: Any) -> None:
    """``torch.save`` atomically, through a file object so that the archive's records do not carry the random
    temp-file name (the same payload gives the same bytes)."""
    import torch

    with atomic_path(path, suffix=".tmp") as tmp, open(tmp, "wb") as handle:
        torch.save(payload, handle)
