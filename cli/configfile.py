"""Read a TOML config file into a dict; every failure is one InputError line."""

from __future__ import annotations

import tomllib
from pathlib import Path

from runio.reading import MAX_DEPTH, JsonError, check_depth
from theory.errors import InputError


def read_toml(path: Path | None) -> dict:
    """The TOML file at ``path`` as a dict ({} when ``path`` is None); a missing file, invalid TOML or nesting deeper
    than ``runio.reading.MAX_DEPTH`` is one InputError line."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist or is not a file")
    try:
        return check_depth(tomllib.loads(path.read_text(encoding="utf-8")))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"config file {path} is not valid TOML: {exc}") from None
    except (RecursionError, JsonError):  # tomllib recurses once per nested array
        raise InputError(f"config file {path} is not valid TOML: nested more than {MAX_DEPTH} levels deep") from None


def config_table(file_cfg: dict, name: str, path: Path | None) -> dict:
    """The table ``[name]`` of a TOML file read by ``read_toml`` ({} when absent); an InputError when the key
    holds something else (``finetune = 5``)."""
    value = file_cfg.get(name, {})
    if not isinstance(value, dict):
        raise InputError(f"config file {path}: {name} must be a table [{name}], got {value!r}")
    return value


def resolve_config(cls, config_file: Path | None, overrides: dict, *, base: dict | None = None, prefix: str = ""):
    """The one config resolution of every command: ``cls`` defaults <- TOML file (or ``base``, a table the
    caller already read) <- command-line flags (None = unset), validated strictly (unknown keys name
    ``prefix`` + the dotted key)."""
    from theory.configs import merge, strict_from_dict, to_dict

    layered = merge(to_dict(cls()), base if base is not None else read_toml(config_file))
    return strict_from_dict(cls, merge(layered, overrides), prefix=prefix)


def config_default(cls, key: str) -> str:
    """`` [default: <value>]`` for the dotted ``key`` of ``cls()`` (lists as a,b,c; "" when unset), escaped for
    typer's rich help: the defaults shown are the config's own, never written by hand."""
    from rich.markup import escape

    value = cls()
    for part in key.split("."):
        value = getattr(value, part)
    if value is None:
        return ""
    text = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
    return escape(f" [default: {text}]")


def config_option(cls, key: str, help: str | None = None, *param_decls: str):
    """A typer option for an override of config key ``key`` (None = keep the config's value), its help (default:
    the field's docstring, ``cli.dataclass_options.help_of``) ending with the config's default."""
    import typer

    from cli.dataclass_options import help_of

    return typer.Option(None, *param_decls, help=(help or help_of(cls, key)) + config_default(cls, key))
