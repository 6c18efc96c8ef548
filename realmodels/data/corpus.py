"""Plain English text for training SAEs offline: a UTF-8 text file, or a corpus that every Python installation
ships, cut into fixed windows of tokens (every token of a window but its first is an SAE training token).

``python-docs``: the Python language reference and library topics that ``help()`` prints, from the standard
library's ``pydoc_data.topics`` (generated from the CPython documentation; in Python 3.11: 79 topics, 464,970 characters, 112,730 tokens
in 903 windows of SmolLM2's 49,152-token vocabulary; the text follows the running Python's version, and
the run's config records its hash). It is real English written by people (technical prose with code examples),
present on any machine with Python and unrelated to the emergent-misalignment data, so an SAE trained on it does
not favour any of the EM datasets.

A window's first token is not trained on: with no BOS token before it, the model uses it as an attention sink and
its residual norm is an outlier (measured on SmolLM2-135M: 23,500 against a median of 167 at layer 15)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from realmodels.data.chat import TokenizedChat

PYTHON_DOCS = "python-docs"
CORPORA = (PYTHON_DOCS,)
WINDOW = 128  # tokens per window


def python_docs() -> tuple[str, ...]:
    """The ``pydoc_data.topics`` texts, one document per topic, in topic-name order."""
    from pydoc_data.topics import topics

    return tuple(topics[name] for name in sorted(topics))


@dataclass(frozen=True, eq=False)
class TextCorpus:
    """``source`` (a corpus name, or a text file's absolute path), ``sha256`` of its text and ``documents``
    (a named corpus's documents; a file's blank-line-separated paragraphs joined back into one document)."""

    source: str
    sha256: str
    documents: tuple[str, ...]

    @classmethod
    def open(cls, source: str | Path) -> TextCorpus:
        """A named corpus (``CORPORA``) or a UTF-8 text file; a missing, undecodable or empty file is an
        InputError."""
        if str(source) in CORPORA:
            documents = python_docs()
            return cls(str(source), hashlib.sha256("\0".join(documents).encode()).hexdigest(), documents)
        path = Path(source).expanduser()
        if not path.is_file():
            raise ParamError(f"`text` {source} is neither a corpus ({', '.join(CORPORA)}) nor a text file")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"text file {path} is not UTF-8 (byte {exc.start})") from None
        if not text.strip():
            raise InputError(f"text file {path} holds no text")
        return cls(str(path.resolve()), hashlib.sha256(raw).hexdigest(), (text,))

    def entry(self) -> dict:
        """How the corpus enters a run's config: ``{"text": source, "sha256": hash}``."""
        return {"text": self.source, "sha256": self.sha256}

    def windows(self, tokenizer: PreTrainedTokenizerBase, window: int = WINDOW) -> list[TokenizedChat]:
        """Every document tokenised (no special tokens) and cut into consecutive windows of ``window`` tokens (a
        last piece shorter than ``window // 4`` is dropped); the mask marks every token but the first."""
        import torch

        from realmodels.data.chat import TokenizedChat

        if window < 2:
            raise ParamError(f"`window` must be at least 2 tokens, got {window}")
        out = []
        for document in self.documents:
            ids = tokenizer(document, add_special_tokens=False)["input_ids"]
            for start in range(0, len(ids), window):
                piece = ids[start:start + window]
                if len(piece) < max(2, window // 4):
                    continue
                mask = torch.ones(len(piece), dtype=torch.bool)
                mask[0] = False
                out.append(TokenizedChat(torch.tensor(piece, dtype=torch.long), mask))
        if not out:
            raise InputError(f"text {self.source} is shorter than one window of {window} tokens")
        return out
