"""The demand forecast's online feature table: what serving joins into a forecast request.

For every store-SKU series active on the last data day E, the model inputs for target days
E+1 .. E+28, computed with the training code path (`origin_features` for history as of E,
`assemble_features` for the target-day plan and cross features). Serving only looks rows up.

The target-day plan beyond E: the calendar comes from the published retail calendar
(`marts/dim_dates` runs ahead of the sales); prices are the regular list price with no
promotion, because no promotion plan feed exists yet - forecasts are "at regular price".

Cold start: rows keyed by a store and/or category with `*` for "unknown" hold a new product's
features (no history, the group's median list price, age = horizon); a SKU or store serving
has never seen gets one of those, and the response names the fallback.
"""

from __future__ import annotations

import polars as pl

from retail_assets.models.demand import features as F

WILDCARD = "*"
ATTRIBUTES = [c for c in F.CATEGORICAL_COLUMNS if c not in F.KEYS]


def _calendar(dates: pl.DataFrame, event_flags: list[str]) -> pl.DataFrame:
    columns = [
        "day_of_week",
        "week_of_year",
        "month",
        "is_holiday",
        "is_event_day",
        "days_to_christmas",
    ]
    return dates.select(pl.col("date").alias("target_date"), *columns, *event_flags)


def _future_plan(
    rows: pl.DataFrame, calendar: pl.DataFrame, origin, days_since_launch
) -> pl.DataFrame:
    """Regular-price plan rows for each (store_id, sku) in `rows` and each future day."""
    future = calendar.filter(
        (pl.col("target_date") > origin)
        & (pl.col("target_date") <= origin + pl.duration(days=F.MAX_HORIZON))
    )
    if future.height < F.MAX_HORIZON:
        raise ValueError(
            f"the calendar covers only {future.height} of the {F.MAX_HORIZON} days after {origin}; "
            "the calendar feed must run ahead of the sales"
        )
    return rows.join(future, how="cross").with_columns(
        pl.col("list_price").alias("unit_price"),
        pl.lit(1.0).alias("price_ratio"),
        pl.lit(False).alias("on_promotion"),
        pl.lit(0.0).alias("promo_discount_pct"),
        (days_since_launch + (pl.col("target_date") - pl.lit(origin)).dt.total_days()).alias(
            "days_since_launch"
        ),
    )


def forecast_feature_table(mart: pl.DataFrame, dates: pl.DataFrame) -> pl.DataFrame:
    """Rows (store_id, sku, horizon, target_date, fallback, <model inputs>, <raw categories>).

    `fallback` is null for real series; for cold-start rows it is "category" (known store,
    unknown SKU of a known category), "store" (known store, nothing else known) or "chain"
    (unknown store)."""
    origin = mart["date"].max()
    flags = F.event_flag_columns(mart)
    calendar = _calendar(dates, flags)
    encodings = F.build_encodings(mart)

    last = mart.filter(pl.col("date") == origin).select(
        *F.KEYS, "list_price", "days_since_launch", *ATTRIBUTES
    )
    origins = (
        last.select(*F.KEYS)
        .join(
            pl.DataFrame(
                {"horizon": list(range(1, F.MAX_HORIZON + 1))}, schema={"horizon": pl.Int32}
            ),
            how="cross",
        )
        .with_columns(pl.lit(origin).alias("origin_date"))
    )
    history = F.origin_features(mart, origins)
    plan = _future_plan(
        last.rename({"days_since_launch": "_age"}), calendar, origin, pl.col("_age")
    ).drop("_age")
    series = F.assemble_features(history, plan, encodings).with_columns(
        pl.lit(None, pl.String).alias("fallback")
    )

    cold = _cold_start_rows(mart, last, calendar, origin, encodings, history.columns)
    frame = pl.concat([series, cold], how="diagonal_relaxed")
    keep = ["store_id", "sku", "horizon", "origin_date", "target_date", "fallback"]
    inputs = [c for c in F.feature_columns(mart) if not c.endswith("_code") and c not in keep]
    return frame.select(*keep, *inputs, *ATTRIBUTES).sort("store_id", "sku", "horizon")


def _cold_start_rows(mart, last, calendar, origin, encodings, history_columns) -> pl.DataFrame:
    """New-product rows for (store, category), (store, *), (*, category) and (*, *)."""
    groups = []
    stores = last.group_by("store_id").agg(
        pl.col("store_region").first(),
        pl.col("store_format").first(),
        pl.col("list_price").median(),
    )
    by_store_category = last.group_by("store_id", "category").agg(
        pl.col("department").first(),
        pl.col("store_region").first(),
        pl.col("store_format").first(),
        pl.col("list_price").median(),
    )
    by_category = last.group_by("category").agg(
        pl.col("department").first(), pl.col("list_price").median()
    )
    groups.append(by_store_category.with_columns(pl.lit("category").alias("fallback")))
    groups.append(
        stores.with_columns(pl.lit(WILDCARD).alias("category"), pl.lit("store").alias("fallback"))
    )
    groups.append(
        by_category.with_columns(
            pl.lit(WILDCARD).alias("store_id"), pl.lit("chain").alias("fallback")
        )
    )
    groups.append(
        pl.DataFrame(
            {
                "store_id": [WILDCARD],
                "category": [WILDCARD],
                "list_price": [last["list_price"].median()],
            }
        ).with_columns(pl.lit("chain").alias("fallback"))
    )
    rows = pl.concat(groups, how="diagonal_relaxed").with_columns(
        # The wildcard SKU of a group: "<category>" or "*", never a real SKU id.
        pl.concat_str(pl.lit(WILDCARD), pl.col("category")).alias("sku"),
        pl.lit(None, pl.String).alias("subcategory"),
        pl.lit(None, pl.String).alias("brand"),
        pl.col("department").cast(pl.String),
        pl.col("store_region").cast(pl.String),
        pl.col("store_format").cast(pl.String),
    )
    rows = rows.with_columns(
        pl.when(pl.col("category") == WILDCARD)
        .then(None)
        .otherwise(pl.col("category"))
        .alias("category_value")
    )
    plan = _future_plan(
        rows.drop("category")
        .rename({"category_value": "category"})
        .select("store_id", "sku", "list_price", "fallback", *ATTRIBUTES),
        calendar,
        origin,
        pl.lit(0),
    )
    history = plan.select(
        "store_id",
        "sku",
        "target_date",
        pl.lit(origin).alias("origin_date"),
        (pl.col("target_date") - pl.lit(origin)).dt.total_days().cast(pl.Int32).alias("horizon"),
        *[
            pl.lit(None, pl.Float64).alias(c)
            for c in history_columns
            if c not in ("store_id", "sku", "origin_date", "horizon", "target_date")
        ],
    ).with_columns(pl.lit(0.0).alias("days_of_history"))
    fallback = plan.select("store_id", "sku", "target_date", "fallback")
    return F.assemble_features(history, plan.drop("fallback"), encodings).join(
        fallback, on=["store_id", "sku", "target_date"], how="left"
    )
