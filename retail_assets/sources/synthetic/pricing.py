"""Chain-wide prices per SKU and day: regular price, promotions, and competitor shelf prices.

Prices are set centrally (one price per SKU and day across all stores). They vary through
permanent price changes and temporary promotions of varying depth and length, enough for a
log-log regression to separate the price effect from everything else. A share of promotions
runs in the physical stores only: the online store sells at the regular price on those days.

Promotions are planned ahead: the plan is simulated PLAN_AHEAD_DAYS past the last trading day
(with the same rules, continuing the promotions that are running), and the `promotion_plan`
feed lists every promotion of the history and of those days. It is the truth: the history part
is exactly what the sales feed shows, and the days ahead are what the retailer will run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import COMPETITOR_PRICES, PROMOTION_PLAN
from retail_assets.sources.synthetic.calendar import EVENTS, TradingCalendar, build_calendar
from retail_assets.sources.synthetic.catalog import Catalog, charm
from retail_assets.sources.synthetic.config import substream

# (name, price level relative to our regular price)
COMPETITORS: tuple[tuple[str, float], ...] = (("PriceHaven", 0.94), ("Crestline", 1.04))
PROMO_START_RATE = 0.011  # per SKU and ordinary day
# Promotions cluster around trading events, as a retailer plans them.
PROMO_EVENT_BOOST = {
    "black_friday": 8.0,
    "cyber_monday": 8.0,
    "christmas_peak": 2.0,
    "back_to_school": 2.5,
    "mid_year_sale": 6.0,
}
PROMO_DEPTHS = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40)
PROMO_DAYS = (3, 14)  # shortest and longest promotion
PRICE_CHANGES_PER_YEAR = 2.0
PRICE_CHANGE_SD = 0.08  # log scale, clipped to +-15%
PRICE_CHANGE_DRIFT = 0.02  # mild inflation: increases outnumber cuts
COMPETITOR_CARRY_SHARE = 0.85  # share of our SKUs a competitor sells and we matched
COMPETITOR_SKU_SD = 0.05
COMPETITOR_DAILY_SD = 0.01
COMPETITOR_PROMO_START_RATE = 0.008
COMPETITOR_PROMO_DEPTHS = (0.10, 0.15, 0.20, 0.25, 0.30)
SCRAPE_DAY_SUCCESS = 0.75  # the scraper ran that day
SCRAPE_ITEM_SUCCESS = 0.95  # the item was found on a day the scraper ran
PLAN_AHEAD_DAYS = 28  # the promotion plan covers this many days past the last trading day
IN_STORE_ONLY_SHARE = 0.25  # promotions the online store does not run
PROMO_TYPE = "temporary_price_reduction"
IN_STORE_ONLY_PROMO_TYPE = "in_store_only"
REGULAR_PROMO_TYPE = "regular"  # the online store's override of an in-store-only promotion


@dataclass(frozen=True)
class PricePlan:
    regular: np.ndarray  # [day, sku] regular shelf price (after permanent changes)
    discount: np.ndarray  # [day, sku] promotion discount as a fraction of the regular price
    unit_price: np.ndarray  # [day, sku] price paid in the physical stores
    competitor: np.ndarray  # [competitor, day, sku] latent shelf price, NaN if not carried
    carried: np.ndarray  # [competitor, sku]
    in_store_only: np.ndarray  # [day, sku] the promotion running that day skips the online store
    # The same for the PLAN_AHEAD_DAYS after the last trading day (planned, not yet sold).
    ahead_regular: np.ndarray
    ahead_discount: np.ndarray
    ahead_in_store_only: np.ndarray

    @property
    def on_promotion(self) -> np.ndarray:
        return self.discount > 0

    def discount_for(self, channel: str) -> np.ndarray:
        """[day, sku] discount in a channel (physical or online)."""
        if channel == "online":
            return np.where(self.in_store_only, 0.0, self.discount)
        return self.discount

    def unit_price_for(self, channel: str) -> np.ndarray:
        if channel == "online":
            return np.where(self.in_store_only, self.regular, self.unit_price)
        return self.unit_price

    def competitor_index(self) -> np.ndarray:
        """[day, sku] mean competitor price relative to our regular price (1 if none)."""
        weight = self.carried[:, None, :].astype(float)
        total = (np.where(self.carried[:, None, :], self.competitor, 0.0)).sum(axis=0)
        count = weight.sum(axis=0)
        return np.where(count > 0, total / np.maximum(count, 1) / self.regular, 1.0)


@dataclass
class _Running:
    """Promotions in progress per SKU: days left and depth (carried from history to plan)."""

    remaining: np.ndarray
    current: np.ndarray


def _promotions(
    rng: np.random.Generator,
    start_rate: np.ndarray,
    n_skus: int,
    depths: tuple[float, ...],
    running: _Running | None = None,
) -> tuple[np.ndarray, np.ndarray, _Running]:
    """[day, sku] discount from promotions that start at random and run a few days to 2 weeks,
    the [day, sku] mask of the days a promotion starts, and what is still running at the end
    (pass it back in to continue the same promotions)."""
    n_days = len(start_rate)
    starts = rng.random((n_days, n_skus)) < start_rate[:, None]
    lengths = rng.integers(PROMO_DAYS[0], PROMO_DAYS[1] + 1, (n_days, n_skus))
    depth = rng.choice(np.array(depths), size=(n_days, n_skus))
    discount = np.zeros((n_days, n_skus))
    started = np.zeros((n_days, n_skus), dtype=bool)
    if running is None:
        running = _Running(np.zeros(n_skus, dtype=np.int64), np.zeros(n_skus))
    remaining, current = running.remaining.copy(), running.current.copy()
    for d in range(n_days):
        new = starts[d] & (remaining == 0)
        started[d] = new
        remaining[new] = lengths[d, new]
        current[new] = depth[d, new]
        on = remaining > 0
        discount[d, on] = current[on]
        remaining[on] -= 1
    return discount, started, _Running(remaining, current)


def _promo_start_rate(event: np.ndarray) -> np.ndarray:
    """Per-day start rate; promotions cluster around trading events and start a little before
    the event so that they run on the day itself. `event` runs 3 days past the days rated."""
    boost = np.ones(len(EVENTS) + 1)
    boost[: len(EVENTS)] = [PROMO_EVENT_BOOST[e] for e in EVENTS]
    days = len(event) - 3
    return PROMO_START_RATE * np.maximum(boost[event[:days]], boost[event[3:]])


def _in_store_only(seed: int, started: np.ndarray, discount: np.ndarray, stream: str) -> np.ndarray:
    """[day, sku]: the promotion running that day was started as an in-store-only one."""
    flag_at_start = substream(seed, "prices", "in_store_only", stream).random(started.shape)
    day = np.arange(started.shape[0])[:, None]
    last_start = np.maximum.accumulate(np.where(started, day, -1), axis=0)
    column = np.broadcast_to(np.arange(started.shape[1])[None, :], started.shape)
    flagged = flag_at_start[np.maximum(last_start, 0), column] < IN_STORE_ONLY_SHARE
    return flagged & (last_start >= 0) & (discount > 0)


def build_price_plan(seed: int, cal: TradingCalendar, catalog: Catalog) -> PricePlan:
    rng = substream(seed, "prices")
    n_days, n_skus = cal.n_days, catalog.n

    n_changes = rng.poisson(PRICE_CHANGES_PER_YEAR * n_days / 365.25, n_skus)
    sku_of_change = np.repeat(np.arange(n_skus), n_changes)
    day_of_change = rng.integers(1, n_days, len(sku_of_change))
    step = np.clip(rng.normal(PRICE_CHANGE_DRIFT, PRICE_CHANGE_SD, len(sku_of_change)), -0.15, 0.15)
    log_change = np.zeros((n_days, n_skus))
    np.add.at(log_change, (day_of_change, sku_of_change), step)
    regular = np.round(charm(catalog.list_price[None, :] * np.exp(np.cumsum(log_change, 0))), 2)

    # The calendar is published ahead, so promotions before an event just past the window and
    # the plan ahead see it.
    events = build_calendar(cal.start, n_days + PLAN_AHEAD_DAYS + 3).event
    start_rate = _promo_start_rate(events)
    discount, started, running = _promotions(rng, start_rate[:n_days], n_skus, PROMO_DEPTHS)
    unit_price = np.round(regular * (1 - discount), 2)
    in_store_only = _in_store_only(seed, started, discount, "history")

    # The plan ahead: the running promotions continue, new ones start by the same rules (an
    # own stream, so the history does not depend on how far ahead the plan reaches). Regular
    # prices are held: no permanent change is planned inside the window.
    ahead_rng = substream(seed, "prices", "plan_ahead")
    ahead_discount, ahead_started, _ = _promotions(
        ahead_rng, start_rate[n_days:], n_skus, PROMO_DEPTHS, running
    )
    ahead_regular = np.repeat(regular[-1:], PLAN_AHEAD_DAYS, axis=0)
    # A promotion running across the last trading day keeps its in-store-only flag.
    ahead_flag = _in_store_only(seed, ahead_started, ahead_discount, "ahead")
    carry = np.logical_and.accumulate(~ahead_started, axis=0) & (ahead_discount > 0)
    ahead_in_store_only = np.where(carry, in_store_only[-1][None, :], ahead_flag)

    comp_rng = substream(seed, "competitor_prices", "latent")
    levels = np.array([level for _, level in COMPETITORS])
    carried = comp_rng.random((len(COMPETITORS), n_skus)) < COMPETITOR_CARRY_SHARE
    sku_level = np.exp(comp_rng.normal(0, COMPETITOR_SKU_SD, (len(COMPETITORS), n_skus)))
    competitor = np.empty((len(COMPETITORS), n_days, n_skus))
    for c in range(len(COMPETITORS)):
        comp_discount, _, _ = _promotions(
            comp_rng, np.full(n_days, COMPETITOR_PROMO_START_RATE), n_skus, COMPETITOR_PROMO_DEPTHS
        )
        noise = np.exp(comp_rng.normal(0, COMPETITOR_DAILY_SD, (n_days, n_skus)))
        competitor[c] = np.round(
            regular * levels[c] * sku_level[c][None, :] * noise * (1 - comp_discount), 2
        )
    return PricePlan(
        regular,
        discount,
        unit_price,
        competitor,
        carried,
        in_store_only,
        ahead_regular,
        ahead_discount,
        ahead_in_store_only,
    )


def promotion_plan_frame(
    cal: TradingCalendar, catalog: Catalog, plan: PricePlan, online_store_id: str
) -> pl.DataFrame:
    """The `promotion_plan` feed: one chain-wide row (store_id null) per run of days on which a
    SKU is promoted at the same discount and price, over the history and the plan ahead; an
    in-store-only run also gets a row for the online store that overrides it with the regular
    price (promo_type 'regular', discount 0)."""
    regular = np.vstack([plan.regular, plan.ahead_regular])
    discount = np.vstack([plan.discount, plan.ahead_discount])
    flag = np.vstack([plan.in_store_only, plan.ahead_in_store_only])
    price = np.round(regular * (1 - discount), 2)
    n_total, n_skus = discount.shape
    # A run starts where a promoted day differs from the day before (not promoted, another
    # depth, price or channel rule).
    previous = np.vstack([np.zeros((1, n_skus)), discount[:-1]])
    changed = (
        (previous == 0)
        | (discount != previous)
        | (price != np.vstack([np.zeros((1, n_skus)), price[:-1]]))
        | (flag != np.vstack([np.zeros((1, n_skus), dtype=bool), flag[:-1]]))
    )
    promoted = discount > 0
    # Work SKU by SKU (the transpose, flattened): run starts in order, and every promoted day
    # belongs to the latest run start at or before it.
    starts = (promoted & changed).T
    sku, start_day = np.nonzero(starts)
    run_id = np.cumsum(starts.ravel()) - 1
    in_run = promoted.T.ravel()
    last_day = np.zeros(len(start_day), dtype=np.int64)
    np.maximum.at(last_day, run_id[in_run], np.tile(np.arange(n_total), n_skus)[in_run])
    epoch = cal.epoch_days[0]
    runs = pl.DataFrame(
        {
            "sku": pl.Series(catalog.sku_ids).gather(sku),
            "start_date": pl.Series(epoch + start_day, dtype=pl.Int32).cast(pl.Date),
            "end_date": pl.Series(epoch + last_day, dtype=pl.Int32).cast(pl.Date),
            "planned_price": price[start_day, sku],
            "discount_pct": discount[start_day, sku],
            "regular_price": regular[start_day, sku],
            "in_store_only": flag[start_day, sku],
        }
    )
    chain = runs.with_columns(
        store_id=pl.lit(None, pl.String),
        promo_type=pl.when(pl.col("in_store_only"))
        .then(pl.lit(IN_STORE_ONLY_PROMO_TYPE))
        .otherwise(pl.lit(PROMO_TYPE)),
    )
    online = runs.filter(pl.col("in_store_only")).with_columns(
        store_id=pl.lit(online_store_id),
        planned_price=pl.col("regular_price"),
        discount_pct=pl.lit(0.0),
        promo_type=pl.lit(REGULAR_PROMO_TYPE),
    )
    frame = pl.concat([chain, online], how="diagonal_relaxed")
    return PROMOTION_PLAN.conform(
        frame.sort("sku", "start_date", pl.col("store_id").is_not_null(), "store_id")
    )


def competitor_prices_frame(
    seed: int, cal: TradingCalendar, catalog: Catalog, plan: PricePlan
) -> pl.DataFrame:
    """The scraped feed: only carried, active SKUs, on days the scraper ran and found them."""
    rng = substream(seed, "competitor_prices", "observed")
    active = catalog.active(cal.n_days)
    frames = []
    for c, (name, _) in enumerate(COMPETITORS):
        scraped = rng.random(cal.n_days) < SCRAPE_DAY_SUCCESS
        found = rng.random((cal.n_days, catalog.n)) < SCRAPE_ITEM_SUCCESS
        mask = active & plan.carried[c][None, :] & scraped[:, None] & found
        day, sku = np.nonzero(mask)
        frames.append(
            pl.DataFrame(
                {
                    "date": pl.Series(cal.epoch_days[day]).cast(pl.Date),
                    "sku": pl.Series(catalog.sku_ids).gather(sku),
                    "competitor": pl.repeat(name, len(day), eager=True, dtype=pl.String),
                    "competitor_price": plan.competitor[c][day, sku],
                }
            )
        )
    return COMPETITOR_PRICES.conform(pl.concat(frames).sort("date", "sku", "competitor"))


def ground_truth() -> dict[str, Any]:
    return {
        "promo_start_rate_per_sku_day": PROMO_START_RATE,
        "promo_event_boost": PROMO_EVENT_BOOST,
        "promo_depths": list(PROMO_DEPTHS),
        "promo_length_days": list(PROMO_DAYS),
        "price_changes_per_sku_year": PRICE_CHANGES_PER_YEAR,
        "price_change_log_sd": PRICE_CHANGE_SD,
        "price_change_log_drift": PRICE_CHANGE_DRIFT,
        "competitors": {
            name: {"price_level": level, "carry_share": COMPETITOR_CARRY_SHARE}
            for name, level in COMPETITORS
        },
        "in_store_only_promotion_share": IN_STORE_ONLY_SHARE,
        "promotion_plan": {
            "plan_ahead_days": PLAN_AHEAD_DAYS,
            "rows": (
                "one chain-wide row (store_id null) per run of days with the same discount and "
                "price per SKU, over the history and the plan ahead; in-store-only runs "
                f"(promo_type '{IN_STORE_ONLY_PROMO_TYPE}') add an online-store row with "
                f"promo_type '{REGULAR_PROMO_TYPE}', discount 0 and the regular price"
            ),
            "truthful": (
                "history rows are exactly the promotions in the sales feed; rows ahead are the "
                "promotions simulated for those days by the same rules (regular prices held)"
            ),
        },
        "competitor_promo_start_rate": COMPETITOR_PROMO_START_RATE,
        "competitor_observation_rate": SCRAPE_DAY_SUCCESS * SCRAPE_ITEM_SUCCESS,
    }
