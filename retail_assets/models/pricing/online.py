"""What a price request is answered from: per store x SKU, today's shelf price and what the
guardrails and the response model need, as of the latest sales day.

Computed by the same functions as the training set (`response.sales_rows`, `baselines`,
`family.with_week_ago_price`), published by `pricing_online_features`, indexed by serving
(`serving/pricing.py`), which builds the model's feature row with `response.at_prices`.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from retail_assets.models.pricing.response import UNKNOWN_CATEGORY, baselines, sales_rows

# Prices below a cent are not prices (a feed in the wrong unit, a placeholder): left out.
MIN_PRICE = 0.01
# The shrunk store x SKU baselines are computed over this many days before the latest, the
# window the response model's training set uses (`family.TRAIN_DAYS`).
BASELINE_DAYS = 365

COLUMNS = (
    "store_id",
    "sku",
    "category",
    "list_price",
    "unit_cost",
    "regular_price",
    "regular_price_week_ago",
    "competitor_min_price",
    "log_baseline",
)


def price_state(sales: pl.DataFrame, products: pl.DataFrame) -> pl.DataFrame:
    """One row per store x SKU with a price on its latest active day: COLUMNS, plus `as_of`
    (that day). The regular price is the shelf price before any promotion discount; the
    competitor price is the latest one observed (scrapes miss days)."""
    active = (
        sales.filter(
            pl.col("is_active_day").fill_null(True),
            pl.col("unit_price") >= MIN_PRICE,
            pl.col("list_price") >= MIN_PRICE,
        )
        .join(products.select("sku", pl.col("category").cast(pl.String)), on="sku", how="left")
        .with_columns(pl.col("category").fill_null(UNKNOWN_CATEGORY))
        .with_columns(
            (
                pl.col("unit_price")
                / (1 - pl.col("promo_discount_pct").fill_null(0.0).clip(0, 0.95))
            ).alias("regular_price")
        )
        .sort("store_id", "sku", "date")
    )
    if active.height == 0:
        raise ValueError("marts.fct_daily_sales has no active days with a price")
    latest = active.group_by("store_id", "sku").agg(
        pl.col("date").last().alias("as_of"),
        pl.col("category").last(),
        pl.col("list_price").last(),
        pl.col("unit_cost").last(),
        pl.col("regular_price").last(),
        pl.col("competitor_min_price").filter(pl.col("competitor_min_price") > 0).last(),
    )
    week_ago = active.select(
        "store_id",
        "sku",
        (pl.col("date") + timedelta(days=7)).alias("as_of"),
        pl.col("regular_price").alias("regular_price_week_ago"),
    )
    end = active["date"].max()
    history = sales_rows(
        sales.filter(pl.col("date") > end - timedelta(days=BASELINE_DAYS)), products
    )
    return (
        latest.join(week_ago, on=["store_id", "sku", "as_of"], how="left")
        .join(baselines(history).drop("category"), on=["store_id", "sku"], how="left")
        .select(*COLUMNS, "as_of")
        .sort("store_id", "sku")
    )
