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

    from realmodels.experiments.spec import ModelSpec, RunOptions


@dataclass
class TrainingModel:
    """Either ``session`` (with an SAE) or ``plain`` (the model alone)."""

    session: Session | None = None
    plain: PlainModel | None = None

    @classmethod
    def from_spec(cls, model: ModelSpec, options: RunOptions, run_path: Path, *, needs_sae: bool) -> TrainingModel:
        """``model`` as a Session (activations cached as ``options`` says) when ``needs_sae``; else the model alone
        (``sae`` and ``layer`` are then not used and are errors, so a run's config never records an unused SAE).
        Nothing is loaded."""
        if needs_sae:
            return cls(session=options.session(model, run_path))
        if model.sae is not None or model.layer is not None:
            raise ParamError("`sae` and `layer` are used by `monitor`, `guard` or `caft` features only")
        return cls(plain=model.plain())

    @property
    def name(self) -> str:
        """The model's name."""
        return self.session.sources.model.name if self.session is not None else self.plain.name

    @property
    def max_length(self) -> int:
        """Longest tokenised conversation."""
        return self.session.max_length if self.session is not None else self.plain.max_length

    def to_config(self) -> dict:
        """What the run's config records of the model (the session's choice, or the plain model's)."""
        return self.session.choice.to_config() if self.session is not None else self.plain.to_config()

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The model's tokenizer."""
        return self.session.tokenizer if self.session is not None else self.plain.tokenizer

    def shape(self):
        """The model's sizes from its config.json (``realmodels.loading.checks.ModelShape``; nothing loaded)."""
        if self.session is not None:
            return self.session.sources.shape
        from realmodels.loading.checks import model_shape
        from realmodels.loading.registry import get_checkpoint

        checkpoint = self.plain.recorded.get("checkpoint")
        return model_shape(self.plain.source.path, self.plain.source.repo_id,
                           None if checkpoint is None else get_checkpoint(checkpoint))

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
