"""Task retention of a defended fine-tune: how much of the fine-tuning task it still learned.

With the mean next-token loss (NLL) on held-out task data of the base model (L_base), the undefended fine-tune
(L_none) and the defended one (L_arm), pooled over units c (e.g. (domain, seed) cells):

    retention = Σ_c (L_base,c − L_arm,c) / Σ_c (L_base,c − L_none,c)

1 = the arm learned the task as well as no defence; 0 = it learned nothing (the base model's loss); below 0 it
made the task worse; above 1 it learned it better. The interval is a percentile bootstrap over units, paired (the
same units resampled in all three); NaN when Σ (L_base − L_none) ≤ 0 (the undefended fine-tune learned nothing,
so there is nothing to retain)."""

from __future__ import annotations

import math

import numpy as np

from theory.errors import InputError
from theory.intervals import Interval


def task_retention(nll_base, nll_arm, nll_none, *, level: float = 0.95, n_bootstrap: int = 2000,
                   seed: int = 0) -> Interval:
    """Retention (module docstring) of per-unit losses, each (n_units,), with its paired bootstrap interval (the
    resamples whose Σ (L_base − L_none) ≤ 0 are dropped; the bounds are NaN when none is left)."""
    base, arm, none = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (nll_base, nll_arm, nll_none))
    if not (base.shape == arm.shape == none.shape) or base.ndim != 1 or base.size == 0:
        raise InputError(f"the losses must be equal-length, non-empty vectors, got shapes {base.shape}, "
                         f"{arm.shape}, {none.shape}")
    if not (np.isfinite(base).all() and np.isfinite(arm).all() and np.isfinite(none).all()):
        raise InputError("the losses contain NaN or infinity")
    learned = base - none
    if learned.sum() <= 0:
        return Interval(math.nan, math.nan, math.nan, level)
    estimate = float((base - arm).sum() / learned.sum())
    idx = np.random.default_rng(seed).integers(0, base.size, size=(n_bootstrap, base.size))
    denominator = learned[idx].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = (base - arm)[idx].sum(axis=1) / denominator
    boot = boot[(denominator > 0) & np.isfinite(boot)]
    if boot.size == 0:
        return Interval(estimate, math.nan, math.nan, level)
    alpha = (1 - level) / 2
    return Interval(estimate, float(np.quantile(boot, alpha)), float(np.quantile(boot, 1 - alpha)), level)
