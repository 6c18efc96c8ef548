"""Read a TOML config file into a dict; every failure is one InputError line."""

from __future__ import annotations

import tomllib
from pathlib import Path

from theory.errors import InputError


def read_toml(path: Path | None) -> dict:
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist or is not a file")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}") from None


def resolve_config(cls, config_file: Path | None, overrides: dict, *, base: dict | None = None, prefix: str = ""):
    """The one config resolution of every command: ``cls`` defaults <- TOML file (or ``base``, a table the
    caller already read) <- command-line flags (None = unset), validated strictly (unknown keys name
    ``prefix`` + the dotted key)."""
    from theory.configs import merge, strict_from_dict, to_dict

    layered = merge(to_dict(cls()), base if base is not None else read_toml(config_file))
    return strict_from_dict(cls, merge(layered, overrides), prefix=prefix)
