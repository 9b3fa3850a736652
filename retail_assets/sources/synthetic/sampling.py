"""Vectorised sampling helpers shared by the clickstream and payments generators."""

from __future__ import annotations

import numpy as np

from retail_assets.sources.synthetic.calendar import EVENTS, HOLIDAYS, TradingCalendar
from retail_assets.sources.synthetic.catalog import Catalog

US_PER_SECOND = 1_000_000
US_PER_DAY = 86_400 * US_PER_SECOND

# Share of the day's activity per hour (UTC-naive, read as local time of the shopper).
HOURLY = {
    "in_store": np.array(
        [0, 0, 0, 0, 0, 0, 0, 0.5, 2, 4, 6, 7.5, 9, 8.5, 7.5, 7, 7.5, 9, 9.5, 8, 6, 4, 1.5, 0]
    ),
    "online": np.array(
        [
            1.2,
            0.8,
            0.5,
            0.4,
            0.4,
            0.6,
            1.2,
            2.2,
            3.5,
            4.5,
            5,
            5.3,
            5.6,
            5.5,
            5.3,
            5.2,
            5.4,
            6,
            6.8,
            7.6,
            8,
            7.4,
            5.6,
            2.9,
        ]
    ),
    # Night owls (shift workers, insomniacs) shop online late in the evening and at night.
    "night_owl": np.array(
        [6, 5.5, 5, 4.5, 4, 3, 1.5, 1, 1, 1, 1.5, 2, 2, 2, 2, 2, 2, 2.5, 3, 3.5, 4, 5, 6, 6.5]
    ),
    # The night shift of a store that never closes.
    "night_store": np.array([3, 2, 1.5, 1, 1, 1.5] + [0] * 16 + [4, 3.5]),
    # Fraud run from abroad keeps the fraudsters' office hours: our night and early morning.
    "fraud_abroad": np.array(
        [7, 8, 8.5, 9, 9, 8.5, 8, 7, 6, 4.5, 3, 2, 1.5, 1.2, 1, 1, 1, 1, 1, 1.2, 1.5, 2, 3, 5]
    ),
    # Fraud runs around the clock and leans on the night, when victims sleep.
    "fraud": np.array(
        [
            5,
            5.5,
            6,
            6,
            5.5,
            5,
            4,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            3.5,
            4,
            4,
            4.5,
            5,
        ]
    ),
}

# Online browsing and buying by day: weekends, holidays and trading events draw more traffic.
ONLINE_DOW = np.array([0.95, 0.92, 0.93, 0.95, 0.98, 1.12, 1.15])
ONLINE_EVENT = {
    "black_friday": 3.0,
    "cyber_monday": 3.5,
    "christmas_peak": 1.6,
    "back_to_school": 1.2,
    "mid_year_sale": 1.5,
}
ONLINE_HOLIDAY = {h: 1.2 for h in HOLIDAYS} | {"Christmas Day": 0.8, "Thanksgiving": 1.4}
IN_STORE_DOW = np.array([0.85, 0.82, 0.87, 0.93, 1.08, 1.38, 1.17])
IN_STORE_EVENT = {
    "black_friday": 2.4,
    "cyber_monday": 1.1,
    "christmas_peak": 1.5,
    "back_to_school": 1.2,
    "mid_year_sale": 1.25,
}
IN_STORE_HOLIDAY = {
    "New Year's Day": 0.55,
    "Memorial Day": 1.2,
    "Independence Day": 0.8,
    "Labor Day": 1.25,
    "Thanksgiving": 0.4,
    "Christmas Day": 0.0,
}
ONLINE_GROWTH_PER_YEAR = 0.1


def day_weights(cal: TradingCalendar, channel: str) -> np.ndarray:
    """Relative traffic per day for 'online' or 'in_store'."""
    online = channel == "online"
    dow = (ONLINE_DOW if online else IN_STORE_DOW)[cal.dow - 1]
    event_table = ONLINE_EVENT if online else IN_STORE_EVENT
    holiday_table = ONLINE_HOLIDAY if online else IN_STORE_HOLIDAY
    event = np.array([event_table[e] for e in EVENTS] + [1.0])[cal.event]
    holiday = np.array([holiday_table[h] for h in HOLIDAYS] + [1.0])[cal.holiday]
    growth = np.exp(cal.year_frac * (ONLINE_GROWTH_PER_YEAR if online else 0.0))
    return dow * event * holiday * growth


def sample_days(rng: np.random.Generator, weights: np.ndarray, earliest: np.ndarray) -> np.ndarray:
    """One day index per row, drawn from ``weights`` but never before ``earliest`` (per row)."""
    cdf = np.cumsum(weights) / weights.sum()
    lower = np.where(earliest > 0, cdf[np.clip(earliest - 1, 0, len(cdf) - 1)], 0.0)
    u = lower + rng.random(len(earliest)) * (1 - lower)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def exposure(weights: np.ndarray, earliest: np.ndarray) -> np.ndarray:
    """Share of the window's traffic that falls on or after each row's ``earliest`` day.

    Someone who joined last month should have a month's worth of activity, not a window's.
    """
    cdf = np.cumsum(weights) / weights.sum()
    return np.where(earliest > 0, 1 - cdf[np.clip(earliest - 1, 0, len(cdf) - 1)], 1.0)


def sample_seconds(rng: np.random.Generator, n: int, profile: str) -> np.ndarray:
    """Microseconds into the day, following an hour-of-day profile."""
    p = HOURLY[profile] / HOURLY[profile].sum()
    hour = rng.choice(24, size=n, p=p)
    return hour * 3600 * US_PER_SECOND + rng.integers(0, 3600 * US_PER_SECOND, n)


class RowSampler:
    """Draw a column per request from row ``r`` of a [rows, k] probability matrix.

    Row r's cumulative probabilities occupy [r, r + 1) on one axis, so a single searchsorted
    serves any mix of rows without materialising a matrix per request.
    """

    def __init__(self, probs: np.ndarray):
        self.k = probs.shape[1]
        cum = np.cumsum(probs, axis=1)
        cum /= cum[:, -1:]
        self.cum = (np.arange(len(probs))[:, None] + cum).ravel()

    def sample(self, rng: np.random.Generator, rows: np.ndarray) -> np.ndarray:
        u = rows + rng.random(len(rows))
        pos = np.searchsorted(self.cum, u, side="right")
        return np.minimum(pos - rows * self.k, self.k - 1)


class GroupSampler:
    """Draw SKUs within a group (category or department), weighted, among SKUs on sale that day."""

    def __init__(self, catalog: Catalog, group: np.ndarray, weight: np.ndarray, n_groups: int):
        self.catalog = catalog
        order = np.lexsort((np.arange(catalog.n), group))
        self.sku = order
        g = group[order]
        w = weight[order]
        totals = np.bincount(g, weights=w, minlength=n_groups)
        within = np.cumsum(w) - np.concatenate([[0.0], np.cumsum(totals)])[g]
        # Group g occupies [g, g + 1) on one axis, so one searchsorted serves every group.
        self.cum = g + within / np.where(totals[g] > 0, totals[g], 1.0)
        self.has = totals > 0

    def sample(
        self, rng: np.random.Generator, groups: np.ndarray, days: np.ndarray, tries: int = 8
    ) -> np.ndarray:
        """SKU index per row, or -1 where no SKU of the group was found on sale that day."""
        out = np.full(len(groups), -1, dtype=np.int64)
        pending = np.flatnonzero(self.has[groups])
        for _ in range(tries):
            if len(pending) == 0:
                break
            u = groups[pending] + rng.random(len(pending))
            pos = np.minimum(np.searchsorted(self.cum, u, side="left"), len(self.cum) - 1)
            sku = self.sku[pos]
            day = days[pending]
            ok = (self.catalog.launch[sku] <= day) & (day <= self.catalog.last_day[sku])
            out[pending[ok]] = sku[ok]
            pending = pending[~ok]
        return out
