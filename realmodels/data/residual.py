"""The residual stream at ``blocks.L.hook_resid_post``: the output of decoder layer L of an HF causal LM.

It equals ``hidden_states[L + 1]`` of ``output_hidden_states=True`` for every layer but the last (HF
applies the final norm to ``hidden_states[-1]``; the hook does not). A forward hook on the layer stores
its output and raises a private exception, so the layers above L never run."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from realmodels.loading.placement import compute_device
from theory.errors import InputError


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass after layer L."""


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of an HF causal LM (``model.model.layers`` for Gemma 2, Llama, gpt-oss)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", None)
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise InputError(f"{type(model).__name__} has no decoder layers at model.model.layers; "
                         "only decoder-only HF causal LMs (Gemma 2, Llama, gpt-oss, ...) are supported")
    return layers


def input_device(model: nn.Module) -> torch.device:
    """Device the token embeddings compute on (where input ids must go, also under an accelerate device_map,
    where offloaded embeddings sit on the meta device)."""
    return compute_device(model.get_input_embeddings())


@torch.inference_mode()
def residual_stream(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, layer: int) -> Tensor:
    """``resid`` (batch, seq, d_model) after decoder layer ``layer``, in the model's dtype."""
    captured: list[Tensor] = []

    def hook(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"decoder layer {layer} did not run during the forward pass")
    return captured[0]
