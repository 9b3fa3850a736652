"""Demand response: expected units of a SKU in a store on a day as a function of its own price,
with the context that moves demand besides price.

Why this shape. The optimizer asks one question, "how many units at price p?", for a grid of
prices around today's; a model that may answer "more units at a higher price" would send it to
the top of the grid. So own price enters as `log_price_ratio` (log of the price over the
catalog list price) under a LightGBM monotone constraint: predicted units never rise with it.
The competitor's price enters as `log_competitor_ratio` (their price over our regular price;
monotone increasing: a dearer competitor never lowers our units). Promotion, weekday, week of year,
category and store carry the rest.

Sparse SKUs: a SKU-store with few sales days learns little on its own, so its level enters as
`log_baseline`, the store x SKU's mean units per day shrunk towards its store x category's mean
by BASELINE_PRIOR_DAYS pseudo-days (a SKU with 5 days of history sits near its category; one
with 300 days near its own mean). Baselines come from the training window only.

Rows: active days without a stockout (a stockout day's units are what was on the shelf, not
what was wanted), with a positive price. Runtime pieces (`features`) import polars only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl

FEATURES = [
    "log_price_ratio",
    "log_competitor_ratio",
    "on_promotion",
    "day_of_week",
    "week_of_year",
    "category_code",
    "store_code",
    "log_baseline",
]
CATEGORICAL = ["category_code", "store_code"]
LOG_PRICE_RATIO = FEATURES.index("log_price_ratio")
LOG_COMPETITOR_RATIO = FEATURES.index("log_competitor_ratio")
ON_PROMOTION = FEATURES.index("on_promotion")
CATEGORY_CODE = FEATURES.index("category_code")
# +1: units rise with the feature, -1: units fall with it, 0: free.
MONOTONE = {"log_price_ratio": -1, "log_competitor_ratio": 1}
# A store x SKU's own mean weighs like this many days of its category's mean: about a month,
# the history a buyer would want before trusting one item's rate over its category's.
BASELINE_PRIOR_DAYS = 30.0
# The category of a SKU the catalog does not list (it gets the pooled elasticity).
UNKNOWN_CATEGORY = "(unknown)"
# Relative price step for the arc elasticity (d log units / d log price).
ELASTICITY_STEP = 0.05


@dataclass(frozen=True)
class Vocabulary:
    """Codes of the categorical features (code = index; unknown = -1)."""

    categories: list[str]
    stores: list[str]

    @classmethod
    def of(cls, frame: pl.DataFrame) -> Vocabulary:
        return cls(
            sorted(frame["category"].drop_nulls().unique().to_list()),
            sorted(frame["store_id"].drop_nulls().unique().to_list()),
        )


def sales_rows(sales: pl.DataFrame, products: pl.DataFrame) -> pl.DataFrame:
    """Active, in-stock days with a price: date, store_id, sku, category, units, unit_price,
    list_price, unit_cost, competitor_min_price, on_promotion, regular_price."""
    return (
        sales.filter(
            pl.col("is_active_day").fill_null(True),
            ~pl.col("stockout").fill_null(False),
            pl.col("unit_price") > 0,
            pl.col("list_price") > 0,
        )
        .join(products.select("sku", pl.col("category").cast(pl.String)), on="sku", how="left")
        .with_columns(pl.col("category").fill_null(UNKNOWN_CATEGORY))
        .select(
            "date",
            "store_id",
            "sku",
            "category",
            pl.col("units_sold").cast(pl.Float64).alias("units"),
            "unit_price",
            "list_price",
            "unit_cost",
            "competitor_min_price",
            pl.col("on_promotion").fill_null(False),
            # The shelf price before the promotion's discount: what a price decision sets.
            (
                pl.col("unit_price")
                / (1 - pl.col("promo_discount_pct").fill_null(0.0).clip(0, 0.95))
            ).alias("regular_price"),
        )
    )


def baselines(train: pl.DataFrame, prior_days: float = BASELINE_PRIOR_DAYS) -> pl.DataFrame:
    """store_id, sku, category, log_baseline: mean units per day of the store x SKU, shrunk to
    its store x category's mean by `prior_days` pseudo-days."""
    own = train.group_by("store_id", "sku", "category").agg(
        pl.col("units").sum().alias("units"), pl.len().alias("days")
    )
    group = own.group_by("store_id", "category").agg(
        (pl.col("units").sum() / pl.col("days").sum()).alias("group_rate")
    )
    return own.join(group, on=["store_id", "category"]).select(
        "store_id",
        "sku",
        "category",
        ((pl.col("units") + prior_days * pl.col("group_rate")) / (pl.col("days") + prior_days))
        .log()
        .alias("log_baseline"),
    )


def price_terms(price: pl.Expr, regular: pl.Expr) -> list[pl.Expr]:
    """`log_price_ratio` (the price paid over the list price) and `log_competitor_ratio` (the
    competitor's price over our regular shelf price: competitors answer our shelf price, not a
    few days of promotion; no competitor price = level with ours). `at_prices` is the numpy
    twin serving uses; the elasticity regression uses the same terms."""
    return [
        (price / pl.col("list_price")).log().alias("log_price_ratio"),
        (
            pl.when(pl.col("competitor_min_price").cast(pl.Float64) > 0).then(
                pl.col("competitor_min_price").cast(pl.Float64)
            )
            / regular
        )
        .log()
        .fill_null(0.0)
        .fill_nan(0.0)
        .alias("log_competitor_ratio"),
    ]


def features(
    rows: pl.DataFrame, base: pl.DataFrame, vocabulary: Vocabulary, price: pl.Expr | None = None
) -> pl.DataFrame:
    """`rows` with FEATURES at their own price, or at the regular price `price` (an
    expression over the row: the counterfactual the optimizer asks about, no promotion
    discount). A store x SKU without a baseline gets its store x category's (the cold start),
    else the chain's median."""
    regular = pl.col("regular_price") if price is None else price
    price = pl.col("unit_price") if price is None else price
    category_base = base.group_by("store_id", "category").agg(
        pl.col("log_baseline").median().alias("_category_base")
    )
    chain = float(base["log_baseline"].median()) if base.height else 0.0
    category_code = {c: i for i, c in enumerate(vocabulary.categories)}
    store_code = {s: i for i, s in enumerate(vocabulary.stores)}
    return (
        rows.join(
            base.select("store_id", "sku", "log_baseline"), on=["store_id", "sku"], how="left"
        )
        .join(category_base, on=["store_id", "category"], how="left")
        .with_columns(*price_terms(price, regular))
        .with_columns(
            pl.col("on_promotion").cast(pl.Float64),
            pl.col("date").dt.weekday().cast(pl.Float64).alias("day_of_week"),
            pl.col("date").dt.week().cast(pl.Float64).alias("week_of_year"),
            pl.col("category")
            .replace_strict(category_code, default=-1, return_dtype=pl.Float64)
            .alias("category_code"),
            pl.col("store_id")
            .replace_strict(store_code, default=-1, return_dtype=pl.Float64)
            .alias("store_code"),
            pl.coalesce("log_baseline", "_category_base", pl.lit(chain)).alias("log_baseline"),
        )
        .drop("_category_base")
    )


def at_prices(
    x: np.ndarray, prices: np.ndarray, list_price: np.ndarray, competitor: np.ndarray
) -> np.ndarray:
    """Feature rows `x` [n, FEATURES] repriced: [n * m, FEATURES] with row i's features at each
    of its m regular prices `prices[i]` (no promotion), in row-major order. The numpy twin of
    `features(..., price=...)` that serving and the optimizer use."""
    m = prices.shape[1]
    out = np.repeat(x, m, axis=0)
    p = prices.reshape(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[:, LOG_PRICE_RATIO] = np.log(p / np.repeat(list_price, m))
        ratio = np.log(np.repeat(competitor, m) / p)
    out[:, LOG_COMPETITOR_RATIO] = np.where(np.isfinite(ratio), ratio, 0.0)
    out[:, ON_PROMOTION] = 0.0
    return out


def monotone_constraints() -> list[int]:
    return [MONOTONE.get(name, 0) for name in FEATURES]


def arc_elasticity(predict, frame_at) -> np.ndarray:
    """Per row, d log(units) / d log(price) between ELASTICITY_STEP below and above its own
    price, the competitor's price held: `frame_at(multiplier)` gives the feature matrix at
    the row's price times the multiplier, `predict(matrix)` the expected units."""
    up = predict(frame_at(1 + ELASTICITY_STEP))
    down = predict(frame_at(1 - ELASTICITY_STEP))
    span = math.log(1 + ELASTICITY_STEP) - math.log(1 - ELASTICITY_STEP)
    return (np.log(np.maximum(up, 1e-9)) - np.log(np.maximum(down, 1e-9))) / span
