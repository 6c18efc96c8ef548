"""Chat datasets: JSONL lines ``{"messages": [{"role": ..., "content": ...}, ...]}`` rendered with the
tokenizer's chat template, with a mask marking the tokens of assistant replies.

The mask needs no ``{% generation %}`` markers: the text before assistant turn k is the template rendered
on ``messages[:k]`` with the generation prompt; the reply is the first occurrence of its content (or of
its trimmed content, as templates often ``| trim``) after the part of that prefix shared with the full
rendering. Tokens whose character offsets overlap a reply are assistant tokens."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from theory.errors import InputError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

Conversation = list[dict]


def iter_chat_jsonl(path: str | Path) -> Iterator[tuple[int, Conversation]]:
    """Yield (line number, messages) for each non-blank line; every malformed line is an InputError
    naming ``file:line`` (bad JSON, missing/ill-typed messages, or no assistant turn)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"chat dataset {path} does not exist or is not a file")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            messages = record.get("messages") if isinstance(record, dict) else None
            if not isinstance(messages, list) or not messages:
                raise InputError(f'{where}: expected an object {{"messages": [{{"role": ..., "content": ...}}, ...]}}')
            for index, message in enumerate(messages):
                if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                        and isinstance(message.get("content"), str)):
                    raise InputError(f"{where}: message {index} needs string 'role' and 'content'")
            if not any(message["role"] == "assistant" for message in messages):
                raise InputError(f"{where}: conversation has no assistant turn (its activations are averaged "
                                 "over assistant tokens)")
            yield number, messages


def read_chat_jsonl(path: str | Path) -> list[Conversation]:
    """All conversations of a chat JSONL file; an empty file is an InputError."""
    conversations = [messages for _, messages in iter_chat_jsonl(path)]
    if not conversations:
        raise InputError(f"chat dataset {path} holds no conversations")
    return conversations


def dataset_hash(path: str | Path) -> str:
    """SHA-256 of the file's bytes (hex): the dataset's identity in activation cache keys."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TokenizedChat:
    """``input_ids`` (seq,) long and ``assistant_mask`` (seq,) bool, True on assistant-reply tokens."""

    input_ids: Tensor
    assistant_mask: Tensor


def _render(tokenizer: PreTrainedTokenizerBase, messages: Conversation, *, add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


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
            start = max(start, len(os.path.commonprefix([prefix, text])))
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


def tokenize_chat(tokenizer: PreTrainedTokenizerBase, messages: Conversation, *, label: str = "conversation",
                  max_length: int | None = None) -> TokenizedChat:
    """Render with the chat template, tokenize (no extra special tokens: the template has them), mask
    assistant tokens, keep the first ``max_length`` tokens. No assistant token left is an InputError."""
    text, spans = assistant_spans(tokenizer, messages, label)
    try:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise InputError(f"{label}: the tokenizer gives no character offsets; a fast tokenizer is needed") from None
    input_ids = torch.tensor(encoding["input_ids"], dtype=torch.long)
    offsets = torch.tensor(encoding["offset_mapping"], dtype=torch.long).reshape(-1, 2)
    starts, ends = offsets[:, 0], torch.maximum(offsets[:, 1], offsets[:, 0] + 1)  # empty tokens sit at start
    mask = torch.zeros(len(input_ids), dtype=torch.bool)
    for span_start, span_end in spans:
        mask |= (starts < span_end) & (ends > span_start)
    if max_length is not None:
        input_ids, mask = input_ids[:max_length], mask[:max_length]
    if not mask.any():
        raise InputError(f"{label}: no assistant tokens" + (f" within the first {max_length} tokens"
                                                             if max_length is not None else ""))
    return TokenizedChat(input_ids=input_ids, assistant_mask=mask)


def tokenize_chats(tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Conversation], *,
                   labels: Sequence[str] | None = None, max_length: int | None = None) -> list[TokenizedChat]:
    """``tokenize_chat`` for each conversation; ``labels`` (e.g. "file:line") name them in errors."""
    if labels is None:
        labels = [f"conversation {index + 1}" for index in range(len(conversations))]
    if tokenizer.chat_template is None:
        raise InputError("the tokenizer has no chat template; pass a Jinja file with --chat-template")
    return [tokenize_chat(tokenizer, messages, label=label, max_length=max_length)
            for messages, label in zip(conversations, labels, strict=True)]
