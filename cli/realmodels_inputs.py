"""Inputs of the ``realmodels`` commands as the command line gives them: dataset paths (which must exist; the
runners check every line), ``--domain NAME=INDUCING.jsonl,CONTROL.jsonl`` specs, and the geometry study's TOML file.

Geometry TOML (paths relative to the file; every table optional, command-line flags override it)::

    harmful = "harmful.jsonl"
    harmless = "harmless.jsonl"
    [domains.health]
    inducing = "bad_medical_advice.jsonl"
    control = "good_medical_advice.jsonl"
    [selection]            # realmodels.analysis.features.SelectionConfig
    k = 50
    [study]                # realmodels.analysis.geometry.StudyConfig
    proximity = "max_cosine"
"""

from __future__ import annotations

from pathlib import Path

from cli.configfile import config_table, read_toml
from realmodels.experiments.geometry import Domain, check_domain_name
from theory.errors import InputError

GEOMETRY_KEYS = ("harmful", "harmless", "domains", "selection", "study")


def dataset_file(path: str | Path, role: str) -> Path:
    """An existing file (absolute path), else an InputError naming its role ("--harmful", ...)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{role} dataset {p} does not exist or is not a file")
    return p.resolve()


def parse_domain(spec: str) -> Domain:
    """``NAME=INDUCING.jsonl,CONTROL.jsonl`` -> Domain (files must exist)."""
    name, sep, files = spec.partition("=")
    parts = [p.strip() for p in files.split(",")] if sep else []
    if not sep or len(parts) != 2 or not all(parts):
        raise InputError(f"--domain {spec!r}: expected NAME=INDUCING.jsonl,CONTROL.jsonl")
    name = check_domain_name(name.strip(), f"--domain {spec!r}")
    return Domain(name, dataset_file(parts[0], f"domain {name} inducing"), dataset_file(parts[1], f"domain {name} control"))


def read_geometry_toml(path: Path | None) -> dict:
    """The TOML file's tables, with dataset paths resolved against its directory (unknown keys: InputError)."""
    data = read_toml(path)
    if not data:
        return {}
    unknown = sorted(set(data) - set(GEOMETRY_KEYS))
    if unknown:
        raise InputError(f"unknown key '{unknown[0]}' in {path} (valid keys: {', '.join(GEOMETRY_KEYS)})")
    base = Path(path).expanduser().resolve().parent

    def resolve(value, key: str) -> Path:
        if not isinstance(value, str):
            raise InputError(f"{path}: '{key}' must be a file path string, got {value!r}")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    out = {key: config_table(data, key, path) for key in ("selection", "study") if key in data}
    for key in ("harmful", "harmless"):
        if key in data:
            out[key] = resolve(data[key], key)
    domains = data.get("domains", {})
    if not isinstance(domains, dict):
        raise InputError(f"{path}: 'domains' must be a table of [domains.NAME] tables")
    out["domains"] = []
    for name, table in domains.items():
        where = f"{path}: [domains.{name}]"
        check_domain_name(name, where)
        if not isinstance(table, dict) or set(table) != {"inducing", "control"}:
            raise InputError(f"{where} needs exactly the keys inducing and control")
        out["domains"].append(Domain(name, dataset_file(resolve(table["inducing"], f"domains.{name}.inducing"),
                                                        f"domain {name} inducing"),
                                     dataset_file(resolve(table["control"], f"domains.{name}.control"),
                                                  f"domain {name} control")))
    return out


def choose_domains(from_file: list[Domain], from_flags: list[str], only: list[str]) -> list[Domain]:
    """File domains, then ``--domain`` specs (same name: the flag wins), restricted to ``--only`` names."""
    domains = {d.name: d for d in from_file}
    flagged = [parse_domain(spec) for spec in from_flags]
    names = [d.name for d in flagged]
    if len(set(names)) != len(names):
        duplicate = next(n for n in names if names.count(n) > 1)
        raise InputError(f"domain {duplicate!r} is given twice with --domain")
    domains.update({d.name: d for d in flagged})
    if not domains:
        raise InputError("no domain given: pass --domain NAME=INDUCING.jsonl,CONTROL.jsonl (repeatable) or a "
                         "--config TOML with [domains.NAME] tables")
    if only:
        unknown = [n for n in only if n not in domains]
        if unknown:
            raise InputError(f"unknown domain {unknown[0]!r} in --only (domains: {', '.join(domains)})")
        return [domains[n] for n in only]
    return list(domains.values())

