"""peft adapters on a loaded model: which adapter (a peft directory, or a ``realmodels finetune`` run directory
holding one in ``adapter/``), checked against the base model before any weights load, loaded through
``PeftModel.from_pretrained``, and the weight change it makes (for the first-order prediction).

Checks from files alone (``resolve_adapter``): the directory is in peft's format (``adapter_config.json`` plus
``adapter_model.safetensors`` or ``.bin``); its config's fields have the types peft needs (``peft_type`` LORA,
``target_modules`` a string or list of strings, ``layers_to_transform`` an int or list of ints, ``r`` a positive
int, ``lora_alpha`` a finite number); the base model it records (``base_model_name_or_path``) is the model
given — the same name or path, or else the same ``config.json`` (so a copy of a local model, or the hub cache's
snapshot of a hub id, is the same base); the layers it transforms exist in that model; and its weights file is
intact (``realmodels.loading.weights``). Each problem is one InputError naming the file.

The LoRA weight change of a module is ΔW = s · B A with s = α/r (α/√r with rsLoRA): peft's own
``get_delta_weight``, so every variant peft supports is computed the way peft applies it."""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.loading.checks import is_int, read_model_config
from realmodels.loading.weights import check_weight_file, loading
from runio.reading import read_json_file
from theory.errors import InputError, ParamError

if TYPE_CHECKING:
    from torch import Tensor, nn

    from realmodels.loading.checks import ModelSource

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
RUN_ADAPTER = "adapter"  # a finetune run directory's peft adapter
RUN_FULL_MODEL = "model"  # a full fine-tuning run's saved model
ADAPTER_NAME = "default"  # peft's name for the one adapter a directory holds
# config.json keys that differ between copies of the same model (who saved it, with what, in which dtype)
CONFIG_NOISE = ("_name_or_path", "transformers_version", "dtype", "torch_dtype", "architectures", "use_cache")


@dataclass(frozen=True)
class AdapterSource:
    """A checked peft adapter directory: ``path``, the ``base_model`` it records, its ``peft_type`` and the
    ``layers`` it transforms (None: every layer its target modules match)."""

    path: Path
    base_model: str | None
    peft_type: str
    target_modules: tuple[str, ...]
    layers: tuple[int, ...] | None

    @property
    def name(self) -> str:
        """The adapter's path."""
        return str(self.path)

    def to_config(self) -> dict:
        """What a run's config records of the adapter: its path, base model and PEFT type."""
        return {"path": str(self.path), "base_model": self.base_model, "peft_type": self.peft_type}


def adapter_directory(path: str | Path) -> Path:
    """The peft directory of ``path``: itself, or ``path/adapter`` for a finetune run directory. A full
    fine-tuning run (no adapter, a saved model) or any other directory is an InputError naming what to pass."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise InputError(f"adapter directory {path} does not exist")
    if (path / ADAPTER_CONFIG).is_file():
        return path.resolve()
    if (path / RUN_ADAPTER / ADAPTER_CONFIG).is_file():
        return (path / RUN_ADAPTER).resolve()
    if (path / RUN_FULL_MODEL / "config.json").is_file():
        raise ParamError(f"{path} is a full fine-tuning run (no adapter): pass `model` {path / RUN_FULL_MODEL}")
    raise InputError(f"adapter directory {path} is not in peft's format (no {ADAPTER_CONFIG}; expected a directory "
                     "written by PeftModel.save_pretrained or a `realmodels finetune` run directory)")


def _is_str_list(value) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _is_int_list(value) -> bool:
    return is_int(value) or (isinstance(value, list) and all(is_int(item) for item in value))


def _is_finite_number(value) -> bool:
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


# field -> (is the value acceptable, what it must be); None is peft's default for the optional ones
FIELD_CHECKS = {
    "base_model_name_or_path": (lambda v: v is None or isinstance(v, str), "a string"),
    "target_modules": (lambda v: v is None or _is_str_list(v), "a string or a list of strings"),
    "layers_to_transform": (lambda v: v is None or _is_int_list(v), "an integer or a list of integers"),
    "r": (lambda v: is_int(v) and v > 0, "a positive integer"),
    "lora_alpha": (_is_finite_number, "a finite number"),
}


def _read_adapter_config(path: Path) -> dict:
    """adapter_config.json of ``path``, its fields type-checked (module docstring) before peft sees them."""
    file = path / ADAPTER_CONFIG
    config = read_json_file(file, "adapter config")
    if not isinstance(config, dict) or "peft_type" not in config:
        raise InputError(f"{file} is not a peft adapter config (no peft_type)")
    if config["peft_type"] != "LORA":
        shown = config["peft_type"] if isinstance(config["peft_type"], str) else type(config["peft_type"]).__name__
        raise InputError(f"{file}: peft_type is {shown!r}; only LoRA adapters (peft_type \"LORA\") are supported")
    for field, (acceptable, expected) in FIELD_CHECKS.items():
        if field in config and not acceptable(config[field]):
            raise InputError(f"{file}: {field} must be {expected}, got {_shown(config.get(field))}")
    return config


def _shown(value) -> str:
    """A short repr of a config value for an error line (the value may be a long or nested list)."""
    text = json.dumps(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _comparable(config: dict | None) -> dict | None:
    if config is None:
        return None
    config = dict(config.get("text_config", config)) if "text_config" in config else dict(config)
    return {key: value for key, value in config.items() if key not in CONFIG_NOISE}


def _base_config(name: str) -> dict | None:
    """The config.json of a recorded base model: a local directory, else the hub cache's copy (None: unknown)."""
    path = Path(name).expanduser()
    try:
        if path.is_dir():
            return read_model_config(path, None) if (path / "config.json").is_file() else None
        return read_model_config(None, name) if "/" in name and not name.startswith((".", "/")) else None
    except InputError:
        return None


def same_base(recorded: str | None, model: ModelSource) -> bool:
    """Is the recorded base model the given one: same name or path, or the same config.json (module docstring)?
    An adapter that records no base (or one that cannot be read) is accepted."""
    if not recorded or recorded == model.name:
        return True
    recorded_path = Path(recorded).expanduser()
    if model.path is not None and recorded_path.exists() and recorded_path.resolve() == model.path:
        return True
    theirs = _comparable(_base_config(recorded))
    if theirs is None:
        return False
    return theirs == _comparable(read_model_config(model.path, model.repo_id))


def resolve_adapter(path: str | Path, model: ModelSource, n_layers: int | None = None) -> AdapterSource:
    """The checked adapter of ``path`` for base ``model`` (module docstring); nothing is loaded."""
    directory = adapter_directory(path)
    if not any((directory / weights).is_file() for weights in ADAPTER_WEIGHTS):
        raise InputError(f"adapter directory {directory} is not in peft's format (no {' or '.join(ADAPTER_WEIGHTS)})")
    config = _read_adapter_config(directory)
    base = config.get("base_model_name_or_path")
    if not same_base(base, model):
        raise InputError(f"adapter {directory} was trained on base model {base}, not on {model.name}")
    layers = config.get("layers_to_transform")
    layers = (layers,) if isinstance(layers, int) else (tuple(layers) if layers else None)
    if layers is not None and n_layers is not None and any(not 0 <= layer < n_layers for layer in layers):
        raise InputError(f"adapter {directory} transforms layers {list(layers)}, but {model.name} has {n_layers} "
                         "layers")
    targets = config.get("target_modules") or ()
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    weights = next(directory / name for name in ADAPTER_WEIGHTS if (directory / name).is_file())
    check_weight_file(weights, "adapter weights")
    return AdapterSource(path=directory, base_model=base, peft_type=str(config["peft_type"]),
                         target_modules=targets, layers=layers)


def adapter_fingerprint(source: AdapterSource) -> str:
    """Identifies the adapter's files (names, sizes, modification times), for cache keys."""
    stats = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in source.path.iterdir() if f.is_file())
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def load_adapter(model: nn.Module, source: AdapterSource, *, merge: bool = False) -> nn.Module:
    """``PeftModel.from_pretrained(model, source.path)`` in eval mode (loading errors -> InputError); with
    ``merge`` the weight change is folded into the base weights and the plain model returned
    (``merge_and_unload``: the fine-tuned model at the base model's speed)."""
    from peft import PeftModel

    with loading(f"the adapter on {type(model).__name__}", source.path), warnings.catch_warnings():
        # peft reads a property transformers deprecated: noise, not the user's
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        peft_model = PeftModel.from_pretrained(model, source.path, adapter_name=ADAPTER_NAME, is_trainable=False)
    peft_model.eval()
    return peft_model.merge_and_unload() if merge else peft_model


def adapter_deltas(peft_model: nn.Module) -> dict[str, Tensor]:
    """The weight change ΔW of every module the active adapter modifies, keyed by the name of the modified
    weight inside the *unwrapped* model (``peft_model.get_base_model()``), e.g.
    ``model.layers.0.self_attn.q_proj.base_layer.weight``: the tangent of the first-order prediction
    (``torch.func.functional_call`` on the base model with these names). Detached, in the weights' dtype."""
    base = peft_model.get_base_model()
    deltas: dict[str, Tensor] = {}
    for name, module in base.named_modules():
        weights = getattr(module, "lora_A", None)
        if weights is None or ADAPTER_NAME not in weights or not hasattr(module, "get_delta_weight"):
            continue
        base_layer = module.get_base_layer()
        delta = module.get_delta_weight(ADAPTER_NAME).detach()
        deltas[f"{name}.base_layer.weight"] = delta.to(base_layer.weight.dtype).reshape(base_layer.weight.shape)
    if not deltas:
        raise InputError("the adapter modifies no weight with a LoRA delta (only LoRA adapters are supported here)")
    return deltas
