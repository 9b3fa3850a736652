"""Progressive delivery: the canary's fate decided by live data.

A challenger that passed the offline gate serves a sticky share of entities (the promotion
asset starts the canary). Each monitoring run takes the predictions serving logged for the
champion and the challenger since the canary started, joins what has happened since (fraud
labels as known now, realised sales), turns each prediction into a loss, and asks the
sequential test (`core/sequential.py`) to promote, extend or roll back. Every look is recorded
in the decision log with the test, the data and the confidence; a promotion moves the serving
pointer and the MLflow aliases, a rollback retires the challenger (serving drops it at its next
poll, with no failed request: the slot swaps by reference).

Losses (lower is better, one per prediction):
* fraud: log loss of the served probability against the label as known now (a payment whose
  dispute window is still open counts as genuine, for both arms alike);
* demand: absolute error of the median forecast against realised sales, divided by the
  series' mean sales over the window so large and small series weigh alike.

The search index's canary is decided on a rate instead: click-through per logged search (a
click in the same session on a returned SKU within ATTRIBUTION_MINUTES), by the same design's
two-proportion version (`sequential.decide_rates`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from retail_assets.core import sequential
from retail_assets.core.store import ArtifactStore

# Probabilities are clipped before the log so that one confident mistake costs a bounded loss.
_EPS = 1e-6


@dataclass
class CanaryLook:
    model: str
    challenger: str
    champion: str
    look: sequential.Look
    data: dict[str, Any]

    def evidence(self) -> dict[str, Any]:
        return {"test": self.look.as_dict(), "data": self.data}


def logged_rows(log: pl.DataFrame, model: str, champion: str, challenger: str, since: datetime):
    """The champion's and the challenger's logged predictions since `since` (the canary's
    start); log timestamps are UTC whatever zone name the warehouse gives them."""
    since_utc = since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since
    ts = pl.col("ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return log.filter(
        (pl.col("model") == model)
        & (ts >= since_utc)
        & (
            ((pl.col("arm") == "champion") & (pl.col("version") == champion))
            | ((pl.col("arm") == "challenger") & (pl.col("version") == challenger))
        )
    )


def fraud_losses(rows: pl.DataFrame, transactions: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """arm, loss per logged payment that the payments mart knows (its label as known now)."""
    probability = [json.loads(o)["probability"] for o in rows["output"].to_list()]
    served = rows.select("arm", pl.col("entity_id").alias("transaction_id")).with_columns(
        pl.Series("p", probability, dtype=pl.Float64)
    )
    labels = transactions.select(
        "transaction_id",
        (pl.col("is_fraud").fill_null(False) & (pl.col("label_available_at") <= now))
        .cast(pl.Float64)
        .alias("y"),
    )
    joined = served.join(labels, on="transaction_id", how="inner")
    p = joined["p"].clip(_EPS, 1 - _EPS).to_numpy()
    y = joined["y"].to_numpy()
    return joined.select("arm").with_columns(
        pl.Series("loss", -(y * np.log(p) + (1 - y) * np.log(1 - p)))
    )


def demand_losses(rows: pl.DataFrame, daily: pl.DataFrame) -> pl.DataFrame:
    """arm, loss per logged (series, target date) whose sales have landed."""
    records = []
    for arm, entity, features, output in rows.select(
        "arm", "entity_id", "features", "output"
    ).iter_rows():
        dates = json.loads(features).get("dates") or []
        outputs = json.loads(output)
        p50 = outputs.get("p50") or outputs.get("prediction") or next(iter(outputs.values()))
        store_id, _, sku = entity.partition(":")
        records.extend(
            (arm, store_id, sku, day, float(value)) for day, value in zip(dates, p50, strict=False)
        )
    if not records:
        return pl.DataFrame(schema={"arm": pl.String, "loss": pl.Float64})
    forecasts = pl.DataFrame(
        records, schema=["arm", "store_id", "sku", "date", "forecast"], orient="row"
    ).with_columns(pl.col("date").str.to_date())
    actual = daily.select("store_id", "sku", "date", pl.col("demand_quantity").alias("actual"))
    joined = forecasts.join(actual, on=["store_id", "sku", "date"], how="inner")
    scale = joined.group_by("store_id", "sku").agg(pl.col("actual").mean().alias("_level"))
    return (
        joined.join(scale, on=["store_id", "sku"])
        .with_columns(
            (
                (pl.col("forecast") - pl.col("actual")).abs() / pl.col("_level").clip(1.0, None)
            ).alias("loss")
        )
        .select("arm", "loss")
    )


def looks_taken(store: ArtifactStore, challenger: str) -> int:
    """Canary looks already recorded for this challenger (since it became challenger)."""
    entries = store.log.entries(store.artifact) if store.log else []
    count = 0
    for entry in entries:
        started = entry.get("action") in ("canary_started", "canary")  # models', search's
        if started and entry.get("version") == challenger:
            count = 0
        elif entry.get("action") == "canary_look" and entry.get("version") == challenger:
            count += 1
    return count


def canary_since(roles) -> datetime | None:
    """When the running canary started (None: no canary running)."""
    if roles.rollout.mode != "canary" or roles.champion is None or roles.challenger is None:
        return None
    pointer = roles.challenger
    return datetime.fromisoformat(pointer.since) if pointer.since else None


def look_at_canary(
    store: ArtifactStore, roles, model: str, losses: pl.DataFrame, data: dict[str, Any]
) -> CanaryLook | None:
    """The next look at the running canary of `roles` (read once by the caller; None: no
    canary running)."""
    if roles.rollout.mode != "canary" or roles.challenger is None or roles.champion is None:
        return None
    challenger, champion = roles.challenger.version, roles.champion.version
    look = sequential.decide(
        losses.filter(pl.col("arm") == "champion")["loss"].to_numpy(),
        losses.filter(pl.col("arm") == "challenger")["loss"].to_numpy(),
        looks_taken(store, challenger) + 1,
    )
    return CanaryLook(model, challenger, champion, look, data)


def act(
    store: ArtifactStore,
    look: CanaryLook,
    install: Callable[..., dict[str, Any]],
    after_rollback: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Record the look and carry out its decision: `install(version, action=, reason=, actor=,
    evidence=)` makes the challenger the champion (a model's also moves the MLflow aliases;
    an index's is `store.promote`); `after_rollback` follows a rollback (the aliases)."""
    evidence = look.evidence()
    store.record(
        "canary_look",
        look.challenger,
        reason=f"look {look.look.look}/{look.look.max_looks}: {look.look.reason}",
        actor="canary_test",
        evidence=evidence,
    )
    if look.look.action == sequential.PROMOTE:
        return install(
            look.challenger,
            action="promote",
            reason=f"canary passed the sequential test: {look.look.reason}",
            actor="canary_test",
            evidence=evidence,
        )
    if look.look.action == sequential.ROLLBACK:
        record = store.retire_challenger(
            reason=f"canary rolled back by the sequential test: {look.look.reason}",
            actor="canary_test",
            action="canary_rolled_back",
            evidence=evidence,
        )
        if after_rollback is not None:
            after_rollback()
        return record
    return {"action": "canary_extended", "version": look.challenger, "reason": look.look.reason}


# -- search: click-through ----------------------------------------------------------------------

# A click on a returned SKU in the same session up to this long after the search counts for
# that search: long enough to read a product page and come back, short enough that a later,
# unrelated visit to the same product is not credited to this search.
ATTRIBUTION_MINUTES = 30


def search_clicks(rows: pl.DataFrame, clickstream: pl.DataFrame) -> pl.DataFrame:
    """arm, version, clicked per logged search with a session: whether the session clicked
    one of the SKUs the search returned within ATTRIBUTION_MINUTES after it (the
    clickstream's `session_id` is the id the shop sent to /v1/search)."""
    if rows.is_empty():
        return pl.DataFrame(schema={"arm": pl.String, "version": pl.String, "clicked": pl.Boolean})
    searches = rows.filter(pl.col("entity_id") != "").select(
        "request_id",
        "arm",
        "version",
        pl.col("entity_id").alias("session_id"),
        pl.col("ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None).alias("searched_at"),
        pl.col("output").str.json_decode(pl.Struct({"skus": pl.List(pl.String)})).alias("_out"),
    )
    returned = searches.with_columns(pl.col("_out").struct.field("skus").alias("sku")).explode(
        "sku"
    )
    clicks = clickstream.filter(pl.col("event_type") == "click").select(
        "session_id", "sku", pl.col("event_ts").cast(pl.Datetime("us")).alias("clicked_at")
    )
    window = pl.duration(minutes=ATTRIBUTION_MINUTES)
    credited = (
        returned.join(clicks, on=["session_id", "sku"], how="inner")
        .filter(
            (pl.col("clicked_at") >= pl.col("searched_at").cast(pl.Datetime("us")))
            & (pl.col("clicked_at") <= pl.col("searched_at").cast(pl.Datetime("us")) + window)
        )
        .select("request_id")
        .unique()
        .with_columns(pl.lit(True).alias("clicked"))
    )
    return (
        searches.select("request_id", "arm", "version")
        .join(credited, on="request_id", how="left")
        .with_columns(pl.col("clicked").fill_null(False))
        .select("arm", "version", "clicked")
    )


def look_at_click_canary(
    store: ArtifactStore,
    roles,
    clicks: pl.DataFrame,
    data: dict[str, Any],
    model: str = "search",
) -> CanaryLook | None:
    """The next look at a canary decided on click-through per arm (`clicks`: arm, clicked; the
    search index's, and the recommender's), None when none runs or it has not served its
    minimum time yet."""
    since = canary_since(roles)
    if since is None:
        return None
    if (datetime.now(UTC) - since).total_seconds() < roles.rollout.min_seconds:
        return None
    challenger, champion = roles.challenger.version, roles.champion.version

    def arm(name: str) -> tuple[int, int]:
        clicked = clicks.filter(pl.col("arm") == name)["clicked"]
        return int(clicked.sum()), clicked.len()

    look = sequential.decide_rates(
        arm("champion"), arm("challenger"), looks_taken(store, challenger) + 1
    )
    return CanaryLook(model, challenger, champion, look, data)
