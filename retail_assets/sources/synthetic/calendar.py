"""The trading calendar: US public holidays and the retailer's own trading events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from retail_assets.sources.contracts import CALENDAR

EVENTS = ("black_friday", "cyber_monday", "christmas_peak", "back_to_school", "mid_year_sale")
HOLIDAYS = (
    "New Year's Day",
    "Memorial Day",
    "Independence Day",
    "Labor Day",
    "Thanksgiving",
    "Christmas Day",
)
EVENT_DEFINITIONS = {
    "black_friday": "the day after Thanksgiving",
    "cyber_monday": "the Monday after Thanksgiving",
    "christmas_peak": "December 15-24",
    "back_to_school": "August 10-23",
    "mid_year_sale": "7 days from the second Monday of July",
}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (0 = Monday) of a month; n = -1 for the last one."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = (date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def holidays(year: int) -> dict[date, str]:
    return {
        date(year, 1, 1): "New Year's Day",
        _nth_weekday(year, 5, 0, -1): "Memorial Day",
        date(year, 7, 4): "Independence Day",
        _nth_weekday(year, 9, 0, 1): "Labor Day",
        _nth_weekday(year, 11, 3, 4): "Thanksgiving",
        date(year, 12, 25): "Christmas Day",
    }


def events(year: int) -> dict[date, str]:
    thanksgiving = _nth_weekday(year, 11, 3, 4)
    out: dict[date, str] = {
        thanksgiving + timedelta(days=1): "black_friday",
        thanksgiving + timedelta(days=4): "cyber_monday",
    }
    for day in range(15, 25):
        out[date(year, 12, day)] = "christmas_peak"
    for day in range(10, 24):
        out[date(year, 8, day)] = "back_to_school"
    sale_start = _nth_weekday(year, 7, 0, 2)
    for offset in range(7):
        out[sale_start + timedelta(days=offset)] = "mid_year_sale"
    return out


@dataclass(frozen=True)
class TradingCalendar:
    """Per-day arrays over the window, shared by every feed that depends on the date."""

    start: date
    n_days: int
    epoch_days: np.ndarray  # days since 1970-01-01, int32
    dow: np.ndarray  # ISO day of week 1..7
    doy: np.ndarray  # day of year 1..366
    year_frac: np.ndarray  # years since the window start
    holiday: np.ndarray  # holiday name index into HOLIDAYS, -1 if none
    event: np.ndarray  # event index into EVENTS, -1 if none
    frame: pl.DataFrame

    @property
    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.n_days)]

    def index_of(self, day: date) -> int:
        """Day index in the window; clipped to [0, n_days] so a knob outside the window works."""
        return int(min(max((day - self.start).days, 0), self.n_days))

    def event_days(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.event == EVENTS.index(name))

    def holiday_days(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.holiday == HOLIDAYS.index(name))


def build_calendar(start: date, n_days: int) -> TradingCalendar:
    days = [start + timedelta(days=i) for i in range(n_days)]
    years = range(start.year, days[-1].year + 1)
    holiday_map = {d: n for y in years for d, n in holidays(y).items()}
    event_map = {d: n for y in years for d, n in events(y).items()}
    iso = [d.isocalendar() for d in days]
    holiday_names = [holiday_map.get(d) for d in days]
    event_names = [event_map.get(d) for d in days]
    frame = CALENDAR.conform(
        pl.DataFrame(
            {
                "date": days,
                "day_of_week": [c.weekday for c in iso],
                "week_of_year": [c.week for c in iso],
                "month": [d.month for d in days],
                "year": [d.year for d in days],
                "is_holiday": [n is not None for n in holiday_names],
                "holiday_name": holiday_names,
                "event_name": event_names,
            },
            schema_overrides={"holiday_name": pl.String, "event_name": pl.String},
        )
    )
    epoch0 = (start - date(1970, 1, 1)).days
    return TradingCalendar(
        start=start,
        n_days=n_days,
        epoch_days=np.arange(epoch0, epoch0 + n_days, dtype=np.int32),
        dow=np.array([c.weekday for c in iso], dtype=np.int8),
        doy=np.array([d.timetuple().tm_yday for d in days], dtype=np.int16),
        year_frac=np.arange(n_days) / 365.25,
        holiday=np.array([HOLIDAYS.index(n) if n else -1 for n in holiday_names], dtype=np.int8),
        event=np.array([EVENTS.index(n) if n else -1 for n in event_names], dtype=np.int8),
        frame=frame,
    )
