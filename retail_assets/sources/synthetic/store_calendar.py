"""The per-store calendar: planned closures, regional holidays, school holidays, local events.

The chain calendar (``calendar.py``) holds what every store shares. Stores also differ by where
they are and what happens to them: each region observes a few public holidays of its own (and
its physical stores close on one of them), schools break up on regional dates, every physical
store closes on Christmas Day and express stores on Thanksgiving, each physical store closes
for a week once in the window for a refit, and each celebrates its opening anniversary with a
three-day local event. The online store (region "National") is always open and has none of
these. The feed covers the history and the planning days ahead, like the chain calendar,
because a forecast for a future day needs that day's plan.

The demand multipliers here enter the sales simulation per store and day (the replenishment
planner knows them, like the chain calendar); a planned-closed day sells nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

from retail_assets.sources.contracts import STORE_CALENDAR
from retail_assets.sources.synthetic.calendar import _nth_weekday, holidays
from retail_assets.sources.synthetic.config import substream
from retail_assets.sources.synthetic.stores import FORMATS, Stores
from retail_assets.sources.synthetic.taxonomy import DEPARTMENT_NAMES

_MONDAY, _THURSDAY = 0, 3


def _fixed(month: int, day: int) -> Callable[[int], date]:
    return lambda year: date(year, month, day)


def _nth(month: int, weekday: int, n: int) -> Callable[[int], date]:
    return lambda year: _nth_weekday(year, month, weekday, n)


@dataclass(frozen=True)
class RegionalHoliday:
    name: str
    rule: Callable[[int], date]
    closes_stores: bool = False  # the region's physical stores close on it


# A few public holidays per region on top of the chain's (modelled on US state holidays).
REGIONAL_HOLIDAYS: dict[str, tuple[RegionalHoliday, ...]] = {
    "North": (
        RegionalHoliday("Lincoln's Birthday", _fixed(2, 12)),
        RegionalHoliday("Casimir Pulaski Day", _nth(3, _MONDAY, 1), closes_stores=True),
        RegionalHoliday("Truman Day", _fixed(5, 8)),
    ),
    "South": (
        RegionalHoliday("Texas Independence Day", _fixed(3, 2)),
        RegionalHoliday("San Jacinto Day", _fixed(4, 21), closes_stores=True),
        RegionalHoliday("Lyndon Baines Johnson Day", _fixed(8, 27)),
    ),
    "East": (
        RegionalHoliday("Evacuation Day", _fixed(3, 17)),
        RegionalHoliday("Patriots' Day", _nth(4, _MONDAY, 3), closes_stores=True),
        RegionalHoliday("Bennington Battle Day", _fixed(8, 16)),
    ),
    "West": (
        RegionalHoliday("Cesar Chavez Day", _fixed(3, 31)),
        RegionalHoliday("Pioneer Day", _fixed(7, 24), closes_stores=True),
        RegionalHoliday("Admission Day", _fixed(9, 9)),
    ),
}
# Chain public holidays on which physical stores of a format are planned closed.
CLOSED_ON_CHAIN_HOLIDAYS: dict[str, tuple[str, ...]] = {
    "hypermarket": ("Christmas Day",),
    "supermarket": ("Christmas Day",),
    "express": ("Christmas Day", "Thanksgiving"),
}
# School holidays per region: (first, last) day as (month, day), inclusive; the spring break is
# the week from the Monday of the given ISO week. Winter break (Dec 22 - Jan 2) is the same
# everywhere.
SCHOOL_SUMMER: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "North": ((6, 15), (8, 31)),
    "South": ((5, 25), (8, 8)),
    "East": ((6, 22), (9, 4)),
    "West": ((6, 8), (8, 20)),
}
SCHOOL_SPRING_ISO_WEEK = {"North": 12, "South": 10, "East": 15, "West": 13}
SCHOOL_WINTER = ((12, 22), (1, 2))
REFIT_DAYS = 7  # every physical store closes once in the window for a refit of this length
# The first physical store's refit is planned ahead: it starts this many days after the last
# trading day, inside every forecast horizon (28 days, 8 weeks), so a forecast has a planned
# closure to honour (zero for those days) and the tests can see it does.
PLANNED_REFIT_AFTER_DAYS = 7
ANNIVERSARY_EVENT = "store_anniversary"
ANNIVERSARY_DAYS = 3  # from the opening anniversary on

# Demand effects at physical stores (the online store has none of these days).
REGIONAL_HOLIDAY_EFFECT = {"hypermarket": 1.2, "supermarket": 1.1, "express": 0.7}
SCHOOL_HOLIDAY_EFFECT = {d: 1.0 for d in DEPARTMENT_NAMES} | {
    "Toys": 1.25,
    "Sports & Fitness": 1.12,
    "Outdoor": 1.12,
}
ANNIVERSARY_UPLIFT = 1.3


@dataclass(frozen=True)
class StoreCalendar:
    """[store, day] arrays over the history plus the planning days, and the feed frame."""

    is_open: np.ndarray  # bool
    regional_holiday: np.ndarray  # bool
    school_holiday: np.ndarray  # bool (False for the online store)
    store_event: np.ndarray  # bool
    refit_start: dict[str, date]
    frame: pl.DataFrame

    def store_effect(self, s: int, fmt: str, n_days: int) -> np.ndarray:
        """[day] multiplier of store s over the first n_days (0 on planned-closed days)."""
        effect = np.where(self.regional_holiday[s], REGIONAL_HOLIDAY_EFFECT.get(fmt, 1.0), 1.0)
        effect = effect * np.where(self.store_event[s], ANNIVERSARY_UPLIFT, 1.0)
        return (effect * self.is_open[s])[:n_days]

    def school_effect(self, s: int, sku_dept: np.ndarray, n_days: int) -> np.ndarray:
        """[day, sku] multiplier of school holidays at store s over the first n_days."""
        by_dept = np.array([SCHOOL_HOLIDAY_EFFECT[d] for d in DEPARTMENT_NAMES])[sku_dept]
        return np.where(self.school_holiday[s, :n_days, None], by_dept[None, :], 1.0)


def _in_window(day: date, first: tuple[int, int], last: tuple[int, int]) -> bool:
    key = (day.month, day.day)
    if first <= last:
        return first <= key <= last
    return key >= first or key <= last  # wraps the new year


def _school_holiday(region: str, day: date) -> bool:
    if _in_window(day, *SCHOOL_WINTER) or _in_window(day, *SCHOOL_SUMMER[region]):
        return True
    spring = date.fromisocalendar(day.year, SCHOOL_SPRING_ISO_WEEK[region], 1)
    return spring <= day < spring + timedelta(days=7)


def build_store_calendar(
    seed: int, stores: Stores, start: date, n_days: int, history_days: int | None = None
) -> StoreCalendar:
    """The per-store calendar over ``n_days`` from ``start`` (history plus planning days;
    ``history_days`` of them traded, which places one refit in the planning days)."""
    rng = substream(seed, "store_calendar")
    days = [start + timedelta(days=i) for i in range(n_days)]
    years = range(start.year, days[-1].year + 1)
    chain_holidays = {d: name for y in years for d, name in holidays(y).items()}
    shape = (stores.n, n_days)
    is_open = np.ones(shape, dtype=bool)
    regional = np.zeros(shape, dtype=bool)
    school = np.zeros(shape, dtype=bool)
    event = np.zeros(shape, dtype=bool)
    holiday_names: list[list[str | None]] = [[None] * n_days for _ in range(stores.n)]
    school_values: list[list[bool | None]] = [[None] * n_days for _ in range(stores.n)]
    event_names: list[list[str | None]] = [[None] * n_days for _ in range(stores.n)]
    opened = stores.frame["opened_date"].to_list()
    refit_start: dict[str, date] = {}
    planned_refit_store = None
    for s in range(stores.n):
        fmt = FORMATS[int(stores.format[s])]
        region = stores.region[s]
        # Drawn for every store (the online one too) so a store's refit week does not depend on
        # the formats of the stores before it.
        refit = int(rng.integers(0, n_days - REFIT_DAYS + 1))
        if fmt == "online":
            continue
        if planned_refit_store is None and history_days is not None:
            planned_refit_store = s
            refit = min(history_days + PLANNED_REFIT_AFTER_DAYS, n_days - REFIT_DAYS)
        local = {h.rule(y): h for y in years for h in REGIONAL_HOLIDAYS[region]}
        anniversaries = set()
        for y in years:
            month, day = opened[s].month, opened[s].day
            first = date(y, 3, 1) if (month, day) == (2, 29) else date(y, month, day)
            anniversaries.update(first + timedelta(days=k) for k in range(ANNIVERSARY_DAYS))
        refit_start[stores.store_ids[s]] = days[refit]
        for i, day in enumerate(days):
            school_values[s][i] = school[s, i] = _school_holiday(region, day)
            if day in local:
                regional[s, i] = True
                holiday_names[s][i] = local[day].name
                if local[day].closes_stores:
                    is_open[s, i] = False
            if chain_holidays.get(day) in CLOSED_ON_CHAIN_HOLIDAYS[fmt]:
                is_open[s, i] = False
            if day in anniversaries:
                event[s, i] = True
                event_names[s][i] = ANNIVERSARY_EVENT
        is_open[s, refit : refit + REFIT_DAYS] = False
    frame = STORE_CALENDAR.conform(
        pl.DataFrame(
            {
                "store_id": np.repeat(stores.store_ids, n_days),
                "date": days * stores.n,
                "is_open": is_open.ravel(),
                "holiday_name": [n for row in holiday_names for n in row],
                "school_holiday": [v for row in school_values for v in row],
                "event_name": [n for row in event_names for n in row],
            },
            schema_overrides={
                "holiday_name": pl.String,
                "school_holiday": pl.Boolean,
                "event_name": pl.String,
            },
        )
    )
    return StoreCalendar(is_open, regional, school, event, refit_start, frame)


def ground_truth(calendar: StoreCalendar) -> dict[str, Any]:
    return {
        "regional_holidays": {
            region: [{"name": h.name, "closes_physical_stores": h.closes_stores} for h in listed]
            for region, listed in REGIONAL_HOLIDAYS.items()
        },
        "closed_on_chain_holidays_by_format": CLOSED_ON_CHAIN_HOLIDAYS,
        "refit_days": REFIT_DAYS,
        "refit_start_by_store": calendar.refit_start,
        "school_holidays": {
            "summer_by_region": SCHOOL_SUMMER,
            "spring_break_iso_week_by_region": SCHOOL_SPRING_ISO_WEEK,
            "winter": SCHOOL_WINTER,
        },
        "store_event": {
            "name": ANNIVERSARY_EVENT,
            "days_from_opening_anniversary": ANNIVERSARY_DAYS,
        },
        "effects_at_physical_stores": {
            "planned_closed": 0.0,
            "regional_holiday_by_format": REGIONAL_HOLIDAY_EFFECT,
            "school_holiday_by_department": SCHOOL_HOLIDAY_EFFECT,
            "store_anniversary": ANNIVERSARY_UPLIFT,
        },
        "online_store": "always open; no regional holidays, school holidays (null) or events",
        "planned_closed_store_days": int((~calendar.is_open).sum()),
    }
