"""The demand model: every multiplier on expected daily units, and the parameters behind them.

Units sold are a negative-binomial draw around the expected units (DEMAND_FORMULA), censored by
the shelf stock that the replenishment simulation in ``sales`` leaves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retail_assets.sources.synthetic.calendar import EVENTS, HOLIDAYS, TradingCalendar
from retail_assets.sources.synthetic.config import DemandShift
from retail_assets.sources.synthetic.stores import FORMATS
from retail_assets.sources.synthetic.taxonomy import CATEGORIES, DEPARTMENT_NAMES, DEPARTMENTS

# Monday..Sunday. Big-box stores live off the weekend, express stores off weekday commuters,
# online peaks on Sunday evening and Monday.
_WEEKLY_RAW = {
    "hypermarket": (0.85, 0.82, 0.87, 0.93, 1.08, 1.38, 1.17),
    "supermarket": (0.92, 0.90, 0.93, 0.97, 1.10, 1.20, 1.00),
    "express": (1.08, 1.06, 1.06, 1.07, 1.10, 0.85, 0.75),
    "online": (1.10, 1.02, 0.98, 0.95, 0.88, 0.92, 1.15),
}
WEEKLY_PROFILE = {
    fmt: tuple(round(v / (sum(raw) / 7), 4) for v in raw) for fmt, raw in _WEEKLY_RAW.items()
}

# Department uplift at the event; the channel weight scales (uplift - 1) by channel.
EVENT_UPLIFT: dict[str, dict[str, float]] = {
    "black_friday": {
        "Apparel": 2.2,
        "Footwear": 2.0,
        "Outdoor": 1.8,
        "Home & Kitchen": 2.4,
        "Electronics": 3.5,
        "Beauty": 1.8,
        "Toys": 2.6,
        "Sports & Fitness": 1.8,
    },
    "cyber_monday": {
        "Apparel": 1.8,
        "Footwear": 1.7,
        "Outdoor": 1.6,
        "Home & Kitchen": 2.0,
        "Electronics": 3.0,
        "Beauty": 1.7,
        "Toys": 2.0,
        "Sports & Fitness": 1.6,
    },
    "christmas_peak": {
        "Apparel": 1.5,
        "Footwear": 1.3,
        "Outdoor": 1.25,
        "Home & Kitchen": 1.4,
        "Electronics": 1.8,
        "Beauty": 1.7,
        "Toys": 2.3,
        "Sports & Fitness": 1.2,
    },
    "back_to_school": {
        "Apparel": 1.45,
        "Footwear": 1.5,
        "Outdoor": 1.0,
        "Home & Kitchen": 1.1,
        "Electronics": 1.35,
        "Beauty": 1.05,
        "Toys": 1.0,
        "Sports & Fitness": 1.1,
    },
    "mid_year_sale": {d: 1.25 for d in DEPARTMENT_NAMES},
}
EVENT_CHANNEL_WEIGHT = {
    "black_friday": {"physical": 1.0, "online": 0.8},
    "cyber_monday": {"physical": 0.1, "online": 1.0},
    "christmas_peak": {"physical": 1.0, "online": 0.9},
    "back_to_school": {"physical": 1.0, "online": 1.0},
    "mid_year_sale": {"physical": 1.0, "online": 1.0},
}
# Christmas Day: physical stores are closed (planned in the store calendar, store_calendar.py;
# zero sales rows are still reported).
HOLIDAY_EFFECT = {
    "New Year's Day": {"physical": 0.55, "online": 1.1},
    "Memorial Day": {"physical": 1.2, "online": 1.1},
    "Independence Day": {"physical": 0.8, "online": 1.0},
    "Labor Day": {"physical": 1.25, "online": 1.1},
    "Thanksgiving": {"physical": 0.4, "online": 1.3},
    "Christmas Day": {"physical": 0.0, "online": 0.5},
}
PROMO_UPLIFT = 1.25  # display and advertising effect of a promotion on top of its price cut
COMPETITOR_CROSS_ELASTICITY = 0.4
NEGBIN_SHAPE = 4.0  # gamma-Poisson overdispersion: var = mu + mu^2 / shape
Q4_PEAK_DOY = 344  # December 10
Q4_WIDTH_DAYS = 18.0
LAUNCH_RAMP_DAYS = 21.0  # new SKUs reach 63% of their demand after this many days
LAUNCH_RAMP_FLOOR = 0.15
RUNDOWN_DAYS = 90  # discontinued SKUs fade to RUNDOWN_FLOOR over their last days
RUNDOWN_FLOOR = 0.5

DEMAND_FORMULA = (
    "expected_units(s, k, d) = base(s, k) * weekly(format(s), dow(d)) * holiday(channel(s), d)"
    " * is_open(s, d) * regional_holiday(format(s), s, d) * store_event(s, d)"
    " * school_holiday(department(k), s, d)"
    " * season(category(k), d) * event(department(k), channel(s), d) * trend(department(k), d)"
    " * promo_uplift ** on_promotion(k, channel(s), d)"
    " * (unit_price(k, channel(s), d) / list_price(k)) ** elasticity(category(k))"
    " * (competitor_price(k, d) / regular_price(k, d)) ** competitor_cross_elasticity"
    " * lifecycle(k, d) * demand_shift(department(k), d)"
)

CAT_DEPT = np.array([DEPARTMENT_NAMES.index(d) for d, _ in CATEGORIES])
ELASTICITY = np.array([c.elasticity for _, c in CATEGORIES])


CHANNELS = ("physical", "online")


def channel(fmt: int) -> str:
    return "online" if FORMATS[fmt] == "online" else "physical"


def weekly(cal: TradingCalendar, fmt: int) -> np.ndarray:
    return np.array(WEEKLY_PROFILE[FORMATS[fmt]])[cal.dow - 1]


def holiday(cal: TradingCalendar, channel: str) -> np.ndarray:
    effects = np.array([HOLIDAY_EFFECT[h][channel] for h in HOLIDAYS] + [1.0])
    return effects[cal.holiday]  # index -1 picks the trailing 1.0


def seasonality(cal: TradingCalendar) -> np.ndarray:
    """[day, category] multiplier from the yearly cosine and the Q4 gifting bump."""
    amp = np.array([c.season_amplitude for _, c in CATEGORIES])
    peak = np.array([c.season_peak_doy for _, c in CATEGORIES])
    q4 = np.array([c.q4_bump for _, c in CATEGORIES])
    doy = cal.doy[:, None].astype(float)
    dist = np.abs(doy - Q4_PEAK_DOY)
    dist = np.minimum(dist, 365.25 - dist)
    log_s = amp * np.cos(2 * np.pi * (doy - peak) / 365.25) + q4 * np.exp(
        -0.5 * (dist / Q4_WIDTH_DAYS) ** 2
    )
    return np.exp(log_s)


def events(cal: TradingCalendar, channel: str) -> np.ndarray:
    """[day, department] multiplier of trading events in a channel (physical or online)."""
    table = np.ones((len(EVENTS) + 1, len(DEPARTMENT_NAMES)))
    for e, name in enumerate(EVENTS):
        w = EVENT_CHANNEL_WEIGHT[name][channel]
        table[e] = [1 + w * (EVENT_UPLIFT[name][d] - 1) for d in DEPARTMENT_NAMES]
    return table[cal.event]  # index -1 picks the trailing row of ones


def trend(cal: TradingCalendar) -> np.ndarray:
    """[day, department] slow growth."""
    rates = np.array([d.trend_per_year for d in DEPARTMENTS])
    return np.exp(cal.year_frac[:, None] * rates[None, :])


def lifecycle(launch: np.ndarray, last_day: np.ndarray, n_days: int) -> np.ndarray:
    """[day, sku] ramp-up after launch and fade-out before discontinuation."""
    day = np.arange(n_days)[:, None]
    age = np.maximum(day - launch[None, :], 0)
    ramp = LAUNCH_RAMP_FLOOR + (1 - LAUNCH_RAMP_FLOOR) * (1 - np.exp(-age / LAUNCH_RAMP_DAYS))
    left = last_day[None, :] - day
    fade = np.clip(RUNDOWN_FLOOR + (1 - RUNDOWN_FLOOR) * left / RUNDOWN_DAYS, RUNDOWN_FLOOR, 1.0)
    return ramp * fade


def demand_shift(
    cal: TradingCalendar, shift: DemandShift | None, sku_dept: np.ndarray
) -> np.ndarray | None:
    """[day, sku] multiplier of the unexpected shift, or None when there is none."""
    if shift is None:
        return None
    unknown = set(shift.departments or ()) - set(DEPARTMENT_NAMES)
    if unknown:
        raise ValueError(
            f"DemandShift.departments has unknown department(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join(DEPARTMENT_NAMES)}"
        )
    selected = np.ones(len(sku_dept), dtype=bool)
    if shift.departments:
        selected = np.isin(sku_dept, [DEPARTMENT_NAMES.index(d) for d in shift.departments])
    after = np.arange(cal.n_days) >= cal.index_of(shift.start)
    return np.where(after[:, None] & selected[None, :], shift.factor, 1.0)


def ground_truth() -> dict[str, Any]:
    return {
        "formula": DEMAND_FORMULA,
        "elasticity_by_category": {c.name: c.elasticity for _, c in CATEGORIES},
        "price_ratio_reference": (
            "elasticity applies to unit_price / products.list_price (the catalog list price); "
            "permanent price changes and promotions both move that ratio"
        ),
        "weekly_profile": {
            fmt: dict(zip(range(1, 8), profile, strict=True))
            for fmt, profile in WEEKLY_PROFILE.items()
        },
        "yearly_seasonality": {
            "formula": (
                "exp(amplitude * cos(2*pi*(doy - peak_doy)/365.25) + "
                f"q4_bump * exp(-0.5 * (circular_distance(doy, {Q4_PEAK_DOY}) / "
                f"{Q4_WIDTH_DAYS})^2))"
            ),
            "by_category": {
                c.name: {
                    "amplitude": c.season_amplitude,
                    "peak_doy": c.season_peak_doy,
                    "q4_bump": c.q4_bump,
                }
                for _, c in CATEGORIES
            },
        },
        "event_uplift_by_department": EVENT_UPLIFT,
        "event_channel_weight": EVENT_CHANNEL_WEIGHT,
        "event_uplift_formula": "1 + channel_weight * (department_uplift - 1)",
        "holiday_effect": HOLIDAY_EFFECT,
        "promo_uplift": PROMO_UPLIFT,
        "competitor_cross_elasticity": COMPETITOR_CROSS_ELASTICITY,
        "negbin_shape": NEGBIN_SHAPE,
        "trend_per_year_by_department": {d.name: d.trend_per_year for d in DEPARTMENTS},
        "lifecycle": {
            "launch_ramp_days": LAUNCH_RAMP_DAYS,
            "launch_ramp_floor": LAUNCH_RAMP_FLOOR,
            "rundown_days": RUNDOWN_DAYS,
            "rundown_floor": RUNDOWN_FLOOR,
        },
    }
