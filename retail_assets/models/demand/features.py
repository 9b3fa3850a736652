"""Demand features as of a forecast origin: the one code path for training and serving.

A forecast is made at the END of an origin period `o` (a day on the daily grain, a week on the
weekly grain; `grain.py`) for a target period `t = o + h` (`h` = 1..28 days or 1..8 weeks).
Two kinds of information may be used:

* **History (known at the end of o)** - computed by `origin_features` from the mart's
  `units_sold` (and the competitor / price columns) of periods <= o only. This is the one
  definition of the demand history: the mart carries no lags or rolling statistics, because
  at serving time the origin is the last data period and no later row exists to read them
  from. Windows end at o: `units_lag_1` is the units of o, `units_lag_7` (daily) of o-6,
  `units_mean_28d` averages the observed days among o-27 .. o, ... Target-relative history
  (`units_lag_364` = units of t-364, `units_mean_same_week_last_year` = mean of t-367 ..
  t-361, the same weekday in the last observed week) only reaches back to periods <= o
  because the horizon is shorter than a year. The competitor price is the last one the mart
  knows on o (observed on or before o-1): one day staler than the best possible, so that the
  serving origin (last data day) uses the very same rule.
  A day the store was planned closed (`is_open` false in the store calendar) is not a day of
  demand: its units are missing history, not a zero.
* **Known in advance for t** - the retailer's own price and promotion plan (`unit_price`,
  `list_price`, `price_ratio`, `on_promotion`, `promo_discount_pct`), the chain's and the
  store's calendar (public and regional holidays, planned opening, school holidays, local
  events), the product's age and the catalog / store attributes. For past periods the mart's
  realised price and promotion stand in for the plan (the plan was executed); for future
  periods the landed promotion plan supplies them (`online.py`), or the caller of
  `POST /v1/forecast` does (`with_plan_dependent`). `plan_features` selects them from the
  mart row of t.

`assemble_features` combines the two (cross features such as unit_price(t) /
competitor_min_price(o), the baselines that depend on the planned promotion, and the
categorical codes). Periods are counted, not rows: each store-SKU series is expanded to every
period from its first mart period to the mart's last, and a period missing from the mart is
missing (NULL) in every lag and is skipped by the rolling means. Note: the mart only holds
active days, so a day the feed has but the catalog marks inactive counts as missing history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import numpy as np
import polars as pl

from retail_assets.models.demand.baselines import seasonal_lag
from retail_assets.models.demand.grain import DAILY, Grain

KEYS = ["store_id", "sku"]
CATEGORICAL_COLUMNS = [
    "store_id",
    "department",
    "category",
    "subcategory",
    "brand",
    "store_region",
    "store_format",
]
SEGMENT_COLUMNS = ["category", "store_region"]

# The strongest simple forecasts, as features (the model may lean on them) and as the
# evaluation's baselines (`evaluate.py`), computed here so training, the baselines and serving
# share one definition:
# * baseline_profile: the series' mean at the target's point of the season (daily: its
#   weekday) over the last `grain.profile_seasons` seasons known at the origin (daily: 8
#   weeks; weekly: the last 8 weeks), among periods with the target's planned promotion
#   status (a store x weekday x promotion profile of recent weeks); falls back to the same
#   point regardless of promotion, then to the medium rolling mean (`profile_source` says
#   which: 0, 1, 2; 3 = none);
# * baseline_last_year_scaled: the same week last year scaled by the year-on-year level
#   (medium mean at the origin over the same window a year earlier); missing when there is no
#   year-ago history (a new series, a gap) - no silent stand-in, callers fall back explicitly.
BASELINE_COLUMNS = ["baseline_profile", "baseline_last_year_scaled"]
PROFILE_SOURCES = {0: "same {point} and promotion status", 1: "same {point}", 2: "{mean}"}
_PROFILE_SUMS = ["_pf_sum_promo", "_pf_n_promo", "_pf_sum_regular", "_pf_n_regular"]
# Carried by the online table so a caller's plan can be applied to it (`with_plan_dependent`).
# `last_regular_price`: the series' last price on a day without promotion, the price a future
# period is at when nothing is planned (the catalog's list price may be the launch price, long
# since changed), and what a planned discount is taken off.
PLAN_HELPER_COLUMNS = ["last_unit_price", "last_regular_price", *_PROFILE_SUMS]

NUMERIC_PLAN_COLUMNS = [
    "unit_price",
    "list_price",
    "price_ratio",
    "on_promotion",
    "promo_discount_pct",
    "day_of_week",
    "week_of_year",
    "month",
    "is_holiday",
    "is_event_day",
    "days_to_christmas",
    "days_since_launch",
]
# The store's own calendar of the target period (dim_store_dates through the mart): planned
# opening, school holidays, a local event. `is_store_event` is derived from the event's name.
STORE_DAY_COLUMNS = ["is_open", "school_holiday", "is_store_event"]
# The plan a caller may override per target period; everything derived from them is
# recomputed by `with_plan_dependent`.
PLAN_INPUTS = ["unit_price", "on_promotion", "promo_discount_pct"]
CROSS_COLUMNS = ["price_to_competitor_ratio", "price_change_vs_origin"]
_NOT_EVENT_FLAGS = {"is_holiday", "is_event_day", "is_open", "is_store_event"}


def event_flag_columns(mart: pl.DataFrame) -> list[str]:
    """The mart's per-event flags (`is_black_friday`, ...), in mart order."""
    return [
        c
        for c, dtype in mart.schema.items()
        if c.startswith("is_") and c not in _NOT_EVENT_FLAGS and dtype == pl.Boolean
    ]


def store_day_columns(mart: pl.DataFrame) -> list[str]:
    """The store-calendar columns this mart carries (all of them since the store calendar
    layer; none for a mart built before it)."""
    present = set(mart.columns)
    return [
        c
        for c in STORE_DAY_COLUMNS
        if c in present or (c == "is_store_event" and "store_event_name" in present)
    ]


def plan_columns(mart: pl.DataFrame) -> list[str]:
    """Known-in-advance numeric columns of the target period."""
    return [*NUMERIC_PLAN_COLUMNS, *store_day_columns(mart), *event_flag_columns(mart)]


def feature_columns(mart: pl.DataFrame, grain: Grain = DAILY) -> list[str]:
    """Model inputs in signature (= ONNX input) order."""
    return [
        "horizon",
        *grain.origin_history_columns(),
        *grain.target_history_columns(),
        *BASELINE_COLUMNS,
        *plan_columns(mart),
        *CROSS_COLUMNS,
        *[f"{c}_code" for c in CATEGORICAL_COLUMNS],
    ]


def check_grain(mart: pl.DataFrame, grain: Grain) -> None:
    """A weekly series is one row per week on one weekday (Walmart's Fridays, a retailer's
    Sundays): rows on several weekdays mean daily data or a mixed feed, which the weekly grain
    would silently misalign. Raises ValueError naming the weekdays found."""
    if grain.days == 1 or mart.height == 0:
        return
    weekdays = mart.group_by(pl.col("date").dt.strftime("%A").alias("weekday")).len()
    if weekdays.height > 1:
        found = ", ".join(
            f"{day} ({n} rows)" for day, n in weekdays.sort("len", descending=True).iter_rows()
        )
        raise ValueError(
            f"marts.demand_features: the {grain.name}ly grain needs one row per store, SKU and "
            f"week, all dated on the same weekday; found {found}. Land weekly sales dated on "
            "the week's reporting day, or use RETAIL_DEMAND_GRAIN=day for daily data."
        )


def _series_ids(mart: pl.DataFrame, last: date | None = None) -> pl.DataFrame:
    """One row per store-SKU series: integer id, first mart period, and the last period of the
    whole mart, or `last` (a series that stopped earlier still has a state on every later
    period: its lags are missing, its rolling windows hold what was observed)."""
    return (
        mart.group_by(KEYS)
        .agg(pl.col("date").min().alias("_first"))
        .with_columns(pl.lit(last or mart["date"].max()).alias("_last"))
        .sort(KEYS)
        .with_row_index("_sid")
        .with_columns(pl.col("_sid").cast(pl.Int32))
    )


def _lag(expr: pl.Expr, k: int) -> pl.Expr:
    """`expr` k rows (= periods) earlier in the same series, NULL before the series starts.
    Valid because the state frame is sorted by (series, date) and dense in periods."""
    if k == 0:
        return expr
    return pl.when(pl.col("_sid").shift(k) == pl.col("_sid")).then(expr.shift(k))


def _window_sum(cumulative: str, k: int) -> pl.Expr:
    """Sum over the k periods ending at the row's period from a within-series cumulative sum."""
    return pl.col(cumulative) - _lag(pl.col(cumulative), k).fill_null(0)


def history_state(
    mart: pl.DataFrame, grain: Grain = DAILY, last: date | None = None
) -> pl.DataFrame:
    """One row per store-SKU series and period from its first mart period to the last period
    of the mart (or `last`: the whole mart's, when `mart` holds some of its series), with
    statistics over windows ENDING AT that period (inclusive): the state at the end of the
    period."""
    check_grain(mart, grain)
    series = _series_ids(mart, last)
    dense = (
        series.with_columns(
            pl.date_ranges("_first", "_last", interval=f"{grain.days}d").alias("date")
        )
        .select("_sid", *KEYS, "date")
        .explode("date")
    )
    units = pl.col("units_sold").cast(pl.Float64)
    if "is_open" in mart.columns:
        # A planned closed day is no evidence of demand: missing, not zero.
        units = pl.when(pl.col("is_open").fill_null(True)).then(units)
    observed = mart.select(
        *KEYS,
        "date",
        units.alias("_y"),
        pl.col("stockout").cast(pl.Float64).alias("_stockout"),
        pl.col("unit_price").cast(pl.Float64).alias("_price"),
        pl.col("competitor_min_price").cast(pl.Float64).alias("_comp"),
        pl.col("on_promotion").cast(pl.Float64).alias("_promo"),
    )
    frame = dense.join(observed, on=[*KEYS, "date"], how="left").sort("_sid", "date")
    y = pl.col("_y")
    frame = frame.with_columns(
        pl.col("_y").is_not_null().cast(pl.Int64).alias("_obs"),
        y.fill_null(0).alias("_y0"),
        (y == 0).cast(pl.Float64).fill_null(0).alias("_zero"),
        pl.col("_stockout").fill_null(0).alias("_so"),
    ).with_columns(
        pl.col("_obs").cum_sum().over("_sid").alias("_c_n"),
        pl.col("_y0").cum_sum().over("_sid").alias("_c_s"),
        (pl.col("_y0") ** 2).cum_sum().over("_sid").alias("_c_ss"),
        pl.col("_zero").cum_sum().over("_sid").alias("_c_zero"),
        pl.col("_so").cum_sum().over("_sid").alias("_c_so"),
        pl.col("_price").forward_fill().over("_sid").alias("last_unit_price"),
        pl.when(pl.col("_promo").fill_null(0) <= 0)
        .then(pl.col("_price"))
        .forward_fill()
        .over("_sid")
        .alias("last_regular_price"),
        pl.col("_comp").forward_fill().over("_sid").alias("_comp_ff"),
    )

    def mean(k: int) -> pl.Expr:
        n = _window_sum("_c_n", k)
        return pl.when(n > 0).then(_window_sum("_c_s", k) / n)

    m, u = grain.medium, grain.unit
    n_m = _window_sum("_c_n", m)
    s_m = _window_sum("_c_s", m)
    ss_m = _window_sum("_c_ss", m)
    # Same point of the season (daily: weekday) over the last profile_seasons seasons, split by
    # whether the period was promoted.
    promo = pl.col("_promo").fill_null(0.0)
    profile_periods = [
        (_lag(y, grain.season * i), _lag(promo, grain.season * i))
        for i in range(grain.profile_seasons)
    ]

    def profile_sum(promoted: bool, count: bool) -> pl.Expr:
        terms = []
        for value, flag in profile_periods:
            status = flag if promoted else (1.0 - flag)
            observed = value.is_not_null().cast(pl.Float64) * status
            terms.append(observed if count else value.fill_null(0.0) * status)
        return pl.sum_horizontal(terms)

    seasonal: list[pl.Expr] = []
    if grain.has_season:
        same = [_lag(y, grain.season * i) for i in range(4)]
        n_same = pl.sum_horizontal([e.is_not_null().cast(pl.Int64) for e in same])
        sum_same = pl.sum_horizontal([e.fill_null(0) for e in same])
        seasonal.append(
            pl.when(n_same > 0).then(sum_same / n_same).alias("units_same_weekday_mean_4w")
        )
    return frame.select(
        "_sid",
        *KEYS,
        "date",
        y.alias("units_sold"),
        *[_lag(y, k - 1).alias(grain.lag(k)) for k in grain.lags],
        *[mean(w).alias(grain.mean(w)) for w in grain.windows],
        mean(grain.same_period_window).alias("_mean_same_period"),
        pl.when(n_m > 1)
        .then(((ss_m - s_m * s_m / n_m) / (n_m - 1)).clip(lower_bound=0).sqrt())
        .alias(f"units_std_{m}{u}"),
        pl.when(n_m > 0).then(_window_sum("_c_zero", m) / n_m).alias(f"zero_sale_share_{m}{u}"),
        pl.when(n_m > 0).then(_window_sum("_c_so", m) / n_m).alias(f"stockout_share_{m}{u}"),
        pl.col("_c_n").cast(pl.Float64).alias(grain.history_count),
        pl.col("_comp_ff").alias("competitor_min_price"),
        "last_unit_price",
        "last_regular_price",
        *seasonal,
        profile_sum(True, False).alias("_pf_sum_promo"),
        profile_sum(True, True).alias("_pf_n_promo"),
        profile_sum(False, False).alias("_pf_sum_regular"),
        profile_sum(False, True).alias("_pf_n_regular"),
    )


def origin_features(
    mart: pl.DataFrame,
    origins: pl.DataFrame,
    state: pl.DataFrame | None = None,
    grain: Grain = DAILY,
) -> pl.DataFrame:
    """History features known at the end of each origin period.

    `origins`: columns store_id, sku, origin_date (Date) and horizon (1..grain.max_horizon, in
    periods). Returns the same rows (same order) with target_date and the grain's origin and
    target history columns plus helper columns, computed from mart periods <= origin_date
    only. Series without any mart period on or before the origin get NULL history (cold
    start). Serving builds its online feature table with origin_date = the last data period.
    """
    missing = {"store_id", "sku", "origin_date", "horizon"} - set(origins.columns)
    if missing:
        raise ValueError(f"origins frame lacks column(s): {', '.join(sorted(missing))}")
    bad = origins.filter((pl.col("horizon") < 1) | (pl.col("horizon") > grain.max_horizon)).height
    if bad:
        raise ValueError(f"origins: {bad} row(s) with horizon outside 1..{grain.max_horizon}")
    if state is None:
        state = history_state(mart, grain)
    d = grain.days
    keyed = state.select("_sid", *KEYS).unique(subset=KEYS)
    base = (
        origins.with_row_index("_row")
        .with_columns(
            pl.col("horizon").cast(pl.Int32),
            (pl.col("origin_date") + pl.duration(days=pl.col("horizon") * d)).alias("target_date"),
        )
        .join(keyed, on=KEYS, how="left")
    )
    at_origin = state.select(
        "_sid",
        "date",
        *[c for c in grain.origin_history_columns() if c != grain.history_count],
        grain.history_count,
        "last_unit_price",
        "last_regular_price",
    )

    def lookup(offset: pl.Expr, columns: dict[str, str]) -> pl.DataFrame:
        """State columns at period `offset` (an expression of the base frame), renamed."""
        keys = base.select("_row", "_sid", offset.alias("date"))
        picked = state.select("_sid", "date", *[pl.col(s).alias(t) for s, t in columns.items()])
        return keys.join(picked, on=["_sid", "date"], how="left").drop("_sid", "date")

    def back(anchor: pl.Expr, periods) -> pl.Expr:
        return anchor - pl.duration(days=periods * d)

    target, origin = pl.col("target_date"), pl.col("origin_date")
    # The same point of the last season known at the origin (season 1: the origin itself).
    season_point = back(target, seasonal_lag(pl.col("horizon"), grain.season))
    seasonal = {"units_sold": "units_same_weekday_last"} if grain.has_season else {}
    if grain.has_season:
        seasonal["units_same_weekday_mean_4w"] = "units_same_weekday_mean_4w"
    half = (grain.same_period_window - 1) // 2
    parts = [
        base.join(
            at_origin.rename({"date": "origin_date"}), on=["_sid", "origin_date"], how="left"
        ),
        lookup(back(target, grain.year), {"units_sold": grain.year_lag}),
        # The same-period-last-year window, centred on t - year (daily: t-367 .. t-361).
        lookup(
            back(target, grain.year - half),
            {"_mean_same_period": "units_mean_same_week_last_year"},
        ),
        lookup(season_point, {**seasonal, **{c: c for c in _PROFILE_SUMS}}),
        lookup(back(origin, grain.year), {grain.medium_mean: grain.medium_last_year}),
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.join(part, on="_row", how="left")
    out = out.with_columns(
        pl.when(pl.col(grain.medium_last_year) > 0)
        .then(pl.col(grain.medium_mean) / pl.col(grain.medium_last_year))
        .alias("units_yoy_level_ratio"),
        pl.col(grain.history_count).fill_null(0.0),
    )
    return out.sort("_row").drop("_row", "_sid")


def plan_features(mart: pl.DataFrame) -> pl.DataFrame:
    """Known-in-advance columns of each mart period, keyed by (store_id, sku, target_date)."""
    return with_store_event(mart).select(
        *KEYS,
        pl.col("date").alias("target_date"),
        *plan_columns(mart),
        *[c for c in CATEGORICAL_COLUMNS if c not in KEYS],
    )


def with_store_event(frame: pl.DataFrame) -> pl.DataFrame:
    """`is_store_event` from the store calendar's event name (a local event that day)."""
    if "store_event_name" not in frame.columns or "is_store_event" in frame.columns:
        return frame
    return frame.with_columns(pl.col("store_event_name").is_not_null().alias("is_store_event"))


def build_encodings(mart: pl.DataFrame) -> dict[str, list[str]]:
    """Sorted vocabulary per categorical column; code = index in the list."""
    return {
        c: sorted(str(v) for v in mart.get_column(c).drop_nulls().unique().to_list())
        for c in CATEGORICAL_COLUMNS
    }


def assemble_features(
    history: pl.DataFrame,
    plan: pl.DataFrame,
    encodings: dict[str, list[str]],
    grain: Grain = DAILY,
) -> pl.DataFrame:
    """History (from `origin_features`) joined with the target period's plan (from
    `plan_features`, inner join: a target needs a plan row), plus the plan-dependent features
    and the categorical codes."""
    frame = history.join(plan, on=[*KEYS, "target_date"], how="inner")
    frame = with_plan_dependent(frame, grain)
    frame = encode_categoricals(frame, encodings)
    boolean = [c for c, t in frame.schema.items() if t == pl.Boolean]
    return frame.with_columns([pl.col(c).cast(pl.Float64) for c in boolean])


def with_plan_dependent(frame: pl.DataFrame, grain: Grain = DAILY) -> pl.DataFrame:
    """Everything derived from the target period's plan (`PLAN_INPUTS`): the price ratio, the
    cross features and the baselines (the profile depends on the planned promotion). Training
    calls it through `assemble_features`; serving calls it again on the online rows after
    applying a caller's plan, so a planned promotion moves every feature it should."""
    for column in _PROFILE_SUMS:
        if column not in frame.columns:
            frame = frame.with_columns(pl.lit(None, pl.Float64).alias(column))
    frame = frame.with_columns(
        pl.when(pl.col("list_price") > 0)
        .then(pl.col("unit_price") / pl.col("list_price"))
        .otherwise(pl.col("price_ratio") if "price_ratio" in frame.columns else None)
        .alias("price_ratio"),
        (pl.col("unit_price") / pl.col("competitor_min_price")).alias("price_to_competitor_ratio"),
        (pl.col("unit_price") / pl.col("last_unit_price")).alias("price_change_vs_origin"),
    )
    promoted = pl.col("on_promotion").cast(pl.Float64).fill_null(0.0) > 0
    same_sum = pl.when(promoted).then(pl.col("_pf_sum_promo")).otherwise(pl.col("_pf_sum_regular"))
    same_n = pl.when(promoted).then(pl.col("_pf_n_promo")).otherwise(pl.col("_pf_n_regular"))
    any_n = pl.col("_pf_n_promo").fill_null(0) + pl.col("_pf_n_regular").fill_null(0)
    any_sum = pl.col("_pf_sum_promo").fill_null(0) + pl.col("_pf_sum_regular").fill_null(0)
    medium = pl.col(grain.medium_mean)
    profile = (
        pl.when(same_n > 0)
        .then(same_sum / same_n)
        .when(any_n > 0)
        .then(any_sum / any_n)
        .otherwise(medium)
    )
    source = (
        pl.when(same_n > 0)
        .then(0)
        .when(any_n > 0)
        .then(1)
        .when(medium.is_not_null())
        .then(2)
        .otherwise(3)
        .cast(pl.Int8)
    )
    ratio = pl.col("units_yoy_level_ratio")
    return frame.with_columns(
        profile.alias("baseline_profile"),
        source.alias("profile_source"),
        (pl.col("units_mean_same_week_last_year") * ratio).alias("baseline_last_year_scaled"),
    )


def apply_plan(rows: pl.DataFrame, plan: pl.DataFrame, grain: Grain = DAILY) -> pl.DataFrame:
    """Rows of the online feature table with a caller's plan applied: `plan` has target_date
    and any of price, discount_pct, on_promotion (null = not given). Where a row's target
    period is planned:

    * unit_price = price, else regular x (1 - discount_pct), else regular, where regular is
      the series' last regular (non-promotion) price, or the list price for a cold start;
    * promo_discount_pct = discount_pct, else 1 - price / regular when the price is below
      the regular price, else 0;
    * on_promotion = as given, else whether the planned price is below the regular price;

    then every plan-dependent feature is recomputed (`with_plan_dependent`) and `plan_source`
    becomes "request". Rows without a plan entry are returned as they were."""
    given = plan.select(
        "target_date",
        pl.col("price").cast(pl.Float64).alias("_p_price"),
        pl.col("discount_pct").cast(pl.Float64).alias("_p_discount"),
        pl.col("on_promotion").cast(pl.Boolean).alias("_p_promo"),
        pl.lit(True).alias("_p_planned"),
    )
    frame = rows.join(given, on="target_date", how="left")
    planned = pl.col("_p_planned").fill_null(False)
    # The price a discount is taken off: the series' last regular price (cold start: the list
    # price).
    list_price = pl.coalesce(
        pl.col("last_regular_price") if "last_regular_price" in frame.columns else None,
        pl.col("list_price"),
    ).cast(pl.Float64)
    price = pl.coalesce(
        "_p_price", list_price * (1.0 - pl.col("_p_discount").fill_null(0.0)), list_price
    )
    discount = pl.coalesce(
        "_p_discount",
        pl.when(price < list_price).then(1.0 - price / list_price).otherwise(0.0),
    )
    promo = pl.coalesce("_p_promo", price < list_price)
    frame = frame.with_columns(
        pl.when(planned).then(price).otherwise(pl.col("unit_price")).alias("unit_price"),
        pl.when(planned)
        .then(discount)
        .otherwise(pl.col("promo_discount_pct"))
        .alias("promo_discount_pct"),
        pl.when(planned)
        .then(promo.cast(pl.Float64))
        .otherwise(pl.col("on_promotion").cast(pl.Float64))
        .alias("on_promotion"),
        pl.when(planned)
        .then(pl.lit("request"))
        .otherwise(pl.col("plan_source"))
        .alias("plan_source"),
    ).drop("_p_price", "_p_discount", "_p_promo", "_p_planned")
    return with_plan_dependent(frame, grain)


def profile_source_names(grain: Grain = DAILY) -> dict[int, str]:
    point = "weekday" if grain.has_season else grain.name
    names = {
        k: v.format(point=point, mean=f"{grain.periods(grain.medium)} mean")
        for k, v in PROFILE_SOURCES.items()
    }
    return {**names, 3: "no history"}


def encode_categoricals(frame: pl.DataFrame, encodings: dict[str, list[str]]) -> pl.DataFrame:
    """`<column>_code` = index in the training vocabulary, -1 for unknown or missing."""
    return frame.with_columns(
        pl.col(c)
        .cast(pl.String)
        .replace_strict(
            encodings[c], list(range(len(encodings[c]))), default=-1, return_dtype=pl.Int32
        )
        .alias(f"{c}_code")
        for c in CATEGORICAL_COLUMNS
    )


def build_examples(
    mart: pl.DataFrame,
    origins: pl.DataFrame,
    encodings: dict[str, list[str]],
    state: pl.DataFrame | None = None,
    grain: Grain = DAILY,
) -> pl.DataFrame:
    """Examples for (store, sku, origin, horizon) rows whose target period is in the mart:
    history as of the origin, plan of the target period, the target and its stockout flag."""
    history = origin_features(mart, origins, state, grain)
    plan = plan_features(mart)
    targets = mart.select(
        *KEYS,
        pl.col("date").alias("target_date"),
        pl.col("units_sold").cast(pl.Float64),
        pl.col("stockout"),
    )
    return assemble_features(history, plan, encodings, grain).join(
        targets, on=[*KEYS, "target_date"], how="inner", maintain_order="left"
    )


def closed_to_zero(outputs: dict[str, np.ndarray], is_open: np.ndarray | None) -> dict:
    """A store planned closed sells nothing: every output is 0 on those rows. Applied after
    any model (trained or baseline) by evaluation and serving alike, so what the gate scores
    is what is served. `is_open`: 1/0 (NaN = unknown = open) per row, or None."""
    if is_open is None:
        return outputs
    closed = np.asarray(is_open, dtype=np.float64) == 0.0
    if not closed.any():
        return outputs
    return {k: np.where(closed, 0.0, np.asarray(v, dtype=np.float64)) for k, v in outputs.items()}


def feature_matrix(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """float64 matrix in the given column order, NaN for missing."""
    return frame.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy().astype(np.float64)
