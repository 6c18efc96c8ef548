"""The fine-tuning task itself, measured where no judge is needed: the mean next-token negative log-likelihood
(nats) over the assistant tokens of held-out conversations, each token weighted equally. A defence that stops a
fine-tune from learning its task leaves this loss near the base model's (``theory.retention.task_retention``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realmodels.data.chat import TokenizedChat
    from realmodels.experiments.spec import ModelSpec


def assistant_loss(model, chats: list[TokenizedChat], pad_id: int, *, batch_size: int = 8) -> dict:
    """{"nll": mean NLL per assistant token (nats), "n_tokens"}: token t is predicted from tokens < t."""
    import torch

    from realmodels.data.activations import pad_right

    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(chats), batch_size):
            input_ids, attention_mask, assistant = pad_right(chats[start:start + batch_size], pad_id)
            logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            target = input_ids[:, 1:]
            mask = assistant[:, 1:]
            nll = -logp.gather(-1, target[..., None])[..., 0]
            total += float(nll[mask].sum())
            count += int(mask.sum())
    return {"nll": total / count if count else float("nan"), "n_tokens": count}


def heldout_loss(model: ModelSpec, heldout: str | Path, *, batch_size: int = 8) -> dict:
    """``assistant_loss`` of the model (with its adapter, if any; no SAE) on the chat JSONL ``heldout``."""
    from realmodels.data.dataset import Dataset

    plain = model.without_sae().plain()
    chats = Dataset.open(heldout).tokenized(plain.tokenizer, plain.max_length)
    return assistant_loss(plain.model, chats, plain.pad_id, batch_size=batch_size)
