"""The model a fine-tuning run trains: with an SAE (the monitor or the guard read it) a ``Session`` on the
checkpoint or local model + SAE; without one the model alone (``realmodels.loading.plain.PlainModel``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from realmodels.loading.plain import PlainModel
from realmodels.loading.session import Session
from theory.errors import ParamError

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class TrainingModel:
    """Either ``session`` (with an SAE) or ``plain`` (the model alone)."""

    session: Session | None = None
    plain: PlainModel | None = None

    @classmethod
    def from_options(cls, options, run_path: Path, *, needs_sae: bool) -> TrainingModel:
        """From the CLI's ``ModelOptions``: a Session when ``needs_sae``; else the model alone (``sae`` and
        ``layer`` are then not used and are errors, so a run's config never records an unused SAE)."""
        if needs_sae:
            return cls(session=options.session(run_path))
        if options.sae is not None or options.layer is not None:
            raise ParamError("`sae` and `layer` are used by `monitor` or `guard` only")
        return cls(plain=PlainModel.resolve(checkpoint=options.checkpoint, model=options.model, dtype=options.dtype,
                                            chat_template=options.chat_template, max_length=options.max_length,
                                            device_map=options.device_map))

    @property
    def name(self) -> str:
        return self.session.sources.model.name if self.session is not None else self.plain.name

    @property
    def max_length(self) -> int:
        return self.session.max_length if self.session is not None else self.plain.max_length

    def to_config(self) -> dict:
        return self.session.choice.to_config() if self.session is not None else self.plain.to_config()

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.session.tokenizer if self.session is not None else self.plain.tokenizer

    def config(self) -> PretrainedConfig:
        """The model's transformers config (no weights)."""
        if self.session is None:
            return self.plain.config()
        from transformers import AutoConfig

        from realmodels.loading.bundle import load_pretrained

        return load_pretrained(AutoConfig, self.session.sources.model, "model config")

    @property
    def model(self) -> PreTrainedModel:
        """The base model's weights (the session's bundle model, with its SAE, when there is a session)."""
        return self.session.bundle.model if self.session is not None else self.plain.model
