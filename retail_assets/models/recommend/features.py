"""The ranker's input: the union of every candidate source for each customer, with user, item
and user-item features, all as of one time (`at`) from engagements before it.

One function builds it for training origins, the evaluation split and (later) serving, so
training and serving rank the same numbers. Each candidate keeps the source that proposed it
first (history, co-occurrence, content similarity, segment popularity, overall popularity),
which is what the API will name.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from retail_assets.models.recommend import candidates as C

# Candidates per source and customer: the ranker sees at most ~4 x this many items per
# query; 50 covers the popular head plus what co-occurrence and history add.
PER_SOURCE = 50
SOURCES = ("history", "cooccurrence", "content", "segment_popularity", "popularity")
FEATURES = [
    "history_score",
    "engaged_before",
    "cooccurrence_score",
    "content_score",
    "segment_popularity",
    "popularity_28d",
    "popularity_7d",
    "item_engagements_90d",
    "item_purchase_share_90d",
    "item_list_price",
    "item_days_since_launch",
    "user_engagements",
    "user_days_since_last",
    "user_price_ratio",
    "user_category_affinity",
]


def _ranked(frame: pl.DataFrame, by: list[str], k: int) -> pl.DataFrame:
    return (
        frame.sort([*by, "score", "sku"], descending=[*([False] * len(by)), True, False])
        .group_by(by, maintain_order=True)
        .head(k)
    )


def candidate_table(
    events: pl.DataFrame,
    customers: pl.DataFrame,
    who: pl.DataFrame,
    at: datetime,
    per_source: int = PER_SOURCE,
    content: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """customer_id, sku, source, and each source's score (0 where it did not propose the
    item) for every customer in `who`. `content`: item neighbours by embedding
    (`candidates.content_neighbours`, of the catalog as of `at`); none: no content source."""
    seen = C.history(events, at)
    popular = C.popularity(events, customers, at)
    pairs = C.cooccurrence(events, at)
    profile = who.join(
        customers.select("customer_id", "segment", "region"), on="customer_id", how="left"
    )
    history = _ranked(seen.join(who, on="customer_id"), ["customer_id"], per_source)
    cooccurring = _ranked(C.related(seen, pairs, who), ["customer_id"], per_source)
    no_content = pl.DataFrame(schema={"sku_a": pl.String, "sku_b": pl.String, "score": pl.Float64})
    similar = _ranked(
        C.related(seen, content if content is not None else no_content, who),
        ["customer_id"],
        per_source,
    )
    group = _ranked(
        profile.join(popular.filter(pl.col("segment").is_not_null()), on=["segment", "region"]),
        ["customer_id"],
        per_source,
    )
    overall = popular.filter(pl.col("segment").is_null()).drop("segment", "region")
    everyone = who.join(
        _ranked(overall.with_columns(pl.lit(1).alias("_")), ["_"], per_source).drop("_"),
        how="cross",
    )
    proposed = pl.concat(
        [
            part.select("customer_id", "sku", pl.lit(source).alias("source"), "score")
            for source, part in zip(
                SOURCES, (history, cooccurring, similar, group, everyone), strict=True
            )
        ]
    )
    first = (
        proposed.with_columns(
            pl.col("source").replace_strict({s: i for i, s in enumerate(SOURCES)}).alias("_order")
        )
        .sort("_order")
        .group_by("customer_id", "sku", maintain_order=True)
        .agg(pl.col("source").first())
    )
    scores = proposed.pivot(on="source", index=["customer_id", "sku"], values="score")
    for source in SOURCES:
        if source not in scores.columns:
            scores = scores.with_columns(pl.lit(None, pl.Float64).alias(source))
    return first.join(scores, on=["customer_id", "sku"]).select(
        "customer_id",
        "sku",
        "source",
        pl.col("history").fill_null(0.0).alias("history_score"),
        pl.col("cooccurrence").fill_null(0.0).alias("cooccurrence_score"),
        pl.col("content").fill_null(0.0).alias("content_score"),
        pl.col("segment_popularity").fill_null(0.0).alias("segment_popularity"),
    )


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


def add_features(
    table: pl.DataFrame,
    events: pl.DataFrame,
    products: pl.DataFrame,
    at: datetime,
) -> pl.DataFrame:
    """The candidate table with FEATURES (float), as of `at`."""
    before = events.filter(pl.col("ts") < at)
    window = lambda days: before.filter(pl.col("ts") >= at - timedelta(days=days))  # noqa: E731
    item = (
        products.select(
            "sku",
            "category",
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
                pl.len().alias("item_engagements_90d"),
                (pl.col("weight") == C.ENGAGEMENT_WEIGHTS["purchase"])
                .mean()
                .alias("item_purchase_share_90d"),
            ),
            on="sku",
            how="left",
        )
    )
    engaged = before.filter(pl.col("customer_id").is_not_null()).join(
        products.select("sku", "category", pl.col("list_price").cast(pl.Float64)),
        on="sku",
        how="left",
    )
    user = engaged.group_by("customer_id").agg(
        pl.len().cast(pl.Float64).alias("user_engagements"),
        ((pl.lit(at) - pl.col("ts").max()).dt.total_seconds() / 86400.0).alias(
            "user_days_since_last"
        ),
        pl.col("list_price").mean().alias("user_avg_price"),
    )
    affinity = (
        engaged.group_by("customer_id", "category")
        .agg(pl.len().alias("n"))
        .with_columns(
            (pl.col("n") / pl.col("n").sum().over("customer_id")).alias("user_category_affinity")
        )
        .drop("n")
    )
    frame = (
        table.join(item, on="sku", how="left")
        .join(user, on="customer_id", how="left")
        .join(affinity, on=["customer_id", "category"], how="left")
        .with_columns(
            (pl.col("history_score") > 0).cast(pl.Float64).alias("engaged_before"),
            (pl.col("item_list_price") / pl.col("user_avg_price")).alias("user_price_ratio"),
        )
    )
    return frame.with_columns([pl.col(c).cast(pl.Float64) for c in FEATURES]).with_columns(
        [
            pl.col(c).fill_null(0.0)
            for c in FEATURES
            if c not in ("user_days_since_last", "user_price_ratio")
        ]
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
