"""Elhage et al. (2022)'s qualitative results, reproduced by the toy trainer: n = 5 features in m = 2
hidden dimensions, importance 0.9**i. Dense features: only the m most important are represented
(||W_i|| ≈ 1), orthogonally, each with feature dimensionality 1. Sparse features: more features than
dimensions — antipodal pairs (dimensionality 1/2), then a pentagon (2/5). The number of represented
features rises with sparsity. Several replicas of each probability train at once, as independent instances."""

from __future__ import annotations

import math

import pytest
import torch

from theory.geometry import cosine_similarity, feature_dimensionality
from toysuper.config import ModelConfig, TrainConfig
from toysuper.data import sparse_uniform
from toysuper.model import ToyModel
from toysuper.train import train

N_FEATURES, N_HIDDEN, REPLICAS = 5, 2, 3
REPRESENTED = 0.5  # ||W_i|| above this: feature i is represented


def _train(probabilities: list[float], steps: int, lr: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """REPLICAS instances per probability, trained together. Returns W (n_probabilities, REPLICAS, n, m) and
    each instance's loss on a held-out set (n_probabilities, REPLICAS)."""
    probs = torch.tensor(probabilities).repeat_interleave(REPLICAS)
    config = ModelConfig(n_features=N_FEATURES, n_hidden=N_HIDDEN, n_instances=len(probs), importance_decay=0.9,
                         feature_probability=max(probabilities), feature_probability_min=min(probabilities))
    init = ToyModel.init(config, generator=torch.Generator().manual_seed(seed))
    init.probability = probs
    model = train(config, TrainConfig(steps=steps, lr=lr, seed=seed, log_every=steps), model=init).model
    held_out = sparse_uniform(probs, 16384, N_FEATURES, generator=torch.Generator().manual_seed(99))
    shape = (len(probabilities), REPLICAS)
    return model.W.view(*shape, N_FEATURES, N_HIDDEN), model.loss(held_out).view(shape)


@pytest.fixture(scope="module")
def groups() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """(W (REPLICAS, n, m), loss (REPLICAS,)) per regime: dense p = 1, intermediate p = 0.2, sparse p = 0.05."""
    W, loss = _train([1.0, 0.2, 0.05], steps=1500, lr=2e-2)
    return {name: (W[i], loss[i]) for i, name in enumerate(["dense", "mid", "sparse"])}


def _n_represented(W: torch.Tensor) -> int:
    return int((W.norm(dim=-1) > REPRESENTED).sum())


def _is_pentagon(W: torch.Tensor) -> bool:
    """All five features represented with dimensionality 2/5, spaced 72° apart."""
    return (_n_represented(W) == N_FEATURES
            and torch.allclose(feature_dimensionality(W), torch.full((N_FEATURES,), 0.4), atol=0.03)
            and torch.allclose(_angle_gaps(W), torch.full((N_FEATURES,), 72.0), atol=8.0))


def _is_two_antipodal_pairs(W: torch.Tensor) -> bool:
    """Four features represented, each with an antipodal partner (cosine -1) and dimensionality 1/2."""
    rep = W.norm(dim=-1) > REPRESENTED
    return (int(rep.sum()) == 4 and bool((cosine_similarity(W[rep], W[rep]).min(dim=1).values < -0.95).all())
            and torch.allclose(feature_dimensionality(W)[rep], torch.full((4,), 0.5), atol=0.03))


def _angle_gaps(W: torch.Tensor) -> torch.Tensor:
    """Angles between angularly consecutive directions in the plane (degrees), for m = 2."""
    angles = torch.atan2(W[:, 1], W[:, 0]).sort().values
    return torch.rad2deg(torch.diff(torch.cat([angles, angles[:1] + 2 * math.pi])))


def test_dense_features_only_the_most_important_orthogonal(groups):
    for W in groups["dense"][0]:
        norms = W.norm(dim=-1)
        assert torch.allclose(norms[:N_HIDDEN], torch.ones(N_HIDDEN), atol=0.05), norms
        assert (norms[N_HIDDEN:] < 0.2).all(), norms
        assert abs(cosine_similarity(W[:1], W[1:2]).item()) < 0.1
        assert (feature_dimensionality(W)[:N_HIDDEN] > 0.95).all()


def test_sparse_features_in_superposition(groups):
    """p = 0.05: every replica represents at least four of the five features in two dimensions, as a
    pentagon or as two antipodal pairs (a local minimum); the lowest-loss replica is the pentagon."""
    W, loss = groups["sparse"]
    for w in W:
        assert _n_represented(w) >= 4, w.norm(dim=-1)
        assert _is_pentagon(w) or _is_two_antipodal_pairs(w), (w.norm(dim=-1), _angle_gaps(w))
    assert _is_pentagon(W[loss.argmin()])


def test_intermediate_sparsity_more_features_than_dimensions(groups):
    """p = 0.2: every replica represents more features than dimensions (>= 3); four represented features
    are two antipodal pairs; the lowest-loss replica represents at least four. (Five can also appear here,
    as a pentagon that is irregular under the unequal importances.)"""
    W, loss = groups["mid"]
    for w in W:
        assert _n_represented(w) >= 3, w.norm(dim=-1)
        assert _n_represented(w) != 4 or _is_two_antipodal_pairs(w), w
    assert _n_represented(W[loss.argmin()]) >= 4


def test_represented_features_rise_with_sparsity(groups):
    """Lowest-loss replica per regime: 2 features (dimensionality 1) < intermediate <= 5 (dimensionality 2/5)."""
    best = {name: W[loss.argmin()] for name, (W, loss) in groups.items()}
    counts = {name: _n_represented(w) for name, w in best.items()}
    assert counts["dense"] == N_HIDDEN < counts["mid"] <= counts["sparse"] == N_FEATURES, counts
    dims = {name: feature_dimensionality(w)[w.norm(dim=-1) > REPRESENTED].mean().item() for name, w in best.items()}
    assert dims["dense"] > 0.95 and dims["sparse"] < 0.45, dims
    assert dims["dense"] > dims["mid"] >= dims["sparse"] - 0.02, dims


@pytest.mark.slow
def test_sweep_lowest_loss_model_represents_more_features_as_sparsity_rises():
    """Eight probabilities from 1 to 0.02, three replicas each; per probability the lowest-loss replica
    (replicas can stall in local minima, as in the paper) — its count rises monotonically from 2 to 5."""
    probs = [0.02 ** (i / 7) for i in range(8)]
    W, loss = _train(probs, steps=3000, lr=1e-2, seed=1)
    best = [_n_represented(W[i, loss[i].argmin()]) for i in range(len(probs))]
    assert best[0] == N_HIDDEN and best[-1] == N_FEATURES, best
    assert all(a <= b for a, b in zip(best, best[1:])), best
