"""Drift statistics, seasonality-aware, with no Dagster in them.

Retail data is seasonal: December looks nothing like October, every year. Comparing this
month with the training window would flag every holiday as drift. So the reference for a
window is **the same window 52 weeks earlier** (364 days: same weekdays), and:

* **Feature drift** compares each feature's distribution in the current window with two
  references: the same window a year earlier (the season) and the window just before (the
  recent state): PSI (how far, on the reference's decile bins) plus a two-sample test from
  scipy (Kolmogorov-Smirnov for numeric features, chi-square on the category counts for
  categorical ones). Against one reference a feature drifted when both say so: the shift is
  large (PSI) and not sampling noise (p-value). It is reported as drift only when it drifted
  against **both**: a holiday surge matches last year, a price changed six months ago matches
  last month, an unexpected shift matches neither.
* **Level drift** (`level_change`) is the seasonally adjusted change of a quantity per series:
  the year-over-year growth of the current window against the year-over-year growth of the
  windows just before it. An expected seasonal surge grows like last year (change ~ 0); an
  unexpected shift does not. Tested over the series (independent ones: SKUs, not store x SKU
  series that share a SKU's price and promotions) with scipy's Wilcoxon signed-rank test, and
  per segment (department, category) where support allows, so a shift in one department is
  reported there and not elsewhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

# 52 weeks: the same weekdays a year earlier, so weekday mix never looks like drift.
SEASON_DAYS = 364

# Fewer labelled frauds (or forecast rows) than this in the live window: reported, not judged.
MIN_LIVE_POSITIVES = 20
MIN_LIVE_ROWS = 200
# The rate of frauds known so far may change by this much (relative, either way) against the
# same weeks a year earlier, with labels as known the same time after, before it is drift.
# Weekly fraud rates on the generator's stationary data move by about 20 %; a new pattern
# running at half the usual fraud rate adds 50 %.
FRAUD_RATE_CHANGE = 0.5
# The known fraud rate is also tested over the last three weeks alone. Since the champion's
# test window the live window is months long and dilutes a pattern that began days ago; the
# frauds of a new pattern become known from a few days on (investigations, median 4 days;
# chargebacks, median 18), so three weeks hold enough of its first known frauds while the
# same weeks a year earlier, with labels known the same time after, cancel the label delay.
# `benchmarks/bench_monitoring.py --fraud-windows` (cards, rises only; 122 days without a
# knob, Aug-Sep and Nov-Dec): 21 days raised 0 alarm days at small and 6 at tiny (14 days: 0
# and 0, 28 days: 0 and 20) and found a pattern at 10 % of payments after 13 days at small
# (14 days: 24), one at 5 % after 24 (14 days: not within 60). Tiny's alarms are fraud waves
# (21-24 cards in three weeks against 2-3 a year earlier); each asks for one fraud retrain per
# drift window at most, which the gate then judges.
RECENT_FRAUD_DAYS = 21
# Window compared with its seasonal reference: four full weeks.
WINDOW_DAYS = 28
# Windows before the current one whose year-over-year growth is the "expected" growth (12
# weeks: long enough to average out one promotion, short enough to follow a trend).
BASELINE_DAYS = 84
# PSI above 0.25 is a "significant shift" in the credit-scoring bands the index is known by
# (below 0.1 no change, 0.1-0.25 moderate); moderate shifts are reported, not acted on.
PSI_DRIFT = 0.25
# A test must also reject "same distribution" at this level. Strict, because dozens of features
# are tested every day and large samples make tiny, harmless differences "significant".
P_VALUE = 0.001
# Fewer rows than this in either window (or segment): reported, not tested.
MIN_ROWS = 100
# A seasonally adjusted level change of 25 % or more counts as drift: the day-to-day noise of
# a 28-day sum per series is well below it, a real shift (a supply shock, a lost competitor)
# well above.
LEVEL_CHANGE = 0.25
# Fewer series than this in a segment: its level change is reported, not tested.
MIN_SERIES = 8
# PSI bins: reference deciles. Empty bins get this share so the log stays finite.
_PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class Windows:
    """The current window, its seasonal reference and the window just before it (inclusive
    date ranges)."""

    current: tuple[date, date]
    season: tuple[date, date]
    recent: tuple[date, date]

    @classmethod
    def ending(cls, end: date, days: int = WINDOW_DAYS) -> Windows:
        start = end - timedelta(days=days - 1)
        year, span = timedelta(days=SEASON_DAYS), timedelta(days=days)
        return cls((start, end), (start - year, end - year), (start - span, end - span))

    def as_dict(self) -> dict[str, str]:
        return {
            "current": f"{self.current[0]} .. {self.current[1]}",
            "season": f"{self.season[0]} .. {self.season[1]} (same weeks a year earlier)",
            "recent": f"{self.recent[0]} .. {self.recent[1]} (the weeks just before)",
        }


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str  # numeric | categorical
    test: str
    psi: float | None
    statistic: float | None
    p_value: float | None
    n_reference: int
    n_current: int
    drifted: bool
    segment: str = "overall"
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: _round(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class LevelChange:
    segment: str
    series: int
    change: float | None  # seasonally adjusted level change, relative (0.5 = +50 %)
    p_value: float | None
    drifted: bool
    note: str = ""
    what: str = "demand level"
    test: str = "Wilcoxon"

    def as_dict(self) -> dict[str, Any]:
        return {k: _round(v) for k, v in asdict(self).items()}


def _round(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.4g}")
    return value


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of `current` against `reference` on the reference's decile
    bins (numeric values)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, 11)))
    if edges.size < 2:  # a constant reference: two bins, "equal to it" and "not"
        value = edges[0]
        ref_share = np.array([1.0, 0.0])
        cur_share = np.array([np.mean(current == value), np.mean(current != value)])
    else:
        edges = np.concatenate(([-np.inf], edges[1:-1], [np.inf]))
        ref_share = np.histogram(reference, edges)[0] / reference.size
        cur_share = np.histogram(current, edges)[0] / current.size
    return _psi_from_shares(ref_share, cur_share)


def _psi_from_shares(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    ref_share = np.clip(ref_share, _PSI_FLOOR, None)
    cur_share = np.clip(cur_share, _PSI_FLOOR, None)
    return float(np.sum((cur_share - ref_share) * np.log(cur_share / ref_share)))


def numeric_drift(
    feature: str, reference: np.ndarray, current: np.ndarray, segment: str
) -> FeatureDrift:
    reference = reference[~np.isnan(reference)]
    current = current[~np.isnan(current)]
    if min(reference.size, current.size) < MIN_ROWS:
        return FeatureDrift(
            feature, "numeric", "ks", None, None, None, int(reference.size), int(current.size),
            False, segment, f"fewer than {MIN_ROWS} values in a window: not tested",
        )  # fmt: skip
    result = stats.ks_2samp(reference, current)
    value = psi(reference, current)
    drifted = bool(value >= PSI_DRIFT and result.pvalue < P_VALUE)
    return FeatureDrift(
        feature, "numeric", "ks", value, float(result.statistic), float(result.pvalue),
        int(reference.size), int(current.size), drifted, segment,
    )  # fmt: skip


def categorical_drift(
    feature: str, reference: list[Any], current: list[Any], segment: str
) -> FeatureDrift:
    ref = pl.Series(reference, dtype=pl.String).fill_null("(missing)").value_counts()
    cur = pl.Series(current, dtype=pl.String).fill_null("(missing)").value_counts()
    counts = ref.join(cur, on=ref.columns[0], how="full", coalesce=True).fill_null(0)
    ref_counts = counts[ref.columns[1]].to_numpy().astype(float)
    cur_counts = counts[f"{ref.columns[1]}_right"].to_numpy().astype(float)
    n_ref, n_cur = int(ref_counts.sum()), int(cur_counts.sum())
    if min(n_ref, n_cur) < MIN_ROWS:
        return FeatureDrift(
            feature, "categorical", "chi-square", None, None, None, n_ref, n_cur, False, segment,
            f"fewer than {MIN_ROWS} values in a window: not tested",
        )  # fmt: skip
    value = _psi_from_shares(ref_counts / n_ref, cur_counts / n_cur)
    if len(ref_counts) < 2:
        return FeatureDrift(
            feature, "categorical", "chi-square", value, 0.0, 1.0, n_ref, n_cur, False, segment,
            "one category in both windows",
        )  # fmt: skip
    chi2, p_value, _, _ = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]))
    drifted = bool(value >= PSI_DRIFT and p_value < P_VALUE)
    return FeatureDrift(
        feature, "categorical", "chi-square", value, float(chi2), float(p_value),
        n_ref, n_cur, drifted, segment,
    )  # fmt: skip


def feature_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    numeric: list[str],
    categorical: list[str],
    segment: str = "overall",
) -> list[FeatureDrift]:
    """Drift of each feature between two windows (frames with those columns)."""
    out = []
    for column in numeric:
        out.append(
            numeric_drift(
                column,
                reference[column].cast(pl.Float64).to_numpy(),
                current[column].cast(pl.Float64).to_numpy(),
                segment,
            )
        )
    for column in categorical:
        out.append(
            categorical_drift(
                column,
                reference[column].cast(pl.String).to_list(),
                current[column].cast(pl.String).to_list(),
                segment,
            )
        )
    return out


def seasonal_feature_drift(
    frame: pl.DataFrame,
    date_column: str,
    numeric: list[str],
    categorical: list[str],
    windows: Windows,
    segment_column: str | None = None,
) -> list[FeatureDrift]:
    """Feature drift of the current window, overall and (when `segment_column`) per segment
    with enough rows: one row per feature and segment, against the seasonal reference, marked
    `drifted` only when the feature also drifted against the recent window (see the module
    docstring; the recent comparison's PSI is in the note)."""

    def window(bounds: tuple[date, date]) -> pl.DataFrame:
        return frame.filter(pl.col(date_column).cast(pl.Date).is_between(*bounds))

    current, season, recent = (
        window(windows.current),
        window(windows.season),
        window(windows.recent),
    )
    parts = [("overall", current, season, recent)]
    if segment_column is not None:
        for (value,), part in current.group_by(segment_column, maintain_order=True):
            same = pl.col(segment_column) == value
            parts.append(
                (f"{segment_column}={value}", part, season.filter(same), recent.filter(same))
            )
    out = []
    for segment, now, last_year, before in parts:
        if segment != "overall" and min(now.height, last_year.height) < MIN_ROWS:
            continue
        against_season = feature_drift(last_year, now, numeric, categorical, segment)
        against_recent = feature_drift(before, now, numeric, categorical, segment)
        for s_row, r_row in zip(against_season, against_recent, strict=True):
            recent_psi = "n/a" if r_row.psi is None else f"{r_row.psi:.3g}"
            out.append(
                replace(
                    s_row,
                    drifted=s_row.drifted and r_row.drifted,
                    note=s_row.note or f"PSI against the weeks just before: {recent_psi}",
                )
            )
    return out


def level_change(
    frame: pl.DataFrame,
    date_column: str,
    value_column: str,
    series_columns: list[str],
    end: date,
    segment_columns: tuple[str, ...] = (),
    window_days: int = WINDOW_DAYS,
    baseline_days: int = BASELINE_DAYS,
) -> list[LevelChange]:
    """Seasonally adjusted level change of `value_column` per series, overall and per segment.

    Per series: g_now = log((1 + sum over the current window) / (1 + sum over the same window a
    year earlier)) and g_before, the same over the `baseline_days` before the current window;
    the series' change is g_now - g_before (0 when this window grew like the ones before it,
    whatever the season did). The segment's change is exp(median) - 1, tested against 0 with
    the Wilcoxon signed-rank test."""
    day = pl.col(date_column).cast(pl.Date)
    year = timedelta(days=SEASON_DAYS)
    now_start = end - timedelta(days=window_days - 1)
    before_start = now_start - timedelta(days=baseline_days)
    before_end = now_start - timedelta(days=1)
    spans = {
        "now": (now_start, end),
        "now_ly": (now_start - year, end - year),
        "before": (before_start, before_end),
        "before_ly": (before_start - year, before_end - year),
    }
    sums = frame.group_by(series_columns).agg(
        [
            pl.col(value_column).filter(day.is_between(*span)).sum().alias(name)
            for name, span in spans.items()
        ]
        + [pl.col(c).first() for c in segment_columns]
        + [day.min().alias("_first")]
    )
    # Only series that existed a full year before the baseline started can be compared.
    sums = sums.filter(pl.col("_first") <= spans["before_ly"][0]).with_columns(
        (
            ((pl.col("now") + 1) / (pl.col("now_ly") + 1)).log()
            - ((pl.col("before") + 1) / (pl.col("before_ly") + 1)).log()
        ).alias("_change")
    )
    out = [_level(sums, "overall")]
    for column in segment_columns:
        for (value,), part in sums.group_by(column, maintain_order=True):
            out.append(_level(part, f"{column}={value}"))
    return out


def _level(part: pl.DataFrame, segment: str) -> LevelChange:
    changes = part["_change"].drop_nulls().to_numpy()
    if changes.size < MIN_SERIES:
        change = float(np.expm1(np.median(changes))) if changes.size else None
        return LevelChange(
            segment, int(changes.size), change, None, False,
            f"fewer than {MIN_SERIES} series with two years of history: not tested",
        )  # fmt: skip
    change = float(np.expm1(np.median(changes)))
    p_value = 1.0 if np.allclose(changes, 0) else float(stats.wilcoxon(changes).pvalue)
    drifted = bool(abs(change) >= LEVEL_CHANGE and p_value < P_VALUE)
    return LevelChange(segment, int(changes.size), change, p_value, drifted)


def fraud_rate_change(
    transactions: pl.DataFrame,
    since: datetime,
    now: datetime,
    segment: str,
    recent_rise: bool = False,
) -> LevelChange:
    """Frauds known by `now` among payments since `since`, against the same weeks a year
    earlier with labels as known the same time after (so label delay cancels out); a Fisher
    exact test on the two 2x2 counts. `segment` names the window with words that stay the
    same from day to day (what drifted is remembered by it); the dates go to the note.

    `recent_rise`: count paying cards, not payments, and test for a rise only. Fraud comes in
    bursts (card testing runs dozens of payments on one card), so over a few weeks payment
    counts are overdispersed and a test that treats them as independent fires on the
    stationary world; cards with a known fraud are closer to independent. A fall in fraud
    needs no fast alarm."""
    year = timedelta(days=SEASON_DAYS)
    unit = "cards" if recent_rise else "payments"

    def counts(start: datetime, end: datetime) -> tuple[int, int]:
        rows = transactions.filter(pl.col("transaction_ts").is_between(start, end))
        known = rows.filter(
            pl.col("is_fraud").fill_null(False) & (pl.col("label_available_at") <= end)
        )
        if recent_rise:
            return known["card_id"].n_unique(), rows["card_id"].n_unique()
        return known.height, rows.height

    frauds, n = counts(since, now)
    ref_frauds, ref_n = counts(since - year, now - year)
    span = f"{since:%Y-%m-%d}..{now:%Y-%m-%d} vs a year earlier"
    test = "one-sided Fisher exact on cards" if recent_rise else "Fisher exact"
    if min(n, ref_n) < MIN_LIVE_ROWS or ref_frauds == 0:
        return LevelChange(
            segment, n, None, None, False,
            f"{span}: {n} {unit} now, {ref_n} ({ref_frauds} with a known fraud) a year "
            "earlier: not tested",
            what="known fraud rate", test=test,
        )  # fmt: skip
    ratio = (frauds / n) / (ref_frauds / ref_n)
    p_value = float(
        stats.fisher_exact(
            [[frauds, n - frauds], [ref_frauds, ref_n - ref_frauds]],
            alternative="greater" if recent_rise else "two-sided",
        ).pvalue
    )
    log_ratio = np.log(ratio) if ratio > 0 else -np.inf
    size = log_ratio if recent_rise else abs(log_ratio)
    drifted = bool(size >= np.log1p(FRAUD_RATE_CHANGE) and p_value < P_VALUE)
    return LevelChange(
        segment, n, ratio - 1, p_value, drifted,
        f"{span}: {frauds} of {n} {unit} with a known fraud vs {ref_frauds} of {ref_n}",
        what="known fraud rate", test=test,
    )  # fmt: skip
