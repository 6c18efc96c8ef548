"""The docstrings the API reference is generated from (mkdocstrings, google style) are there and not stale.

Read statically with griffe (``allow_inspection=False``: no project module is imported, so no torch), over the
packages ``theory``, ``runio``, ``toysuper``, ``realmodels`` and ``cli``:

- every module, public class, public function, public method and public property (name not starting with ``_``,
  so dunders aside, inside no private class) has a non-empty docstring;
- every field of a config dataclass (a dataclass whose name ends in ``Config``, ``Spec`` or ``Options``: the ones
  ``cli/dataclass_options.py`` and ``cli/configfile.py`` turn into command-line options, their help being the
  field's docstring) has a docstring;
- a google-style ``Args:``/``Parameters:`` section names only parameters the signature has, and griffe parses every
  docstring without a warning (a warning fails ``mkdocs build --strict``);
- a backticked dotted name of the toolkit (```realmodels.analysis.geometry.feature_geometry```, ``theory.x``)
  resolves to a module or an attribute that exists, and is not broken over two lines;
- a backticked ``--flag`` in a docstring of ``cli/`` is an option of the ``realmodels`` or ``toysuper`` app.

Each check fails with its offenders, one ``path:line name`` a line. griffe is the docs extra's (``.ci/run`` installs
it); without it the file skips, as ``tests/test_docs.py`` does without mkdocs."""

from __future__ import annotations

import logging
import re
import sys
from functools import cache
from pathlib import Path

import pytest

griffe = pytest.importorskip("griffe", reason="griffe comes with the docs extra (pip install -e '.[docs]'; CI has it)")

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "runio", "toysuper", "realmodels", "cli")
CONFIG_SUFFIXES = ("Config", "Spec", "Options")
PARAMETER_SECTIONS = {griffe.DocstringSectionKind.parameters, griffe.DocstringSectionKind.other_parameters}
# a backticked dotted name starting with a toolkit package, optionally called: `theory.geometry.f` or ``runio.x()``
DOTTED = re.compile(r"`{1,2}((?:%s)(?:\.[A-Za-z_]\w*)+)(?:\(\))?`{1,2}" % "|".join(PACKAGES))
# the same name broken over two lines: rendered with a space in it, and not found by DOTTED
SPLIT = re.compile(r"`{1,2}((?:%s)(?:\.\w+)*\.)\n\s*(\w[\w.]*)`{1,2}" % "|".join(PACKAGES))
FLAG = re.compile(r"`{1,2}(--[a-z][\w-]*)")


@cache
def _modules() -> dict[str, griffe.Module]:
    """Every module of the packages, by dotted name, loaded from source."""
    loader = griffe.GriffeLoader(search_paths=[str(ROOT)], docstring_parser=griffe.Parser.google,
                                 allow_inspection=False)
    found: dict[str, griffe.Module] = {}

    def walk(module: griffe.Module) -> None:
        found[module.path] = module
        for sub in module.modules.values():
            walk(sub)

    for package in PACKAGES:
        walk(loader.load(ROOT / package))
    return found


def _where(obj: griffe.Object) -> str:
    """``path:line name`` of an object (line 1 for a module)."""
    return f"{Path(obj.filepath).relative_to(ROOT)}:{obj.lineno or 1} {obj.path}"


def _own_members(obj: griffe.Object):
    """The members defined in ``obj`` itself (imports, which are aliases, left out)."""
    return [member for member in obj.members.values() if not member.is_alias]


def _documented_objects():
    """Every module, and every class, function and attribute defined in one (nested classes and methods included)."""
    def walk(obj):
        yield obj
        if obj.is_module or obj.is_class:
            for member in _own_members(obj):
                if not member.is_module:  # sub-modules are walked from _modules
                    yield from walk(member)

    for module in _modules().values():
        yield from walk(module)


def _public(obj: griffe.Object) -> bool:
    """Whether the API reference shows ``obj``: its name, and the names of the classes around it, not private."""
    while not obj.is_module:
        if obj.name.startswith("_"):
            return False
        obj = obj.parent
    return True


def _docstring(obj: griffe.Object) -> str:
    return obj.docstring.value.strip() if obj.docstring else ""


def _report(offenders: list[str], what: str) -> None:
    assert not offenders, f"{len(offenders)} {what}:\n" + "\n".join(sorted(offenders))


def test_every_module_and_public_class_function_and_method_has_a_docstring():
    offenders = [_where(obj) for obj in _documented_objects()
                 if (obj.is_module or ((obj.is_class or obj.is_function or "property" in obj.labels) and _public(obj)))
                 and not _docstring(obj)]
    _report(offenders, "modules, public classes, functions or methods without a docstring")


def _is_config(obj: griffe.Object) -> bool:
    return obj.is_class and "dataclass" in obj.labels and obj.name.endswith(CONFIG_SUFFIXES)


def test_every_config_dataclass_field_has_a_docstring():
    offenders = [_where(field) for obj in _documented_objects() if _is_config(obj)
                 for field in _own_members(obj)
                 if field.is_attribute and "instance-attribute" in field.labels and not field.name.startswith("_")
                 and not _docstring(field)]
    _report(offenders, "config dataclass fields without a docstring (their help as command-line options)")


def _signature_names(obj: griffe.Object) -> set[str] | None:
    """The parameter names of a function, or of a class's constructor; None when griffe cannot tell."""
    try:
        return {parameter.name for parameter in obj.parameters}
    except (AttributeError, ValueError):
        return None


class _Warnings(logging.Handler):
    """Collects the messages griffe logs while parsing a docstring."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_docstrings_parse_cleanly_and_their_args_sections_name_real_parameters():
    handler = _Warnings()
    logger = logging.getLogger("griffe")
    logger.addHandler(handler)
    offenders = []
    try:
        for obj in _documented_objects():
            if not obj.docstring or not (obj.is_module or _public(obj)):
                continue
            handler.messages.clear()
            sections = obj.docstring.parse(griffe.Parser.google, warnings=True)
            offenders += [f"{_where(obj)}: {message}" for message in handler.messages]
            names = _signature_names(obj) if (obj.is_function or obj.is_class) else None
            for section in sections:
                if section.kind in PARAMETER_SECTIONS:
                    stale = [p.name for p in section.value if names is None or p.name.lstrip("*") not in names]
                    offenders += [f"{_where(obj)}: documents parameter {name!r}, which it does not have"
                                  for name in stale]
    finally:
        logger.removeHandler(handler)
    _report(offenders, "docstrings that griffe warns about or that document parameters the signature lacks")


def _resolves(dotted: str) -> bool:
    """Whether ``dotted`` names a module of the packages or an attribute of one (followed through imports)."""
    modules = _modules()
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):  # the longest module prefix, then attribute by attribute
        obj = modules.get(".".join(parts[:split]))
        if obj is None:
            continue
        for name in parts[split:]:
            if obj.is_alias:
                try:
                    obj = obj.final_target
                except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                    return False
            if name not in obj.members:
                return False
            obj = obj.members[name]
        return True
    return False


def test_backticked_toolkit_names_in_docstrings_exist():
    offenders = [f"{_where(obj)}: `{name}`" for obj in _documented_objects()
                 for name in DOTTED.findall(_docstring(obj)) if not _resolves(name)]
    offenders += [f"{_where(obj)}: `{head}{tail}` is broken over two lines" for obj in _documented_objects()
                  for head, tail in SPLIT.findall(_docstring(obj))]
    _report(offenders, "docstrings naming a module or attribute of the toolkit that does not exist")


def _cli_flags() -> set[str]:
    """Every option spelling of every command of the two typer apps (importing them imports no torch)."""
    import importlib

    import typer.main

    flags: set[str] = set()

    def walk(command):
        for param in command.params:
            flags.update(param.opts + param.secondary_opts)
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    for module in ("cli.realmodels_app", "cli.toysuper_app"):
        walk(typer.main.get_command(importlib.import_module(module).app))
    return flags


def test_backticked_flags_in_cli_docstrings_are_options_of_the_apps():
    flags = _cli_flags()
    offenders = [f"{_where(obj)}: {flag}" for obj in _documented_objects() if obj.path.split(".")[0] == "cli"
                 for flag in FLAG.findall(_docstring(obj)) if flag not in flags]
    _report(offenders, "cli docstrings naming a flag no command has")


# ------------------------------------------------------------------------------------------- the checks can fail
@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A package (``theory`` unless named) in ``tmp_path`` holding one module with the given source, loaded
    instead of the real packages."""
    def plant(source: str, name: str = "theory") -> None:
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text('"""A package."""\n')
        (package / "planted.py").write_text(source)
        monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
        monkeypatch.setattr(sys.modules[__name__], "PACKAGES", (name,))
        _modules.cache_clear()

    yield plant
    _modules.cache_clear()


def test_a_missing_docstring_is_reported_with_its_path_and_line(planted):
    planted('"""A module."""\n\n\ndef documented():\n    """Yes."""\n\n\nclass Thing:\n    def method(self):\n'
            '        return 1\n\n    def _private(self):\n        return 2\n')
    with pytest.raises(AssertionError, match=r"theory/planted\.py:8 theory\.planted\.Thing\n  "
                                             r"theory/planted\.py:9 theory\.planted\.Thing\.method\n"):
        test_every_module_and_public_class_function_and_method_has_a_docstring()


def test_a_config_field_without_a_docstring_is_reported(planted):
    planted('"""A module."""\n\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass RunConfig:\n'
            '    """A config."""\n\n    steps: int = 1\n    """Steps."""\n    seed: int = 0\n')
    with pytest.raises(AssertionError, match=r"theory/planted\.py:12 theory\.planted\.RunConfig\.seed\n"):
        test_every_config_dataclass_field_has_a_docstring()


def test_a_stale_args_section_is_reported(planted):
    planted('"""A module."""\n\n\ndef f(x: int) -> int:\n    """Double.\n\n    Args:\n        x: A number.\n'
            '        y: Gone.\n    """\n    return 2 * x\n')
    with pytest.raises(AssertionError, match=r"theory/planted\.py:4 theory\.planted\.f: documents parameter 'y'"):
        test_docstrings_parse_cleanly_and_their_args_sections_name_real_parameters()


def test_a_dangling_dotted_reference_is_reported(planted):
    planted('"""See ``theory.planted.f`` and ``theory.planted.gone`` and `theory.nothing.g()`, and ``theory.\n'
            'planted.f``."""\n\n\ndef f():\n    """F."""\n')
    with pytest.raises(AssertionError, match=r"3 docstrings.*\n.*`theory\.nothing\.g`\n.*`theory\.planted\.f` is "
                                             r"broken over two lines\n.*`theory\.planted\.gone`\n"):
        test_backticked_toolkit_names_in_docstrings_exist()


def test_a_docstring_griffe_warns_about_is_reported(planted):
    planted('"""A module."""\n\n\ndef f(x):\n    """Double.\n\n    Args:\n        x: A number.\n    """\n'
            '    return 2 * x\n')
    with pytest.raises(AssertionError, match=r"theory/planted\.py:4 theory\.planted\.f: .*No type or annotation for "
                                             r"parameter 'x'"):
        test_docstrings_parse_cleanly_and_their_args_sections_name_real_parameters()


def test_a_cli_docstring_naming_an_unknown_flag_is_reported(planted):
    planted('"""Pass ``--out`` DIR, or `--no-such-flag`."""\n', name="cli")
    with pytest.raises(AssertionError, match=r"1 cli docstrings.*\n  cli/planted\.py:1 cli\.planted: --no-such-flag\n"):
        test_backticked_flags_in_cli_docstrings_are_options_of_the_apps()
