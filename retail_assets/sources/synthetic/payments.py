"""Card payments: customers' wallets, legitimate baskets, and the payments feed itself.

Legitimate behaviour is generated here; fraud patterns are added by ``fraud`` into the same
column arrays, then ``payments_frame`` sorts everything by time and assigns ids. Card, device
and address ids are opaque tokens, so nothing about an id tells fraud from legitimate use.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import PAYMENTS
from retail_assets.sources.synthetic.calendar import TradingCalendar
from retail_assets.sources.synthetic.catalog import Catalog
from retail_assets.sources.synthetic.config import substream
from retail_assets.sources.synthetic.customers import COUNTRIES, SEGMENTS, TIER_TASTE, Customers
from retail_assets.sources.synthetic.pricing import PricePlan
from retail_assets.sources.synthetic.sampling import (
    US_PER_DAY,
    GroupSampler,
    RowSampler,
    day_weights,
    exposure,
    sample_days,
    sample_seconds,
)
from retail_assets.sources.synthetic.stores import FORMATS, Stores
from retail_assets.sources.synthetic.taxonomy import CATEGORY_NAMES, DEPARTMENT_NAMES

GIFT_CARDS = "Gift Cards"  # sold at the till and online, but not a catalog SKU
PAYMENT_DEPARTMENTS = (*DEPARTMENT_NAMES, GIFT_CARDS)
METHODS = ("credit", "debit", "prepaid")
CHANNELS = ("online", "in_store")
# Countries seen in payments: our customers' countries first, then others fraud comes from.
FOREIGN = ("GB", "DE", "FR", "BR", "NG", "IN", "ID", "PH", "RO", "RU", "UA", "VN", "CN")
PAYMENT_COUNTRIES = (*COUNTRIES, *FOREIGN)
STORE_COUNTRY = "US"
CURRENCY = "USD"

METHOD_SHARE = {  # credit, debit, prepaid by segment
    "value": (0.40, 0.50, 0.10),
    "mainstream": (0.57, 0.40, 0.03),
    "premium": (0.79, 0.20, 0.01),
}
EXTRA_ITEMS_MEAN = {  # Poisson mean of items beyond the first, by segment and channel
    "in_store": {"value": 1.8, "mainstream": 1.6, "premium": 1.3},
    "online": {"value": 1.0, "mainstream": 0.9, "premium": 0.8},
}
PRIMARY_CARD_P = 0.7
PRIMARY_DEVICE_P = 0.65
LEGIT_NEW_DEVICE_P = 0.025  # a new phone or laptop: legitimate, and looks like takeover
LEGIT_FOREIGN_IP_P = 0.015  # travel or VPN
LEGIT_GIFT_SHIP_P = 0.05  # shipped to someone else's (domestic) address
LEGIT_SHIP_ABROAD_P = 0.01
HOME_STORE_P = 0.85
GIFT_CARD_P = {"online": 0.025, "in_store": 0.015}
GIFT_CARD_SEASON_BOOST = 3.0  # November 15 - December 24
GIFT_CARD_DENOMINATIONS = (25.0, 50.0, 100.0, 150.0, 200.0)
EGIFT_P = 0.6  # online gift cards delivered by email have no shipping address
SAME_CATEGORY_P = 0.6  # an extra basket item comes from the first item's category
TERMINALS = {"hypermarket": 16, "supermarket": 8, "express": 3}


TOKEN_DIGITS = 15


def tokens(values: np.ndarray, salt: int) -> np.ndarray:
    """Opaque 48-bit numbers for ids; a bijection of ``values``, so tokens never collide.

    Multiplying by an odd constant is invertible modulo a power of two, so the order of the
    underlying indices (legitimate cards first, fraud cards last) does not show in the tokens.
    """
    mask = np.uint64((1 << 48) - 1)
    mixed = (values.astype(np.uint64) + np.uint64(salt)) * np.uint64(0x9E3779B97F4A7C15)
    return mixed & mask


def _token(prefix: str, column: str) -> pl.Expr:
    return pl.concat_str(pl.lit(prefix), pl.col(column).cast(pl.String).str.zfill(TOKEN_DIGITS))


@dataclass
class Wallet:
    """Cards, devices and addresses; new ones (fraud, new phones) are appended as they appear."""

    card_owner: np.ndarray
    card_method: np.ndarray
    card_start: np.ndarray  # first card of each customer (cards are contiguous per customer)
    card_count: np.ndarray
    device_start: np.ndarray
    device_count: np.ndarray
    address_start: np.ndarray
    address_count: np.ndarray
    n_devices: int
    n_addresses: int
    extra_card_method: list[np.ndarray] = field(default_factory=list)

    @property
    def n_cards(self) -> int:
        return len(self.card_method) + sum(len(m) for m in self.extra_card_method)

    def new_cards(self, methods: np.ndarray) -> np.ndarray:
        first = self.n_cards
        self.extra_card_method.append(methods)
        return np.arange(first, first + len(methods))

    def new_devices(self, n: int) -> np.ndarray:
        self.n_devices += n
        return np.arange(self.n_devices - n, self.n_devices)

    def new_addresses(self, n: int) -> np.ndarray:
        self.n_addresses += n
        return np.arange(self.n_addresses - n, self.n_addresses)

    def all_card_methods(self) -> np.ndarray:
        return np.concatenate([self.card_method, *self.extra_card_method])

    def pick_card(self, rng: np.random.Generator, customer: np.ndarray) -> np.ndarray:
        extra = (rng.random(len(customer)) * self.card_count[customer]).astype(np.int64)
        use_primary = rng.random(len(customer)) < PRIMARY_CARD_P
        return self.card_start[customer] + np.where(use_primary, 0, extra)

    def pick_device(self, rng: np.random.Generator, customer: np.ndarray) -> np.ndarray:
        extra = (rng.random(len(customer)) * self.device_count[customer]).astype(np.int64)
        use_primary = rng.random(len(customer)) < PRIMARY_DEVICE_P
        return self.device_start[customer] + np.where(use_primary, 0, extra)


def build_wallet(seed: int, customers: Customers) -> Wallet:
    rng = substream(seed, "payments", "wallet")
    n = customers.n
    card_count = 1 + rng.binomial(2, 0.3, n)
    card_start = np.concatenate([[0], np.cumsum(card_count)[:-1]])
    card_owner = np.repeat(np.arange(n), card_count)
    shares = np.array([METHOD_SHARE[s] for s in SEGMENTS])[customers.segment[card_owner]]
    card_method = (rng.random(len(card_owner))[:, None] > np.cumsum(shares, axis=1)).sum(axis=1)
    device_count = 1 + rng.binomial(2, 0.4, n)
    address_count = 1 + (rng.random(n) < 0.1)
    return Wallet(
        card_owner=card_owner,
        card_method=np.minimum(card_method, len(METHODS) - 1),
        card_start=card_start,
        card_count=card_count,
        device_start=np.concatenate([[0], np.cumsum(device_count)[:-1]]),
        device_count=device_count,
        address_start=np.concatenate([[0], np.cumsum(address_count)[:-1]]),
        address_count=address_count,
        n_devices=int(device_count.sum()),
        n_addresses=int(address_count.sum()),
    )


@dataclass
class Txns:
    """Column arrays of transactions (legitimate and fraud) before ids are assigned."""

    customer: np.ndarray
    card: np.ndarray
    device: np.ndarray  # device index, or -1 for an in-store terminal
    terminal: np.ndarray  # terminal number at the store, -1 online
    channel: np.ndarray  # index into CHANNELS
    store: np.ndarray  # store index, -1 online
    amount: np.ndarray
    n_items: np.ndarray
    top_dept: np.ndarray  # index into PAYMENT_DEPARTMENTS
    billing: np.ndarray  # index into PAYMENT_COUNTRIES
    shipping: np.ndarray
    ip: np.ndarray
    address: np.ndarray  # address index, -1 for none
    ts: np.ndarray  # microseconds since the epoch
    fraud_type: np.ndarray  # index into fraud.FRAUD_TYPES, -1 for legitimate

    def __len__(self) -> int:
        return len(self.ts)

    @staticmethod
    def concat(parts: list[Txns]) -> Txns:
        return Txns(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Txns)}
        )


def basket_amounts(
    rng: np.random.Generator,
    plan: PricePlan,
    catalog: Catalog,
    sampler: GroupSampler,
    first_group: np.ndarray,
    next_group: np.ndarray,
    n_items: np.ndarray,
    day: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Price baskets from the shelf prices of the day.

    ``first_group``/``next_group`` give the sampler group of the first and of further items
    per item row. Returns (amount, n_items actually found, top department) per basket.
    """
    n = len(n_items)
    basket = np.repeat(np.arange(n), n_items)
    first = np.r_[True, basket[1:] != basket[:-1]] if len(basket) else np.zeros(0, dtype=bool)
    group = np.where(first, first_group[basket], next_group)
    sku = sampler.sample(rng, group, day[basket])
    found = sku >= 0
    qty = 1 + (rng.random(len(basket)) < 0.1)
    price = np.where(found, plan.unit_price[day[basket], np.maximum(sku, 0)] * qty, 0.0)
    amount = np.bincount(basket, weights=price, minlength=n)
    items = np.bincount(basket, weights=found * qty, minlength=n).astype(np.int64)
    dept_spend = np.zeros((n, len(DEPARTMENT_NAMES)))
    np.add.at(dept_spend, (basket[found], catalog.dept[sku[found]]), price[found])
    return amount, items, dept_spend.argmax(axis=1)


def legit_payments(
    seed: int,
    cal: TradingCalendar,
    catalog: Catalog,
    stores: Stores,
    customers: Customers,
    plan: PricePlan,
    wallet: Wallet,
    facts: dict[str, Any],
    n_legit: int,
) -> Txns:
    rng = substream(seed, "payments", "legit")
    traffic = {name: day_weights(cal, name) for name in CHANNELS}
    signup = np.maximum(customers.signup, 0)
    share = customers.online_share
    weight = customers.activity * (
        share * exposure(traffic["online"], signup)
        + (1 - share) * exposure(traffic["in_store"], signup)
    )
    customer = rng.choice(customers.n, size=n_legit, p=weight / weight.sum())
    online = rng.random(n_legit) < share[customer]
    day = np.empty(n_legit, dtype=np.int64)
    seconds = np.empty(n_legit, dtype=np.int64)
    for is_online, name in ((True, "online"), (False, "in_store")):
        rows = np.flatnonzero(online == is_online)
        day[rows] = sample_days(rng, traffic[name], signup[customer[rows]])
        seconds[rows] = sample_seconds(rng, len(rows), name)
    ts = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + seconds

    segment = customers.segment[customer]
    extra_mean = np.where(
        online,
        np.array([EXTRA_ITEMS_MEAN["online"][s] for s in SEGMENTS])[segment],
        np.array([EXTRA_ITEMS_MEAN["in_store"][s] for s in SEGMENTS])[segment],
    )
    n_items = 1 + rng.poisson(extra_mean)
    taste = RowSampler(customers.cat_taste)
    first_cat = taste.sample(rng, customer)
    basket_of_item = np.repeat(customer, n_items)
    next_cat = np.where(
        rng.random(len(basket_of_item)) < SAME_CATEGORY_P,
        np.repeat(first_cat, n_items),
        taste.sample(rng, basket_of_item),
    )
    # Each segment leans to its own brand tiers, so premium baskets cost more per item.
    amount = np.zeros(n_legit)
    items = np.zeros(n_legit, dtype=np.int64)
    top_dept = np.zeros(n_legit, dtype=np.int64)
    item_segment = np.repeat(segment, n_items)
    for s, name in enumerate(SEGMENTS):
        weight = catalog.popularity * np.array(TIER_TASTE[name])[catalog.tier]
        sampler = GroupSampler(catalog, catalog.cat, weight, len(CATEGORY_NAMES))
        rows = np.flatnonzero(segment == s)
        amount[rows], items[rows], top_dept[rows] = basket_amounts(
            rng,
            plan,
            catalog,
            sampler,
            first_cat[rows],
            next_cat[item_segment == s],
            n_items[rows],
            day[rows],
        )

    # Gift-card purchases replace the basket; they peak before Christmas.
    doy_season = np.isin(cal.doy, np.arange(319, 359))[day]
    p_gift = np.where(online, GIFT_CARD_P["online"], GIFT_CARD_P["in_store"]) * np.where(
        doy_season, GIFT_CARD_SEASON_BOOST, 1.0
    )
    gift = (rng.random(n_legit) < p_gift) | (items == 0)
    n_cards = 1 + (rng.random(n_legit) < 0.2)
    denominations = np.array(GIFT_CARD_DENOMINATIONS)
    gift_amount = denominations[rng.integers(len(denominations), size=n_legit)] * n_cards
    amount = np.where(gift, gift_amount, amount)
    items = np.where(gift, n_cards, items)
    top_dept = np.where(gift, PAYMENT_DEPARTMENTS.index(GIFT_CARDS), top_dept)

    shipping_cfg = facts["shipping"]
    needs_fee = online & ~gift & (amount < shipping_cfg["free_shipping_threshold_usd"])
    amount = np.round(amount + needs_fee * shipping_cfg["standard_fee_usd"], 2)

    # Where the card is used: online from one of the customer's devices (occasionally a new
    # one), in store at the home store (or another physical store) on one of its terminals.
    physical = stores.physical
    home_physical = np.isin(customers.home_store[customer], physical)
    store = np.where(
        home_physical & (rng.random(n_legit) < HOME_STORE_P),
        customers.home_store[customer],
        rng.choice(physical, size=n_legit),
    )
    store = np.where(online, -1, store)
    terminal_count = np.array([TERMINALS.get(FORMATS[f], 1) for f in stores.format])[
        np.maximum(store, 0)
    ]
    terminal = np.where(online, -1, (rng.random(n_legit) * terminal_count).astype(np.int64))
    device = wallet.pick_device(rng, customer)
    new_device = online & (rng.random(n_legit) < LEGIT_NEW_DEVICE_P)
    device[new_device] = wallet.new_devices(int(new_device.sum()))
    device = np.where(online, device, -1)

    billing = customers.country[customer]
    foreign = rng.integers(len(COUNTRIES), len(PAYMENT_COUNTRIES), n_legit)
    ip = np.where(online & (rng.random(n_legit) < LEGIT_FOREIGN_IP_P), foreign, billing)
    ip = np.where(online, ip, PAYMENT_COUNTRIES.index(STORE_COUNTRY))
    abroad = online & (rng.random(n_legit) < LEGIT_SHIP_ABROAD_P)
    shipping = np.where(
        abroad, rng.integers(len(COUNTRIES), len(PAYMENT_COUNTRIES), n_legit), billing
    )
    own_address = wallet.address_start[customer] + (
        rng.random(n_legit) * wallet.address_count[customer]
    ).astype(np.int64)
    gift_ship = online & (rng.random(n_legit) < LEGIT_GIFT_SHIP_P)
    address = np.where(online, own_address, -1)
    address[gift_ship] = wallet.new_addresses(int(gift_ship.sum()))
    egift = online & gift & (rng.random(n_legit) < EGIFT_P)
    address = np.where(egift, -1, address)

    return Txns(
        customer=customer,
        card=wallet.pick_card(rng, customer),
        device=device,
        terminal=terminal,
        channel=np.where(online, 0, 1),
        store=store,
        amount=amount,
        n_items=items,
        top_dept=top_dept,
        billing=billing,
        shipping=shipping,
        ip=ip,
        address=address,
        ts=ts,
        fraud_type=np.full(n_legit, -1),
    )


def unique_card_times(card: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """Nudge timestamps by microseconds so that (card, timestamp) is unique."""
    order = np.lexsort((ts, card))
    ts_sorted = ts[order].copy()
    card_sorted = card[order]
    for _ in range(100):
        clash = (
            np.flatnonzero(
                (card_sorted[1:] == card_sorted[:-1]) & (ts_sorted[1:] <= ts_sorted[:-1])
            )
            + 1
        )
        if len(clash) == 0:
            break
        ts_sorted[clash] = ts_sorted[clash - 1] + 1
    out = np.empty_like(ts)
    out[order] = ts_sorted
    return out


def _codes(column: str, labels: tuple[str, ...] | list[str]) -> pl.Expr:
    return pl.col(column).replace_strict(
        dict(enumerate(labels)), default=None, return_dtype=pl.String
    )


def payments_frame(
    seed: int, txns: Txns, wallet: Wallet, customers: Customers, stores: Stores
) -> tuple[pl.DataFrame, np.ndarray]:
    """The payments feed, in time order, and the fraud type per row (-1 legitimate)."""
    ts = unique_card_times(txns.card, txns.ts)
    order = np.lexsort((txns.card, ts))
    t = Txns(**{f.name: getattr(txns, f.name)[order] for f in fields(Txns)})
    ts = ts[order]
    n = len(t)
    salt = int(substream(seed, "payments", "tokens").integers(1, 2**31))
    frame = pl.DataFrame(
        {
            "transaction_id": pl.int_range(1, n + 1, eager=True),
            "event_ts": ts,
            "customer_id": pl.Series(customers.customer_ids).gather(t.customer),
            "card_token": tokens(t.card, salt),
            "device_i": t.device,
            "device_token": tokens(np.maximum(t.device, 0), salt + 1),
            "terminal": t.terminal + 1,
            "channel": t.channel,
            "store_id": t.store,
            "amount": np.round(t.amount, 2),
            "n_items": t.n_items,
            "top_department": t.top_dept,
            "payment_method": wallet.all_card_methods()[t.card],
            "billing_country": t.billing,
            "shipping_country": t.shipping,
            "ip_country": t.ip,
            "address_i": t.address,
            "address_token": tokens(np.maximum(t.address, 0), salt + 2),
        }
    )
    frame = frame.with_columns(
        transaction_id=pl.format("T{}", pl.col("transaction_id").cast(pl.String).str.zfill(10)),
        event_ts=pl.col("event_ts").cast(pl.Datetime("us")),
        card_id=_token("tok_", "card_token"),
        channel=_codes("channel", CHANNELS),
        store_id=_codes("store_id", stores.store_ids),
        currency=pl.lit(CURRENCY),
        top_department=_codes("top_department", PAYMENT_DEPARTMENTS),
        payment_method=_codes("payment_method", METHODS),
        billing_country=_codes("billing_country", PAYMENT_COUNTRIES),
        shipping_country=_codes("shipping_country", PAYMENT_COUNTRIES),
        ip_country=_codes("ip_country", PAYMENT_COUNTRIES),
        shipping_address_id=pl.when(pl.col("address_i") >= 0).then(
            _token("addr_", "address_token")
        ),
    ).with_columns(
        device_id=pl.when(pl.col("device_i") >= 0)
        .then(_token("dev_", "device_token"))
        .otherwise(
            pl.concat_str(
                "store_id", pl.lit("-POS"), pl.col("terminal").cast(pl.String).str.zfill(2)
            )
        ),
    )
    return PAYMENTS.conform(frame), t.fraud_type
