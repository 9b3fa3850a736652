"""Daily sales and weekly inventory from one store-by-store replenishment simulation.

Each store runs an order-up-to policy: on review days it orders enough to cover its demand
forecast over lead time plus review period, plus safety stock. The planner knows the plan
(calendar, store calendar, seasonality, promotions and prices) but has to learn each SKU's base
rate from what it sold, so stockouts come from demand noise, from learning lag after launches,
and from any unexpected demand shift — a few percent of days, as in a real store. A store sells
nothing on a day it is planned closed (its row is still reported, with zero units).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import INVENTORY, SALES
from retail_assets.sources.synthetic import demand
from retail_assets.sources.synthetic.calendar import TradingCalendar
from retail_assets.sources.synthetic.catalog import Catalog
from retail_assets.sources.synthetic.config import DemandShift, substream
from retail_assets.sources.synthetic.pricing import PricePlan
from retail_assets.sources.synthetic.store_calendar import StoreCalendar
from retail_assets.sources.synthetic.stores import FORMATS, Stores

# (review period days, lead time days) by format; online is a fulfilment centre replenished daily.
REPLENISHMENT = {
    "hypermarket": (7, 3),
    "supermarket": (7, 2),
    "express": (3, 2),
    "online": (1, 3),
}
SAFETY_Z = 0.8
LEARNING_RATE = 0.03  # EWMA weight of the planner's base-rate estimate
PLANNER_PRIOR_SD = 0.25  # how wrong the planner's initial base-rate guess is (log scale)
STORE_SKU_SD = 0.3  # local taste: the same SKU sells differently store to store
SNAPSHOT_DOW = 7  # inventory snapshots are taken at the end of each Sunday


@dataclass(frozen=True)
class SalesResult:
    sales: pl.DataFrame
    inventory: pl.DataFrame
    stockout_rate: float


def _chain_multipliers(
    cal: TradingCalendar, catalog: Catalog, plan: PricePlan, channel: str
) -> np.ndarray:
    """[day, sku] part of expected demand shared by all stores of a channel."""
    cat, dept = catalog.cat, catalog.dept
    price_effect = (plan.unit_price_for(channel) / catalog.list_price) ** demand.ELASTICITY[cat]
    return (
        demand.seasonality(cal)[:, cat]
        * demand.events(cal, channel)[:, dept]
        * demand.trend(cal)[:, dept]
        * np.where(plan.discount_for(channel) > 0, demand.PROMO_UPLIFT, 1.0)
        * price_effect
        * plan.competitor_index() ** demand.COMPETITOR_CROSS_ELASTICITY
        * demand.lifecycle(catalog.launch, catalog.last_day, cal.n_days)
        * catalog.active(cal.n_days)
    )


def _simulate_store(
    rng: np.random.Generator,
    known: np.ndarray,
    base: np.ndarray,
    shift: np.ndarray | None,
    review_days: np.ndarray,
    lead: int,
    horizon: int,
    snapshot_days: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run one store. ``known`` is the [day, sku] demand multiplier the planner can see."""
    n_days, n_skus = known.shape
    # The prior is drawn before demand: Poisson draws consume a variable amount of the stream,
    # and a demand shift must not change anything that happens before it starts.
    estimate = base * np.exp(rng.normal(0, PLANNER_PRIOR_SD, n_skus))
    mu = base[None, :] * known
    if shift is not None:
        mu = mu * shift
    shape = demand.NEGBIN_SHAPE
    wanted = rng.poisson(mu * rng.gamma(shape, 1 / shape, mu.shape)).astype(np.int32)

    # Forecast window for an order placed at the end of day t: days t+1 .. t+horizon.
    cum = np.vstack([np.zeros(n_skus), np.cumsum(known, axis=0), np.zeros((horizon, n_skus))])
    cum[n_days + 1 :] = cum[n_days]
    ahead = cum[horizon + 1 : n_days + horizon + 1] - cum[1 : n_days + 1]

    def target(day: int) -> np.ndarray:
        f = estimate * ahead[day]
        return np.ceil(f + SAFETY_Z * np.sqrt(f + f**2 / (shape * horizon)))

    sold = np.empty((n_days, n_skus), dtype=np.int32)
    stockout = np.empty((n_days, n_skus), dtype=bool)
    on_hand_snap = np.empty((len(snapshot_days), n_skus), dtype=np.int32)
    on_order_snap = np.empty_like(on_hand_snap)
    on_hand = target(0).astype(np.int64)
    arrivals = np.zeros((lead + 1, n_skus), dtype=np.int64)
    on_order = np.zeros(n_skus, dtype=np.int64)
    snap = 0
    for t in range(n_days):
        arriving = arrivals[t % (lead + 1)]
        on_hand += arriving
        on_order -= arriving
        arriving[:] = 0
        sold[t] = np.minimum(wanted[t], on_hand)
        stockout[t] = wanted[t] > on_hand
        on_hand -= sold[t]
        seen = known[t] > 0
        estimate[seen] += LEARNING_RATE * (sold[t, seen] / known[t, seen] - estimate[seen])
        if review_days[t]:
            order = np.maximum(target(t) - on_hand - on_order, 0).astype(np.int64)
            arrivals[(t + lead) % (lead + 1)] += order
            on_order += order
        if snap < len(snapshot_days) and snapshot_days[snap] == t:
            on_hand_snap[snap] = on_hand
            on_order_snap[snap] = on_order
            snap += 1
    return sold, stockout, on_hand_snap, on_order_snap


def simulate_sales(
    seed: int,
    cal: TradingCalendar,
    catalog: Catalog,
    stores: Stores,
    plan: PricePlan,
    shift: DemandShift | None,
    store_calendar: StoreCalendar,
) -> SalesResult:
    rng = substream(seed, "sales", "setup")
    store_sku = np.exp(rng.normal(0, STORE_SKU_SD, (stores.n, catalog.n)))
    chain = {c: _chain_multipliers(cal, catalog, plan, c) for c in demand.CHANNELS}
    shift_matrix = demand.demand_shift(cal, shift, catalog.dept)
    active = catalog.active(cal.n_days)
    act_day, act_sku = np.nonzero(active)
    snapshot_days = np.flatnonzero(cal.dow == SNAPSHOT_DOW)
    snap_active = active[snapshot_days]
    snap_row, snap_sku = np.nonzero(snap_active)

    sales_parts: list[pl.DataFrame] = []
    inventory_parts: list[pl.DataFrame] = []
    stockouts = 0
    sku_ids = pl.Series(catalog.sku_ids)
    dates = pl.Series(cal.epoch_days).cast(pl.Date)
    prices = {
        c: (plan.unit_price_for(c)[act_day, act_sku], plan.discount_for(c)[act_day, act_sku])
        for c in demand.CHANNELS
    }
    for s in range(stores.n):
        fmt = int(stores.format[s])
        review, lead = REPLENISHMENT[FORMATS[fmt]]
        store_rng = substream(seed, "sales", "store", s)
        review_offset = int(store_rng.integers(review))
        review_days = (np.arange(cal.n_days) + review_offset) % review == 0
        channel = demand.channel(fmt)
        unit_price, discount = prices[channel]
        store_days = (
            demand.weekly(cal, fmt)
            * demand.holiday(cal, channel)
            * store_calendar.store_effect(s, FORMATS[fmt], cal.n_days)
        )
        known = (
            chain[channel]
            * store_days[:, None]
            * store_calendar.school_effect(s, catalog.dept, cal.n_days)
        )
        base = catalog.popularity * stores.volume[s] * store_sku[s]
        sold, stockout, on_hand, on_order = _simulate_store(
            store_rng, known, base, shift_matrix, review_days, lead, review + lead, snapshot_days
        )
        units = sold[act_day, act_sku]
        out = stockout[act_day, act_sku]
        stockouts += int(out.sum())
        n = len(act_day)
        sales_parts.append(
            pl.DataFrame(
                {
                    "date": dates.gather(act_day),
                    "store_id": pl.repeat(stores.store_ids[s], n, eager=True, dtype=pl.String),
                    "sku": sku_ids.gather(act_sku),
                    "units_sold": units,
                    "unit_price": unit_price,
                    "on_promotion": discount > 0,
                    "promo_discount_pct": discount,
                    "stockout": out,
                    "revenue": np.round(units * unit_price, 2),
                    # This retailer's tills record both: the value is what the units paid.
                    "sales_value": np.round(units * unit_price, 2),
                }
            )
        )
        inventory_parts.append(
            pl.DataFrame(
                {
                    "snapshot_date": dates.gather(snapshot_days[snap_row]),
                    "store_id": pl.repeat(
                        stores.store_ids[s], len(snap_row), eager=True, dtype=pl.String
                    ),
                    "sku": sku_ids.gather(snap_sku),
                    "on_hand_units": on_hand[snap_row, snap_sku],
                    "on_order_units": on_order[snap_row, snap_sku],
                }
            )
        )
    n_rows = sum(len(p) for p in sales_parts)
    return SalesResult(
        # One chunk per store: rechunking would briefly hold the whole feed twice.
        sales=SALES.conform(pl.concat(sales_parts, rechunk=False)),
        inventory=INVENTORY.conform(pl.concat(inventory_parts, rechunk=False)),
        stockout_rate=stockouts / max(n_rows, 1),
    )


def ground_truth(stockout_rate: float) -> dict[str, Any]:
    return {
        "replenishment": {
            "policy": (
                "order-up-to on review days: forecast over review + lead days + "
                "z * sqrt(forecast + forecast^2 / (negbin_shape * horizon))"
            ),
            "review_and_lead_days_by_format": {
                fmt: {"review_days": r, "lead_days": lead}
                for fmt, (r, lead) in REPLENISHMENT.items()
            },
            "safety_z": SAFETY_Z,
            "planner_learning_rate": LEARNING_RATE,
            "demand_shift_known_to_planner": False,
        },
        "store_sku_taste_log_sd": STORE_SKU_SD,
        "inventory_snapshot": "end of each Sunday",
        "stockout_rate": round(stockout_rate, 5),
    }
