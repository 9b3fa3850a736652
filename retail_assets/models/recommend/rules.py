"""Business rules applied after ranking, each change named.

The ranker orders what a customer may like; the shop decides what may be shown. In order:

1. `discontinued`: an item discontinued on or before the recommendation day is never shown;
2. `out_of_stock`: with the inventory feed, an item with no units on hand in any store at the
   latest snapshot on or before that day is never shown (without the feed: not applied);
3. `diversity_cap`: at most `max_per_category` items of one category, so one mission does not
   fill the page; the items it pushes out make room for the next ranked ones.

`apply_rules` returns the final top k and, per customer, every item a rule removed with the
rule's name: what the API reports as "which rule changed the list".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

# Three of one category in a top 10 keeps a page on the customer's mission without making it
# the whole page; a configuration, not a law (Rules.max_per_category).
MAX_PER_CATEGORY = 3


@dataclass(frozen=True)
class Rules:
    max_per_category: int | None = MAX_PER_CATEGORY
    in_stock_only: bool = True


def stock_on(inventory: pl.DataFrame | None, day: date) -> pl.DataFrame | None:
    """sku, on_hand: units over all stores at the latest snapshot on or before `day`."""
    if inventory is None or inventory.height == 0:
        return None
    known = inventory.filter(pl.col("snapshot_date") <= day)
    if known.height == 0:
        return None
    latest = known.filter(pl.col("snapshot_date") == pl.col("snapshot_date").max())
    return latest.group_by("sku").agg(pl.col("on_hand_units").sum().alias("on_hand"))


def apply_rules(
    ranked: pl.DataFrame,
    products: pl.DataFrame,
    day: date,
    k: int,
    rules: Rules = Rules(),
    inventory: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(`customer_id, sku, rank` of the final top k, `customer_id, sku, rule` of what the rules
    removed) from `ranked` (customer_id, sku, rank: every candidate in ranked order)."""
    frame = ranked.join(
        products.select("sku", "category", "discontinued_date"), on="sku", how="left"
    ).with_columns(pl.lit(None, pl.String).alias("rule"))
    frame = frame.with_columns(
        pl.when(pl.col("discontinued_date").is_not_null() & (pl.col("discontinued_date") <= day))
        .then(pl.lit("discontinued"))
        .otherwise(pl.col("rule"))
        .alias("rule")
    )
    stock = stock_on(inventory, day) if rules.in_stock_only else None
    if stock is not None:
        frame = frame.join(stock, on="sku", how="left").with_columns(
            pl.when(pl.col("rule").is_null() & (pl.col("on_hand").fill_null(0) <= 0))
            .then(pl.lit("out_of_stock"))
            .otherwise(pl.col("rule"))
            .alias("rule")
        )
    frame = frame.sort("customer_id", "rank")
    if rules.max_per_category is not None:
        place = (
            pl.col("rank")
            .rank("ordinal")
            .over(["customer_id", pl.col("category").fill_null(""), pl.col("rule").is_null()])
        )
        frame = frame.with_columns(
            pl.when(pl.col("rule").is_null() & (place > rules.max_per_category))
            .then(pl.lit("diversity_cap"))
            .otherwise(pl.col("rule"))
            .alias("rule")
        )
    shown = (
        frame.filter(pl.col("rule").is_null()).group_by("customer_id", maintain_order=True).head(k)
    )
    # A removal changed the list when the item ranked above the last one shown (or fewer than
    # k were left to show).
    last = shown.group_by("customer_id").agg(
        pl.when(pl.len() >= k).then(pl.col("rank").max()).otherwise(None).alias("_last")
    )
    removed = frame.join(last, on="customer_id", how="left").filter(
        pl.col("rule").is_not_null()
        & (pl.col("_last").is_null() | (pl.col("rank") < pl.col("_last")))
    )
    return (
        shown.with_columns(pl.int_range(1, pl.len() + 1).over("customer_id").alias("rank")).select(
            "customer_id", "sku", "rank"
        ),
        removed.select("customer_id", "sku", "rule"),
    )
