"""Everything the app shares between requests, created once by the app factory and injected
into controllers: the slots (model bundles, online feature tables, and the extensions' indices
and prompts), the prediction log and metrics.

One refresh loop serves every slot: the poller (every `poll_seconds`) and an admin reload call
`refresh()`, which lets each slot load what its store names now, beside what it serves, and
swap by reference. Request handlers take one reference per request, so a swap never affects a
request in flight.

Only the enabled domains' slots are served (`config.domains`, see `serving/config.py`): a
disabled domain's model and feature table are never loaded (an old bundle left from another
dataset must not answer), `/ready` does not wait for them, and `/health` lists the domain as
disabled rather than as a problem.
"""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from retail_assets.core.slot import Slot
from retail_assets.domains import DOMAIN_NAMES, DOMAINS
from serving.config import ServingConfig
from serving.features import (
    DemandFeatures,
    FraudFeatures,
    RecommendFeatures,
    demand_features_slot,
    fraud_features_slot,
    recommend_features_slot,
)
from serving.metrics import ServingMetrics
from serving.model_store import ServedModel, model_slot
from serving.prediction_log import PredictionLogger
from serving.pricing import PRICING_MODEL, PricingFeatures, PricingRuntime, pricing_features_slot
from serving.redis_state import RedisBreakers, RedisFraudFeatures, redis_client

log = logging.getLogger("retail.serving")

DEMAND_MODEL = "demand"
FRAUD_MODEL = "fraud"
RECOMMEND_MODEL = "recommend"
SERVED_MODELS = (DEMAND_MODEL, FRAUD_MODEL, RECOMMEND_MODEL, PRICING_MODEL)


@dataclass
class ServingState:
    config: ServingConfig
    models: dict[str, Slot[ServedModel]]
    demand_features: Slot[DemandFeatures]
    fraud_features: Slot[FraudFeatures | RedisFraudFeatures]
    recommend_features: Slot[RecommendFeatures]
    pricing_features: Slot[PricingFeatures]
    pricing_runtime: PricingRuntime
    prediction_log: PredictionLogger
    metrics: ServingMetrics
    extensions: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _refresh_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, config: ServingConfig) -> ServingState:
        artifacts = config.artifacts
        metrics = ServingMetrics()
        # One client (a connection pool) for all the state serving shares between workers.
        redis = redis_client(config.redis_url) if config.redis_url else None
        state = cls(
            config=config,
            models={name: model_slot(artifacts, name) for name in SERVED_MODELS},
            demand_features=demand_features_slot(artifacts),
            fraud_features=fraud_features_slot(artifacts, redis, config.redis_prefix),
            recommend_features=recommend_features_slot(artifacts),
            pricing_features=pricing_features_slot(artifacts),
            pricing_runtime=PricingRuntime(
                config.breaker,
                artifacts,
                metrics,
                shared=RedisBreakers(redis, config.redis_prefix) if redis is not None else None,
            ),
            prediction_log=PredictionLogger(
                config.prediction_log_dir, config.log_flush_seconds, config.log_buffer_rows
            ),
            metrics=metrics,
        )
        state.pricing_runtime.on_pointer_moved = state.refresh
        return state

    # -- slots ---------------------------------------------------------------------------------

    @property
    def domains(self) -> tuple[str, ...]:
        """The enabled domains."""
        return self.config.domains

    def domain_status(self) -> dict[str, str]:
        return {name: "enabled" if name in self.domains else "disabled" for name in DOMAIN_NAMES}

    def domain_slots(self, domain: str) -> list[Slot]:
        """The slots of one domain's models and feature tables (extensions hold their own)."""
        spec = DOMAINS[domain]
        features = [
            self.demand_features,
            self.fraud_features,
            self.recommend_features,
            self.pricing_features,
        ]
        return [self.models[name] for name in spec.models if name in self.models] + [
            slot for slot in features if slot.name in spec.feature_sets
        ]

    @property
    def slots(self) -> list[Slot]:
        """Every slot the app serves from: the enabled domains' and the extensions'."""
        own = [slot for domain in self.domains for slot in self.domain_slots(domain)]
        slots = own + [slot for extension in self.extensions for slot in extension.slots]
        return list(dict.fromkeys(slots))  # a slot two domains share is refreshed once

    @property
    def served_models(self) -> dict[str, Slot[ServedModel]]:
        """The model slots of the enabled domains."""
        names = {name for domain in self.domains for name in DOMAINS[domain].models}
        return {name: slot for name, slot in self.models.items() if name in names}

    def model(self, name: str) -> Slot[ServedModel]:
        return self.models[name]

    def champion(self, name: str) -> ServedModel | None:
        loaded = self.models[name].champion
        return loaded.value if loaded else None

    @property
    def demand(self) -> DemandFeatures | None:
        loaded = self.demand_features.champion
        return loaded.value if loaded else None

    @property
    def fraud(self) -> FraudFeatures | RedisFraudFeatures | None:
        loaded = self.fraud_features.champion
        return loaded.value if loaded else None

    @property
    def recommend(self) -> RecommendFeatures | None:
        loaded = self.recommend_features.champion
        return loaded.value if loaded else None

    @property
    def pricing(self) -> PricingFeatures | None:
        loaded = self.pricing_features.champion
        return loaded.value if loaded else None

    # -- lifecycle ----------------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Let every slot pick up what its store names now; returns what changed."""
        with self._refresh_lock:  # the poller and an admin reload may race
            changes: list[str] = []
            for slot in self.slots:
                swapped = slot.refresh()
                self.metrics.swaps.labels(slot.name).inc(len(swapped))
                changes += swapped
            for extension in self.extensions:
                extension.after_refresh(changes)
            if changes:
                self._build_demand_matrices()
                # Loaded bundles and feature state are long-lived: move them out of the garbage
                # collector's reach so full collections stay short (they stalled requests for
                # ~50 ms with the fraud state tracked).
                gc.collect()
                gc.freeze()
            self._update_gauges()
        for change in changes:
            log.info("swapped %s", change)
        for problem in self.problems():
            log.warning("degraded: %s", problem)
        return changes

    def _build_demand_matrices(self) -> None:
        """Encode the forecast table for the demand models now, not on the first request."""
        table = self.demand
        active = self.models[DEMAND_MODEL].active
        for loaded in (active.champion, active.challenger):
            if table is not None and loaded is not None:
                table.matrix(loaded.value)

    def start(self) -> None:
        if PRICING_MODEL in self.served_models:
            self.pricing_runtime.restore()
        self.refresh()

        def poll() -> None:
            while not self._stop.wait(self.config.poll_seconds):
                try:
                    self.refresh()
                except Exception:  # the poller must survive anything a refresh hits
                    log.exception("refresh failed")

        threading.Thread(target=poll, name="serving-refresh", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for extension in self.extensions:
            extension.close()
        self.prediction_log.close()
        self.metrics.close()

    # -- status ---------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        out = [f"{slot.name}: {p}" for slot in self.slots for p in slot.problems]
        out += [f"{e.name}: {p}" for e in self.extensions for p in e.problems()]
        for name, refusal in self.refused_models().items():
            out.append(
                f"{name}: no champion: the promotion gate refused v{refusal.get('version')} "
                f"({str(refusal.get('reason', ''))[:300]}); its routes answer 503 until a "
                "version passes"
            )
        return out

    def refused_models(self) -> dict[str, dict]:
        """Served models that have no champion because the gate refused every version so
        far (the last decision is a refusal, or a refused version offered only as a
        challenger, which never serves without a champion): waiting will not load them, so
        readiness does not wait for them and the other domains serve."""
        out = {}
        for name, slot in self.served_models.items():
            if slot.ready or slot.store.log is None or slot.store.champion() is not None:
                continue
            last = slot.store.log.last(slot.store.artifact)
            if last is not None and last.get("action") in ("refuse", "challenger"):
                out[name] = last
        return out

    def missing(self) -> list[str]:
        """What is not loaded yet (empty once the app is ready). A model whose every version
        was refused is not waited for: it is a problem (`problems`), not a delay."""
        refused = self.refused_models()
        missing = [
            slot.name
            for slot in self.slots
            if slot.required and not slot.ready and slot.name not in refused
        ]
        missing += [f"{e.name} (not loaded)" for e in self.extensions if not e.ready()]
        return missing

    def _update_gauges(self) -> None:
        self.metrics.loaded.clear()
        self.metrics.canary_share.clear()
        for name, slot in self.models.items():
            active = slot.active
            for role in ("champion", "challenger"):
                loaded = getattr(active, role)
                if loaded is not None:
                    self.metrics.loaded.labels(name, role, loaded.version).set(1)
            rollout = active.rollout
            self.metrics.canary_share.labels(name, rollout.mode).set(
                rollout.share if rollout.mode == "canary" else 0.0
            )
        self.metrics.degraded.set(1 if self.problems() else 0)


# How controllers receive the state. SkipValidation: the state is not request data, and msgspec
# must never try to convert it (it would rebuild the dataclass field by field, locks included,
# on every validation error).
ServingDependency = NamedDependency[SkipValidation[ServingState]]
