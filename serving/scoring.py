"""Model calls behind the HTTP routes: online feature join, rollout arm, ONNX inference,
shadow scoring, prediction log and metrics. Controllers only translate HTTP to these calls.

A request takes the champion and challenger references once (`ModelStore` swaps them
atomically), so a hot swap never splits one request across two versions.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl

from retail_assets.models.demand.features import closed_to_zero
from retail_assets.models.fraud.online import REPLAY_COLUMNS
from retail_assets.models.pricing.guardrails import violations
from retail_assets.models.pricing.optimizer import recommend_prices
from retail_assets.models.pricing.response import at_prices
from retail_assets.models.recommend.online import CONTEXT_WEIGHTS, FEATURES, SOURCES
from retail_assets.models.recommend.rules import Rules
from serving.features import DemandFeatures, RecommendFeatures
from serving.model_store import ServedModel
from serving.pricing import (
    PRICING_MODEL,
    PriceAnswer,
    PriceQuery,
    PricingFeatures,
    list_price_answer,
    price_context,
    rails_of,
)
from serving.state import DEMAND_MODEL, FRAUD_MODEL, RECOMMEND_MODEL, ServingState


class NotReadyError(RuntimeError):
    """The model or its feature table is not loaded yet (503, never a 500)."""


def _request_id() -> str:
    return uuid.uuid4().hex


def _arm_models(
    state: ServingState, name: str, entity_id: str
) -> tuple[str, ServedModel, ServedModel | None]:
    """(arm, model answering, shadow model or None) for one entity, from one look at the
    model's slot (champion, challenger and rollout swap together)."""
    active = state.model(name).active
    if active.champion is None:
        raise NotReadyError(f"model '{name}' has no champion loaded")
    champion = active.champion.value
    if active.challenger is None:
        return "champion", champion, None
    challenger = active.challenger.value
    if active.rollout.routes_to_challenger(entity_id):
        return "challenger", challenger, None
    if active.rollout.mode == "shadow":
        return "champion", champion, challenger
    return "champion", champion, None


# -- demand -----------------------------------------------------------------------------------


@dataclass
class SeriesForecastResult:
    store_id: str
    sku: str
    fallback: str | None
    model: ServedModel
    arm: str
    dates: list[date]
    outputs: dict[str, np.ndarray]
    plan_sources: list[str]


def forecast(
    state: ServingState,
    items: list[tuple[str, str, str | None]],
    horizon: int,
    plans: dict[tuple[str, str], pl.DataFrame] | None = None,
    table: DemandFeatures | None = None,
) -> tuple[DemandFeatures, list[SeriesForecastResult], list[Any]]:
    """Forecasts for (store_id, sku, category hint) items over periods 1..horizon; `plans`:
    a caller's plan per (store_id, sku) (`features.apply_plan`). Planned closing days are 0.
    Returns the feature table used, the results, and shadow work to run after responding."""
    table = table or state.demand
    if table is None:
        raise NotReadyError("demand online features are not loaded")
    plans = plans or {}
    started = time.perf_counter()
    planned = []
    for store_id, sku, category in items:
        rows, fallback = table.lookup(store_id, sku, category)
        arm, model, shadow = _arm_models(state, DEMAND_MODEL, f"{store_id}:{sku}")
        planned.append((store_id, sku, rows, fallback, arm, model, shadow))

    # One ONNX call per model version for all requested series.
    by_version: dict[str, list[int]] = {}
    for i, (*_, model, _shadow) in enumerate(planned):
        by_version.setdefault(model.version, []).append(i)
    scored: dict[int, tuple[SeriesForecastResult, np.ndarray]] = {}
    shadow_work = []
    for indices in by_version.values():
        model = planned[indices[0]][5]
        matrix = table.matrix(model)
        slices, sources = [], []
        for i in indices:
            store_id, sku, series = planned[i][:3]
            plan = plans.get((store_id, sku))
            if plan is None:
                span = table.span(series, horizon)
                slices.append(matrix[span])
                sources.append(table.plan_sources[span])
            else:
                rows, plan_sources = table.planned_rows(model, series, horizon, plan)
                slices.append(rows)
                sources.append(plan_sources)
        outputs = model.bundle.predict_matrix(np.vstack(slices))
        offset = 0
        for i, rows, plan_sources in zip(indices, slices, sources, strict=True):
            store_id, sku, series, fallback, arm, model, shadow = planned[i]
            mine = {k: v[offset : offset + len(rows)] for k, v in outputs.items()}
            offset += len(rows)
            if table.is_open is not None:
                mine = closed_to_zero(mine, table.is_open[table.span(series, horizon)])
            result = SeriesForecastResult(
                store_id,
                sku,
                fallback,
                model,
                arm,
                table.dates(series, horizon),
                mine,
                plan_sources,
            )
            scored[i] = (result, rows)
            if shadow is not None:
                shadow_work.append((shadow, store_id, sku, rows))
    elapsed_ms = (time.perf_counter() - started) * 1000
    per_series_ms = elapsed_ms / max(len(planned), 1)
    results = []
    for i in range(len(planned)):
        result, rows = scored[i]
        results.append(result)
        _record(state, result.model, result.arm, per_series_ms)
        if result.fallback:
            state.metrics.fallbacks.labels(DEMAND_MODEL, result.fallback).inc()
        state.prediction_log.log(
            model=DEMAND_MODEL,
            version=result.model.version,
            arm=result.arm,
            entity_id=f"{result.store_id}:{result.sku}",
            features={
                "feature_set": table.version,
                "dates": [d.isoformat() for d in result.dates],
                "rows": rows,
            },
            output={k: v for k, v in result.outputs.items()},
            latency_ms=per_series_ms,
            request_id=_request_id(),
            fallback=result.fallback,
        )
    return table, results, shadow_work


def run_demand_shadow(state: ServingState, work: list[Any]) -> None:
    """Score the challenger on the same rows after the response went out; log, never return."""
    table = state.demand
    for model, store_id, sku, rows in work:
        started = time.perf_counter()
        outputs = model.bundle.predict_matrix(rows)
        elapsed_ms = (time.perf_counter() - started) * 1000
        _record(state, model, "shadow", elapsed_ms)
        state.prediction_log.log(
            model=DEMAND_MODEL,
            version=model.version,
            arm="shadow",
            entity_id=f"{store_id}:{sku}",
            features={"feature_set": table.version if table else None, "rows": rows.tolist()},
            output={k: v for k, v in outputs.items()},
            latency_ms=elapsed_ms,
            request_id=_request_id(),
        )


# -- fraud ------------------------------------------------------------------------------------


@dataclass
class FraudResult:
    transaction_id: str
    probability: float
    threshold: float
    flagged: bool
    reasons: list[dict[str, Any]]
    model: ServedModel
    arm: str
    features_as_of: datetime | None


def _reasons(model: ServedModel, x: np.ndarray, features: dict[str, Any], k: int = 3):
    if model.bundle.explainer is None:
        return []
    contributions = model.bundle.contributions(x)[0, :-1]
    encoder = model.encoder
    order = np.argsort(-contributions, kind="mergesort")[:k]
    return [
        {
            "feature": encoder.names[j],
            "value": features.get(encoder.sources[j]),
            "contribution": round(float(contributions[j]), 4),
        }
        for j in order
        if contributions[j] > 0
    ]


def score_payments(
    state: ServingState, payments: list[dict[str, Any]]
) -> tuple[list[FraudResult], list[Any]]:
    """Score payments in the given order (each sees the ones before it). Returns results and
    shadow work to run after responding."""
    fraud_features = state.fraud
    if fraud_features is None:
        raise NotReadyError("fraud online features are not loaded")
    results, shadow_work = [], []
    for payment in payments:
        started = time.perf_counter()
        entity = payment.get("customer_id") or payment["card_id"]
        arm, model, shadow = _arm_models(state, FRAUD_MODEL, entity)
        features, as_of = fraud_features.features_and_observe(payment)
        x = model.encoder.row(features)
        probability = float(model.bundle.predict_matrix(x)["probability"][0])
        threshold = float(model.threshold if model.threshold is not None else 0.5)
        result = FraudResult(
            transaction_id=payment["transaction_id"],
            probability=probability,
            threshold=threshold,
            flagged=probability >= threshold,
            reasons=_reasons(model, x, features),
            model=model,
            arm=arm,
            features_as_of=as_of,
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        _record(state, model, arm, elapsed_ms)
        state.prediction_log.log(
            model=FRAUD_MODEL,
            version=model.version,
            arm=arm,
            entity_id=payment["transaction_id"],
            # The request's replay fields too: monitoring recomputes these features offline
            # from the history plus the logged requests (training-serving skew check).
            features={**features, "request": {c: payment.get(c) for c in REPLAY_COLUMNS}},
            output={"probability": probability, "flagged": result.flagged},
            latency_ms=elapsed_ms,
            request_id=_request_id(),
        )
        results.append(result)
        if shadow is not None:
            shadow_work.append((shadow, payment["transaction_id"], features))
    return results, shadow_work


def run_fraud_shadow(state: ServingState, work: list[Any]) -> None:
    for model, transaction_id, features in work:
        started = time.perf_counter()
        x = model.encoder.row(features)
        probability = float(model.bundle.predict_matrix(x)["probability"][0])
        elapsed_ms = (time.perf_counter() - started) * 1000
        _record(state, model, "shadow", elapsed_ms)
        threshold = model.threshold if model.threshold is not None else 0.5
        state.prediction_log.log(
            model=FRAUD_MODEL,
            version=model.version,
            arm="shadow",
            entity_id=transaction_id,
            features=features,
            output={"probability": probability, "flagged": probability >= threshold},
            latency_ms=elapsed_ms,
            request_id=_request_id(),
        )


def _record(state: ServingState, model: ServedModel, arm: str, elapsed_ms: float) -> None:
    state.metrics.predictions.labels(model.name, model.version, arm).inc()
    state.metrics.prediction_latency.labels(model.name, model.version, arm).observe(
        elapsed_ms / 1000
    )


# -- recommendations --------------------------------------------------------------------------


@dataclass
class RecommendFilters:
    """Which items a request allows: categories (codes of `RecommendFeatures`), list price
    range, and in stock only (needs the inventory feed)."""

    categories: set[int] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False


@dataclass
class RecommendationResult:
    items: list[dict[str, Any]]
    fallback: str | None
    removed: list[dict[str, str]]
    ignored_context: list[str]
    model: ServedModel
    arm: str
    features_as_of: datetime
    candidates: int


def _allowed(table: RecommendFeatures, filters: RecommendFilters) -> np.ndarray | None:
    """Mask over item codes of what the filters let through (None: no filter)."""
    if (
        filters.categories is None
        and filters.min_price is None
        and filters.max_price is None
        and not filters.in_stock
    ):
        return None
    cands = table.candidates
    mask = np.ones(cands.n, dtype=bool)
    if filters.categories is not None:
        mask &= np.isin(cands.category, list(filters.categories))
    price = cands.list_price
    if filters.min_price is not None:
        mask &= price >= filters.min_price
    if filters.max_price is not None:
        mask &= price <= filters.max_price
    if filters.in_stock and table.rules.on_hand is not None:
        mask &= table.rules.on_hand > 0
    return None if mask.all() else mask


def recommend(
    state: ServingState,
    customer_id: str | None,
    session_id: str | None,
    current_sku: str | None,
    cart: list[str],
    k: int,
    filters: RecommendFilters,
    rules: Rules,
    day: date,
) -> RecommendationResult:
    """Top k items for one shopper: candidates and features (the training code), the ranker
    (ONNX), request filters, then the business rules, each removal named. Logged for the CTR
    feedback (`monitoring`: recommendations joined to later clicks, carts and purchases)."""
    table = state.recommend
    if table is None:
        raise NotReadyError("recommendation online features are not loaded")
    started = time.perf_counter()
    arm, model, _shadow = _arm_models(
        state, RECOMMEND_MODEL, customer_id or session_id or "anonymous"
    )
    names = model.bundle.feature_names
    if list(names) != FEATURES:
        raise NotReadyError(
            f"recommend v{model.version} takes features {names}, the serving code computes "
            f"{FEATURES}: publish a model trained by this version"
        )
    cands = table.candidates
    context: dict[int, float] = {}
    ignored = []
    for sku, weight in [(s, CONTEXT_WEIGHTS["cart"]) for s in cart] + (
        [(current_sku, CONTEXT_WEIGHTS["current"])] if current_sku else []
    ):
        code = cands.code.get(sku)
        if code is None:
            ignored.append(sku)
        else:
            context[code] = context.get(code, 0.0) + weight
    query = cands.query(customer_id, context)
    scores = (
        model.bundle.predict_matrix(query.features)["score"].reshape(-1)
        if len(query.items)
        else np.empty(0)
    )
    order = np.lexsort((query.items, -scores))
    ranked = query.items[order]
    allowed = _allowed(table, filters)
    if allowed is not None:
        ranked = ranked[allowed[ranked]]
    shown, removed = table.rules.apply(ranked.tolist(), k, day, rules)
    # query.items is sorted (item codes ascending): each shown item's row by bisection.
    rows = np.searchsorted(query.items, shown).tolist()
    shown_scores = scores[rows].tolist()
    shown_sources = query.sources[rows].tolist()
    items = [
        {
            "sku": table.skus[item],
            "score": score,
            "source": SOURCES[source],
            "category": table.category_names_by_item[item],
        }
        for item, score, source in zip(shown, shown_scores, shown_sources, strict=True)
    ]
    elapsed_ms = (time.perf_counter() - started) * 1000
    result = RecommendationResult(
        items=items,
        fallback=query.fallback,
        removed=[{"sku": table.skus[i], "rule": rule} for i, rule in removed],
        ignored_context=ignored,
        model=model,
        arm=arm,
        features_as_of=table.as_of,
        candidates=len(query.items),
    )
    _record(state, model, arm, elapsed_ms)
    if query.fallback:
        state.metrics.fallbacks.labels(RECOMMEND_MODEL, query.fallback).inc()
    state.prediction_log.log(
        model=RECOMMEND_MODEL,
        version=model.version,
        arm=arm,
        entity_id=customer_id or "",
        features={
            "feature_set": table.version,
            "session_id": session_id,
            "current_sku": current_sku,
            "cart": cart,
            "candidates": len(query.items),
        },
        output={
            "skus": [item["sku"] for item in items],
            "sources": [item["source"] for item in items],
            "removed": result.removed,
        },
        latency_ms=elapsed_ms,
        request_id=_request_id(),
        fallback=query.fallback,
    )
    return result


# -- prices -----------------------------------------------------------------------------------


def price_items(
    state: ServingState, table: PricingFeatures, queries: list[PriceQuery], day: date
) -> list[PriceAnswer]:
    """Prices for (store, sku) queries that `table` knows (the controller checked them against
    this very table), in order."""
    runtime = state.pricing_runtime
    started = time.perf_counter()
    index = np.array([table.index[(q.store_id, q.sku)] for q in queries], dtype=np.int64)
    champion = state.champion(PRICING_MODEL)
    plans: list[tuple[str, ServedModel | None, str | None, str | None]] = []
    for q in queries:
        arm, model, _shadow = _arm_models(state, PRICING_MODEL, f"{q.store_id}:{q.sku}")
        fallback = reason = None
        if runtime.is_open(model.version):
            reason = f"circuit breaker open for v{model.version}"
            if arm == "challenger" and champion and not runtime.is_open(champion.version):
                model, fallback = champion, "champion"
            else:
                model, fallback = None, "list_price"
        plans.append((arm, model, fallback, reason))

    answers: list[PriceAnswer | None] = [None] * len(queries)
    groups: dict[str, list[int]] = {}
    for i, (_, model, _, _) in enumerate(plans):
        groups.setdefault(model.version if model else "", []).append(i)
    for version, members in groups.items():
        ctxs = [price_context(table, int(index[i]), queries[i]) for i in members]
        if not version:
            rails, _ = rails_of(champion)
            for i, ctx in zip(members, ctxs, strict=True):
                arm, _, _, reason = plans[i]
                answers[i] = list_price_answer(
                    table, int(index[i]), queries[i], ctx, rails, arm, reason
                )
            continue
        model = plans[members[0]][1]
        rails, objective = rails_of(model)
        rows = index[members]
        competitor = np.array(
            [
                queries[i].competitor_price
                if queries[i].competitor_price is not None
                else table.competitor[index[i]]
                for i in members
            ],
            dtype=np.float64,
        )
        try:
            x = table.rows(model, rows, day, competitor)
        except (LookupError, KeyError) as exc:  # a bundle this serving code cannot feed
            raise NotReadyError(str(exc)) from None
        stock = np.array(
            [math.inf if queries[i].stock is None else queries[i].stock for i in members]
        )

        def units_at(
            prices: np.ndarray, x=x, rows=rows, competitor=competitor, stock=stock, model=model
        ):
            repriced = at_prices(x, prices, table.list_price[rows], competitor)
            units = model.bundle.predict_matrix(repriced)["units"].reshape(prices.shape)
            return np.minimum(units, stock[:, None])  # no more can sell than is on hand

        recs = recommend_prices(units_at, ctxs, rails, objective)
        window = runtime.window(model)
        for i, ctx, rec in zip(members, ctxs, recs, strict=True):
            arm, _, fallback, reason = plans[i]
            broken: list[str] = []
            tripped_before = runtime.is_open(model.version)  # earlier in this batch
            if not tripped_before:
                broken = violations(rails, ctx, rec.decision.price)
                change = math.log(max(rec.decision.price, 0.01) / max(ctx.current_price, 0.01))
                key = (queries[i].store_id, queries[i].sku)
                trip = window.observe(change, broken, key, table.category[int(index[i])])
                if trip is not None:
                    runtime.trip(model.version, trip)
            if broken or tripped_before:
                # Never answered: the list price inside the guardrails instead.
                why = (
                    f"v{model.version} violated {broken}"
                    if broken
                    else f"circuit breaker open for v{model.version}"
                )
                answers[i] = list_price_answer(
                    table, int(index[i]), queries[i], ctx, rails, arm, why
                )
                continue
            answers[i] = PriceAnswer(
                queries[i],
                rec,
                ctx.current_price,
                float(table.list_price[index[i]]),
                model,
                arm,
                fallback,
                reason,
            )
    elapsed_ms = (time.perf_counter() - started) * 1000
    _log_prices(state, [a for a in answers if a is not None], elapsed_ms)
    return [a for a in answers if a is not None]


def _log_prices(state: ServingState, answers: list[PriceAnswer], elapsed_ms: float) -> None:
    request_id = _request_id()
    per_item = elapsed_ms / max(len(answers), 1)
    for a in answers:
        version = a.model.version if a.model else "list_price"
        if a.model is not None:
            state.metrics.predictions.labels(PRICING_MODEL, version, a.arm).inc()
            state.metrics.prediction_latency.labels(PRICING_MODEL, version, a.arm).observe(
                per_item / 1000
            )
        if a.fallback:
            state.metrics.fallbacks.labels(PRICING_MODEL, a.fallback).inc()
        d = a.recommendation.decision
        state.prediction_log.log(
            model=PRICING_MODEL,
            version=version,
            arm=a.arm,
            entity_id=f"{a.query.store_id}:{a.query.sku}",
            features={
                "current_price": a.current_price,
                "competitor_price": a.query.competitor_price,
                "stock": a.query.stock,
            },
            output={
                "price": d.price,
                "proposed": d.proposed,
                "bound_by": [b["rule"] for b in d.bound_by],
                "expected_units": a.recommendation.expected_units if a.expected else None,
            },
            latency_ms=per_item,
            request_id=request_id,
            fallback=a.fallback,
        )
