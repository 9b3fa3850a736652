"""Naive forecasts built strictly from data known at the forecast origin.

Generic over the season length so that the daily demand family (weekly season of 7 days, year
of 364 days) and the weekly Walmart benchmark (year of 52 weeks) share them.
"""

from __future__ import annotations

import numpy as np


def seasonal_lag(horizon, season: int):
    """Periods back from the target to the same point of the last season fully known at the
    origin: season * ceil(h / season) (>= h, so it never reaches past the origin). Works on
    ints, numpy arrays and polars expressions alike (h >= 1)."""
    return ((horizon + (season - 1)) // season) * season


def with_fallback(
    primary: np.ndarray, *fallbacks: np.ndarray, names: tuple[str, ...] = ()
) -> tuple[np.ndarray, dict[str, int]]:
    """The first non-missing value per row among primary and the fallbacks, then 0.

    Returns the values and how many rows each source supplied (keys: `names` for primary and
    fallbacks, then "zero"), so that a report can say how honest a baseline is.
    """
    labels = list(names) or [f"source_{i}" for i in range(1 + len(fallbacks))]
    values = np.asarray(primary, dtype=np.float64).copy()
    counts = {labels[0]: int(np.sum(~np.isnan(values)))}
    for label, fallback in zip(labels[1:], fallbacks, strict=True):
        fill = np.isnan(values) & ~np.isnan(np.asarray(fallback, dtype=np.float64))
        values[fill] = np.asarray(fallback, dtype=np.float64)[fill]
        counts[label] = int(fill.sum())
    zero = np.isnan(values)
    values[zero] = 0.0
    counts["zero"] = int(zero.sum())
    return values, counts


def level_ratio(recent: np.ndarray, year_ago: np.ndarray) -> np.ndarray:
    """Year-on-year level ratio sum(recent window) / sum(same window a year earlier); NaN if the
    year-ago window is empty or zero (callers then fall back to a ratio of 1)."""
    recent = np.asarray(recent, dtype=np.float64)
    year_ago = np.asarray(year_ago, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(year_ago > 0, recent / year_ago, np.nan)
