"""The one exception type for errors a user can cause (bad config, bad data, bad paths).

The CLIs render it as a single line and exit with code 2; anything else is a bug and raises."""

import re


class InputError(ValueError):
    """A problem with what the user asked for, stated in one line."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when the message is empty): what a one-line error
    quotes of an exception a library raised."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


PARAM = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)`")
"""How a message names a parameter: in backticks (```max_length` must be at least 1``)."""


class ParamError(InputError):
    """An InputError about parameters, each named in backticks as the Python API spells it (```max_length` must be
    at least 1, got 0``). A client with its own names renders them with ``renamed``: the CLI's flags
    (``--max-length must be at least 1, got 0``)."""

    @property
    def params(self) -> list[str]:
        """The parameter names the message mentions, in order."""
        return PARAM.findall(str(self))

    def renamed(self, rename) -> str:
        """The message with every backticked parameter ``p`` replaced by ``rename(p)``."""
        return PARAM.sub(lambda match: rename(match.group(1)), str(self))
