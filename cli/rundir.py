"""Run directories: resolved config, summary JSON, CSV tables, figures — every file written atomically
(temp file in the same directory + os.replace), and a resume check so that rerunning into the same
directory reuses finished work instead of redoing it (or refuses if the config differs)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from theory.errors import InputError

CONFIG_NAME = "config.json"
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


def _json_default(obj: Any):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_json_default, allow_nan=True) + "\n")


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


def default_run_dir(root: Path = Path("runs"), prefix: str = "") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{prefix}{stamp}"


class RunDir:
    """A run directory bound to one resolved config (a JSON-able dict).

    ``RunDir.open(path, config)`` creates it, or reopens it when its config.json equals ``config``
    (resume); a different config there is an InputError (use another --out)."""

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.config = config

    @classmethod
    def open(cls, path: Path, config: dict) -> "RunDir":
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(f"--out {path} exists and is not a directory")
        existing = path / CONFIG_NAME
        normalised = json.loads(json.dumps(config, default=_json_default))
        if existing.exists():
            try:
                previous = read_json(existing)
            except json.JSONDecodeError:
                raise InputError(f"{existing} is not valid JSON; choose another --out") from None
            if previous != normalised:
                raise InputError(f"{path} holds a run with a different config; choose another --out "
                                 "(or delete it) to start a new run")
        path.mkdir(parents=True, exist_ok=True)
        write_json(existing, normalised)
        return cls(path, normalised)

    def file(self, name: str) -> Path:
        return self.path / name

    def done(self, name: str) -> bool:
        return self.file(name).exists()

    def cached_json(self, name: str, compute: Callable[[], Any]) -> Any:
        """Return the JSON in ``name`` if present (finished earlier), else compute, write and return it."""
        path = self.file(name)
        if path.exists():
            return read_json(path)
        value = compute()
        write_json(path, value)
        return read_json(path)
