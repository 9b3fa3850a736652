"""Damage a generated feed the way real exports get damaged, to exercise the quality checks.

The landing zone computes control totals on the clean frame and then calls ``inject_faults``,
so a check that compares the two can tell what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import polars as pl

from retail_assets.sources.contracts import FEEDS
from retail_assets.sources.synthetic.config import substream

FAULT_KINDS = (
    "nulls",
    "negative_quantities",
    "duplicated_days",
    "prices_in_cents",
    "renamed_column",
)
NULL_SHARE = 0.03
NEGATIVE_SHARE = 0.01
DUPLICATED_DAY_SHARE = 0.02

# Columns a broken export leaves empty.
NULL_COLUMNS = {
    "sales": ("units_sold", "unit_price", "store_id"),
    "payments": ("amount", "card_id", "customer_id"),
    "inventory": ("on_hand_units", "store_id"),
    "competitor_prices": ("competitor_price",),
    "clickstream": ("sku", "event_type"),
    "products": ("list_price", "department"),
    "stores": ("format",),
    "customers": ("segment", "signup_date"),
    "calendar": ("day_of_week",),
    "fraud_labels": ("is_fraud",),
    "policy_documents": ("body",),
}
# Quantity column that turns negative, and columns that flip sign with it.
NEGATIVE_COLUMNS = {
    "sales": ("units_sold", ("revenue",)),
    "payments": ("amount", ()),
    "inventory": ("on_hand_units", ()),
}
DATE_COLUMNS = {
    "sales": "date",
    "inventory": "snapshot_date",
    "competitor_prices": "date",
    "payments": "event_ts",
    "clickstream": "event_ts",
    "calendar": "date",
}
CENTS_COLUMNS = {
    "sales": ("unit_price", "revenue"),
    "payments": ("amount",),
    "competitor_prices": ("competitor_price",),
    "products": ("list_price", "unit_cost"),
}
RENAMES = {
    "sales": ("units_sold", "qty_sold"),
    "payments": ("amount", "amount_charged"),
    "inventory": ("on_hand_units", "on_hand"),
    "competitor_prices": ("competitor_price", "price"),
    "clickstream": ("event_type", "type"),
    "products": ("list_price", "price"),
    "stores": ("format", "store_format"),
    "customers": ("segment", "customer_segment"),
    "calendar": ("is_holiday", "holiday_flag"),
    "fraud_labels": ("is_fraud", "fraud"),
    "policy_documents": ("body", "content"),
}


def _pick_rows(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """A boolean mask with ``share`` of rows set, and at least one when there are rows."""
    mask = rng.random(n) < share
    if n and not mask.any():
        mask[rng.integers(n)] = True
    return mask


def _day(frame: pl.DataFrame, feed: str) -> pl.Expr:
    column = DATE_COLUMNS[feed]
    return pl.col(column).dt.date() if frame.schema[column] != pl.Date else pl.col(column)


def _nulls(frame: pl.DataFrame, feed: str, rng: np.random.Generator) -> pl.DataFrame:
    """A few percent of rows lose the value of each listed column (independently)."""
    return frame.with_columns(
        pl.when(pl.Series(_pick_rows(rng, frame.height, NULL_SHARE)))
        .then(None)
        .otherwise(pl.col(column))
        .alias(column)
        for column in NULL_COLUMNS[feed]
    )


def _negative(frame: pl.DataFrame, feed: str, rng: np.random.Generator) -> pl.DataFrame:
    """About 1% of rows with a positive quantity get it (and its companions) negated."""
    column, companions = NEGATIVE_COLUMNS[feed]
    positive = (frame[column] > 0).fill_null(False).to_numpy()
    flip = _pick_rows(rng, frame.height, NEGATIVE_SHARE) & positive
    if positive.any() and not flip.any():
        flip[rng.choice(np.flatnonzero(positive))] = True
    mask = pl.Series(flip)
    return frame.with_columns(
        pl.when(mask).then(-pl.col(c)).otherwise(pl.col(c)).alias(c) for c in (column, *companions)
    )


def _duplicated_days(frame: pl.DataFrame, feed: str, rng: np.random.Generator) -> pl.DataFrame:
    """Every row of a few days is delivered twice (a re-sent file appended to the export)."""
    days = frame.select(_day(frame, feed).unique().sort()).to_series()
    if days.len() == 0:
        return frame
    chosen = days.gather(np.flatnonzero(_pick_rows(rng, days.len(), DUPLICATED_DAY_SHARE)))
    return pl.concat([frame, frame.filter(_day(frame, feed).is_in(chosen.implode()))])


def _prices_in_cents(frame: pl.DataFrame, feed: str, rng: np.random.Generator) -> pl.DataFrame:
    """From some day on (or for the whole catalog) money columns are exported in cents."""
    columns = CENTS_COLUMNS[feed]
    if feed in DATE_COLUMNS and frame.height:
        days = frame.select(_day(frame, feed).unique().sort()).to_series()
        cutoff = days[int(rng.uniform(0.6, 0.9) * (days.len() - 1))]
        affected = _day(frame, feed) >= cutoff
    else:
        affected = pl.lit(True)
    return frame.with_columns(
        pl.when(affected).then((pl.col(c) * 100).round(2)).otherwise(pl.col(c)).alias(c)
        for c in columns
    )


def _renamed(frame: pl.DataFrame, feed: str, rng: np.random.Generator) -> pl.DataFrame:
    """Schema drift: the exporter renames a column."""
    old, new = RENAMES[feed]
    return frame.rename({old: new})


_FAULTS: dict[
    str, tuple[dict, Callable[[pl.DataFrame, str, np.random.Generator], pl.DataFrame]]
] = {
    "nulls": (NULL_COLUMNS, _nulls),
    "negative_quantities": (NEGATIVE_COLUMNS, _negative),
    "duplicated_days": (DATE_COLUMNS, _duplicated_days),
    "prices_in_cents": (CENTS_COLUMNS, _prices_in_cents),
    "renamed_column": (RENAMES, _renamed),
}


def supported_faults(feed: str) -> tuple[str, ...]:
    return tuple(kind for kind in FAULT_KINDS if feed in _FAULTS[kind][0])


def inject_faults(frame: pl.DataFrame, feed: str, kinds: Sequence[str], seed: int) -> pl.DataFrame:
    """Return ``frame`` with the given faults applied (deterministic for ``seed``).

    Faults are applied in the order of FAULT_KINDS whatever order ``kinds`` has, so that the
    rename (schema drift at export time) always comes last and the other faults still find
    their columns.
    """
    if feed not in FEEDS:
        raise ValueError(f"unknown feed {feed!r}; known feeds: {', '.join(FEEDS)}")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ValueError(
            f"unknown fault kind(s) {', '.join(map(repr, unknown))} for feed {feed!r}; "
            f"known kinds: {', '.join(FAULT_KINDS)}"
        )
    for kind in FAULT_KINDS:
        if kind not in kinds:
            continue
        targets, apply = _FAULTS[kind]
        if feed not in targets:
            raise ValueError(
                f"fault kind {kind!r} is not supported for feed {feed!r}; supported for this "
                f"feed: {', '.join(supported_faults(feed)) or 'none'}"
            )
        frame = apply(frame, feed, substream(seed, "faults", feed, kind))
    return frame
