"""Edits of decoder layer L's output hidden states h (``blocks.L.hook_resid_post`` = ``hidden_states[L + 1]``),
applied by a forward hook while inside a context manager, at every position: in a plain forward pass, in every
step of ``generate`` with a KV cache (each new token's residual is edited before the layers above read it; the keys
and values cached above L come from edited residuals) and in training (the edit is differentiable; the gradient
flows through it). The hook is prepended, so transformers' own output hooks (``output_hidden_states``) record the
edited residual as ``hidden_states[L + 1]``; the layers below L are untouched. Every edit is computed in the wider
of h's dtype and float32 and returned in h's dtype.

- ``edited(model, layer, edit)``: the generic hook, h ← edit(h) for h (batch, seq, d);
- the edits, shared by evaluation (``realmodels.evaluate.interventions``) and the training defences
  (``realmodels.finetune.defences``): ``ablation_edit`` h ↦ h − (h·û)û (``theory.directions.project_out``),
  ``span_ablation_edit`` h ↦ h − (h Q) Qᵀ for an orthonormal basis Q, ``steer_edit`` h ↦ h + α v
  (``theory.directions.steer``);
- ``ablated_vector``: ``edited`` with ``ablation_edit``;
- ``steered``: ``edited`` with ``steer_edit``; α = 0 returns h unchanged, bit for bit;
- ``clamped``: with the SAE's own encoder z = enc(h) and decoder dec, z' = z with z'_i = c_i for the clamped
  features, h ← h + (dec(z') − dec(z)): the SAE's reconstruction of h with the features set, plus the SAE's error
  term h − dec(z), kept. Written as a difference of decodes so that clamping a feature to its own value gives
  z' = z, dec(z') − dec(z) = 0 exactly and h unchanged, bit for bit; for an affine decoder (every sae-lens
  architecture) it equals h + Σ_i (c_i − z_i) d_i with d_i = W_dec[i] (W_dec[i] / ‖W_dec[i]‖ when the SAE rescales
  activations by the decoder norm)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from realmodels.loading.placement import decoder_layers
from theory.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor, nn


def hidden_size(model: nn.Module) -> int | None:
    """The model's residual width from its (text) config, or None when the config does not state it."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    size = getattr(config, "hidden_size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) else None


def check_layer(model: nn.Module, layer: int, what: str = "layer") -> None:
    """An InputError unless ``layer`` is one of the model's decoder layers."""
    n_layers = len(decoder_layers(model))
    if not 0 <= layer < n_layers:
        raise InputError(f"{what} {layer} is out of range: the model has layers 0..{n_layers - 1}")


def check_width(model: nn.Module, width: int, what: str = "the direction") -> None:
    """An InputError when the model's config states a hidden size other than ``width``."""
    hidden = hidden_size(model)
    if hidden is not None and hidden != width:
        raise InputError(f"{what} has d_model={width}, but the model's hidden size is {hidden}")


@contextmanager
def edited(model: nn.Module, layer: int, edit: Callable[[Tensor], Tensor]) -> Iterator[nn.Module]:
    """``model`` with decoder layer ``layer``'s output h replaced by ``edit(h)`` (module docstring); the hook is
    removed on exit, also when the body raises. ``edit`` receives h in the wider of its dtype and float32."""
    import torch

    check_layer(model, layer)

    def hook(module, args, output):
        h = output[0] if isinstance(output, tuple) else output
        new = edit(h.to(torch.promote_types(h.dtype, torch.float32))).to(h.dtype)
        return (new, *output[1:]) if isinstance(output, tuple) else new

    handle = decoder_layers(model)[layer].register_forward_hook(hook, prepend=True)
    try:
        yield model
    finally:
        handle.remove()


def _on_device(vector: Tensor) -> Callable[[Tensor], Tensor]:
    """like ↦ ``vector`` on ``like``'s device and dtype, converted once per (device, dtype)."""
    cache: dict = {}

    def on(like: Tensor) -> Tensor:
        key = (like.device, like.dtype)
        if key not in cache:
            cache[key] = vector.to(device=like.device, dtype=like.dtype)
        return cache[key]

    return on


def ablation_edit(vector: Tensor) -> Callable[[Tensor], Tensor]:
    """h ↦ h − (h·û)û, û = ``vector`` (d,) / its norm (``theory.directions.project_out``)."""
    import torch

    from theory.directions import project_out, unit

    on = _on_device(unit(vector.to(torch.float64)))
    return lambda h: project_out(h, on(h))


def span_ablation_edit(basis: Tensor) -> Callable[[Tensor], Tensor]:
    """h ↦ h − (h Q) Qᵀ for an orthonormal ``basis`` Q (d, r): the span projected out entirely."""
    on = _on_device(basis)

    def edit(h: Tensor) -> Tensor:
        q = on(h)
        return h - (h @ q) @ q.T

    return edit


def steer_edit(vector: Tensor, alpha: float) -> Callable[[Tensor], Tensor]:
    """h ↦ h + α ``vector`` (``theory.directions.steer``)."""
    from theory.directions import steer

    on = _on_device(vector)
    return lambda h: steer(h, on(h), alpha)


@contextmanager
def ablated_vector(model: nn.Module, layer: int, vector: Tensor) -> Iterator[nn.Module]:
    """``model`` with the line of ``vector`` (d,) projected out of layer ``layer``'s output (``ablation_edit``)."""
    check_width(model, vector.shape[-1])
    with edited(model, layer, ablation_edit(vector)):
        yield model


@contextmanager
def steered(model: nn.Module, layer: int, vector: Tensor, alpha: float) -> Iterator[nn.Module]:
    """``model`` with α·``vector`` (d,) added to layer ``layer``'s output at every position (``steer_edit``)."""
    import math

    if not math.isfinite(alpha):
        raise InputError(f"the steering coefficient must be finite, got {alpha}")
    check_width(model, vector.shape[-1], "the steering vector")
    with edited(model, layer, steer_edit(vector, alpha)):
        yield model


@contextmanager
def clamped(model: nn.Module, layer: int, sae: nn.Module, features: Sequence[int],
            values: Sequence[float]) -> Iterator[nn.Module]:
    """``model`` with SAE features ``features`` clamped to ``values`` at layer ``layer``, the SAE's error term
    kept (module docstring). ``sae`` has sae-lens's ``encode``/``decode`` and ``cfg.d_sae``/``cfg.d_in``."""
    import math

    import torch

    features, values = list(features), [float(v) for v in values]
    if len(features) != len(values) or not features:
        raise InputError("clamping needs one value per feature and at least one feature")
    width = int(sae.cfg.d_sae)
    bad = [i for i in features if not 0 <= i < width]
    if bad:
        raise InputError(f"feature {bad[0]} is out of range: the SAE has features 0..{width - 1}")
    if not all(math.isfinite(v) for v in values):
        raise InputError("clamp values must be finite")
    check_width(model, int(sae.cfg.d_in), "the SAE")
    index = torch.as_tensor(features, dtype=torch.long)

    def clamp(h: Tensor) -> Tensor:
        sae_dtype = next(sae.parameters()).dtype
        z = sae.encode(h.to(sae_dtype))
        z_set = z.clone()
        z_set[..., index.to(z.device)] = torch.as_tensor(values, dtype=z.dtype, device=z.device)
        return h + (sae.decode(z_set) - sae.decode(z)).to(h.dtype)

    with edited(model, layer, clamp):
        yield model
