"""The demand forecast's online feature table: what serving joins into a forecast request.

For every store-SKU series active in the last data period E, the model inputs for target
periods E+1 .. E+H (H = 28 days, or 8 weeks on the weekly grain), computed with the training
code path (`origin_features` for history as of E, `assemble_features` for the target-period
plan, the cross features and the baselines). Serving only looks rows up.

The target-period plan beyond E, per store, SKU and period:

* calendar: the chain's (`marts/dim_dates`, which runs ahead of the sales) and the store's own
  (`marts/dim_store_dates`: planned opening, regional and school holidays, local events);
* price and promotion: the landed promotion plan (`marts/demand_plan`) where it covers the
  period, else the regular list price with no promotion. `plan_source` says which
  ("landed plan" / "regular price"). A caller of `POST /v1/forecast` may send their own plan;
  serving then recomputes the plan-dependent features with `features.with_plan_dependent`,
  the same function training used, from the helper columns kept here (`PLAN_HELPER_COLUMNS`).

Cold start: rows keyed by a store and/or category with `*` for "unknown" hold a new product's
features (no history, the group's median list price, age = horizon); a SKU or store serving
has never seen gets one of those, and the response names the fallback.
"""

from __future__ import annotations

import polars as pl

from retail_assets.models.demand import features as F
from retail_assets.models.demand.grain import DAILY, Grain

WILDCARD = "*"
ATTRIBUTES = [c for c in F.CATEGORICAL_COLUMNS if c not in F.KEYS]
PLAN_SOURCES = ("landed plan", "regular price", "request")
CALENDAR_COLUMNS = [
    "day_of_week",
    "week_of_year",
    "month",
    "is_holiday",
    "is_event_day",
    "days_to_christmas",
]


def _calendar(dates: pl.DataFrame, event_flags: list[str]) -> pl.DataFrame:
    return dates.select(pl.col("date").alias("target_date"), *CALENDAR_COLUMNS, *event_flags)


def future_dates(origin, grain: Grain) -> list:
    from datetime import timedelta

    return [origin + timedelta(days=k * grain.days) for k in range(1, grain.max_horizon + 1)]


def _future_plan(
    rows: pl.DataFrame,
    calendar: pl.DataFrame,
    origin,
    days_since_launch,
    grain: Grain,
    plan: pl.DataFrame | None,
    store_days: pl.DataFrame | None,
    store_day_columns: list[str],
) -> pl.DataFrame:
    """Plan rows for each (store_id, sku) in `rows` and each future period: the landed plan
    where there is one, else regular price; the store's calendar where it has one."""
    wanted = pl.DataFrame({"target_date": future_dates(origin, grain)})
    future = wanted.join(calendar, on="target_date", how="inner")
    if future.height < grain.max_horizon:
        missing = wanted.join(calendar, on="target_date", how="anti")["target_date"]
        raise ValueError(
            f"the calendar covers only {future.height} of the {grain.periods(grain.max_horizon)} "
            f"after {origin} (first missing: {missing[0]}); the calendar feed must run at least "
            f"{grain.periods(grain.max_horizon)} ahead of the sales"
        )
    frame = rows.join(future, how="cross")
    if store_days is not None and store_day_columns:
        chosen = store_days.select(
            "store_id",
            pl.col("date").alias("target_date"),
            pl.col("is_holiday").alias("_store_holiday"),
            "is_open",
            "school_holiday",
            pl.col("store_event_name").is_not_null().alias("is_store_event"),
        )
        frame = frame.join(chosen, on=["store_id", "target_date"], how="left").with_columns(
            pl.coalesce("_store_holiday", "is_holiday").alias("is_holiday"),
            pl.col("is_open").fill_null(True),
            pl.col("school_holiday").fill_null(False),
            pl.col("is_store_event").fill_null(False),
        )
        frame = frame.drop("_store_holiday")
    else:
        frame = frame.with_columns(
            pl.lit(True).alias("is_open"),
            pl.lit(False).alias("school_holiday"),
            pl.lit(False).alias("is_store_event"),
        ).drop([c for c in F.STORE_DAY_COLUMNS if c not in store_day_columns])
    if plan is not None and plan.height:
        planned = plan.select(
            "store_id",
            "sku",
            pl.col("date").alias("target_date"),
            pl.col("planned_price").alias("_planned_price"),
            pl.col("discount_pct").alias("_planned_discount"),
            pl.col("on_promotion").alias("_planned_promo"),
        )
        frame = frame.join(planned, on=["store_id", "sku", "target_date"], how="left")
    else:
        frame = frame.with_columns(
            pl.lit(None, pl.Float64).alias("_planned_price"),
            pl.lit(None, pl.Float64).alias("_planned_discount"),
            pl.lit(None, pl.Boolean).alias("_planned_promo"),
        )
    has_plan = pl.col("_planned_price").is_not_null() | pl.col("_planned_promo").is_not_null()
    if "_regular_price" not in frame.columns:  # cold start: no price history
        frame = frame.with_columns(pl.lit(None, pl.Float64).alias("_regular_price"))
    return frame.with_columns(
        pl.coalesce("_planned_price", "_regular_price", "list_price")
        .cast(pl.Float64)
        .alias("unit_price"),
        pl.lit(None, pl.Float64).alias("price_ratio"),  # recomputed from the prices
        pl.col("_planned_promo").fill_null(False).alias("on_promotion"),
        pl.col("_planned_discount").fill_null(0.0).cast(pl.Float64).alias("promo_discount_pct"),
        (days_since_launch + (pl.col("target_date") - pl.lit(origin)).dt.total_days()).alias(
            "days_since_launch"
        ),
        pl.when(has_plan)
        .then(pl.lit("landed plan"))
        .otherwise(pl.lit("regular price"))
        .alias("plan_source"),
    ).drop("_planned_price", "_planned_discount", "_planned_promo", "_regular_price")


def forecast_feature_table(
    mart: pl.DataFrame,
    dates: pl.DataFrame,
    *,
    grain: Grain = DAILY,
    plan: pl.DataFrame | None = None,
    store_days: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Rows (store_id, sku, horizon, origin_date, target_date, fallback, profile_source,
    plan_source, <model inputs>, <plan helper columns>, <raw categories>).

    `fallback` is null for real series; for cold-start rows it is "category" (known store,
    unknown SKU of a known category), "store" (known store, nothing else known) or "chain"
    (unknown store). `plan`: `marts/demand_plan`; `store_days`: `marts/dim_store_dates`."""
    origin = mart["date"].max()
    flags = F.event_flag_columns(mart)
    calendar = _calendar(dates, flags)
    encodings = F.build_encodings(mart)
    store_columns = F.store_day_columns(mart)

    last = mart.filter(pl.col("date") == origin).select(
        *F.KEYS, "list_price", "days_since_launch", *ATTRIBUTES
    )
    origins = (
        last.select(*F.KEYS)
        .join(
            pl.DataFrame(
                {"horizon": list(range(1, grain.max_horizon + 1))}, schema={"horizon": pl.Int32}
            ),
            how="cross",
        )
        .with_columns(pl.lit(origin).alias("origin_date"))
    )
    history = F.origin_features(mart, origins, grain=grain)
    # A future period with nothing planned is at the series' last regular price.
    regular = history.select(*F.KEYS, pl.col("last_regular_price").alias("_regular_price")).unique(
        F.KEYS
    )
    future = _future_plan(
        last.join(regular, on=F.KEYS, how="left").rename({"days_since_launch": "_age"}),
        calendar,
        origin,
        pl.col("_age"),
        grain,
        plan,
        store_days,
        store_columns,
    ).drop("_age")
    series = F.assemble_features(history, future, encodings, grain).with_columns(
        pl.lit(None, pl.String).alias("fallback")
    )

    cold = _cold_start_rows(
        last, calendar, origin, encodings, history.columns, grain, store_days, store_columns
    )
    frame = pl.concat([series, cold], how="diagonal_relaxed")
    keep = [
        "store_id",
        "sku",
        "horizon",
        "origin_date",
        "target_date",
        "fallback",
        "profile_source",
        "plan_source",
    ]
    inputs = [
        c for c in F.feature_columns(mart, grain) if not c.endswith("_code") and c not in keep
    ]
    return frame.select(*keep, *inputs, *F.PLAN_HELPER_COLUMNS, *ATTRIBUTES).sort(
        "store_id", "sku", "horizon"
    )


def _cold_start_rows(
    last, calendar, origin, encodings, history_columns, grain, store_days, store_columns
) -> pl.DataFrame:
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
        grain,
        None,  # a product nobody has planned: regular price
        store_days,
        store_columns,
    )
    history = plan.select(
        "store_id",
        "sku",
        "target_date",
        pl.lit(origin).alias("origin_date"),
        ((pl.col("target_date") - pl.lit(origin)).dt.total_days() // grain.days)
        .cast(pl.Int32)
        .alias("horizon"),
        *[
            pl.lit(None, pl.Float64).alias(c)
            for c in history_columns
            if c not in ("store_id", "sku", "origin_date", "horizon", "target_date")
        ],
    ).with_columns(pl.lit(0.0).alias(grain.history_count))
    fallback = plan.select("store_id", "sku", "target_date", "fallback")
    return F.assemble_features(history, plan.drop("fallback"), encodings, grain).join(
        fallback, on=["store_id", "sku", "target_date"], how="left"
    )
