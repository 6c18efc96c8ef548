"""The documentation site: the generated CLI reference lists every registered command with its options, the generated
API reference covers every module on disk, and ``mkdocs build --strict`` passes offline with every API page resolved.

The build runs under CI (``.ci/run`` installs ``.[docs]``); elsewhere it skips only when mkdocs is not installed."""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _hooks():
    """``docs/hooks.py`` (not a package) loaded from its path."""
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _registered(app_module: str, prog: str) -> list[tuple[tuple[str, ...], object]]:
    """Every leaf command of a typer app, walked through the click group's own ``commands`` dicts."""
    import importlib

    import typer.main

    def walk(command, path):
        if getattr(command, "commands", None) is None:
            return [(path, command)]
        return [leaf for name, sub in command.commands.items() for leaf in walk(sub, path + (name,))]

    return walk(typer.main.get_command(importlib.import_module(app_module).app), (prog,))


def _section(markdown: str, path: tuple[str, ...]) -> str:
    """The text under a command's heading, up to the next heading of any level."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip("#").startswith(f" `{' '.join(path)}` {{"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("#")), len(lines))
    return "\n".join(lines[start:end])


def test_the_cli_reference_lists_every_registered_command_with_its_options():
    markdown = _hooks().cli_reference_markdown()
    commands = _registered("cli.realmodels_app", "realmodels") + _registered("cli.toysuper_app", "toysuper")
    assert len(commands) > 20 and ("realmodels", "organism", "benchmark") in {p for p, _ in commands}
    for path, command in commands:
        section = _section(markdown, path)
        assert f"Usage: {' '.join(path)} " in section, path
        names = {word.strip(",") for cell in re.findall(r"<td><code>(.*?)</code></td>", section) for word in cell.split()}
        for param in command.params:
            if getattr(param, "hidden", False):
                continue
            for flag in [*param.opts, *getattr(param, "secondary_opts", [])]:
                assert html.escape(flag) in names, (path, flag)


def test_the_api_reference_covers_every_module_on_disk():
    pages = _hooks().api_packages()
    documented = [module for modules in pages.values() for module in modules]
    on_disk = set()
    for top in ("theory", "runio", "toysuper", "realmodels", "cli"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            on_disk.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    assert len(documented) == len(set(documented))
    assert set(documented) == on_disk, (on_disk - set(documented), set(documented) - on_disk)
    assert {"theory", "runio", "toysuper.em", "realmodels.experiments", "cli"} <= set(pages)


def _mkdocs_or_skip() -> None:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        if os.environ.get("CI"):
            pytest.fail('mkdocs is not installed under CI: .ci/run installs ".[test,real,docs]"')
        pytest.skip('mkdocs is not installed (pip install -e ".[docs]")')


@pytest.mark.slow
def test_mkdocs_build_strict_passes_offline_and_every_api_page_resolves(tmp_path):
    _mkdocs_or_skip()
    site = tmp_path / "site"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1",
           # offline: anything that tried to download at build time would fail through a dead proxy
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    print(f"mkdocs build --strict: {time.monotonic() - started:.1f} s")

    hooks = _hooks()
    api = site / "reference" / "api"
    index = (api / "index.html").read_text(encoding="utf-8")
    for package, modules in hooks.api_packages().items():
        page = (api / package / "index.html").read_text(encoding="utf-8")
        assert f'href="{package}/"' in index, package
        for module in modules:  # mkdocstrings rendered the module: its heading carries its dotted path as id
            assert f'id="{module}"' in page, (package, module)
        assert page.count("doc doc-object doc-module") >= len(modules), package
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for path, _ in _registered("cli.realmodels_app", "realmodels") + _registered("cli.toysuper_app", "toysuper"):
        assert f'id="{"-".join(path)}"' in cli, path
