"""The recommender's candidates and features for one query: the ONE definition, used by
training (every query of every origin), the evaluation and serving (one request).

Why one per-query implementation and not a table computation. Serving answers a request in
about a millisecond: it cannot run a dataframe pipeline per request, and a second, faster
copy of the features for serving is exactly the training-serving skew this platform exists
to prevent. So the expensive, history-wide part is computed by polars as tables as of a time
(`features.source_tables`: each customer's decayed history, popularity per segment x region,
co-occurrence and content neighbours per item, item and user aggregates) and published for
serving as they are; the per-query part (the union of the sources for a customer, each tagged
with the source that proposed it first, and the user-item features) is this class, in numpy
over integer item codes. Training runs its queries through the same `Candidates.query` (about
a few thousand queries per origin at `default`, well under a second each origin).

Context (serving only). A shopper on a product page or with a cart has interests the history
does not show yet: the current SKU counts as a fresh click, each cart item as a fresh add to
cart (ENGAGEMENT_WEIGHTS), added to the history's interest for the co-occurrence and content
sources only. The context items themselves are never recommended. The ranker was trained
without context (the history has no "current page"), so context changes which items are
candidates and their co-occurrence/content scores, not the meaning of a feature.

Imports stay light (numpy, polars): serving imports this module without the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

# Candidates per source and query: the ranker sees at most ~4 x this many items per query;
# 50 covers the popular head plus what co-occurrence, content and history add.
PER_SOURCE = 50
SOURCES = ("history", "cooccurrence", "content", "segment_popularity", "popularity")
ITEM_FEATURES = [
    "popularity_28d",
    "popularity_7d",
    "item_engagements_90d",
    "item_purchase_share_90d",
    "item_list_price",
    "item_days_since_launch",
]
FEATURES = [
    "history_score",
    "engaged_before",
    "cooccurrence_score",
    "content_score",
    "segment_popularity",
    *ITEM_FEATURES,
    "user_engagements",
    "user_days_since_last",
    "user_price_ratio",
    "user_category_affinity",
]
# Context items count as fresh engagements of these weights (candidates.ENGAGEMENT_WEIGHTS).
CONTEXT_WEIGHTS = {"current": 1.0, "cart": 2.0}
# What a query fell back to, by what it had to go on.
FALLBACKS = {
    None: "personalised: the customer's own history",
    "context": "no history: items related to the current SKU and cart, then segment popularity",
    "segment_popularity": "no history and no context: popular in the customer's segment x region",
    "popularity": "unknown customer, no context: popular overall",
}

_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_F = np.empty(0, dtype=np.float64)


def _top(idx: np.ndarray, score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best by score (ties: lower code, i.e. SKU order)."""
    order = np.lexsort((idx, -score))[:k]
    return idx[order], score[order]


def _spans(keys: pl.Series) -> dict[str, tuple[int, int]]:
    """key -> (start, end) of its rows in `keys` (sorted by key)."""
    runs = keys.rle()
    ends = runs.struct.field("len").cum_sum().to_list()
    values = runs.struct.field("value").to_list()
    starts = [0, *ends[:-1]]
    return dict(zip(values, zip(starts, ends, strict=True), strict=True))


class _Pairs:
    """Item -> related items (co-occurrence or content neighbours) over item codes, as padded
    rows: row i holds item i's partners (code n pads) and their scores (0 pads), so a query's
    related items are one gather and one bincount."""

    def __init__(self, frame: pl.DataFrame, code: dict[str, int], n: int):
        a = np.array([code.get(s, -1) for s in frame["sku_a"].to_list()], dtype=np.int64)
        b = np.array([code.get(s, -1) for s in frame["sku_b"].to_list()], dtype=np.int64)
        score = frame["score"].to_numpy().astype(np.float64)
        keep = (a >= 0) & (b >= 0)
        a, b, score = a[keep], b[keep], score[keep]
        order = np.argsort(a, kind="stable")
        a, b, score = a[order], b[order], score[order]
        counts = np.bincount(a, minlength=n)
        width = int(counts.max()) if len(a) else 0
        slot = np.arange(len(a)) - np.repeat(np.cumsum(counts) - counts, counts)
        self.partner = np.full((n, width), n, dtype=np.int64)
        self.score = np.zeros((n, width))
        self.partner[a, slot] = b
        self.score[a, slot] = score
        self.n = n

    def related(
        self, items: np.ndarray, interest: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k items most related to `items` weighted by `interest`: each partner scores the
        pair's score times the interest in the item it came from, summed over the items."""
        if len(items) == 0 or self.partner.shape[1] == 0:
            return _EMPTY_I, _EMPTY_F
        partner = self.partner[items].ravel()
        weights = (self.score[items] * interest[:, None]).ravel()
        summed = np.bincount(partner, weights=weights, minlength=self.n + 1)[: self.n]
        touched = np.flatnonzero(np.bincount(partner, minlength=self.n + 1)[: self.n])
        return _top(touched, summed[touched], k)


@dataclass
class Query:
    """One query's candidates: item codes, the source that proposed each first (index into
    SOURCES), the FEATURES matrix, and what the query fell back to."""

    items: np.ndarray
    sources: np.ndarray
    features: np.ndarray
    fallback: str | None


class Candidates:
    """Candidate generation and features for single queries, from the tables of
    `features.source_tables` (all as of one time `at`)."""

    def __init__(self, tables: dict[str, pl.DataFrame], at: datetime, per_source: int = PER_SOURCE):
        self.at = at
        self.per_source = per_source
        items = tables["items"].sort("sku")
        self.skus: list[str] = items["sku"].to_list()
        self.code = {sku: i for i, sku in enumerate(self.skus)}
        n = self.n = len(self.skus)
        categories = items["category"].cast(pl.String).fill_null("")
        self.categories: list[str] = sorted(set(categories.to_list()))
        category_code = {c: i for i, c in enumerate(self.categories)}
        self.category = np.array([category_code[c] for c in categories.to_list()], dtype=np.int64)
        self.item_matrix = (
            items.select([pl.col(c).cast(pl.Float64).fill_null(0.0) for c in ITEM_FEATURES])
            .to_numpy()
            .reshape(n, len(ITEM_FEATURES))
        )
        self.list_price = items["list_price"].cast(pl.Float64).to_numpy()

        history = (
            tables["history"]
            .with_columns(
                pl.col("sku")
                .replace_strict(self.code, default=-1, return_dtype=pl.Int64)
                .alias("i")
            )
            .filter(pl.col("i") >= 0)
            .sort(["customer_id", "score", "i"], descending=[False, True, False])
        )
        # Each customer's items as one span of two flat arrays (best first).
        self.history_items = history["i"].to_numpy()
        self.history_scores = history["score"].to_numpy().astype(np.float64)
        self.history_span: dict[str, tuple[int, int]] = _spans(history["customer_id"])
        self.cooccurrence = _Pairs(tables["cooccurrence"], self.code, n)
        self.content = _Pairs(tables["content"], self.code, n)

        popularity = tables["popularity"].with_columns(
            pl.col("sku").replace_strict(self.code, default=-1, return_dtype=pl.Int64).alias("i")
        )
        popularity = popularity.filter(pl.col("i") >= 0)
        self.group_popular: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for (segment, region), part in popularity.filter(pl.col("segment").is_not_null()).group_by(
            "segment", "region"
        ):
            self.group_popular[(segment, region)] = _top(
                part["i"].to_numpy(), part["score"].to_numpy().astype(np.float64), per_source
            )
        overall = popularity.filter(pl.col("segment").is_null())
        self.popular = _top(
            overall["i"].to_numpy(), overall["score"].to_numpy().astype(np.float64), per_source
        )

        users = tables["users"]
        self.users: dict[str, tuple] = {
            row[0]: row[1:]
            for row in users.select(
                "customer_id",
                "segment",
                "region",
                "user_engagements",
                "user_days_since_last",
                "user_avg_price",
            ).iter_rows()
        }
        affinity = (
            tables["affinity"]
            .with_columns(
                pl.col("category")
                .cast(pl.String)
                .replace_strict(category_code, default=-1, return_dtype=pl.Int64)
                .alias("c")
            )
            .filter(pl.col("c") >= 0)
        )
        # Each customer's share of engagement per category: a row of a dense matrix.
        customers = affinity["customer_id"].unique(maintain_order=True)
        self.affinity_row = {c: i for i, c in enumerate(customers.to_list())}
        self.affinity = np.zeros((len(customers), len(self.categories)))
        rows = affinity["customer_id"].replace_strict(self.affinity_row, return_dtype=pl.Int64)
        self.affinity[rows.to_numpy(), affinity["c"].to_numpy()] = affinity[
            "user_category_affinity"
        ].to_numpy()

    # -- one query ------------------------------------------------------------------------------

    def query(self, customer_id: str | None, context: dict[int, float] | None = None) -> Query:
        """Candidates and features for one customer (None: an anonymous visitor), with
        `context` (item code -> interest weight, see CONTEXT_WEIGHTS) added to the history's
        interest for the related-item sources. Context items are not candidates."""
        k = self.per_source
        start, end = self.history_span.get(customer_id, (0, 0))
        seen_items = self.history_items[start:end]
        seen_scores = self.history_scores[start:end]
        user = self.users.get(customer_id)
        segment, region = (user[0], user[1]) if user else (None, None)
        items, interest = seen_items, seen_scores
        if context:
            items = np.concatenate([items, np.fromiter(context, np.int64, len(context))])
            interest = np.concatenate(
                [interest, np.fromiter(context.values(), float, len(context))]
            )
        parts = (
            (seen_items[:k], seen_scores[:k]),
            self.cooccurrence.related(items, interest, k),
            self.content.related(items, interest, k),
            self.group_popular.get((segment, region), (_EMPTY_I, _EMPTY_F)),
            self.popular,
        )
        first = np.full(self.n, -1, dtype=np.int8)
        scores = np.zeros((4, self.n))
        for s in range(len(SOURCES) - 1, -1, -1):
            first[parts[s][0]] = s
        for s in range(4):
            scores[s, parts[s][0]] = parts[s][1]
        if context:
            first[list(context)] = -1
        cand = np.flatnonzero(first >= 0)
        if len(seen_items):
            fallback = None
        elif context:
            fallback = "context"
        elif segment is not None and len(parts[3][0]):
            fallback = "segment_popularity"
        else:
            fallback = "popularity"
        return Query(cand, first[cand], self._features(cand, scores, customer_id, user), fallback)

    def _features(
        self, cand: np.ndarray, scores: np.ndarray, customer_id: str | None, user: tuple | None
    ) -> np.ndarray:
        out = np.empty((len(cand), len(FEATURES)))
        source_scores = scores[:, cand].T  # history, co-occurrence, content, segment popularity
        out[:, 0] = source_scores[:, 0]
        out[:, 1] = source_scores[:, 0] > 0
        out[:, 2:5] = source_scores[:, 1:4]
        out[:, 5:11] = self.item_matrix[cand]
        engagements, days_since_last, avg_price = user[2:] if user else (None, None, None)
        out[:, 11] = engagements or 0.0
        out[:, 12] = np.nan if days_since_last is None else days_since_last
        out[:, 13] = out[:, 9] / avg_price if avg_price else np.nan
        row = self.affinity_row.get(customer_id)
        out[:, 14] = self.affinity[row, self.category[cand]] if row is not None else 0.0
        return out

    # -- many queries (training, evaluation) ---------------------------------------------------

    def frame(self, customer_ids: list[str]) -> pl.DataFrame:
        """customer_id, sku, source and FEATURES for every candidate of every customer."""
        queries = [self.query(c) for c in customer_ids]
        sizes = [len(q.items) for q in queries]
        items = np.concatenate([q.items for q in queries]) if queries else _EMPTY_I
        sources = np.concatenate([q.sources for q in queries]) if queries else _EMPTY_I
        matrix = (
            np.vstack([q.features for q in queries]) if queries else np.empty((0, len(FEATURES)))
        )
        return pl.DataFrame(
            {
                "customer_id": pl.Series(customer_ids, dtype=pl.String).gather(
                    np.repeat(np.arange(len(customer_ids)), sizes)
                ),
                "sku": pl.Series(self.skus, dtype=pl.String).gather(items),
                "source": pl.Series(SOURCES, dtype=pl.String).gather(sources.astype(np.int64)),
                **{name: matrix[:, j] for j, name in enumerate(FEATURES)},
            }
        )
