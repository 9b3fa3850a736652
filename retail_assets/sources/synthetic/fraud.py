"""Fraud patterns added to the payments, and the delayed, imperfect labels that reveal them.

Each pattern is generated explicitly, so the ground truth knows every fraudulent row, and how
it was done (its variant, ``VARIANTS``):

- card_testing: stolen card numbers tried online with small amounts. Fast bursts are 3-40
  attempts of 0.50-5.00 USD seconds to minutes apart on one new card; slow ones are 2-12
  attempts of 5-40 USD tens of minutes apart, like small orders; distributed ones spend one
  attempt per stolen card, each from a fresh device on a random account, so no card, device
  or account velocity builds up. Half come through proxies in the billing country, some
  rotate device fingerprints, and a burst may end in a larger cash-out.
- account_takeover: a customer's own card used through their account for dear baskets
  shipped to a new address. Most take over a dormant account from a new device (often from
  abroad, in the fraudsters' office hours: our night); a session hijack rides the victim's
  live session instead: their own device, a domestic IP, ordinary hours, any account.
- resale: rings buy resellable goods (mostly electronics) with many stolen cards. Online, a
  drop address is used for a couple of weeks and then abandoned, some orders go to one-off
  reshipper addresses, and ring devices rotate, with fresh fingerprints now and then; in
  store, cloned cards go on a spree through the tills in opening hours (electronics and gift
  cards), where device and geography signals do not exist.
- digital_goods (only with a FraudPatternChange knob): mid-value gift cards from the victim's
  own device and a domestic IP, which device and geography features barely notice.

The mix drifts over the window: card testing declines and account takeover rises.

Fraud is not a single signal away from legitimate use (see ``payments``: travellers, new
phones, lockers, big-ticket buys, retries, split tenders, night owls). The risk is not
monotone either, nor additive (``RISK_STRUCTURE``): very small amounts (testing) and very
large ones (takeover, resale) are risky while mid-size baskets are not; a foreign IP is
common for travellers on known devices but rare with a first device; the night is risky
online only; card velocity means testing with tiny amounts, a retry or a family order with
ordinary ones, and a spree in store.

Labels are imperfect, as in reality: some frauds are never reported (small charges go
unnoticed) and are labelled legitimate when the dispute window closes, and some legitimate
online payments are disputed by their own cardholder ("friendly fraud") and arrive as fraud
chargebacks. The ground truth lists both sets of transactions.
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
    STORE_COUNTRY,
    TERMINALS,
    Txns,
    Wallet,
    dear_baskets,
)
from retail_assets.sources.synthetic.pricing import PricePlan
from retail_assets.sources.synthetic.sampling import (
    US_PER_DAY,
    US_PER_SECOND,
    sample_seconds,
)
from retail_assets.sources.synthetic.stores import FORMATS, Stores

FRAUD_TYPES = ("card_testing", "account_takeover", "resale", "digital_goods")
# How each fraud row was done; the type is the part before the slash.
VARIANTS = (
    "card_testing/fast",
    "card_testing/slow",
    "card_testing/distributed",
    "account_takeover/new_device",
    "account_takeover/session_hijack",
    "resale/drop_address",
    "resale/one_off_address",
    "resale/in_store",
    "digital_goods/known_device",
)
# Share of fraud rows per pattern at the start and at the end of the window (linear between).
MIX = {
    "card_testing": (0.45, 0.15),
    "account_takeover": (0.20, 0.50),
    "resale": (0.35, 0.35),
}

# Card-testing bursts: fast (many tiny attempts on one card), slow (fewer 5-40 USD attempts
# spread out, like small real orders) or distributed (one attempt per stolen card, each from
# a fresh device on a random account, so no card, device or account velocity builds up).
CARD_TESTING_MODE_P = {"fast": 0.35, "slow": 0.25, "distributed": 0.4}
SLOW = list(CARD_TESTING_MODE_P).index("slow")
DISTRIBUTED = list(CARD_TESTING_MODE_P).index("distributed")
CARD_TESTING_FAST_AMOUNT = (0.5, 5.0)
CARD_TESTING_SLOW_AMOUNT = (5.0, 40.0)
CARD_TESTING_FAST_GAP_S = {"min": 1.0, "mean_extra": 60.0}
CARD_TESTING_SLOW_GAP_S = {"min": 120.0, "mean_extra": 45 * 60.0}
CARD_TESTING_PREPAID_P = 0.5
CARD_TESTING_FOREIGN_BILLING_P = 0.25  # the stolen card was issued abroad
CARD_TESTING_FOREIGN_IP_P = 0.5  # the rest through domestic residential proxies
CARD_TESTING_ROTATING_DEVICE_P = 0.3  # anti-detect browsers: a new fingerprint per attempt
CARD_TESTING_CASHOUT_P = 0.3
CARD_TESTING_CASHOUT_AMOUNT = (50.0, 300.0)
CARD_TESTING_DEPARTMENTS = {
    "fast": {GIFT_CARDS: 0.7, "Beauty": 0.3},
    "slow": {GIFT_CARDS: 0.4, "Beauty": 0.3, "Apparel": 0.3},
}

ATO_DORMANT_DAYS = 30
ATO_MIN_TENURE_DAYS = 60
ATO_SESSION_HIJACK_P = 0.4  # the victim's live session: own device, domestic IP, any activity
ATO_FOREIGN_IP_P = 0.45  # of new-device takeovers; the rest through domestic proxies
ATO_FOREIGN_SHIP_P = 0.3  # of new-device takeovers; hijacks ship to domestic drops
ATO_SINGLE_PAYMENT_P = 0.55  # one big order; otherwise 2-4 payments minutes apart
ATO_PRICE_POWER = 1.0  # items drawn with weight popularity * list_price ** power
ATO_DEPARTMENT_P = {"Electronics": 0.6, "Apparel": 0.1, "Footwear": 0.1, GIFT_CARDS: 0.2}

RESALE_DEPARTMENT_P = {"Electronics": 0.75, "Footwear": 0.1, "Toys": 0.08, "Beauty": 0.07}
RESALE_IN_STORE_SHARE = 0.3  # of resale rows: cloned cards used at the tills
RESALE_IN_STORE_DEPARTMENT_P = {"Electronics": 0.6, GIFT_CARDS: 0.4}
RESALE_IN_STORE_GAP_S = {"min": 20 * 60.0, "mean_extra": 60 * 60.0}
RESALE_IN_STORE_OPEN_HOUR, RESALE_IN_STORE_CLOSE_HOUR = 7, 23  # as the stores
RESALE_PRICE_POWER = 0.75  # popular, resellable electronics rather than the dearest
RESALE_DROP_LIFETIME_DAYS = 14  # a drop address is used for about two weeks, then abandoned
RESALE_ORDERS_PER_DROP = 6
RESALE_DEVICE_LIFETIME_DAYS = 30
RESALE_ORDERS_PER_DEVICE = 8
RESALE_ONE_OFF_ADDRESS_P = 0.35  # orders shipped to a one-off reshipper address
RESALE_FRESH_DEVICE_P = 0.3  # orders from a fresh device fingerprint

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
# Label noise. Frauds nobody reports are labelled legitimate when the dispute window closes.
UNREPORTED_P = {
    "card_testing": 0.12,  # a few dollars on a statement go unnoticed
    "account_takeover": 0.04,
    "resale": 0.05,
    "digital_goods": 0.12,
}
# Friendly fraud: a cardholder disputes their own online purchase as "not me". The chance
# grows with the amount (square root) and is higher for gift cards.
FRIENDLY_FRAUD_P = 0.0035  # mean share of legitimate online payments disputed
FRIENDLY_FRAUD_GIFT_CARD_FACTOR = 2.0
# The chargeback claims unauthorised use of the customer's account, and is filed as such.
FRIENDLY_FRAUD_REPORTED_TYPE = "account_takeover"
FRIENDLY_CHARGEBACK_DELAY = {"median_days": 25.0, "log_sd": 0.5, "min_days": 3, "max_days": 60}


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


def _gaps(rng: np.random.Generator, spec: dict[str, float], n: int) -> np.ndarray:
    return ((spec["min"] + rng.exponential(spec["mean_extra"], n)) * US_PER_SECOND).astype(np.int64)


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
    variant: np.ndarray,
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
        fraud_type=np.array([FRAUD_TYPES.index(VARIANTS[v].split("/")[0]) for v in variant])
        if n
        else np.zeros(0, dtype=np.int64),
        variant=variant,
    )


def _fraud_seconds(rng: np.random.Generator, abroad: np.ndarray) -> np.ndarray:
    """Time of day of fraud run from abroad (their daytime, our night and early morning) or
    from inside the country (around the clock, leaning on the night)."""
    n = len(abroad)
    return np.where(abroad, sample_seconds(rng, n, "fraud_abroad"), sample_seconds(rng, n, "fraud"))


def _variant(name: str, n: int) -> np.ndarray:
    return np.full(n, VARIANTS.index(name), dtype=np.int64)


def _foreign(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(len(COUNTRIES), len(PAYMENT_COUNTRIES), n)


def _departments(rng: np.random.Generator, shares: dict[str, float], n: int) -> np.ndarray:
    codes = np.array([PAYMENT_DEPARTMENTS.index(d) for d in shares])
    return codes[rng.choice(len(codes), size=n, p=list(shares.values()))]


def _card_testing(
    rng: np.random.Generator,
    cal: TradingCalendar,
    customers: Customers,
    wallet: Wallet,
    per_day: np.ndarray,
) -> Txns:
    drawn: dict[str, np.ndarray] = {}

    def size(k: int) -> np.ndarray:
        mode = rng.choice(len(CARD_TESTING_MODE_P), size=k, p=list(CARD_TESTING_MODE_P.values()))
        drawn["mode"] = mode
        burst = np.minimum(3 + rng.geometric(0.12, k) - 1, 40)
        slow = np.minimum(2 + rng.geometric(0.35, k) - 1, 12)
        return np.where(mode == SLOW, slow, burst)

    day, sizes = _episodes(rng, per_day, size)
    n_ep = len(sizes)
    mode = drawn.get("mode", np.zeros(0, dtype=np.int64))[:n_ep]
    # Testers abroad work in their own daytime, the small hours here; proxies in the billing
    # country hide that less well.
    abroad = rng.random(n_ep) < CARD_TESTING_FOREIGN_IP_P
    start = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + _fraud_seconds(rng, abroad)
    row_mode = np.repeat(mode, sizes)
    n = len(row_mode)
    slow = row_mode == SLOW
    spread = row_mode == DISTRIBUTED
    gap = np.where(
        slow, _gaps(rng, CARD_TESTING_SLOW_GAP_S, n), _gaps(rng, CARD_TESTING_FAST_GAP_S, n)
    )
    ep, ts, is_last = _rows(sizes, start, gap, _window_end_us(cal))

    # One stolen card per burst, or (distributed) one per attempt, each through a guest
    # checkout on a random account from a fresh device.
    def methods(k: int) -> np.ndarray:
        prepaid = rng.random(k) < CARD_TESTING_PREPAID_P
        return np.where(prepaid, 2, rng.choice([0, 1], k, p=[0.67, 0.33]))

    card = wallet.new_cards(methods(n_ep))[ep]
    card[spread] = wallet.new_cards(methods(int(spread.sum())))
    device = wallet.new_devices(n_ep)[ep]
    rotating = (rng.random(n_ep) < CARD_TESTING_ROTATING_DEVICE_P)[ep] | spread
    device[rotating] = wallet.new_devices(int(rotating.sum()))
    customer = _active_customers(rng, customers, day)[ep]
    customer[spread] = _active_customers(rng, customers, day[ep[spread]])
    us = PAYMENT_COUNTRIES.index("US")

    def issuer(k: int) -> np.ndarray:
        return np.where(rng.random(k) < CARD_TESTING_FOREIGN_BILLING_P, _foreign(rng, k), us)

    billing = issuer(n_ep)[ep]
    billing[spread] = issuer(int(spread.sum()))
    ip = np.where(abroad, _foreign(rng, n_ep), -1)[ep]
    ip = np.where(ip >= 0, ip, billing)
    amount = np.where(
        slow,
        rng.uniform(*CARD_TESTING_SLOW_AMOUNT, n),
        rng.uniform(*CARD_TESTING_FAST_AMOUNT, n),
    )
    cashout = is_last & ~spread & (sizes[ep] > 2) & (rng.random(n) < CARD_TESTING_CASHOUT_P)
    amount[cashout] = rng.uniform(*CARD_TESTING_CASHOUT_AMOUNT, int(cashout.sum()))
    top = np.where(
        mode == SLOW,
        _departments(rng, CARD_TESTING_DEPARTMENTS["slow"], n_ep),
        _departments(rng, CARD_TESTING_DEPARTMENTS["fast"], n_ep),
    )[ep]
    variant = np.array([VARIANTS.index(f"card_testing/{m}") for m in CARD_TESTING_MODE_P])
    return _online_txns(
        n,
        customer,
        card,
        device,
        np.round(amount, 2),
        np.ones(n, dtype=np.int64),
        top,
        billing,
        ip,
        ip,
        np.full(n, -1),
        ts,
        variant[row_mode] if n else np.zeros(0, dtype=np.int64),
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
    day, sizes = _episodes(
        rng,
        per_day,
        lambda k: np.where(rng.random(k) < ATO_SINGLE_PAYMENT_P, 1, 2 + rng.binomial(2, 0.3, k)),
    )
    n_ep = len(sizes)
    hijack = rng.random(n_ep) < ATO_SESSION_HIJACK_P
    abroad = ~hijack & (rng.random(n_ep) < ATO_FOREIGN_IP_P)
    # A hijacked session is live when the victim shops; other takeovers lean on the night.
    seconds = np.where(hijack, sample_seconds(rng, n_ep, "online"), _fraud_seconds(rng, abroad))
    start = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + seconds
    victim = np.empty(n_ep, dtype=np.int64)
    victim[~hijack] = _dormant_victims(rng, customers, legit, day[~hijack], start[~hijack])
    victim[hijack] = _active_customers(rng, customers, day[hijack], ATO_MIN_TENURE_DAYS)
    gap = _gaps(rng, {"min": 0.0, "mean_extra": 15 * 60.0}, int(sizes.sum()))
    ep, ts, _ = _rows(sizes, start, gap, _window_end_us(cal))
    n = len(ep)
    device = wallet.pick_device(rng, victim, day)
    device[~hijack] = wallet.new_devices(int((~hijack).sum()))
    address = wallet.new_addresses(n_ep)
    billing = customers.country[victim]
    ip = np.where(abroad, _foreign(rng, n_ep), billing)
    foreign_ip = ip != billing
    shipping = np.where(
        ~hijack & (rng.random(n_ep) < ATO_FOREIGN_SHIP_P),
        np.where(foreign_ip & (rng.random(n_ep) < 0.5), ip, _foreign(rng, n_ep)),
        billing,
    )
    amount, n_items, top = dear_baskets(
        rng,
        catalog,
        plan,
        _departments(rng, ATO_DEPARTMENT_P, n),
        1 + rng.binomial(2, 0.3, n),
        day[ep],
        ATO_PRICE_POWER,
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
        np.where(
            hijack,
            VARIANTS.index("account_takeover/session_hijack"),
            VARIANTS.index("account_takeover/new_device"),
        )[ep],
    )


def _rotating(
    rng: np.random.Generator, day: np.ndarray, lifetime_days: int, per_item: int, n_days: int
) -> tuple[np.ndarray, int]:
    """Slot each row into a resource (drop address, device) that lives ``lifetime_days``:
    as many are live at once as keep about ``per_item`` rows on each. Returns (index, count)."""
    n = len(day)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    live = max(1, round(n / max(n_days, 1) * lifetime_days / per_item))
    key = (day // lifetime_days) * live + rng.integers(0, live, n)
    unique, index = np.unique(key, return_inverse=True)
    return index, len(unique)


def _resale(
    rng: np.random.Generator,
    cal: TradingCalendar,
    catalog: Catalog,
    customers: Customers,
    wallet: Wallet,
    plan: PricePlan,
    per_day: np.ndarray,
) -> tuple[Txns, dict[str, int]]:
    day, sizes = _episodes(rng, per_day, lambda k: 1 + rng.binomial(2, 0.3, k))
    n_ep = len(sizes)
    start = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + sample_seconds(rng, n_ep, "online")
    gap = _gaps(rng, {"min": 0.0, "mean_extra": 3 * 3600.0}, int(sizes.sum()))
    ep, ts, _ = _rows(sizes, start, gap, _window_end_us(cal))
    n = len(ep)
    row_day = day[ep]
    # Drop addresses and ring devices are used for a while, then abandoned for new ones.
    drop, n_drop = _rotating(
        rng, row_day, RESALE_DROP_LIFETIME_DAYS, RESALE_ORDERS_PER_DROP, cal.n_days
    )
    address = wallet.new_addresses(n_drop)[drop]
    one_off = rng.random(n) < RESALE_ONE_OFF_ADDRESS_P
    address[one_off] = wallet.new_addresses(int(one_off.sum()))
    ring_device, n_ring_devices = _rotating(
        rng, row_day, RESALE_DEVICE_LIFETIME_DAYS, RESALE_ORDERS_PER_DEVICE, cal.n_days
    )
    device = wallet.new_devices(n_ring_devices)[ring_device]
    fresh = rng.random(n) < RESALE_FRESH_DEVICE_P
    device[fresh] = wallet.new_devices(int(fresh.sum()))
    victim = _active_customers(rng, customers, day)
    amount, n_items, top = dear_baskets(
        rng,
        catalog,
        plan,
        _departments(rng, RESALE_DEPARTMENT_P, n),
        1 + rng.binomial(2, 0.35, n),
        row_day,
        RESALE_PRICE_POWER,
    )
    us = PAYMENT_COUNTRIES.index("US")
    return (
        _online_txns(
            n,
            victim[ep],
            wallet.pick_card(rng, victim)[ep],
            device,
            amount,
            n_items,
            top,
            customers.country[victim][ep],
            np.full(n, us),
            np.full(n, us),
            address,
            ts,
            np.where(
                one_off,
                VARIANTS.index("resale/one_off_address"),
                VARIANTS.index("resale/drop_address"),
            ),
        ),
        {
            "resale_drop_addresses": n_drop,
            "resale_ring_devices": n_ring_devices,
            "resale_one_off_addresses": int(one_off.sum()),
            "resale_fresh_devices": int(fresh.sum()),
        },
    )


def _resale_in_store(
    rng: np.random.Generator,
    cal: TradingCalendar,
    catalog: Catalog,
    customers: Customers,
    stores: Stores,
    wallet: Wallet,
    plan: PricePlan,
    per_day: np.ndarray,
) -> Txns:
    """Cloned cards on a spree through the physical stores: a few purchases hours apart, in
    opening hours, of electronics and gift cards at the till."""
    day, sizes = _episodes(rng, per_day, lambda k: 2 + rng.binomial(3, 0.4, k))
    n_ep = len(sizes)
    start = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + sample_seconds(
        rng, n_ep, "in_store"
    )
    gap = _gaps(rng, RESALE_IN_STORE_GAP_S, int(sizes.sum()))
    ep, ts, _ = _rows(sizes, start, gap, _window_end_us(cal))
    # A spree that would run past closing time starts earlier instead (but not before opening).
    hour_us = 3600 * US_PER_SECOND
    day_us = cal.epoch_days[day].astype(np.int64) * US_PER_DAY
    first = np.full(n_ep, np.iinfo(np.int64).max)
    last = np.zeros(n_ep, dtype=np.int64)
    np.minimum.at(first, ep, ts)
    np.maximum.at(last, ep, ts)
    over = last - (day_us + RESALE_IN_STORE_CLOSE_HOUR * hour_us)
    room = first - (day_us + RESALE_IN_STORE_OPEN_HOUR * hour_us)
    ts = ts - np.maximum(np.minimum(over, room), 0)[ep]
    n = len(ep)
    victim = _active_customers(rng, customers, day)
    store = rng.choice(stores.physical, size=n)
    terminals = np.array([TERMINALS.get(FORMATS[f], 1) for f in stores.format])[store]
    amount, n_items, top = dear_baskets(
        rng,
        catalog,
        plan,
        _departments(rng, RESALE_IN_STORE_DEPARTMENT_P, n),
        1 + rng.binomial(1, 0.3, n),
        day[ep],
        RESALE_PRICE_POWER,
    )
    billing = customers.country[victim][ep]
    return Txns(
        customer=victim[ep],
        card=wallet.pick_card(rng, victim)[ep],
        device=np.full(n, -1),
        terminal=(rng.random(n) * terminals).astype(np.int64),
        channel=np.ones(n, dtype=np.int64),
        store=store,
        amount=np.round(amount, 2),
        n_items=n_items,
        top_dept=top,
        billing=billing,
        shipping=billing,
        ip=np.full(n, PAYMENT_COUNTRIES.index(STORE_COUNTRY)),
        address=np.full(n, -1),
        ts=ts,
        fraud_type=np.full(n, FRAUD_TYPES.index("resale")),
        variant=_variant("resale/in_store", n),
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
    gap = _gaps(rng, {"min": 0.0, "mean_extra": 20 * 60.0}, int(sizes.sum()))
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
        wallet.pick_device(rng, victim[ep], day[ep]),
        amount,
        n_items,
        np.full(n, PAYMENT_DEPARTMENTS.index(GIFT_CARDS)),
        home,
        home,
        home,
        np.full(n, -1),
        ts,
        _variant("digital_goods/known_device", n),
    )


def add_fraud(
    seed: int,
    cal: TradingCalendar,
    catalog: Catalog,
    customers: Customers,
    stores: Stores,
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
    resale, resale_info = _resale(
        substream(seed, "fraud", "resale"),
        cal,
        catalog,
        customers,
        wallet,
        plan,
        per_day["resale"] * (1 - RESALE_IN_STORE_SHARE),
    )
    parts.append(resale)
    info.update(resale_info)
    parts.append(
        _resale_in_store(
            substream(seed, "fraud", "resale_in_store"),
            cal,
            catalog,
            customers,
            stores,
            wallet,
            plan,
            per_day["resale"] * RESALE_IN_STORE_SHARE,
        )
    )
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


@dataclass(frozen=True)
class LabelNoise:
    """Which labels differ from the truth: frauds never reported, legitimate payments
    charged back by their own cardholder (indices into the payments feed)."""

    unreported: np.ndarray
    friendly: np.ndarray


def fraud_labels(
    seed: int, payments: pl.DataFrame, fraud_type: np.ndarray
) -> tuple[pl.DataFrame, LabelNoise]:
    """The labels as the business learns them: reported frauds after a chargeback or an
    investigation, friendly-fraud chargebacks on legitimate payments, and "legitimate" for
    everything else (unreported frauds included) once the dispute window closes."""
    rng = substream(seed, "fraud", "labels")
    n = len(fraud_type)
    true_fraud = fraud_type >= 0
    type_index = np.maximum(fraud_type, 0)
    p_unreported = np.array([UNREPORTED_P[t] for t in FRAUD_TYPES])[type_index]
    unreported = true_fraud & (rng.random(n) < p_unreported)
    amount = payments["amount"].to_numpy()
    gift = (payments["top_department"] == GIFT_CARDS).to_numpy()
    online_legit = ~true_fraud & (payments["channel"] == "online").to_numpy()
    weight = np.sqrt(np.maximum(amount, 0.0)) * np.where(gift, FRIENDLY_FRAUD_GIFT_CARD_FACTOR, 1.0)
    mean_weight = weight[online_legit].mean() if online_legit.any() else 1.0
    p_friendly = FRIENDLY_FRAUD_P * weight / mean_weight
    friendly = online_legit & (rng.random(n) < p_friendly)
    reported = true_fraud & ~unreported
    is_fraud = reported | friendly

    p_investigation = np.array([INVESTIGATION_P[t] for t in FRAUD_TYPES])[type_index]
    investigated = reported & (rng.random(n) < p_investigation)
    investigation_delay = _delay_days(rng, INVESTIGATION_DELAY, n)
    chargeback_delay = _delay_days(rng, CHARGEBACK_DELAY, n)
    friendly_delay = _delay_days(rng, FRIENDLY_CHARGEBACK_DELAY, n)
    delay_days = np.where(
        investigated,
        investigation_delay,
        np.where(
            reported, chargeback_delay, np.where(friendly, friendly_delay, DISPUTE_WINDOW_DAYS)
        ),
    )
    delay_us = (delay_days * US_PER_DAY).astype(np.int64)
    source = np.where(
        investigated,
        "investigation",
        np.where(is_fraud, "chargeback", "dispute_window_closed"),
    )
    names = (*FRAUD_TYPES, FRIENDLY_FRAUD_REPORTED_TYPE)
    reported_type = np.where(friendly, len(FRAUD_TYPES), type_index)
    frame = pl.DataFrame(
        {
            "transaction_id": payments["transaction_id"],
            "is_fraud": is_fraud,
            "fraud_type": pl.Series(np.where(is_fraud, reported_type, -1)).replace_strict(
                dict(enumerate(names)), default=None, return_dtype=pl.String
            ),
            "label_source": source,
            "label_available_at": payments["event_ts"]
            + pl.Series(delay_us).cast(pl.Duration("us")),
        }
    )
    noise = LabelNoise(unreported=np.flatnonzero(unreported), friendly=np.flatnonzero(friendly))
    return FRAUD_LABELS.conform(frame), noise


def _patterns() -> dict[str, str]:
    return {
        "card_testing": (
            "online bursts of stolen cards (prepaid with "
            f"p={CARD_TESTING_PREPAID_P}, issued abroad with p={CARD_TESTING_FOREIGN_BILLING_P}), "
            f"foreign IP with p={CARD_TESTING_FOREIGN_IP_P} (else a proxy in the billing "
            f"country); modes {CARD_TESTING_MODE_P}: fast = 3-40 attempts of 0.50-5.00 USD "
            "seconds to minutes apart on one new card from one new device (a new fingerprint "
            f"per attempt with p={CARD_TESTING_ROTATING_DEVICE_P}); slow = 2-12 attempts of "
            "5-40 USD minutes to hours apart; distributed = like fast, but every attempt on "
            "another new card, from a new device and a random account; the last attempt of a "
            f"fast or slow burst of 3+ is a 50-300 USD cash-out with p={CARD_TESTING_CASHOUT_P}; "
            "gift cards, beauty (and apparel when slow)"
        ),
        "account_takeover": (
            f"a customer with >= {ATO_MIN_TENURE_DAYS} days tenure; their own card, one "
            f"payment (p={ATO_SINGLE_PAYMENT_P}) or 2-4 minutes apart, for dear electronics, "
            "apparel, footwear or gift cards, shipped to a new address. New-device "
            f"takeovers: the account was dormant for >= {ATO_DORMANT_DAYS} days, foreign IP "
            f"with p={ATO_FOREIGN_IP_P}, foreign shipping with p={ATO_FOREIGN_SHIP_P}, "
            "night-leaning hours (strongly so from abroad). Session hijacks "
            f"(p={ATO_SESSION_HIJACK_P}): any active account, the victim's own device, IP "
            "and shipping in the billing country, ordinary online hours"
        ),
        "resale": (
            "stolen cards of many customers buy resellable goods "
            f"({RESALE_DEPARTMENT_P}), 1-3 items per order; online ("
            f"{1 - RESALE_IN_STORE_SHARE:.0%} of rows): domestic IP, drop addresses live "
            f"~{RESALE_DROP_LIFETIME_DAYS} days with ~{RESALE_ORDERS_PER_DROP} orders each, "
            f"one-off reshipper addresses with p={RESALE_ONE_OFF_ADDRESS_P}; ring devices live "
            f"~{RESALE_DEVICE_LIFETIME_DAYS} days with ~{RESALE_ORDERS_PER_DEVICE} orders "
            f"each, a fresh device with p={RESALE_FRESH_DEVICE_P}; in store "
            f"({RESALE_IN_STORE_SHARE:.0%} of rows): cloned cards on sprees of 2-5 purchases "
            f"tens of minutes apart across the physical stores in opening hours "
            f"({RESALE_IN_STORE_DEPARTMENT_P})"
        ),
        "digital_goods": (
            "only after a FraudPatternChange: 50-250 USD gift cards from the victim's own "
            "card and existing device, domestic IP, no shipping address"
        ),
    }


RISK_STRUCTURE = (
    "amount: risk is high for very small amounts (card testing) and for very large ones "
    "(takeover, resale) and low for mid-size baskets; legitimate big-ticket purchases and "
    "small e-gift cards sit in both tails",
    "geography x device: a foreign IP is mostly travellers and expats on their own devices; "
    "with a first-time device it is mostly fraud",
    "time x channel: the night is risky online only; in-store night payments (hypermarkets) "
    "and night owls online are legitimate",
    "velocity x amount x channel: repeated use of a card within the hour is card testing "
    "when the amounts are tiny, a retry or a family order when they are ordinary, a cloned "
    "card's spree when it is in store for electronics or gift cards",
    "channel: device, geography and night signals only exist online; in-store fraud shows "
    "only in velocity, basket and amount",
    "shipping address x basket: many cards on one address is a resale drop when they buy "
    "electronics, a shared parcel locker otherwise",
)


def ground_truth(
    payments: pl.DataFrame,
    fraud_type: np.ndarray,
    variant: np.ndarray,
    labels: pl.DataFrame,
    noise: LabelNoise,
    rate: float,
    rate_range: tuple[float, float],
    change_day: int | None,
    start_date: date,
    info: dict[str, Any],
    legit_overlap: dict[str, Any],
) -> dict[str, Any]:
    n = len(fraud_type)
    per_type = {t: int((fraud_type == i).sum()) for i, t in enumerate(FRAUD_TYPES)}
    per_variant = {v: int((variant == i).sum()) for i, v in enumerate(VARIANTS)}
    labelled = labels["is_fraud"].to_numpy()
    quarter = (
        pl.DataFrame({"ts": payments["event_ts"], "type": fraud_type, "labelled": labelled})
        .with_columns(
            quarter=pl.format("{}-Q{}", pl.col("ts").dt.year(), pl.col("ts").dt.quarter())
        )
        .group_by("quarter")
        .agg(
            [
                pl.len().alias("transactions"),
                (pl.col("type") >= 0).mean().alias("fraud_rate"),
                pl.col("labelled").mean().alias("labelled_fraud_rate"),
            ]
            + [(pl.col("type") == i).mean().alias(t) for i, t in enumerate(FRAUD_TYPES)]
        )
        .sort("quarter")
    )
    ids = payments["transaction_id"]
    unreported_type = fraud_type[noise.unreported]
    n_fraud = sum(per_type.values())
    n_labelled = int(labelled.sum())
    return {
        "target_rate": rate,
        "rate_range": list(rate_range),
        "overall_rate": n_fraud / max(n, 1),
        "labelled_rate": n_labelled / max(n, 1),
        "transactions": n,
        "fraud_transactions": n_fraud,
        "labelled_fraud_transactions": n_labelled,
        "fraud_transactions_by_type": per_type,
        "fraud_transactions_by_variant": per_variant,
        # The truth per transaction: every fraudulent payment by variant (all others are
        # legitimate, whatever their label says).
        "fraud_transaction_ids_by_variant": {
            v: ids.filter(pl.Series(variant == i)).to_list() for i, v in enumerate(VARIANTS)
        },
        "rate_by_quarter": {
            row["quarter"]: {k: v for k, v in row.items() if k != "quarter"}
            for row in quarter.iter_rows(named=True)
        },
        "mix_share_start_end": {k: list(v) for k, v in MIX.items()},
        "patterns": _patterns(),
        "variants": list(VARIANTS),
        "parameters": {
            "card_testing_mode_p": CARD_TESTING_MODE_P,
            "card_testing_fast_amount_usd": list(CARD_TESTING_FAST_AMOUNT),
            "card_testing_slow_amount_usd": list(CARD_TESTING_SLOW_AMOUNT),
            "card_testing_fast_gap_seconds": CARD_TESTING_FAST_GAP_S,
            "card_testing_slow_gap_seconds": CARD_TESTING_SLOW_GAP_S,
            "card_testing_prepaid_p": CARD_TESTING_PREPAID_P,
            "card_testing_foreign_billing_p": CARD_TESTING_FOREIGN_BILLING_P,
            "card_testing_foreign_ip_p": CARD_TESTING_FOREIGN_IP_P,
            "card_testing_rotating_device_p": CARD_TESTING_ROTATING_DEVICE_P,
            "card_testing_cashout_p": CARD_TESTING_CASHOUT_P,
            "card_testing_cashout_amount_usd": list(CARD_TESTING_CASHOUT_AMOUNT),
            "card_testing_departments": CARD_TESTING_DEPARTMENTS,
            "ato_dormant_days": ATO_DORMANT_DAYS,
            "ato_min_tenure_days": ATO_MIN_TENURE_DAYS,
            "ato_session_hijack_p": ATO_SESSION_HIJACK_P,
            "ato_foreign_ip_p": ATO_FOREIGN_IP_P,
            "ato_foreign_ship_p": ATO_FOREIGN_SHIP_P,
            "ato_departments": ATO_DEPARTMENT_P,
            "ato_single_payment_p": ATO_SINGLE_PAYMENT_P,
            "ato_price_power": ATO_PRICE_POWER,
            "resale_departments": RESALE_DEPARTMENT_P,
            "resale_price_power": RESALE_PRICE_POWER,
            "resale_drop_lifetime_days": RESALE_DROP_LIFETIME_DAYS,
            "resale_orders_per_drop": RESALE_ORDERS_PER_DROP,
            "resale_device_lifetime_days": RESALE_DEVICE_LIFETIME_DAYS,
            "resale_orders_per_device": RESALE_ORDERS_PER_DEVICE,
            "resale_one_off_address_p": RESALE_ONE_OFF_ADDRESS_P,
            "resale_fresh_device_p": RESALE_FRESH_DEVICE_P,
            "resale_in_store_share": RESALE_IN_STORE_SHARE,
            "resale_in_store_departments": RESALE_IN_STORE_DEPARTMENT_P,
            "resale_in_store_gap_seconds": RESALE_IN_STORE_GAP_S,
            "resale_in_store_hours": [RESALE_IN_STORE_OPEN_HOUR, RESALE_IN_STORE_CLOSE_HOUR],
            **info,
        },
        "risk_structure": list(RISK_STRUCTURE),
        "legit_overlap": legit_overlap,
        "label_noise": {
            "note": (
                "fraud_labels.is_fraud differs from the truth on exactly these payments: "
                "unreported frauds are labelled legitimate (dispute_window_closed), friendly "
                "fraud is a legitimate payment labelled fraud (chargeback)"
            ),
            "unreported_p_by_type": UNREPORTED_P,
            "unreported_by_type": {
                t: int((unreported_type == i).sum()) for i, t in enumerate(FRAUD_TYPES)
            },
            "unreported_share_of_frauds": len(noise.unreported) / max(n_fraud, 1),
            "unreported_transaction_ids": {
                t: ids.gather(noise.unreported[unreported_type == i]).to_list()
                for i, t in enumerate(FRAUD_TYPES)
            },
            "friendly_fraud_p": FRIENDLY_FRAUD_P,
            "friendly_fraud_weighting": (
                "legitimate online payments only; probability proportional to sqrt(amount), "
                f"x{FRIENDLY_FRAUD_GIFT_CARD_FACTOR} for gift cards, mean {FRIENDLY_FRAUD_P}"
            ),
            "friendly_fraud_reported_type": FRIENDLY_FRAUD_REPORTED_TYPE,
            "friendly_fraud": len(noise.friendly),
            "friendly_share_of_labelled_frauds": len(noise.friendly) / max(n_labelled, 1),
            "friendly_fraud_transaction_ids": ids.gather(noise.friendly).to_list(),
        },
        "pattern_change_date": (
            None if change_day is None else (start_date + timedelta(days=change_day)).isoformat()
        ),
        "label_delay": {
            "chargeback_days_lognormal": CHARGEBACK_DELAY,
            "investigation_days_lognormal": INVESTIGATION_DELAY,
            "friendly_chargeback_days_lognormal": FRIENDLY_CHARGEBACK_DELAY,
            "investigation_share_by_type": INVESTIGATION_P,
            "legitimate_days": DISPUTE_WINDOW_DAYS,
            "note": "label_available_at = event_ts + delay; labels after the window are emitted",
        },
    }
