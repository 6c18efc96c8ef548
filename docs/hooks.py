"""MkDocs hook that generates the reference pages at build time, so they cannot drift from the code.

- ``reference/cli.md``: every command of the ``realmodels`` and ``toysuper`` typer apps (sub-apps included), with
  its usage line, help text and each option's help record (option names, type, help, default), read from the click
  commands ``typer.main.get_command`` builds. Importing the apps imports no torch (``tests/test_layering.py``).
- ``reference/api/<package>.md``: one page per Python package of the project (``theory``, ``runio``, ``toysuper``,
  ``toysuper.em``, ``realmodels``, ``realmodels.<sub>``..., ``cli``) with one mkdocstrings ``::: module`` block per
  module found on disk, so a new module or package appears without editing anything; ``reference/api/index.md``
  links them. The API section of ``nav`` is expanded to these pages.

Nothing is written to ``docs/``: the pages exist only in the build (``File.generated``).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("theory", "runio", "toysuper", "realmodels", "cli")  # top-level packages, in reading order (flow)
APPS = (("realmodels", "cli.realmodels_app"), ("toysuper", "cli.toysuper_app"))
CLI_PAGE = "reference/cli.md"
API_DIR = "reference/api"


# ---------------------------------------------------------------------------------------------------- CLI reference

def walk_commands(command, ctx, path: tuple[str, ...]):
    """Yield ``(path, command, ctx)`` for ``command`` and, depth first in registration order, every sub-command."""
    yield path, command, ctx
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            yield from walk_commands(sub, type(ctx)(sub, info_name=name, parent=ctx), path + (name,))


def app_commands(prog: str, module: str) -> list[tuple[tuple[str, ...], object, object]]:
    """Every command of the typer app ``module.app`` run as ``prog``: ``(path, click command, click context)``."""
    import importlib

    import typer.main

    root = typer.main.get_command(importlib.import_module(module).app)
    return list(walk_commands(root, root.context_class(root, info_name=prog), (prog,)))


def _text(help_text: str | None) -> str:
    """Click/typer help text as HTML paragraphs: rich's ``\\[`` escapes undone, ``\\b`` markers dropped."""
    if not help_text:
        return ""
    help_text = help_text.replace("\\[", "[").replace("\b", "")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", help_text) if p.strip()]
    return "\n".join(f"<p>{html.escape(' '.join(p.split()))}</p>" for p in paragraphs)


def _options_table(command, ctx) -> str:
    """One HTML table row per visible parameter: its help record (names and type; help with default/required)."""
    rows = []
    for param in command.params:
        record = param.get_help_record(ctx)  # typer gives arguments a record too; None when hidden
        if record is None:
            continue
        names, help_text = record
        help_text = help_text.replace("\\[", "[")
        rows.append(f"<tr><td><code>{html.escape(names)}</code></td><td>{html.escape(help_text)}</td></tr>")
    if not rows:
        return ""
    return ("<table>\n<thead><tr><th>Option</th><th>Description</th></tr></thead>\n<tbody>\n"
            + "\n".join(rows) + "\n</tbody>\n</table>")


def cli_reference_markdown() -> str:
    """The CLI reference page: for each app, the root help and its commands, then one section per command."""
    lines = ["# CLI reference", "",
             "Generated at build time from the typer apps (`docs/hooks.py`); the same text as `--help`.", ""]
    for prog, module in APPS:
        commands = app_commands(prog, module)
        _, root, root_ctx = commands[0]
        lines += [f"## `{prog}`", "", _text(root.help), "",
                  f"```text\n{root.get_usage(root_ctx)}\n```", "", "Commands:", ""]
        lines += [f"- [`{' '.join(path)}`](#{_anchor(path)})" for path, cmd, _ in commands[1:]
                  if not hasattr(cmd, "list_commands")]
        lines.append("")
        for path, command, ctx in commands[1:]:
            depth = min(len(path) + 1, 6)
            lines += [f"{'#' * depth} `{' '.join(path)}` {{ #{_anchor(path)} }}", "", _text(command.help), ""]
            if hasattr(command, "list_commands"):
                continue
            lines += [f"```text\n{command.get_usage(ctx)}\n```", "", _options_table(command, ctx), ""]
    return "\n".join(lines)


def _anchor(path: tuple[str, ...]) -> str:
    """The heading id of a command: its words joined by dashes (``realmodels-organism-build``)."""
    return "-".join(path)


# ---------------------------------------------------------------------------------------------------- API reference

def api_packages(root: Path = ROOT) -> dict[str, list[str]]:
    """Each project package (a folder with ``__init__.py`` under a top-level package), mapped to its modules'
    dotted names (the package itself first, then its ``.py`` modules sorted), found on disk."""
    packages: dict[str, list[str]] = {}
    for top in PACKAGES:
        for init in sorted((root / top).rglob("__init__.py")):
            folder = init.parent
            if "__pycache__" in folder.parts:
                continue
            dotted = ".".join(folder.relative_to(root).parts)
            modules = [f"{dotted}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.name != "__init__.py"]
            packages[dotted] = [dotted] + modules
    return packages


def api_page_markdown(package: str, modules: list[str]) -> str:
    """The API page of one package: a ``::: module`` block per module (members documented, not their sub-modules,
    which have their own block or page)."""
    lines = [f"# `{package}`", ""]
    for module in modules:
        lines += [f"::: {module}", "    options:", "      show_submodules: false", "      heading_level: 2", ""]
    return "\n".join(lines)


def api_index_markdown(packages: dict[str, list[str]]) -> str:
    """The API index: one link per package page, with its module count."""
    lines = ["# API reference", "",
             "Generated at build time from the docstrings (mkdocstrings); one page per package, every module.", ""]
    lines += [f"- [`{name}`]({name}.md) ({len(mods) - 1} modules)" for name, mods in packages.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------- mkdocs events

def _expand_api_nav(nav: list, pages: list[str]) -> bool:
    """Replace the nav entry whose target is the API index by a section: the index, then every package page."""
    for i, item in enumerate(nav):
        if isinstance(item, dict):
            (title, target), = item.items()
            if target == f"{API_DIR}/index.md":
                nav[i] = {title: [f"{API_DIR}/index.md"]
                          + [{p[len(API_DIR) + 1:-3]: p} for p in pages]}
                return True
            if isinstance(target, list) and _expand_api_nav(target, pages):
                return True
    return False


def on_config(config):
    """Put the project root on ``sys.path`` (the CLI apps are imported) and expand the API section of ``nav``."""
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if config.nav is not None:
        _expand_api_nav(config.nav, [f"{API_DIR}/{name}.md" for name in api_packages()])
    return config


def on_files(files, config):
    """Add the generated reference pages to the build."""
    from mkdocs.structure.files import File

    packages = api_packages()
    files.append(File.generated(config, CLI_PAGE, content=cli_reference_markdown()))
    files.append(File.generated(config, f"{API_DIR}/index.md", content=api_index_markdown(packages)))
    for name, modules in packages.items():
        files.append(File.generated(config, f"{API_DIR}/{name}.md", content=api_page_markdown(name, modules)))
    return files
