"""Admin endpoints (bearer token from RETAIL_ADMIN_TOKEN): reload, rollout mode, promote and
roll back. Missing credentials answer 401, wrong ones 403; with no token configured the
admin API is closed (403)."""

from __future__ import annotations

import hmac
from typing import Annotated

import msgspec
from litestar import Controller, post, put
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ServiceUnavailableException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.spec import Example
from litestar.params import JSONBody, Parameter

from serving.openapi import ADMIN_ERRORS, ADMIN_SECURITY, BODY_ERRORS, errors
from serving.rollout import MODES, Rollout
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


def _known(serving: ServingDependency, name: str) -> str:
    if name not in serving.models.slots:
        raise NotFoundException(
            f"unknown model {name!r}; served models: {', '.join(serving.models.slots)}"
        )
    return name


def _run_lifecycle(operation: str, *args, **kwargs) -> dict:
    """Run a lifecycle operation (promote, rollback) for the admin API. Built from settings
    alone, never from the Dagster definitions (which need a dbt executable on PATH). A
    refusal the lifecycle explains (unknown version, invalid bundle, nothing to roll back to)
    is a 409 through the app's handlers; anything else that stops it (registry database
    locked or unreachable) is a 503 that says what failed, never an unhandled 500."""
    # Imported lazily: only admin calls need the registry, the request path never does.
    from retail_assets.models.lifecycle.bundle import BundleInvalidError
    from retail_assets.models.lifecycle.operations import LifecycleError, lifecycle_for
    from retail_assets.settings import get_settings

    try:
        return getattr(lifecycle_for(get_settings()), operation)(*args, **kwargs)
    except (LifecycleError, BundleInvalidError, NotFoundException):
        raise
    except Exception as exc:
        raise ServiceUnavailableException(
            f"{operation} could not be carried out: {type(exc).__name__}: {exc}"
        ) from exc


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
        """Switch how the model's challenger sees traffic, without a restart."""
        _known(serving, name)
        serving.rollout.set(name, Rollout(data.mode, data.canary_share))
        serving.refresh()
        challenger = serving.models.slot(name).challenger
        return RolloutResponse(
            name, data.mode, data.canary_share, challenger.version if challenger else None
        )

    @post(
        "/models/{name:str}/promote",
        sync_to_thread=True,
        status_code=200,
        responses=errors(*ADMIN_ERRORS, *BODY_ERRORS, 404, 409, 503),
    )
    def promote(
        self,
        name: ModelName,
        data: JSONBody[PromoteRequest],
        serving: ServingDependency,
    ) -> LifecycleResponse:
        """Make a registered version the champion (its bundle is validated first), then load
        it."""
        _known(serving, name)
        entry = _run_lifecycle("manual_promote", name, data.version, data.reason, actor="admin-api")
        serving.refresh()
        return self._answer(serving, name, "manual_promote", entry)

    @post(
        "/models/{name:str}/rollback",
        sync_to_thread=True,
        status_code=200,
        responses=errors(*ADMIN_ERRORS, *BODY_ERRORS, 404, 409, 503),
    )
    def rollback(
        self,
        name: ModelName,
        data: JSONBody[RollbackRequest],
        serving: ServingDependency,
    ) -> LifecycleResponse:
        """Reinstate the champion the current one replaced, then load it."""
        _known(serving, name)
        entry = _run_lifecycle("rollback", name, data.reason, actor="admin-api")
        serving.refresh()
        return self._answer(serving, name, "rollback", entry)

    @staticmethod
    def _answer(
        serving: ServingDependency, name: str, action: str, entry: dict
    ) -> LifecycleResponse:
        champion = serving.models.slot(name).champion
        return LifecycleResponse(
            model=name,
            action=action,
            champion_before=entry.get("champion_before"),
            champion_after=entry.get("champion_after"),
            serving_version=champion.version if champion else None,
            problems=serving.models.slot(name).degraded,
        )
