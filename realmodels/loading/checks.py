"""What is checked from config files alone, before any weights load: the model's ``config.json`` (a local
directory's, or the hub cache's copy for a hub id; the registry's sizes when neither is there) gives its hidden
size, layer count and context length, and a saved SAE's ``cfg.json`` its input width and hook. Both are read as
plain JSON (milliseconds, no transformers or sae-lens import), so a wrong ``--layer`` or an SAE of another
width fails before a run starts; the same checks run again on the loaded objects. Every size a config states
(``SIZE_KEYS``, at top level and in ``text_config``) must be a positive integer (or null): a negative
``hidden_size`` or a string layer count is one line naming the file, not a traceback from building the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from realmodels.loading.registry import CheckpointSpec
from runio.reading import read_json_file
from theory.errors import InputError

# config.json key spellings across HF architectures (the first present wins); nested text_config wins
HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")
CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length")
SIZE_KEYS = (*HIDDEN_KEYS, *LAYER_KEYS, *CONTEXT_KEYS, "intermediate_size", "n_inner", "num_attention_heads",
             "n_head", "num_key_value_heads", "head_dim", "vocab_size")


@dataclass(frozen=True)
class ModelShape:
    """A model's sizes as its config states them (None: not stated, checked only once it loads)."""

    hidden_size: int | None = None
    n_layers: int | None = None
    context: int | None = None
    """max_position_embeddings."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from: a hub ``repo_id`` (cache first) or a local directory ``path``."""

    repo_id: str | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        """The model's path, or its Hugging Face repository id."""
        return str(self.path) if self.path is not None else self.repo_id


def is_int(value) -> bool:
    """An int that is not a bool (JSON true is no size)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _first_int(config: dict, keys: tuple[str, ...]) -> int | None:
    value = next((config[key] for key in keys if key in config), None)
    return value if is_int(value) else None


def check_model_sizes(config: dict, file: Path | str) -> None:
    """Every ``SIZE_KEYS`` value of ``config`` (and of its ``text_config``) is a positive int or null, else an
    InputError naming ``file``."""
    text = config.get("text_config")
    for part, prefix in ((config, ""), (text if isinstance(text, dict) else {}, "text_config.")):
        for key in SIZE_KEYS:
            value = part.get(key)
            if value is not None and not (is_int(value) and value > 0):
                shown = repr(value) if is_int(value) or isinstance(value, (str, float)) else type(value).__name__
                raise InputError(f"model config {file}: {prefix}{key} must be a positive integer, got {shown[:40]}")


def read_model_config(path: Path | None, repo_id: str | None) -> dict | None:
    """A model's config.json: from the directory ``path``, else the hub cache's copy of ``repo_id``
    (None when it is not cached). Unreadable JSON is an InputError."""
    if path is not None:
        file = path / "config.json"
    else:
        from huggingface_hub import constants, try_to_load_from_cache

        cached = try_to_load_from_cache(repo_id, "config.json", cache_dir=constants.HF_HUB_CACHE)
        if not isinstance(cached, str):
            return None
        file = Path(cached)
    config = read_json_file(file, "model config")
    if not isinstance(config, dict):
        raise InputError(f"model config {file} is not a JSON object")
    return config


def model_shape(path: Path | None, repo_id: str | None, spec: CheckpointSpec | None) -> ModelShape:
    """The sizes of the model at ``path`` or ``repo_id`` (its config, sizes checked: ``check_model_sizes``; else
    the registered ``spec``'s)."""
    config = read_model_config(path, repo_id)
    if config is None:
        return ModelShape() if spec is None else ModelShape(spec.hidden_size, spec.n_layers, spec.context)
    check_model_sizes(config, path / "config.json" if path is not None else f"{repo_id}/config.json")
    text = config.get("text_config")
    if isinstance(text, dict):  # multimodal configs nest the language model's
        config = {**config, **text}
    return ModelShape(_first_int(config, HIDDEN_KEYS), _first_int(config, LAYER_KEYS), _first_int(config, CONTEXT_KEYS))


def check_layer_range(layer: int, n_layers: int | None, model_name: str) -> None:
    """An InputError unless ``0 <= layer < n_layers`` (no check when ``n_layers`` is unknown)."""
    if n_layers is not None and not 0 <= layer < n_layers:
        raise InputError(f"layer {layer} is out of range: model {model_name} has layers 0..{n_layers - 1}")


def check_sae_layer(hook_layer: int, layer: int, sae_name: str) -> None:
    """An InputError unless the SAE reads the requested layer's residual stream."""
    if hook_layer != layer:
        raise InputError(f"SAE {sae_name} reads blocks.{hook_layer}.hook_resid_post (layer {hook_layer}), "
                         f"but layer {layer} was requested")


def check_sae_width(d_in: int, hidden_size: int | None, sae_name: str, model_name: str) -> None:
    """An InputError unless the SAE's input width ``d_in`` is the model's hidden size (no check when it is unknown)."""
    if hidden_size is not None and d_in != hidden_size:
        raise InputError(f"SAE {sae_name} reads vectors of size d_in={d_in}, but model {model_name} has "
                         f"hidden size {hidden_size}")


# config.json keys that fix a checkpoint's architecture (its parameters' names and shapes); a fine-tuned full
# checkpoint is compared with its base model on these (the first spelling present of each; text_config wins)
ARCHITECTURE_KEYS = (("model_type",), HIDDEN_KEYS, LAYER_KEYS, ("vocab_size",), ("intermediate_size", "n_inner"),
                     ("num_attention_heads", "n_head"), ("num_key_value_heads",), ("head_dim",),
                     ("tie_word_embeddings",))


def architecture(config: dict) -> dict:
    """The ``ARCHITECTURE_KEYS`` a model config states ({first spelling present: value}; text_config merged over
    the top level, as ``model_shape`` reads it)."""
    text = config.get("text_config")
    merged = {**config, **text} if isinstance(text, dict) else config
    found = {}
    for spellings in ARCHITECTURE_KEYS:
        key = next((k for k in spellings if k in merged), None)
        if key is not None:
            found[key] = merged[key]
    return found


def check_same_architecture(base: dict, finetuned: dict, base_name: str, finetuned_name: str) -> None:
    """An InputError "checkpoints of different architectures: ..." naming the first architecture key
    (``ARCHITECTURE_KEYS``) on which the two model configs differ (a key one states and the other does not counts
    as different, except ``tie_word_embeddings``, whose absence means transformers' default)."""
    ours, theirs = architecture(base), architecture(finetuned)
    for key in dict.fromkeys([*ours, *theirs]):
        if key == "tie_word_embeddings" and (key not in ours or key not in theirs):
            continue
        if ours.get(key) != theirs.get(key):
            raise InputError(f"checkpoints of different architectures: {key} is {theirs.get(key)!r} in "
                             f"{finetuned_name} but {ours.get(key)!r} in the base model {base_name}")
