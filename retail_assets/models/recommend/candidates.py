"""Candidate sources for recommendations, each computed as of a time from the clickstream.

Engagement is what a shopper did with an item beyond seeing it: a click (weight 1), an add to
cart (2), a purchase (3); impressions are exposure, not interest. Every source is a function
of the engagements before `until` only, so the same code builds serving's tables (until now)
and the evaluation's (until the split), and the evaluation cannot leak.

* popularity: engagement of the last POPULARITY_DAYS per customer segment x region, and
  overall (for visitors without a known segment);
* history: the customer's own engaged items, decayed by HISTORY_HALF_LIFE_DAYS;
* co-occurrence: items engaged in the same session, scored by the weaker of the two
  engagements summed over shared sessions (a pair bought together outranks a pair merely
  browsed together), top COOCCURRENCE_TOP partners per item;
* content: each item's nearest items by the cosine of their product embeddings (the search
  index's HNSW graph), so an item nobody engaged with yet (a new SKU) is a candidate as soon
  as the index holds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

ENGAGEMENT_WEIGHTS = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
# Popularity follows what is selling now: four weeks is long enough for the tail of a
# 500-SKU catalog to have engagements, short enough to follow a season.
POPULARITY_DAYS = 28
# A shopper's interest in an item they engaged with halves every 30 days.
HISTORY_HALF_LIFE_DAYS = 30.0
COOCCURRENCE_DAYS = 365
COOCCURRENCE_TOP = 50
# Content neighbours per item: enough to reach a new item from any of a customer's items.
CONTENT_TOP = 20


def engagements(clickstream: pl.DataFrame) -> pl.DataFrame:
    """Clicks, adds to cart and purchases: customer_id (null for visitors), session_id, sku,
    ts, weight."""
    return clickstream.filter(pl.col("event_type").is_in(list(ENGAGEMENT_WEIGHTS))).select(
        "customer_id",
        "session_id",
        "sku",
        pl.col("event_ts").alias("ts"),
        pl.col("event_type")
        .replace_strict(ENGAGEMENT_WEIGHTS, return_dtype=pl.Float64)
        .alias("weight"),
    )


def _before(events: pl.DataFrame, until: datetime, days: int | None = None) -> pl.DataFrame:
    recent = events.filter(pl.col("ts") < until)
    if days is not None:
        recent = recent.filter(pl.col("ts") >= until - timedelta(days=days))
    return recent


def popularity(
    events: pl.DataFrame, customers: pl.DataFrame, until: datetime, days: int = POPULARITY_DAYS
) -> pl.DataFrame:
    """segment, region (both null: overall), sku, score (summed engagement weight)."""
    recent = _before(events, until, days)
    by_group = (
        recent.join(customers.select("customer_id", "segment", "region"), on="customer_id")
        .group_by("segment", "region", "sku")
        .agg(pl.col("weight").sum().alias("score"))
    )
    overall = recent.group_by("sku").agg(pl.col("weight").sum().alias("score"))
    overall = overall.select(
        pl.lit(None, pl.String).alias("segment"),
        pl.lit(None, pl.String).alias("region"),
        "sku",
        "score",
    )
    return pl.concat([by_group.select(overall.columns), overall])


def history(
    events: pl.DataFrame, until: datetime, half_life_days: float = HISTORY_HALF_LIFE_DAYS
) -> pl.DataFrame:
    """customer_id, sku, score: the customer's engagement, each decayed by its age."""
    age_days = (pl.lit(until) - pl.col("ts")).dt.total_seconds() / 86400.0
    return (
        _before(events, until)
        .filter(pl.col("customer_id").is_not_null())
        .with_columns((pl.col("weight") * (0.5 ** (age_days / half_life_days))).alias("score"))
        .group_by("customer_id", "sku")
        .agg(pl.col("score").sum(), pl.col("ts").max().alias("last_ts"))
    )


def cooccurrence(
    events: pl.DataFrame,
    until: datetime,
    days: int = COOCCURRENCE_DAYS,
    top: int = COOCCURRENCE_TOP,
) -> pl.DataFrame:
    """sku_a, sku_b, score: sessions engaging both, weighted by the weaker engagement."""
    per_session = (
        _before(events, until, days).group_by("session_id", "sku").agg(pl.col("weight").max())
    )
    pairs = (
        per_session.join(per_session, on="session_id", suffix="_b")
        .filter(pl.col("sku") != pl.col("sku_b"))
        .group_by(pl.col("sku").alias("sku_a"), "sku_b")
        .agg(pl.min_horizontal("weight", "weight_b").sum().alias("score"))
    )
    return (
        pairs.sort(["sku_a", "score", "sku_b"], descending=[False, True, False])
        .group_by("sku_a", maintain_order=True)
        .head(top)
    )


def content_neighbours(
    index: Any, allowed: Iterable[str] | None = None, top: int = CONTENT_TOP
) -> pl.DataFrame:
    """sku_a, sku_b, score (cosine): each item's `top` nearest items in a loaded search index
    (`search/index.LoadedIndex`: its usearch graph), itself excluded. `allowed` limits both
    sides (e.g. the catalog as it was at a time)."""
    keep = None if allowed is None else set(allowed)
    rows = index.search_batch(index.vectors, min(index.size, top * 2 + 1))
    out: dict[str, list] = {"sku_a": [], "sku_b": [], "score": []}
    for a, neighbours in enumerate(rows):
        if keep is not None and index.sku[a] not in keep:
            continue
        chosen = [
            int(b)
            for b in neighbours
            if int(b) != a and (keep is None or index.sku[int(b)] in keep)
        ][:top]
        scores = index.vectors[chosen] @ index.vectors[a] if chosen else np.empty(0)
        out["sku_a"] += [index.sku[a]] * len(chosen)
        out["sku_b"] += [index.sku[b] for b in chosen]
        out["score"] += [float(v) for v in scores]
    return pl.DataFrame(out, schema={"sku_a": pl.String, "sku_b": pl.String, "score": pl.Float64})


def recommend_popular(
    popular: pl.DataFrame, customers: pl.DataFrame, who: pl.DataFrame, k: int
) -> pl.DataFrame:
    """customer_id, sku, rank (1 = best): the customer's segment x region's top k, filled up
    from the overall ranking when the group has fewer than k items."""
    profile = who.join(
        customers.select("customer_id", "segment", "region"), on="customer_id", how="left"
    )
    grouped = profile.join(
        popular.filter(pl.col("segment").is_not_null()), on=["segment", "region"]
    )
    overall = profile.join(
        popular.filter(pl.col("segment").is_null()).drop("segment", "region"), how="cross"
    )
    ranked = pl.concat(
        [
            grouped.select("customer_id", "sku", pl.col("score"), pl.lit(0).alias("tier")),
            overall.select("customer_id", "sku", pl.col("score"), pl.lit(1).alias("tier")),
        ]
    )
    return _top_k(
        ranked.unique(["customer_id", "sku"], keep="first", maintain_order=False), k, ["tier"]
    )


def related(seen: pl.DataFrame, pairs: pl.DataFrame, who: pl.DataFrame) -> pl.DataFrame:
    """customer_id, sku, score: for the customers in `who`, every item `pairs` (sku_a, sku_b,
    score: co-occurrence or content neighbours) relates to their history, scored by the pair's
    score times the customer's interest in the item it came from, summed."""
    interest = seen.join(who, on="customer_id").select(
        "customer_id", pl.col("sku").alias("sku_a"), pl.col("score").alias("interest")
    )
    return (
        interest.join(pairs, on="sku_a")
        .group_by("customer_id", pl.col("sku_b").alias("sku"))
        .agg((pl.col("score") * pl.col("interest")).sum().alias("score"))
    )


def recommend_related(
    pairs: pl.DataFrame, seen: pl.DataFrame, who: pl.DataFrame, k: int
) -> pl.DataFrame:
    """customer_id, sku, rank: items related to the customer's history by `pairs` (session
    co-occurrence or content neighbours; each partner's score times the customer's interest in
    the item it came from), the history excluded. Customers without history get nothing:
    this is one source alone."""
    scored = related(seen, pairs, who).join(
        seen.select("customer_id", "sku"), on=["customer_id", "sku"], how="anti"
    )
    return _top_k(scored.with_columns(pl.lit(0).alias("tier")), k, ["tier"])


def recommend_history_then_popular(
    seen: pl.DataFrame,
    popular: pl.DataFrame,
    customers: pl.DataFrame,
    who: pl.DataFrame,
    k: int,
) -> pl.DataFrame:
    """customer_id, sku, rank: the customer's own items by decayed interest, then their
    segment x region's popular items (people come back to what they looked at)."""
    own = seen.join(who, on="customer_id").select(
        "customer_id", "sku", "score", pl.lit(0).alias("tier")
    )
    fill = recommend_popular(popular, customers, who, k).select(
        "customer_id",
        "sku",
        (-pl.col("rank")).cast(pl.Float64).alias("score"),
        pl.lit(1).alias("tier"),
    )
    both = pl.concat([own, fill]).sort("tier").unique(["customer_id", "sku"], keep="first")
    return _top_k(both, k, ["tier"])


def _top_k(ranked: pl.DataFrame, k: int, first: list[str]) -> pl.DataFrame:
    return (
        ranked.sort(
            ["customer_id", *first, "score", "sku"],
            descending=[False, *[False] * len(first), True, False],
        )
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1).over("customer_id").alias("rank"))
        .select("customer_id", "sku", "rank")
    )
