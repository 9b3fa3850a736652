"""POST /v1/forecast: demand quantiles per period (day or week) for store x SKU series, at the
landed promotion plan or at a plan the caller sends."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Annotated, ClassVar

import msgspec
import polars as pl
from litestar import Controller, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import ValidationException
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import JSONBody

from serving.features import FALLBACK_MEANING, DemandFeatures
from serving.openapi import BODY_ERRORS, errors
from serving.schemas import ModelRef, ShortText
from serving.scoring import NotReadyError, forecast, run_demand_shadow
from serving.state import ServingDependency

# Every store x SKU pair is forecast, so the limits are per list: one store with a page of
# SKUs (200) or one SKU across a region's stores (20), at most 4,000 series of 28 days
# (~112k rows, one ONNX call per model version) in one request.
MAX_STORES = 20
MAX_SKUS = 200
# A plan per requested series and period at most: 28 days x a few dozen series, or a chain-
# wide entry per day.
MAX_PLAN_ENTRIES = 1000
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


class PlanEntry(msgspec.Struct, forbid_unknown_fields=True):
    """The price and promotion planned for one forecast period (the period's date as in the
    response), for every requested series or only the given store and / or SKU. Give at least
    one of price, discount_pct and on_promotion; the rest follow (`apply_plan`): price =
    regular price x (1 - discount_pct); discount = 1 - price / regular price; on_promotion =
    the price is below the regular price. The regular price is the series' last price on a day
    without promotion (the catalog's list price for a SKU without history)."""

    date: date
    store_id: ShortText | None = None
    """Only this store (one of the request's); all of them when absent."""
    sku: ShortText | None = None
    """Only this SKU (one of the request's); all of them when absent."""
    price: Annotated[float, msgspec.Meta(gt=0, le=1e9)] | None = None
    """Planned selling price per unit."""
    discount_pct: Annotated[float, msgspec.Meta(ge=0, lt=1)] | None = None
    """Planned discount as a fraction of the regular price (0.2 = 20 % off)."""
    on_promotion: bool | None = None


class ForecastRequest(msgspec.Struct, forbid_unknown_fields=True):
    """One store or a list, one SKU or a list: every store x SKU pair is forecast for periods
    1..`horizon` after the last sales period (days, or weeks on a weekly deployment; the
    response's `grain` says which)."""

    __openapi_properties__: ClassVar[dict[str, Schema]] = {
        "store_id": _ids_schema(MAX_STORES, "A store id"),
        "sku": _ids_schema(MAX_SKUS, "A SKU"),
    }

    store_id: IdOrIds
    """A store id or a list of 1-20 of them."""
    sku: IdOrIds
    """A SKU or a list of 1-200 of them."""
    horizon: Annotated[int, msgspec.Meta(ge=1, le=28)] = 7
    """Periods ahead: 1-28 days on a daily deployment, 1-8 weeks on a weekly one."""
    category: ShortText | None = None
    """Category of a SKU the catalog does not know yet (cold start); ignored otherwise."""
    plan: Annotated[list[PlanEntry], msgspec.Meta(max_length=MAX_PLAN_ENTRIES)] | None = None
    """Price and promotion plan for forecast periods; periods it does not cover use the
    landed promotion plan, else the regular price."""


class ForecastDay(msgspec.Struct):
    date: date
    """The period: the day, or the date a week is reported under."""
    p10: float
    p50: float
    p90: float
    mean: float
    plan_source: str
    """Whose price and promotion plan the period was forecast at: "request", "landed plan"
    or "regular price"."""


class SeriesForecast(msgspec.Struct):
    store_id: str
    sku: str
    fallback: str | None
    fallback_detail: str
    model: ModelRef
    days: list[ForecastDay]


class ForecastResponse(msgspec.Struct):
    origin_date: date
    """Last period of sales history the features were computed from; period 1 is the next."""
    grain: str
    """"day" or "week": the length of one forecast period."""
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


def _check_horizon(data: ForecastRequest, table: DemandFeatures) -> None:
    if data.horizon > table.max_horizon:
        raise ValidationException(
            "horizon beyond the forecast",
            extra=[
                {
                    "key": "horizon",
                    "message": f"this deployment forecasts {table.grain.name}ly, at most "
                    f"{table.grain.periods(table.max_horizon)} ahead; got {data.horizon}",
                }
            ],
        )


def _plans(
    data: ForecastRequest, pairs: list[tuple[str, str, str | None]], table: DemandFeatures
) -> dict[tuple[str, str], pl.DataFrame]:
    """The request's plan per (store_id, sku): entries checked against the forecast periods
    and the requested ids (422 naming `plan[i].<field>`), overlapping entries refused."""
    if not data.plan:
        return {}
    periods = {
        table.origin_date + timedelta(days=k * table.grain.days): k
        for k in range(1, data.horizon + 1)
    }
    stores = {store for store, _, _ in pairs}
    skus = {sku for _, sku, _ in pairs}
    problems, by_pair, claimed = [], {}, {}
    for i, entry in enumerate(data.plan):
        where = f"plan[{i}]"
        if entry.price is None and entry.discount_pct is None and entry.on_promotion is None:
            problems.append(
                {"key": where, "message": "give at least one of price, discount_pct, on_promotion"}
            )
            continue
        if entry.date not in periods:
            first = table.origin_date + timedelta(days=table.grain.days)
            last = table.origin_date + timedelta(days=data.horizon * table.grain.days)
            problems.append(
                {
                    "key": f"{where}.date",
                    "message": f"{entry.date} is not a forecast {table.grain.name} of this "
                    f"request: {first} .. {last}"
                    + (f", every {table.grain.days} days" if table.grain.days > 1 else ""),
                }
            )
        for name, value, known in (
            ("store_id", entry.store_id, stores),
            ("sku", entry.sku, skus),
        ):
            if value is not None and value not in known:
                problems.append(
                    {"key": f"{where}.{name}", "message": f"{value!r} is not in the request"}
                )
        if problems and problems[-1]["key"].startswith(where):
            continue
        for store, sku, _ in pairs:
            if entry.store_id not in (None, store) or entry.sku not in (None, sku):
                continue
            key = (store, sku, entry.date)
            if key in claimed:
                problems.append(
                    {
                        "key": where,
                        "message": f"plans {store}/{sku} on {entry.date} again "
                        f"(plan[{claimed[key]}] already does)",
                    }
                )
                break
            claimed[key] = i
            by_pair.setdefault((store, sku), []).append(entry)
    if problems:
        raise ValidationException("invalid plan", extra=problems)
    return {
        pair: pl.DataFrame(
            {
                "target_date": [e.date for e in entries],
                "price": [e.price for e in entries],
                "discount_pct": [e.discount_pct for e in entries],
                "on_promotion": [e.on_promotion for e in entries],
            },
            schema={
                "target_date": pl.Date,
                "price": pl.Float64,
                "discount_pct": pl.Float64,
                "on_promotion": pl.Boolean,
            },
        )
        for pair, entries in by_pair.items()
    }


class ForecastController(Controller):
    path = "/v1/forecast"
    tags = ["forecast"]

    @post(sync_to_thread=False, status_code=200, responses=errors(*BODY_ERRORS, 503))
    def create(
        self, data: JSONBody[ForecastRequest], serving: ServingDependency
    ) -> Response[ForecastResponse]:
        """Forecast units sold per period (p10 / p50 / p90 and mean) for each series, at the
        caller's plan where given, else the landed promotion plan, else the regular price
        (each period says which); planned closing days are 0. Unknown SKUs or stores get
        documented cold-start features; each forecast names the fallback it used."""
        table = serving.demand
        if table is None:
            raise NotReadyError("demand online features are not loaded")
        _check_horizon(data, table)
        pairs = _pairs(data)
        plans = _plans(data, pairs, table)
        table, results, shadow_work = forecast(serving, pairs, data.horizon, plans, table)
        body = ForecastResponse(
            origin_date=table.origin_date,
            grain=table.grain.name,
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
                            plan_source=r.plan_sources[i],
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
