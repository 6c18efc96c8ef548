"""A point estimate with its confidence interval: the one type every statistic in ``theory`` returns (kept apart
from ``theory.stats`` so that code needing only the type does not import scipy)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval [low, high] at confidence ``level``."""

    estimate: float
    low: float
    high: float
    level: float

    def to_dict(self) -> dict:
        """``{"estimate", "low", "high", "level"}``: how every table and summary writes an interval."""
        return asdict(self)
