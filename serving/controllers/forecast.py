"""POST /v1/forecast: daily demand quantiles for store x SKU series."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, ClassVar

import msgspec
from litestar import Controller, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import ValidationException
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import JSONBody

from serving.features import FALLBACK_MEANING
from serving.openapi import BODY_ERRORS, errors
from serving.schemas import ModelRef, ShortText
from serving.scoring import forecast, run_demand_shadow
from serving.state import ServingDependency

# Every store x SKU pair is forecast, so the limits are per list: one store with a page of
# SKUs (200) or one SKU across a region's stores (20), at most 4,000 series of 28 days
# (~112k rows, one ONNX call per model version) in one request.
MAX_STORES = 20
MAX_SKUS = 200
# Retailers' ids are opaque: 1-64 characters, anything but control characters.
ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,64}$"
_ID = re.compile(ID_PATTERN)

# Plain `str | list[str]`: msgspec 0.22 corrupts memory on a union of *constrained* str and
# list (segfault at the next GC), so ids in these two fields are checked in `_ids` and their
# constraints are stated in the OpenAPI document through `__openapi_properties__`.
IdOrIds = str | list[str]


def _ids_schema(max_items: int, what: str) -> Schema:
    one = Schema(type=OpenAPIType.STRING, min_length=1, max_length=64, pattern=ID_PATTERN)
    return Schema(
        one_of=[
            one,
            Schema(type=OpenAPIType.ARRAY, items=one, min_items=1, max_items=max_items),
        ],
        description=f"{what} or a list of 1-{max_items} of them (ids: 1-64 characters, no "
        "control characters).",
    )


class ForecastRequest(msgspec.Struct, forbid_unknown_fields=True):
    """One store or a list, one SKU or a list: every store x SKU pair is forecast for days
    1..`horizon` after the last sales day."""

    __openapi_properties__: ClassVar[dict[str, Schema]] = {
        "store_id": _ids_schema(MAX_STORES, "A store id"),
        "sku": _ids_schema(MAX_SKUS, "A SKU"),
    }

    store_id: IdOrIds
    """A store id or a list of 1-20 of them."""
    sku: IdOrIds
    """A SKU or a list of 1-200 of them."""
    horizon: Annotated[int, msgspec.Meta(ge=1, le=28)] = 7
    category: ShortText | None = None
    """Category of a SKU the catalog does not know yet (cold start); ignored otherwise."""


class ForecastDay(msgspec.Struct):
    date: date
    p10: float
    p50: float
    p90: float
    mean: float


class SeriesForecast(msgspec.Struct):
    store_id: str
    sku: str
    fallback: str | None
    fallback_detail: str
    model: ModelRef
    days: list[ForecastDay]


class ForecastResponse(msgspec.Struct):
    origin_date: date
    """Last day of sales history the features were computed from; day 1 is the day after."""
    feature_version: str
    forecasts: list[SeriesForecast]


def _ids(data: ForecastRequest) -> tuple[list[str], list[str]]:
    problems = []
    values = {}
    for name, limit in (("store_id", MAX_STORES), ("sku", MAX_SKUS)):
        value = getattr(data, name)
        ids = [value] if isinstance(value, str) else value
        if not ids:
            problems.append({"key": name, "message": "give at least one id"})
        elif len(ids) > limit:
            problems.append({"key": name, "message": f"at most {limit} ids; got {len(ids)}"})
        for i, item in enumerate(ids):
            if not _ID.match(item):
                where = name if isinstance(value, str) else f"{name}[{i}]"
                problems.append(
                    {"key": where, "message": "ids are 1-64 characters, no control characters"}
                )
        values[name] = ids
    if problems:
        raise ValidationException("invalid ids", extra=problems)
    return values["store_id"], values["sku"]


def _pairs(data: ForecastRequest) -> list[tuple[str, str, str | None]]:
    stores, skus = _ids(data)
    return [(store, sku, data.category) for store in stores for sku in skus]


class ForecastController(Controller):
    path = "/v1/forecast"
    tags = ["forecast"]

    @post(sync_to_thread=False, status_code=200, responses=errors(*BODY_ERRORS, 503))
    def create(
        self, data: JSONBody[ForecastRequest], serving: ServingDependency
    ) -> Response[ForecastResponse]:
        """Forecast daily units sold (p10 / p50 / p90 and mean) for each series, at regular
        price. Unknown SKUs or stores get documented cold-start features; each forecast names
        the fallback it used."""
        table, results, shadow_work = forecast(serving, _pairs(data), data.horizon)
        body = ForecastResponse(
            origin_date=table.origin_date,
            feature_version=table.version,
            forecasts=[
                SeriesForecast(
                    store_id=r.store_id,
                    sku=r.sku,
                    fallback=r.fallback,
                    fallback_detail=FALLBACK_MEANING[r.fallback],
                    model=ModelRef(r.model.name, r.model.version, r.arm),
                    days=[
                        ForecastDay(
                            date=day,
                            p10=round(float(r.outputs["p10"][i]), 3),
                            p50=round(float(r.outputs["p50"][i]), 3),
                            p90=round(float(r.outputs["p90"][i]), 3),
                            mean=round(float(r.outputs["mean"][i]), 3),
                        )
                        for i, day in enumerate(r.dates)
                    ],
                )
                for r in results
            ],
        )
        background = (
            BackgroundTask(run_demand_shadow, serving, shadow_work) if shadow_work else None
        )
        return Response(body, background=background)
