"""theory.agreement, theory.stats and theory.filtering: exact values on constructed cases, calibration of
the tests under the null (cheap, seeded), coverage of the bootstrap intervals, and the removal rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strategies import DTYPE, _gen, geometries, log_uniform, make_directions, seeds
from theory.agreement import agreement
from theory.errors import InputError
from theory.filtering import n_to_remove, random_removal, remove_top_fraction, sample_scores
from theory.geometry import cosine_similarity
from theory.stats import bootstrap_mean_ci, compare_proximity, correlation_with_ci, random_set_null

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


def non_constant(size_min: int = 3, size_max: int = 40):
    return st.integers(size_min, size_max).flatmap(
        lambda n: arrays(np.float64, n, elements=finite)).filter(lambda a: np.ptp(a) > 1e-6 * max(1.0, np.abs(a).max()))


def gaussian_np(seed: int, n: int, loc: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc, 1.0, n)


# ------------------------------------------------------------------------------- agreement

@settings(max_examples=30)
@given(non_constant())
def test_agreement_of_a_perfect_prediction(p):
    a = agreement(p, p.copy())
    assert a.n == p.size
    assert a.slope == pytest.approx(1.0) and a.intercept == pytest.approx(0.0, abs=1e-6 * max(1, np.abs(p).max()))
    assert a.r2 == pytest.approx(1.0) and a.spearman == pytest.approx(1.0)
    assert a.max_abs_error == 0 and a.max_relative_error == 0 and a.median_relative_error == 0


@settings(max_examples=30)
@given(non_constant(), log_uniform(1e-2, 1e2), st.sampled_from([-1.0, 1.0]))
def test_agreement_of_a_scaled_prediction(m, scale, sign):
    """predicted = s · measured  ⇒  slope = 1/s, R² = 1, ρ = sign(s), relative errors |s - 1|."""
    s = sign * scale
    a = agreement(s * m, m)
    assert a.slope == pytest.approx(1 / s, rel=1e-6)
    assert a.r2 == pytest.approx(1.0, abs=1e-9) and a.spearman == pytest.approx(sign)
    assert a.max_relative_error == pytest.approx(abs(s - 1), rel=1e-9, abs=1e-12)
    assert a.median_relative_error == pytest.approx(abs(s - 1), rel=1e-9, abs=1e-12)
    assert a.max_abs_error == pytest.approx(abs(s - 1) * np.abs(m).max(), rel=1e-9)


@settings(max_examples=30)
@given(non_constant(), finite)
def test_agreement_of_an_offset_prediction(m, c):
    a = agreement(m - c, m)
    assert a.slope == pytest.approx(1.0, rel=1e-6)
    assert a.intercept == pytest.approx(c, abs=1e-6 * max(1.0, abs(c), np.abs(m).max()))
    assert a.max_abs_error == pytest.approx(abs(c), abs=1e-9 * max(1.0, np.abs(m).max()))


def test_agreement_edge_cases():
    a = agreement([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])
    assert math.isnan(a.slope) and math.isnan(a.spearman) and a.max_abs_error == 2.0
    zero = agreement([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert math.isnan(zero.max_relative_error) and math.isnan(zero.median_relative_error)
    for p, m in (([1.0, 2.0], [1.0, 2.0]), ([1.0, 2.0, 3.0], [1.0, 2.0])):
        with pytest.raises(ValueError):
            agreement(p, m)
    assert set(agreement([1, 2, 3], [1, 2, 4]).to_dict()) >= {"slope", "r2", "spearman", "max_relative_error"}


# ------------------------------------------------------------------------------- compare_proximity

@settings(max_examples=10)
@given(seeds, st.floats(1.0, 3.0))
def test_shifted_samples_are_significant_with_the_right_sign(seed, shift):
    a, b = gaussian_np(seed, 30, loc=shift), gaussian_np(seed + 1, 30)
    res = compare_proximity(a, b, n_permutations=999, n_bootstrap=300, seed=seed)
    assert res.mannwhitney_p < 0.01 and res.permutation_p < 0.01
    assert res.cliffs_delta > 0 and res.cohens_d > 0 and res.difference.estimate > 0
    assert 0 < res.difference.low <= res.difference.estimate <= res.difference.high
    less = compare_proximity(a, b, alternative="less", n_permutations=999, n_bootstrap=100, seed=seed)
    assert less.mannwhitney_p > 0.9 and less.permutation_p > 0.9
    swapped = compare_proximity(b, a, n_permutations=999, n_bootstrap=100, seed=seed)
    assert swapped.cliffs_delta == pytest.approx(-res.cliffs_delta) and swapped.permutation_p > 0.9


def test_identical_distributions_are_calibrated():
    """Under H0 (same distribution) the rejection rate at α = 0.05 over 100 seeds stays near α."""
    rejections = np.zeros(2)
    for seed in range(100):
        a, b = gaussian_np(2 * seed, 15), gaussian_np(2 * seed + 1, 15)
        res = compare_proximity(a, b, alternative="two-sided", n_permutations=199, n_bootstrap=20, seed=seed)
        rejections += [res.mannwhitney_p < 0.05, res.permutation_p < 0.05]
    assert bool((rejections / 100 <= 0.12).all()), rejections


def test_bootstrap_interval_covers_the_true_difference():
    """Percentile bootstrap CIs at 95% cover the true mean difference (resp. mean) in most seeds."""
    cover_diff = cover_mean = 0
    for seed in range(40):
        a, b = gaussian_np(2 * seed, 40, loc=0.3), gaussian_np(2 * seed + 1, 40)
        diff = compare_proximity(a, b, n_permutations=99, n_bootstrap=400, seed=seed).difference
        cover_diff += diff.low <= 0.3 <= diff.high
        mean = bootstrap_mean_ci(a, n_resamples=400, seed=seed)
        cover_mean += mean.low <= 0.3 <= mean.high
        assert mean.low <= mean.estimate <= mean.high and mean.estimate == pytest.approx(a.mean())
    assert cover_diff >= 34 and cover_mean >= 34, (cover_diff, cover_mean)


def test_compare_proximity_known_effect_sizes_and_degenerate_input():
    res = compare_proximity([3.0, 4.0, 5.0], [0.0, 1.0, 2.0], n_permutations=99, n_bootstrap=50)
    assert res.cliffs_delta == 1.0 and res.mean_a == 4.0 and res.mean_b == 1.0
    assert res.cohens_d == pytest.approx(3.0)  # pooled SD 1
    assert res.difference.estimate == pytest.approx(3.0)
    const = compare_proximity([1.0, 1.0, 1.0], [1.0, 1.0], n_permutations=99, n_bootstrap=50)
    assert const.difference.estimate == const.difference.low == const.difference.high == 0.0
    assert const.cliffs_delta == 0.0 and math.isnan(const.cohens_d)
    assert bootstrap_mean_ci([2.0, 2.0]).low == 2.0
    for bad in ([1.0], [1.0, float("nan")], [float("inf"), 1.0]):
        with pytest.raises(InputError):
            compare_proximity(bad, [1.0, 2.0])
        with pytest.raises(InputError):
            bootstrap_mean_ci(bad)


# ------------------------------------------------------------------------------- random-set null

@settings(max_examples=30)
@given(seeds, st.integers(5, 40), st.data(), st.floats(-5, 5), st.integers(1, 60))
def test_random_set_null_p_value_bounds(seed, pool_size, data, observed, n_draws):
    values = gaussian_np(seed, pool_size)
    set_size = data.draw(st.integers(1, pool_size))
    stat = lambda idx: float(values[idx].mean())  # noqa: E731
    res = random_set_null(stat, observed, pool=np.arange(pool_size), set_size=set_size, n_draws=n_draws, seed=seed)
    assert 1 / (1 + n_draws) <= res.p_value <= 1.0
    assert res.n_draws == n_draws and res.null_quantiles[0] <= res.null_quantiles[1]
    top = random_set_null(stat, np.inf, pool=np.arange(pool_size), set_size=set_size, n_draws=n_draws, seed=seed)
    bottom = random_set_null(stat, -np.inf, pool=np.arange(pool_size), set_size=set_size, n_draws=n_draws, seed=seed)
    assert top.p_value == pytest.approx(1 / (1 + n_draws)) and bottom.p_value == 1.0
    again = random_set_null(stat, observed, pool=np.arange(pool_size), set_size=set_size, n_draws=n_draws, seed=seed)
    assert again.p_value == res.p_value  # seeded


def test_random_set_null_is_calibrated_and_unbiased():
    """An observed statistic drawn from the null itself is rejected at α = 0.05 at most ~5% of the time,
    and the null mean of a subset mean is the pool mean."""
    values = gaussian_np(0, 50)
    stat = lambda idx: float(values[idx].mean())  # noqa: E731
    rejections = 0
    for seed in range(100):
        observed = stat(np.random.default_rng(10_000 + seed).choice(50, size=5, replace=False))
        res = random_set_null(stat, observed, pool=np.arange(50), set_size=5, n_draws=99, seed=seed)
        rejections += res.p_value <= 0.05
    assert rejections <= 12
    res = random_set_null(stat, 0.0, pool=np.arange(50), set_size=5, n_draws=2000, seed=1)
    assert res.null_mean == pytest.approx(values.mean(), abs=4 * res.null_std / math.sqrt(2000))
    for size in (0, 51):
        with pytest.raises(InputError):
            random_set_null(stat, 0.0, pool=np.arange(50), set_size=size)


# ------------------------------------------------------------------------------- correlation

@settings(max_examples=8)
@given(st.lists(st.integers(-1000, 1000), min_size=5, max_size=30, unique=True))
def test_correlation_of_a_monotone_relation(xs):
    """Spearman (and, for a line, Pearson) is exactly ±1 with a degenerate bootstrap interval at ±1."""
    x = np.asarray(xs, dtype=np.float64)
    y_lin = 2 * x + 1
    y_mono = -np.exp(x / 100.0)  # decreasing: ρ = -1
    lin = correlation_with_ci(x, y_lin, n_bootstrap=30)
    assert lin.spearman.estimate == pytest.approx(1.0) and lin.pearson.estimate == pytest.approx(1.0)
    assert lin.spearman.low == pytest.approx(1.0) and lin.pearson.low == pytest.approx(1.0)
    mono = correlation_with_ci(x, y_mono, n_bootstrap=30)
    assert mono.spearman.estimate == pytest.approx(-1.0) and mono.spearman.high == pytest.approx(-1.0)


def test_correlation_interval_covers_the_estimate():
    rng = np.random.default_rng(3)
    x = rng.normal(size=60)
    y = x + rng.normal(size=60)
    c = correlation_with_ci(x, y, n_bootstrap=300, seed=1)
    for iv in (c.spearman, c.pearson):
        assert -1 <= iv.low <= iv.estimate <= iv.high <= 1 and iv.low > 0
    assert c.n == 60 and c.pearson_p < 1e-3
    assert correlation_with_ci(x, y, n_bootstrap=300, seed=1) == c  # seeded
    with pytest.raises(InputError):
        correlation_with_ci([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(InputError):
        correlation_with_ci([1.0, 2.0], [1.0, 2.0])


# ------------------------------------------------------------------------------- filtering

fractions = st.floats(0.0, 1.0, exclude_max=True)
tied_scores = st.integers(1, 40).flatmap(lambda n: arrays(np.float64, n, elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])))
scores_any = st.one_of(tied_scores, st.integers(1, 40).flatmap(lambda n: arrays(np.float64, n, elements=finite)))


@given(scores_any, fractions, st.booleans())
def test_remove_top_fraction(scores, fraction, as_tensor):
    """Exactly round(f n) removed; every removed sample scores ≥ every kept one; ties go to the lower
    index first; keep and removed partition range(n), both sorted."""
    n = scores.size
    res = remove_top_fraction(torch.as_tensor(scores) if as_tensor else scores, fraction)
    assert res.removed.size == round(fraction * n) == n_to_remove(n, fraction)
    assert np.array_equal(np.sort(np.concatenate([res.keep, res.removed])), np.arange(n))
    assert np.all(np.diff(res.keep) > 0) and np.all(np.diff(res.removed) > 0)
    if res.removed.size and res.keep.size:
        s_rem, s_keep = scores[res.removed][:, None], scores[res.keep][None, :]
        assert np.all(s_rem >= s_keep)
        tie = s_rem == s_keep
        assert np.all((res.removed[:, None] < res.keep[None, :])[tie])


def test_remove_top_fraction_known_case():
    res = remove_top_fraction([0.1, 0.9, 0.5, 0.9, 0.3], 0.4)
    assert res.removed.tolist() == [1, 3] and res.keep.tolist() == [0, 2, 4]
    assert remove_top_fraction([1.0, 1.0, 1.0, 1.0], 0.5).removed.tolist() == [0, 1]
    assert remove_top_fraction([0.2, 0.1], 0.0).removed.size == 0


@given(st.integers(0, 200), fractions, seeds)
def test_random_removal(n, fraction, seed):
    res = random_removal(n, fraction, seed=seed)
    assert res.removed.size == round(fraction * n)
    assert np.array_equal(np.sort(np.concatenate([res.keep, res.removed])), np.arange(n))
    again = random_removal(n, fraction, seed=seed)
    assert np.array_equal(again.removed, res.removed) and np.array_equal(again.keep, res.keep)


def test_random_removal_depends_on_the_seed():
    draws = {tuple(random_removal(50, 0.3, seed=s).removed) for s in range(5)}
    assert len(draws) == 5


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), float("inf"), -float("inf")])
def test_bad_fractions_raise_input_error(fraction):
    with pytest.raises(InputError):
        remove_top_fraction([0.1, 0.2, 0.3], fraction)
    with pytest.raises(InputError):
        random_removal(3, fraction)


@given(geometries(min_d=2), st.integers(1, 20), seeds, st.sampled_from(["max", "mean"]))
def test_sample_scores_are_cosines_to_the_toxic_set(geom, n_samples, seed, reduce):
    reps = make_directions("random", n_samples, geom.d, _gen(seed))
    scores = sample_scores(reps, geom.directions, reduce=reduce)
    cos = cosine_similarity(reps, geom.directions)
    expected = cos.max(dim=1).values if reduce == "max" else cos.mean(dim=1)
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-12)
    assert scores.shape == (n_samples,)
    with pytest.raises(InputError):
        sample_scores(reps, torch.zeros(0, geom.d, dtype=DTYPE))
    with pytest.raises(InputError):
        sample_scores(reps, torch.ones(2, geom.d + 1, dtype=DTYPE))
