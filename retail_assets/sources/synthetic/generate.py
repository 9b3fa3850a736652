"""Generate every feed for one configuration, plus the ground truth that produced it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import FEEDS
from retail_assets.sources.synthetic import clickstream, demand, fraud, pricing, sales
from retail_assets.sources.synthetic.calendar import EVENT_DEFINITIONS, HOLIDAYS, build_calendar
from retail_assets.sources.synthetic.catalog import build_catalog
from retail_assets.sources.synthetic.config import GeneratorConfig, jsonable
from retail_assets.sources.synthetic.customers import build_customers
from retail_assets.sources.synthetic.documents import policy_documents, policy_facts
from retail_assets.sources.synthetic.payments import (
    Txns,
    build_wallet,
    legit_overlap_truth,
    legit_payments,
    payments_frame,
)
from retail_assets.sources.synthetic.sampling import US_PER_DAY
from retail_assets.sources.synthetic.store_calendar import build_store_calendar
from retail_assets.sources.synthetic.store_calendar import ground_truth as store_calendar_truth
from retail_assets.sources.synthetic.stores import build_stores


@dataclass(frozen=True)
class GenerationResult:
    config: GeneratorConfig
    feeds: dict[str, pl.DataFrame]
    ground_truth: dict[str, Any]


# The retail calendar is published ahead of time (holidays and trading events are planned), so
# the calendar feed runs this many days past the last trading day: forecasts for the next 28
# days need the calendar of those days.
CALENDAR_PLANNING_DAYS = 56


def _world(config: GeneratorConfig):
    """(policy facts, catalog, stores, customers) of a generation run."""
    scale = config.scale_config
    seed, start, n_days = config.seed, config.start_date, scale.n_days
    competitor_names = tuple(name for name, _ in pricing.COMPETITORS)
    facts = policy_facts(seed, start, competitor_names)
    catalog = build_catalog(
        seed, scale.n_skus, start, n_days, facts["warranty"]["years_by_department"]
    )
    stores = build_stores(seed, scale.n_stores, start)
    customers = build_customers(seed, scale.n_customers, start, n_days, stores)
    return facts, catalog, stores, customers


def shoppers(config: GeneratorConfig | None = None) -> clickstream.Shoppers:
    """The shoppers of a generation run (same seed and scale: the same tastes), to answer
    served recommendations with clicks (`clickstream.Shoppers.respond`)."""
    config = config or GeneratorConfig()
    _, catalog, _, customers = _world(config)
    return clickstream.Shoppers(config.seed, catalog, customers)


def generate(config: GeneratorConfig | None = None) -> GenerationResult:
    """Generate all feeds in ``contracts.FEEDS`` for ``config``; same config, same bytes."""
    config = config or GeneratorConfig()
    scale = config.scale_config
    seed, start, n_days = config.seed, config.start_date, scale.n_days
    knobs = config.knobs

    cal = build_calendar(start, n_days)
    facts, catalog, stores, customers = _world(config)
    store_cal = build_store_calendar(
        seed, stores, start, n_days + CALENDAR_PLANNING_DAYS, history_days=n_days
    )
    plan = pricing.build_price_plan(seed, cal, catalog)
    sold = sales.simulate_sales(seed, cal, catalog, stores, plan, knobs.demand_shift, store_cal)

    change = knobs.fraud_pattern_change
    change_day = cal.index_of(change.start) if change else None
    wallet = build_wallet(seed, customers, n_days)
    n_legit = round(scale.n_payments * (1 - config.fraud_rate))
    legit, legit_info = legit_payments(
        seed, cal, catalog, stores, customers, plan, wallet, facts, n_legit
    )
    legit_days = (legit.ts // US_PER_DAY - cal.epoch_days[0]).astype(np.int64)
    fraud_plan = fraud.plan_fraud(legit_days, n_days, config.fraud_rate, change, change_day)
    fraud_parts, fraud_info = fraud.add_fraud(
        seed, cal, catalog, customers, stores, wallet, plan, legit, fraud_plan
    )
    payments, fraud_type, fraud_variant = payments_frame(
        seed, Txns.concat([legit, *fraud_parts]), wallet, customers, stores
    )
    fraud_labels, label_noise = fraud.fraud_labels(seed, payments, fraud_type)

    feeds = {
        "products": catalog.frame,
        "stores": stores.frame,
        "customers": customers.frame,
        "calendar": build_calendar(start, n_days + CALENDAR_PLANNING_DAYS).frame,
        "sales": sold.sales,
        "inventory": sold.inventory,
        "competitor_prices": pricing.competitor_prices_frame(seed, cal, catalog, plan),
        "clickstream": clickstream.build_clickstream(
            seed, cal, catalog, customers, scale.n_sessions
        ),
        "payments": payments,
        "fraud_labels": fraud_labels,
        "policy_documents": policy_documents(facts),
        "store_calendar": store_cal.frame,
        "promotion_plan": pricing.promotion_plan_frame(
            cal, catalog, plan, stores.store_ids[stores.online]
        ),
    }
    if set(feeds) != set(FEEDS):
        missing = sorted(set(FEEDS) - set(feeds))
        raise RuntimeError(f"the generator has no feed for contract(s): {', '.join(missing)}")
    feeds = {name: FEEDS[name].conform(feeds[name]) for name in FEEDS}

    truth = {
        "config": config.to_dict(),
        "demand": demand.ground_truth(),
        "pricing": pricing.ground_truth(),
        "sales": sales.ground_truth(sold.stockout_rate),
        "calendar": {
            "holidays": list(HOLIDAYS),
            "events": EVENT_DEFINITIONS,
            "planning_days_ahead": CALENDAR_PLANNING_DAYS,
        },
        "store_calendar": store_calendar_truth(store_cal),
        "clickstream": clickstream.ground_truth(),
        "fraud": fraud.ground_truth(
            payments,
            fraud_type,
            fraud_variant,
            fraud_labels,
            label_noise,
            config.fraud_rate,
            config.fraud_rate_range,
            change_day,
            start,
            fraud_info,
            legit_overlap_truth(legit_info),
        ),
        "policy_facts": facts,
        "knobs": knobs.to_dict(),
        "row_counts": {name: frame.height for name, frame in feeds.items()},
    }
    return GenerationResult(config=config, feeds=feeds, ground_truth=jsonable(truth))
