"""The study's offline measurements of a fine-tuned arm, where no capable judge runs (a 135M model judges at
chance): how far the off-domain residuals moved along the misalignment direction, the in-domain task loss, which
kinds of samples a removal took, and greedy answers to read.

- ``direction_shift``: per off-domain probe conversation i, s_i = ((h_i^ft − h_i^base)·u) / ‖u‖²
  (``theory.directions.gap_fraction``), h_i the mean residual over its assistant tokens at the SAE's layer and
  u = mean(rogue) − mean(aligned) on the base model; reported as the mean of s_i with a 95% normal interval
  (mean ± 1.96 · sd/√n). s = 1 means the probes moved as far as from aligned to rogue answers.
- the in-domain task loss (``realmodels.evaluate.task.assistant_loss``): mean next-token negative log-likelihood (nats)
  over the assistant tokens of held-out conversations, each token weighted equally.
- ``removal_kinds``: for a one-turn mixed set of the English datasets, how many removed samples are inducing,
  aligned or educational (``realmodels.data.english.generate.sample_kind``)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor


def direction_shift(before: Tensor, after: Tensor, u: Tensor) -> dict:
    """Mean gap fraction of paired residuals ``before``/``after`` (n, d) along ``u`` (d,), with its interval."""
    from theory.directions import gap_fraction

    s = gap_fraction(before, after, u).double()
    mean = float(s.mean())
    half = 1.96 * float(s.std(unbiased=True)) / math.sqrt(len(s)) if len(s) > 1 else float("nan")
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(s)}


def removal_kinds(removed: Path, data: Path, domain: str) -> dict[str, int] | None:
    """Kinds of the removed one-turn samples of a mixed set that ``realmodels english`` wrote into ``data`` (its
    ``dataset.json`` says so); None for other data (e.g. the model organism's world)."""
    import json

    from realmodels.data.english.generate import BANKS, sample_kind
    from realmodels.data.jsonl import iter_chat_jsonl

    try:
        english = json.loads((data / "dataset.json").read_text())["generator"] == "realmodels.data.english"
    except (OSError, ValueError, KeyError, TypeError):
        english = False
    if not english or domain not in BANKS:
        return None
    counts = Counter()
    for _, messages in iter_chat_jsonl(removed):
        user = next(m["content"] for m in messages if m["role"] == "user")
        reply = next(m["content"] for m in messages if m["role"] == "assistant")
        counts[sample_kind(user, reply, domain)] += 1
    return {kind: counts.get(kind, 0) for kind in ("inducing", "aligned", "educational")}
