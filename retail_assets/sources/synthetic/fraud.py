"""Fraud patterns added to the payments, and the delayed labels that reveal them.

Each pattern is generated explicitly, so the ground truth knows every fraudulent row:

- card_testing: bursts of small online attempts on one new (often prepaid) card, from a new
  device, within minutes to an hour.
- account_takeover: a dormant customer's own card suddenly used from a new device, with a
  foreign IP and a new (usually foreign) shipping address, for a large basket.
- resale: high-value electronics bought with many stolen cards and shipped to a handful of
  drop addresses that a ring rotates through.
- digital_goods (only with a FraudPatternChange knob): mid-value gift cards from the victim's
  own device and a domestic IP, which device and geography features barely notice.

The mix drifts over the window: card testing declines and account takeover rises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import FRAUD_LABELS
from retail_assets.sources.synthetic.calendar import TradingCalendar
from retail_assets.sources.synthetic.catalog import Catalog
from retail_assets.sources.synthetic.config import FraudPatternChange, substream
from retail_assets.sources.synthetic.customers import COUNTRIES, Customers
from retail_assets.sources.synthetic.payments import (
    GIFT_CARDS,
    PAYMENT_COUNTRIES,
    PAYMENT_DEPARTMENTS,
    Txns,
    Wallet,
    basket_amounts,
)
from retail_assets.sources.synthetic.pricing import PricePlan
from retail_assets.sources.synthetic.sampling import (
    US_PER_DAY,
    US_PER_SECOND,
    GroupSampler,
    sample_seconds,
)
from retail_assets.sources.synthetic.taxonomy import DEPARTMENT_NAMES

FRAUD_TYPES = ("card_testing", "account_takeover", "resale", "digital_goods")
# Share of fraud rows per pattern at the start and at the end of the window (linear between).
MIX = {
    "card_testing": (0.45, 0.15),
    "account_takeover": (0.20, 0.50),
    "resale": (0.35, 0.35),
}
ATO_DORMANT_DAYS = 30
ATO_MIN_TENURE_DAYS = 60
CARD_TESTING_PREPAID_P = 0.7
CARD_TESTING_FOREIGN_IP_P = 0.75
CARD_TESTING_CASHOUT_P = 0.3
ATO_DEPARTMENT_P = {"Electronics": 0.6, "Apparel": 0.1, "Footwear": 0.1, GIFT_CARDS: 0.2}
ATO_FOREIGN_SHIP_P = 0.8
DIGITAL_GOODS_DENOMINATIONS = (50.0, 75.0, 100.0, 150.0, 200.0, 250.0)
INVESTIGATION_P = {
    "card_testing": 0.6,
    "account_takeover": 0.2,
    "resale": 0.3,
    "digital_goods": 0.1,
}
CHARGEBACK_DELAY = {"median_days": 18.0, "log_sd": 0.6, "min_days": 2, "max_days": 60}
INVESTIGATION_DELAY = {"median_days": 4.0, "log_sd": 0.5, "min_days": 1, "max_days": 30}
DISPUTE_WINDOW_DAYS = 60  # legitimate labels: no chargeback arrived within this window


@dataclass(frozen=True)
class FraudPlan:
    """Rows per day each pattern should produce, from the legitimate volume and the knobs."""

    per_day: dict[str, np.ndarray]


def _share(pattern: str, n_days: int) -> np.ndarray:
    start, end = MIX[pattern]
    return start + (end - start) * np.arange(n_days) / max(n_days - 1, 1)


def plan_fraud(
    legit_days: np.ndarray,
    n_days: int,
    rate: float,
    change: FraudPatternChange | None,
    change_day: int | None,
) -> FraudPlan:
    unknown = set((change.mix_multipliers or {}) if change else ()) - set(MIX)
    if unknown:
        raise ValueError(
            f"FraudPatternChange.mix_multipliers has unknown pattern(s) {sorted(unknown)}; "
            f"known: {', '.join(MIX)}"
        )
    legit_per_day = np.bincount(legit_days, minlength=n_days).astype(float)
    base = legit_per_day * rate / (1 - rate)
    after = np.zeros(n_days, dtype=bool) if change_day is None else np.arange(n_days) >= change_day
    per_day = {}
    for pattern in MIX:
        multiplier = (change.mix_multipliers or {}).get(pattern, 1.0) if change else 1.0
        per_day[pattern] = base * _share(pattern, n_days) * np.where(after, multiplier, 1.0)
    if change is not None and change.new_pattern:
        r = change.new_pattern_rate
        per_day["digital_goods"] = legit_per_day * r / (1 - r - rate) * after
    return FraudPlan(per_day=per_day)


def _episodes(
    rng: np.random.Generator,
    per_day: np.ndarray,
    size: Callable[[int], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Episode days and sizes whose rows add up exactly to the planned total."""
    total = round(float(per_day.sum()))
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    sizes = size(total + 1)  # every episode has at least one row, so this is always enough
    cum = np.cumsum(sizes)
    last = int(np.searchsorted(cum, total))
    sizes = sizes[: last + 1].copy()
    sizes[-1] -= cum[last] - total
    days = rng.choice(len(per_day), size=len(sizes), p=per_day / per_day.sum())
    return days, sizes


def _active_customers(
    rng: np.random.Generator, customers: Customers, day: np.ndarray, tenure: int = 0
) -> np.ndarray:
    """A random customer per row who had signed up at least ``tenure`` days before ``day``."""
    out = rng.integers(customers.n, size=len(day))
    for _ in range(50):
        bad = np.flatnonzero(customers.signup[out] > day - tenure)
        if len(bad) == 0:
            return out
        out[bad] = rng.integers(customers.n, size=len(bad))
    out[bad] = int(np.argmin(customers.signup))
    return out


def _rows(
    sizes: np.ndarray, start: np.ndarray, gap_us: np.ndarray, window_end_us: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand episodes to rows: (episode of row, timestamp, is last row of its episode).

    An episode that would run past the end of the window starts earlier instead.
    """
    episode = np.repeat(np.arange(len(sizes)), sizes)
    if len(sizes) == 0:
        return episode, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    last = np.cumsum(sizes) - 1
    gaps = gap_us.copy()
    gaps[first] = 0
    offset = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], sizes)
    start = np.minimum(start, window_end_us - 1 - offset[last])
    is_last = np.zeros(len(episode), dtype=bool)
    is_last[last] = True
    return episode, start[episode] + offset, is_last


def _window_end_us(cal: TradingCalendar) -> int:
    return (int(cal.epoch_days[-1]) + 1) * US_PER_DAY


def _online_txns(
    n: int,
    customer: np.ndarray,
    card: np.ndarray,
    device: np.ndarray,
    amount: np.ndarray,
    n_items: np.ndarray,
    top_dept: np.ndarray,
    billing: np.ndarray,
    shipping: np.ndarray,
    ip: np.ndarray,
    address: np.ndarray,
    ts: np.ndarray,
    pattern: str,
) -> Txns:
    return Txns(
        customer=customer,
        card=card,
        device=device,
        terminal=np.full(n, -1),
        channel=np.zeros(n, dtype=np.int64),
        store=np.full(n, -1),
        amount=np.round(amount, 2),
        n_items=n_items,
        top_dept=top_dept,
        billing=billing,
        shipping=shipping,
        ip=ip,
        address=address,
        ts=ts,
        fraud_type=np.full(n, FRAUD_TYPES.index(pattern)),
    )


def _foreign(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(len(COUNTRIES), len(PAYMENT_COUNTRIES), n)


def _card_testing(
    rng: np.random.Generator,
    cal: TradingCalendar,
    customers: Customers,
    wallet: Wallet,
    per_day: np.ndarray,
) -> Txns:
    day, sizes = _episodes(rng, per_day, lambda k: np.minimum(3 + rng.geometric(0.12, k) - 1, 40))
    n_ep = len(sizes)
    start = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + sample_seconds(rng, n_ep, "fraud")
    gap = rng.exponential(60 * US_PER_SECOND, int(sizes.sum())).astype(np.int64) + US_PER_SECOND
    ep, ts, is_last = _rows(sizes, start, gap, _window_end_us(cal))
    n = len(ep)
    methods = np.where(
        rng.random(n_ep) < CARD_TESTING_PREPAID_P, 2, rng.choice([0, 1], n_ep, p=[0.67, 0.33])
    )
    card = wallet.new_cards(methods)
    device = wallet.new_devices(n_ep)
    billing = np.where(rng.random(n_ep) < 0.55, 0, _foreign(rng, n_ep))
    ip = np.where(rng.random(n_ep) < CARD_TESTING_FOREIGN_IP_P, _foreign(rng, n_ep), 0)
    amount = np.round(rng.uniform(0.5, 5.0, n), 2)
    cashout = is_last & (sizes[ep] > 2) & (rng.random(n) < CARD_TESTING_CASHOUT_P)
    amount[cashout] = np.round(rng.uniform(50, 300, int(cashout.sum())), 2)
    gift = PAYMENT_DEPARTMENTS.index(GIFT_CARDS)
    top = np.where(rng.random(n_ep) < 0.7, gift, DEPARTMENT_NAMES.index("Beauty"))[ep]
    return _online_txns(
        n,
        _active_customers(rng, customers, day)[ep],
        card[ep],
        device[ep],
        amount,
        np.ones(n, dtype=np.int64),
        top,
        billing[ep],
        ip[ep],
        ip[ep],
        np.full(n, -1),
        ts,
        "card_testing",
    )


def _dormant_victims(
    rng: np.random.Generator,
    customers: Customers,
    legit: Txns,
    day: np.ndarray,
    at_us: np.ndarray,
) -> np.ndarray:
    """Customers with tenure who have not paid for at least ATO_DORMANT_DAYS before ``at_us``."""
    seconds = legit.ts // US_PER_SECOND
    keys = np.sort(legit.customer.astype(np.int64) << 32 | seconds)
    at_s = at_us // US_PER_SECOND
    out = np.full(len(day), -1)
    pending = np.arange(len(day))
    for _ in range(60):
        if len(pending) == 0:
            break
        cand = _active_customers(rng, customers, day[pending], ATO_MIN_TENURE_DAYS)
        idx = np.searchsorted(keys, cand.astype(np.int64) << 32 | at_s[pending]) - 1
        prev = keys[np.maximum(idx, 0)]
        has_prev = (idx >= 0) & ((prev >> 32) == cand)
        quiet = at_s[pending] - (prev & 0xFFFFFFFF) >= ATO_DORMANT_DAYS * 86_400
        ok = ~has_prev | quiet
        out[pending[ok]] = cand[ok]
        pending = pending[~ok]
    if len(pending):  # extremely active populations: fall back to the longest-tenured customer
        out[pending] = int(np.argmin(customers.signup))
    return out


def _account_takeover(
    rng: np.random.Generator,
    cal: TradingCalendar,
    catalog: Catalog,
    customers: Customers,
    wallet: Wallet,
    plan: PricePlan,
    legit: Txns,
    per_day: np.ndarray,
) -> Txns:
    day, sizes = _episodes(rng, per_day, lambda k: 1 + rng.binomial(3, 0.35, k))
    n_ep = len(sizes)
    start = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + sample_seconds(rng, n_ep, "fraud")
    victim = _dormant_victims(rng, customers, legit, day, start)
    gap = rng.exponential(15 * 60 * US_PER_SECOND, int(sizes.sum())).astype(np.int64)
    ep, ts, _ = _rows(sizes, start, gap, _window_end_us(cal))
    n = len(ep)
    device = wallet.new_devices(n_ep)
    address = wallet.new_addresses(n_ep)
    billing = customers.country[victim]
    ip = _foreign(rng, n_ep)
    shipping = np.where(
        rng.random(n_ep) < ATO_FOREIGN_SHIP_P,
        np.where(rng.random(n_ep) < 0.5, ip, _foreign(rng, n_ep)),
        billing,
    )
    departments = list(ATO_DEPARTMENT_P)
    dept = rng.choice(len(departments), size=n, p=list(ATO_DEPARTMENT_P.values()))
    amount, n_items, top = _expensive_baskets(
        rng,
        catalog,
        plan,
        np.array([PAYMENT_DEPARTMENTS.index(d) for d in departments])[dept],
        1 + rng.binomial(2, 0.3, n),
        day[ep],
    )
    return _online_txns(
        n,
        victim[ep],
        wallet.pick_card(rng, victim)[ep],
        device[ep],
        amount,
        n_items,
        top,
        billing[ep],
        shipping[ep],
        ip[ep],
        address[ep],
        ts,
        "account_takeover",
    )


def _expensive_baskets(
    rng: np.random.Generator,
    catalog: Catalog,
    plan: PricePlan,
    dept: np.ndarray,
    n_items: np.ndarray,
    day: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baskets of a department's dearer items (fraudsters buy what resells); gift cards too."""
    gift = dept == PAYMENT_DEPARTMENTS.index(GIFT_CARDS)
    sampler = GroupSampler(catalog, catalog.dept, catalog.list_price**1.5, len(DEPARTMENT_NAMES))
    group = np.where(gift, 0, dept)
    item_group = np.repeat(group, n_items)
    amount, items, top = basket_amounts(
        rng, plan, catalog, sampler, group, item_group, n_items, day
    )
    gift = gift | (items == 0)
    gift_amount = rng.choice([100.0, 200.0, 250.0, 500.0], size=len(dept)) * n_items
    return (
        np.where(gift, gift_amount, amount),
        np.where(gift, n_items, items),
        np.where(gift, PAYMENT_DEPARTMENTS.index(GIFT_CARDS), top),
    )


def _resale(
    rng: np.random.Generator,
    cal: TradingCalendar,
    catalog: Catalog,
    customers: Customers,
    wallet: Wallet,
    plan: PricePlan,
    per_day: np.ndarray,
) -> tuple[Txns, int]:
    day, sizes = _episodes(rng, per_day, lambda k: 1 + rng.binomial(2, 0.3, k))
    n_ep = len(sizes)
    start = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + sample_seconds(rng, n_ep, "online")
    gap = rng.exponential(3 * 3600 * US_PER_SECOND, int(sizes.sum())).astype(np.int64)
    ep, ts, _ = _rows(sizes, start, gap, _window_end_us(cal))
    n = len(ep)
    # The ring rotates through a few drop addresses and devices over time.
    n_drop = int(np.clip(n_ep // 6, 3, 15))
    n_ring_devices = int(np.clip(n_ep // 4, 4, 25))
    drops = wallet.new_addresses(n_drop)
    ring_devices = wallet.new_devices(n_ring_devices)
    phase = day[ep] / max(cal.n_days - 1, 1)
    drop = np.minimum((phase * (n_drop - 2)).astype(np.int64) + rng.integers(0, 3, n), n_drop - 1)
    dev = np.minimum(
        (phase * (n_ring_devices - 3)).astype(np.int64) + rng.integers(0, 4, n),
        n_ring_devices - 1,
    )
    victim = _active_customers(rng, customers, day)
    electronics = np.full(n, PAYMENT_DEPARTMENTS.index("Electronics"))
    amount, n_items, top = _expensive_baskets(
        rng, catalog, plan, electronics, 2 + rng.binomial(3, 0.4, n), day[ep]
    )
    us = PAYMENT_COUNTRIES.index("US")
    return (
        _online_txns(
            n,
            victim[ep],
            wallet.pick_card(rng, victim)[ep],
            ring_devices[dev],
            amount,
            n_items,
            top,
            customers.country[victim][ep],
            np.full(n, us),
            np.full(n, us),
            drops[drop],
            ts,
            "resale",
        ),
        n_drop,
    )


def _digital_goods(
    rng: np.random.Generator,
    cal: TradingCalendar,
    customers: Customers,
    wallet: Wallet,
    per_day: np.ndarray,
) -> Txns:
    day, sizes = _episodes(rng, per_day, lambda k: 1 + rng.binomial(2, 0.4, k))
    n_ep = len(sizes)
    start = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + sample_seconds(rng, n_ep, "online")
    gap = rng.exponential(20 * 60 * US_PER_SECOND, int(sizes.sum())).astype(np.int64)
    ep, ts, _ = _rows(sizes, start, gap, _window_end_us(cal))
    n = len(ep)
    victim = _active_customers(rng, customers, day)
    n_items = 1 + (rng.random(n) < 0.3)
    amount = (
        np.array(DIGITAL_GOODS_DENOMINATIONS)[
            rng.integers(len(DIGITAL_GOODS_DENOMINATIONS), size=n)
        ]
        * n_items
    )
    home = customers.country[victim][ep]
    return _online_txns(
        n,
        victim[ep],
        wallet.pick_card(rng, victim)[ep],
        wallet.pick_device(rng, victim)[ep],
        amount,
        n_items,
        np.full(n, PAYMENT_DEPARTMENTS.index(GIFT_CARDS)),
        home,
        home,
        home,
        np.full(n, -1),
        ts,
        "digital_goods",
    )


def add_fraud(
    seed: int,
    cal: TradingCalendar,
    catalog: Catalog,
    customers: Customers,
    wallet: Wallet,
    plan: PricePlan,
    legit: Txns,
    fraud_plan: FraudPlan,
) -> tuple[list[Txns], dict[str, Any]]:
    parts: list[Txns] = []
    info: dict[str, Any] = {}
    per_day = fraud_plan.per_day
    parts.append(
        _card_testing(
            substream(seed, "fraud", "card_testing"),
            cal,
            customers,
            wallet,
            per_day["card_testing"],
        )
    )
    parts.append(
        _account_takeover(
            substream(seed, "fraud", "account_takeover"),
            cal,
            catalog,
            customers,
            wallet,
            plan,
            legit,
            per_day["account_takeover"],
        )
    )
    resale, n_drop = _resale(
        substream(seed, "fraud", "resale"), cal, catalog, customers, wallet, plan, per_day["resale"]
    )
    parts.append(resale)
    info["resale_drop_addresses"] = n_drop
    if "digital_goods" in per_day:
        parts.append(
            _digital_goods(
                substream(seed, "fraud", "digital_goods"),
                cal,
                customers,
                wallet,
                per_day["digital_goods"],
            )
        )
    return parts, info


def _delay_days(rng: np.random.Generator, spec: dict[str, float], n: int) -> np.ndarray:
    days = np.exp(rng.normal(np.log(spec["median_days"]), spec["log_sd"], n))
    return np.clip(days, spec["min_days"], spec["max_days"])


def fraud_labels(seed: int, payments: pl.DataFrame, fraud_type: np.ndarray) -> pl.DataFrame:
    rng = substream(seed, "fraud", "labels")
    n = len(fraud_type)
    is_fraud = fraud_type >= 0
    p_investigation = np.array([INVESTIGATION_P[t] for t in FRAUD_TYPES])[np.maximum(fraud_type, 0)]
    investigated = is_fraud & (rng.random(n) < p_investigation)
    delay_days = np.where(
        is_fraud,
        np.where(
            investigated,
            _delay_days(rng, INVESTIGATION_DELAY, n),
            _delay_days(rng, CHARGEBACK_DELAY, n),
        ),
        DISPUTE_WINDOW_DAYS,
    )
    delay_us = (delay_days * US_PER_DAY).astype(np.int64)
    source = np.where(
        is_fraud, np.where(investigated, "investigation", "chargeback"), "dispute_window_closed"
    )
    frame = pl.DataFrame(
        {
            "transaction_id": payments["transaction_id"],
            "is_fraud": is_fraud,
            "fraud_type": pl.Series(fraud_type).replace_strict(
                dict(enumerate(FRAUD_TYPES)), default=None, return_dtype=pl.String
            ),
            "label_source": source,
            "label_available_at": payments["event_ts"]
            + pl.Series(delay_us).cast(pl.Duration("us")),
        }
    )
    return FRAUD_LABELS.conform(frame)


def ground_truth(
    payments: pl.DataFrame,
    fraud_type: np.ndarray,
    rate: float,
    rate_range: tuple[float, float],
    change_day: int | None,
    start_date: date,
    info: dict[str, Any],
) -> dict[str, Any]:
    n = len(fraud_type)
    per_type = {t: int((fraud_type == i).sum()) for i, t in enumerate(FRAUD_TYPES)}
    quarter = (
        pl.DataFrame({"ts": payments["event_ts"], "type": fraud_type})
        .with_columns(
            quarter=pl.format("{}-Q{}", pl.col("ts").dt.year(), pl.col("ts").dt.quarter())
        )
        .group_by("quarter")
        .agg(
            [pl.len().alias("transactions"), (pl.col("type") >= 0).mean().alias("fraud_rate")]
            + [(pl.col("type") == i).mean().alias(t) for i, t in enumerate(FRAUD_TYPES)]
        )
        .sort("quarter")
    )
    return {
        "target_rate": rate,
        "rate_range": list(rate_range),
        "overall_rate": sum(per_type.values()) / max(n, 1),
        "transactions": n,
        "fraud_transactions_by_type": per_type,
        "rate_by_quarter": {
            row["quarter"]: {k: v for k, v in row.items() if k != "quarter"}
            for row in quarter.iter_rows(named=True)
        },
        "mix_share_start_end": {k: list(v) for k, v in MIX.items()},
        "patterns": {
            "card_testing": (
                "bursts of 3-40 small (0.50-5.00 USD) online attempts on one new card (prepaid "
                f"with p={CARD_TESTING_PREPAID_P}) from one new device, seconds to minutes apart; "
                f"foreign IP with p={CARD_TESTING_FOREIGN_IP_P}; the last attempt is a 50-300 "
                f"USD cash-out with p={CARD_TESTING_CASHOUT_P}; mostly gift cards"
            ),
            "account_takeover": (
                f"customer with >= {ATO_MIN_TENURE_DAYS} days tenure and no payment in the last "
                f"{ATO_DORMANT_DAYS} days; their own card from a new device, foreign IP, new "
                f"shipping address (foreign country with p={ATO_FOREIGN_SHIP_P}); 1-4 payments "
                "minutes apart for dear electronics, apparel, footwear or gift cards"
            ),
            "resale": (
                "stolen cards of many customers buy 2-5 dear electronics items per order, "
                f"domestic IP, shipped to {info['resale_drop_addresses']} drop addresses "
                "(shipping_address_id) and ring devices that rotate over time"
            ),
            "digital_goods": (
                "only after a FraudPatternChange: 50-250 USD gift cards from the victim's own "
                "card and existing device, domestic IP, no shipping address"
            ),
        },
        "pattern_change_date": (
            None if change_day is None else (start_date + timedelta(days=change_day)).isoformat()
        ),
        "label_delay": {
            "chargeback_days_lognormal": CHARGEBACK_DELAY,
            "investigation_days_lognormal": INVESTIGATION_DELAY,
            "investigation_share_by_type": INVESTIGATION_P,
            "legitimate_days": DISPUTE_WINDOW_DAYS,
            "note": "label_available_at = event_ts + delay; labels after the window are emitted",
        },
    }
