"""Everything the app shares between requests, created once by the app factory and injected
into controllers: loaded models, online features, rollout configuration, prediction log and
metrics. Background threads only swap references; request handlers take one reference per
request, so a swap never affects a request in flight."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field

from litestar.di import NamedDependency
from litestar.params import SkipValidation

from serving.config import ServingConfig
from serving.features import OnlineFeatures
from serving.metrics import ServingMetrics
from serving.model_store import LoadedModel, ModelStore
from serving.prediction_log import PredictionLogger
from serving.rollout import RolloutManager

log = logging.getLogger("retail.serving")

DEMAND_MODEL = "demand"
FRAUD_MODEL = "fraud"
SERVED_MODELS = (DEMAND_MODEL, FRAUD_MODEL)


@dataclass
class ServingState:
    config: ServingConfig
    models: ModelStore
    features: OnlineFeatures
    rollout: RolloutManager
    prediction_log: PredictionLogger
    metrics: ServingMetrics
    extensions: list = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def from_config(cls, config: ServingConfig) -> ServingState:
        return cls(
            config=config,
            models=ModelStore(config.bundle_root, SERVED_MODELS),
            features=OnlineFeatures(config.online_features_dir),
            rollout=RolloutManager(config.rollout_file),
            prediction_log=PredictionLogger(
                config.prediction_log_dir, config.log_flush_seconds, config.log_buffer_rows
            ),
            metrics=ServingMetrics(),
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Pick up new bundles, feature tables and rollout settings; returns what changed."""
        changes = self.models.refresh()
        self.metrics.swaps.labels("model").inc(len(changes))
        feature_changes = self.features.refresh()
        for extension in self.extensions:
            feature_changes += extension.refresh()
        self.metrics.swaps.labels("features").inc(len(feature_changes))
        self.rollout.reload()
        if changes or feature_changes:
            self._build_demand_matrices()
            # Loaded bundles and feature state are long-lived: move them out of the garbage
            # collector's reach so full collections stay short (they stalled requests for
            # ~50 ms with the fraud state tracked).
            gc.collect()
            gc.freeze()
        self._update_gauges()
        for change in (*changes, *feature_changes):
            log.info("swapped %s", change)
        for problem in self.problems():
            log.warning("degraded: %s", problem)
        return [*changes, *feature_changes]

    def _build_demand_matrices(self) -> None:
        """Encode the forecast table for the demand models now, not on the first request."""
        table = self.features.demand
        slot = self.models.slot(DEMAND_MODEL)
        for model in (slot.champion, slot.challenger):
            if table is not None and model is not None:
                table.matrix(model)

    def start(self) -> None:
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

    # -- status ---------------------------------------------------------------------------------

    def problems(self) -> list[str]:
        out = [f"{name}: {p}" for name, slot in self.models.slots.items() for p in slot.degraded]
        out += [f"features {name}: {p}" for name, p in self.features.problems.items()]
        out += [f"{e.name}: {p}" for e in self.extensions for p in e.problems()]
        return out

    def missing(self) -> list[str]:
        """What is not loaded yet (empty once the app is ready)."""
        missing = [f"model {n}" for n, s in self.models.slots.items() if s.champion is None]
        if self.features.demand is None:
            missing.append("demand online features")
        if self.features.fraud is None:
            missing.append("fraud online features")
        missing += [f"{e.name} (not loaded)" for e in self.extensions if not e.ready()]
        return missing

    def champion(self, name: str) -> LoadedModel | None:
        return self.models.slot(name).champion

    def _update_gauges(self) -> None:
        self.metrics.loaded.clear()
        self.metrics.canary_share.clear()
        for name, slot in self.models.slots.items():
            for role in ("champion", "challenger"):
                model = getattr(slot, role)
                if model is not None:
                    self.metrics.loaded.labels(name, role, model.version).set(1)
            rollout = self.rollout.get(name)
            self.metrics.canary_share.labels(name, rollout.mode).set(
                rollout.canary_share if rollout.mode == "canary" else 0.0
            )
        self.metrics.degraded.set(1 if self.problems() else 0)


# How controllers receive the state. SkipValidation: the state is not request data, and msgspec
# must never try to convert it (it would rebuild the dataclass field by field, locks included,
# on every validation error).
ServingDependency = NamedDependency[SkipValidation[ServingState]]
