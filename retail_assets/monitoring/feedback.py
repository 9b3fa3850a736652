"""Recommendation feedback: what shoppers did with the lists serving logged, and the verdict
that asks for a retrain when click-through falls.

A logged recommendation (model `recommend` in the prediction log: the customer, the shop's
session, the SKUs shown) is joined to the clickstream events that came after it within
ATTRIBUTION_HOURS, of the same customer or the same session, on a SKU of the list: a click
makes the list clicked, an add to cart carted, a purchase converted. Per model version and
arm: lists served, CTR (share of lists clicked), add-to-cart and conversion rates.

The verdict compares the champion with itself: its CTR over the last RECENT_DAYS of logged
lists against its CTR over the REFERENCE_DAYS before them. A relative drop of CTR_DROP or
more, significant by a one-sided Fisher exact test at CTR_P_VALUE, with at least
MIN_LISTS lists on each side, marks it degraded, and `monitoring_retrain_sensor` retrains it.
Plain functions: the monitoring asset calls them, tests call them directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
from scipy import stats

from retail_assets.monitoring.monitors import ModelReport

MODEL = "recommend"
# A recommendation earns the clicks of the visit it was shown in; a day covers a visit that
# spans the evening and a purchase completed the next morning, not next week's shopping.
ATTRIBUTION_HOURS = 24
RECENT_DAYS = 7
REFERENCE_DAYS = 21
# A fifth fewer clicked lists is a real loss for the shop, and well outside the week-to-week
# wobble of CTR over a few hundred lists (about 10 % relative at a 20-30 % CTR).
CTR_DROP = 0.20
CTR_P_VALUE = 0.01
MIN_LISTS = 200

_OUTCOMES = {"click": "clicked", "add_to_cart": "carted", "purchase": "converted"}


def recommendation_outcomes(log: pl.DataFrame, clickstream: pl.DataFrame) -> pl.DataFrame:
    """One row per logged list: request_id, ts (naive UTC), version, arm, customer_id,
    session_id, shown (number of SKUs), clicked, carted, converted."""
    schema = {
        "request_id": pl.String, "ts": pl.Datetime("us"), "version": pl.String,
        "arm": pl.String, "customer_id": pl.String, "session_id": pl.String,
        "shown": pl.Int64, "clicked": pl.Boolean, "carted": pl.Boolean, "converted": pl.Boolean,
    }  # fmt: skip
    rows = log.filter(pl.col("model") == MODEL)
    if rows.is_empty():
        return pl.DataFrame(schema=schema)
    lists = rows.select(
        "request_id",
        pl.col("ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(pl.Datetime("us")),
        "version",
        "arm",
        pl.when(pl.col("entity_id") != "").then(pl.col("entity_id")).alias("customer_id"),
        pl.col("features")
        .str.json_decode(pl.Struct({"session_id": pl.String}))
        .struct.field("session_id"),
        pl.col("output")
        .str.json_decode(pl.Struct({"skus": pl.List(pl.String)}))
        .struct.field("skus")
        .alias("sku"),
    )
    shown = lists.select("request_id", "customer_id", "session_id", "ts", "sku").explode("sku")
    events = clickstream.filter(pl.col("event_type").is_in(list(_OUTCOMES))).select(
        "customer_id",
        "session_id",
        "sku",
        pl.col("event_ts").cast(pl.Datetime("us")).alias("event_ts"),
        pl.col("event_type").replace_strict(_OUTCOMES).alias("outcome"),
    )
    window = pl.duration(hours=ATTRIBUTION_HOURS)
    matched = [
        shown.drop_nulls(key)
        .join(events.drop_nulls(key).select(key, "sku", "event_ts", "outcome"), on=[key, "sku"])
        .filter(
            (pl.col("event_ts") >= pl.col("ts")) & (pl.col("event_ts") <= pl.col("ts") + window)
        )
        .select("request_id", "outcome")
        for key in ("customer_id", "session_id")
    ]
    hits = pl.concat(matched).unique().with_columns(pl.lit(True).alias("hit"))
    flags = hits.pivot(on="outcome", index="request_id", values="hit")
    for outcome in _OUTCOMES.values():
        if outcome not in flags.columns:
            flags = flags.with_columns(pl.lit(None, pl.Boolean).alias(outcome))
    return (
        lists.with_columns(pl.col("sku").list.len().cast(pl.Int64).alias("shown"))
        .drop("sku")
        .join(flags, on="request_id", how="left")
        .with_columns([pl.col(o).fill_null(False) for o in _OUTCOMES.values()])
        .select(list(schema))
    )


def ctr_table(outcomes: pl.DataFrame) -> pl.DataFrame:
    """version, arm, lists, ctr, add_to_cart_rate, conversion_rate."""
    return (
        outcomes.group_by("version", "arm")
        .agg(
            pl.len().alias("lists"),
            pl.col("clicked").mean().alias("ctr"),
            pl.col("carted").mean().alias("add_to_cart_rate"),
            pl.col("converted").mean().alias("conversion_rate"),
        )
        .sort("version", "arm")
    )


def monitor_recommend(
    outcomes: pl.DataFrame, champion: str | None, now: datetime, offline: dict[str, Any]
) -> ModelReport:
    """The champion's recent CTR against its own earlier CTR (see the module docstring)."""
    recent_start = now - timedelta(days=RECENT_DAYS)
    reference_start = recent_start - timedelta(days=REFERENCE_DAYS)
    mine = (
        outcomes.filter(pl.col("version") == champion, pl.col("arm") == "champion")
        if champion is not None
        else outcomes.clear()  # no champion (the gate refused every ranker): nothing of its own
    )
    recent = mine.filter(pl.col("ts") >= recent_start, pl.col("ts") <= now)
    reference = mine.filter(pl.col("ts") >= reference_start, pl.col("ts") < recent_start)

    def rate(frame: pl.DataFrame) -> tuple[int, int]:
        return int(frame["clicked"].sum()), frame.height

    (hits_now, n_now), (hits_before, n_before) = rate(recent), rate(reference)
    live: dict[str, Any] = {
        "recent_lists": n_now,
        "recent_ctr": hits_now / n_now if n_now else None,
        "reference_lists": n_before,
        "reference_ctr": hits_before / n_before if n_before else None,
        "recent_conversion": float(recent["converted"].mean()) if n_now else None,
        "by_version_arm": ctr_table(outcomes.filter(pl.col("ts") >= reference_start)).to_dicts(),
    }
    report = ModelReport(
        model=MODEL,
        version=champion,
        as_of=str(now),
        windows={
            "reference": f"{reference_start:%Y-%m-%d} - {recent_start:%Y-%m-%d}",
            "recent": f"{recent_start:%Y-%m-%d} - {now:%Y-%m-%d}",
        },
        live=live,
        offline=offline,
    )
    if n_now < MIN_LISTS or n_before < MIN_LISTS:
        report.notes.append(
            f"CTR not judged: {n_now} recent and {n_before} reference lists of the champion "
            f"(needs {MIN_LISTS} each)"
        )
        return report
    drop = 1 - live["recent_ctr"] / live["reference_ctr"] if live["reference_ctr"] else 0.0
    _, p_value = stats.fisher_exact(
        [[hits_now, n_now - hits_now], [hits_before, n_before - hits_before]], alternative="less"
    )
    live.update({"ctr_drop": drop, "p_value": float(p_value)})
    if drop >= CTR_DROP and p_value < CTR_P_VALUE:
        report.degraded = True
        report.degradation = (
            f"CTR fell {drop:.0%}: {live['recent_ctr']:.3f} on {n_now} lists in the last "
            f"{RECENT_DAYS} days against {live['reference_ctr']:.3f} on {n_before} before "
            f"(Fisher p={p_value:.2g})"
        )
    return report
