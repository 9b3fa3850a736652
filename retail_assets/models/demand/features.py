"""Demand features as of a forecast origin: the one code path for training and serving.

A forecast is made at the END of an origin day `o` for a target day `t = o + h`
(`h` = 1..28). Two kinds of information may be used:

* **History (known at the end of day o)** - computed by `origin_features` from the mart's
  `units_sold` (and the competitor / price columns) of days <= o only. This is the one
  definition of the demand history: the mart carries no lags or rolling statistics, because
  at serving time the origin is the last data day and no later row exists to read them from.
  Windows end at o: `units_lag_1` is the units of day o, `units_lag_7` of o-6,
  `units_mean_28d` averages the observed days among o-27 .. o, ... Target-relative history
  (`units_lag_364` = units of t-364, `units_mean_same_week_last_year` = mean of t-367 .. t-361,
  the same weekday in the last observed week) only reaches back to days <= o because h <= 28.
  The competitor price is the last one the mart knows on day o (observed on or before o-1):
  one day staler than the best possible, so that the serving origin (last data day) uses the
  very same rule. The age of that price is not a feature (`fct_daily_sales` has it as
  `competitor_price_age_days`; the demand mart does not carry it).
* **Known in advance for day t** - the retailer's own price and promotion plan (`unit_price`,
  `list_price`, `price_ratio`, `on_promotion`, `promo_discount_pct`), the calendar, the
  product's age and the catalog / store attributes. ASSUMPTION: planned prices and promotions
  are fixed at least 28 days ahead and the plan is what gets executed; the mart's realised
  price of day t stands in for the plan. `plan_features` selects them from the mart row of t
  (serving supplies the same columns from the plan).

`assemble_features` combines the two (cross features such as unit_price(t) /
competitor_min_price(o) and the categorical codes). Days are counted, not rows: each
store-SKU series is expanded to every calendar day from its first mart day to the mart's last
day, and a day missing from the mart is missing (NULL) in every lag and is skipped by the
rolling means. Note: the mart only holds active days, so a day the feed has but the catalog
marks inactive counts as missing history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from retail_assets.models.demand.baselines import seasonal_lag

MAX_HORIZON = 28
WEEK = 7
YEAR = 364  # 52 weeks: same weekday one year earlier

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

# History as of the end of the origin day (windows ending at o, inclusive).
ORIGIN_HISTORY_COLUMNS = [
    "units_lag_1",
    "units_lag_7",
    "units_lag_14",
    "units_lag_28",
    "units_mean_7d",
    "units_mean_28d",
    "units_mean_91d",
    "units_std_28d",
    "zero_sale_share_28d",
    "stockout_share_28d",
    "days_of_history",
    "competitor_min_price",
]
# History relative to the target day, still only reaching days <= o.
TARGET_HISTORY_COLUMNS = [
    "units_lag_364",
    "units_mean_same_week_last_year",
    "units_same_weekday_last",
    "units_same_weekday_mean_4w",
    "units_mean_28d_last_year",
    "units_yoy_level_ratio",
]
# Helper columns carried for cross features, not model inputs.
_ORIGIN_HELPERS = ["last_unit_price"]

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
CROSS_COLUMNS = ["price_to_competitor_ratio", "price_change_vs_origin"]


def event_flag_columns(mart: pl.DataFrame) -> list[str]:
    """The mart's per-event flags (`is_black_friday`, ...), in mart order."""
    return [
        c
        for c, dtype in mart.schema.items()
        if c.startswith("is_") and c not in ("is_holiday", "is_event_day") and dtype == pl.Boolean
    ]


def plan_columns(mart: pl.DataFrame) -> list[str]:
    """Known-in-advance numeric columns of the target day, plus the categorical attributes."""
    return [*NUMERIC_PLAN_COLUMNS, *event_flag_columns(mart)]


def feature_columns(mart: pl.DataFrame) -> list[str]:
    """Model inputs in signature (= ONNX input) order."""
    return [
        "horizon",
        *ORIGIN_HISTORY_COLUMNS,
        *TARGET_HISTORY_COLUMNS,
        *plan_columns(mart),
        *CROSS_COLUMNS,
        *[f"{c}_code" for c in CATEGORICAL_COLUMNS],
    ]


def _series_ids(mart: pl.DataFrame) -> pl.DataFrame:
    """One row per store-SKU series: integer id, first mart day, and the last day of the whole
    mart (a series that stopped earlier still has a state on every later day: its lags are
    missing, its rolling windows hold what was observed)."""
    return (
        mart.group_by(KEYS)
        .agg(pl.col("date").min().alias("_first"))
        .with_columns(pl.lit(mart["date"].max()).alias("_last"))
        .sort(KEYS)
        .with_row_index("_sid")
        .with_columns(pl.col("_sid").cast(pl.Int32))
    )


def _lag(expr: pl.Expr, k: int) -> pl.Expr:
    """`expr` k rows (= days) earlier in the same series, NULL before the series starts.
    Valid because the state frame is sorted by (series, date) and dense in days."""
    if k == 0:
        return expr
    return pl.when(pl.col("_sid").shift(k) == pl.col("_sid")).then(expr.shift(k))


def _window_sum(cumulative: str, k: int) -> pl.Expr:
    """Sum over the k days ending at the row's day from a within-series cumulative sum."""
    return pl.col(cumulative) - _lag(pl.col(cumulative), k).fill_null(0)


def history_state(mart: pl.DataFrame) -> pl.DataFrame:
    """One row per store-SKU series and calendar day from its first mart day to the last day of
    the mart, with statistics over windows ENDING AT that day (inclusive): the state at the
    end of the day."""
    series = _series_ids(mart)
    dense = (
        series.with_columns(pl.date_ranges("_first", "_last").alias("date"))
        .select("_sid", *KEYS, "date")
        .explode("date")
    )
    observed = mart.select(
        *KEYS,
        "date",
        pl.col("units_sold").cast(pl.Float64).alias("_y"),
        pl.col("stockout").cast(pl.Float64).alias("_stockout"),
        pl.col("unit_price").cast(pl.Float64).alias("_price"),
        pl.col("competitor_min_price").cast(pl.Float64).alias("_comp"),
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
        pl.col("_comp").forward_fill().over("_sid").alias("_comp_ff"),
    )

    def mean(k: int) -> pl.Expr:
        n = _window_sum("_c_n", k)
        return pl.when(n > 0).then(_window_sum("_c_s", k) / n)

    n28 = _window_sum("_c_n", 28)
    s28 = _window_sum("_c_s", 28)
    ss28 = _window_sum("_c_ss", 28)
    same_weekday = [_lag(y, WEEK * i) for i in range(4)]
    n_same = pl.sum_horizontal([e.is_not_null().cast(pl.Int64) for e in same_weekday])
    sum_same = pl.sum_horizontal([e.fill_null(0) for e in same_weekday])
    return frame.select(
        "_sid",
        *KEYS,
        "date",
        y.alias("units_sold"),
        y.alias("units_lag_1"),
        _lag(y, 6).alias("units_lag_7"),
        _lag(y, 13).alias("units_lag_14"),
        _lag(y, 27).alias("units_lag_28"),
        mean(7).alias("units_mean_7d"),
        mean(28).alias("units_mean_28d"),
        mean(91).alias("units_mean_91d"),
        pl.when(n28 > 1)
        .then(((ss28 - s28 * s28 / n28) / (n28 - 1)).clip(lower_bound=0).sqrt())
        .alias("units_std_28d"),
        pl.when(n28 > 0).then(_window_sum("_c_zero", 28) / n28).alias("zero_sale_share_28d"),
        pl.when(n28 > 0).then(_window_sum("_c_so", 28) / n28).alias("stockout_share_28d"),
        pl.col("_c_n").cast(pl.Float64).alias("days_of_history"),
        pl.col("_comp_ff").alias("competitor_min_price"),
        "last_unit_price",
        pl.when(n_same > 0).then(sum_same / n_same).alias("units_same_weekday_mean_4w"),
    )


def origin_features(
    mart: pl.DataFrame,
    origins: pl.DataFrame,
    state: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """History features known at the end of each origin day.

    `origins`: columns store_id, sku, origin_date (Date) and horizon (1..28). Returns the same
    rows (same order) with target_date and the `ORIGIN_HISTORY_COLUMNS`,
    `TARGET_HISTORY_COLUMNS` and helper columns, computed from mart days <= origin_date only.
    Series without any mart day on or before the origin get NULL history (cold start).
    Serving builds its online feature table with origin_date = the last data day.
    """
    missing = {"store_id", "sku", "origin_date", "horizon"} - set(origins.columns)
    if missing:
        raise ValueError(f"origins frame lacks column(s): {', '.join(sorted(missing))}")
    bad = origins.filter((pl.col("horizon") < 1) | (pl.col("horizon") > MAX_HORIZON)).height
    if bad:
        raise ValueError(f"origins: {bad} row(s) with horizon outside 1..{MAX_HORIZON}")
    if state is None:
        state = history_state(mart)
    keyed = state.select("_sid", *KEYS).unique(subset=KEYS)
    base = (
        origins.with_row_index("_row")
        .with_columns(
            pl.col("horizon").cast(pl.Int32),
            (pl.col("origin_date") + pl.duration(days=pl.col("horizon"))).alias("target_date"),
        )
        .join(keyed, on=KEYS, how="left")
    )
    at_origin = state.select(
        "_sid",
        "date",
        *[c for c in ORIGIN_HISTORY_COLUMNS if c != "days_of_history"],
        "days_of_history",
        *_ORIGIN_HELPERS,
    )

    def lookup(offset: pl.Expr, columns: dict[str, str]) -> pl.DataFrame:
        """State columns at day `offset` (an expression of the base frame), renamed."""
        keys = base.select("_row", "_sid", offset.alias("date"))
        picked = state.select("_sid", "date", *[pl.col(s).alias(d) for s, d in columns.items()])
        return keys.join(picked, on=["_sid", "date"], how="left").drop("_sid", "date")

    target, origin = pl.col("target_date"), pl.col("origin_date")
    sn_lag = seasonal_lag(pl.col("horizon"), WEEK)
    parts = [
        base.join(
            at_origin.rename({"date": "origin_date"}), on=["_sid", "origin_date"], how="left"
        ),
        lookup(target - pl.duration(days=YEAR), {"units_sold": "units_lag_364"}),
        # The mart's same-week-last-year window t-367 .. t-361 = the 7 days ending at t-361.
        lookup(
            target - pl.duration(days=YEAR - 3), {"units_mean_7d": "units_mean_same_week_last_year"}
        ),
        lookup(
            target - pl.duration(days=sn_lag),
            {
                "units_sold": "units_same_weekday_last",
                "units_same_weekday_mean_4w": "units_same_weekday_mean_4w",
            },
        ),
        lookup(origin - pl.duration(days=YEAR), {"units_mean_28d": "units_mean_28d_last_year"}),
    ]
    out = parts[0]
    for part in parts[1:]:
        out = out.join(part, on="_row", how="left")
    out = out.with_columns(
        pl.when(pl.col("units_mean_28d_last_year") > 0)
        .then(pl.col("units_mean_28d") / pl.col("units_mean_28d_last_year"))
        .alias("units_yoy_level_ratio"),
        pl.col("days_of_history").fill_null(0.0),
    )
    return out.sort("_row").drop("_row", "_sid")


def plan_features(mart: pl.DataFrame) -> pl.DataFrame:
    """Known-in-advance columns of each mart day, keyed by (store_id, sku, target_date)."""
    return mart.select(
        *KEYS,
        pl.col("date").alias("target_date"),
        *plan_columns(mart),
        *[c for c in CATEGORICAL_COLUMNS if c not in KEYS],
    )


def build_encodings(mart: pl.DataFrame) -> dict[str, list[str]]:
    """Sorted vocabulary per categorical column; code = index in the list."""
    return {
        c: sorted(str(v) for v in mart.get_column(c).drop_nulls().unique().to_list())
        for c in CATEGORICAL_COLUMNS
    }


def assemble_features(
    history: pl.DataFrame, plan: pl.DataFrame, encodings: dict[str, list[str]]
) -> pl.DataFrame:
    """History (from `origin_features`) joined with the target day's plan (from
    `plan_features`, inner join: a target needs a plan row), plus cross features and codes."""
    frame = history.join(plan, on=[*KEYS, "target_date"], how="inner")
    frame = frame.with_columns(
        (pl.col("unit_price") / pl.col("competitor_min_price")).alias("price_to_competitor_ratio"),
        (pl.col("unit_price") / pl.col("last_unit_price")).alias("price_change_vs_origin"),
    )
    frame = encode_categoricals(frame, encodings)
    boolean = [c for c, t in frame.schema.items() if t == pl.Boolean]
    return frame.with_columns([pl.col(c).cast(pl.Float64) for c in boolean])


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
) -> pl.DataFrame:
    """Examples for (store, sku, origin, horizon) rows whose target day is in the mart: history
    as of the origin, plan of the target day, the target and its stockout flag."""
    history = origin_features(mart, origins, state)
    plan = plan_features(mart)
    targets = mart.select(
        *KEYS,
        pl.col("date").alias("target_date"),
        pl.col("units_sold").cast(pl.Float64),
        pl.col("stockout"),
    )
    return assemble_features(history, plan, encodings).join(
        targets, on=[*KEYS, "target_date"], how="inner", maintain_order="left"
    )


def feature_matrix(frame: pl.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """float64 matrix in the given column order, NaN for missing."""
    return frame.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy().astype(np.float64)
