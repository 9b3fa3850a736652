"""Chain-wide prices per SKU and day: regular price, promotions, and competitor shelf prices.

Prices are set centrally (one price per SKU and day across all stores). They vary through
permanent price changes and temporary promotions of varying depth and length, enough for a
log-log regression to separate the price effect from everything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import COMPETITOR_PRICES
from retail_assets.sources.synthetic.calendar import EVENTS, TradingCalendar
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


@dataclass(frozen=True)
class PricePlan:
    regular: np.ndarray  # [day, sku] regular shelf price (after permanent changes)
    discount: np.ndarray  # [day, sku] promotion discount as a fraction of the regular price
    unit_price: np.ndarray  # [day, sku] price paid
    competitor: np.ndarray  # [competitor, day, sku] latent shelf price, NaN if not carried
    carried: np.ndarray  # [competitor, sku]

    @property
    def on_promotion(self) -> np.ndarray:
        return self.discount > 0

    def competitor_index(self) -> np.ndarray:
        """[day, sku] mean competitor price relative to our regular price (1 if none)."""
        weight = self.carried[:, None, :].astype(float)
        total = (np.where(self.carried[:, None, :], self.competitor, 0.0)).sum(axis=0)
        count = weight.sum(axis=0)
        return np.where(count > 0, total / np.maximum(count, 1) / self.regular, 1.0)


def _promotions(
    rng: np.random.Generator, start_rate: np.ndarray, n_skus: int, depths: tuple[float, ...]
) -> np.ndarray:
    """[day, sku] discount from promotions that start at random and run a few days to 2 weeks."""
    n_days = len(start_rate)
    starts = rng.random((n_days, n_skus)) < start_rate[:, None]
    lengths = rng.integers(PROMO_DAYS[0], PROMO_DAYS[1] + 1, (n_days, n_skus))
    depth = rng.choice(np.array(depths), size=(n_days, n_skus))
    discount = np.zeros((n_days, n_skus))
    remaining = np.zeros(n_skus, dtype=np.int64)
    current = np.zeros(n_skus)
    for d in range(n_days):
        new = starts[d] & (remaining == 0)
        remaining[new] = lengths[d, new]
        current[new] = depth[d, new]
        running = remaining > 0
        discount[d, running] = current[running]
        remaining[running] -= 1
    return discount


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

    boost = np.ones(len(EVENTS) + 1)
    boost[: len(EVENTS)] = [PROMO_EVENT_BOOST[e] for e in EVENTS]
    # Start a little before the event so the promotion is running on the day itself.
    event_ahead = np.concatenate([cal.event[3:], np.full(3, -1, dtype=cal.event.dtype)])
    start_rate = PROMO_START_RATE * np.maximum(boost[cal.event], boost[event_ahead])
    discount = _promotions(rng, start_rate, n_skus, PROMO_DEPTHS)
    unit_price = np.round(regular * (1 - discount), 2)

    comp_rng = substream(seed, "competitor_prices", "latent")
    levels = np.array([level for _, level in COMPETITORS])
    carried = comp_rng.random((len(COMPETITORS), n_skus)) < COMPETITOR_CARRY_SHARE
    sku_level = np.exp(comp_rng.normal(0, COMPETITOR_SKU_SD, (len(COMPETITORS), n_skus)))
    competitor = np.empty((len(COMPETITORS), n_days, n_skus))
    for c in range(len(COMPETITORS)):
        comp_discount = _promotions(
            comp_rng, np.full(n_days, COMPETITOR_PROMO_START_RATE), n_skus, COMPETITOR_PROMO_DEPTHS
        )
        noise = np.exp(comp_rng.normal(0, COMPETITOR_DAILY_SD, (n_days, n_skus)))
        competitor[c] = np.round(
            regular * levels[c] * sku_level[c][None, :] * noise * (1 - comp_discount), 2
        )
    return PricePlan(regular, discount, unit_price, competitor, carried)


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
        "competitor_promo_start_rate": COMPETITOR_PROMO_START_RATE,
        "competitor_observation_rate": SCRAPE_DAY_SUCCESS * SCRAPE_ITEM_SUCCESS,
    }
