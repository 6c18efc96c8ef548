"""Data filtering by geometry: score each training sample by how close its representation lies to a
set of toxic directions, then remove the top fraction (with a random-removal baseline).

score_i = max_k cos(r_i, u_k)   (reduce="max")   or   mean_k cos(r_i, u_k)   (reduce="mean"),
where r_i is sample i's representation (toy: h(x_i); real: mean residual over assistant tokens, or its
SAE feature-activation vector when the directions are one-hot feature axes e_k, where
cos(f_i, e_k) = f_i,k / ||f_i||, the share of the sample's feature activity on feature k) and u_k the toxic
directions. Removal: the top fraction by score, or a random fraction of the same size (the baseline);
``score_separation`` checks that scores separate harmful from harmless samples (AUC = (1 + Cliff's δ) / 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from theory.errors import InputError
from theory.geometry import cosine_similarity
from theory.stats import compare_proximity


def sample_scores(representations: Tensor, toxic_directions: Tensor, *, reduce: Literal["max", "mean"] = "max") -> Tensor:
    """Proximity of each sample (n_samples, d) to the toxic set (n_toxic, d) -> (n_samples,)."""
    if toxic_directions.ndim != 2 or toxic_directions.shape[0] == 0:
        raise InputError("the toxic/harmful feature set is empty: give at least one direction")
    if representations.shape[-1] != toxic_directions.shape[-1]:
        raise InputError(f"representations have d={representations.shape[-1]} but toxic directions have "
                         f"d={toxic_directions.shape[-1]}")
    dtype = torch.promote_types(torch.promote_types(representations.dtype, toxic_directions.dtype), torch.float32)
    # in float64, rounded back: a BLAS that splits the d-sum across threads (seen on this project's 2-core machines for
    # (6, 64) x (64, 20)) changes float32 sums in the last bit, which the float64 sums hide once rounded, so the
    # scores (and the removal ranking) do not depend on the thread count
    sims = cosine_similarity(representations.double(), toxic_directions.double())
    scores = sims.max(dim=1).values if reduce == "max" else sims.mean(dim=1)
    return scores.to(dtype)


def feature_axis_scores(feature_acts: Tensor, toxic_features, *, reduce: Literal["max", "mean"] = "max",
                        chunk_size: int = 256) -> Tensor:
    """``sample_scores`` of feature-activation rows (n_samples, d_sae), dense or sparse COO, against the
    one-hot axes e_k of the toxic features -> (n_samples,). Scored ``chunk_size`` rows at a time so a
    131k-wide SAE is never densified for the whole dataset."""
    toxic_idx = torch.as_tensor(list(toxic_features), dtype=torch.long)
    if toxic_idx.numel() == 0:
        raise InputError("the toxic feature set is empty: give at least one harmful feature")
    n, d_sae = feature_acts.shape
    axes = torch.zeros(toxic_idx.numel(), d_sae)
    axes[torch.arange(toxic_idx.numel()), toxic_idx] = 1.0
    out = []
    for start in range(0, n, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n))
        block = torch.index_select(feature_acts, 0, rows)
        block = block.to_dense() if block.is_sparse else block
        out.append(sample_scores(block.float(), axes, reduce=reduce))
    return torch.cat(out) if out else torch.zeros(0)


@dataclass(frozen=True)
class Removal:
    """Indices kept and removed (both sorted ascending)."""

    keep: np.ndarray
    removed: np.ndarray


def n_to_remove(n_samples: int, fraction: float) -> int:
    """round(fraction * n), for fraction in [0, 1)."""
    if not (0.0 <= fraction < 1.0) or not np.isfinite(fraction):
        raise InputError(f"removal fraction must be in [0, 1), got {fraction}")
    return int(round(fraction * n_samples))


def remove_top_fraction(scores, fraction: float) -> Removal:
    """Remove the round(fraction·n) highest-scoring samples (ties broken by lower index first)."""
    s = torch.as_tensor(scores).detach().cpu().numpy().astype(np.float64).ravel()
    k = n_to_remove(s.size, fraction)
    order = np.lexsort((np.arange(s.size), -s))  # descending score, then ascending index
    return _split(s.size, order[:k])


def random_removal(n_samples: int, fraction: float, *, seed: int = 0) -> Removal:
    """Remove round(fraction·n) samples uniformly at random (the baseline at the same budget)."""
    k = n_to_remove(n_samples, fraction)
    return _split(n_samples, np.random.default_rng(seed).choice(n_samples, size=k, replace=False))


def choose_removal(scores, fraction: float, *, random: bool = False, seed: int = 0) -> Removal:
    """The top-fraction removal by score, or (``random``) the random baseline at the same budget."""
    if random:
        return random_removal(int(torch.as_tensor(scores).numel()), fraction, seed=seed)
    return remove_top_fraction(scores, fraction)


def score_separation(scores_a, scores_b, *, seed: int = 0, n_permutations: int = 2000,
                     n_bootstrap: int = 1000) -> dict:
    """Do the scores separate set A (e.g. harmful responses) from set B (harmless)? ``compare_proximity``
    (A greater) plus AUC = P(score_a > score_b) + ½ P(tie) = (1 + Cliff's δ) / 2."""
    cmp = compare_proximity(np.asarray(scores_a, dtype=np.float64), np.asarray(scores_b, dtype=np.float64),
                            alternative="greater", n_permutations=n_permutations, n_bootstrap=n_bootstrap, seed=seed)
    return {**cmp.to_dict(), "auc": (1.0 + cmp.cliffs_delta) / 2.0}


def _split(n: int, removed) -> Removal:
    mask = np.zeros(n, dtype=bool)
    mask[np.asarray(removed, dtype=np.int64)] = True
    return Removal(keep=np.flatnonzero(~mask), removed=np.flatnonzero(mask))
