"""The package layering: ``theory`` (maths) <- ``runio`` (run files) <- ``toysuper``, ``realmodels``
(adapters) <- ``cli``. Checked on the source's import statements (module level and inside functions), so a
cycle or an upward import fails here before it can bite at run time; the library packages (all but ``cli``)
import no command-line framework (typer, click) and no ``cli`` module; plus every module imports cleanly in a
fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "runio", "toysuper", "realmodels", "cli")
ALLOWED = {  # package -> the project packages it may import
    "theory": {"theory"},
    "runio": {"runio", "theory"},
    "toysuper": {"toysuper", "theory", "runio"},
    "realmodels": {"realmodels", "theory", "runio"},
    "cli": set(PACKAGES),
}
LIBRARY = ("theory", "runio", "toysuper", "realmodels")  # usable from Python without the CLI
CLI_ONLY = {"typer", "click", "cli"}  # top-level modules no library module may import


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, *, top_level_only: bool, project_only: bool = True) -> set[str]:
    """Modules imported by ``path`` (relative imports resolved): the project's, or all with ``project_only=False``."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {m for m in found if not project_only or m.split(".")[0] in PACKAGES}


def _resolve(module: str, known: dict[str, Path]) -> str | None:
    while module and module not in known:
        module = module.rpartition(".")[0]
    return module or None


def test_every_import_points_down_the_layers():
    bad = []
    for name, path in _modules().items():
        own = name.split(".")[0]
        for target in _imports(name, path, top_level_only=False):
            if target.split(".")[0] not in ALLOWED[own]:
                bad.append(f"{name} imports {target}")
    assert not bad, "\n".join(bad)


def test_the_library_imports_no_cli_framework_and_no_cli_module():
    bad = []
    for name, path in _modules().items():
        if name.split(".")[0] in LIBRARY:
            bad += [f"{name} imports {target}" for target in sorted(_imports(name, path, top_level_only=False,
                                                                             project_only=False))
                    if target.split(".")[0] in CLI_ONLY]
    assert not bad, "\n".join(bad)


def test_the_layering_check_sees_cli_imports(tmp_path):
    """The check above reads every import form: plain, from, dotted, inside a function."""
    source = "import typer\ndef f():\n    from click import echo\n    import cli.jobs_options as o\n"
    path = tmp_path / "mod.py"
    path.write_text(source)
    found = {m.split(".")[0] for m in _imports("x.mod", path, top_level_only=False, project_only=False)}
    assert CLI_ONLY <= found


def test_no_import_cycle():
    known = _modules()
    graph = {name: {t for m in _imports(name, path, top_level_only=False)
                    if (t := _resolve(m, known)) is not None and t != name}
             for name, path in known.items()}
    # a package's __init__ re-exporting its submodules is not a cycle with them
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_module_imports_in_a_fresh_interpreter():
    names = sorted(_modules())
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    result = subprocess.run([sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
