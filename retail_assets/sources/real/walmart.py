"""Walmart store-level weekly sales (45 stores x 143 weeks, 2010-02-05 to 2012-10-26).

Source: ``walmart_store_sales/Walmart_Store_sales.csv`` (see its SOURCE.md). One row per store
and week: total store sales in USD, a holiday-week flag and regional economic covariates.
Dates are day-first (``05-02-2010`` is 5 February 2010) and every week is dated by a Friday;
the loader checks both, so a month-first date fails loudly instead of landing in May.

What this dataset can and cannot say about the platform's raw feed contracts is documented on
``walmart_as_raw_feeds``: it is a weekly store-total benchmark, not a SKU-level sales feed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import polars as pl

from retail_assets.sources.contracts import STORES
from retail_assets.sources.real._csv import read_records, resolve_dataset_file

DATASET = "walmart_store_sales"
FOLDER = "walmart_store_sales"
FILE_NAME = "Walmart_Store_sales.csv"

HEADER = (
    "Store",
    "Date",
    "Weekly_Sales",
    "Holiday_Flag",
    "Temperature",
    "Fuel_Price",
    "CPI",
    "Unemployment",
)

SCHEMA: dict[str, pl.DataType] = {
    "store_id": pl.String(),
    "week_date": pl.Date(),
    "weekly_sales": pl.Float64(),
    "holiday_flag": pl.Boolean(),
    "temperature_f": pl.Float64(),
    "fuel_price": pl.Float64(),
    "cpi": pl.Float64(),
    "unemployment": pl.Float64(),
}

_FRIDAY = 4  # date.weekday()
_UNKNOWN = "unknown"


def walmart_store_id(store_number: int) -> str:
    """Platform store id for a Walmart store number: 1 -> ``W01``, 45 -> ``W45``."""
    return f"W{store_number:02d}"


def load_walmart_store_sales(path: Path | str | None = None) -> pl.DataFrame:
    """Load the weekly store sales panel, one row per (store_id, week_date).

    Columns: ``store_id`` (``W01``..``W45``), ``week_date`` (the Friday the source dates the
    week by), ``weekly_sales`` (USD), ``holiday_flag`` (the week contains Super Bowl, Labor
    Day, Thanksgiving or Christmas), ``temperature_f`` (deg F), ``fuel_price`` (USD/gallon),
    ``cpi`` and ``unemployment`` (%); sorted by store_id, week_date.

    Every field is validated; a bad value, a date that is not a day-first Friday, a record
    with the wrong number of fields or a second row for the same (Store, Date) raises
    ``RealDataFormatError`` naming the file, line and column. ``path`` may be the CSV or its
    folder; by default it is read from ``RETAIL_REAL_DATA_DIR``.
    """
    csv_path = resolve_dataset_file(DATASET, FOLDER, FILE_NAME, path)
    columns: dict[str, list] = {name: [] for name in SCHEMA}
    first_seen: dict[tuple[int, date], int] = {}
    for record in read_records(csv_path, HEADER):
        store = record.integer("Store")
        if store < 1:
            raise record.error("Store", f"expected a store number >= 1, got {store}")
        week = record.date("Date", "%d-%m-%Y", "a day-first date DD-MM-YYYY")
        if week.weekday() != _FRIDAY:
            raise record.error(
                "Date",
                f"expected a Friday (weeks are dated by their Friday, DD-MM-YYYY), got "
                f"{record.fields['Date']!r} = {week:%A} {week.isoformat()}; is it month-first?",
            )
        key = (store, week)
        if key in first_seen:
            raise record.error(
                None,
                f"duplicate (Store, Date) = ({store}, {record.fields['Date']}); "
                f"first seen on line {first_seen[key]}",
            )
        first_seen[key] = record.line
        columns["store_id"].append(walmart_store_id(store))
        columns["week_date"].append(week)
        columns["weekly_sales"].append(record.number("Weekly_Sales"))
        columns["holiday_flag"].append(record.choice("Holiday_Flag", {"0": False, "1": True}))
        columns["temperature_f"].append(record.number("Temperature"))
        columns["fuel_price"].append(record.number("Fuel_Price"))
        columns["cpi"].append(record.number("CPI"))
        columns["unemployment"].append(record.number("Unemployment"))
    return pl.DataFrame(columns, schema=SCHEMA).sort("store_id", "week_date")


def walmart_as_raw_feeds(
    df: pl.DataFrame, *, store_sizes_sqm: Mapping[str, float] | None = None
) -> dict[str, pl.DataFrame]:
    """Map the Walmart panel onto the raw feed contracts, as far as the data honestly allows.

    What maps:

    - ``stores`` (only when ``store_sizes_sqm`` is given, see below): ``store_id`` as in the
      panel, ``store_name`` ``"Walmart store <n>"``, ``region``/``format``/``city``
      ``"unknown"`` (the file has no location or store type; ``format`` is not guessed as
      "supercenter" or "hypermarket"), ``opened_date`` = the first week the store appears in
      the file. That is a documented proxy: the stores were trading before 2010-02-05, so the
      real opening date is on or before it and not in the data. ``size_sqm`` comes from
      ``store_sizes_sqm`` (store_id -> square metres), which must cover every store.

    What does not map, and is therefore left out rather than invented:

    - ``stores`` without sizes: ``size_sqm`` is a required Float64 in the contract and the
      file has no store size (0 would mean "online", NaN would slip past the null check), so
      by default no stores feed is returned. Real sizes exist elsewhere (the Kaggle
      "Walmart Recruiting" ``stores.csv`` has sizes in square feet); pass them in to get one.
    - ``sales``: the contract is daily units and price per store and SKU; this file only has
      weekly store totals in USD, no SKU, no units, no price.
    - ``calendar``: the contract is daily with named public holidays; the file only flags
      weeks, not which day is the holiday.
    - Temperature, fuel price, CPI and unemployment have no contract feed; use the panel
      from ``load_walmart_store_sales`` directly (e.g. for a weekly forecasting benchmark).
    """
    if store_sizes_sqm is None:
        return {}
    stores = (
        df.group_by("store_id").agg(pl.col("week_date").min().alias("opened_date")).sort("store_id")
    )
    missing = [s for s in stores["store_id"] if s not in store_sizes_sqm]
    if missing:
        raise ValueError(f"store_sizes_sqm has no size for store(s): {', '.join(missing)}")
    bad = {k: v for k, v in store_sizes_sqm.items() if not (math.isfinite(v) and v > 0)}
    if bad:
        raise ValueError(f"store_sizes_sqm must be positive square metres, got {bad}")
    frame = stores.with_columns(
        store_name=pl.format("Walmart store {}", pl.col("store_id").str.slice(1).cast(pl.Int32)),
        region=pl.lit(_UNKNOWN),
        format=pl.lit(_UNKNOWN),
        city=pl.lit(_UNKNOWN),
        size_sqm=pl.col("store_id").replace_strict(
            {k: float(v) for k, v in store_sizes_sqm.items()}, return_dtype=pl.Float64
        ),
    )
    return {"stores": STORES.conform(frame)}
