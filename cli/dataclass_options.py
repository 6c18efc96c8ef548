"""Command-line options generated from the library's dataclasses: each field becomes an option named after it
(``max_length`` -> ``--max-length``), typed as the field, with the field's default and its docstring as help, so
no command types out the model and run options (``realmodels.experiments.spec``) or a config's fields again.

    @user_errors
    @with_options(model=MODEL_OPTIONS, options=RUN_OPTIONS)
    def geometry(..., model: ModelSpec, options: RunOptions) -> None: ...

typer then sees the command's own parameters followed by every generated option; the command receives the
dataclasses built from them (their ``__post_init__`` checks the values)."""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Annotated, Any

import typer
from rich.markup import escape


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring of each field of dataclass ``cls`` (the string literal right after the field), on one
    line."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                docs[node.target.id] = " ".join(inspect.cleandoc(after.value.value).split())
    return docs


def help_of(cls: type, name: str) -> str:
    """Field ``name``'s docstring as option help, ending with a full stop, escaped for rich."""
    doc = field_docs(cls).get(name)
    if doc is None:
        raise ValueError(f"{cls.__name__}.{name} has no docstring to use as its help")
    return escape(doc if doc.endswith((".", ")", "]")) else doc + ".")


@dataclass(frozen=True)
class OptionGroup:
    """How a dataclass becomes options: its fields but ``exclude``, under the help panel ``panel``; ``decls``
    gives a field its own flag spelling (``{"progress": ("--progress/--no-progress",)}``), ``extra`` more
    ``typer.Option`` arguments (a callback, ``show_default``), ``help`` a command-specific help text."""

    cls: type
    panel: str | None = None
    exclude: tuple[str, ...] = ()
    decls: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    help: dict[str, str] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes) -> OptionGroup:
        """This group with fields of it changed; dict fields are merged (``exclude`` is replaced)."""
        merged = {key: {**getattr(self, key), **value} if isinstance(getattr(self, key), dict) else value
                  for key, value in changes.items()}
        return OptionGroup(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **merged})

    def names(self) -> list[str]:
        """The names of the fields that become options: the dataclass's ``__init__`` fields but ``exclude``."""
        return [f.name for f in fields(self.cls) if f.init and f.name not in self.exclude]

    def parameters(self) -> list[inspect.Parameter]:
        """One keyword-only typer parameter per field."""
        hints = typing.get_type_hints(self.cls)
        params = []
        for f in fields(self.cls):
            if not f.init or f.name in self.exclude:
                continue
            default = self.defaults.get(f.name, f.default if f.default is not MISSING else f.default_factory())
            option = typer.Option(*self.decls.get(f.name, ()), help=self.help.get(f.name) or help_of(self.cls, f.name),
                                  rich_help_panel=self.panel, **self.extra.get(f.name, {}))
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=Annotated[hints[f.name], option]))
        return params


def with_options(**groups: OptionGroup):
    """Decorator: each parameter ``name`` of the command given here is replaced, in typer's view, by the options of
    its ``OptionGroup``; the command is called with ``name=group.cls(**those options)`` (an option not passed, as when
Python calls the command, keeps the dataclass's default)."""

    def decorate(fn):
        signature = inspect.signature(fn, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in groups]
        generated = [p for group in groups.values() for p in group.parameters()]
        clash = {p.name for p in own} & {p.name for p in generated}
        if clash:
            raise TypeError(f"{fn.__name__}: options {sorted(clash)} are both the command's and generated")

        @functools.wraps(fn)
        def command(*args, **kwargs):
            for name, group in groups.items():
                kwargs[name] = group.cls(**{key: kwargs.pop(key) for key in group.names() if key in kwargs})
            return fn(*args, **kwargs)

        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + generated
        command.__signature__ = inspect.Signature(params, return_annotation=signature.return_annotation)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
