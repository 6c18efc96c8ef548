"""The weight change of a full fine-tune: ΔW = θ_ft − θ_base for every parameter of two loaded checkpoints of the
same architecture (the tangent of the first-order prediction, as ``adapters.adapter_deltas`` is for a LoRA
adapter). The configs were compared before loading (``checks.check_same_architecture``); here the loaded
parameters must match by name and shape too, else the same one-line error."""

from __future__ import annotations

from typing import TYPE_CHECKING

from theory.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor, nn


def checkpoint_deltas(base: nn.Module, finetuned: nn.Module) -> dict[str, Tensor]:
    """{name: θ_ft − θ_base} over every parameter of ``base`` (``named_parameters``: a tied weight once, under its
    first name), detached, in the base parameter's dtype and on its device. An InputError ("checkpoints of
    different architectures") when a name is missing from ``finetuned`` or has another shape there, or when
    ``finetuned`` has a parameter ``base`` lacks."""
    theirs = dict(finetuned.named_parameters(remove_duplicate=False))
    deltas: dict[str, Tensor] = {}
    for name, param in base.named_parameters():
        other = theirs.get(name)
        if other is None or other.shape != param.shape:
            found = "no such parameter" if other is None else f"shape {tuple(other.shape)}"
            raise InputError(f"checkpoints of different architectures: parameter {name} has shape "
                             f"{tuple(param.shape)} in the base model, {found} in the fine-tuned one")
        deltas[name] = (other.detach().to(device=param.device, dtype=param.dtype) - param.detach())
    extra = sorted(set(dict(finetuned.named_parameters()).keys()) - set(dict(base.named_parameters(
        remove_duplicate=False)).keys()))
    if extra:
        raise InputError(f"checkpoints of different architectures: the fine-tuned model has parameter {extra[0]}, "
                         "the base model has none")
    return deltas


def deltas_norm(deltas: dict[str, Tensor]) -> tuple[float, int]:
    """(‖ΔW‖_F over every tensor of ``deltas``, how many of them are not zero)."""
    total, changed = 0.0, 0
    for delta in deltas.values():
        square = float(delta.detach().double().pow(2).sum())
        total += square
        changed += square > 0
    return total ** 0.5, changed
