"""The simulated world: generated once for the whole horizon, revealed one day at a time.

The generator draws a world for a fixed window. Regenerating it one day longer every day
would redraw the whole history (its random streams run over the window), so yesterday's sales
would change under the models that were trained on them. Instead the simulation generates the
world once, through the simulation's last day, with the window's first day where the base
platform's is, and lands each day the part of every feed a retailer would have by that
morning:

* transactional feeds up to the day (sales, inventory, competitor prices, clickstream,
  payments by their date or timestamp);
* fraud labels whose `label_available_at` has passed: chargebacks arrive weeks late, so
  recent payments stay unlabelled exactly as in production;
* master data that exists by then: products launched, stores opened, customers signed up;
* what is planned ahead: the calendar, the store calendar and the promotion plan up to
  `PLANNING_DAYS` ahead (forecasts of the next days need them).

A scenario may hide SKUs until a launch day (`new_product_wave`): they, and every row about
them, appear on that day with that launch date.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from retail_assets.sources.synthetic import GeneratorConfig, Knobs, generate
from retail_assets.sources.synthetic.config import SCALE_CONFIGS, ScaleConfig
from retail_assets.sources.synthetic.generate import CALENDAR_PLANNING_DAYS

PLANNING_DAYS = CALENDAR_PLANNING_DAYS

# How each feed is cut at the end of a day: (column, kind); kind "ts" compares a timestamp with
# the next midnight, "date" a date with the day, "ahead" a date with the day + PLANNING_DAYS.
CUT: dict[str, tuple[str, str]] = {
    "sales": ("date", "date"),
    "inventory": ("snapshot_date", "date"),
    "competitor_prices": ("date", "date"),
    "clickstream": ("event_ts", "ts"),
    "payments": ("event_ts", "ts"),
    "fraud_labels": ("label_available_at", "ts"),
    "products": ("launch_date", "date"),
    "stores": ("opened_date", "date"),
    "customers": ("signup_date", "date"),
    "policy_documents": ("effective_date", "date"),
    "calendar": ("date", "ahead"),
    "store_calendar": ("date", "ahead"),
    "promotion_plan": ("start_date", "ahead"),
}
# Rows about a SKU, by feed: hidden with it until its launch.
SKU_FEEDS = ("sales", "inventory", "competitor_prices", "clickstream", "products", "promotion_plan")


@dataclass
class World:
    """A generated world through `last_day`, revealed up to a day with `feeds_through`."""

    config: GeneratorConfig
    feeds: dict[str, pl.DataFrame]
    ground_truth: dict[str, Any]
    launches: dict[str, date] = field(default_factory=dict)
    """SKUs hidden until their (moved) launch date."""

    @property
    def first_day(self) -> date:
        return self.config.start_date

    @property
    def last_day(self) -> date:
        return self.config.end_date

    def feeds_through(self, day: date) -> dict[str, pl.DataFrame]:
        """Every feed as a retailer has it at the end of `day`."""
        midnight = datetime.combine(day + timedelta(days=1), datetime.min.time())
        out = {}
        for name, frame in self.feeds.items():
            column, kind = CUT[name]
            if kind == "ts":
                keep = pl.col(column) < midnight
            elif kind == "ahead":
                keep = pl.col(column) <= day + timedelta(days=PLANNING_DAYS)
            else:
                keep = pl.col(column) <= day
            if name == "products":
                keep = keep | pl.col(column).is_null()
            hidden = [sku for sku, launch in self.launches.items() if launch > day]
            if hidden and name in SKU_FEEDS and "sku" in frame.columns:
                keep = keep & ~pl.col("sku").is_in(hidden).fill_null(False)
            out[name] = frame.filter(keep)
        return out

    def day_of(self, name: str, day: date) -> pl.DataFrame:
        """The rows of one transactional feed dated `day` (the day's traffic)."""
        column, kind = CUT[name]
        frame = self.feeds[name]
        if kind == "ts":
            return frame.filter(pl.col(column).dt.date() == day)
        return frame.filter(pl.col(column) == day)

    def add_responses(self, name: str, rows: pl.DataFrame) -> None:
        """Customers' responses to what serving answered (their clicks, carts and purchases on a
        recommendation list) join the feed: they land with it from the next night on, as a
        retailer's clickstream carries them, and the platform's monitoring judges them."""
        if rows.height:
            frame = self.feeds[name]
            self.feeds[name] = pl.concat(
                [frame, rows.select(frame.columns)], how="vertical_relaxed"
            )

    def launch_wave(self, day: date, share: float) -> list[str]:
        """Hide the `share` of SKUs with the most sales until `day`, then launch them at once
        (their launch date becomes `day`; their history before it is dropped: a new product
        has none). Returns the SKUs."""
        sales = self.feeds["sales"].group_by("sku").agg(pl.col("units_sold").sum().alias("u"))
        products = self.feeds["products"]
        n = max(2, round(products.height * share))
        chosen = sales.sort(["u", "sku"], descending=[True, False])["sku"].head(n).to_list()
        for name in SKU_FEEDS:
            column, kind = CUT[name]
            frame = self.feeds[name]
            if name == "products":
                frame = frame.with_columns(
                    pl.when(pl.col("sku").is_in(chosen))
                    .then(pl.lit(day))
                    .otherwise(pl.col("launch_date"))
                    .alias("launch_date")
                )
            elif kind != "ahead":
                before = pl.col(column).dt.date() < day if kind == "ts" else pl.col(column) < day
                frame = frame.filter(~(pl.col("sku").is_in(chosen).fill_null(False) & before))
            self.feeds[name] = frame
        self.launches.update({sku: day for sku in chosen})
        return chosen


def world_scale(scale: str, extra_days: int) -> ScaleConfig:
    """The base scale with a window `extra_days` longer: the world starts where the base
    platform's does and runs through the simulation's last day."""
    base = SCALE_CONFIGS[scale]
    return replace(base, n_days=base.n_days + extra_days)


def build_world(scale: str, seed: int, base_end: date, days: int, knobs: Knobs) -> World:
    """Generate the world from the base window's first day through `base_end + days`."""
    config = GeneratorConfig(
        scale=world_scale(scale, days),
        seed=seed,
        knobs=knobs,
        end_date=base_end + timedelta(days=days),
    )
    result = generate(config)
    return World(config=config, feeds=dict(result.feeds), ground_truth=result.ground_truth)
