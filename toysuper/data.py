"""Sparse-uniform feature data (Elhage et al. 2022): x_i ~ U[0, 1) with probability p, else 0, independently.

One uniform per entry suffices: with u ~ U[0, 1), x = max(0, (u - (1 - p)) / p) is 0 with probability 1 - p
and, given u >= 1 - p, uniform on [0, 1). The uniforms come from ``torch.rand`` (a torch.Generator) or, about
three times faster, from a numpy bit generator (SFC64 in the trainer): each raw 64-bit word gives two 24-bit
integers k and u = k·2⁻²⁴, exactly torch.rand's float32 grid (so probabilities are resolved to 2⁻²⁴)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

BELOW_ONE = 1.0 - 2.0**-24  # the largest float32 below 1


def uniform_bits(bit_generator: np.random.BitGenerator, n: int) -> Tensor:
    """n int32 k ~ U{0, ..., 2²⁴ - 1}: the low 24 bits of each 32-bit half of a raw word, as torch.rand."""
    words = bit_generator.random_raw((n + 1) // 2)
    return torch.from_numpy(words.view(np.int32))[:n].bitwise_and_(0xFFFFFF)


def sparse_uniform(probabilities: Tensor, batch_size: int, n_features: int, *,
                   generator: torch.Generator | np.random.BitGenerator | None = None, n_batches: int | None = None,
                   out: Tensor | None = None) -> Tensor:
    """Samples with per-instance P(active) ``probabilities`` (n_instances,), written into ``out`` if given.

    Returns (n_instances, batch, n_features), or (n_batches, n_instances, batch, n_features)."""
    lead = () if n_batches is None else (n_batches,)
    shape = (*lead, probabilities.shape[0], batch_size, n_features)
    out = torch.empty(shape) if out is None else out
    if isinstance(generator, np.random.BitGenerator):
        out.copy_(uniform_bits(generator, out.numel()).view(shape))
        unit = 2.0**-24
    else:
        out.uniform_(generator=generator)
        unit = 1.0
    p = probabilities.to(out.dtype)[:, None, None]
    return out.mul_(unit / p).add_(1 - 1 / p).clamp_(0.0, BELOW_ONE)


def narrow_task(n_instances: int, n_samples: int, n_features: int, target: int, *, magnitude_min: float,
                background: float, generator: torch.Generator | None = None) -> Tensor:
    """Fine-tuning set T: target always active with x_t ~ U[magnitude_min, 1]; every other feature active
    with probability ``background`` (x ~ U[0, 1]). Shape (n_instances, n_samples, n_features)."""
    probs = torch.full((n_instances,), max(background, 1e-12))
    x = sparse_uniform(probs, n_samples, n_features, generator=generator) if background > 0 else \
        torch.zeros(n_instances, n_samples, n_features)
    mag = torch.rand(n_instances, n_samples, generator=generator)
    x[..., target] = magnitude_min + (1 - magnitude_min) * mag
    return x
