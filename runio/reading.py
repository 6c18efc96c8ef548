"""Reading the JSON, JSONL and YAML files a user hands the toolkit (or a damaged run file) without a traceback:
every way a file can fail to parse is one ``JsonError`` / ``InputError`` line naming it.

``loads_json`` is ``json.loads`` made total over bad input: invalid JSON, nesting deeper than ``MAX_DEPTH``
(which ``json`` would report as a RecursionError, or accept and leave to crash the code that walks it), an
integer too long to parse (Python refuses more than 4300 digits) or beyond the float range (10**400 is no
number a model can use), and the constants NaN / Infinity (not JSON; the toolkit never writes them) are each a
``JsonError`` whose message is one line. ``read_text`` reads UTF-8 text (not UTF-8, missing or a directory ->
InputError naming the file); ``read_json_file`` and ``read_yaml_file`` combine the two. Callers type-check the
structure they get (a dict with the keys they need, of the types they need)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from theory.errors import InputError, first_line

MAX_DEPTH = 64  # nesting levels of lists / objects any input of the toolkit may have (its own need at most 5)


class JsonError(ValueError):
    """Why a text is not acceptable JSON (one line)."""


def _refuse_constant(name: str):
    raise JsonError(f"{name} is not a JSON number")


def _parse_int(digits: str) -> int:
    try:
        value = int(digits)
        float(value)
    except (ValueError, OverflowError):
        raise JsonError(f"the integer {digits[:20]}... ({len(digits)} digits) is too large") from None
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise JsonError(f"the number {text[:20]} is too large")
    return value


def check_depth(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` unchanged when its lists / dicts nest at most ``max_depth`` levels, else a JsonError
    (iterative: a deep value cannot exhaust the stack here; a container YAML shares through an alias is
    walked once)."""
    stack, seen = [(value, 1)], set()
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None or id(item) in seen:
            continue
        seen.add(id(item))
        if depth > max_depth:
            raise JsonError(f"nested more than {max_depth} levels deep")
        stack.extend((child, depth + 1) for child in children)
    return value


def loads_json(text: str | bytes, *, allow_nan: bool = False) -> Any:
    """``json.loads(text)`` with every problem a JsonError (module docstring); ``allow_nan`` accepts NaN,
    Infinity and float overflow to inf (for a caller that reports non-finite values in its own words)."""
    floats = {} if allow_nan else {"parse_constant": _refuse_constant, "parse_float": _parse_float}
    try:
        value = json.loads(text, parse_int=_parse_int, **floats)
    except json.JSONDecodeError as exc:
        raise JsonError(f"{exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise JsonError(f"nested more than {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError as exc:  # bytes that are not UTF-8
        raise JsonError(f"not UTF-8 (byte {exc.start + 1}: {exc.reason})") from None
    return check_depth(value)


def read_text(path: str | Path, what: str = "file") -> str:
    """The UTF-8 text of ``path``; missing, a directory, unreadable or not UTF-8 is an InputError naming it."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"{what} {path} is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text (byte {exc.start + 1}: {exc.reason}); save it as "
                         "UTF-8") from None
    except OSError as exc:
        raise InputError(f"{what} {path} cannot be read ({exc.strerror or exc})") from None


def read_json_file(path: str | Path, what: str = "file", *, allow_nan: bool = False) -> Any:
    """The JSON value in ``path`` (``read_text`` + ``loads_json``): every problem is an InputError naming it."""
    text = read_text(path, what)
    try:
        return loads_json(text, allow_nan=allow_nan)
    except JsonError as exc:
        raise InputError(f"{what} {path} is not valid JSON ({exc})") from None


def read_yaml_file(path: str | Path, what: str = "file") -> Any:
    """``yaml.safe_load`` of ``path``: invalid YAML, nesting too deep for the parser (RecursionError) or for
    ``MAX_DEPTH``, and a non-UTF-8 file are an InputError naming it."""
    import yaml

    text = read_text(path, what)
    try:
        return check_depth(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise InputError(f"{what} {path} is not valid YAML: {first_line(exc)}") from None
    except (RecursionError, JsonError):
        raise InputError(f"{what} {path} is not valid YAML: nested more than {MAX_DEPTH} levels deep") from None


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (hex), read in blocks: the content identity of datasets and checkpoints."""
    import hashlib

    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
