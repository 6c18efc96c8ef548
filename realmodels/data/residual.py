"""The residual stream at ``blocks.L.hook_resid_post``: the output of decoder layer L of an HF causal LM.

It equals ``hidden_states[L + 1]`` of ``output_hidden_states=True`` for every layer but the last (HF
applies the final norm to ``hidden_states[-1]``; the hook does not). A forward hook on the layer stores
its output and raises a private exception, so the layers above L never run."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from realmodels.loading.placement import decoder_layers


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass after layer L."""


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
