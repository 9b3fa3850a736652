"""Online features joined into requests: callers send ids and raw fields, never engineered
features.

* Demand: the pipeline's `demand_online_features` table holds every model input for each
  store x SKU series and forecast day; it is indexed once per (table version, bundle version)
  into a float64 matrix in the bundle's feature order, so a request is a dictionary lookup and
  a slice. Unknown ids fall back to cold-start rows (see `DemandFeatures.lookup`).
* Fraud: `FraudFeatureState` (published by the pipeline's `fraud_online_features`; the very
  code the fraud training set replays the payment history through) computes velocity and
  customer features at authorisation time and folds each scored payment in, so velocity stays
  live.
* Recommendations: `RecommendFeatures` indexes the pipeline's `recommend_online_features`
  tables with the very candidate and feature code the ranker was trained through; a request
  runs one query (the customer's candidates, their features) and the business rules.

Categorical inputs are encoded with the vocabulary stored in the bundle's signature (code =
index, -1 for unknown or missing), exactly as training encoded them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
from redis import Redis

from retail_assets.artifacts import Artifacts
from retail_assets.core.slot import Slot
from retail_assets.models.demand.features import apply_plan
from retail_assets.models.demand.grain import Grain, grain_for_period
from retail_assets.models.demand.online import WILDCARD
from retail_assets.models.fraud.online import FraudFeatureState
from retail_assets.models.recommend.online import Candidates
from retail_assets.models.recommend.rules import RuleBook
from retail_assets.online_features import (
    DEMAND_FEATURE_SET,
    FRAUD_FEATURE_SET,
    RECOMMEND_FEATURE_SET,
)
from retail_assets.online_features.store import load_feature_set, read_manifest
from serving.encoding import encode_matrix
from serving.redis_state import RedisFraudFeatures


class Encodable(Protocol):
    """A loaded model as the feature table sees it: a name, a version and a signature."""

    name: str
    version: str

    @property
    def signature(self) -> dict[str, Any]: ...


FALLBACK_MEANING = {
    None: "the series' own history",
    "category": "new SKU at a known store: the store's median for the SKU's category",
    "store": "SKU of unknown category at a known store: the store's median product",
    "chain": "unknown store: the chain's median for the category (or for any product)",
}


# -- demand ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeriesRows:
    start: int
    horizons: int
    fallback: str | None


class DemandFeatures:
    """The published forecast feature table, indexed for lookups."""

    def __init__(self, version: str, tables: dict[str, pl.DataFrame]):
        table = tables["forecast_features"].sort("store_id", "sku", "horizon")
        self.version = version
        self.table = table
        self.origin_date: date = table["origin_date"].max()
        self.target_dates: list[date] = table["target_date"].to_list()
        first = table.row(0, named=True) if table.height else None
        self.grain: Grain = grain_for_period(
            (first["target_date"] - first["origin_date"]).days // first["horizon"] if first else 1
        )
        self.max_horizon = int(table["horizon"].max() or 0)
        self.plan_sources: list[str] = (
            table["plan_source"].to_list()
            if "plan_source" in table.columns
            else ["regular price"] * table.height
        )
        # Planned closing days are forecast 0 (`closed_to_zero`); None: no store calendar.
        self.is_open: np.ndarray | None = (
            table["is_open"].cast(pl.Float64).to_numpy() if "is_open" in table.columns else None
        )
        self.index: dict[tuple[str, str], SeriesRows] = {}
        keys = table.select("store_id", "sku", "fallback").with_row_index("row")
        firsts = keys.group_by("store_id", "sku", maintain_order=True).agg(
            pl.col("row").first(), pl.len().alias("n"), pl.col("fallback").first()
        )
        for store, sku, start, n, fallback in firsts.iter_rows():
            self.index[(store, sku)] = SeriesRows(start, n, fallback)
        self.stores = {s for s, _ in self.index if s != WILDCARD}
        catalog = tables.get("sku_categories")
        self.sku_category: dict[str, str] = (
            dict(catalog.select("sku", "category").iter_rows()) if catalog is not None else {}
        )
        self._matrices: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def matrix(self, model: Encodable) -> np.ndarray:
        """The table as `model`'s input matrix, built once per model version."""
        key = f"{model.name}:{model.version}"
        cached = self._matrices.get(key)
        if cached is None:
            with self._lock:
                cached = self._matrices.get(key)
                if cached is None:
                    cached = encode_matrix(self.table, model.signature)
                    self._matrices[key] = cached
        return cached

    def lookup(
        self, store_id: str, sku: str, category: str | None = None
    ) -> tuple[SeriesRows, str | None]:
        """Rows for a series, or its cold-start fallback: a known SKU's category comes from
        the catalog, else from the request. Returns (rows, fallback used or None)."""
        rows = self.index.get((store_id, sku))
        if rows is not None:
            return rows, None
        category = self.sku_category.get(sku) or category
        store = store_id if store_id in self.stores else WILDCARD
        candidates = []
        if category:
            candidates += [(store, WILDCARD + category), (WILDCARD, WILDCARD + category)]
        candidates += [(store, WILDCARD * 2), (WILDCARD, WILDCARD * 2)]
        for key in candidates:
            rows = self.index.get(key)
            if rows is not None:
                return rows, rows.fallback
        raise LookupError("the feature table has no chain-level cold-start rows")

    def dates(self, rows: SeriesRows, horizon: int) -> list[date]:
        return self.target_dates[rows.start : rows.start + min(horizon, rows.horizons)]

    def span(self, rows: SeriesRows, horizon: int) -> slice:
        return slice(rows.start, rows.start + min(horizon, rows.horizons))

    def planned_rows(
        self, model: Encodable, rows: SeriesRows, horizon: int, plan: pl.DataFrame
    ) -> tuple[np.ndarray, list[str]]:
        """`model`'s input rows for a series with a caller's plan applied (the plan-dependent
        features recomputed by the training code), and the plan source of each day."""
        frame = apply_plan(
            self.table.slice(rows.start, min(horizon, rows.horizons)), plan, self.grain
        )
        return encode_matrix(frame, model.signature), frame["plan_source"].to_list()


# -- fraud ----------------------------------------------------------------------------------


class FraudFeatures:
    """Live fraud feature state: published state plus every payment scored since."""

    PRUNE_EVERY = 5000

    def __init__(self, version: str, tables: dict[str, pl.DataFrame]):
        self.version = version
        self.state = FraudFeatureState.from_frames(tables)
        self._observed = 0
        self._lock = threading.Lock()

    @property
    def as_of(self) -> datetime | None:
        """Time of the latest payment folded in: the published state's, then each scored one
        (the replay clock and `features_as_of` read it; a snapshot taken at load would leave
        the replay clock at the publication time)."""
        return self.state.as_of

    def features_and_observe(
        self, payment: dict[str, Any]
    ) -> tuple[dict[str, Any], datetime | None]:
        """Features of `payment` from payments strictly before it, then fold it in (a later
        payment of the same card sees this one, as in the mart); and the state's as-of time
        after it."""
        with self._lock:
            features = self.state.features(payment)
            self.state.observe(payment)
            self._observed += 1
            if self._observed % self.PRUNE_EVERY == 0 and self.state.as_of is not None:
                self.state.prune(self.state.as_of)
            return features, self.state.as_of


# -- recommendations --------------------------------------------------------------------------


class RecommendFeatures:
    """The published recommendation tables, indexed for single queries: the candidate and
    feature code training ran (`Candidates`), the business rules (`RuleBook`) over the same
    item codes, and what the request filters need (category codes, list prices)."""

    def __init__(self, version: str, folder: Path):
        tables = load_feature_set(folder)
        manifest = read_manifest(folder)
        self.version = version
        self.as_of = datetime.fromisoformat(str(manifest["as_of"]))
        self.candidates = Candidates(tables, self.as_of)
        self.stock = tables.get("stock")
        # Both index the items table sorted by SKU: one item code means one item in both.
        self.rules = RuleBook.from_products(tables["items"], self.stock)
        self.skus = self.candidates.skus
        self.category_names = self.candidates.categories
        self.category_of = {name: i for i, name in enumerate(self.category_names) if name}
        self.category_names_by_item: list[str | None] = [
            self.category_names[c] or None for c in self.candidates.category.tolist()
        ]


# -- loading --------------------------------------------------------------------------------


def demand_features_slot(artifacts: Artifacts) -> Slot[DemandFeatures]:
    return Slot(
        DEMAND_FEATURE_SET,
        artifacts.features(DEMAND_FEATURE_SET),
        lambda folder, version: DemandFeatures(version, load_feature_set(folder)),
    )


def recommend_features_slot(artifacts: Artifacts) -> Slot[RecommendFeatures]:
    return Slot(
        RECOMMEND_FEATURE_SET,
        artifacts.features(RECOMMEND_FEATURE_SET),
        lambda folder, version: RecommendFeatures(version, folder),
    )


def fraud_features_slot(
    artifacts: Artifacts, redis: Redis | None = None, redis_prefix: str = "retail"
) -> Slot[FraudFeatures | RedisFraudFeatures]:
    """In process, or in Redis when a client is given (every worker then shares one state:
    `serving/redis_state.py`)."""
    if redis is None:
        return Slot(
            FRAUD_FEATURE_SET,
            artifacts.features(FRAUD_FEATURE_SET),
            lambda folder, version: FraudFeatures(version, load_feature_set(folder)),
        )
    return Slot(
        FRAUD_FEATURE_SET,
        artifacts.features(FRAUD_FEATURE_SET),
        lambda folder, version: RedisFraudFeatures(
            redis, version, load_feature_set(folder), redis_prefix
        ),
    )
