"""Frozen config dataclasses that forbid unknown keys: ``strict_from_dict`` and ``to_dict``.

Pure structure, no I/O: the CLIs read TOML and pass dicts here. Nested dataclass fields are built
recursively; an unknown key or a wrong type is an InputError naming the dotted key."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

from theory.errors import InputError

T = TypeVar("T")
MAX_CONFIG_INT = 2**63 - 1  # TOML's integer range (a command-line flag may be larger: refused here too)


def check_choice(value: str, names, what: str) -> None:
    """InputError unless ``value`` is one of the names of the Literal type ``names``."""
    valid = typing.get_args(names)
    if value not in valid:
        raise InputError(f"unknown {what} {value!r} (choose {', '.join(valid[:-1])} or {valid[-1]})")


def to_dict(config: Any) -> dict:
    """``config`` (a dataclass, nested ones included) as a dict."""
    return dataclasses.asdict(config)


class DictConfig:
    """Mixin for a top-level config dataclass: ``from_dict`` (strict: unknown keys are errors) and ``to_dict``."""

    @classmethod
    def from_dict(cls: type[T], data: dict) -> T:
        """The config from ``data``, strictly (``strict_from_dict``: an unknown key or a wrong type is an InputError
        naming the dotted key)."""
        return strict_from_dict(cls, data)

    def to_dict(self) -> dict:
        """The config as a dict (``to_dict``)."""
        return to_dict(self)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise InputError(f"config key '{key}' must be a table, got {value!r}")
        return strict_from_dict(annotation, value, prefix=f"{key}.")
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise InputError(f"config key '{key}' must be one of {list(typing.get_args(annotation))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None and type(None) in typing.get_args(annotation):
            return None
        errors = []
        for arg in args:
            try:
                return _coerce(value, arg, key)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0])
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InputError(f"config key '{key}' must be a list, got {value!r}")
        inner = typing.get_args(annotation)
        item_type = inner[0] if inner else Any
        items = [_coerce(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"config key '{key}' must be a number, got {value!r}")
        if math.isnan(float(value)):
            raise InputError(f"config key '{key}' is NaN")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_CONFIG_INT:
                return int(value)
            raise InputError(f"config key '{key}' must be an integer, got {value!r}")
        if abs(value) > MAX_CONFIG_INT:
            raise InputError(f"config key '{key}' is too large an integer: {value}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise InputError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise InputError(f"config key '{key}' must be a string, got {value!r}")
        return value
    return value


def strict_from_dict(cls: type[T], data: dict, *, prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise InputError."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise InputError(f"unknown config key '{prefix}{unknown[0]}' (valid keys: {', '.join(sorted(fields))})")
    kwargs = {name: _coerce(value, hints[name], f"{prefix}{name}") for name, value in data.items()}
    return cls(**kwargs)


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base`` (None values in overrides are ignored)."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
