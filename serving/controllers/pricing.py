"""POST /v1/price and /v1/price:batch: the recommended regular price of a SKU in a store,
inside the guardrails, with the trace of the rules that bound it, the expected units and
margin, and which model version and arm answered (or which fallback, while the circuit
breaker is open). POST /v1/admin/pricing/breaker/{version}/close closes an open breaker
(admin token)."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import JSONBody, Parameter

from retail_assets.core import clock
from serving.controllers.admin import require_admin
from serving.openapi import ADMIN_ERRORS, ADMIN_SECURITY, BODY_ERRORS, errors
from serving.pricing import PriceAnswer, PriceQuery, PricingFeatures
from serving.schemas import Id, ModelRef, ShortText
from serving.scoring import NotReadyError, price_items
from serving.state import ServingDependency

# A catalog-sized batch: every store x SKU of a mid-sized chain in one call (the body limit,
# RETAIL_SERVING_MAX_BODY_BYTES, may bind first).
MAX_BATCH = 20_000
MAX_PRICE = 1e7


class PriceRequest(msgspec.Struct, forbid_unknown_fields=True):
    sku: ShortText
    store_id: Id
    competitor_price: Annotated[float, msgspec.Meta(gt=0, le=MAX_PRICE)] | None = None
    """The competitor's current price, if you know a fresher one than the last scrape."""
    stock: Annotated[float, msgspec.Meta(ge=0, le=1e9)] | None = None
    """Units on hand: expected sales are capped by it (scarce stock prices higher)."""
    emergency: bool = False
    """A declared emergency: increases are capped by the anti-gouging rule against the price
    a week ago."""
    minimum_advertised_price: Annotated[float, msgspec.Meta(gt=0, le=MAX_PRICE)] | None = None
    """The supplier's MAP for this SKU, if any."""


class PriceBatchRequest(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[PriceRequest], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class GuardrailBound(msgspec.Struct):
    rule: str
    side: str
    """'low' (the rule raised the price) or 'high' (it lowered it)."""
    limit: float
    moved_by: float
    """How far the rule moved the optimizer's price (currency units)."""


class RelaxedRule(msgspec.Struct):
    rule: str
    wanted: list[float | None]
    kept: list[float]
    reason: str


class PriceResponse(msgspec.Struct):
    sku: str
    store_id: str
    price: float
    """The recommended regular price (currency units, with the configured ending)."""
    current_price: float
    list_price: float
    change: float
    """price / current_price - 1."""
    expected_units: float | None
    """Expected units per day at the recommended price (None for a list-price fallback)."""
    expected_margin: float | None
    expected_revenue: float | None
    proposed_price: float
    """What the optimizer wanted before the guardrails."""
    allowed_range: list[float | None]
    """[low, high] the guardrails allowed (high None: no cap)."""
    bound_by: list[GuardrailBound]
    relaxed: list[RelaxedRule]
    ending: str
    fallback: str | None
    """None: the model's price. 'champion': the challenger's breaker is open, the champion
    answered. 'list_price': the list price inside the guardrails (the breaker of the version
    that would have answered is open)."""
    fallback_reason: str | None
    model: ModelRef


class PriceBatchResponse(msgspec.Struct):
    prices: list[PriceResponse]
    features_as_of: date
    priced_for: date


def _queries(items: list[PriceRequest], table: PricingFeatures, prefix: str) -> list[PriceQuery]:
    problems = []
    for i, item in enumerate(items):
        where = f"{prefix}[{i}]." if prefix else ""
        i = table.index.get((item.store_id, item.sku))
        if i is not None:
            if not table.unit_cost[i] > 0:
                problems.append(
                    {
                        "key": f"{where}sku",
                        "message": f"SKU {item.sku!r} at store {item.store_id!r} has no unit cost "
                        "in the sales feed, so the margin floor cannot be enforced: land "
                        "`unit_cost` with the sales to price it",
                    }
                )
            continue
        if item.store_id not in table.stores:
            problems.append(
                {
                    "key": f"{where}store_id",
                    "message": f"unknown store {item.store_id!r}; known: "
                    + ", ".join(table.stores[:30]),
                }
            )
        else:
            problems.append(
                {
                    "key": f"{where}sku",
                    "message": f"SKU {item.sku!r} has no price history at store {item.store_id!r} "
                    f"(as of {table.as_of}): a new SKU is priced by hand until it has sold",
                }
            )
        if len(problems) >= 50:
            break
    if problems:
        raise ValidationException("unknown SKU or store", extra=problems)
    return [
        PriceQuery(
            item.store_id,
            item.sku,
            item.competitor_price,
            item.stock,
            item.emergency,
            item.minimum_advertised_price,
        )
        for item in items
    ]


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def _response(a: PriceAnswer) -> PriceResponse:
    d = a.recommendation.decision
    model = a.model
    return PriceResponse(
        sku=a.query.sku,
        store_id=a.query.store_id,
        price=d.price,
        current_price=round(a.current_price, 2),
        list_price=round(a.list_price, 2),
        change=round(d.price / a.current_price - 1, 6),
        expected_units=_number(a.recommendation.expected_units) if a.expected else None,
        expected_margin=_number(a.recommendation.expected_margin) if a.expected else None,
        expected_revenue=_number(a.recommendation.expected_revenue) if a.expected else None,
        proposed_price=d.proposed,
        allowed_range=[d.low, d.high],
        bound_by=[GuardrailBound(**b) for b in d.bound_by],
        relaxed=[RelaxedRule(**r) for r in d.relaxed],
        ending=d.ending,
        fallback=a.fallback,
        fallback_reason=a.fallback_reason,
        model=ModelRef("pricing", model.version if model else "list_price", a.arm),
    )


def _day(serving: ServingDependency, table: PricingFeatures) -> date:
    """The day being priced: the day after the latest sales in replay mode, else today (its
    weekday and week of year enter the model)."""
    if serving.config.payment_clock.mode == "replay":
        return table.as_of + timedelta(days=1)
    return clock.now().date()


def _table(serving: ServingDependency) -> PricingFeatures:
    table = serving.pricing
    if table is None:
        raise NotReadyError("pricing online features are not loaded")
    return table


class PriceController(Controller):
    path = "/v1"
    tags = ["pricing"]

    @post("/price", sync_to_thread=False, status_code=200, responses=errors(*BODY_ERRORS, 503))
    def price(self, data: JSONBody[PriceRequest], serving: ServingDependency) -> PriceResponse:
        """The margin-maximizing regular price (or the configured revenue/margin mix) of one
        SKU in one store for the next day, inside the guardrails (margin floor, change per
        update and per week, competitor band, MAP, price endings, anti-gouging), with the
        rules that bound it."""
        table = _table(serving)
        queries = _queries([data], table, "")
        return _response(price_items(serving, table, queries, _day(serving, table))[0])

    @post(
        "/price:batch", sync_to_thread=False, status_code=200, responses=errors(*BODY_ERRORS, 503)
    )
    def price_batch(
        self, data: JSONBody[PriceBatchRequest], serving: ServingDependency
    ) -> PriceBatchResponse:
        """Reprice up to a catalog of SKU-stores in one call (one model call per version for
        the whole batch). Any unknown SKU or store refuses the batch with a 422 naming each
        `items[i]` field; nothing is priced partially."""
        table = _table(serving)
        queries = _queries(list(data.items), table, "items")
        day = _day(serving, table)
        answers = price_items(serving, table, queries, day)
        return PriceBatchResponse(
            prices=[_response(a) for a in answers], features_as_of=table.as_of, priced_for=day
        )


Version = Annotated[
    str, Parameter(pattern=r"^[A-Za-z0-9._\-]{1,64}$", description="pricing model version, e.g. 3")
]


class BreakerCloseRequest(msgspec.Struct, forbid_unknown_fields=True):
    reason: Annotated[str, msgspec.Meta(min_length=3, max_length=500)]


class BreakerCloseResponse(msgspec.Struct):
    version: str
    action: str
    reason: str
    actor: str
    at: str


class PricingAdminController(Controller):
    path = "/v1/admin/pricing"
    tags = ["admin"]
    guards = [require_admin]
    security = ADMIN_SECURITY

    @post(
        "/breaker/{version:str}/close",
        sync_to_thread=False,
        status_code=200,
        responses=errors(*ADMIN_ERRORS, *BODY_ERRORS, 404),
    )
    def close_breaker(
        self, version: Version, data: JSONBody[BreakerCloseRequest], serving: ServingDependency
    ) -> BreakerCloseResponse:
        """Close the open circuit breaker of a pricing model version (after the cause is
        fixed): its prices are served again when it is champion or challenger. Logged in the
        decision log with the reason."""
        try:
            entry = serving.pricing_runtime.close(version, data.reason, "admin-api")
        except LookupError as exc:
            raise NotFoundException(str(exc)) from None
        return BreakerCloseResponse(
            version=version,
            action=entry["action"],
            reason=entry["reason"],
            actor=entry["actor"],
            at=entry["at"],
        )
