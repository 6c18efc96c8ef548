"""Chat conversations rendered with the tokenizer's chat template and tokenised, with a mask marking the
tokens of assistant replies (the files themselves are read and checked by ``realmodels.data.jsonl``).

The mask needs no ``{% generation %}`` markers: the text before assistant turn k is the template rendered
on ``messages[:k]`` with the generation prompt; the reply is the first occurrence of its content (or of
its trimmed content, as templates often ``| trim``) after the part of that prefix shared with the full
rendering. Tokens whose character offsets overlap a reply are assistant tokens.

Truncation to ``max_length`` tokens happens while tokenising: only a prefix of the rendered text is
tokenised (``CHARS_PER_TOKEN`` characters per wanted token, quadrupled until it holds enough), and tokens
ending within ``CUT_MARGIN`` characters of the cut, which the cut may have changed, are not used. So the
memory and time of a conversation are bounded by ``max_length``, not by its size; the tokens equal those of
the whole text unless one pre-token (a word, a whitespace run) longer than the margin straddles the cut."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from realmodels.data.jsonl import Conversation, iter_chat_jsonl
from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CHARS_PER_TOKEN = 8  # first guess of the characters that max_length tokens span
CUT_MARGIN = 256  # characters before a cut whose tokens may differ from the whole text's
PREFIX_BLOCK = 1 << 16  # characters compared at once when matching a rendered prefix


@dataclass(frozen=True)
class TokenizedChat:
    """``input_ids`` (seq,) long and ``assistant_mask`` (seq,) bool, True on assistant-reply tokens."""

    input_ids: Tensor
    assistant_mask: Tensor
    truncated: bool = False
    """Tokens beyond max_length were dropped."""


def _render(tokenizer: PreTrainedTokenizerBase, messages: Conversation, *, add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def _common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix, compared block by block (texts may be megabytes long)."""
    n = min(len(a), len(b))
    for lo in range(0, n, PREFIX_BLOCK):
        hi = min(lo + PREFIX_BLOCK, n)
        if a[lo:hi] != b[lo:hi]:
            return next(i for i in range(lo, hi) if a[i] != b[i])
    return n


def assistant_spans(tokenizer: PreTrainedTokenizerBase, messages: Conversation,
                    label: str = "conversation") -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the [start, end) character span of each assistant reply in it."""
    from jinja2 import TemplateError

    try:
        text = _render(tokenizer, messages)
    except TemplateError as exc:
        raise InputError(f"{label}: the chat template rejects this conversation ({exc})") from None
    spans: list[tuple[int, int]] = []
    for turn, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = spans[-1][1] if spans else 0
        try:
            prefix = _render(tokenizer, messages[:turn], add_generation_prompt=True) if turn else ""
            start = max(start, _common_prefix_length(prefix, text))
        except TemplateError:
            pass  # e.g. templates that reject an empty or system-only prefix; search after the last reply
        for content in (message["content"], message["content"].strip()):
            position = text.find(content, start) if content else -1
            if position >= 0:
                spans.append((position, position + len(content)))
                break
        else:
            if message["content"].strip():
                raise InputError(f"{label}: the chat template does not reproduce assistant turn {turn} verbatim, "
                                 "so its tokens cannot be located")
    return text, spans


def _encode(tokenizer: PreTrainedTokenizerBase, text: str, label: str) -> tuple[list[int], list[tuple[int, int]]]:
    try:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise InputError(f"{label}: the tokenizer gives no character offsets; a fast tokenizer is needed") from None
    return encoding["input_ids"], encoding["offset_mapping"]


def encode_prefix(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int | None, *,
                  label: str = "conversation") -> tuple[list[int], list[tuple[int, int]], bool]:
    """Token ids and character offsets of the first ``max_length`` tokens of ``text`` (all tokens when None)
    and whether any were dropped, tokenising only as much of the text as they need (module docstring)."""
    cut = len(text) if max_length is None else max(CHARS_PER_TOKEN * max_length, 2 * CUT_MARGIN)
    while cut < len(text):
        ids, offsets = _encode(tokenizer, text[:cut], label)
        if bisect_right([end for _, end in offsets], cut - CUT_MARGIN) >= max_length:
            return ids[:max_length], offsets[:max_length], True
        cut *= 4
    ids, offsets = _encode(tokenizer, text, label)
    if max_length is None or len(ids) <= max_length:
        return ids, offsets, False
    return ids[:max_length], offsets[:max_length], True


def tokenize_chat(tokenizer: PreTrainedTokenizerBase, messages: Conversation, *, label: str = "conversation",
                  max_length: int | None = None) -> TokenizedChat:
    """Render with the chat template, tokenize the first ``max_length`` tokens (no extra special tokens: the
    template has them), mask assistant tokens. No assistant token among them is an InputError."""
    text, spans = assistant_spans(tokenizer, messages, label)
    ids, offset_pairs, truncated = encode_prefix(tokenizer, text, max_length, label=label)
    input_ids = torch.tensor(ids, dtype=torch.long)
    offsets = torch.tensor(offset_pairs, dtype=torch.long).reshape(-1, 2)
    starts, ends = offsets[:, 0], torch.maximum(offsets[:, 1], offsets[:, 0] + 1)  # empty tokens sit at start
    mask = torch.zeros(len(input_ids), dtype=torch.bool)
    for span_start, span_end in spans:
        mask |= (starts < span_end) & (ends > span_start)
    if not mask.any():
        raise ParamError(f"{label}: no assistant tokens" + (
            f" within the first {max_length} tokens (raise `max_length` or shorten the conversation)"
            if truncated else ""))
    return TokenizedChat(input_ids=input_ids, assistant_mask=mask, truncated=truncated)


def _check_template(tokenizer: PreTrainedTokenizerBase) -> None:
    if tokenizer.chat_template is None:
        raise ParamError("the tokenizer has no chat template; pass a Jinja file with `chat_template`")


def tokenize_chats(tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Conversation], *,
                   labels: Sequence[str] | None = None, max_length: int | None = None) -> list[TokenizedChat]:
    """``tokenize_chat`` for each conversation; ``labels`` (e.g. "file:line") name them in errors."""
    if labels is None:
        labels = [f"conversation {index + 1}" for index in range(len(conversations))]
    _check_template(tokenizer)
    return [tokenize_chat(tokenizer, messages, label=label, max_length=max_length)
            for messages, label in zip(conversations, labels, strict=True)]


def iter_tokenized(tokenizer: PreTrainedTokenizerBase, path: str | Path, *,
                   max_length: int | None = None) -> Iterator[TokenizedChat]:
    """``tokenize_chat`` of every conversation of a chat JSONL file, in file order, read one line at a time
    (one conversation's text is held at once); errors name ``file:line``. An empty file is an InputError."""
    _check_template(tokenizer)
    count = 0
    for line, messages in iter_chat_jsonl(path):
        count += 1
        yield tokenize_chat(tokenizer, messages, label=f"{path}:{line}", max_length=max_length)
    if not count:
        raise InputError(f"chat dataset {path} holds no conversations")
