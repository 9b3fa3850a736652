"""Offline evaluation of recommendations on a later, held-out window.

The split is a time: candidates and features come from engagements before it, relevance from
what each customer engaged with (clicked, carted or bought) in the window after it. Every
customer with at least one engagement in the window is a query, so recall counts what a
recommender never surfaced, not only what it ranked badly.

Metrics per query, averaged: NDCG@10 (binary relevance, log2 discount), recall@20 (share of
the customer's window items in the top 20), MRR (1 / rank of the first relevant item, 0 when
none in the list). Over the whole run: catalog coverage (share of the active catalog
recommended to anyone) and the share of recommended slots holding new items (launched within
NEW_ITEM_DAYS before the split). Reported overall, per customer segment, and for returning
(engaged before the split) against new customers.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

EVAL_DAYS = 28
NEW_ITEM_DAYS = 30
METRICS = ("ndcg_at_10", "recall_at_20", "mrr")


def targets(events: pl.DataFrame, at: datetime, days: int = EVAL_DAYS) -> pl.DataFrame:
    """customer_id, sku: what each known customer engaged with in [at, at + days)."""
    return (
        events.filter(
            pl.col("customer_id").is_not_null(),
            pl.col("ts") >= at,
            pl.col("ts") < at + timedelta(days=days),
        )
        .select("customer_id", "sku")
        .unique()
    )


def per_query(
    recommended: pl.DataFrame, relevant: pl.DataFrame, sizes: pl.DataFrame | None = None
) -> pl.DataFrame:
    """customer_id, ndcg_at_10, recall_at_20, mrr for every customer in `relevant`
    (`recommended`: customer_id, sku, rank from 1). `sizes` (customer_id, n_relevant) says
    how many items each customer engaged with when `relevant` lists only some of them (those
    among the candidates); its customers are the queries then."""
    hits = recommended.join(
        relevant.select("customer_id", "sku").with_columns(pl.lit(True).alias("hit")),
        on=["customer_id", "sku"],
        how="left",
    ).with_columns(pl.col("hit").fill_null(False))
    gains = hits.group_by("customer_id").agg(
        (pl.col("hit") & (pl.col("rank") <= 10))
        .cast(pl.Float64)
        .truediv((pl.col("rank") + 1).log(2))
        .sum()
        .alias("dcg"),
        (pl.col("hit") & (pl.col("rank") <= 20)).sum().alias("hits_20"),
        pl.col("rank").filter(pl.col("hit")).min().alias("first_hit"),
    )
    if sizes is None:
        sizes = relevant.group_by("customer_id").agg(pl.len().alias("n_relevant"))
    ideal_discounts = np.concatenate([[0.0], np.cumsum(1 / np.log2(np.arange(2, 12)))])
    out = sizes.join(gains, on="customer_id", how="left").with_columns(
        pl.col("n_relevant")
        .clip(upper_bound=10)
        .map_elements(lambda n: float(ideal_discounts[n]), return_dtype=pl.Float64)
        .alias("idcg")
    )
    return out.select(
        "customer_id",
        (pl.col("dcg").fill_null(0.0) / pl.col("idcg")).alias("ndcg_at_10"),
        (pl.col("hits_20").fill_null(0) / pl.col("n_relevant")).alias("recall_at_20"),
        (1.0 / pl.col("first_hit")).fill_null(0.0).alias("mrr"),
    )


def evaluate(
    recommended: pl.DataFrame,
    relevant: pl.DataFrame,
    customers: pl.DataFrame,
    returning: set[str],
    products: pl.DataFrame,
    at: datetime,
) -> dict:
    """Overall, per segment and new vs returning metrics, coverage and new-item share."""
    queries = (
        per_query(recommended, relevant)
        .join(customers.select("customer_id", "segment"), on="customer_id", how="left")
        .with_columns(pl.col("customer_id").is_in(list(returning)).alias("returning"))
    )

    def summary(frame: pl.DataFrame) -> dict:
        return {
            "queries": frame.height,
            **{m: float(frame[m].mean()) if frame.height else None for m in METRICS},
        }

    day = at.date()
    active = products.filter(
        pl.col("launch_date") < day,
        pl.col("discontinued_date").is_null() | (pl.col("discontinued_date") >= day),
    )
    new_cutoff: date = day - timedelta(days=NEW_ITEM_DAYS)
    new_items = set(active.filter(pl.col("launch_date") >= new_cutoff)["sku"].to_list())
    shown = recommended.join(relevant.select("customer_id").unique(), on="customer_id")
    return {
        "overall": summary(queries),
        "by_segment": {
            str(s): summary(part) for (s,), part in queries.group_by("segment", maintain_order=True)
        },
        "returning": summary(queries.filter(pl.col("returning"))),
        "new_customers": summary(queries.filter(~pl.col("returning"))),
        "coverage": shown["sku"].n_unique() / max(active.height, 1),
        "new_item_share": float(shown["sku"].is_in(list(new_items)).mean())
        if shown.height
        else 0.0,
    }
