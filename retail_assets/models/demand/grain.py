"""The time grain of a demand series: daily (the default) or weekly (many retailers plan and
report by week). One family, one feature definition, one lifecycle: the grain only sets the
period length, the seasons, the horizons and the windows, and names the history features.

    grain   period   within-year season   year   horizons   lags           rolling windows
    day     1 day    7 (weekday)          364    1..28      1, 7, 14, 28   7, 28, 91 days
    week    7 days   none                 52     1..8       1, 2, 4, 8     4, 13, 26 weeks

Chosen with `RETAIL_DEMAND_GRAIN` (`day` or `week`; see `retail_assets/settings.py`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Grain:
    name: str
    days: int
    """Days per period."""
    season: int
    """Periods per within-year season (the weekday cycle of daily data); 1 = none."""
    year: int
    """Periods per year, a whole number of seasons (364 days keep the weekday)."""
    max_horizon: int
    lags: tuple[int, ...]
    """Lags in periods back from the target's origin (1 = the origin period itself)."""
    windows: tuple[int, int, int]
    """Short, medium and long rolling windows in periods, ending at the origin."""
    unit: str
    same_period_window: int
    """Periods of the same-period-last-year mean, centred on one year before the target."""
    profile_seasons: int
    """Seasons of history in the promotion profile baseline."""
    every_horizon: bool = False
    """Training examples: every horizon 1..max_horizon of each target period (True), or one
    horizon drawn per target (False: daily data are large enough, and 28 copies of each row
    would make the training set 28 times the window)."""

    @property
    def has_season(self) -> bool:
        return self.season > 1

    # -- feature names ------------------------------------------------------------------------

    def lag(self, k: int) -> str:
        return f"units_lag_{k}"

    def mean(self, window: int) -> str:
        return f"units_mean_{window}{self.unit}"

    @property
    def medium(self) -> int:
        return self.windows[1]

    @property
    def history_count(self) -> str:
        return f"{self.name}s_of_history"

    @property
    def year_lag(self) -> str:
        return self.lag(self.year)

    @property
    def medium_last_year(self) -> str:
        return f"{self.mean(self.medium)}_last_year"

    @property
    def seasonal_naive_column(self) -> str:
        """The same point of the last season known at the origin: daily, the same weekday of
        the last observed week; weekly (no within-year season), the last observed week."""
        return "units_same_weekday_last" if self.has_season else self.lag(1)

    @property
    def medium_mean(self) -> str:
        """The medium rolling mean at the origin: every baseline's last fallback."""
        return self.mean(self.medium)

    @property
    def scale_lag(self) -> int:
        """Periods between the two values of MASE's in-sample naive differences: one season
        (daily: a week), or one period when there is no within-year season."""
        return self.season if self.has_season else 1

    @property
    def horizon_bucket(self) -> int:
        """Horizons are reported in buckets of one season (daily: weeks h1-7, h8-14, ...)."""
        return self.season if self.has_season else 1

    def periods(self, n: int) -> str:
        """'28 days', '8 weeks'."""
        return f"{n} {self.name}{'' if n == 1 else 's'}"

    def origin_history_columns(self) -> list[str]:
        m = self.medium
        return [
            *(self.lag(k) for k in self.lags),
            *(self.mean(w) for w in self.windows),
            f"units_std_{m}{self.unit}",
            f"zero_sale_share_{m}{self.unit}",
            f"stockout_share_{m}{self.unit}",
            self.history_count,
            "competitor_min_price",
        ]

    def target_history_columns(self) -> list[str]:
        seasonal = (
            ["units_same_weekday_last", "units_same_weekday_mean_4w"] if self.has_season else []
        )
        return [
            self.year_lag,
            "units_mean_same_week_last_year",
            *seasonal,
            self.medium_last_year,
            "units_yoy_level_ratio",
        ]

    def year_ago_columns(self) -> list[str]:
        return [
            self.year_lag,
            "units_mean_same_week_last_year",
            self.medium_last_year,
            "units_yoy_level_ratio",
            "baseline_last_year_scaled",
        ]


DAILY = Grain(
    name="day",
    days=1,
    season=7,
    year=364,
    max_horizon=28,
    lags=(1, 7, 14, 28),
    windows=(7, 28, 91),
    unit="d",
    same_period_window=7,
    profile_seasons=8,
)
# Weekly: 8 weeks ahead (a planning cycle); windows of a month, a quarter and half a year; the
# same week last year is that one week (52 weeks keep the weekday, so a holiday week lines up
# with last year's; a three-week mean blurred the Thanksgiving and Christmas peaks: on Walmart
# the level-scaled last year scored WAPE 0.0609 smoothed vs 0.0429 unsmoothed).
WEEKLY = Grain(
    name="week",
    days=7,
    season=1,
    year=52,
    max_horizon=8,
    lags=(1, 2, 4, 8),
    windows=(4, 13, 26),
    unit="w",
    same_period_window=1,
    profile_seasons=8,
    # A weekly feed is a seventh of a daily one (Walmart: 45 series x 2.7 years): every horizon
    # of every target is an example.
    every_horizon=True,
)
GRAINS = {g.name: g for g in (DAILY, WEEKLY)}


def grain_named(name: str) -> Grain:
    try:
        return GRAINS[name]
    except KeyError:
        raise ValueError(
            f"unknown demand grain {name!r}; use one of: {', '.join(GRAINS)}"
        ) from None


def grain_for_period(days: int) -> Grain:
    """The grain whose period is `days` long (serving infers it from its feature table)."""
    for grain in GRAINS.values():
        if grain.days == days:
            return grain
    raise ValueError(f"no demand grain has a period of {days} day(s)")
