"""The residual stream at ``blocks.L.hook_resid_post``: the output of decoder layer L of an HF causal LM.

It equals ``hidden_states[L + 1]`` of ``output_hidden_states=True`` for every layer but the last (HF
applies the final norm to ``hidden_states[-1]``; the hook does not). A forward hook on the layer stores
its output and raises a private exception, so the layers above L never run."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from realmodels.loading.placement import decoder_layers


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass once the module ran."""


def module_output(module: nn.Module, run: Callable[[], object]) -> Tensor:
    """The output of ``module`` (its first element when a tuple) while ``run()`` executes; the forward pass stops
    right there. Runs under whatever autograd mode the caller chose (``torch.func`` transforms included)."""
    captured: list[Tensor] = []

    def hook(mod, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    handle = module.register_forward_hook(hook)
    try:
        run()
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"{type(module).__name__} did not run during the forward pass")
    return captured[0]


@torch.inference_mode()
def residual_stream(model: nn.Module, input_ids: Tensor, attention_mask: Tensor, layer: int) -> Tensor:
    """``resid`` (batch, seq, d_model) after decoder layer ``layer``, in the model's dtype."""
    try:
        return module_output(decoder_layers(model)[layer], lambda: model(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False))
    except RuntimeError:
        raise RuntimeError(f"decoder layer {layer} did not run during the forward pass") from None
