"""A chat dataset opened once per run: the file read once (every line checked, the bytes hashed), its
conversations kept, and its tokenisation made once per (tokenizer, ``max_length``) and shared by every stage that
needs it (the input check before anything loads, the activations, fine-tuning).

Its identity in a run's config and in activation caches is ``{"path", "sha256"}`` (``entry``): the absolute path
and the SHA-256 of the file's bytes, so changed data is a different run."""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.data.jsonl import Conversation, _messages, decode_lines
from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from realmodels.data.chat import TokenizedChat


@dataclass(frozen=True, eq=False)
class Dataset:
    """``path`` (absolute), ``sha256`` (of the bytes), ``lines`` (the non-blank lines verbatim, as
    ``realmodels.data.jsonl.iter_jsonl_lines`` yields them) and ``conversations`` (their checked messages)."""

    path: Path
    sha256: str
    lines: tuple[str, ...]
    conversations: tuple[Conversation, ...]
    line_numbers: tuple[int, ...]
    _tokenized: dict = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, path: str | Path, role: str = "chat") -> Dataset:
        """Read, check and hash the chat JSONL file ``path`` in one read. ``role`` names it in errors: a
        parameter in backticks (```harmful```: the CLI shows its flag) or a description ("domain health
        inducing"). A missing file, a bad line (``file:line``) or a file without conversations is an
        InputError."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise ParamError(f"{role} dataset {p} does not exist or is not a file")
        p = p.resolve()
        raw = p.read_bytes()
        lines, conversations, numbers = [], [], []
        for number, line in decode_lines(raw.split(b"\n"), p):
            conversations.append(_messages(line, f"{p}:{number}"))
            lines.append(line)
            numbers.append(number)
        if not conversations:
            raise InputError(f"chat dataset {p} holds no conversations")
        return cls(p, hashlib.sha256(raw).hexdigest(), tuple(lines), tuple(conversations), tuple(numbers))

    def __len__(self) -> int:
        return len(self.conversations)

    def entry(self) -> dict:
        """How the dataset enters a run's config: ``{"path": absolute path, "sha256": hash}``."""
        return {"path": str(self.path), "sha256": self.sha256}

    def tokenized(self, tokenizer: PreTrainedTokenizerBase, max_length: int | None) -> list[TokenizedChat]:
        """Every conversation rendered with the tokenizer's chat template and tokenised as the activations and
        fine-tuning read it (``realmodels.data.chat.tokenize_chats``), made once per (tokenizer, max_length)."""
        key = (id(tokenizer), max_length)
        if key not in self._tokenized:
            from realmodels.data.chat import tokenize_chats

            chats = tokenize_chats(tokenizer, self.conversations, max_length=max_length,
                                   labels=[f"{self.path}:{number}" for number in self.line_numbers])
            if n_truncated := sum(chat.truncated for chat in chats):
                warnings.warn(f"{self.path}: {n_truncated} of {len(chats)} conversations are longer than "
                              f"{max_length} tokens and were truncated (only their first tokens count; see "
                              "`max_length`)", stacklevel=2)
            self._tokenized[key] = (tokenizer, chats)  # the tokenizer is kept so that its id stays its own
        return self._tokenized[key][1]


def as_dataset(data: Dataset | str | Path, role: str = "chat") -> Dataset:
    """``data`` itself when it is a ``Dataset``, else the file opened (``Dataset.open``)."""
    return data if isinstance(data, Dataset) else Dataset.open(data, role)


class Datasets:
    """The datasets of one run, each file opened once: asking again for the same file (by its resolved path)
    returns the same ``Dataset``, so its lines are read and its conversations tokenised once per run."""

    def __init__(self):
        self._opened: dict[Path, Dataset] = {}

    def open(self, data: Dataset | str | Path, role: str = "chat") -> Dataset:
        """The run's ``Dataset`` of ``data`` (a file, or a ``Dataset`` this registry adopts unless it holds one
        for the same file); ``role`` names it in errors (``Dataset.open``)."""
        if isinstance(data, Dataset):
            return self._opened.setdefault(data.path, data)
        path = Path(data).expanduser()
        key = path.resolve() if path.is_file() else None
        if key is not None and key in self._opened:
            return self._opened[key]
        dataset = Dataset.open(path, role)
        return self._opened.setdefault(dataset.path, dataset)
