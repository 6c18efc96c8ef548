"""One command's access to a checkpoint: which model + SAE (``ModelChoice``), resolved and validated once
when the ``Session`` opens (from files and configs, no weights) and loaded only when something actually needs
the model, so a resumed run whose results are all on disk loads nothing.

Conversations are truncated to ``max_length`` tokens (``--max-length``), by default the model's context
(``max_position_embeddings``) capped at ``DEFAULT_MAX_LENGTH``. A run's config records ``max_length: null``
for the default; activation caches are keyed by the resolved length."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.data.dataset import Datasets
from realmodels.loading.placement import DeviceMap, parse_device_map
from realmodels.loading.registry import get_checkpoint
from theory.errors import ParamError

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PreTrainedTokenizerBase

    from realmodels.data.activations import SampleActivations
    from realmodels.data.dataset import Dataset
    from realmodels.data.shards import ShardRunner
    from realmodels.loading.bundle import BundleSources, ModelBundle

DEFAULT_MAX_LENGTH = 2048  # tokens per conversation unless --max-length says otherwise (or the context is shorter)


def resolve_max_length(context: int | None, requested: int | None, model_name: str) -> int:
    """``--max-length`` (at most the model's ``context``), else the context capped at ``DEFAULT_MAX_LENGTH``."""
    if requested is None:
        return DEFAULT_MAX_LENGTH if context is None else min(context, DEFAULT_MAX_LENGTH)
    if context is not None and requested > context:
        raise ParamError(f"`max_length` {requested} exceeds the context of model {model_name} ({context} tokens)")
    return requested


@dataclass(frozen=True)
class ModelChoice:
    """A registered ``checkpoint``, or a local/hub ``model`` with a saved ``sae`` directory, at ``layer`` — none of
    the three: the embedded model organism (``realmodels.loading.embedded``) at its SAE's layer; with a
    peft ``adapter`` directory (or a finetune run directory holding one) the model is base + adapter; with a
    ``finetuned`` full checkpoint of the same architecture (a directory, a full finetune run directory or a hub id)
    its weights replace the model's (tokenizer, SAE and layer stay the model's).

    Only the fields that change results (not devices, batch sizes or caches) are part of a run's config."""

    checkpoint: str | None = None
    model: str | None = None
    sae: str | None = None
    layer: int | None = None
    dtype: str = "auto"
    chat_template: str | None = None
    max_length: int | None = None
    adapter: str | None = None
    finetuned: str | None = None

    def __post_init__(self):
        if self.checkpoint is not None and (self.model is not None or self.sae is not None):
            # a checkpoint with --model/--sae overrides is allowed by load_bundle; keep the CLI unambiguous
            raise ParamError("give either `checkpoint` NAME or `model` PATH `sae` PATH, not both")
        if self.checkpoint is None and self.model is None and self.sae is None:  # the embedded organism
            from realmodels.loading.embedded import embedded_default

            embedded = embedded_default()
            object.__setattr__(self, "model", str(embedded.model))
            object.__setattr__(self, "sae", str(embedded.sae))
            if self.layer is None:
                object.__setattr__(self, "layer", embedded.layer)
        if self.checkpoint is None and (self.model is None or self.sae is None):
            raise ParamError("no SAE given: pass `checkpoint` NAME (see `realmodels checkpoints`), or both "
                             "`model` PATH and `sae` PATH, or neither (the embedded organism)")
        if self.max_length is not None and self.max_length < 1:
            raise ParamError(f"`max_length` must be at least 1, got {self.max_length}")

    def with_layer(self) -> ModelChoice:
        """The layer filled in when a checkpoint has a single SAE layer; otherwise a missing --layer is an
        InputError. Everything else is checked by ``sources``."""
        if self.layer is not None:
            return self
        if self.checkpoint is None:
            raise ParamError("`layer` is required with `model`/`sae` (the layer the SAE reads)")
        spec = get_checkpoint(self.checkpoint)
        if len(spec.layers) != 1:
            raise ParamError(f"`layer` is required for checkpoint '{self.checkpoint}' (layers with an SAE: "
                             f"{', '.join(map(str, spec.layers))})")
        return replace(self, layer=spec.layers[0])

    def sources(self) -> BundleSources:
        """``realmodels.loading.bundle.resolve_sources`` of this choice (names, paths, the layer's SAE, dtype,
        chat template), without loading weights. Needs the layer (``with_layer``)."""
        from realmodels.loading.bundle import resolve_sources

        return resolve_sources(checkpoint=self.checkpoint, model_path=self.model, sae_path=self.sae, layer=self.layer,
                               dtype=self.dtype, chat_template=self.chat_template, adapter=self.adapter,
                               finetuned=self.finetuned)

    def to_config(self) -> dict:
        """The fields with existing paths made absolute; ``adapter`` and ``finetuned`` only when given (so the
        config of a run without them is what it was before they existed, and such runs still resume)."""
        data = asdict(self)
        for key in ("adapter", "finetuned"):
            if data[key] is None:
                del data[key]
        for key in ("model", "sae", "chat_template", "adapter", "finetuned"):
            if data.get(key) is not None and Path(data[key]).expanduser().exists():
                data[key] = str(Path(data[key]).expanduser().resolve())
        return data


class Session:
    """Lazily loaded ``ModelBundle`` plus cached dataset activations and the SAE decoder.

    Opening a session checks everything that can be checked without weights (the choice, the device map, the
    batch size), so a bad option fails before a command writes anything. ``cache_dir`` holds activation
    caches (keyed by model and adapter, SAE, layer and dataset content), so a rerun or another command on the
    same data reuses them. ``merge_adapter``: the choice's adapter folded into the model's weights (the plain
    fine-tuned model), else the model is a ``PeftModel`` (``load_resolved_bundle``).

    ``shard_runner``: datasets' activations are computed by its model workers instead of this process
    (``realmodels.data.shards``: the same cache files, equal tensors; needs ``cache_dir``, where the shards go);
    this process then loads the tokenizer only, unless something else needs the model. ``close()`` releases the
    runner (``close`` if it has one: a Ray pool shuts down)."""

    def __init__(self, choice: ModelChoice, *, device_map: str | dict | None = None, batch_size: int = 8,
                 cache_dir: Path | None = None, progress: bool = True, ignore_memory_check: bool = False,
                 merge_adapter: bool = True, shard_runner: ShardRunner | None = None):
        self.choice = choice.with_layer()
        self.sources = self.choice.sources()
        self.max_length = self._max_length()
        self.device_map: DeviceMap = parse_device_map(device_map)
        if batch_size < 1:
            raise ParamError(f"`batch_size` must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.progress = progress
        self.ignore_memory_check = ignore_memory_check
        self.merge_adapter = merge_adapter
        if shard_runner is not None and cache_dir is None:
            raise ValueError("a shard runner needs a cache_dir (the shards are written there)")
        self.shard_runner = shard_runner
        self._activations: dict[str, SampleActivations] = {}
        self.datasets = Datasets()  # every dataset this session reads, each opened (and tokenised) once

    def _max_length(self) -> int:
        return resolve_max_length(self.sources.shape.context, self.choice.max_length, self.sources.model.name)

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The model's tokenizer with the chosen chat template (no weights are loaded)."""
        from realmodels.loading.bundle import load_tokenizer

        if not self.progress:
            from huggingface_hub.utils import disable_progress_bars
            from transformers.utils import logging as hf_logging

            disable_progress_bars()
            hf_logging.disable_progress_bar()
        return load_tokenizer(self.sources)

    def dataset(self, data: Dataset | str | Path) -> Dataset:
        """``data`` as this session's ``Dataset`` (``realmodels.data.dataset.Datasets``: a file is opened once, a
        dataset object is adopted), so each dataset is read and tokenised once per session."""
        return self.datasets.open(data)

    def check_datasets(self, datasets: list[Dataset | str | Path]) -> None:
        """Render and tokenise every conversation of each dataset as the activations will (the chat template
        accepts it, assistant tokens remain within ``max_length``): an InputError naming file:line before any
        weights load. Loads the tokenizer only; the tokenisation is kept by each ``Dataset`` for the
        activations."""
        for dataset in datasets:
            self.dataset(dataset).tokenized(self.tokenizer, self.max_length)

    @property
    def offload_folder(self) -> Path | None:
        """``<cache_dir>/offload`` for weights offloaded to disk, None without a cache directory."""
        return None if self.cache_dir is None else Path(self.cache_dir) / "offload"

    @cached_property
    def bundle(self) -> ModelBundle:
        """The loaded model, tokenizer and SAE (``load_resolved_bundle``; loaded on first use, once)."""
        from realmodels.loading.bundle import load_resolved_bundle

        return load_resolved_bundle(self.sources, device_map=self.device_map, offload_folder=self.offload_folder,
                                    ignore_memory_check=self.ignore_memory_check, tokenizer=self.tokenizer,
                                    merge_adapter=self.merge_adapter)

    def activations(self, data: Dataset | str | Path) -> SampleActivations:
        """``SampleActivations`` of a chat dataset (memoised per content): by this process's model, or by the
        shard runner's workers."""
        dataset = self.dataset(data)
        if dataset.sha256 not in self._activations:
            if self.shard_runner is None:
                from realmodels.data.activations import dataset_activations

                acts = dataset_activations(self.bundle, dataset, batch_size=self.batch_size, cache_dir=self.cache_dir,
                                           progress=self.progress, max_length=self.max_length)
            else:
                acts = self._sharded_activations(dataset)
            self._activations[dataset.sha256] = acts
        return self._activations[dataset.sha256]

    def _sharded_activations(self, dataset: Dataset) -> SampleActivations:
        from realmodels.data.activations import ModelIdentity
        from realmodels.data.shards import WorkerSpec, sharded_activations
        from realmodels.loading.bundle import cache_names

        model_name, sae_name, fingerprint = cache_names(self.sources)
        identity = ModelIdentity(model_name=model_name, sae_name=sae_name, layer=self.sources.layer,
                                 fingerprint=fingerprint, tokenizer=self.tokenizer)
        offload = self.offload_folder
        sources = self.sources  # workers may run in another directory: their paths absolute
        if sources.chat_template is not None:
            sources = replace(sources, chat_template=sources.chat_template.resolve())
        if sources.adapter is not None:
            sources = replace(sources, adapter=replace(sources.adapter, path=Path(sources.adapter.path).resolve()))
        spec = WorkerSpec(sources=sources, device_map=self.device_map,
                          offload_folder=None if offload is None else str(Path(offload).resolve()),
                          ignore_memory_check=self.ignore_memory_check, merge_adapter=self.merge_adapter)
        return sharded_activations(identity, dataset, spec=spec, run_shards=self.shard_runner,
                                   cache_dir=Path(self.cache_dir), batch_size=self.batch_size,
                                   max_length=self.max_length, progress=self.progress)

    def close(self) -> None:
        """Release the shard runner's workers (nothing to do without one)."""
        if (close := getattr(self.shard_runner, "close", None)) is not None:
            close()

    @cached_property
    def decoder(self) -> Tensor:
        """SAE decoder rows (d_sae, d_in), float32: from the loaded SAE if any, else read alone from disk."""
        if "bundle" in self.__dict__:
            return self.bundle.sae.W_dec.detach().float().cpu()
        from realmodels.loading.saes import read_decoder

        return read_decoder(self.sources.sae)
