"""Supervised fine-tuning data: chat JSONL conversations tokenised with the chat template (as everywhere in
``realmodels``, ``realmodels.data.chat``), labels on assistant tokens only, right-padded batches.

For a conversation with tokens x_1..x_T and assistant mask m_t, the labels are y_t = x_t where m_t or e_t, else
-100 (ignored), with e_t marking the end of a reply: the first token after it when that token is one of the
tokenizer's special tokens (the template's end of turn: ``<|eot_id|>``, ``<end_of_turn>``, ``<|im_end|>``,
``<|end|>``). That is what the field's recipes train (Unsloth's ``train_on_responses_only`` and TRL's
``assistant_only_loss`` both keep it): without it a fine-tune never learns to stop. The causal LM loss
(transformers shifts labels by one) is the mean next-token cross-entropy over the labelled tokens of the
batch. Extra per-token tensors (the guard's cached base-model values) ride along in
each example and are padded with zeros."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from realmodels.data.chat import TokenizedChat
from theory.errors import ParamError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100  # label of tokens outside the assistant replies (transformers' ignore_index)


def holdout_split(n: int, fraction: float, *, seed: int, max_out: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) sorted indices: round(fraction·n) held out (at least 1, at most ``max_out``, leaving at
    least 1 to train), the permutation fixed by ``seed``."""
    n_out = max(1, int(round(fraction * n)))
    n_out = n_out if max_out is None else min(n_out, max_out)
    if n - n_out < 1:
        raise ParamError(f"the training data has {n} conversations: too few to hold {fraction:g} of them out as "
                         "monitor probes (give `probe` FILE)")
    order = np.random.default_rng([seed, zlib.crc32(b"monitor-probes")]).permutation(n)
    return np.sort(order[n_out:]), np.sort(order[:n_out])


def label_mask(chat: TokenizedChat, end_ids: frozenset[int]) -> Tensor:
    """(seq,) bool: the assistant mask plus each reply's end-of-turn token (module docstring): position t where
    m_{t-1} and not m_t and x_t in ``end_ids``."""
    mask = chat.assistant_mask
    ends = torch.zeros_like(mask)
    if end_ids and len(mask) > 1:
        is_end = torch.isin(chat.input_ids[1:], torch.tensor(sorted(end_ids), dtype=chat.input_ids.dtype))
        ends[1:] = mask[:-1] & ~mask[1:] & is_end
    return mask | ends


def end_of_turn_ids(tokenizer: PreTrainedTokenizerBase) -> frozenset[int]:
    """The ids a reply's end-of-turn token may have: the tokenizer's special tokens."""
    return frozenset(int(i) for i in tokenizer.all_special_ids)


class SftDataset(torch.utils.data.Dataset):
    """Examples ``{"input_ids", "labels"}`` (lists of ints) plus optional per-token ``extras`` tensors (seq, k).
    ``end_ids``: ``end_of_turn_ids(tokenizer)``, the end-of-turn tokens labelled after each reply (empty: the
    replies' own tokens only)."""

    def __init__(self, chats: list[TokenizedChat], extras: dict[str, list[Tensor]] | None = None, *,
                 end_ids: frozenset[int] = frozenset()):
        self.chats = chats
        self.extras = extras or {}
        self.end_ids = end_ids

    def __len__(self) -> int:
        return len(self.chats)

    def __getitem__(self, index: int) -> dict:
        chat = self.chats[index]
        labels = torch.where(label_mask(chat, self.end_ids), chat.input_ids, IGNORE_INDEX)
        example = {"input_ids": chat.input_ids, "labels": labels}
        example.update({name: values[index] for name, values in self.extras.items()})
        return example

    def n_tokens(self) -> int:
        """Total tokens over all conversations."""
        return sum(len(chat.input_ids) for chat in self.chats)


@dataclass(frozen=True)
class PadCollator:
    """Right-pads a list of examples: input_ids with ``pad_id``, labels with -100, extras with 0; adds the
    attention mask."""

    pad_id: int

    def __call__(self, examples: list[dict]) -> dict[str, Tensor]:
        width = max(len(example["input_ids"]) for example in examples)
        batch = len(examples)
        out = {"input_ids": torch.full((batch, width), self.pad_id, dtype=torch.long),
               "attention_mask": torch.zeros((batch, width), dtype=torch.long),
               "labels": torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)}
        extra_names = [name for name in examples[0] if name not in out]
        for name in extra_names:
            first = examples[0][name]
            out[name] = torch.zeros((batch, width, *first.shape[1:]), dtype=first.dtype)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            out["input_ids"][row, :n] = example["input_ids"]
            out["attention_mask"][row, :n] = 1
            out["labels"][row, :n] = example["labels"]
            for name in extra_names:
                out[name][row, :n] = example[name]
        return out
