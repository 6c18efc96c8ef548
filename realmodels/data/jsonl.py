"""Chat JSONL files: one ``{"messages": [{"role": ..., "content": ...}, ...]}`` object per line, read and
checked line by line (no torch, no tokenizer: this runs before anything is loaded), and hashed on raw bytes.

Lines are split on ``\\n`` only (a JSON string may hold a raw U+2028 or U+0085, which ``str.splitlines``
would split on), decoded as UTF-8 (a byte-order mark at the start of the file is dropped); blank lines are
skipped. Every problem is an InputError naming ``file:line`` (a line is parsed by ``runio.reading.loads_json``:
nesting too deep, an integer too large or NaN is a bad line, not a traceback)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from runio.reading import JsonError, file_sha256, loads_json
from theory.errors import InputError

Conversation = list[dict]
ROLES = ("system", "developer", "user", "assistant", "tool")  # the chat roles templates render
BOM = b"\xef\xbb\xbf"


def decode_lines(raw_lines: Iterable[bytes], path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text without the line break) for each non-blank line of ``raw_lines`` (a file's
    lines as bytes, split on ``\\n``), decoded as UTF-8 without a leading BOM; ``path`` names the file in errors."""
    for number, raw in enumerate(raw_lines, start=1):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}:{number}: not valid UTF-8 (byte {exc.start + 1} of the line: "
                             f"{exc.reason}); save the file as UTF-8") from None
        if line.strip():
            yield number, line


def iter_jsonl_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield (line number, text without the line break) for each non-blank line of a UTF-8 file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"chat dataset {path} does not exist or is not a file")
    with path.open("rb") as lines:
        yield from decode_lines(lines, path)


def _messages(line: str, where: str) -> Conversation:
    """The checked messages of one JSONL line (``where`` = "file:line" names it in errors)."""
    try:
        record = loads_json(line)
    except JsonError as exc:
        raise InputError(f"{where}: not valid JSON ({exc})") from None
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        raise InputError(f'{where}: expected an object {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
    for index, message in enumerate(messages):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                and isinstance(message.get("content"), str)):
            raise InputError(f"{where}: message {index} needs string 'role' and 'content'")
        if message["role"] not in ROLES:
            raise InputError(f"{where}: message {index} has unknown role {message['role']!r} "
                             f"(known roles: {', '.join(ROLES)})")
    if not any(message["role"] == "assistant" for message in messages):
        raise InputError(f"{where}: conversation has no assistant turn (its activations are averaged over "
                         "assistant tokens)")
    return messages


def iter_chat_jsonl(path: str | Path) -> Iterator[tuple[int, Conversation]]:
    """Yield (line number, messages) for each non-blank line; every malformed line is an InputError
    naming ``file:line`` (invalid UTF-8 or JSON, missing/ill-typed messages, an unknown role, no assistant
    turn)."""
    for number, line in iter_jsonl_lines(path):
        yield number, _messages(line, f"{path}:{number}")


def check_chat_jsonl(path: str | Path) -> int:
    """Check every line of a chat JSONL file (``iter_chat_jsonl``); return the number of conversations.
    A file without any is an InputError."""
    count = sum(1 for _ in iter_chat_jsonl(path))
    if not count:
        raise InputError(f"chat dataset {path} holds no conversations")
    return count


def read_chat_jsonl(path: str | Path) -> list[Conversation]:
    """All conversations of a chat JSONL file; an empty file is an InputError."""
    conversations = [messages for _, messages in iter_chat_jsonl(path)]
    if not conversations:
        raise InputError(f"chat dataset {path} holds no conversations")
    return conversations


def read_jsonl_lines(path: str | Path) -> list[str]:
    """The non-blank lines of a JSONL file, verbatim (without the line break or a leading BOM), in order."""
    return [line for _, line in iter_jsonl_lines(path)]


def dataset_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (hex, ``runio.reading.file_sha256``): the dataset's identity in run configs and
    activation cache keys."""
    return file_sha256(path)
