"""Pricing in serving: the published price state, the guardrails of the bundle, the fallback
answer, and the circuit breaker's state; `scoring.price_items` answers requests with them.

A request is answered in one batch per model version: the feature rows come from the price
state (`pricing_online_features`) with the response model's own repricing function
(`response.at_prices`), the optimizer asks the bundle for the units at every candidate price
in one ONNX call, and the guardrails (the bundle's, recorded at training) decide and trace
the price. Every answered price is checked against every guardrail before it leaves.

The breaker (`models/pricing/breaker.py`) watches each version's recommended changes. When
it trips, the version's prices fall back at once (its canary traffic to the champion, the
champion's to the list price inside the guardrails), the event goes to the decision log, and
the serving pointer moves: a tripped challenger is retired, a tripped champion rolled back
to the champion it replaced, which the slot then loads. An admin call closes the breaker.
Open breakers survive a restart: they are read back from the decision log.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from retail_assets.artifacts import Artifacts
from retail_assets.core import clock
from retail_assets.core.slot import Slot
from retail_assets.models.pricing.breaker import BreakerSettings, ChangeWindow, Trip
from retail_assets.models.pricing.guardrails import Guardrails, PriceContext, decide
from retail_assets.models.pricing.optimizer import Objective, Recommendation
from retail_assets.models.pricing.response import FEATURES
from retail_assets.online_features import PRICING_FEATURE_SET
from retail_assets.online_features.store import load_feature_set, read_manifest
from serving.redis_state import RedisBreakers, RedisChangeWindow

if TYPE_CHECKING:
    from serving.metrics import ServingMetrics
    from serving.model_store import ServedModel

log = logging.getLogger("retail.serving")

PRICING_MODEL = "pricing"
BREAKER_ACTIONS = frozenset({"breaker_opened", "breaker_closed"})
# With RETAIL_REDIS_URL, how often a worker reads the breakers the others opened or closed: a
# tenth of a second of a broken version's prices at most, one Redis call per worker per tick.
SYNC_SECONDS = 0.1


class PricingFeatures:
    """The published price state, indexed by (store_id, sku)."""

    def __init__(self, version: str, folder: Path):
        table = load_feature_set(folder)["price_state"]
        manifest = read_manifest(folder)
        self.version = version
        self.as_of: date = date.fromisoformat(str(manifest["as_of"])[:10])
        self.index = {
            key: i for i, key in enumerate(zip(table["store_id"], table["sku"], strict=True))
        }
        self.stores = sorted(set(table["store_id"].to_list()))
        self.category = table["category"].fill_null("").to_list()
        self.store = table["store_id"].to_list()
        self.sku = table["sku"].to_list()

        def column(name: str) -> np.ndarray:
            return table[name].cast(float).fill_null(math.nan).to_numpy().astype(np.float64)

        self.list_price = column("list_price")
        self.unit_cost = column("unit_cost")
        self.regular_price = column("regular_price")
        self.week_ago = column("regular_price_week_ago")
        self.competitor = column("competitor_min_price")
        baseline = column("log_baseline")
        chain = float(np.nanmedian(baseline)) if np.isfinite(baseline).any() else 0.0
        self.log_baseline = np.where(np.isfinite(baseline), baseline, chain)

    def rows(self, model: ServedModel, index: np.ndarray, day: date, competitor: np.ndarray):
        """The response model's input rows (in FEATURES order) at today's regular price."""
        names = model.bundle.feature_names
        if list(names) != FEATURES:
            raise LookupError(
                f"pricing v{model.version} takes features {names}; serving computes {FEATURES}:"
                " publish a model trained by this version"
            )
        codes = {
            f["name"]: {value: code for code, value in enumerate(f["categories"])}
            for f in model.signature["features"]
            if "categories" in f
        }
        regular = self.regular_price[index]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.log(competitor / regular)
        week = day.isocalendar().week
        columns = {
            "log_price_ratio": np.log(regular / self.list_price[index]),
            "log_competitor_ratio": np.where(np.isfinite(ratio), ratio, 0.0),
            "on_promotion": np.zeros(len(index)),
            "day_of_week": np.full(len(index), float(day.isoweekday())),
            "week_of_year": np.full(len(index), float(week)),
            "category_code": np.array(
                [codes["category_code"].get(self.category[i], -1) for i in index], dtype=float
            ),
            "store_code": np.array(
                [codes["store_code"].get(self.store[i], -1) for i in index], dtype=float
            ),
            "log_baseline": self.log_baseline[index],
        }
        return np.column_stack([columns[name] for name in FEATURES])


def pricing_features_slot(artifacts: Artifacts) -> Slot[PricingFeatures]:
    return Slot(
        PRICING_FEATURE_SET,
        artifacts.features(PRICING_FEATURE_SET),
        lambda folder, version: PricingFeatures(version, folder),
    )


@dataclass(frozen=True)
class PriceQuery:
    store_id: str
    sku: str
    competitor_price: float | None = None
    stock: float | None = None
    emergency: bool = False
    minimum_advertised_price: float | None = None


@dataclass
class PriceAnswer:
    query: PriceQuery
    recommendation: Recommendation
    current_price: float
    list_price: float
    model: ServedModel | None
    arm: str
    fallback: str | None = None
    fallback_reason: str | None = None
    expected: bool = True
    """False: the fallback price has no model estimate of units and margin."""


@dataclass
class OpenBreaker:
    version: str
    opened_at: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)
    pointer_action: str | None = None


class PricingRuntime:
    """Per model version: the breaker's change window, and which versions are open.
    `on_pointer_moved` (the serving state's refresh) runs in the background after a trip moved
    the serving pointer, so the slot loads the version the pointer names now."""

    def __init__(
        self,
        settings: BreakerSettings,
        artifacts: Artifacts,
        metrics: ServingMetrics,
        on_pointer_moved: Callable[[], Any] | None = None,
        shared: RedisBreakers | None = None,
    ):
        self.settings = settings
        self.artifacts = artifacts
        self.metrics = metrics
        self.on_pointer_moved = on_pointer_moved
        self.shared = shared
        """With RETAIL_REDIS_URL: the windows and the open breakers live in Redis, so every
        worker judges all the prices served and a trip stops every worker's prices."""
        self.windows: dict[str, ChangeWindow] = {}
        self.open: dict[str, OpenBreaker] = {}
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._synced = 0.0

    def restore(self) -> None:
        """Open breakers from the decision log (the last breaker event per version)."""
        store = self.artifacts.model(PRICING_MODEL)
        if store.log is None:
            return
        last: dict[str, dict] = {}
        for entry in store.log.entries(store.artifact, BREAKER_ACTIONS):
            last[str(entry.get("version"))] = entry
        with self._lock:
            for version, entry in last.items():
                if entry["action"] == "breaker_opened":
                    event = OpenBreaker(
                        version, entry["at"], entry.get("reason", ""), entry.get("evidence") or {}
                    )
                    self.open[version] = event
                    self.metrics.breaker_open.labels(PRICING_MODEL, version).set(1)
                    if self.shared is not None:
                        # The shared hash is what every worker syncs from: a breaker the log
                        # holds open must be there too (e.g. after Redis lost its data), or
                        # the next sync would take it for closed.
                        self.shared.try_open(version, asdict(event))

    def is_open(self, version: str) -> bool:
        self._sync()
        return version in self.open

    def _sync(self) -> None:
        """Take the breakers other workers opened or closed (at most every SYNC_SECONDS)."""
        now = time.monotonic()
        if self.shared is None or now - self._synced < SYNC_SECONDS:
            return
        self._synced = now
        opened = self.shared.opened()
        with self._lock:
            for version, event in opened.items():
                if version not in self.open:
                    self.open[version] = OpenBreaker(**event)
                    self.metrics.breaker_open.labels(PRICING_MODEL, version).set(1)
            for version in [v for v in self.open if v not in opened]:
                self.open.pop(version)
                self.metrics.breaker_open.labels(PRICING_MODEL, version).set(0)

    def window(self, model: ServedModel) -> ChangeWindow:
        window = self.windows.get(model.version)
        if window is None:
            reference = (model.signature.get("extras") or {}).get("price_change_reference") or {}
            window = (
                RedisChangeWindow(reference, self.settings, self.shared, model.version)
                if self.shared is not None
                else ChangeWindow(reference, self.settings)
            )
            window = self.windows.setdefault(model.version, window)
        return window

    def trip(self, version: str, trip: Trip) -> None:
        """Open the breaker of `version`: log it, move the pointer away from it, reload."""
        with self._lock:
            if version in self.open:
                return
            event = OpenBreaker(version, clock.now_iso(), trip.reason, trip.evidence)
            self.open[version] = event
        if self.shared is not None and not self.shared.try_open(version, asdict(event)):
            return  # another worker opened it first: it records the event and moves the pointer
        self.metrics.breaker_open.labels(PRICING_MODEL, version).set(1)
        log.warning("pricing breaker opened for v%s: %s", version, trip.reason)
        store = self.artifacts.model(PRICING_MODEL)
        reason = f"circuit breaker opened: {trip.reason}"
        try:  # the fallback serves whatever happens to the log and the pointer
            store.record(
                "breaker_opened",
                version,
                reason=trip.reason,
                actor="circuit_breaker",
                evidence=trip.evidence,
            )
            if store.challenger() == version:
                store.retire_challenger(reason=reason, actor="circuit_breaker")
                event.pointer_action = "challenger retired"
            elif store.champion() == version and store.rollback_target() is not None:
                entry = store.rollback(reason=reason, actor="circuit_breaker")
                event.pointer_action = f"rolled back to v{entry['champion_after']}"
            else:
                event.pointer_action = "none (no earlier champion): list prices until closed"
        except Exception as exc:  # a pointer that cannot move keeps the fallback serving
            event.pointer_action = f"pointer not moved: {exc}"
            log.exception("pricing breaker could not move the pointer")
        self.events.append(asdict(event))
        if self.on_pointer_moved is not None:
            threading.Thread(
                target=self.on_pointer_moved, name="breaker-refresh", daemon=True
            ).start()

    def close(self, version: str, reason: str, actor: str) -> dict[str, Any]:
        self._sync()
        with self._lock:
            event = self.open.pop(version, None)
            self.windows.pop(version, None)
        if self.shared is not None:
            self.shared.close(version)
        if event is None:
            raise LookupError(f"the pricing breaker of v{version} is not open")
        self.metrics.breaker_open.labels(PRICING_MODEL, version).set(0)
        return self.artifacts.model(PRICING_MODEL).record(
            "breaker_closed", version, reason=reason, actor=actor
        )

    def status(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "open": {v: asdict(e) for v, e in self.open.items()},
            "watched_versions": {
                v: {"observed": w.observed, "window": w.size()} for v, w in self.windows.items()
            },
        }


def rails_of(model: ServedModel | None) -> tuple[Guardrails, Objective]:
    extras = (model.signature.get("extras") or {}) if model else {}
    rails = extras.get("guardrails")
    objective = extras.get("objective")
    return (
        Guardrails(**{**rails, "price_endings": tuple(rails["price_endings"])})
        if rails
        else Guardrails(),
        Objective(**objective) if objective else Objective(),
    )


def price_context(table: PricingFeatures, i: int, q: PriceQuery) -> PriceContext:
    def known(value: float) -> float | None:
        return None if math.isnan(value) else float(value)

    week_ago = known(table.week_ago[i])
    return PriceContext(
        cost=float(table.unit_cost[i]) if math.isfinite(table.unit_cost[i]) else 0.0,
        current_price=float(table.regular_price[i]),
        price_week_ago=week_ago,
        competitor_price=q.competitor_price
        if q.competitor_price is not None
        else known(table.competitor[i]),
        minimum_advertised_price=q.minimum_advertised_price,
        emergency=q.emergency,
        pre_emergency_price=week_ago if q.emergency else None,
    )


def list_price_answer(
    table: PricingFeatures,
    i: int,
    q: PriceQuery,
    ctx: PriceContext,
    rails: Guardrails,
    arm: str,
    reason: str | None,
) -> PriceAnswer:
    """The list price moved inside the guardrails: what a customer sees while the breaker is
    open and no other model may answer."""
    list_price = float(table.list_price[i])
    decision = decide(rails, ctx, list_price)
    return PriceAnswer(
        q,
        Recommendation(decision, math.nan, math.nan, math.nan),
        ctx.current_price,
        list_price,
        None,
        arm,
        "list_price",
        reason,
        expected=False,
    )
