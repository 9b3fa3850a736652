"""Loyalty customers and the latent tastes that clickstream and payments both draw from.

Tastes are fixed per customer for the whole window, so what a customer browses, buys and
pays for is consistent, and a recommender has a stable signal to learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from retail_assets.sources.contracts import CUSTOMERS
from retail_assets.sources.synthetic.config import substream
from retail_assets.sources.synthetic.stores import REGIONS, Stores
from retail_assets.sources.synthetic.taxonomy import CATEGORIES, DEPARTMENT_NAMES

SEGMENTS = ("value", "mainstream", "premium")
SEGMENT_SHARE = (0.38, 0.45, 0.17)
SEGMENT_ACTIVITY = (1.15, 1.0, 0.85)  # value shoppers come more often, for smaller baskets
# How much each segment likes value / mainstream / premium brands (multiplies click odds).
TIER_TASTE = {
    "value": (1.6, 1.0, 0.5),
    "mainstream": (1.0, 1.2, 0.8),
    "premium": (0.5, 1.0, 1.8),
}
# Population-level popularity of departments; individual tastes scatter around it.
DEPARTMENT_SHARE = {
    "Apparel": 0.2,
    "Footwear": 0.13,
    "Outdoor": 0.12,
    "Home & Kitchen": 0.14,
    "Electronics": 0.15,
    "Beauty": 0.1,
    "Toys": 0.08,
    "Sports & Fitness": 0.08,
}
# Dirichlet concentration: small values give peaked, distinctive tastes.
TASTE_CONCENTRATION = 3.0
ONLINE_HOME_SHARE = 0.22
SIGNUP_IN_WINDOW_SHARE = 0.3
COUNTRIES = ("US", "CA", "MX")
COUNTRY_SHARE = (0.96, 0.03, 0.01)


@dataclass(frozen=True)
class Customers:
    frame: pl.DataFrame
    customer_ids: list[str]
    segment: np.ndarray  # index into SEGMENTS
    home_store: np.ndarray  # store index
    signup: np.ndarray  # day index of signup (negative: before the window)
    country: np.ndarray  # index into COUNTRIES
    dept_taste: np.ndarray  # [customer, department] probabilities
    cat_taste: np.ndarray  # [customer, category] probabilities
    tier_taste: np.ndarray  # [customer, tier] multipliers
    activity: np.ndarray  # relative shopping frequency
    online_share: np.ndarray  # probability a payment is online
    app_share: np.ndarray  # probability a session is in the app

    @property
    def n(self) -> int:
        return len(self.customer_ids)


def build_customers(
    seed: int, n_customers: int, start: date, n_days: int, stores: Stores
) -> Customers:
    rng = substream(seed, "customers")
    segment = rng.choice(len(SEGMENTS), size=n_customers, p=SEGMENT_SHARE)
    online_home = rng.random(n_customers) < ONLINE_HOME_SHARE
    physical = stores.physical
    home = np.where(online_home, stores.online, rng.choice(physical, size=n_customers))
    region = np.where(
        online_home,
        np.array(REGIONS)[rng.integers(len(REGIONS), size=n_customers)],
        np.array(stores.region)[home],
    )
    in_window = rng.random(n_customers) < SIGNUP_IN_WINDOW_SHARE
    signup = np.where(
        in_window,
        rng.integers(0, n_days - 7, n_customers),
        -rng.integers(1, 2200, n_customers),
    ).astype(np.int32)
    country = rng.choice(len(COUNTRIES), size=n_customers, p=COUNTRY_SHARE)
    # Only online customers can live abroad: a store's regulars live near it.
    country = np.where(online_home, country, 0)

    base = np.array([DEPARTMENT_SHARE[d] for d in DEPARTMENT_NAMES])
    dept_taste = rng.dirichlet(base * TASTE_CONCENTRATION, size=n_customers)
    cat_dept = np.array([DEPARTMENT_NAMES.index(d) for d, _ in CATEGORIES])
    within = np.empty((n_customers, len(CATEGORIES)))
    for d in range(len(DEPARTMENT_NAMES)):
        members = np.flatnonzero(cat_dept == d)
        within[:, members] = rng.dirichlet(np.full(len(members), 1.5), size=n_customers)
    cat_taste = dept_taste[:, cat_dept] * within
    cat_taste /= cat_taste.sum(axis=1, keepdims=True)
    tier_taste = np.array([TIER_TASTE[SEGMENTS[s]] for s in segment])

    activity = np.exp(rng.normal(0, 0.6, n_customers)) * np.array(SEGMENT_ACTIVITY)[segment]
    online_share = np.where(online_home, rng.beta(9, 1, n_customers), rng.beta(2, 6, n_customers))
    app_share = rng.beta(2, 2, n_customers)

    customer_ids = [f"C{i + 1:06d}" for i in range(n_customers)]
    frame = pl.DataFrame(
        {
            "customer_id": customer_ids,
            "segment": [SEGMENTS[s] for s in segment],
            "region": region,
            "home_store_id": pl.Series(stores.store_ids).gather(home),
            "signup_date": pl.Series(
                (signup + (start - date(1970, 1, 1)).days).astype(np.int32)
            ).cast(pl.Date),
        }
    )
    return Customers(
        frame=CUSTOMERS.conform(frame),
        customer_ids=customer_ids,
        segment=segment,
        home_store=home,
        signup=signup,
        country=country,
        dept_taste=dept_taste,
        cat_taste=cat_taste,
        tier_taste=tier_taste,
        activity=activity,
        online_share=online_share,
        app_share=app_share,
    )
