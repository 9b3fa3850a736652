"""The serving app factory: `create_app()` wires state, controllers, error handling, metrics
and OpenAPI. Run it with `retail serve` (uvicorn, one worker: the fraud velocity state lives in
the process)."""

from __future__ import annotations

import logging

from litestar import Litestar
from litestar.di import Provide
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

from retail_assets.core.store import ArtifactInvalidError, RoleError
from serving.config import ServingConfig
from serving.controllers.admin import AdminController
from serving.controllers.forecast import ForecastController
from serving.controllers.fraud import FraudController
from serving.controllers.models import HealthController, ModelsController
from serving.controllers.pricing import PriceController, PricingAdminController
from serving.controllers.recommend import RecommendController
from serving.extensions import ServingExtension, load_extensions
from serving.metrics import MetricsMiddleware, route_template
from serving.openapi import COMPONENTS, finalize_openapi
from serving.scoring import NotReadyError
from serving.state import ServingState
from serving.validation import (
    error_response,
    handle_client_error,
    handle_http_error,
    handle_validation,
)

log = logging.getLogger("retail.serving")

CONTROLLERS = [
    ForecastController,
    FraudController,
    RecommendController,
    PriceController,
    PricingAdminController,
    ModelsController,
    HealthController,
    AdminController,
]


def extension_controllers(name: str) -> list[type]:
    """The controllers of an extension: this module pairs runtimes with controllers, so a
    runtime never imports its controllers (and controllers only import runtimes)."""
    if name == "search":
        from serving.search.controllers import SearchAdminController, SearchController

        return [SearchController, SearchAdminController]
    if name == "assistant":
        from serving.assistant.controller import AssistantController

        return [AssistantController]
    raise ValueError(f"no controllers registered for extension {name!r}")


def _provider(value):
    def provide():
        return value

    return provide


def create_app(
    config: ServingConfig | None = None,
    state: ServingState | None = None,
    extensions: list[ServingExtension] | None = None,
) -> Litestar:
    """The app. `extensions` defaults to search and the assistant (`load_extensions`)."""
    config = config or ServingConfig.from_settings()
    serving = state or ServingState.from_config(config)
    serving.extensions = load_extensions(config) if extensions is None else extensions

    def provide_serving() -> ServingState:
        return serving

    def not_ready(_, exc: NotReadyError):
        return error_response(503, "not_ready", str(exc))

    def lifecycle_conflict(_, exc: Exception):
        problems = getattr(exc, "problems", None)
        return error_response(409, "lifecycle_conflict", str(exc), problems=problems)

    def unexpected(request, exc: Exception):
        route = request.scope.get("path", "")
        log.exception("unhandled error on %s", route, exc_info=exc)
        serving.metrics.errors.labels(route_template(route, known), type(exc).__name__).inc()
        return error_response(500, "internal_error", "internal error (logged)")

    dependencies = {"serving": Provide(provide_serving, sync_to_thread=False, use_cache=True)}
    controllers = list(CONTROLLERS)
    for extension in serving.extensions:
        controllers += extension_controllers(extension.name)
        dependencies[extension.dependency_name] = Provide(
            _provider(extension), sync_to_thread=False, use_cache=True
        )
    app = Litestar(
        route_handlers=controllers,
        dependencies=dependencies,
        exception_handlers={
            ValidationException: handle_validation,
            ClientException: handle_client_error,
            HTTPException: handle_http_error,
            NotReadyError: not_ready,
            RoleError: lifecycle_conflict,
            ArtifactInvalidError: lifecycle_conflict,
            Exception: unexpected,
        },
        request_max_body_size=config.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Retail MLOps serving",
            version="1.0.0",
            description=(
                "Demand forecasts and payment fraud scores from the promoted model bundles, "
                "with online features joined in."
            ),
            path="/schema",
            components=COMPONENTS,
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
        ),
        on_startup=[serving.start],
        on_shutdown=[serving.stop],
        debug=False,
    )
    app.state.admin_token = config.admin_token
    app.state.serving = serving
    finalize_openapi(app)
    known = frozenset(route.path_format for route in app.routes)
    app.asgi_handler = MetricsMiddleware(app.asgi_handler, serving.metrics, known)
    return app
