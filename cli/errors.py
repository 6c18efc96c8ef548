"""Render user errors as one line and exit 2; let bugs raise.

User errors: an InputError, an OS error about a path (read-only filesystem, no permission, full disk, a file
where a directory should be: one line naming the path and what to do), a job of the execution layer that raised
one of those two (``runio.jobs.JobError`` of kind "input" or "os": its one line) and an interrupt (Ctrl-C: says
whether the run directories hold finished work a rerun resumes). All exit with code 2. A job that raised anything
else is a bug: its ``JobError`` propagates (a traceback, with the job's own traceback as a note; exit code 1). Every error and warning line is
redacted (``runio.redact``: no API key or ``Bearer`` token is ever printed), and ``run_app`` redacts every log
record of the process."""

from __future__ import annotations

import errno
import functools
import sys
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape

from runio.jobs import JobError
from runio.redact import install_log_redaction, redact
from runio.rundir import RunDir
from theory.errors import PARAM, InputError, ParamError

EXIT_USER_ERROR = 2
err_console = Console(stderr=True, highlight=False)

OS_ADVICE = {  # errno -> what to do
    errno.EROFS: "the filesystem is read-only; choose an --out on a writable filesystem",
    errno.EACCES: "permission denied; choose a directory you can write (or fix its permissions)",
    errno.EPERM: "operation not permitted; choose a directory you can write (or fix its permissions)",
    errno.ENOSPC: "no space left on the device; free some space (or choose another --out) and rerun with the "
                  "same --out to resume",
    errno.EDQUOT: "disk quota exceeded; free some space and rerun with the same --out to resume",
    errno.ENOTDIR: "a part of this path is a file, not a directory; choose another path",
    errno.EISDIR: "this is a directory, not a file",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "something already exists there; choose another path",
}


def fail(message: str) -> None:
    """Print ``error: message`` (redacted) on one line to stderr and exit with code 2."""
    err_console.print(f"[bold red]error:[/] {escape(redact(message))}", soft_wrap=True)  # messages may hold [brackets]
    sys.exit(EXIT_USER_ERROR)


def os_error_message(exc: OSError) -> str:
    """``<path>: <what to do>`` for an OSError (the strerror when no advice is known)."""
    advice = OS_ADVICE.get(exc.errno) or exc.strerror or str(exc)
    return f"{exc.filename}: {advice}" if exc.filename is not None else advice


def interrupt_message(runs: list[RunDir]) -> str:
    """What a Ctrl-C leaves: which of ``runs`` (the run directories the command opened) hold finished files."""
    kept = [run.path for run in runs if run.path.is_dir() and run.finished_files()]
    if kept:
        return (f"interrupted; finished work is saved in {', '.join(map(str, kept))}: rerun with the same --out to "
                "resume")
    return "interrupted before any result was saved; nothing to resume"


def flag(param: str, flags: dict[str, str] | None = None) -> str:
    """The command-line flag of the library parameter ``param``: ``flags[param]`` when the command names it
    differently, else ``--`` + the name with dashes (``max_length`` -> ``--max-length``)."""
    return (flags or {}).get(param) or "--" + param.replace("_", "-")


def user_errors(fn: Callable | None = None, *, flags: dict[str, str] | None = None) -> Callable:
    """Decorator for CLI commands: InputError, an OSError (missing or unwritable path, full disk), a JobError of
    either kind and Ctrl-C -> one line, exit 2; a JobError of kind "bug" raises. A ``ParamError`` names the
    library's parameters: the line names the command's flags instead (``flag``; ``flags`` maps the parameters a
    command spells differently). Use as ``@user_errors`` or ``@user_errors(flags={...})``."""
    if fn is None:
        return functools.partial(user_errors, flags=flags)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        opened_before = len(RunDir.opened)
        try:
            return fn(*args, **kwargs)
        except ParamError as exc:
            fail(exc.renamed(lambda param: flag(param, flags)))
        except InputError as exc:
            fail(str(exc))
        except OSError as exc:
            fail(os_error_message(exc))
        except JobError as exc:
            if exc.kind == "bug":
                raise
            fail(PARAM.sub(lambda match: flag(match.group(1), flags), str(exc)))  # a job's ParamError
        except KeyboardInterrupt:
            fail(interrupt_message(RunDir.opened[opened_before:]))

    return wrapper


def run_app(app) -> None:
    """Run a typer app so that usage errors (bad option values, unknown options) are one line, exit 2,
    and warnings are printed as one ``warning:`` line each (parameters named in backticks shown as flags)."""
    import warnings

    import typer

    def _show_warning(message, category, filename, lineno, file=None, line=None):
        text = PARAM.sub(lambda match: flag(match.group(1)), str(message))  # a library warning names parameters
        err_console.print(f"[yellow]warning:[/] {escape(redact(text))}", soft_wrap=True)

    warnings.showwarning = _show_warning
    install_log_redaction()
    try:
        app(standalone_mode=False)
    except typer.Abort:
        fail("aborted")
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.exceptions.TyperException as exc:  # click's UsageError, BadParameter, NoSuchOption...
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        fail(message.replace("\n", " ") + " (see --help)")
