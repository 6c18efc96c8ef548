"""Statistics for proximity claims: is feature set A closer to a reference set than feature set B?

Inputs are per-feature proximity scores (e.g. ``SetProximity.max_cosine``) as 1-D arrays.
- Mann-Whitney U (rank test, one- or two-sided) and a permutation test on the difference of means;
- bootstrap confidence interval of the difference of means (BCa, scipy.stats.bootstrap);
- a t interval of the mean of a few values (one per seed: ``t_mean_ci``);
- effect sizes: Cliff's δ = 2U/(n_a n_b) - 1 = P(a > b) - P(a < b), and Cohen's d (pooled SD);
- a random-feature null: the same statistic for random feature sets of the same size;
- ``compare_sets``: all of the above for two sets of items (features or samples) scored against one
  reference set — the one chain both the toy study and the real-model geometry study call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from scipy import stats

from theory.errors import InputError
from theory.intervals import Interval

Alternative = Literal["greater", "less", "two-sided"]


@dataclass(frozen=True)
class ProximityComparison:
    """Set A vs set B: means, difference with bootstrap CI, tests and effect sizes."""

    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    difference: Interval
    mannwhitney_u: float
    mannwhitney_p: float
    permutation_p: float
    cliffs_delta: float
    cohens_d: float
    alternative: str

    def to_dict(self) -> dict:
        """The comparison as a dict (the difference's interval as a dict)."""
        return asdict(self)


def _as_sample(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size < 2:
        raise InputError(f"{name} needs at least 2 values for a statistical comparison, got {arr.size}")
    if not np.isfinite(arr).all():
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


def bootstrap_mean_ci(values, *, level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> Interval:
    """Mean with a percentile bootstrap CI (percentile: robust for small or degenerate samples)."""
    arr = _as_sample(values, "sample")
    if np.ptp(arr) == 0:
        return Interval(float(arr.mean()), float(arr.mean()), float(arr.mean()), level)
    res = stats.bootstrap((arr,), np.mean, confidence_level=level, n_resamples=n_resamples,
                          method="percentile", random_state=np.random.default_rng(seed))
    return Interval(float(arr.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high), level)


def t_mean_ci(values, *, level: float = 0.95) -> Interval:
    """Mean of a small sample (e.g. one value per seed) with Student's t interval mean ± t_{n−1} s / √n
    (``scipy.stats.t``; assumes the values are i.i.d. and roughly normal). One value: its interval is NaN; equal
    values: the interval is the point."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0 or not np.isfinite(arr).all():
        raise InputError("a t interval needs at least one value, all finite")
    mean = float(arr.mean())
    if arr.size == 1:
        return Interval(mean, float("nan"), float("nan"), level)
    half = float(stats.t.ppf(0.5 + level / 2, arr.size - 1) * arr.std(ddof=1) / np.sqrt(arr.size))
    return Interval(mean, mean - half, mean + half, level)


def _mean_difference(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def compare_proximity(a, b, *, alternative: Alternative = "greater", level: float = 0.95,
                      n_permutations: int = 5000, n_bootstrap: int = 2000, seed: int = 0) -> ProximityComparison:
    """Is A closer than B? ``alternative="greater"`` tests mean/ranks of A > B."""
    a, b = _as_sample(a, "set A"), _as_sample(b, "set B")
    rng = np.random.default_rng(seed)
    mw = stats.mannwhitneyu(a, b, alternative=alternative)
    perm = stats.permutation_test((a, b), _mean_difference, permutation_type="independent",
                                  alternative=alternative, n_resamples=n_permutations, vectorized=True,
                                  random_state=rng)
    if np.ptp(np.concatenate([a, b])) == 0:
        diff = Interval(0.0, 0.0, 0.0, level)
    else:
        boot = stats.bootstrap((a, b), _mean_difference, confidence_level=level, n_resamples=n_bootstrap,
                               method="percentile", vectorized=True, random_state=rng)
        diff = Interval(float(a.mean() - b.mean()), float(boot.confidence_interval.low),
                        float(boot.confidence_interval.high), level)
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2))
    u_greater = stats.mannwhitneyu(a, b, alternative="greater").statistic
    return ProximityComparison(
        n_a=int(a.size), n_b=int(b.size), mean_a=float(a.mean()), mean_b=float(b.mean()), difference=diff,
        mannwhitney_u=float(mw.statistic), mannwhitney_p=float(mw.pvalue), permutation_p=float(perm.pvalue),
        cliffs_delta=float(2 * u_greater / (a.size * b.size) - 1),
        cohens_d=float((a.mean() - b.mean()) / pooled) if pooled > 0 else float("nan"),
        alternative=alternative,
    )


@dataclass(frozen=True)
class NullComparison:
    """Observed statistic against its distribution over random sets of the same size."""

    observed: float
    null_mean: float
    null_std: float
    null_quantiles: tuple[float, float]
    p_value: float
    """P(null >= observed), with the +1 correction."""
    z_score: float
    n_draws: int

    def to_dict(self) -> dict:
        """The comparison as a dict."""
        return asdict(self)


def random_set_null(statistic: Callable[[np.ndarray], float], observed: float, *, pool: np.ndarray,
                    set_size: int, n_draws: int = 1000, seed: int = 0, level: float = 0.95) -> NullComparison:
    """Null distribution of ``statistic(indices)`` over ``n_draws`` random subsets of ``pool``.

    ``statistic`` maps an index array of ``set_size`` features to a number (e.g. the mean max-cosine of
    those features to the harmful set). p = (1 + #{null >= observed}) / (1 + n_draws)."""
    pool = np.asarray(pool)
    if set_size < 1 or set_size > pool.size:
        raise InputError(f"random-set size must be between 1 and {pool.size}, got {set_size}")
    rng = np.random.default_rng(seed)
    null = np.array([statistic(rng.choice(pool, size=set_size, replace=False)) for _ in range(n_draws)])
    alpha = (1 - level) / 2
    std = float(null.std(ddof=1)) if n_draws > 1 else 0.0
    return NullComparison(
        observed=float(observed), null_mean=float(null.mean()), null_std=std,
        null_quantiles=(float(np.quantile(null, alpha)), float(np.quantile(null, 1 - alpha))),
        p_value=float((1 + np.sum(null >= observed)) / (1 + n_draws)),
        z_score=float((observed - null.mean()) / std) if std > 0 else float("nan"), n_draws=n_draws,
    )


@dataclass(frozen=True)
class Correlation:
    """Spearman's ρ and Pearson's r of ``n`` paired values, each with its paired-bootstrap percentile interval
    (``correlation_with_ci``) and its p-value."""
    spearman: Interval
    pearson: Interval
    spearman_p: float
    pearson_p: float
    n: int

    def to_dict(self) -> dict:
        """The correlation as a dict (intervals as dicts)."""
        return asdict(self)


def correlation_with_ci(x, y, *, level: float = 0.95, n_bootstrap: int = 2000, seed: int = 0) -> Correlation:
    """Spearman and Pearson correlation with paired-bootstrap percentile CIs."""
    x, y = _as_sample(x, "x"), _as_sample(y, "y")
    if x.size != y.size or x.size < 3:
        raise InputError(f"correlation needs >= 3 paired values, got {x.size} and {y.size}")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_bootstrap, x.size))

    def boot(fn) -> tuple[float, float]:
        vals = np.array([fn(x[i], y[i])[0] for i in idx])
        vals = vals[np.isfinite(vals)]
        alpha = (1 - level) / 2
        return float(np.quantile(vals, alpha)), float(np.quantile(vals, 1 - alpha))

    rho, rho_p = stats.spearmanr(x, y)
    r, r_p = stats.pearsonr(x, y)
    return Correlation(spearman=Interval(float(rho), *boot(stats.spearmanr), level),
                       pearson=Interval(float(r), *boot(stats.pearsonr), level),
                       spearman_p=float(rho_p), pearson_p=float(r_p), n=int(x.size))


@dataclass(frozen=True)
class SetComparison:
    """Set A vs set B of items scored against one reference set (``compare_sets``)."""

    mean_a: Interval
    mean_b: Interval
    comparison: ProximityComparison
    null_a: NullComparison | None
    """Mean over A against random sets of |A| items from the pool (None: no pool)."""
    null_b: NullComparison | None


def compare_sets(values, a_index, b_index, *, null_pool=None, alternative: Alternative = "greater",
                 level: float = 0.95, n_permutations: int = 5000, n_bootstrap: int = 2000, n_null: int = 1000,
                 seed: int = 0) -> SetComparison:
    """Two sets of items against a reference set, from per-item proximity ``values`` (n_items,) — e.g.
    ``values[j] = max_{h∈H} cos(d_j, d_h)`` — and index arrays ``a_index``, ``b_index`` into it:
    bootstrap CIs of each set's mean, A vs B (``compare_proximity``: difference with bootstrap CI,
    Mann-Whitney U, permutation test, Cliff's δ, Cohen's d) and, when ``null_pool`` (item indices eligible
    for random sets) is given, each set's mean against random sets of the same size drawn from the pool
    (``random_set_null``; statistic = mean of ``values`` over the set). Every resampling uses ``seed``."""
    values = np.asarray(values)  # the null's mean is taken in the caller's dtype; the tests use float64
    a = values[np.asarray(a_index, dtype=np.int64)]
    b = values[np.asarray(b_index, dtype=np.int64)]
    comparison = compare_proximity(a, b, alternative=alternative, level=level, n_permutations=n_permutations,
                                   n_bootstrap=n_bootstrap, seed=seed)

    def null(sample: np.ndarray) -> NullComparison | None:
        if null_pool is None:
            return None
        pool = np.asarray(null_pool, dtype=np.int64)
        return random_set_null(lambda idx: float(values[idx].mean()), float(sample.mean()), pool=pool,
                               set_size=sample.size, n_draws=n_null, seed=seed, level=level)

    return SetComparison(mean_a=bootstrap_mean_ci(a, level=level, n_resamples=n_bootstrap, seed=seed),
                         mean_b=bootstrap_mean_ci(b, level=level, n_resamples=n_bootstrap, seed=seed),
                         comparison=comparison, null_a=null(a), null_b=null(b))
