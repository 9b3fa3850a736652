"""POST /v1/recommendations: the next items for a shopper, ranked by the promoted ranker over
candidates from their history, co-occurrence, content similarity and popularity, after the
business rules. Every answer says where each item came from, what the request fell back to,
which rule changed the list, and which model version and arm answered."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.exceptions import ValidationException
from litestar.params import JSONBody

from retail_assets.core import clock
from retail_assets.models.recommend.online import FALLBACKS
from retail_assets.models.recommend.rules import Rules
from serving.openapi import BODY_ERRORS, errors
from serving.schemas import Id, ModelRef, ShortText
from serving.scoring import NotReadyError, RecommendFilters, recommend
from serving.state import ServingDependency

MAX_K = 100
MAX_CART = 100
MAX_CATEGORIES = 50
MAX_PRICE = 1e9


class RecommendationFilters(msgspec.Struct, forbid_unknown_fields=True):
    # Plain str items: a name is valid when the catalog has it, checked in `_filters` (an
    # empty or unknown name is a 422 naming `filters.category[i]`).
    category: Annotated[list[str], msgspec.Meta(min_length=1, max_length=MAX_CATEGORIES)] | None = (
        None
    )
    """Only items of these categories (names as in the catalog)."""
    min_price: Annotated[float, msgspec.Meta(ge=0, le=MAX_PRICE)] | None = None
    """Only items whose list price is at least this."""
    max_price: Annotated[float, msgspec.Meta(ge=0, le=MAX_PRICE)] | None = None
    """Only items whose list price is at most this."""
    in_stock: bool | None = None
    """true: only items with units on hand at the latest inventory snapshot (refused with a
    422 when no inventory feed has landed). Out-of-stock items are never shown anyway when
    the feed exists (business rule)."""


class RecommendationRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Who is shopping and where. Everything is optional: an anonymous visitor on the home
    page gets the popular items."""

    customer_id: Id | None = None
    """Known customer: their history personalises the list; unknown ids get popularity."""
    session_id: Id | None = None
    """The shop's session id: clicks of this session are credited to this list (CTR)."""
    current_sku: ShortText | None = None
    """The product page being viewed: its related items become candidates; it is not shown."""
    cart: Annotated[list[ShortText], msgspec.Meta(max_length=MAX_CART)] = []
    """SKUs in the cart: like `current_sku`, and not shown."""
    k: Annotated[int, msgspec.Meta(ge=1, le=MAX_K)] = 20
    filters: RecommendationFilters | None = None
    max_per_category: Annotated[int, msgspec.Meta(ge=1, le=MAX_K)] | None = None
    """Diversity cap for this request; default: the server's (RETAIL_RECOMMEND_MAX_PER_CATEGORY)."""


class RecommendedItem(msgspec.Struct):
    rank: int
    sku: str
    score: float
    """Ranker score: only the order within this list means something."""
    source: str
    """The candidate source that proposed the item first: history, cooccurrence, content,
    segment_popularity or popularity."""
    category: str | None


class RuleChange(msgspec.Struct):
    sku: str
    rule: str
    """discontinued, out_of_stock or diversity_cap: the item ranked above the last one shown
    and this rule removed it."""


class RecommendationResponse(msgspec.Struct):
    items: list[RecommendedItem]
    fallback: str | None
    """None: personalised from the customer's history; `context`: no history, related to the
    current SKU and cart; `segment_popularity`; `popularity` (unknown customer)."""
    fallback_meaning: str
    rules_applied: list[RuleChange]
    ignored_context: list[str]
    """Context SKUs the served tables do not know (e.g. landed after their publication)."""
    candidates: int
    """How many candidates the ranker scored."""
    model: ModelRef
    features_as_of: datetime


def _filters(data: RecommendationRequest, serving: ServingDependency) -> RecommendFilters:
    table = serving.recommend
    if table is None:
        raise NotReadyError("recommendation online features are not loaded")
    given = data.filters or RecommendationFilters()
    problems = []
    categories = None
    if given.category is not None:
        categories = set()
        for i, name in enumerate(given.category):
            code = table.category_of.get(name)
            if code is None:
                known = ", ".join(sorted(table.category_of)[:30])
                problems.append(
                    {
                        "key": f"filters.category[{i}]",
                        "message": f"unknown category {name!r}; known: {known}",
                    }
                )
            else:
                categories.add(code)
    if (
        given.min_price is not None
        and given.max_price is not None
        and given.min_price > given.max_price
    ):
        problems.append({"key": "filters.max_price", "message": "max_price must be >= min_price"})
    if given.in_stock and table.stock is None:
        problems.append(
            {
                "key": "filters.in_stock",
                "message": "no inventory feed has landed, so stock is unknown: land it with "
                "`retail land inventory FILE` or drop the filter",
            }
        )
    if problems:
        raise ValidationException("invalid filters", extra=problems)
    return RecommendFilters(
        categories=categories,
        min_price=given.min_price,
        max_price=given.max_price,
        in_stock=bool(given.in_stock),
    )


class RecommendController(Controller):
    path = "/v1/recommendations"
    tags = ["recommendations"]

    @post("", sync_to_thread=False, status_code=200, responses=errors(*BODY_ERRORS, 503))
    def recommendations(
        self, data: JSONBody[RecommendationRequest], serving: ServingDependency
    ) -> RecommendationResponse:
        """Up to `k` items, best first. Candidates come from the customer's history, items
        bought or browsed with it (and with the current SKU and cart), items similar by
        product embedding (so a new SKU is reachable before anyone engaged with it), and
        popularity in the customer's segment x region; the promoted LambdaRank model orders
        them; then discontinued and out-of-stock items are dropped and at most
        `max_per_category` items of one category are shown, each removal named."""
        filters = _filters(data, serving)
        config = serving.config
        cap = data.max_per_category or config.recommend_max_per_category
        table = serving.recommend
        day: date = (
            table.as_of.date() if config.payment_clock.mode == "replay" else clock.now().date()
        )
        result = recommend(
            serving,
            data.customer_id,
            data.session_id,
            data.current_sku,
            list(data.cart),
            data.k,
            filters,
            Rules(max_per_category=cap),
            day,
        )
        return RecommendationResponse(
            items=[
                RecommendedItem(
                    rank=i + 1,
                    score=round(item["score"], 6),
                    **{k: item[k] for k in ("sku", "source", "category")},
                )
                for i, item in enumerate(result.items)
            ],
            fallback=result.fallback,
            fallback_meaning=FALLBACKS[result.fallback],
            rules_applied=[RuleChange(**change) for change in result.removed],
            ignored_context=result.ignored_context,
            candidates=result.candidates,
            model=ModelRef(result.model.name, result.model.version, result.arm),
            features_as_of=result.features_as_of.replace(tzinfo=UTC),
        )
