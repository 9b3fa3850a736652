"""Training-serving skew: do the features serving computed equal what the training code computes
for the same payment at the same time?

Serving logs, with each fraud score, the features it joined and the request's replay fields
(ids, timestamp, countries). Offline, the payment history from the warehouse plus the logged
requests is replayed through the same `FraudFeatureState` the training set is built with, and
each logged feature is compared with its recomputation. A feature whose mismatch rate exceeds
`MAX_MISMATCH_RATE` fails the check, named. Causes this catches: an online state published
from the wrong history or a stale table, a request field serving drops or renames, a change to
the feature code deployed to one side only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import polars as pl

from retail_assets.models.fraud.online import FEATURE_NAMES, REPLAY_COLUMNS, replay_features

# Floats compare within this relative tolerance (JSON round trips and summation order).
TOLERANCE = 1e-6
# More than 1 % of payments with a different value: systematic, not a one-off race.
MAX_MISMATCH_RATE = 0.01


def _same(served: Any, offline: Any) -> bool:
    if served is None or offline is None:
        return served is None and offline is None
    if isinstance(served, bool) or isinstance(offline, bool):
        return bool(served) == bool(offline)
    try:
        a, b = float(served), float(offline)
    except (TypeError, ValueError):
        return served == offline
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b))


@dataclass
class Replay:
    """One replay of the payment history plus the requests serving logged that the history does
    not hold yet: the features of every payment from `since` on and of every logged request
    (monitoring's drift and live metrics and the skew check read the same replay)."""

    features: pl.DataFrame
    served: list[tuple[str, dict[str, Any], dict[str, Any]]]


def logged_requests(log: pl.DataFrame) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(transaction id, logged features, request replay fields) per logged fraud score that
    carries its request (older log rows do not)."""
    served = []
    for entity, features in (
        log.filter(pl.col("model") == "fraud").select("entity_id", "features").iter_rows()
    ):
        document = json.loads(features)
        request = document.get("request")
        if isinstance(request, dict) and request.get("transaction_ts"):
            served.append((entity, document, request))
    return served


def replay(transactions: pl.DataFrame, customers: pl.DataFrame, log: pl.DataFrame, since) -> Replay:
    served = logged_requests(log)
    history = transactions.select(REPLAY_COLUMNS).with_columns(
        pl.col("transaction_ts").cast(pl.Datetime("us")), pl.col("amount").cast(pl.Float64)
    )
    requested = pl.Series("transaction_id", [entity for entity, _, _ in served], pl.String)
    if served:
        requests = pl.DataFrame(
            [{c: r.get(c) for c in REPLAY_COLUMNS} for _, _, r in served],
            schema={c: pl.String for c in REPLAY_COLUMNS},
        ).with_columns(
            pl.col("transaction_ts").str.to_datetime(time_unit="us").dt.replace_time_zone(None),
            pl.col("amount").cast(pl.Float64),
        )
        new = requests.filter(~pl.col("transaction_id").is_in(history["transaction_id"].implode()))
        history = pl.concat([history, new.cast(history.schema)], how="vertical")
    score = (history["transaction_ts"] >= since) | history["transaction_id"].is_in(
        requested.implode()
    )
    return Replay(replay_features(history, customers, score=score), served)


def fraud_skew(replayed: Replay) -> list[dict[str, Any]]:
    """One row per feature: payments compared, mismatches, rate, an example; empty when the
    log holds no fraud request with its replay fields."""
    served, offline = replayed.served, replayed.features
    if not served:
        return []
    ids = pl.Series([entity for entity, _, _ in served], dtype=pl.String)
    by_id = {
        row["transaction_id"]: row
        for row in offline.filter(pl.col("transaction_id").is_in(ids.implode())).iter_rows(
            named=True
        )
    }
    rows = []
    for feature in FEATURE_NAMES:
        compared = mismatches = 0
        example = None
        for entity, document, _ in served:
            recomputed = by_id.get(entity)
            if recomputed is None or feature not in document:
                continue
            compared += 1
            if not _same(document[feature], recomputed[feature]):
                mismatches += 1
                example = example or {
                    "transaction_id": entity,
                    "served": document[feature],
                    "offline": recomputed[feature],
                }
        rate = mismatches / compared if compared else 0.0
        rows.append(
            {
                "feature": feature,
                "compared": compared,
                "mismatches": mismatches,
                "rate": rate,
                "skewed": rate > MAX_MISMATCH_RATE,
                "example": example,
            }
        )
    return rows
