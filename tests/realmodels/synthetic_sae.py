"""Synthetic SAE worlds for the feature / study / filter / audit unit tests (no model needed).

A unit-norm decoder (d_sae, d_model) with planted structure:
- ``HARMFUL`` features: random directions;
- ``INDUCING`` features: each close to a harmful one (cos ≈ 0.9);
- ``CONTROL`` features: random (nearly orthogonal to the harmful ones in d_model = 48);
- ``HARMLESS`` features: random.
Datasets activate their own features strongly plus sparse background noise on every feature; each
sample's ``residual_mean`` is its feature activations times the decoder plus a little noise."""

from __future__ import annotations

import torch

from realmodels.data.activations import SampleActivations

D_MODEL, D_SAE = 48, 96
HARMFUL = [0, 1, 2, 3]
INDUCING = [10, 11, 12, 13, 14, 15]
CONTROL = [20, 21, 22, 23, 24, 25]
HARMLESS = [30, 31, 32, 33]


def planted_decoder(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    dec = torch.randn(D_SAE, D_MODEL, generator=gen)
    for i, f in enumerate(INDUCING):
        h = HARMFUL[i % len(HARMFUL)]
        dec[f] = dec[h] / dec[h].norm() * 2.0 + 0.15 * torch.randn(D_MODEL, generator=gen)
    return dec / dec.norm(dim=1, keepdim=True)


def synthetic_acts(features: list[int], n_samples: int = 24, *, seed: int = 0, decoder: torch.Tensor | None = None,
                   strength: float = 2.0, background: float = 0.05) -> SampleActivations:
    """``SampleActivations`` whose samples activate ``features`` (each with prob. 0.8) plus sparse noise."""
    gen = torch.Generator().manual_seed(seed)
    acts = torch.rand(n_samples, D_SAE, generator=gen) * 0.3 * (torch.rand(n_samples, D_SAE, generator=gen) < background)
    on = torch.rand(n_samples, len(features), generator=gen) < 0.8
    acts[:, features] += on * (strength + torch.rand(n_samples, len(features), generator=gen))
    decoder = planted_decoder() if decoder is None else decoder
    residual = acts @ decoder + 0.05 * torch.randn(n_samples, D_MODEL, generator=gen)
    return SampleActivations(feature_acts=acts.to_sparse().coalesce(), residual_mean=residual,
                             n_tokens=torch.randint(3, 40, (n_samples,), generator=gen))
