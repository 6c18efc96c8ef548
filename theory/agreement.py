"""How well a prediction matches a measurement: slope, R², Spearman, errors.

For paired values p (predicted) and m (measured): OLS fit m ≈ slope·p + intercept with its R²;
Spearman's ρ (rank agreement); max |p - m|; the max relative error max|p - m| / max|m| (scale-free and
defined even where individual m are ~0); and the median of |p - m| / |m| over entries with
|m| > 1% of max|m| (the typical per-entry error)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Agreement:
    """The agreement of predicted p with measured m (module docstring): the OLS fit m ≈ slope·p + intercept and its R²,
    Spearman's ρ and its p-value, max |p − m|, the max relative error max|p − m| / max|m| and the median relative
    error over entries with |m| > 1% of max|m|; ``n`` pairs."""
    n: int
    slope: float
    intercept: float
    r2: float
    spearman: float
    spearman_p: float
    max_abs_error: float
    max_relative_error: float
    median_relative_error: float

    def to_dict(self) -> dict[str, float]:
        """The fields as a dict."""
        return asdict(self)


def agreement(predicted, measured) -> Agreement:
    """Summary statistics of ``measured`` against ``predicted`` (any array-likes of equal size)."""
    p = np.asarray(predicted, dtype=np.float64).ravel()
    m = np.asarray(measured, dtype=np.float64).ravel()
    if p.shape != m.shape or p.size < 3:
        raise ValueError(f"need >= 3 paired values, got {p.size} predicted and {m.size} measured")
    err = np.abs(p - m)
    scale = np.abs(m).max()
    constant = np.ptp(p) == 0 or np.ptp(m) == 0
    if constant:
        slope, intercept, r2, rho, rho_p = np.nan, np.nan, np.nan, np.nan, np.nan
    else:
        fit = stats.linregress(p, m)
        slope, intercept, r2 = fit.slope, fit.intercept, fit.rvalue**2
        rho, rho_p = stats.spearmanr(p, m)
    big = np.abs(m) > 0.01 * scale if scale > 0 else np.zeros_like(m, dtype=bool)
    return Agreement(
        n=int(p.size),
        slope=float(slope),
        intercept=float(intercept),
        r2=float(r2),
        spearman=float(rho),
        spearman_p=float(rho_p),
        max_abs_error=float(err.max()),
        max_relative_error=float(err.max() / scale) if scale > 0 else float("nan"),
        median_relative_error=float(np.median(err[big] / np.abs(m[big]))) if big.any() else float("nan"),
    )
