"""Business rules applied after ranking, each change named.

The ranker orders what a customer may like; the shop decides what may be shown. In order:

1. `discontinued`: an item discontinued on or before the recommendation day is never shown;
2. `out_of_stock`: with the inventory feed, an item with no units on hand in any store at the
   latest snapshot on or before that day is never shown (without the feed: not applied; an
   item the snapshot does not list, e.g. launched since, is not judged);
3. `diversity_cap`: at most `max_per_category` items of one category, so one mission does not
   fill the page; the items it pushes out make room for the next ranked ones.

`RuleBook.apply` returns one list's final top k and every item a rule removed with the rule's
name: what the API reports as "which rule changed the list". Serving applies it per request;
`apply_rules` runs it over many customers' lists for the offline evaluation. Runtime only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

# Three of one category in a top 10 keeps a page on the customer's mission without making it
# the whole page; a configuration, not a law (Rules.max_per_category).
MAX_PER_CATEGORY = 3
_EPOCH = date(1970, 1, 1)
_NEVER = 10**7  # the epoch day of "not discontinued"


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


class RuleBook:
    """The rules over a catalog's item codes: the one implementation, applied per list by
    serving (`RuleBook.apply`) and over many lists by the offline evaluation (`apply_rules`)."""

    def __init__(
        self,
        skus: list[str],
        categories: list[str | None],
        discontinued: list[date | None],
        stock: pl.DataFrame | None = None,
    ):
        self.skus = skus
        code = {sku: i for i, sku in enumerate(skus)}
        names = {c: i for i, c in enumerate(sorted({c or "" for c in categories}))}
        # Python lists for the per-item loop of `apply` (a list index is ~10x a numpy one).
        self._category = [names[c or ""] for c in categories]
        self._discontinued_day = [_NEVER if d is None else (d - _EPOCH).days for d in discontinued]
        # Units on hand over all stores at the latest snapshot; None: no inventory feed, the
        # rule cannot apply. An item the snapshot lacks is unknown (NaN), not out of stock: a
        # product launched after the last snapshot has no inventory record yet, and hiding it
        # until the next one would keep every new SKU out of recommendations for days (found
        # by `retail simulate`'s new_product_wave).
        self.on_hand: np.ndarray | None = None
        if stock is not None:
            self.on_hand = np.full(len(skus), np.nan)
            for sku, units in stock.select("sku", "on_hand").iter_rows():
                if sku in code:
                    self.on_hand[code[sku]] = units or 0
        self._on_hand = self.on_hand.tolist() if self.on_hand is not None else None

    @classmethod
    def from_products(cls, products: pl.DataFrame, stock: pl.DataFrame | None) -> RuleBook:
        catalog = products.sort("sku")
        return cls(
            catalog["sku"].to_list(),
            catalog["category"].cast(pl.String).to_list(),
            catalog["discontinued_date"].to_list(),
            stock,
        )

    def apply(
        self,
        ranked: Iterable[int],
        k: int,
        day: date,
        rules: Rules = Rules(),
    ) -> tuple[list[int], list[tuple[int, str]]]:
        """(the first k items of `ranked` that every rule lets through, and each item a rule
        removed above the last one shown, with the rule's name)."""
        today = (day - _EPOCH).days
        stock = self._on_hand if rules.in_stock_only else None
        cap = rules.max_per_category
        categories, discontinued = self._category, self._discontinued_day
        shown: list[int] = []
        removed: list[tuple[int, str]] = []
        per_category: dict[int, int] = {}
        for item in ranked:
            if len(shown) >= k:
                break
            category = categories[item]
            if discontinued[item] <= today:
                removed.append((item, "discontinued"))
            elif stock is not None and stock[item] <= 0:
                removed.append((item, "out_of_stock"))
            elif cap is not None and per_category.get(category, 0) >= cap:
                removed.append((item, "diversity_cap"))
            else:
                shown.append(item)
                per_category[category] = per_category.get(category, 0) + 1
        return shown, removed


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
    book = RuleBook.from_products(products, stock_on(inventory, day))
    code = {sku: i for i, sku in enumerate(book.skus)}
    shown: dict[str, list] = {"customer_id": [], "sku": [], "rank": []}
    removed: dict[str, list] = {"customer_id": [], "sku": [], "rule": []}
    for (customer,), part in ranked.sort("customer_id", "rank").group_by(
        "customer_id", maintain_order=True
    ):
        items, dropped = book.apply([code[s] for s in part["sku"].to_list()], k, day, rules)
        shown["customer_id"] += [customer] * len(items)
        shown["sku"] += [book.skus[i] for i in items]
        shown["rank"] += list(range(1, len(items) + 1))
        removed["customer_id"] += [customer] * len(dropped)
        removed["sku"] += [book.skus[i] for i, _ in dropped]
        removed["rule"] += [rule for _, rule in dropped]
    return (
        pl.DataFrame(shown, schema={"customer_id": pl.String, "sku": pl.String, "rank": pl.Int64}),
        pl.DataFrame(
            removed, schema={"customer_id": pl.String, "sku": pl.String, "rule": pl.String}
        ),
    )
