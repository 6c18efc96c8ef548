"""A causal LM without an SAE — for the commands that train or sample from a model but read no features
(``finetune`` without monitor or guard, ``evaluate``): a registered checkpoint's hub model, a local HF
directory or (neither given) the embedded model organism, optionally with a peft adapter (merged), resolved and checked from its files the way
``bundle.resolve_sources`` checks a bundle (names, dtype, chat template, context length, the adapter against
the base model), nothing loaded until ``tokenizer`` or ``model`` is read."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.loading.adapters import AdapterSource, resolve_adapter
from realmodels.loading.bundle import check_chat_template, load_model_tokenizer, load_pretrained, resolve_model_source
from realmodels.loading.checks import ModelSource, model_shape
from realmodels.loading.placement import DeviceMap, parse_device_map
from realmodels.loading.registry import check_dtype, get_checkpoint
from realmodels.loading.session import resolve_max_length
from theory.errors import ParamError

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class PlainModel:
    """``source`` (+ ``adapter``) in ``dtype``; ``max_length`` resolved against the model's context;
    ``recorded``: what a run's config records (the keys of ``ModelChoice.to_config``, sae and layer None)."""

    source: ModelSource
    dtype: str
    max_length: int
    recorded: dict
    chat_template: Path | None = None
    adapter: AdapterSource | None = None
    device_map: DeviceMap = None

    @classmethod
    def resolve(cls, *, checkpoint: str | None, model: str | None, dtype: str = "auto",
                chat_template: str | Path | None = None, max_length: int | None = None,
                adapter: str | Path | None = None, device_map: str | dict | None = None) -> PlainModel:
        """The model of a command's options: the embedded organism when neither ``checkpoint`` nor ``model`` is given, a
        registered checkpoint or a path otherwise (both given is a ParamError), with its adapter, dtype, chat
        template, device map and ``max_length`` checked against the model's context."""
        if checkpoint is None and model is None:  # the embedded organism
            from realmodels.loading.embedded import embedded_default

            model = str(embedded_default().model)
        if checkpoint is not None and model is not None:
            raise ParamError("give either `checkpoint` NAME or `model` PATH, not both")
        spec = get_checkpoint(checkpoint) if checkpoint is not None else None
        source = resolve_model_source(spec, model)
        dtype = check_dtype(dtype)
        if dtype == "auto" and spec is not None:
            dtype = spec.default_dtype
        template = check_chat_template(chat_template)
        shape = model_shape(source.path, source.repo_id, spec)
        adapter_source = None if adapter is None else resolve_adapter(adapter, source, shape.n_layers)
        recorded = {"checkpoint": checkpoint, "model": model if source.path is None else str(source.path),
                    "sae": None, "layer": None, "dtype": dtype,
                    "chat_template": None if template is None else str(template.resolve()), "max_length": max_length}
        if adapter is not None:
            recorded["adapter"] = str(Path(adapter).expanduser().resolve())
        return cls(source=source, dtype=dtype, max_length=resolve_max_length(shape.context, max_length, source.name),
                   recorded=recorded, chat_template=template, adapter=adapter_source,
                   device_map=parse_device_map(device_map))

    @property
    def name(self) -> str:
        """The model's name, with `` + adapter <path>`` when an adapter is loaded."""
        return self.source.name if self.adapter is None else f"{self.source.name} + adapter {self.adapter.path}"

    def to_config(self) -> dict:
        """What a run's config records (``recorded``)."""
        return dict(self.recorded)

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The model's tokenizer with the chat template (loaded once)."""
        return load_model_tokenizer(self.source, self.chat_template)

    @property
    def pad_id(self) -> int:
        """The id that pads a batch: the tokenizer's pad token, else its eos token, else 0 (padded positions are
        masked, so any id serves)."""
        tokenizer = self.tokenizer
        for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
            if token_id is not None:
                return token_id
        return 0

    def config(self) -> PretrainedConfig:
        """The model's transformers config (no weights)."""
        from transformers import AutoConfig

        return load_pretrained(AutoConfig, self.source, "model config")

    @cached_property
    def model(self) -> PreTrainedModel:
        """The weights, in eval mode (the adapter merged in when there is one)."""
        from transformers import AutoModelForCausalLM

        placement = {} if self.device_map is None else {"device_map": self.device_map}
        model = load_pretrained(AutoModelForCausalLM, self.source, "model", dtype=self.dtype, **placement)
        model.eval()
        if self.adapter is not None:
            from realmodels.loading.adapters import load_adapter

            model = load_adapter(model, self.adapter, merge=True)
        return model
