"""GET /v1/models, /health, /ready and /metrics: what is loaded and how it is doing."""

from __future__ import annotations

import os

import msgspec
from litestar import Controller, MediaType, Response, get
from litestar.openapi.datastructures import ResponseSpec

from serving.state import ServingDependency


class LoadedModelInfo(msgspec.Struct):
    name: str
    role: str
    """'champion' answers traffic; 'challenger' is scored in shadow or canary mode."""
    version: str
    loaded_at: str
    rollout_mode: str
    canary_share: float
    decision_threshold: float | None
    feature_count: int


class ModelsResponse(msgspec.Struct):
    models: list[LoadedModelInfo]
    feature_sets: dict[str, str | None]


class Health(msgspec.Struct):
    status: str
    """'ok', or 'degraded' while a refused bundle or table keeps the previous one in service."""
    problems: list[str]
    models: dict[str, str | None]
    """Champion version of each enabled domain's model."""
    prediction_log_pending: int
    prediction_log_rows_written: int
    domains: dict[str, str]
    """'enabled' or 'disabled' per domain: a disabled domain is not served and is no problem."""
    domains_source: str
    """Where the enabled domains came from (RETAIL_DOMAINS or the pipeline's record)."""
    pricing_breaker: dict | None = None
    """The pricing circuit breaker: settings, open versions (when, why, what moved the
    pointer) and the versions it watches; None when pricing is not served."""
    worker_pid: int = 0
    """The serving process that answered (one of `retail serve --workers N`); each worker
    loads and hot-swaps versions on its own, so versions above are this worker's."""
    online_state: str = "in-process"
    """Where the fraud velocity state lives: 'in-process' (one worker) or 'redis' (shared by
    every worker, `RETAIL_REDIS_URL`)."""


class Ready(msgspec.Struct):
    ready: bool
    missing: list[str]


class ModelsController(Controller):
    path = "/v1/models"
    tags = ["models"]

    @get(sync_to_thread=False)
    def list_models(self, serving: ServingDependency) -> ModelsResponse:
        """Every loaded model version with its alias, load time and rollout mode."""
        models = []
        for name, slot in serving.served_models.items():
            active = slot.active
            for role in ("champion", "challenger"):
                loaded = getattr(active, role)
                if loaded is None:
                    continue
                model = loaded.value
                models.append(
                    LoadedModelInfo(
                        name=name,
                        role=role,
                        version=model.version,
                        loaded_at=model.loaded_at,
                        rollout_mode=active.rollout.mode,
                        canary_share=active.rollout.share,
                        decision_threshold=model.threshold,
                        feature_count=len(model.bundle.feature_names),
                    )
                )
        return ModelsResponse(
            models=models,
            feature_sets={
                slot.name: slot.champion.version if slot.champion else None
                for slot in (serving.demand_features, serving.fraud_features)
                if any(slot in serving.domain_slots(domain) for domain in serving.domains)
            },
        )


class HealthController(Controller):
    path = ""
    tags = ["operations"]

    @get("/health", sync_to_thread=False)
    def health(self, serving: ServingDependency) -> Health:
        """Liveness plus what is wrong: a refused bundle or feature table makes the app
        'degraded' while it keeps serving the previous version."""
        problems = serving.problems()
        problems += [
            f"pricing breaker open for v{version}: {event.reason}"
            for version, event in serving.pricing_runtime.open.items()
        ]
        return Health(
            status="degraded" if problems else "ok",
            problems=problems,
            models={
                name: slot.champion.version if slot.champion else None
                for name, slot in serving.served_models.items()
            },
            prediction_log_pending=serving.prediction_log.pending,
            prediction_log_rows_written=serving.prediction_log.rows_written,
            domains=serving.domain_status(),
            domains_source=serving.config.domains_source,
            pricing_breaker=serving.pricing_runtime.status()
            if "pricing" in serving.served_models
            else None,
            worker_pid=os.getpid(),
            online_state="redis" if serving.config.redis_url else "in-process",
        )

    @get(
        "/ready",
        sync_to_thread=False,
        responses={503: ResponseSpec(Ready, description="Not ready: `missing` says what.")},
    )
    def ready(self, serving: ServingDependency) -> Response[Ready]:
        """200 once every enabled domain's model has a champion and its feature tables and
        extensions are loaded, else 503."""
        missing = serving.missing()
        return Response(Ready(not missing, missing), status_code=200 if not missing else 503)

    @get("/metrics", sync_to_thread=False, media_type=MediaType.TEXT)
    def metrics(self, serving: ServingDependency) -> Response[bytes]:
        """Prometheus text format."""
        serving.metrics.prediction_log_pending.set(serving.prediction_log.pending)
        return Response(
            serving.metrics.render(),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )
