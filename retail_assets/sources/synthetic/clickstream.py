"""Online sessions: impressions, clicks, add-to-cart and purchases.

Each session has a shopper (a logged-in customer, or an anonymous visitor who still has
tastes of their own) and a mission category drawn from the shopper's tastes. Pages show
slots from the mission category, its complements and the shopper's other interests; the
chance of a click depends on slot position, category taste, brand tier taste, item
popularity and a latent shopper-item match. Because purchases follow missions and their
complements, items bought in the same session co-occur in a learnable way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import CLICKSTREAM
from retail_assets.sources.synthetic.calendar import TradingCalendar
from retail_assets.sources.synthetic.catalog import Catalog
from retail_assets.sources.synthetic.config import substream
from retail_assets.sources.synthetic.customers import Customers
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
from retail_assets.sources.synthetic.taxonomy import CATEGORY_NAMES, COMPLEMENTS

PAGES = ("home", "search", "category", "recommendation")  # pages that list products
PAGE_NAMES = (*PAGES, "product")
EVENT_TYPES = ("impression", "click", "add_to_cart", "purchase")
SESSIONS_PER_CHUNK = 100_000
SESSION_END_MARGIN_US = 3 * 3600 * US_PER_SECOND
SLOTS = {"home": 6, "search": 8, "category": 8, "recommendation": 4}
FIRST_PAGE_P = (0.4, 0.35, 0.25, 0.0)
NEXT_PAGE_P = (0.15, 0.25, 0.35, 0.25)
EXTRA_PAGES_MEAN = 1.8
MAX_PAGES = 8
LOGGED_IN_SHARE = 0.7
# Where a page's category comes from: the mission, a complement of it, or any taste.
MISSION_P, COMPLEMENT_P = 0.6, 0.25
# Where a listing page's slots come from: its own category, complements, other tastes.
LISTING_OWN_P, LISTING_COMPLEMENT_P = 0.75, 0.15
BASE_CTR = 0.03
POSITION_BIAS_EXPONENT = 0.8  # click odds at slot p are proportional to p ** -exponent
TASTE_EXPONENT = 0.6
POPULARITY_EXPONENT = 0.3
LATENT_DIM = 4
LATENT_SCALE = 0.6
ADD_TO_CART_P = 0.22
PURCHASE_P = 0.45
MAX_P = 0.9


_COMPLEMENT_IDS = [[CATEGORY_NAMES.index(x) for x in COMPLEMENTS[c]] for c in CATEGORY_NAMES]
_COMPLEMENT_COUNT = np.array([len(ids) for ids in _COMPLEMENT_IDS])
_COMPLEMENT_TABLE = np.array(
    [ids + [ids[0]] * (_COMPLEMENT_COUNT.max() - len(ids)) for ids in _COMPLEMENT_IDS]
)


def _complement(rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
    """A random complement category of each row's category."""
    pick = (rng.random(len(category)) * _COMPLEMENT_COUNT[category]).astype(np.int64)
    return _COMPLEMENT_TABLE[category, pick]


@dataclass(frozen=True)
class _Context:
    """What every chunk of sessions draws from."""

    catalog: Catalog
    customers: Customers
    taste: RowSampler
    sampler: GroupSampler
    cust_factor: np.ndarray
    item_factor: np.ndarray


def _context(seed: int, catalog: Catalog, customers: Customers) -> _Context:
    latent_rng = substream(seed, "clickstream", "latent")
    return _Context(
        catalog=catalog,
        customers=customers,
        taste=RowSampler(customers.cat_taste),
        sampler=GroupSampler(catalog, catalog.cat, catalog.popularity, len(CATEGORY_NAMES)),
        cust_factor=latent_rng.normal(0, 1 / np.sqrt(LATENT_DIM), (customers.n, LATENT_DIM)),
        item_factor=latent_rng.normal(0, 1 / np.sqrt(LATENT_DIM), (catalog.n, LATENT_DIM)),
    )


def build_clickstream(
    seed: int, cal: TradingCalendar, catalog: Catalog, customers: Customers, n_sessions: int
) -> pl.DataFrame:
    rng = substream(seed, "clickstream")
    ctx = _context(seed, catalog, customers)

    # Sessions. Anonymous visitors borrow a random customer's tastes without their id.
    logged_in = rng.random(n_sessions) < LOGGED_IN_SHARE
    traffic = day_weights(cal, "online")
    signup = np.maximum(customers.signup, 0)
    weight = customers.activity * (customers.online_share + 0.2) * exposure(traffic, signup)
    shopper = rng.choice(customers.n, size=n_sessions, p=weight / weight.sum())
    day = sample_days(rng, traffic, np.where(logged_in, signup[shopper], 0))
    start_us = cal.epoch_days[day].astype(np.int64) * US_PER_DAY + sample_seconds(
        rng, n_sessions, "online"
    )
    # Sessions on the last evening start early enough to end inside the window.
    window_end_us = (int(cal.epoch_days[-1]) + 1) * US_PER_DAY
    start_us = np.minimum(start_us, window_end_us - SESSION_END_MARGIN_US)
    app = rng.random(n_sessions) < customers.app_share[shopper]
    mission = ctx.taste.sample(rng, shopper)
    # Session ids follow start time; sessions are then expanded to events in fixed-size chunks
    # (each with its own random stream) so that large scales stay within memory.
    order = np.argsort(start_us, kind="stable")
    logged_in, shopper, day, start_us, app, mission = (
        a[order] for a in (logged_in, shopper, day, start_us, app, mission)
    )
    parts = [
        _session_events(
            substream(seed, "clickstream", "chunk", i),
            ctx,
            shopper[first : first + SESSIONS_PER_CHUNK],
            day[first : first + SESSIONS_PER_CHUNK],
            start_us[first : first + SESSIONS_PER_CHUNK],
            mission[first : first + SESSIONS_PER_CHUNK],
            first,
        )
        for i, first in enumerate(range(0, n_sessions, SESSIONS_PER_CHUNK))
    ]
    events = pl.concat(parts)
    session = events["session"].to_numpy()
    frame = pl.DataFrame(
        {
            "event_id": pl.int_range(1, events.height + 1, eager=True),
            "event_ts": events["ts"],
            "session_id": events["session"] + 1,
            "customer_id": pl.Series(customers.customer_ids).gather(shopper[session]),
            "logged_in": logged_in[session],
            "sku": pl.Series(catalog.sku_ids).gather(events["sku"].to_numpy()),
            "event_type": events["kind"],
            "page": events["page"],
            "position": events["position"],
            "channel": app[session],
        }
    ).with_columns(
        event_id=pl.format("E{}", pl.col("event_id").cast(pl.String).str.zfill(10)),
        event_ts=pl.col("event_ts").cast(pl.Datetime("us")),
        session_id=pl.format("SES{}", pl.col("session_id").cast(pl.String).str.zfill(8)),
        customer_id=pl.when("logged_in").then(pl.col("customer_id")),
        event_type=_labels("event_type", EVENT_TYPES),
        page=_labels("page", PAGE_NAMES),
        position=pl.when(pl.col("position") > 0).then(pl.col("position")),
        channel=pl.when("channel").then(pl.lit("app")).otherwise(pl.lit("web")),
    )
    return CLICKSTREAM.conform(frame)


def _appeal(ctx: _Context, who: np.ndarray, sku: np.ndarray) -> np.ndarray:
    """The generator's truth: how much shopper `who` likes item `sku` (1 = a typical match)."""
    catalog, customers = ctx.catalog, ctx.customers
    liking = (customers.cat_taste[who, catalog.cat[sku]] * len(CATEGORY_NAMES)) ** TASTE_EXPONENT
    tier = customers.tier_taste[who, catalog.tier[sku]]
    pop = (catalog.popularity[sku] / np.median(catalog.popularity)) ** POPULARITY_EXPONENT
    match = np.exp(LATENT_SCALE * np.einsum("ij,ij->i", ctx.cust_factor[who], ctx.item_factor[sku]))
    return liking * tier * pop * match


def _p_click(appeal: np.ndarray, position: np.ndarray) -> np.ndarray:
    return np.minimum(BASE_CTR * position**-POSITION_BIAS_EXPONENT * appeal, MAX_P)


def _funnel(
    rng: np.random.Generator,
    ctx: _Context,
    who: np.ndarray,
    sku: np.ndarray,
    position: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clicked, carted, bought) per shown slot: the click model of `ground_truth()`."""
    appeal = _appeal(ctx, who, sku)
    clicked = rng.random(len(sku)) < _p_click(appeal, position)
    p_cart = np.minimum(ADD_TO_CART_P * np.sqrt(appeal), MAX_P)
    carted = clicked & (rng.random(len(sku)) < p_cart)
    bought = carted & (rng.random(len(sku)) < PURCHASE_P)
    return clicked, carted, bought


class Shoppers:
    """The generator's shoppers answering what a recommender served: for each shown list, the
    customer clicks, carts and buys its items by the same click model as the clickstream
    (`ground_truth()`: position bias, category and tier taste, popularity, latent match), so
    the CTR of served recommendations is a real signal of their quality, not a constant.

    Built from the same seed and scale as the generated feeds (the same tastes and latent
    factors); the simulation lands the events it returns as later clickstream."""

    def __init__(self, seed: int, catalog: Catalog, customers: Customers):
        self.seed = seed
        self.ctx = _context(seed, catalog, customers)
        self.customer_index = {c: i for i, c in enumerate(customers.customer_ids)}
        self.sku_index = {s: i for i, s in enumerate(catalog.sku_ids)}

    def appeal(self, customer_id: str, sku: str) -> float | None:
        """The true appeal of an item to a known customer (None: unknown to the generator)."""
        who, item = self.customer_index.get(customer_id), self.sku_index.get(sku)
        if who is None or item is None:
            return None
        return float(_appeal(self.ctx, np.array([who]), np.array([item]))[0])

    def _slots(self, lists: pl.DataFrame, key: str) -> pl.DataFrame:
        """One row per shown item of `lists` (one row per list `key`, SKUs in `skus`, best
        first): its position from 1 and the generator's shopper and item codes (-1 unknown)."""
        return lists.explode("skus").with_columns(
            pl.int_range(1, pl.len() + 1).over(key).alias("position"),
            pl.col("customer_id")
            .replace_strict(self.customer_index, default=-1, return_dtype=pl.Int64)
            .alias("who"),
            pl.col("skus")
            .replace_strict(self.sku_index, default=-1, return_dtype=pl.Int64)
            .alias("item"),
        )

    def expected_clicks(self, served: pl.DataFrame) -> pl.DataFrame:
        """customer_id, expected_clicks per list of `served` (customer_id, skus best first):
        the click model's probability summed over the list, without drawing: the ground
        truth a recommender's lists are worth to this shopper (unknown ids count 0)."""
        rows = self._slots(served.select("customer_id", "skus").with_row_index("list"), "list")
        known = (rows["who"] >= 0) & (rows["item"] >= 0)
        p = np.zeros(rows.height)
        mask = known.to_numpy()
        position = rows["position"].to_numpy()[mask].astype(np.float64)
        appeal = _appeal(self.ctx, rows["who"].to_numpy()[mask], rows["item"].to_numpy()[mask])
        p[mask] = _p_click(appeal, position)
        return (
            rows.with_columns(pl.Series("p", p))
            .group_by("list", maintain_order=True)
            .agg(pl.col("customer_id").first(), pl.col("p").sum().alias("expected_clicks"))
            .drop("list")
        )

    def respond(self, served: pl.DataFrame, salt: int = 0) -> pl.DataFrame:
        """Clickstream events (the feed's schema, page `recommendation`) for `served`: one row
        per shown list with request_id, ts, customer_id, session_id (may be null) and skus
        (best first). Lists of customers or SKUs the generator does not know get no events.
        Same input and salt, same events."""
        rng = substream(self.seed, "clickstream", "responses", salt)
        rows = self._slots(
            served.select("request_id", "ts", "customer_id", "session_id", "skus"), "request_id"
        ).filter((pl.col("who") >= 0) & (pl.col("item") >= 0))
        who, item = rows["who"].to_numpy(), rows["item"].to_numpy()
        position = rows["position"].to_numpy().astype(np.float64)
        clicked, carted, bought = _funnel(rng, self.ctx, who, item, position)
        n = rows.height
        base = rows["ts"].cast(pl.Datetime("us"))
        delays = {
            "click": rng.exponential(8, n),
            "add_to_cart": rng.exponential(40, n),
            "purchase": rng.exponential(90, n) + 60,
        }
        click_s = delays["click"]
        cart_s = click_s + delays["add_to_cart"]
        buy_s = cart_s + delays["purchase"]
        parts = []
        for kind, mask, seconds in (
            ("click", clicked, click_s),
            ("add_to_cart", carted, cart_s),
            ("purchase", bought, buy_s),
        ):
            idx = np.flatnonzero(mask)
            parts.append(
                rows[idx].select(
                    (
                        base.gather(idx)
                        + pl.Series((seconds[idx] * 1e6).astype(np.int64)).cast(pl.Duration("us"))
                    ).alias("event_ts"),
                    pl.coalesce("session_id", pl.format("REC-{}", pl.col("request_id"))).alias(
                        "session_id"
                    ),
                    "customer_id",
                    pl.lit(True).alias("logged_in"),
                    pl.col("skus").alias("sku"),
                    pl.lit(kind).alias("event_type"),
                    pl.lit("recommendation" if kind == "click" else "product").alias("page"),
                    pl.when(pl.lit(kind == "click")).then(pl.col("position")).alias("position"),
                    pl.lit("web").alias("channel"),
                )
            )
        events = pl.concat(parts).sort("event_ts", "session_id", "sku")
        events = events.with_columns(
            pl.format(
                "R{}-{}", pl.lit(salt), pl.int_range(1, pl.len() + 1).cast(pl.String).str.zfill(9)
            ).alias("event_id")
        )
        return CLICKSTREAM.conform(events)


def _labels(column: str, labels: tuple[str, ...]) -> pl.Expr:
    return pl.col(column).replace_strict(dict(enumerate(labels)), return_dtype=pl.String)


def _session_events(
    rng: np.random.Generator,
    ctx: _Context,
    shopper: np.ndarray,
    day: np.ndarray,
    start_us: np.ndarray,
    mission: np.ndarray,
    first_session: int,
) -> pl.DataFrame:
    """Pages, slots and the funnel for a block of sessions, ordered by session and time."""
    taste = ctx.taste
    n_sessions = len(shopper)

    # Pages.
    n_pages = np.minimum(1 + rng.poisson(EXTRA_PAGES_MEAN, n_sessions), MAX_PAGES)
    p_sess = np.repeat(np.arange(n_sessions), n_pages)
    p_first = np.concatenate([[0], np.cumsum(n_pages)[:-1]])
    p_index = np.arange(len(p_sess)) - np.repeat(p_first, n_pages)
    page_type = np.where(
        p_index == 0,
        rng.choice(len(PAGES), size=len(p_sess), p=FIRST_PAGE_P),
        rng.choice(len(PAGES), size=len(p_sess), p=NEXT_PAGE_P),
    )
    dwell = rng.exponential(45 * US_PER_SECOND, len(p_sess)).astype(np.int64)
    page_us = start_us[p_sess] + np.cumsum(dwell) - np.repeat(np.cumsum(dwell)[p_first], n_pages)
    source = rng.random(len(p_sess))
    page_cat = np.where(
        source < MISSION_P,
        mission[p_sess],
        np.where(
            source < MISSION_P + COMPLEMENT_P,
            _complement(rng, mission[p_sess]),
            taste.sample(rng, shopper[p_sess]),
        ),
    )

    # Slots (impressions): draw twice the slots a page shows, drop repeats, keep the first
    # n. Listing pages lead with their own category, then complements and other tastes;
    # home pages follow tastes; recommendations mix the mission and its complements.
    n_slots = np.array([SLOTS[p] for p in PAGES])[page_type]
    i_page = np.repeat(np.arange(len(p_sess)), 2 * n_slots)
    i_sess = p_sess[i_page]
    i_type = page_type[i_page]
    mission_i = mission[i_sess]
    taste_cat = taste.sample(rng, shopper[i_sess])
    u = rng.random(len(i_page))
    listing = (i_type == PAGES.index("search")) | (i_type == PAGES.index("category"))
    own = listing & (u < LISTING_OWN_P)
    slot_cat = np.where(
        own,
        page_cat[i_page],
        np.where(
            listing,
            np.where(
                u < LISTING_OWN_P + LISTING_COMPLEMENT_P,
                _complement(rng, page_cat[i_page]),
                taste_cat,
            ),
            np.where(
                i_type == PAGES.index("recommendation"),
                np.where(u < 0.5, mission_i, _complement(rng, mission_i)),
                taste_cat,
            ),
        ),
    )
    sku = ctx.sampler.sample(rng, slot_cat, day[i_sess])
    slots = (
        pl.DataFrame(
            {
                "page": i_page,
                "sku": sku,
                "rank": np.where(own, 0, 1),
                "order": np.arange(len(sku)),
                "n_slots": n_slots[i_page],
            }
        )
        .filter(pl.col("sku") >= 0)
        .unique(subset=["page", "sku"], keep="first", maintain_order=True)
        .sort("page", "rank", "order")
        .with_columns(position=pl.int_range(1, pl.len() + 1).over("page"))
        .filter(pl.col("position") <= pl.col("n_slots"))
    )
    i_page = slots["page"].to_numpy()
    sku = slots["sku"].to_numpy()
    position = slots["position"].to_numpy()
    i_sess = p_sess[i_page]

    # Funnel.
    clicked, carted, bought = _funnel(rng, ctx, shopper[i_sess], sku, position)

    imp_us = page_us[i_page] + position * 150_000
    click_us = imp_us + rng.exponential(8 * US_PER_SECOND, len(sku)).astype(np.int64)
    cart_us = click_us + rng.exponential(40 * US_PER_SECOND, len(sku)).astype(np.int64)
    last_page = p_first + n_pages - 1
    checkout_us = (
        page_us[last_page]
        + 60 * US_PER_SECOND
        + rng.exponential(90 * US_PER_SECOND, n_sessions).astype(np.int64)
    )
    # A checkout must come after every add-to-cart of the session.
    cart_max = np.zeros(n_sessions, dtype=np.int64)
    np.maximum.at(cart_max, i_sess[carted], cart_us[carted])
    checkout_us = np.maximum(checkout_us, cart_max + 5 * US_PER_SECOND)

    listing_page = page_type[i_page]
    product_page = np.full(len(sku), PAGE_NAMES.index("product"))
    no_position = np.full(len(sku), -1)
    parts = []
    for kind, mask, ts, page, pos in (
        ("impression", np.ones(len(sku), dtype=bool), imp_us, listing_page, position),
        ("click", clicked, click_us, listing_page, position),
        ("add_to_cart", carted, cart_us, product_page, no_position),
        ("purchase", bought, checkout_us[i_sess], product_page, no_position),
    ):
        idx = np.flatnonzero(mask)
        parts.append(
            pl.DataFrame(
                {
                    "session": (i_sess[idx] + first_session).astype(np.int64),
                    "ts": ts[idx],
                    "kind": np.full(len(idx), EVENT_TYPES.index(kind), dtype=np.int8),
                    "sku": sku[idx],
                    "page": page[idx].astype(np.int8),
                    "position": pos[idx].astype(np.int16),
                }
            )
        )
    return pl.concat(parts).sort("session", "ts", "kind", "sku")


def ground_truth() -> dict[str, Any]:
    return {
        "session_model": (
            "session mission category ~ shopper category taste; listing pages show the mission "
            f"(p={MISSION_P}), a complement (p={COMPLEMENT_P}) or another taste; home slots "
            "follow tastes; recommendation slots are half mission, half complements"
        ),
        "complements": {k: list(v) for k, v in COMPLEMENTS.items()},
        "click_model": (
            "p_click = min(base_ctr * position^-position_bias_exponent * appeal, 0.9); appeal = "
            "(category_taste * n_categories)^taste_exponent * tier_taste * "
            "(popularity / median)^popularity_exponent * exp(latent_scale * <u_customer, v_item>)"
        ),
        "base_ctr": BASE_CTR,
        "position_bias_exponent": POSITION_BIAS_EXPONENT,
        "taste_exponent": TASTE_EXPONENT,
        "popularity_exponent": POPULARITY_EXPONENT,
        "latent_dim": LATENT_DIM,
        "latent_scale": LATENT_SCALE,
        "add_to_cart_given_click": f"min({ADD_TO_CART_P} * sqrt(appeal), 0.9)",
        "purchase_given_add_to_cart": PURCHASE_P,
        "logged_in_share": LOGGED_IN_SHARE,
        "slots_per_page": SLOTS,
    }
