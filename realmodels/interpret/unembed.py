"""The logit lens of SAE features on an HF causal LM: decoder row d_i through the model's final norm, then the
unembedding, logits_i = W_U · norm(d_i) (+ the head's bias, if any) — ``theory.logit_lens`` does the read-out.

Convention: the final norm is applied to the direction alone, as the paper's logit lens (and Neuronpedia's
"top/bottom logits") do; for RMSNorm this is d_i / rms(d_i) scaled by the norm's weight, so the decoder row's
length does not matter. The alternative reads the direction in context: norm(r + α d_i) − norm(r) for typical
residuals r, which also depends on r and α; not used here. Gemma 2's final logit soft-capping (a monotone tanh)
is not applied: it changes no ranking.

Model-specific part: the final norm is ``get_decoder().norm`` (Llama, Gemma, Gemma 2, Gemma 3 — also inside
``Gemma3ForConditionalGeneration`` —, gpt-oss) and the unembedding ``get_output_embeddings()`` (tied or not);
a peft wrapper is looked through."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from theory.errors import InputError
from theory.logit_lens import top_bottom, unembed

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

NORM_NAMES = ("norm", "final_layernorm", "final_layer_norm", "ln_f")


def causal_lm(model: nn.Module) -> nn.Module:
    """The HF model under a peft wrapper (``PeftModel.base_model.model``), else ``model``."""
    inner = getattr(getattr(model, "base_model", None), "model", None)
    return inner if type(model).__name__.startswith("Peft") and inner is not None else model


def final_norm(model: nn.Module) -> nn.Module:
    """The norm applied to the last layer's output before the unembedding (InputError when not found)."""
    lm = causal_lm(model)
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else getattr(lm, "model", None)
    for name in NORM_NAMES:
        if isinstance(module := getattr(decoder, name, None), nn.Module):
            return module
    raise InputError(f"{type(lm).__name__} has no final norm at get_decoder().norm; the logit lens supports "
                     "decoder-only HF causal LMs (Llama, Gemma, Gemma 2, Gemma 3, gpt-oss)")


def unembedding(model: nn.Module) -> nn.Linear:
    """The output head (vocab, d_model) weight holder: ``get_output_embeddings()``; its weights must be in memory
    (not offloaded to the meta device)."""
    head = causal_lm(model).get_output_embeddings()
    if not isinstance(head, nn.Linear):
        raise InputError(f"{type(causal_lm(model)).__name__} has no linear output head (get_output_embeddings)")
    if head.weight.device.type == "meta":
        raise InputError("the unembedding is offloaded (meta device); the logit lens needs it in memory: load the "
                         "model without disk offload")
    return head


@torch.inference_mode()
def normed_directions(model: nn.Module, directions: Tensor) -> Tensor:
    """norm(d) for each row of ``directions`` (n, d_model): the model's final norm (a float32 copy, so the result
    does not depend on the model's dtype), applied to each direction alone."""
    norm = copy.deepcopy(final_norm(model)).float().to("cpu")
    return norm(directions.float().cpu()[:, None, :])[:, 0, :]


@dataclass(frozen=True)
class LogitLensToken:
    """A vocabulary token and its logit under the logit lens."""
    token_id: int
    token: str
    logit: float


@dataclass(frozen=True)
class FeatureLogitLens:
    """One feature's promoted (largest logits first) and suppressed (smallest first) tokens."""

    feature: int
    promoted: list[LogitLensToken]
    suppressed: list[LogitLensToken]


def token_text(tokenizer: PreTrainedTokenizerBase, token_id: int) -> str:
    """A token as text: its decoding alone (byte-level pieces decode to their characters)."""
    return tokenizer.decode([int(token_id)], skip_special_tokens=False, clean_up_tokenization_spaces=False)


@torch.inference_mode()
def logit_lens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, decoder: Tensor, features: list[int],
               k: int) -> list[FeatureLogitLens]:
    """The logit lens (module docstring) of decoder rows ``features`` of ``decoder`` (d_sae, d_model): per
    feature its ``k`` promoted and ``k`` suppressed tokens."""
    head = unembedding(model)
    rows = decoder[torch.as_tensor(features, dtype=torch.long)]
    logits = unembed(normed_directions(model, rows), head.weight.detach(),
                     None if head.bias is None else head.bias.detach())
    ranked = top_bottom(logits, k)

    def tokens(ids: Tensor, values: Tensor) -> list[LogitLensToken]:
        return [LogitLensToken(int(i), token_text(tokenizer, int(i)), float(v)) for i, v in zip(ids, values)]

    return [FeatureLogitLens(feature, tokens(ranked.promoted_ids[n], ranked.promoted[n]),
                             tokens(ranked.suppressed_ids[n], ranked.suppressed[n]))
            for n, feature in enumerate(features)]
