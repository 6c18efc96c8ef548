"""Where the model runs: parsing a transformers/accelerate ``device_map`` and finding the devices that
tensors must go to when some weights are dispatched or offloaded (the decoder layer an SAE reads, the
embeddings that take the input ids).

A device map is None (everything on the CPU), a strategy accelerate computes from the free memory of
each device ("auto", "balanced", "balanced_low_0", "sequential"), "cpu", or an explicit
``{module name: device}`` mapping (devices: "cpu", "disk", an int GPU index, "cuda:N", "mps", ...).
Modules mapped to "disk" (or to "cpu" next to GPUs) keep their weights on the ``meta`` device and are
run through accelerate's hooks, so a module's parameter device is not where it computes."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from runio.reading import read_json_file
from theory.errors import InputError

if TYPE_CHECKING:  # torch is imported where modules are inspected, so parsing a map stays light
    import torch
    from torch import nn

STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential", "cpu")
DeviceMap = str | dict[str, str | int] | None


def parse_device_map(value: str | dict | None) -> DeviceMap:
    """A strategy name, an explicit mapping, or a path to a JSON file holding one (checked, one-line errors)."""
    if value is None or isinstance(value, dict):
        return _check_mapping(value) if isinstance(value, dict) else None
    if value in STRATEGIES:
        return value
    path = Path(value)
    if path.suffix == ".json" or path.is_file():
        mapping = read_json_file(path, "device map file")
        if not isinstance(mapping, dict):
            raise InputError(f"device map file {path} must hold a JSON object {{module name: device}}")
        return _check_mapping(mapping)
    raise InputError(f"unknown device map {value!r}: use one of {', '.join(STRATEGIES)} or a JSON file "
                     "{module name: device}")


def _check_mapping(mapping: dict) -> dict:
    if not mapping:
        raise InputError("the device map is empty")
    for name, device in mapping.items():
        if not isinstance(name, str) or not isinstance(device, (str, int)) or isinstance(device, bool):
            raise InputError(f"device map entry {name!r}: {device!r} is not 'module name': device")
    return dict(mapping)


def runs_on_cpu_only(device_map: DeviceMap) -> bool:
    """True when every weight is in host RAM (so host RAM is the limit the memory check applies)."""
    if device_map is None or device_map == "cpu":
        return True
    return isinstance(device_map, dict) and set(map(str, device_map.values())) <= {"cpu"}


def names_disk(device_map: DeviceMap) -> bool:
    """An explicit map that offloads some module to disk (it needs an offload folder; strategies only may)."""
    return isinstance(device_map, dict) and "disk" in map(str, device_map.values())


def compute_device(module: nn.Module) -> torch.device:
    """The device ``module`` computes on: its parameters' device, or — when accelerate offloaded them (meta)
    — its hook's execution device, falling back to the CPU."""
    device = next(module.parameters()).device
    if device.type != "meta":
        return device
    import torch

    hook = getattr(module, "_hf_hook", None)
    execution = getattr(hook, "execution_device", None)
    return torch.device(execution) if execution is not None else torch.device("cpu")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder blocks of an HF causal LM (``model.model.layers`` for Gemma 2, Llama, gpt-oss)."""
    from torch import nn

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
