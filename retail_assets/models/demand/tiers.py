"""Demand retraining tiers: categories whose demand moves fast retrain weekly, stable ones
monthly.

The drift-velocity score of a category is how far its seasonally adjusted sales level moved
in the last four weeks. Per day, the category's sales against the same weekday a year
earlier (log ratio) is its seasonally adjusted growth; the score is the change of the median
growth of the last 28 days against the 84 days before them (relative: 0.10 = the level moved
by a tenth), and a Mann-Whitney U test of the two sets of days says whether the move is
real. A Black Friday surge that happened last year too scores about zero; a category whose
level moved by a tenth within a month scores 0.10. Days, not store-SKU series, are the
sample, so a category of three SKUs is measured as well as one of three hundred.

A category is `fast` when the score reaches FAST_TIER_CHANGE and the test rejects "no move"
at FAST_TIER_P_VALUE; everything else, including categories younger than a year and 16
weeks, is `stable`.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl
from scipy import stats

from retail_assets.models.demand.features import CATEGORICAL_COLUMNS, build_encodings
from retail_assets.models.lifecycle.tiers import Tier, Tiering, TierMembership
from retail_assets.monitoring.drift import BASELINE_DAYS, SEASON_DAYS, WINDOW_DAYS

# A 10 % move of the seasonally adjusted level within four weeks: well above what a stable
# category's 28-day level wanders (a few per cent on the tiny and small data), and less than
# half of what monitoring calls drift (25 %), so a moving category retrains weekly before it
# drifts far enough to degrade the model.
FAST_TIER_CHANGE = 0.10
# The move must be significant at this level (Mann-Whitney over the days): a noisy week or a
# promotion that moved to another week does not make a category fast.
FAST_TIER_P_VALUE = 0.01
# Days with a year-earlier day in each window before a category is measured (half of each).
MIN_DAYS = 14

FAST = Tier(
    name="fast",
    cron="0 4 * * 1",
    cadence="weekly",
    max_age_days=8,
    description=(
        "Categories whose seasonally adjusted sales level moved by at least "
        f"{FAST_TIER_CHANGE:.0%} in the last four weeks (Mann-Whitney p < {FAST_TIER_P_VALUE}): "
        "retrained every Monday on their own rows."
    ),
)
STABLE = Tier(
    name="stable",
    cron="0 4 1 * *",
    cadence="monthly",
    max_age_days=32,
    description=(
        "Categories whose seasonally adjusted level holds (or is too young or thin to measure): "
        "retrained on the first of every month on their own rows."
    ),
)
SOURCE = ("marts", "demand_features")
# The mart's columns the velocity reads, plus every categorical column (their vocabularies
# are the codes the parts' trees split on).
SOURCE_COLUMNS = ("date", "sku", "units_sold", *CATEGORICAL_COLUMNS)


def category_velocity(daily: pl.DataFrame, end: date | None = None) -> list[dict]:
    """Per category: drift-velocity score (seasonally adjusted level change in the last four
    weeks, relative), the Mann-Whitney p-value of the move, and the tier it earns."""
    if daily.height == 0:
        return []
    end = end or daily["date"].cast(pl.Date).max()
    now_start = end - timedelta(days=WINDOW_DAYS - 1)
    totals = (
        daily.with_columns(pl.col("date").cast(pl.Date))
        .group_by("category", "date")
        .agg(pl.col("units_sold").sum().alias("units"))
    )
    year_ago = totals.with_columns(
        (pl.col("date") + timedelta(days=SEASON_DAYS)).alias("date"),
        pl.col("units").alias("units_ly"),
    ).drop("units")
    growth = totals.join(year_ago, on=["category", "date"], how="inner").with_columns(
        ((pl.col("units") + 1) / (pl.col("units_ly") + 1)).log().alias("growth"),
        (pl.col("date") >= now_start).alias("current"),
    )
    growth = growth.filter(
        pl.col("date").is_between(now_start - timedelta(days=BASELINE_DAYS), end)
    )
    # Selling since before the year-earlier baseline began: a category launched later has
    # zeros (or nothing) a year ago, which is no season to compare with.
    first_sale = dict(
        totals.filter(pl.col("units") > 0)
        .group_by("category")
        .agg(pl.col("date").min())
        .iter_rows()
    )
    measurable = now_start - timedelta(days=BASELINE_DAYS + SEASON_DAYS)
    rows = []
    for category in sorted(daily["category"].drop_nulls().unique().to_list()):
        days = growth.filter(pl.col("category") == category)
        now = days.filter(pl.col("current"))["growth"].to_numpy()
        before = days.filter(~pl.col("current"))["growth"].to_numpy()
        row = {"category": category, "velocity": None, "change": None, "p_value": None}
        launched = first_sale.get(category)
        if launched is None or launched > measurable or min(len(now), len(before)) < MIN_DAYS:
            row.update(
                tier=STABLE.name,
                why=f"too little history to measure: needs sales since {measurable} (a year "
                f"before the last {(WINDOW_DAYS + BASELINE_DAYS) // 7} weeks)",
            )
        else:
            change = float(np.expm1(np.median(now) - np.median(before)))
            p_value = float(stats.mannwhitneyu(now, before).pvalue)
            fast = abs(change) >= FAST_TIER_CHANGE and p_value < FAST_TIER_P_VALUE
            row.update(
                velocity=abs(change),
                change=change,
                p_value=p_value,
                tier=FAST.name if fast else STABLE.name,
                why=f"level {change:+.1%} in 4 weeks against the season "
                f"(Mann-Whitney p={p_value:.2g})",
            )
        rows.append(row)
    return rows


def assign_demand_tiers(daily: pl.DataFrame) -> list[TierMembership]:
    """The fast and stable tiers of the categories in `daily` (the demand mart's columns
    SOURCE_COLUMNS), each with its evidence and the mart's categorical vocabularies."""
    encodings = build_encodings(daily)
    rows = category_velocity(daily)
    departments = (
        daily.select("category", "department").drop_nulls().unique(subset="category", keep="first")
    )
    parents = {
        "department": dict(zip(departments["category"], departments["department"], strict=True))
    }
    return [
        TierMembership(
            tier=tier.name,
            column="category",
            values=[r["category"] for r in rows if r["tier"] == tier.name],
            encodings=encodings,
            evidence=[r for r in rows if r["tier"] == tier.name],
            parents=parents,
        )
        for tier in (FAST, STABLE)
    ]


DEMAND_TIERING = Tiering(
    column="category",
    tiers=(FAST, STABLE),
    source=SOURCE,
    source_columns=SOURCE_COLUMNS,
    assign=assign_demand_tiers,
    description=(
        "Demand retraining tiers by drift velocity: the seasonally adjusted change of each "
        "category's sales level over the last four weeks (daily sales against the same "
        f"weekday {SEASON_DAYS} days earlier). Fast categories retrain "
        "weekly, stable ones monthly, each tier on its own rows; the demand model routes every "
        "category to the newest part that learned it."
    ),
)
