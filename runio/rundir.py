"""Run directories: one resolved config per directory and a resume check, so that rerunning into the same
directory reuses finished work instead of redoing it (or refuses if the config differs). Every file is
written with ``runio.atomic``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from runio.atomic import json_default, read_json, write_json
from theory.errors import InputError, ParamError

CONFIG_NAME = "config.json"
ALREADY_FINISHED = "[green]already finished[/]: showing the saved summary (delete the directory to recompute)"
"""What a run prints when its run directory already holds the finished result."""


def _check_out_path(path: Path) -> None:
    """``path`` must be a directory or creatable as one: no regular file on it or on any of its parents."""
    for candidate in (path, *path.parents):
        if candidate.is_dir():
            return
        if candidate.exists():
            if candidate == path:
                raise ParamError(f"`out` {path} exists and is not a directory")
            raise ParamError(f"`out` {path} cannot be created: {candidate} is a file, not a directory; "
                             "choose another `out`")


def default_run_dir(root: Path = Path("runs"), prefix: str = "") -> Path:
    """``root/<prefix><YYYYmmdd-HHMMSS>``: a fresh run directory name from the local time."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{prefix}{stamp}"


class RunDir:
    """A run directory bound to one resolved config (a JSON-able dict).

    ``RunDir.open(path, config)`` creates it, or reopens it when its config.json equals ``config``
    (resume); a different config there is an InputError (use another ``out``: messages name the run directory
    as the parameter ``out``, the ``--out`` of every command), and so is a path below a regular file. A directory
    this call created is removed again if its config.json cannot be written (read-only filesystem, full disk): a
    failed start leaves nothing behind. ``RunDir.opened`` lists the run directories opened by this process (the
    CLI's interrupt message says which hold finished work)."""

    opened: ClassVar[list["RunDir"]] = []

    def __init__(self, path: Path, config: dict):
        self.path = Path(path)
        self.config = config

    @classmethod
    def open(cls, path: Path, config: dict, *, config_name: str = CONFIG_NAME, kind: str | None = None) -> "RunDir":
        """``config_name``: the file the config is kept in; ``kind``: what a different config there is called in
        the refusal ("build": "<path> holds a different build (<file>)"), default a run's wording."""
        path = Path(path)
        _check_out_path(path)
        existing = path / config_name
        normalised = json.loads(json.dumps(config, default=json_default))
        if existing.exists():
            try:
                previous = read_json(existing)
            except InputError:
                raise ParamError(f"{existing} is damaged (not valid JSON), so the run it belongs to is unknown; "
                                 "choose another `out` (or delete the directory)") from None
            if previous != normalised and kind is not None:
                raise InputError(f"{path} holds a different {kind} ({existing}); choose another directory or "
                                 "delete it")
            if previous != normalised:
                raise ParamError(f"{path} holds a run with a different config; choose another `out` "
                                 "(or delete it) to start a new run")
        else:
            created = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
            try:
                write_json(existing, normalised)
            except BaseException:
                if created and not any(path.iterdir()):
                    path.rmdir()
                raise
        run = cls(path, normalised)
        cls.opened.append(run)
        return run

    def finished_files(self) -> list[Path]:
        """The results written so far (every file but config.json and the temp files of unfinished writes)."""
        return [p for p in sorted(self.path.rglob("*")) if p.is_file() and p.name != CONFIG_NAME
                and not p.name.startswith(".")]

    def file(self, name: str) -> Path:
        """The path of ``name`` inside the run directory."""
        return self.path / name

    def done(self, name: str) -> bool:
        """Whether ``name`` was written (files are written atomically, so an existing one is complete)."""
        return self.file(name).exists()

    def cached_json(self, name: str, compute: Callable[[], Any]) -> Any:
        """Return the JSON in ``name`` if present (finished earlier), else compute, write and return it."""
        path = self.file(name)
        if path.exists():
            return read_json(path)
        value = compute()
        write_json(path, value)
        return read_json(path)
