"""``FeatureCardsConfig``: what each feature card shows. Frozen, validated in ``__post_init__`` (InputError, one
line), without torch, so the CLI resolves it (and renders its defaults in ``--help``) before anything heavy loads."""

from __future__ import annotations

from dataclasses import dataclass

from theory.errors import InputError


@dataclass(frozen=True)
class FeatureCardsConfig:
    """How feature cards are built."""

    top_tokens: int = 10
    """tokens listed per logit-lens side (promoted and suppressed)"""
    examples: int = 8
    """top-activating snippets per feature (one per conversation, over all --data datasets)"""
    context: int = 8
    """tokens shown on each side of a snippet's most activating token"""
    bins: int = 20
    """bins of the activation histogram (non-zero activations; zeros counted apart)"""
    top_movers: int = 20
    """features taken from an amplification run: the top N by |measured change|"""

    def __post_init__(self):
        for name in ("top_tokens", "examples", "bins", "top_movers"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.context < 0:
            raise InputError(f"context must be at least 0, got {self.context}")
