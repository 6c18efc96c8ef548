"""``SaeConfig``: the width, sparsity and training recipe of an SAE the toolkit trains (``realmodels.sae.train``),
kept apart from the training code so that the CLI builds and checks it without importing torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from theory.errors import InputError


ARCHITECTURES = ("topk", "jumprelu")


@dataclass(frozen=True)
class SaeConfig:
    """The SAE's width, sparsity and training recipe (``train_sae``)."""

    d_sae: int = 256
    """Number of SAE features."""
    k: int = 8
    """Active latents per token (TopK); the target L0 (JumpReLU)."""
    steps: int = 1500
    """Optimiser steps."""
    batch_size: int = 256
    """Activations per step."""
    lr: float = 1e-3
    """Adam learning rate."""
    n_conversations: int = 3000
    """Pre-training conversations whose assistant tokens are cached."""
    seed: int = 0
    """Seeds the initialisation and the batches."""
    architecture: str = "topk"
    """topk | jumprelu (Gemma Scope 2's quadratic L0 penalty around k)."""
    l0_coefficient: float = 1.0
    """Weight of the JumpReLU L0 penalty."""

    def __post_init__(self):
        for name in ("d_sae", "k", "steps", "batch_size", "n_conversations"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise InputError(f"SAE {name} must be an integer > 0, got {value!r}")
        if self.k > self.d_sae:
            raise InputError(f"SAE k {self.k} exceeds d_sae {self.d_sae}")
        if self.architecture not in ARCHITECTURES:
            raise InputError(f"SAE architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}")
        if not self.l0_coefficient > 0:
            raise InputError(f"SAE l0_coefficient must be a positive number, got {self.l0_coefficient!r}")
        if not self.lr > 0:
            raise InputError(f"SAE lr must be a positive number, got {self.lr!r}")

    def to_dict(self) -> dict:
        """The fields as a run's config records them; a TopK SAE's without ``architecture`` and ``l0_coefficient``
        (so runs and organism builds recorded before JumpReLU existed still resume)."""
        data = asdict(self)
        if self.architecture == "topk":
            del data["architecture"], data["l0_coefficient"]
        return data
