"""Walmart store-level weekly sales (45 stores x 143 weeks, 2010-02-05 to 2012-10-26).

Source: ``walmart_store_sales/Walmart_Store_sales.csv`` (see its SOURCE.md). One row per store
and week: total store sales in USD, a holiday-week flag and regional economic covariates.
Dates are day-first (``05-02-2010`` is 5 February 2010) and every week is dated by a Friday;
the loader checks both, so a month-first date fails loudly instead of landing in May.

What this dataset can and cannot say about the platform's raw feed contracts is documented on
``walmart_as_raw_feeds``: it gives a ``stores`` and a chain ``calendar`` feed, but it is a
weekly store-total benchmark, not a SKU-level sales feed. ``derive_landing_files`` writes the
files `retail land` needs for a weekly demand-only retailer (the sales feed is the raw CSV
with ``benchmarks/landing/walmart_store_sales/sales.yaml``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from retail_assets.sources.contracts import CALENDAR, STORES
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


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (0 = Monday) of a month."""
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


# The days behind Holiday_Flag (SOURCE.md: Super Bowl, Labor Day, Thanksgiving, Christmas).
# Super Bowl Sundays are historical dates (no fixed rule across the years), so only the years
# the file covers are listed; a week flagged in another year is an error, not a guess.
SUPER_BOWL = {2010: date(2010, 2, 7), 2011: date(2011, 2, 6), 2012: date(2012, 2, 5)}


def walmart_holidays(year: int) -> dict[date, str]:
    """The four flagged holidays of a year, by date (Super Bowl for 2010-2012 only)."""
    days = {
        _nth_weekday(year, 9, 0, 1): "Labor Day",
        _nth_weekday(year, 11, 3, 4): "Thanksgiving",
        date(year, 12, 25): "Christmas Day",
    }
    if year in SUPER_BOWL:
        days[SUPER_BOWL[year]] = "Super Bowl"
    return days


def walmart_as_raw_feeds(
    df: pl.DataFrame, *, store_sizes_sqm: Mapping[str, float] | None = None
) -> dict[str, pl.DataFrame]:
    """Map the Walmart panel onto the raw feed contracts, as far as the data honestly allows.

    What maps:

    - ``stores``: ``store_id`` as in the panel, ``store_name`` ``"Walmart store <n>"``;
      ``region`` and ``format`` ``"unknown"`` (both are required by the contract - the demand
      model groups and segments by them - and the file has neither; ``format`` is not guessed
      as "supercenter"); ``city`` and ``opened_date`` null (not in the file: the stores traded
      before 2010-02-05, so the first week is no opening date); ``size_sqm`` from
      ``store_sizes_sqm`` (store_id -> square metres, e.g. the Kaggle "Walmart Recruiting"
      ``stores.csv`` sizes converted from square feet) when given, else null. A size map must
      cover every store and hold positive numbers.
    - ``calendar``: one row per day of the weeks in the file (the Saturday before the first
      Friday to the last Friday; weeks are dated by their Friday and run Saturday-Friday).
      ``Holiday_Flag`` marks weeks; the flagged day is the Super Bowl Sunday, Labor Day,
      Thanksgiving or Christmas Day falling in the week (SOURCE.md), which must be exactly one
      per flagged week, none in an unflagged week, and the flags must be the same for every
      store (a chain-wide calendar) - otherwise ``ValueError`` names the week. ``event_name``
      null: the file names no trading events. The calendar ends with the data; forecasts past
      2012-10-26 need it extended.

    What does not map, and is therefore left out rather than invented:

    - ``sales``: the contract is daily per store and SKU (units, sales value or both); this
      file has weekly store totals in USD. A weekly total cannot be split into days or SKUs.
    - ``store_calendar``: the holiday flags are the same for every store; there are no
      closures, regional holidays or local events.
    - ``promotion_plan``: this store-level copy has no MarkDown columns (the Kaggle
      competition's ``features.csv`` has MarkDown1-5 per store and week from November 2011,
      anonymised amounts with no SKU or discount, which the per-SKU plan contract cannot
      hold either).
    - Temperature, fuel price, CPI and unemployment have no contract feed; use the panel
      from ``load_walmart_store_sales`` directly (e.g. for a weekly forecasting benchmark).
    """
    return {"stores": _stores(df, store_sizes_sqm), "calendar": _calendar(df)}


def _stores(df: pl.DataFrame, store_sizes_sqm: Mapping[str, float] | None) -> pl.DataFrame:
    stores = df.select("store_id").unique().sort("store_id")
    if store_sizes_sqm is not None:
        missing = [s for s in stores["store_id"] if s not in store_sizes_sqm]
        if missing:
            raise ValueError(f"store_sizes_sqm has no size for store(s): {', '.join(missing)}")
        bad = {k: v for k, v in store_sizes_sqm.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"store_sizes_sqm must be positive square metres, got {bad}")
        size = pl.col("store_id").replace_strict(
            {k: float(v) for k, v in store_sizes_sqm.items()}, return_dtype=pl.Float64
        )
    else:
        size = pl.lit(None, dtype=pl.Float64)
    frame = stores.with_columns(
        store_name=pl.format("Walmart store {}", pl.col("store_id").str.slice(1).cast(pl.Int32)),
        region=pl.lit(_UNKNOWN),
        format=pl.lit(_UNKNOWN),
        city=pl.lit(None, dtype=pl.String),
        opened_date=pl.lit(None, dtype=pl.Date),
        size_sqm=size,
    )
    return STORES.conform(frame)


def _calendar(df: pl.DataFrame, weeks_ahead: int = 0) -> pl.DataFrame:
    weeks = df.group_by("week_date").agg(
        pl.col("holiday_flag").any().alias("flag"), pl.col("holiday_flag").n_unique().alias("n")
    )
    mixed = weeks.filter(pl.col("n") > 1)["week_date"].sort().to_list()
    if mixed:
        raise ValueError(
            "Holiday_Flag differs between stores in the week(s) of "
            f"{', '.join(d.isoformat() for d in mixed)}: not a chain-wide calendar"
        )
    flagged = dict(weeks.select("week_date", "flag").iter_rows())
    first, last = min(flagged) - timedelta(days=6), max(flagged)
    years = range(first.year, last.year + 1)
    named = {d: n for y in years for d, n in walmart_holidays(y).items() if first <= d <= last}
    for week, flag in sorted(flagged.items()):
        inside = [d for d in named if week - timedelta(days=6) <= d <= week]
        if flag and len(inside) != 1:
            raise ValueError(
                f"week of {week.isoformat()} is flagged as a holiday week but holds "
                f"{len(inside)} of the known holidays ({', '.join(map(str, inside)) or 'none'})"
            )
        if not flag and inside:
            raise ValueError(
                f"week of {week.isoformat()} holds {named[inside[0]]} ({inside[0]}) but is "
                "not flagged as a holiday week"
            )
    end = last + timedelta(weeks=weeks_ahead)
    if weeks_ahead:
        # Past the data the holidays come from their rules; a Super Bowl Sunday has none.
        for year in range(last.year, end.year + 1):
            if year not in SUPER_BOWL and last < date(year, 2, 14) and end >= date(year, 1, 10):
                raise ValueError(
                    f"the calendar would run to {end} through the Super Bowl of {year}, "
                    "whose date is not known here (add it to SUPER_BOWL)"
                )
            named |= {d: n for d, n in walmart_holidays(year).items() if last < d <= end}
    days = pl.date_range(first, end, interval="1d", eager=True).alias("date")
    frame = pl.DataFrame(days).with_columns(
        day_of_week=pl.col("date").dt.weekday(),
        week_of_year=pl.col("date").dt.week(),
        month=pl.col("date").dt.month(),
        year=pl.col("date").dt.year(),
        holiday_name=pl.col("date").replace_strict(named, default=None, return_dtype=pl.String),
        event_name=pl.lit(None, dtype=pl.String),
    )
    return CALENDAR.conform(frame.with_columns(is_holiday=pl.col("holiday_name").is_not_null()))


# --- files for `retail land` ----------------------------------------------------------------

STORE_TOTAL_SKU = "STORE-TOTAL"
"""The one SKU of the Walmart sales feed: the file holds store totals, not items."""
CALENDAR_WEEKS_AHEAD = 8
"""Weeks of calendar past the data, so forecasts of the next 8 weeks (the weekly grain's
longest horizon) know their holidays."""


def derive_landing_files(
    out_dir: Path | str, path: Path | str | None = None, *, weeks_ahead: int = CALENDAR_WEEKS_AHEAD
) -> dict[str, Path]:
    """Write what the raw file cannot give `retail land` row for row, and return the file to
    land per feed (with ``benchmarks/landing/walmart_store_sales/<feed>.yaml``):

    - ``sales``: the raw CSV itself - one row per store and week maps onto a sales row
      (``sales.yaml``: ``Store`` is the store id, the date is day-first, ``Weekly_Sales`` is
      the sales value in USD with ``measure: value``, the SKU is the constant
      ``STORE-TOTAL``). Land it with ``RETAIL_DEMAND_GRAIN=week``: weekly rows dated on the
      Friday that ends their Saturday-Friday week.
    - ``stores.csv``: one row per store number (``Store``, as the sales file names stores) and
      ``store_name`` "Walmart store <n>"; ``stores.yaml`` sets region and format "unknown"
      (required; the file has neither) and leaves city, opening date and size null.
    - ``calendar.csv``: ``date`` and ``holiday_name`` for every day of the file's weeks (the
      Saturday before the first Friday to the last Friday) plus ``weeks_ahead`` weeks; the
      weekly ``Holiday_Flag`` is placed on the holiday it stands for (``walmart_as_raw_feeds``
      checks each flagged week holds exactly one). Past the data the rule-based holidays
      (Labor Day, Thanksgiving, Christmas Day) are listed; a Super Bowl Sunday not in
      ``SUPER_BOWL`` is an error, not a guess.
    - ``products.csv``: the one pseudo-product ``STORE-TOTAL`` with a title, a description
      saying what it is and its attributes (currency USD); ``products.yaml`` sets the
      hierarchy and ``list_price`` 1.0 - the series is measured in dollars, so a "unit" is
      one dollar of sales.

    Stores and calendar are derived with ``walmart_as_raw_feeds`` (so every check of that
    mapping applies); the store ids are the file's store numbers (``1``..``45``), the ids the
    sales file gives, not the ``W01`` of ``load_walmart_store_sales``.
    """
    csv_path = resolve_dataset_file(DATASET, FOLDER, FILE_NAME, path)
    panel = load_walmart_store_sales(csv_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stores = _stores(panel, None).select(
        pl.col("store_id").str.slice(1).cast(pl.Int32).alias("Store"), "store_name"
    )
    calendar = _calendar(panel, weeks_ahead).select("date", "holiday_name")
    products = pl.DataFrame(
        {
            "sku": [STORE_TOTAL_SKU],
            "title": ["Walmart store total"],
            "description": [
                "All sales of a Walmart store in a week, in US dollars (the source has no "
                "department or item breakdown)."
            ],
            "attributes": [json.dumps({"currency": "USD", "measure": "sales value"})],
        }
    )
    files = {
        "sales": csv_path,
        "stores": out / "stores.csv",
        "calendar": out / "calendar.csv",
        "products": out / "products.csv",
    }
    stores.write_csv(files["stores"])
    calendar.write_csv(files["calendar"])
    products.write_csv(files["products"])
    return files
