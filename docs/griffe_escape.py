"""Griffe extension for the docs build (``mkdocs.yml``): docstrings are plain text with maths and placeholders such as
``<d_j, d_t>`` or ``runs/<study>-<timestamp>``, which Markdown would take for raw HTML tags and drop. Every ``<`` in
prose becomes ``&lt;`` before mkdocstrings renders the docstring; code spans, fenced and indented code blocks and
autolinks (``<https://...>``) are left as they are (Markdown escapes code itself). The code's docstrings, and the CLI
help built from them, are unchanged: this runs only in the docs build."""

from __future__ import annotations

import re

import griffe

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(?:.+?)\1", re.DOTALL)
_AUTOLINK = re.compile(r"<(?:https?|mailto|ftp):[^\s<>]*>")


def _escape_prose(text: str) -> str:
    """``<`` -> ``&lt;`` in one stretch of prose, outside code spans and autolinks."""
    out, last = [], 0
    for match in re.finditer(f"{_CODE_SPAN.pattern}|{_AUTOLINK.pattern}", text, re.DOTALL):
        out += [text[last:match.start()].replace("<", "&lt;"), match.group(0)]
        last = match.end()
    out.append(text[last:].replace("<", "&lt;"))
    return "".join(out)


def escape_angle_brackets(docstring: str) -> str:
    """The docstring with every prose ``<`` escaped (see the module docstring); code blocks kept verbatim.

    An indented line is code (Markdown's indented code block) when it follows a blank line or another code line;
    otherwise it continues the paragraph (or a Google-style section) and is prose."""
    lines, prose, fenced, in_code, previous_blank = [], [], False, False, True

    def flush():
        if prose:
            lines.extend(_escape_prose("\n".join(prose)).split("\n"))
            prose.clear()

    for line in docstring.split("\n"):
        blank = not line.strip()
        if _FENCE.match(line):
            flush()
            lines.append(line)
            fenced = not fenced
        elif fenced:
            lines.append(line)
        elif not blank and (len(line) - len(line.lstrip(" ")) >= 4) and (previous_blank or in_code):
            flush()
            lines.append(line)
            in_code = True
        elif blank:
            prose.append(line)  # a blank line keeps an indented code block open; prose is unaffected by it
        else:
            in_code = False
            prose.append(line)
        previous_blank = blank
    flush()
    return "\n".join(lines)


class EscapeAngleBrackets(griffe.Extension):
    """Escape prose ``<`` in every docstring once the object tree is built (before any docstring is parsed)."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if not obj.is_alias and obj.docstring is not None:
            obj.docstring.value = escape_angle_brackets(obj.docstring.value)
