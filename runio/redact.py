"""Secret hygiene: the one place that knows the secrets in use (API keys read from the environment) and removes
them from text the toolkit prints, logs or writes. ``redact(text)`` replaces every registered secret and every
``Bearer <token>`` (a token of 8 or more characters, whatever a server echoes back) with ``***``.

Applied to every message built from a server's text (``realmodels.evaluate.endpoints``), to every log record
(``install_log_redaction``: a log-record factory, so every logger and handler of the process, Ray workers
included), to the CLI's ``error:`` line (``cli.errors.fail``), to job errors and their traceback files
(``runio.jobs``, ``realmodels.data.pool``) and, in a Ray worker, to everything the job writes to stdout/stderr
(``RedactingStream``)."""

from __future__ import annotations

import logging
import os
import re
import threading

MASK = "***"
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20|\+)[A-Za-z0-9._~+/=:-]{8,}")  # 8+ characters: not "bearer of"
_MIN_SECRET = 4  # shorter values ("" or "abc") would mask ordinary words
_SECRET_VARIABLE = re.compile(r"(?i)(api_?key|token|secret|password)$")  # environment variables holding secrets
_secrets: set[str] = set()
_lock = threading.Lock()
_scanned = False


def register_secret(value: str | None) -> None:
    """Remember ``value`` (an API key) so that ``redact`` removes it from now on; placeholders such as "EMPTY"
    and values shorter than 4 characters are not secrets."""
    if value and len(value) >= _MIN_SECRET and value != "EMPTY":
        with _lock:
            _secrets.add(value)


def _scan_environment() -> None:
    """Register the values of the environment variables named like secrets (``*_API_KEY``, ``*_TOKEN``...)."""
    global _scanned
    _scanned = True
    for name, value in os.environ.items():
        if _SECRET_VARIABLE.search(name):
            register_secret(value)


def redact(text) -> str:
    """``text`` (any object, as str) with every registered secret (and the values of the environment's
    ``*_API_KEY``/``*_TOKEN``/``*_SECRET``/``*_PASSWORD`` variables) and every ``Bearer <token>`` replaced by
    ***."""
    text = str(text)
    if not _scanned:
        _scan_environment()
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # a secret containing another goes first
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


class RedactingStream:
    """A text stream that redacts what is written to it before passing it on to ``stream``."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text`` with its secrets masked (``redact``); returns the length of the original text."""
        self._stream.write(redact(text))
        return len(text)

    def __getattr__(self, name):  # flush, fileno, isatty, encoding...
        return getattr(self._stream, name)


_installed = False


def install_log_redaction() -> None:
    """Redact every log record of this process from now on (message, arguments and exception text), whichever
    logger creates it and whichever handler writes it. Idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    make_record = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string: let the handler report it as usual
            return record
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
