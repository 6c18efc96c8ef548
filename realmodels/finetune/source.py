"""The model a fine-tuning run trains: with an SAE (the monitor or the guard read it) a ``Session`` on the
checkpoint or local model + SAE; without one the model alone (a registered checkpoint's hub model or a local
HF directory), resolved and checked from its config the same way, nothing loaded until ``model`` is read."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.loading.bundle import ModelSource, load_pretrained, resolve_model_source
from realmodels.loading.checks import model_shape
from realmodels.loading.registry import check_dtype, get_checkpoint
from realmodels.loading.session import Session, resolve_max_length
from theory.errors import InputError

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class TrainingModel:
    """``session`` (with an SAE) or ``source`` (the model alone); ``recorded`` is what a run's config records
    (the keys of ``ModelChoice.to_config``)."""

    recorded: dict
    session: Session | None = None
    source: ModelSource | None = None
    dtype: str = "auto"
    max_length: int = 0
    device_map: object = None

    @classmethod
    def from_options(cls, options, run_path: Path, *, needs_sae: bool) -> TrainingModel:
        """From the CLI's ``ModelOptions``: a Session when ``needs_sae``; else the model alone (--sae and
        --layer are then not used and are errors, so a run's config never records an unused SAE)."""
        if needs_sae:
            session = options.session(run_path)
            return cls(recorded=session.choice.to_config(), session=session, max_length=session.max_length)
        if options.sae is not None or options.layer is not None:
            raise InputError("--sae and --layer are used by --monitor or --guard only")
        if options.checkpoint is None and options.model is None:
            raise InputError("no model given: pass --checkpoint NAME (see `realmodels checkpoints`) or --model PATH")
        if options.checkpoint is not None and options.model is not None:
            raise InputError("give either --checkpoint NAME or --model PATH, not both")
        from realmodels.loading.placement import parse_device_map

        spec = get_checkpoint(options.checkpoint) if options.checkpoint is not None else None
        source = resolve_model_source(spec, options.model)
        dtype = check_dtype(options.dtype)
        if dtype == "auto" and spec is not None:
            dtype = spec.default_dtype
        shape = model_shape(source.path, source.repo_id, spec)
        recorded = {"checkpoint": options.checkpoint, "model": None if source.path is None else str(source.path),
                    "sae": None, "layer": None, "dtype": dtype,
                    "chat_template": None if options.chat_template is None else str(
                        Path(options.chat_template).expanduser().resolve()),
                    "max_length": options.max_length}
        if source.path is None and options.model is not None:
            recorded["model"] = options.model  # a hub id
        return cls(recorded=recorded, source=source, dtype=dtype,
                   max_length=resolve_max_length(shape.context, options.max_length, source.name),
                   device_map=parse_device_map(options.device_map))

    @property
    def name(self) -> str:
        return self.session.sources.model.name if self.session is not None else self.source.name

    def to_config(self) -> dict:
        return dict(self.recorded)

    @cached_property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        if self.session is not None:
            return self.session.tokenizer
        from realmodels.loading.bundle import load_model_tokenizer

        template = None if self.recorded["chat_template"] is None else Path(self.recorded["chat_template"])
        return load_model_tokenizer(self.source, template)

    def config(self) -> PretrainedConfig:
        """The model's transformers config (no weights)."""
        from transformers import AutoConfig

        source = self.session.sources.model if self.session is not None else self.source
        return load_pretrained(AutoConfig, source, "model config")

    @cached_property
    def model(self) -> PreTrainedModel:
        """The base model's weights (the session's bundle model, with its SAE, when there is a session)."""
        if self.session is not None:
            return self.session.bundle.model
        from transformers import AutoModelForCausalLM

        placement = {} if self.device_map is None else {"device_map": self.device_map}
        return load_pretrained(AutoModelForCausalLM, self.source, "model", dtype=self.dtype, **placement)
