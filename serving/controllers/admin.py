"""Admin endpoints (bearer token from RETAIL_ADMIN_TOKEN): reload, rollout mode, promote, roll
back, and the decision log with each decision's gate table. Missing credentials answer 401,
wrong ones 403; with no token configured the admin API is closed (403).

Promote and roll back move the model's serving pointer through its artifact store (bundle
validated first, decision logged) — the same store the pipeline and `retail models` use. The
serving process never loads MLflow or the training stack: the registry's aliases follow the
store from the pipeline side (`retail models list|promote|rollback`, the promotion asset and
the `registry_alias_sync` sensor)."""

from __future__ import annotations

import hmac
from typing import Annotated

import msgspec
from litestar import Controller, get, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from retail_assets.core.store import MODES, Rollout
from serving.openapi import ADMIN_ERRORS, ADMIN_SECURITY, BODY_ERRORS, errors
from serving.state import ServingDependency

ModelName = Annotated[
    str,
    Parameter(
        pattern=r"^[a-z0-9_\-]{1,64}$",
        description="model name, e.g. fraud",
        examples=[Example(value="fraud"), Example(value="demand")],
    ),
]


def require_admin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthorizedException("admin endpoints need 'Authorization: Bearer <token>'")
    expected = connection.app.state.admin_token
    if not expected:
        raise PermissionDeniedException("admin API is disabled: RETAIL_ADMIN_TOKEN is not set")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise PermissionDeniedException("invalid admin token")


class RolloutRequest(msgspec.Struct, forbid_unknown_fields=True):
    mode: Annotated[str, msgspec.Meta(pattern="^(" + "|".join(MODES) + ")$")]
    """'off', 'shadow' (challenger scored off the response path) or 'canary'."""
    canary_share: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)] = 0.0


class PromoteRequest(msgspec.Struct, forbid_unknown_fields=True):
    version: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,9}$")]
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


class RollbackRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


class ReloadResponse(msgspec.Struct):
    changes: list[str]
    problems: list[str]


class RolloutResponse(msgspec.Struct):
    model: str
    mode: str
    canary_share: float
    challenger_version: str | None


class LifecycleResponse(msgspec.Struct):
    model: str
    action: str
    champion_before: str | None
    champion_after: str | None
    serving_version: str | None
    problems: list[str]


class GateRow(msgspec.Struct):
    rule: str
    scope: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str = ""


class Decision(msgspec.Struct):
    at: str
    artifact: str
    action: str
    version: str | None
    champion_before: str | None
    champion_after: str | None
    reason: str
    actor: str
    gate: list[GateRow]
    """The gate's checks when the decision was gated (promote / refuse), else empty."""


class DecisionsResponse(msgspec.Struct):
    decisions: list[Decision]


def _known(serving: ServingDependency, name: str) -> str:
    if name not in serving.models:
        raise NotFoundException(
            f"unknown model {name!r}; served models: {', '.join(serving.models)}"
        )
    return name


def _decision(entry: dict) -> Decision:
    gate = (entry.get("evidence") or {}).get("gate") or []
    return Decision(
        at=entry["at"],
        artifact=entry["artifact"],
        action=entry["action"],
        version=None if entry.get("version") is None else str(entry["version"]),
        champion_before=entry.get("champion_before"),
        champion_after=entry.get("champion_after"),
        reason=str(entry.get("reason") or ""),
        actor=str(entry.get("actor") or ""),
        gate=[msgspec.convert(row, GateRow) for row in gate],
    )


class AdminController(Controller):
    path = "/v1/admin"
    guards = [require_admin]
    tags = ["admin"]
    security = ADMIN_SECURITY

    @post("/reload", sync_to_thread=True, status_code=200, responses=errors(*ADMIN_ERRORS))
    def reload(self, serving: ServingDependency) -> ReloadResponse:
        """Look for new champions, challengers and feature tables now (instead of waiting
        for the poll)."""
        return ReloadResponse(serving.refresh(), serving.problems())

    @put(
        "/models/{name:str}/rollout",
        sync_to_thread=True,
        responses=errors(*ADMIN_ERRORS, *BODY_ERRORS, 404),
    )
    def set_rollout(
        self,
        name: ModelName,
        data: JSONBody[RolloutRequest],
        serving: ServingDependency,
    ) -> RolloutResponse:
        """Switch how the model's challenger sees traffic, without a restart (recorded in
        the decision log)."""
        _known(serving, name)
        serving.config.artifacts.model(name).set_rollout(
            Rollout(data.mode, data.canary_share),
            reason=f"{data.mode} at share {data.canary_share}",
            actor="admin-api",
        )
        serving.refresh()
        challenger = serving.model(name).challenger
        return RolloutResponse(
            name, data.mode, data.canary_share, challenger.version if challenger else None
        )

    @post(
        "/models/{name:str}/promote",
        sync_to_thread=True,
        status_code=200,
        responses=errors(*ADMIN_ERRORS, *BODY_ERRORS, 404, 409),
    )
    def promote(
        self,
        name: ModelName,
        data: JSONBody[PromoteRequest],
        serving: ServingDependency,
    ) -> LifecycleResponse:
        """Make a published version the champion (its bundle is validated first), then load
        it. 409 when the version has no bundle, its bundle is invalid, or it already is the
        champion."""
        _known(serving, name)
        entry = serving.config.artifacts.model(name).promote(
            data.version,
            reason=data.reason,
            actor="admin-api",
            action="manual_promote",
            require_change=True,
        )
        serving.refresh()
        return self._answer(serving, name, "manual_promote", entry)

    @post(
        "/models/{name:str}/rollback",
        sync_to_thread=True,
        status_code=200,
        responses=errors(*ADMIN_ERRORS, *BODY_ERRORS, 404, 409),
    )
    def rollback(
        self,
        name: ModelName,
        data: JSONBody[RollbackRequest],
        serving: ServingDependency,
    ) -> LifecycleResponse:
        """Reinstate the champion the current one replaced, then load it (409 when there is
        nothing to roll back to)."""
        _known(serving, name)
        entry = serving.config.artifacts.model(name).rollback(reason=data.reason, actor="admin-api")
        serving.refresh()
        return self._answer(serving, name, "rollback", entry)

    @get(
        "/models/{name:str}/decisions",
        sync_to_thread=True,
        responses=errors(*ADMIN_ERRORS, 404, 422),
    )
    def decisions(
        self,
        name: ModelName,
        serving: ServingDependency,
        limit: Annotated[int, Parameter(ge=1, le=500, description="newest first")] = 20,
    ) -> DecisionsResponse:
        """The model's recent decisions (promotions, refusals, rollbacks, rollout changes),
        newest first, each with the gate's checks when it was gated."""
        _known(serving, name)
        entries = serving.config.artifacts.log.entries(f"model/{name}")
        return DecisionsResponse([_decision(e) for e in reversed(entries[-limit:])])

    @staticmethod
    def _answer(
        serving: ServingDependency, name: str, action: str, entry: dict
    ) -> LifecycleResponse:
        slot = serving.model(name)
        champion = slot.champion
        return LifecycleResponse(
            model=name,
            action=action,
            champion_before=entry.get("champion_before"),
            champion_after=entry.get("champion_after"),
            serving_version=champion.version if champion else None,
            problems=list(slot.problems),
        )
