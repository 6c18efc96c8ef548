"""The one exception type for errors a user can cause (bad config, bad data, bad paths).

The CLIs render it as a single line and exit with code 2; anything else is a bug and raises."""


class InputError(ValueError):
    """A problem with what the user asked for, stated in one line."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when the message is empty): what a one-line error
    quotes of an exception a library raised."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
