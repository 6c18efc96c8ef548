"""Run directories: one resolved config per directory and a resume check, so that rerunning into the same
directory reuses finished work instead of redoing it (or refuses if the config differs). Every file is
written with ``runio.atomic``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from runio.atomic import json_default, read_json, write_json
from theory.errors import InputError

CONFIG_NAME = "config.json"


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
        normalised = json.loads(json.dumps(config, default=json_default))
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
