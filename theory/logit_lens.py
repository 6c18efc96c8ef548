"""The logit lens of a direction and the activation histogram of a feature, model-independent.

Logit lens: a direction x (d_model,), already passed through the model's final norm, is read out by the
unembedding W_U (vocab, d_model) with optional bias b: logits = W_U x + b (vocab,). Its "promoted" tokens are the
k largest logits, its "suppressed" tokens the k smallest (ties to the lower token id). Which norm is applied, and to
what, is the caller's convention (``realmodels.interpret.unembed``: the final norm of the direction alone).

Histogram: the non-zero activations of a feature, in ``n_bins`` equal bins from 0 to their maximum; zeros are
counted apart (an SAE feature is zero on most tokens, which would drown the shape of the rest)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from theory.errors import InputError

VOCAB_CHUNK = 16_384  # unembedding rows cast to float32 at a time (bounds memory for 256k-token vocabularies)


def unembed(normed: Tensor, unembedding: Tensor, bias: Tensor | None = None, *,
            chunk: int = VOCAB_CHUNK) -> Tensor:
    """logits (n, vocab) float32 = normed (n, d) @ W_Uᵀ (+ b), computed over ``chunk`` vocabulary rows at a time
    in float32 whatever the unembedding's dtype."""
    if normed.ndim != 2 or unembedding.ndim != 2 or normed.shape[1] != unembedding.shape[1]:
        raise InputError(f"directions {tuple(normed.shape)} and unembedding {tuple(unembedding.shape)} do not "
                         "share the model width")
    x = normed.float()
    parts = []
    for lo in range(0, unembedding.shape[0], chunk):
        part = x @ unembedding[lo:lo + chunk].to(x.device).float().T
        if bias is not None:
            part = part + bias[lo:lo + chunk].to(x.device).float()
        parts.append(part)
    return torch.cat(parts, dim=1)


@dataclass(frozen=True)
class TopBottom:
    """Per row: the ``k`` largest logits (descending) and the ``k`` smallest (ascending), as token ids and
    values, each (n, k)."""

    promoted_ids: Tensor
    promoted: Tensor
    suppressed_ids: Tensor
    suppressed: Tensor


def top_bottom(logits: Tensor, k: int) -> TopBottom:
    """The k promoted and k suppressed tokens of each row of ``logits`` (n, vocab); ties go to the lower id
    (a stable sort), k is capped at the vocabulary size."""
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    k = min(k, logits.shape[1])
    down = torch.sort(logits, dim=1, descending=True, stable=True)
    up = torch.sort(logits, dim=1, stable=True)
    return TopBottom(down.indices[:, :k], down.values[:, :k], up.indices[:, :k], up.values[:, :k])


@dataclass(frozen=True)
class Histogram:
    """``counts[b]`` non-zero values in [edges[b], edges[b+1]) (the last bin closed), ``n_zero`` zeros."""

    edges: list[float]
    counts: list[int]
    n_zero: int

    def to_dict(self) -> dict:
        """The histogram as a JSON-ready dict."""
        return {"edges": self.edges, "counts": self.counts, "n_zero": self.n_zero}


def activation_histogram(nonzero: np.ndarray, n_zero: int, n_bins: int) -> Histogram:
    """The histogram (module docstring) of the non-zero values ``nonzero`` plus ``n_zero`` zeros; without
    non-zero values every count is 0 and the edges span [0, 1]."""
    if n_bins < 1:
        raise InputError(f"n_bins must be at least 1, got {n_bins}")
    values = np.asarray(nonzero, dtype=np.float64)
    top = float(values.max()) if values.size else 1.0
    lo = min(0.0, float(values.min())) if values.size else 0.0
    counts, edges = np.histogram(values, bins=n_bins, range=(lo, top if top > lo else lo + 1.0))
    return Histogram(edges=edges.tolist(), counts=counts.astype(int).tolist(), n_zero=int(n_zero))
