"""Token-level activations of chosen SAE features over a chat dataset: each feature's top-activating snippets and
the values for its activation histogram.

For conversation s and feature i, with a_i(t) = sae.encode(resid_post_L(t))_i on every token t, the
conversation's score is max_{t ∈ assistant tokens of s} a_i(t) at the first such t (its "max token"); a snippet is
the tokens from ``context`` before to ``context`` after the max token (any role; ``assistant`` says which are
assistant tokens), each with its a_i(t). A feature's top snippets are the ``n_examples`` conversations of highest
score > 0 (ties to the lower sample index). The histogram reads a_i(t) over assistant tokens only: the non-zero
values and the count of zeros. Batches are the length-sorted, right-padded batches of the activation cache
(``realmodels.data.activations``), which leave every real token's causal forward pass unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from realmodels.data.activations import ENCODE_CHUNK_BYTES, length_order, pad_right, progress_bar
from realmodels.data.residual import residual_stream
from realmodels.interpret.unembed import token_text
from realmodels.loading.placement import input_device

if TYPE_CHECKING:
    from torch import Tensor

    from realmodels.data.chat import TokenizedChat
    from realmodels.loading.bundle import ModelBundle


def encode_tokens(bundle: ModelBundle, tokens: Tensor, features: Tensor) -> Tensor:
    """a_i(t) (n_tokens, n_features) float32 on the CPU: the SAE code of each residual row, columns ``features``,
    encoded in chunks of at most ``ENCODE_CHUNK_BYTES`` of full codes."""
    chunk = max(1, ENCODE_CHUNK_BYTES // (4 * bundle.d_sae))
    device = bundle.sae.W_dec.device
    parts = [bundle.sae.encode(tokens[lo:lo + chunk].to(device)).float().cpu()[:, features]
             for lo in range(0, len(tokens), chunk)]
    return torch.cat(parts) if parts else torch.zeros(0, len(features))


@torch.inference_mode()
def scan_dataset(bundle: ModelBundle, chats: list[TokenizedChat], features: list[int], *, n_examples: int,
                 context: int, batch_size: int = 8, progress: bool = False, description: str = "snippets",
                 line_numbers: list[int] | None = None) -> dict:
    """The module docstring's snippets and histogram values of ``features`` on ``chats``, as JSON-able data:
    ``{"n_tokens": assistant tokens, "features": [{"feature", "nonzero": [values], "examples": [{"sample",
    "line", "position", "value", "start", "tokens", "token_ids", "acts", "assistant"}]}]}`` (one entry per
    feature, in the order given; ``line``: the sample's line in its file when ``line_numbers`` are given)."""
    columns = torch.as_tensor(features, dtype=torch.long)
    pad_id = bundle.tokenizer.pad_token_id if bundle.tokenizer.pad_token_id is not None else 0
    device = input_device(bundle.model)
    best: list[list[tuple]] = [[] for _ in features]  # per feature: (-value, sample, position)
    windows: dict[tuple[int, int], list[float]] = {}  # (feature slot, sample) -> activations of its window
    nonzero: list[list[Tensor]] = [[] for _ in features]
    n_tokens = 0
    order = length_order(chats)
    with progress_bar(progress) as bar:
        task = bar.add_task(description, total=len(chats), tokens_per_s=0.0)
        for lo in range(0, len(chats), batch_size):
            batch = order[lo:lo + batch_size]
            input_ids, attention_mask, assistant = pad_right([chats[i] for i in batch], pad_id)
            resid = residual_stream(bundle.model, input_ids.to(device), attention_mask.to(device), bundle.layer)
            real = attention_mask.bool()
            codes = torch.zeros(*real.shape, len(features))
            codes[real] = encode_tokens(bundle, resid[real.to(resid.device)], columns)
            on_assistant = codes[assistant]  # (n_assistant_tokens, n_features)
            n_tokens += on_assistant.shape[0]
            for slot in range(len(features)):
                column = on_assistant[:, slot]
                nonzero[slot].append(column[column != 0])
            values, positions = codes.masked_fill(~assistant[..., None], float("-inf")).max(dim=1)  # (batch, F)
            for row, sample in enumerate(batch):
                for slot in range(len(features)):
                    value, position = float(values[row, slot]), int(positions[row, slot])
                    key = (-value, sample, position)
                    if value <= 0 or (len(best[slot]) == n_examples and key >= best[slot][-1]):
                        continue
                    start = max(0, position - context)
                    stop = min(len(chats[sample].input_ids), position + context + 1)
                    windows[(slot, sample)] = codes[row, start:stop, slot].tolist()
                    best[slot] = sorted([*best[slot], key])[:n_examples]
            bar.update(task, advance=len(batch))
    return {"n_tokens": n_tokens, "features": [
        {"feature": int(feature), "nonzero": torch.cat(nonzero[slot]).tolist() if nonzero[slot] else [],
         "examples": [snippet(bundle, chats[sample], -neg, sample, position, context, windows[(slot, sample)],
                              None if line_numbers is None else line_numbers[sample])
                      for neg, sample, position in best[slot]]}
        for slot, feature in enumerate(features)]}


def snippet(bundle: ModelBundle, chat: TokenizedChat, value: float, sample: int, position: int, context: int,
            acts: list[float], line: int | None) -> dict:
    """One snippet (``scan_dataset``): the window's token ids and texts, activations and assistant flags."""
    start = max(0, position - context)
    ids = chat.input_ids[start:start + len(acts)].tolist()
    return {"sample": sample, "line": line, "position": position, "value": value, "start": start,
            "tokens": [token_text(bundle.tokenizer, i) for i in ids], "token_ids": ids, "acts": acts,
            "assistant": chat.assistant_mask[start:start + len(acts)].tolist()}
