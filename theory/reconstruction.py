"""How well a sparse autoencoder reconstructs activations it was not trained on (held-out tokens x, rows):

- FVU (fraction of variance unexplained) = Σ‖x − x̂‖² / Σ‖x − x̄‖², with x̄ the mean of the evaluated rows: 0 for a
  perfect reconstruction, 1 for predicting the mean;
- L0 = mean number of non-zero latents per row;
- dead fraction = share of latents that are zero on every evaluated row (an estimate: a latent may fire on
  tokens outside the sample)."""

from __future__ import annotations

import torch
from torch import Tensor


def fvu(x: Tensor, x_hat: Tensor) -> float:
    """Σ‖x − x̂‖² / Σ‖x − x̄‖² over the rows of ``x`` (n, d) and its reconstruction ``x_hat`` (n, d); needs n ≥ 2
    rows that are not all equal."""
    x, x_hat = x.double(), x_hat.double()
    total = ((x - x.mean(0)) ** 2).sum()
    if not total > 0:
        raise ValueError("FVU needs rows that vary (their variance is zero)")
    return float(((x - x_hat) ** 2).sum() / total)


def l0(codes: Tensor) -> float:
    """Mean number of non-zero entries per row of ``codes`` (n, d_sae)."""
    return float((codes != 0).sum(1).double().mean())


def dead_fraction(codes: Tensor) -> float:
    """Share of columns of ``codes`` (n, d_sae) that are zero on every row."""
    return float((~(codes != 0).any(0)).double().mean())


def sae_quality(x: Tensor, x_hat: Tensor, codes: Tensor) -> dict:
    """``fvu``, ``l0``, ``dead_fraction`` and the number of rows, as a dict."""
    return {"fvu": fvu(x, x_hat), "l0": l0(codes), "dead_fraction": dead_fraction(codes), "n_tokens": int(len(x))}


__all__ = ["dead_fraction", "fvu", "l0", "sae_quality"]
