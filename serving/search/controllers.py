"""GET /v1/search (semantic product search), GET /v1/search/status and the search admin
endpoints (canary share, promote, roll back)."""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import JSONBody, Parameter, SkipValidation

from retail_assets.core.store import RoleError, Rollout
from retail_assets.search.index import Filters
from retail_assets.search.store import canary_policy
from serving.controllers.admin import require_admin
from serving.openapi import ADMIN_ERRORS, ADMIN_SECURITY, BODY_ERRORS, errors
from serving.scoring import NotReadyError
from serving.search.runtime import SearchRuntime
from serving.state import ServingDependency

MAX_K = 100
MAX_PRICE = 10_000_000.0
Text = Annotated[str | None, Parameter(min_length=1, max_length=64)]
# `minimum` restated: Litestar drops a zero lower bound from an optional number's schema.
Price = Annotated[float | None, Parameter(ge=0.0, le=MAX_PRICE, schema_extra={"minimum": 0.0})]
RoutingId = Annotated[
    str | None, Parameter(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")
]


class SearchHit(msgspec.Struct):
    rank: int
    sku: str
    title: str
    price: float | None
    category: str | None
    subcategory: str | None
    brand: str | None
    color: str | None
    score: float
    """Cosine similarity of the query and product embeddings."""


class SearchResponse(msgspec.Struct):
    query: str
    k: int
    index_version: str
    arm: str
    """'live', or 'candidate' for the canary share of sessions."""
    encoder: str
    filters: dict[str, str | float | bool]
    results: list[SearchHit]
    took_ms: float
    """Query embedding + index search, in the app."""
    cached_query: bool
    request_id: str
    """Names this search in the prediction log; clicks in the same session on its results
    are attributed to it (the canary's click-through test)."""


class IndexInfo(msgspec.Struct):
    version: str
    products: int
    encoder: str
    built_at: str | None
    build_mode: str | None
    loaded_at: str


class SearchStatus(msgspec.Struct):
    live: IndexInfo | None
    candidate: IndexInfo | None
    canary_share: float
    min_canary_seconds: float
    requests: dict[str, int]
    query_cache: dict[str, int]
    problems: list[str]


class SearchRolloutRequest(msgspec.Struct, forbid_unknown_fields=True):
    canary_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    min_canary_seconds: Annotated[float, msgspec.Meta(ge=0.0, le=30 * 86400.0)] | None = None


class ReasonRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


class SearchDecision(msgspec.Struct):
    action: str
    version: str | None
    reason: str
    status: SearchStatus


SearchDependency = NamedDependency[SkipValidation[SearchRuntime]]

# Role names in the prediction log, as for the models (the API says live / candidate).
LOG_ARMS = {"live": "champion", "candidate": "challenger"}


def log_search(serving, outcome, q, filters, session_id, user_id, hits, request_id) -> None:
    """One prediction-log row per search: the session (clicks are attributed by session),
    the query and filters, and the SKUs returned in rank order."""
    serving.prediction_log.log(
        model="search",
        version=outcome.served.version,
        arm=LOG_ARMS.get(outcome.arm, outcome.arm),
        entity_id=session_id or user_id or "",
        features={
            "q": q,
            "filters": filters.as_dict(),
            "session_id": session_id,
            "user_id": user_id,
        },
        output={"skus": [hit.sku for hit in hits]},
        latency_ms=outcome.seconds * 1000,
        request_id=request_id,
    )


_QUERY_PARAMS = frozenset(
    {
        "q",
        "k",
        "department",
        "category",
        "subcategory",
        "brand",
        "color",
        "min_price",
        "max_price",
        "waterproof",
        "session_id",
        "user_id",
    }
)


def _status(search: SearchRuntime) -> SearchStatus:
    return msgspec.convert(search.status(), SearchStatus)


class SearchController(Controller):
    path = "/v1/search"
    tags: ClassVar[list[str]] = ["search"]

    # On the event loop like the other scoring endpoints: ~1.5 ms of encoding + search; a
    # thread handoff measured the same throughput with twice the p99 at 8 connections.
    @get(sync_to_thread=False, responses=errors(422, 503))
    def search(
        self,
        request: Request,
        search_service: SearchDependency,
        serving: ServingDependency,
        q: Annotated[
            str,
            Parameter(
                min_length=1,
                max_length=256,
                # An explicit class: `\S` differs between Python's and JSON Schema's regexes.
                pattern=r"[^\t\n\v\f\r ]",
                description="what the shopper typed (at least one non-space character)",
            ),
        ],
        k: Annotated[int, Parameter(ge=1, le=MAX_K, description="results wanted")] = 10,
        department: Text = None,
        category: Text = None,
        subcategory: Text = None,
        brand: Text = None,
        color: Text = None,
        min_price: Price = None,
        max_price: Price = None,
        waterproof: Annotated[
            bool | None, Parameter(description="true: waterproof only; false: not waterproof")
        ] = None,
        session_id: RoutingId = None,
        user_id: RoutingId = None,
    ) -> SearchResponse:
        """Products ranked by semantic similarity to `q` (embedded with the ONNX encoder in
        this process), optionally filtered by department, category, subcategory, brand,
        colour (exact, case-insensitive), price range and waterproofness. The response names
        the index version and the rollout arm: a stable hash of `session_id` (else `user_id`,
        else the query) sends the configured canary share to the candidate index. A price range
        with `min_price` above `max_price` matches no product (an empty result, not an
        error)."""
        unknown = sorted(set(request.query_params) - _QUERY_PARAMS)
        if unknown:
            raise ValidationException(
                detail=f"unknown query parameter(s): {', '.join(unknown)}",
                extra=[
                    {"key": name, "message": "unknown query parameter", "source": "query"}
                    for name in unknown
                ],
            )
        filters = Filters(
            department=department,
            category=category,
            subcategory=subcategory,
            brand=brand,
            color=color,
            min_price=min_price,
            max_price=max_price,
            waterproof=waterproof,
        )
        outcome = search_service.search(q, k, filters, session_id or user_id)
        if outcome is None:
            raise NotReadyError("no live search index is loaded yet")
        metrics = search_service.metrics(serving.metrics.registry)
        metrics.requests.labels(outcome.served.version, outcome.arm).inc()
        metrics.latency.labels(outcome.arm).observe(outcome.seconds)
        metrics.cache.labels("hit" if outcome.cached_query else "miss").inc()
        index = outcome.served.index
        hits = [
            SearchHit(rank=rank, **index.result(int(row), float(score)))
            for rank, (row, score) in enumerate(
                zip(outcome.rows, outcome.scores, strict=True), start=1
            )
        ]
        request_id = uuid.uuid4().hex
        log_search(serving, outcome, q, filters, session_id, user_id, hits, request_id)
        return SearchResponse(
            request_id=request_id,
            query=q,
            k=k,
            index_version=outcome.served.version,
            arm=outcome.arm,
            encoder=outcome.served.encoder_id,
            filters=filters.as_dict(),
            results=hits,
            took_ms=round(outcome.seconds * 1000, 3),
            cached_query=outcome.cached_query,
        )

    @get("/status", sync_to_thread=False)
    def status(self, search_service: SearchDependency) -> SearchStatus:
        """Loaded live and candidate index versions, canary settings, requests per arm,
        query cache and problems."""
        return _status(search_service)


class SearchAdminController(Controller):
    path = "/v1/admin/search"
    guards: ClassVar[list] = [require_admin]
    tags: ClassVar[list[str]] = ["admin"]
    security = ADMIN_SECURITY

    @put("/rollout", sync_to_thread=True, responses=errors(*ADMIN_ERRORS, *BODY_ERRORS))
    def set_rollout(
        self, data: JSONBody[SearchRolloutRequest], search_service: SearchDependency
    ) -> SearchStatus:
        """Set the share of search sessions the candidate index gets (and optionally how long
        it must serve before the click-through test may decide it; 0 disables the canary);
        applies without a restart and is recorded in the decision log."""
        store = search_service.store
        current = canary_policy(store)
        store.set_rollout(
            Rollout(
                "canary",
                data.canary_share,
                current.min_seconds if data.min_canary_seconds is None else data.min_canary_seconds,
            ),
            reason=f"canary share {data.canary_share}",
            actor="admin-api",
        )
        search_service.slot.refresh()
        search_service.after_refresh([])
        return _status(search_service)

    @post(
        "/promote",
        sync_to_thread=True,
        status_code=200,
        responses=errors(*ADMIN_ERRORS, *BODY_ERRORS, 409),
    )
    def promote(
        self, data: JSONBody[ReasonRequest], search_service: SearchDependency
    ) -> SearchDecision:
        """Make the candidate index (already past the offline gate) live now."""
        candidate = search_service.active.challenger
        if candidate is None:
            raise HTTPException(status_code=409, detail="there is no loaded candidate index")
        entry = search_service.store.promote(
            candidate.version, reason=data.reason, actor="admin-api", action="manual_promote"
        )
        search_service.slot.refresh()
        return SearchDecision("promote", entry["version"], data.reason, _status(search_service))

    @post(
        "/rollback",
        sync_to_thread=True,
        status_code=200,
        responses=errors(*ADMIN_ERRORS, *BODY_ERRORS, 409),
    )
    def rollback(
        self, data: JSONBody[ReasonRequest], search_service: SearchDependency
    ) -> SearchDecision:
        """Make the index version that was live before the current one live again."""
        try:
            entry = search_service.store.rollback(reason=data.reason, actor="admin-api")
        except RoleError as exc:
            raise HTTPException(status_code=409, detail=str(exc)) from None
        search_service.slot.refresh()
        return SearchDecision("rollback", entry["version"], data.reason, _status(search_service))
