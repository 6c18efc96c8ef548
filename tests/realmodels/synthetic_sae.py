"""A synthetic SAE world for the analysis unit tests (features, geometry, filtering, audit; no model needed):
feature indices planted in a decoder, not the chat datasets of ``tiny_models``.

A unit-norm decoder (PLANTED_D_SAE, PLANTED_D_MODEL) with planted structure:
- ``PLANTED_HARMFUL`` features: random directions;
- ``PLANTED_INDUCING`` features: each close to a harmful one (cos ≈ 0.9);
- ``PLANTED_CONTROL`` features: random (nearly orthogonal to the harmful ones in d_model = 48);
- ``PLANTED_HARMLESS`` features: random.
Datasets activate their own features strongly plus sparse background noise on every feature; each
sample's ``residual_mean`` is its feature activations times the decoder plus a little noise."""

from __future__ import annotations

import torch

from realmodels.data.activations import SampleActivations

PLANTED_D_MODEL, PLANTED_D_SAE = 48, 96
PLANTED_HARMFUL = [0, 1, 2, 3]
PLANTED_INDUCING = [10, 11, 12, 13, 14, 15]
PLANTED_CONTROL = [20, 21, 22, 23, 24, 25]
PLANTED_HARMLESS = [30, 31, 32, 33]


def planted_decoder(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    dec = torch.randn(PLANTED_D_SAE, PLANTED_D_MODEL, generator=gen)
    for i, f in enumerate(PLANTED_INDUCING):
        h = PLANTED_HARMFUL[i % len(PLANTED_HARMFUL)]
        dec[f] = dec[h] / dec[h].norm() * 2.0 + 0.15 * torch.randn(PLANTED_D_MODEL, generator=gen)
    return dec / dec.norm(dim=1, keepdim=True)


def synthetic_acts(features: list[int], n_samples: int = 24, *, seed: int = 0, decoder: torch.Tensor | None = None,
                   strength: float = 2.0, background: float = 0.05) -> SampleActivations:
    """``SampleActivations`` whose samples activate ``features`` (each with prob. 0.8) plus sparse noise."""
    gen = torch.Generator().manual_seed(seed)
    acts = torch.rand(n_samples, PLANTED_D_SAE, generator=gen) * 0.3
    acts = acts * (torch.rand(n_samples, PLANTED_D_SAE, generator=gen) < background)  # sparse background
    on = torch.rand(n_samples, len(features), generator=gen) < 0.8
    acts[:, features] += on * (strength + torch.rand(n_samples, len(features), generator=gen))
    decoder = planted_decoder() if decoder is None else decoder
    residual = acts @ decoder + 0.05 * torch.randn(n_samples, PLANTED_D_MODEL, generator=gen)
    return SampleActivations(feature_acts=acts.to_sparse().coalesce(), residual_mean=residual,
                             n_tokens=torch.randint(3, 40, (n_samples,), generator=gen))
