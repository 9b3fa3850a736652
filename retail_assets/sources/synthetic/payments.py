"""Card payments: customers' wallets, legitimate baskets, and the payments feed itself.

Legitimate behaviour is generated here; fraud patterns are added by ``fraud`` into the same
column arrays, then ``payments_frame`` sorts everything by time and assigns ids. Card, device
and address ids are opaque tokens, so nothing about an id tells fraud from legitimate use.

Legitimate customers do many of the things fraud detectors look for, at realistic rates, so
no single signal separates fraud (every rate is in the ground truth, ``legit_overlap``):

- travellers and expats pay online from abroad on their usual devices; anyone occasionally
  does (a holiday, a VPN); some gifts ship to family abroad;
- phones and laptops get replaced (a new device that then stays), one-off devices appear;
- some customers ship to shared parcel lockers or office mailrooms, where many cards meet;
- big-ticket electronics and appliances are bought legitimately, more by premium shoppers;
- a declined payment is retried within minutes (sometimes with another card), and family
  members order on a shared card from their own devices soon after one another;
- night owls shop online at night, and hypermarkets take payments around the clock;
- small e-gift cards, click-and-collect orders (no shipping fee, no address) and split-tender
  remainders (a gift card pays most of the basket, the card the last few dollars) are common.
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
    US_PER_SECOND,
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
HOME_STORE_P = 0.85
GIFT_CARD_P = {"online": 0.025, "in_store": 0.015}
GIFT_CARD_SEASON_BOOST = 3.0  # November 15 - December 24
GIFT_CARD_DENOMINATIONS = (5.0, 10.0, 15.0, 20.0, 25.0, 50.0, 100.0, 150.0, 200.0)
EGIFT_P = 0.6  # online gift cards delivered by email have no shipping address
SAME_CATEGORY_P = 0.6  # an extra basket item comes from the first item's category

# Legitimate behaviour that one fraud signal or another also fires on.
DEVICE_UPGRADE_P = 0.45  # customers who replace their main phone or laptop in the window
LEGIT_NEW_DEVICE_P = 0.02  # a work laptop, a friend's phone, a fresh browser: seen once
ABROAD_NEW_DEVICE_P = 0.03  # paying from abroad: a hotel computer, a phone bought on the trip
TRAVELLER_SHARE = 0.08  # customers who travel a lot or live abroad part of the year
TRAVELLER_FOREIGN_IP_P = 0.35  # their online payments from their second country
LEGIT_FOREIGN_IP_P = 0.012  # anyone else: a holiday, a VPN
LEGIT_GIFT_SHIP_P = 0.05  # shipped to someone else's (domestic) address
LEGIT_SHIP_ABROAD_P = 0.01  # a gift to family abroad
TRAVELLER_SHIP_ABROAD_FACTOR = 4.0
# Where travellers go (and where family abroad lives); a customer's own country is skipped.
TRAVEL_WEIGHTS = {
    "US": 3.0,
    "CA": 3.0,
    "MX": 3.0,
    "GB": 2.0,
    "DE": 1.5,
    "FR": 1.5,
    "BR": 0.6,
    "NG": 0.3,
    "IN": 1.0,
    "ID": 0.3,
    "PH": 0.6,
    "RO": 0.3,
    "RU": 0.2,
    "UA": 0.3,
    "VN": 0.4,
    "CN": 0.8,
}
LOCKER_USER_SHARE = 0.12  # customers who use a shared parcel locker or office mailroom
LOCKER_USE_P = 0.5  # share of their deliveries that go there
CUSTOMERS_PER_LOCKER = 1500  # a busy locker or mailroom serves hundreds of customers
SPLIT_TENDER_P = 0.025  # a gift card pays most of the basket, the card the rest
CLICK_AND_COLLECT_P = 0.08  # online orders picked up in store: no address, no shipping fee
BIG_TICKET_P = {"value": 0.006, "mainstream": 0.012, "premium": 0.025}  # a TV, a laptop
BIG_TICKET_DEPARTMENTS = {"Electronics": 0.75, "Home & Kitchen": 0.25}
NIGHT_OWL_SHARE = 0.1  # shift workers and insomniacs: their online payments lean to the night
NIGHT_STORE_P = 0.03  # hypermarkets are open around the clock
RETRY_P = {"online": 0.03, "in_store": 0.006}  # a declined attempt, then the retry
RETRY_DELAY_S = {"min": 3.0, "mean_extra": 40.0}
RETRY_OTHER_CARD_P = 0.3  # the retry uses another of the customer's cards
HOUSEHOLD_ORDER_P = 0.015  # a family member orders on the same card soon after
HOUSEHOLD_DELAY_MIN = {"min": 5.0, "mean_extra": 35.0}
HOUSEHOLD_NEW_DEVICE_P = 0.25
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
    upgrade_day: np.ndarray  # day the main device was replaced (n_days: never)
    upgrade_device: np.ndarray  # the replacement, which is the main device from then on
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

    def pick_device(
        self, rng: np.random.Generator, customer: np.ndarray, day: np.ndarray
    ) -> np.ndarray:
        """One of the customer's devices on ``day``: mostly the main one (the replacement
        after an upgrade), otherwise any of the original ones (an old tablet, a laptop)."""
        extra = (rng.random(len(customer)) * self.device_count[customer]).astype(np.int64)
        use_primary = rng.random(len(customer)) < PRIMARY_DEVICE_P
        upgraded = day >= self.upgrade_day[customer]
        primary = np.where(upgraded, self.upgrade_device[customer], self.device_start[customer])
        return np.where(use_primary, primary, self.device_start[customer] + extra)


def build_wallet(seed: int, customers: Customers, n_days: int) -> Wallet:
    rng = substream(seed, "payments", "wallet")
    n = customers.n
    card_count = 1 + rng.binomial(2, 0.3, n)
    card_start = np.concatenate([[0], np.cumsum(card_count)[:-1]])
    card_owner = np.repeat(np.arange(n), card_count)
    shares = np.array([METHOD_SHARE[s] for s in SEGMENTS])[customers.segment[card_owner]]
    card_method = (rng.random(len(card_owner))[:, None] > np.cumsum(shares, axis=1)).sum(axis=1)
    device_count = 1 + rng.binomial(2, 0.4, n)
    address_count = 1 + (rng.random(n) < 0.1)
    # Phone and laptop upgrades: from a day in the customer's time with us, a new main device.
    upgrades = substream(seed, "payments", "device_upgrades")
    upgraded = upgrades.random(n) < DEVICE_UPGRADE_P
    first_day = np.clip(customers.signup, 0, n_days - 1)
    upgrade_day = np.where(upgraded, upgrades.integers(first_day, n_days), n_days)
    n_devices = int(device_count.sum())
    upgrade_device = np.full(n, -1, dtype=np.int64)
    upgrade_device[upgraded] = n_devices + np.arange(int(upgraded.sum()))
    return Wallet(
        card_owner=card_owner,
        card_method=np.minimum(card_method, len(METHODS) - 1),
        card_start=card_start,
        card_count=card_count,
        device_start=np.concatenate([[0], np.cumsum(device_count)[:-1]]),
        device_count=device_count,
        address_start=np.concatenate([[0], np.cumsum(address_count)[:-1]]),
        address_count=address_count,
        upgrade_day=upgrade_day.astype(np.int64),
        upgrade_device=upgrade_device,
        n_devices=n_devices + int(upgraded.sum()),
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
    variant: np.ndarray  # index into fraud.VARIANTS (how the fraud was done), -1 for legitimate

    def __len__(self) -> int:
        return len(self.ts)

    @staticmethod
    def concat(parts: list[Txns]) -> Txns:
        return Txns(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Txns)}
        )

    def take(self, rows: np.ndarray) -> Txns:
        return Txns(**{f.name: getattr(self, f.name)[rows] for f in fields(Txns)})


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


def dear_baskets(
    rng: np.random.Generator,
    catalog: Catalog,
    plan: PricePlan,
    dept: np.ndarray,
    n_items: np.ndarray,
    day: np.ndarray,
    price_power: float = 1.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baskets of a department's dearer items (a TV, a laptop; what fraudsters resell), drawn
    with weight list_price ** price_power; a department index of GIFT_CARDS buys 100-500 USD
    gift cards instead."""
    gift = dept == PAYMENT_DEPARTMENTS.index(GIFT_CARDS)
    weight = catalog.popularity * catalog.list_price**price_power
    sampler = GroupSampler(catalog, catalog.dept, weight, len(DEPARTMENT_NAMES))
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


@dataclass(frozen=True)
class Habits:
    """Per-customer habits that overlap fraud signals (drawn once, fixed for the window)."""

    traveller: np.ndarray  # travels a lot or lives abroad part of the year
    second_country: np.ndarray  # where they travel to / family abroad (PAYMENT_COUNTRIES index)
    night_owl: np.ndarray
    locker: np.ndarray  # shared delivery address they use, -1 for none
    n_lockers: int


def build_habits(seed: int, customers: Customers, wallet: Wallet) -> Habits:
    rng = substream(seed, "payments", "habits")
    n = customers.n
    weights = np.array([TRAVEL_WEIGHTS[c] for c in PAYMENT_COUNTRIES])
    second = rng.choice(len(PAYMENT_COUNTRIES), size=n, p=weights / weights.sum())
    # Never the customer's own country: US customers go to Canada instead, others to the US.
    own = second == customers.country
    second = np.where(
        own, np.where(customers.country == 0, PAYMENT_COUNTRIES.index("CA"), 0), second
    )
    n_lockers = max(2, -(-n // CUSTOMERS_PER_LOCKER))
    lockers = wallet.new_addresses(n_lockers)
    uses_locker = rng.random(n) < LOCKER_USER_SHARE
    return Habits(
        traveller=rng.random(n) < TRAVELLER_SHARE,
        second_country=second,
        night_owl=rng.random(n) < NIGHT_OWL_SHARE,
        locker=np.where(uses_locker, lockers[rng.integers(n_lockers, size=n)], -1),
        n_lockers=n_lockers,
    )


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
) -> tuple[Txns, dict[str, Any]]:
    """``n_legit`` legitimate payments, and counts of the fraud-like behaviour among them."""
    rng = substream(seed, "payments", "legit")
    habits = build_habits(seed, customers, wallet)
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
    owl = online & habits.night_owl[customer]
    seconds[owl] = sample_seconds(rng, int(owl.sum()), "night_owl")

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

    # Big-ticket purchases (a TV, a laptop, an appliance) replace a few baskets.
    big = rng.random(n_legit) < np.array([BIG_TICKET_P[s] for s in SEGMENTS])[segment]
    big_rows = np.flatnonzero(big)
    big_dept = rng.choice(
        [PAYMENT_DEPARTMENTS.index(d) for d in BIG_TICKET_DEPARTMENTS],
        size=len(big_rows),
        p=list(BIG_TICKET_DEPARTMENTS.values()),
    )
    amount[big_rows], items[big_rows], top_dept[big_rows] = dear_baskets(
        rng,
        catalog,
        plan,
        big_dept,
        1 + (rng.random(len(big_rows)) < 0.25),
        day[big_rows],
    )

    # Gift-card purchases replace the basket; they peak before Christmas.
    doy_season = np.isin(cal.doy, np.arange(319, 359))[day]
    p_gift = np.where(online, GIFT_CARD_P["online"], GIFT_CARD_P["in_store"]) * np.where(
        doy_season, GIFT_CARD_SEASON_BOOST, 1.0
    )
    gift = (rng.random(n_legit) < p_gift) | (items == 0)
    big &= ~gift
    n_cards = 1 + (rng.random(n_legit) < 0.2)
    denominations = np.array(GIFT_CARD_DENOMINATIONS)
    gift_amount = denominations[rng.integers(len(denominations), size=n_legit)] * n_cards
    amount = np.where(gift, gift_amount, amount)
    items = np.where(gift, n_cards, items)
    top_dept = np.where(gift, PAYMENT_DEPARTMENTS.index(GIFT_CARDS), top_dept)

    # Click and collect (customers with a store nearby) pays no shipping and has no address.
    physical = stores.physical
    home_physical = np.isin(customers.home_store[customer], physical)
    collect = online & ~gift & home_physical & (rng.random(n_legit) < CLICK_AND_COLLECT_P)
    shipping_cfg = facts["shipping"]
    needs_fee = online & ~gift & ~collect & (amount < shipping_cfg["free_shipping_threshold_usd"])
    amount = np.round(amount + needs_fee * shipping_cfg["standard_fee_usd"], 2)

    # Split tender: a gift card balance covers most of a basket and the card pays the small
    # rest, so tiny card amounts are not only card testing.
    denominations_below = np.searchsorted(denominations, amount, side="left")
    split = ~gift & (denominations_below > 0) & (rng.random(n_legit) < SPLIT_TENDER_P)
    largest = rng.random(n_legit) < 0.6
    balance_index = np.where(
        largest,
        denominations_below - 1,
        (rng.random(n_legit) * denominations_below).astype(np.int64),
    )
    remainder = amount - denominations[np.maximum(balance_index, 0)]
    split &= remainder >= 0.01
    amount = np.where(split, np.round(remainder, 2), amount)

    # Where the card is used: online from one of the customer's devices (occasionally a new
    # one), in store at the home store (or another physical store) on one of its terminals.
    store = np.where(
        home_physical & (rng.random(n_legit) < HOME_STORE_P),
        customers.home_store[customer],
        rng.choice(physical, size=n_legit),
    )
    store = np.where(online, -1, store)
    store_format = np.asarray(stores.format)[np.maximum(store, 0)]
    terminal_count = np.array([TERMINALS.get(FORMATS[f], 1) for f in stores.format])[
        np.maximum(store, 0)
    ]
    terminal = np.where(online, -1, (rng.random(n_legit) * terminal_count).astype(np.int64))
    # Hypermarkets are open around the clock: a few of their payments come at night.
    night_store = (
        ~online
        & (store_format == FORMATS.index("hypermarket"))
        & (rng.random(n_legit) < NIGHT_STORE_P)
    )
    seconds[night_store] = sample_seconds(rng, int(night_store.sum()), "night_store")
    ts = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + seconds

    # Geography: travellers pay from their second country on their own devices; anyone may
    # be abroad or behind a VPN now and then; gifts go to family abroad.
    billing = customers.country[customer]
    traveller = habits.traveller[customer]
    second = habits.second_country[customer]
    away = online & (
        rng.random(n_legit) < np.where(traveller, TRAVELLER_FOREIGN_IP_P, LEGIT_FOREIGN_IP_P)
    )
    foreign = rng.integers(len(COUNTRIES), len(PAYMENT_COUNTRIES), n_legit)
    ip = np.where(away, np.where(traveller, second, foreign), billing)
    ip = np.where(online, ip, PAYMENT_COUNTRIES.index(STORE_COUNTRY))
    # Devices: mostly the customer's own; a one-off device now and then, more often abroad
    # (a hotel computer, a phone bought on the trip).
    device = wallet.pick_device(rng, customer, day)
    p_new_device = np.where(away, ABROAD_NEW_DEVICE_P, LEGIT_NEW_DEVICE_P)
    new_device = online & (rng.random(n_legit) < p_new_device)
    device[new_device] = wallet.new_devices(int(new_device.sum()))
    device = np.where(online, device, -1)
    egift = online & gift & (rng.random(n_legit) < EGIFT_P)
    no_address = egift | collect
    p_abroad = LEGIT_SHIP_ABROAD_P * np.where(traveller, TRAVELLER_SHIP_ABROAD_FACTOR, 1.0)
    abroad = online & ~no_address & (rng.random(n_legit) < p_abroad)
    shipping = np.where(abroad, second, billing)
    own_address = wallet.address_start[customer] + (
        rng.random(n_legit) * wallet.address_count[customer]
    ).astype(np.int64)
    gift_ship = online & ~no_address & ~abroad & (rng.random(n_legit) < LEGIT_GIFT_SHIP_P)
    locker = habits.locker[customer]
    to_locker = (
        online
        & ~no_address
        & ~abroad
        & ~gift_ship
        & (locker >= 0)
        & (rng.random(n_legit) < LOCKER_USE_P)
    )
    address = np.where(online, np.where(to_locker, locker, own_address), -1)
    elsewhere = gift_ship | abroad
    address[elsewhere] = wallet.new_addresses(int(elsewhere.sum()))
    address = np.where(no_address, -1, address)

    txns = Txns(
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
        variant=np.full(n_legit, -1),
    )
    bursts = _legit_bursts(
        substream(seed, "payments", "bursts"), txns, day, wallet, _window_end_us(cal)
    )
    hour = (txns.ts % US_PER_DAY) // (3600 * US_PER_SECOND)
    night = (hour < 6) | (hour >= 23)
    info = {
        "customers": {
            "travellers": int(habits.traveller.sum()),
            "night_owls": int(habits.night_owl.sum()),
            "locker_users": int((habits.locker >= 0).sum()),
            "device_upgrades": int((wallet.upgrade_device >= 0).sum()),
        },
        "shared_lockers": habits.n_lockers,
        "payments": {
            "online": int(online.sum()),
            "foreign_ip": int(away.sum()),
            "foreign_ip_travellers": int((away & traveller).sum()),
            "ship_abroad": int(abroad.sum()),
            "gift_ship_domestic": int(gift_ship.sum()),
            "to_shared_locker": int(to_locker.sum()),
            "click_and_collect": int(collect.sum()),
            "one_off_new_device": int(new_device.sum()),
            "big_ticket": int(big.sum()),
            "gift_cards": int(gift.sum()),
            "split_tender": int(split.sum()),
            "night_online": int((online & night).sum()),
            "night_in_store": int((~online & night).sum()),
            **bursts,
        },
    }
    return txns, info


def legit_overlap_truth(info: dict[str, Any]) -> dict[str, Any]:
    """Ground truth of the legitimate behaviour that overlaps fraud signals: the rates that
    drive it and what they produced (customers and payments)."""
    online = max(info["payments"]["online"], 1)
    return {
        "parameters": {
            "device_upgrade_p": DEVICE_UPGRADE_P,
            "legit_new_device_p": LEGIT_NEW_DEVICE_P,
            "abroad_new_device_p": ABROAD_NEW_DEVICE_P,
            "traveller_share": TRAVELLER_SHARE,
            "traveller_foreign_ip_p": TRAVELLER_FOREIGN_IP_P,
            "legit_foreign_ip_p": LEGIT_FOREIGN_IP_P,
            "travel_weights": TRAVEL_WEIGHTS,
            "legit_gift_ship_p": LEGIT_GIFT_SHIP_P,
            "legit_ship_abroad_p": LEGIT_SHIP_ABROAD_P,
            "traveller_ship_abroad_factor": TRAVELLER_SHIP_ABROAD_FACTOR,
            "locker_user_share": LOCKER_USER_SHARE,
            "locker_use_p": LOCKER_USE_P,
            "customers_per_locker": CUSTOMERS_PER_LOCKER,
            "click_and_collect_p": CLICK_AND_COLLECT_P,
            "split_tender_p": SPLIT_TENDER_P,
            "big_ticket_p": BIG_TICKET_P,
            "big_ticket_departments": BIG_TICKET_DEPARTMENTS,
            "gift_card_denominations": list(GIFT_CARD_DENOMINATIONS),
            "night_owl_share": NIGHT_OWL_SHARE,
            "night_store_p": NIGHT_STORE_P,
            "retry_p": RETRY_P,
            "retry_delay_seconds": RETRY_DELAY_S,
            "retry_other_card_p": RETRY_OTHER_CARD_P,
            "household_order_p": HOUSEHOLD_ORDER_P,
            "household_delay_minutes": HOUSEHOLD_DELAY_MIN,
            "household_new_device_p": HOUSEHOLD_NEW_DEVICE_P,
            "method_share_by_segment": METHOD_SHARE,
        },
        "customers": info["customers"],
        "shared_lockers": info["shared_lockers"],
        "payments": info["payments"],
        "online_shares": {
            name: count / online
            for name, count in info["payments"].items()
            if name
            in (
                "foreign_ip",
                "ship_abroad",
                "gift_ship_domestic",
                "to_shared_locker",
                "click_and_collect",
                "one_off_new_device",
                "night_online",
                "retries_online",
                "household_orders",
            )
        },
    }


def _window_end_us(cal: TradingCalendar) -> int:
    return (int(cal.epoch_days[-1]) + 1) * US_PER_DAY


def _delay_us(rng: np.random.Generator, spec: dict[str, float], n: int, unit: int) -> np.ndarray:
    return ((spec["min"] + rng.exponential(spec["mean_extra"], n)) * unit).astype(np.int64)


def _legit_bursts(
    rng: np.random.Generator,
    txns: Txns,
    day: np.ndarray,
    wallet: Wallet,
    window_end_us: int,
) -> dict[str, int]:
    """Turn some payments into the second of a legitimate pair, in place.

    A declined payment is retried seconds to minutes later (same device and amount, sometimes
    another card); a family member orders on the same card from their own device within the
    hour or two. The payment that becomes the follow-up is a random other one of the same
    channel, so row counts and channel shares stay as planned.
    """
    online_rows = np.flatnonzero(txns.channel == 0)
    store_rows = np.flatnonzero(txns.channel == 1)
    # Each pair takes two payments of its channel (kept possible for very small runs).
    k_retry_online = min(rng.binomial(len(online_rows), RETRY_P["online"]), len(online_rows) // 2)
    k_household = min(
        rng.binomial(len(online_rows), HOUSEHOLD_ORDER_P), len(online_rows) // 2 - k_retry_online
    )
    k_retry_store = min(rng.binomial(len(store_rows), RETRY_P["in_store"]), len(store_rows) // 2)
    pick = rng.choice(online_rows, 2 * (k_retry_online + k_household), replace=False)
    pick_store = rng.choice(store_rows, 2 * k_retry_store, replace=False)
    first = np.concatenate([pick[:k_retry_online], pick_store[:k_retry_store]])
    then = np.concatenate([pick[k_retry_online : 2 * k_retry_online], pick_store[k_retry_store:]])
    # Retries: the same payment again, seconds to minutes later.
    for name in ("customer", "device", "terminal", "store", "amount", "n_items", "top_dept"):
        getattr(txns, name)[then] = getattr(txns, name)[first]
    for name in ("billing", "shipping", "ip", "address"):
        getattr(txns, name)[then] = getattr(txns, name)[first]
    other_card = rng.random(len(then)) < RETRY_OTHER_CARD_P
    txns.card[then] = np.where(
        other_card, wallet.pick_card(rng, txns.customer[first]), txns.card[first]
    )
    txns.ts[then] = txns.ts[first] + _delay_us(rng, RETRY_DELAY_S, len(then), US_PER_SECOND)
    day[then] = day[first]
    # Household orders: same card and account, another basket, another device.
    first_h = pick[2 * k_retry_online : 2 * k_retry_online + k_household]
    then_h = pick[2 * k_retry_online + k_household :]
    customer = txns.customer[first_h]
    for name in ("customer", "card", "billing", "ip"):
        getattr(txns, name)[then_h] = getattr(txns, name)[first_h]
    device = wallet.pick_device(rng, customer, day[first_h])
    fresh = rng.random(len(then_h)) < HOUSEHOLD_NEW_DEVICE_P
    device[fresh] = wallet.new_devices(int(fresh.sum()))
    txns.device[then_h] = device
    txns.shipping[then_h] = txns.billing[first_h]
    txns.address[then_h] = np.where(txns.address[then_h] >= 0, wallet.address_start[customer], -1)
    txns.ts[then_h] = txns.ts[first_h] + _delay_us(
        rng, HOUSEHOLD_DELAY_MIN, len(then_h), 60 * US_PER_SECOND
    )
    day[then_h] = day[first_h]
    txns.ts[:] = np.minimum(txns.ts, window_end_us - 1)
    return {
        "retries_online": int(k_retry_online),
        "retries_in_store": int(k_retry_store),
        "retries_with_another_card": int(other_card.sum()),
        "household_orders": int(k_household),
        "household_orders_new_device": int(fresh.sum()),
    }


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
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """The payments feed in time order, with the true fraud type and variant per row (-1 for
    legitimate payments)."""
    ts = unique_card_times(txns.card, txns.ts)
    order = np.lexsort((txns.card, ts))
    t = txns.take(order)
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
    return PAYMENTS.conform(frame), t.fraud_type, t.variant
