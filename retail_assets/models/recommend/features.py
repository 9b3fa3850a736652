"""The ranker's input, as of one time (`at`) from engagements before it: `source_tables`
computes the history-wide tables (polars), `online.Candidates` turns them into each query's
candidates (the union of the sources, each tagged with the one that proposed it first) and
user, item and user-item features. Training, the evaluation split and serving all go through
the two, so training and serving rank the same numbers; the pipeline publishes exactly these
tables for serving (`recommend_online_features`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from retail_assets.models.recommend import candidates as C
from retail_assets.models.recommend.online import FEATURES, PER_SOURCE, SOURCES, Candidates

__all__ = ["FEATURES", "SOURCES", "candidate_features", "labels", "source_tables"]


def source_tables(
    events: pl.DataFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    at: datetime,
    content: pl.DataFrame | None = None,
    launched_only: bool = True,
) -> dict[str, pl.DataFrame]:
    """Everything a query needs, as of `at` (engagements strictly before it): the tables
    `online.Candidates` indexes, and what the pipeline publishes for serving. `content`: item
    neighbours by embedding (`candidates.content_neighbours`); none: no content source. With
    `launched_only` (a past time) the neighbours are cut to the items launched before `at`;
    serving keeps the whole catalog (a SKU landed today, launching tomorrow, is shown)."""
    before = events.filter(pl.col("ts") < at)
    window = lambda days: before.filter(pl.col("ts") >= at - timedelta(days=days))  # noqa: E731
    items = (
        products.select(
            "sku",
            pl.col("category").cast(pl.String),
            pl.col("list_price").cast(pl.Float64),
            "launch_date",
            "discontinued_date",
            pl.col("list_price").cast(pl.Float64).alias("item_list_price"),
            (pl.lit(at.date()) - pl.col("launch_date"))
            .dt.total_days()
            .cast(pl.Float64)
            .alias("item_days_since_launch"),
        )
        .join(
            window(28).group_by("sku").agg(pl.col("weight").sum().alias("popularity_28d")),
            on="sku",
            how="left",
        )
        .join(
            window(7).group_by("sku").agg(pl.col("weight").sum().alias("popularity_7d")),
            on="sku",
            how="left",
        )
        .join(
            window(90)
            .group_by("sku")
            .agg(
                pl.len().cast(pl.Float64).alias("item_engagements_90d"),
                (pl.col("weight") == C.ENGAGEMENT_WEIGHTS["purchase"])
                .mean()
                .alias("item_purchase_share_90d"),
            ),
            on="sku",
            how="left",
        )
    )
    engaged = before.filter(pl.col("customer_id").is_not_null()).join(
        products.select(
            "sku", pl.col("category").cast(pl.String), pl.col("list_price").cast(pl.Float64)
        ),
        on="sku",
        how="left",
    )
    activity = engaged.group_by("customer_id").agg(
        pl.len().cast(pl.Float64).alias("user_engagements"),
        ((pl.lit(at) - pl.col("ts").max()).dt.total_seconds() / 86400.0).alias(
            "user_days_since_last"
        ),
        pl.col("list_price").mean().alias("user_avg_price"),
    )
    users = customers.select(
        "customer_id", pl.col("segment").cast(pl.String), pl.col("region").cast(pl.String)
    ).join(activity, on="customer_id", how="full", coalesce=True)
    affinity = (
        engaged.group_by("customer_id", "category")
        .agg(pl.len().alias("n"))
        .with_columns(
            (pl.col("n") / pl.col("n").sum().over("customer_id")).alias("user_category_affinity")
        )
        .drop("n")
    )
    if content is not None and launched_only:
        content = content_as_of(content, products, at)
    no_pairs = pl.DataFrame(schema={"sku_a": pl.String, "sku_b": pl.String, "score": pl.Float64})
    return {
        "items": items,
        "history": C.history(events, at).select("customer_id", "sku", "score"),
        "popularity": C.popularity(events, customers, at),
        "cooccurrence": C.cooccurrence(events, at),
        "content": content if content is not None else no_pairs,
        "users": users,
        "affinity": affinity,
    }


def candidate_features(
    events: pl.DataFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    who: pl.DataFrame,
    at: datetime,
    content: pl.DataFrame | None = None,
    per_source: int = PER_SOURCE,
) -> pl.DataFrame:
    """customer_id, sku, source and FEATURES of every candidate of the customers in `who`,
    as of `at`: the same `Candidates.query` serving runs per request."""
    tables = source_tables(events, customers, products, at, content)
    return Candidates(tables, at, per_source).frame(who["customer_id"].to_list())


def content_as_of(
    content: pl.DataFrame | None, products: pl.DataFrame, at: datetime
) -> pl.DataFrame | None:
    """Content neighbours among the items launched before `at` (a later item did not exist)."""
    if content is None:
        return None
    launched = products.filter(pl.col("launch_date") < at.date()).select("sku")
    return content.join(launched, left_on="sku_a", right_on="sku", how="semi").join(
        launched, left_on="sku_b", right_on="sku", how="semi"
    )


def labels(table: pl.DataFrame, events: pl.DataFrame, at: datetime, days: int) -> pl.DataFrame:
    """The table with `relevance`: the strongest engagement (purchase 3, add to cart 2, click
    1, none 0) the customer had with the item in [at, at + days)."""
    later = (
        events.filter(pl.col("ts") >= at, pl.col("ts") < at + timedelta(days=days))
        .group_by("customer_id", "sku")
        .agg(pl.col("weight").max().alias("relevance"))
    )
    return table.join(later, on=["customer_id", "sku"], how="left").with_columns(
        pl.col("relevance").fill_null(0.0)
    )
