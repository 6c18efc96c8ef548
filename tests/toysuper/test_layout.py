"""The layout's import rules, read from the source (no imports run): ``toysuper`` imports nothing from ``cli``;
the studies of ``toysuper.em`` do not import each other; the ``cli`` toy modules do not import
``cli.toysuper_app`` (it registers them); and the import graph of ``toysuper`` and ``cli`` has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STUDIES = {"toysuper.em.inducing", "toysuper.em.mitigate", "toysuper.em.geometry", "toysuper.em.sweep"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in the file (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # from pkg import module
    return names


def _files(*packages: str) -> dict[str, Path]:
    return {_module(p): p for package in packages for p in (ROOT / package).rglob("*.py")}


def _graph(*packages: str) -> dict[str, set[str]]:
    files = _files(*packages)
    return {name: {m for m in _imports(path) if m in files and m != name} for name, path in files.items()}


def test_toysuper_imports_nothing_from_cli():
    for name, path in _files("toysuper").items():
        assert not any(m == "cli" or m.startswith("cli.") for m in _imports(path)), name


def test_studies_do_not_import_each_other():
    graph = _graph("toysuper")
    for study in STUDIES:
        assert not graph[study] & STUDIES, (study, graph[study] & STUDIES)


def test_toy_cli_modules_do_not_import_the_app():
    graph = _graph("cli")
    for name, deps in graph.items():
        if name != "cli.toysuper_app":
            assert "cli.toysuper_app" not in deps, name


def test_no_import_cycle():
    graph = _graph("toysuper", "cli")
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(graph[name]):
            assert state.get(dep) != 1, " -> ".join(path + [name, dep])
            if dep not in state:
                visit(dep, path + [name])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
