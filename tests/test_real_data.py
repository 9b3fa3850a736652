"""Tests for the real public dataset loaders (retail_assets.sources.real).

The datasets live outside the repository (``RETAIL_REAL_DATA_DIR``, default
``/work/shared/data/real``); tests that need one skip with the path they looked at when it is
absent. Malformed-file tests write a copy of the real file with one line broken into
``tmp_path`` and check the error names the file, the physical line and the column.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from retail_assets.cli import main as cli_main
from retail_assets.domains import DOMAINS
from retail_assets.settings import get_settings
from retail_assets.sources.contracts import (
    CALENDAR,
    CUSTOMERS,
    FEEDS,
    PRODUCTS,
    SALES,
    STORES,
    FeedContract,
)
from retail_assets.sources.land import load_mapping
from retail_assets.sources.landing_zone import LandingZone
from retail_assets.sources.real import (
    CREDITCARD_TRUE_FRAUD_RATE,
    REAL_DATASETS,
    RealDataFormatError,
    RealDataMissingError,
    load_amazon_catalog,
    load_creditcard_fraud,
    load_online_retail,
    load_online_retail_lines,
    load_walmart_store_sales,
    online_retail_as_raw_feeds,
    online_retail_exclusions,
    real_dataset_path,
    walmart_as_raw_feeds,
)
from retail_assets.sources.real.landing import DERIVATIONS, MAPPINGS_DIR, landing_plan, mapping_path
from retail_assets.sources.real.online_retail import NON_PRODUCT_CODES

WALMART = "walmart_store_sales"
ONLINE_RETAIL = "uci_online_retail_sample"
AMAZON = "amazon_india_product_catalog"
CREDITCARD = "ulb_creditcard_fraud_sample"


@pytest.fixture
def real_file() -> Callable[[str], Path]:
    """Return a function giving a dataset's CSV path, skipping the test when it is absent."""

    def _require(name: str) -> Path:
        dataset = REAL_DATASETS[name]
        path = get_settings().real_data_dir / dataset.folder / dataset.file_name
        if not path.is_file():
            pytest.skip(f"real dataset not found at {path}; set RETAIL_REAL_DATA_DIR")
        return path

    return _require


def _broken_copy(src: Path, tmp_path: Path, line: int, edit: Callable[[str], str]) -> Path:
    """Copy ``src`` into ``tmp_path`` with physical line ``line`` (1-based) replaced by
    ``edit(old_line)``; line endings (LF or CRLF) are preserved."""
    lines = src.read_bytes().decode("utf-8").split("\n")
    ending = "\r" if lines[line - 1].endswith("\r") else ""
    old = lines[line - 1].removesuffix("\r")
    new = edit(old)
    assert new != old, "the edit did not change the line"
    lines[line - 1] = new + ending
    dst = tmp_path / src.name
    dst.write_bytes("\n".join(lines).encode("utf-8"))
    return dst


def _set_field(index: int, value: str) -> Callable[[str], str]:
    """Edit for unquoted CSV lines (Walmart, creditcard): replace field ``index``."""

    def edit(line: str) -> str:
        fields = line.split(",")
        fields[index] = value
        return ",".join(fields)

    return edit


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(line: str) -> str:
        assert old in line, f"{old!r} not in line {line!r}"
        return line.replace(old, new, 1)

    return edit


def _assert_conforms(frame: pl.DataFrame, contract: FeedContract) -> None:
    assert frame.schema == pl.Schema(contract.schema)
    nulls = {c: frame[c].null_count() for c in contract.required_columns if frame[c].null_count()}
    assert not nulls, f"nulls in required columns of {contract.name}: {nulls}"
    assert frame.select(contract.key).is_duplicated().sum() == 0


# --- Walmart ---------------------------------------------------------------------------------


def test_walmart_loads_complete_panel(real_file):
    """The Walmart file loads as the 45-store x 143-week panel SOURCE.md describes, with
    day-first dates parsed to the right Fridays and the documented holiday weeks."""
    real_file(WALMART)
    df = load_walmart_store_sales()
    assert df.height == 6435
    assert df.schema == pl.Schema(
        {
            "store_id": pl.String,
            "week_date": pl.Date,
            "weekly_sales": pl.Float64,
            "holiday_flag": pl.Boolean,
            "temperature_f": pl.Float64,
            "fuel_price": pl.Float64,
            "cpi": pl.Float64,
            "unemployment": pl.Float64,
        }
    )
    assert df.null_count().sum_horizontal().item() == 0
    assert df["store_id"].n_unique() == 45
    assert df["store_id"].min() == "W01" and df["store_id"].max() == "W45"
    assert df["week_date"].n_unique() == 143
    assert df["week_date"].min() == date(2010, 2, 5)
    assert df["week_date"].max() == date(2012, 10, 26)
    assert (df["week_date"].dt.weekday() == 5).all()  # polars: Monday = 1, Friday = 5
    assert df.group_by("store_id").len()["len"].unique().to_list() == [143]
    assert df["holiday_flag"].sum() == 450
    assert df["weekly_sales"].min() == pytest.approx(209_986.25)
    assert df["weekly_sales"].max() == pytest.approx(3_818_686.45)
    assert df.equals(df.sort("store_id", "week_date"))
    first = df.row(0, named=True)
    assert first["store_id"] == "W01" and first["weekly_sales"] == pytest.approx(1_643_690.9)
    # SOURCE.md caveat: Christmas is flagged on the week after the pre-Christmas peak.
    flags = dict(df.filter(pl.col("store_id") == "W01").select("week_date", "holiday_flag").rows())
    assert flags[date(2010, 12, 31)] is True and flags[date(2010, 12, 24)] is False


def test_walmart_raw_feeds_leave_unknowns_null(real_file):
    """The stores feed conforms with what the file does not know left null (city, opening
    date, size unless sizes are supplied) and the required region / format as 'unknown';
    supplied sizes must cover every store."""
    real_file(WALMART)
    df = load_walmart_store_sales()
    feeds = walmart_as_raw_feeds(df)
    assert set(feeds) == {"stores", "calendar"}
    stores = feeds["stores"]
    _assert_conforms(stores, STORES)
    assert stores.height == 45
    assert stores.row(0, named=True) == {
        "store_id": "W01",
        "store_name": "Walmart store 1",
        "region": "unknown",
        "format": "unknown",
        "city": None,
        "opened_date": None,
        "size_sqm": None,
    }

    sizes = {f"W{i:02d}": 1000.0 + i for i in range(1, 46)}
    sized = walmart_as_raw_feeds(df, store_sizes_sqm=sizes)["stores"]
    _assert_conforms(sized, STORES)
    assert sized.row(0, named=True)["size_sqm"] == 1001.0
    with pytest.raises(ValueError, match="W45"):
        walmart_as_raw_feeds(df, store_sizes_sqm={k: v for k, v in sizes.items() if k != "W45"})


def test_walmart_calendar_names_the_flagged_holidays(real_file):
    """The weekly Holiday_Flag becomes a daily chain calendar over the file's weeks
    (Saturday-Friday): each flagged week holds exactly one of the documented holidays, which
    is the holiday day; Christmas is flagged on the week after the peak week (SOURCE.md)."""
    real_file(WALMART)
    df = load_walmart_store_sales()
    calendar = walmart_as_raw_feeds(df)["calendar"]
    _assert_conforms(calendar, CALENDAR)
    assert calendar["date"].min() == date(2010, 1, 30) and calendar["date"].max() == date(
        2012, 10, 26
    )
    assert calendar.height == (date(2012, 10, 26) - date(2010, 1, 30)).days + 1
    holidays = dict(calendar.filter(pl.col("is_holiday")).select("date", "holiday_name").rows())
    assert len(holidays) == 10 == df["holiday_flag"].sum() // 45
    assert holidays[date(2010, 2, 7)] == "Super Bowl"
    assert holidays[date(2011, 9, 5)] == "Labor Day"
    assert holidays[date(2011, 11, 24)] == "Thanksgiving"
    assert holidays[date(2010, 12, 25)] == "Christmas Day"
    assert date(2012, 12, 25) not in holidays  # after the data
    assert calendar["event_name"].null_count() == calendar.height


def test_walmart_calendar_rejects_flags_it_cannot_place(real_file):
    """A flag that differs between stores (not chain-wide) or a flagged week without one of the
    documented holidays is an error naming the week, never a guessed holiday."""
    real_file(WALMART)
    df = load_walmart_store_sales()
    one_store = (pl.col("store_id") == "W07") & (pl.col("week_date") == date(2010, 2, 12))
    mixed = df.with_columns(holiday_flag=pl.when(one_store).then(False).otherwise("holiday_flag"))
    with pytest.raises(ValueError, match="2010-02-12"):
        walmart_as_raw_feeds(mixed)
    stray = df.with_columns(
        holiday_flag=pl.when(pl.col("week_date") == date(2010, 3, 5))
        .then(True)
        .otherwise("holiday_flag")
    )
    with pytest.raises(ValueError, match=r"2010-03-05.*flagged"):
        walmart_as_raw_feeds(stray)


def test_walmart_loader_accepts_folder_file_and_env_var(real_file, tmp_path, monkeypatch):
    """``path`` may be the CSV or its folder, and the default location follows
    RETAIL_REAL_DATA_DIR (read at call time)."""
    src = real_file(WALMART)
    folder = tmp_path / "elsewhere" / WALMART
    folder.mkdir(parents=True)
    shutil.copy(src, folder / src.name)
    assert load_walmart_store_sales(folder).height == 6435
    assert load_walmart_store_sales(folder / src.name).height == 6435
    monkeypatch.setenv("RETAIL_REAL_DATA_DIR", str(tmp_path / "elsewhere"))
    assert real_dataset_path(WALMART) == (folder / src.name).resolve()
    assert load_walmart_store_sales().height == 6435


def test_walmart_non_numeric_sales_names_file_line_and_column(real_file, tmp_path):
    """A non-numeric Weekly_Sales on physical line 17 is reported exactly there, with the
    message format documented for RealDataFormatError."""
    broken = _broken_copy(real_file(WALMART), tmp_path, 17, _set_field(2, "abc"))
    with pytest.raises(RealDataFormatError) as caught:
        load_walmart_store_sales(broken)
    err = caught.value
    assert str(err) == (
        "Walmart_Store_sales.csv line 17, column 'Weekly_Sales': expected a number, got 'abc'"
    )
    assert (err.path, err.line, err.column) == (broken, 17, "Weekly_Sales")
    assert isinstance(err, ValueError)


@pytest.mark.parametrize(
    ("line", "bad_date", "hint"),
    [
        # 02-04-2010 (2 April, a Friday) written month-first parses day-first as 4 Feb, a
        # Thursday, so the Friday check catches it.
        (10, "04-02-2010", "Friday"),
        # 21-05-2010 written month-first has month 21.
        (17, "05-21-2010", "day-first date DD-MM-YYYY"),
        (30, "2010-02-05", "day-first date DD-MM-YYYY"),
    ],
)
def test_walmart_bad_date_is_rejected(real_file, tmp_path, line, bad_date, hint):
    """Month-first or ISO dates are not silently accepted: the Date column of the broken
    line is reported."""
    broken = _broken_copy(real_file(WALMART), tmp_path, line, _set_field(1, bad_date))
    with pytest.raises(RealDataFormatError) as caught:
        load_walmart_store_sales(broken)
    message = str(caught.value)
    assert message.startswith(f"Walmart_Store_sales.csv line {line}, column 'Date': ")
    assert hint in message and repr(bad_date) in message


def test_walmart_missing_field_is_rejected(real_file, tmp_path):
    """A record with a field missing is reported on its line with the expected field count."""
    broken = _broken_copy(real_file(WALMART), tmp_path, 30, lambda s: s.rsplit(",", 1)[0])
    with pytest.raises(RealDataFormatError) as caught:
        load_walmart_store_sales(broken)
    assert caught.value.line == 30 and caught.value.column is None
    assert str(caught.value).startswith("Walmart_Store_sales.csv line 30: expected 8 fields")
    assert "got 7 fields" in str(caught.value)


def test_walmart_duplicate_store_date_is_rejected(real_file, tmp_path):
    """SOURCE.md says (Store, Date) is unique: a copy of line 5 placed on line 101 is reported
    on line 101, pointing back to line 5."""
    src = real_file(WALMART)
    line5 = src.read_text().split("\n")[4]
    broken = _broken_copy(src, tmp_path, 101, lambda s: f"{line5}\n{s}")
    with pytest.raises(RealDataFormatError) as caught:
        load_walmart_store_sales(broken)
    assert str(caught.value) == (
        "Walmart_Store_sales.csv line 101: duplicate (Store, Date) = (1, 26-02-2010); "
        "first seen on line 5"
    )


def test_walmart_wrong_header_and_blank_line_are_rejected(real_file, tmp_path):
    """A renamed column is reported on line 1; a blank line inside the data is reported on
    its own line rather than skipped."""
    src = real_file(WALMART)
    renamed = _broken_copy(src, tmp_path, 1, _replace("Weekly_Sales", "Sales"))
    with pytest.raises(RealDataFormatError, match=r"line 1: unexpected header: missing column"):
        load_walmart_store_sales(renamed)
    blank = _broken_copy(src, tmp_path, 40, lambda s: f"\n{s}")
    with pytest.raises(RealDataFormatError, match=r"line 40: expected 8 fields .*a blank line"):
        load_walmart_store_sales(blank)


# --- UCI Online Retail -----------------------------------------------------------------------


def test_online_retail_lines_match_source(real_file):
    """All 20,000 lines load with the counts SOURCE.md states (invoices, stock codes,
    customers, countries, R ``NA`` customers as null, cancellations, negative quantities)."""
    real_file(ONLINE_RETAIL)
    lines = load_online_retail_lines()
    assert lines.height == 20_000
    assert list(lines.columns) == [
        "invoice_no",
        "stock_code",
        "description",
        "quantity",
        "invoice_ts",
        "unit_price",
        "customer_id",
        "country",
        "is_cancellation",
    ]
    assert lines["invoice_ts"].dtype == pl.Datetime("us")
    assert lines["invoice_no"].n_unique() == 9_362
    assert lines["stock_code"].n_unique() == 2_855
    assert lines["customer_id"].drop_nulls().n_unique() == 3_049
    assert lines["country"].n_unique() == 35
    assert lines["customer_id"].null_count() == 5_078
    assert lines["description"].null_count() == 53
    assert lines["is_cancellation"].sum() == 350
    assert (lines["quantity"] < 0).sum() == 398
    assert (lines["unit_price"] <= 0).sum() == 90
    assert lines.height - lines.unique().height == 7
    assert lines["invoice_ts"].min() == datetime(2010, 12, 1, 8, 34)
    assert lines["invoice_ts"].max() == datetime(2011, 12, 9, 12, 50)
    assert lines["customer_id"].drop_nulls().str.len_chars().unique().to_list() == [5]


def test_online_retail_feeds_exclude_non_sales_and_conform(real_file):
    """The feeds conform to their contracts; cancellations, adjustments, non-product codes and
    zero-price lines are excluded with counts that add up to all 20,000 lines."""
    real_file(ONLINE_RETAIL)
    lines = load_online_retail_lines()
    exclusions = online_retail_exclusions(lines)
    assert dict(exclusions.select("reason", "lines").rows()) == {
        "cancellation": 350,
        "non_product_code": 88,
        "negative_quantity_adjustment": 48,
        "non_positive_price": 40,
    }
    kept = lines.height - exclusions["lines"].sum()
    assert kept == 19_474

    feeds = load_online_retail()
    assert set(feeds) == {"products", "customers", "sales", "stores"}
    for name, contract in [
        ("products", PRODUCTS),
        ("customers", CUSTOMERS),
        ("sales", SALES),
        ("stores", STORES),
    ]:
        _assert_conforms(feeds[name], contract)

    sales, products = feeds["sales"], feeds["products"]
    assert sales.height == 18_754
    assert (sales["store_id"] == "UK-ONLINE").all()
    assert (sales["units_sold"] > 0).all() and (sales["unit_price"] > 0).all()
    assert (sales["revenue"] - sales["units_sold"] * sales["unit_price"]).abs().max() < 1e-9
    assert (sales["sales_value"] == sales["revenue"]).all()
    assert sales["units_sold"].sum() == lines["quantity"].sum() - exclusions["quantity"].sum()
    # The source records no promotions or stock: "not recorded", not "none".
    for column in ("on_promotion", "promo_discount_pct", "stockout"):
        assert sales[column].null_count() == sales.height, column
    codes = set(sales["sku"])
    assert not codes & NON_PRODUCT_CODES
    assert not any(c.startswith("GIFT_") for c in codes)
    assert codes == set(products["sku"])
    assert products.height == 2_777
    assert set(products["department"]) == {"unknown"}
    white_heart = products.filter(pl.col("sku") == "85123A").row(0, named=True)
    assert white_heart["title"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert json.loads(white_heart["attributes"])["stock_codes"] == ["85123A", "85123a"]

    customers = feeds["customers"]
    assert customers.height == 3_049
    assert customers["segment"].null_count() == customers["signup_date"].null_count() == 3_049
    assert set(customers["home_store_id"]) == {"UK-ONLINE"}
    store = feeds["stores"].row(0, named=True)
    assert store["format"] == "online" and store["size_sqm"] == 0.0
    assert store["city"] is None and store["opened_date"] is None


@pytest.mark.parametrize(
    ("line", "old", "new", "column"),
    [
        (2, ',2,"2011-03-10', ',two,"2011-03-10', "Quantity"),
        (2, '"2011-03-10 16:16:00"', '"10/03/2011 16:16"', "InvoiceDate"),
        (3, ",12621,", ",12621.0,", "CustomerID"),
        (4, '"United Kingdom"', '""', "Country"),
    ],
)
def test_online_retail_malformed_line_is_rejected(real_file, tmp_path, line, old, new, column):
    """A bad quantity, date, customer id or missing country in the CRLF, R-written file is
    reported with the file name, its physical line and the column."""
    broken = _broken_copy(real_file(ONLINE_RETAIL), tmp_path, line, _replace(old, new))
    with pytest.raises(RealDataFormatError) as caught:
        load_online_retail_lines(broken)
    assert str(caught.value).startswith(
        f"online_retail_sample.csv line {line}, column {column!r}: "
    )


# --- Amazon India catalog --------------------------------------------------------------------


def test_amazon_catalog_conforms_to_products(real_file):
    """The catalog yields 1,351 distinct SKUs conforming to the products contract, with the
    documented dirty values (rating '|', empty rating_count) kept as nulls, Indian-grouped
    prices parsed, and the first row kept for duplicated ASINs."""
    real_file(AMAZON)
    catalog = load_amazon_catalog()
    _assert_conforms(catalog, PRODUCTS)
    assert catalog.height == 1_351
    assert catalog["sku"].n_unique() == 1_351
    departments = dict(catalog.group_by("department").len().rows())
    assert departments["Electronics"] == 490 and departments["Home&Kitchen"] == 448
    assert catalog["unit_cost"].null_count() == catalog["launch_date"].null_count() == 1_351
    assert not catalog["description"].str.contains("|", literal=True).any()
    assert catalog["list_price"].max() == 139_900.0  # "₹1,39,900"

    attributes = {
        row["sku"]: json.loads(row["attributes"]) for row in catalog.iter_rows(named=True)
    }
    assert attributes["B08L12N5H1"]["rating"] is None
    assert attributes["B0B94JPY2N"]["rating_count"] is None
    assert attributes["B0BQRJ3C47"]["rating_count"] is None
    assert sum(a["rating"] is None for a in attributes.values()) == 1
    first = catalog.filter(pl.col("sku") == "B07JW9H4J1").row(0, named=True)
    assert first["list_price"] == 1_099.0
    assert first["department"] == "Computers&Accessories"
    assert first["subcategory"] == "Cables&Accessories"
    assert first["brand"] == "Wayona"
    assert attributes["B07JW9H4J1"] | {"product_url": None, "image_url": None} == {
        "currency": "INR",
        "discounted_price": 399.0,
        "discount_pct": 0.64,
        "rating": 4.2,
        "rating_count": 24_269,
        "category_path": [
            "Computers&Accessories",
            "Accessories&Peripherals",
            "Cables&Accessories",
            "Cables",
            "USBCables",
        ],
        "product_url": None,
        "image_url": None,
    }
    # B096MSW6CT appears on lines 4, 381 and 625 with different actual prices; line 4 wins.
    assert catalog.filter(pl.col("sku") == "B096MSW6CT")["list_price"].item() == 1_899.0


@pytest.mark.parametrize(
    ("line", "old", "new", "column"),
    [
        (2, '"₹1,099"', '"1,099 INR"', "actual_price"),
        (3, "43%,4,", "43%,four,", "rating"),
        (2, ",64%,", ",64,", "discount_percentage"),
    ],
)
def test_amazon_malformed_line_is_rejected(real_file, tmp_path, line, old, new, column):
    """An unparseable price, rating (other than the known '|') or discount is reported with
    file, line and column instead of becoming a null."""
    broken = _broken_copy(real_file(AMAZON), tmp_path, line, _replace(old, new))
    with pytest.raises(RealDataFormatError) as caught:
        load_amazon_catalog(broken)
    assert str(caught.value).startswith(f"amazon.csv line {line}, column {column!r}: ")


# --- ULB credit card fraud -------------------------------------------------------------------


def test_creditcard_loads_sample_and_true_prior(real_file):
    """The fraud sample has 5,412 rows and 492 frauds, sorted by time, with the documented
    ranges; the real prior constant is 492 / 284,807 (0.172%), not the sample's 9.09%."""
    real_file(CREDITCARD)
    df = load_creditcard_fraud()
    assert df.height == 5_412
    assert df.columns == ["time_s", *(f"v{i}" for i in range(1, 29)), "amount", "is_fraud"]
    assert df.schema["is_fraud"] == pl.Boolean
    assert all(df.schema[c] == pl.Float64 for c in df.columns[:-1])
    assert df.null_count().sum_horizontal().item() == 0
    assert df["is_fraud"].sum() == 492
    assert df["time_s"].is_sorted()
    assert df["time_s"].min() == 23.0 and df["time_s"].max() == 172_703.0
    assert df["amount"].max() == pytest.approx(5_627.06)
    assert (df["amount"] == 0).sum() == 61
    assert df.filter(pl.col("is_fraud"))["amount"].mean() == pytest.approx(122.21, abs=0.005)
    assert df.height - df.unique().height == 19
    assert CREDITCARD_TRUE_FRAUD_RATE == 492 / 284_807  # 0.1727%, "0.172%" in SOURCE.md
    assert df["is_fraud"].mean() == pytest.approx(0.0909, abs=5e-4)


@pytest.mark.parametrize("bad_amount", ["12,50", "NaN", "", "-3.5"])
def test_creditcard_broken_amount_is_rejected(real_file, tmp_path, bad_amount):
    """A broken Amount (decimal comma, NaN, empty, negative) is reported with file, line and
    the 'Amount' column."""
    # Amount is field 29; "12,50" adds a field, which is reported as a field-count problem.
    broken = _broken_copy(real_file(CREDITCARD), tmp_path, 50, _set_field(29, bad_amount))
    with pytest.raises(RealDataFormatError) as caught:
        load_creditcard_fraud(broken)
    err = caught.value
    assert err.line == 50 and str(err).startswith("creditcard_sample.csv line 50")
    if "," in bad_amount:
        assert err.column is None and "expected 31 fields" in str(err)
    else:
        assert err.column == "Amount"


# --- Registry and missing data ---------------------------------------------------------------


def test_registry_lists_every_dataset():
    """REAL_DATASETS names the four datasets with their folder, file and loader; an unknown
    name is a KeyError listing the known ones."""
    assert set(REAL_DATASETS) == {WALMART, ONLINE_RETAIL, AMAZON, CREDITCARD}
    for name, dataset in REAL_DATASETS.items():
        assert dataset.name == name and dataset.folder == name
        assert dataset.file_name.endswith(".csv")
        assert callable(dataset.loader)
    with pytest.raises(KeyError, match="unknown real dataset"):
        real_dataset_path("no_such_dataset")


@pytest.mark.parametrize("name", [WALMART, ONLINE_RETAIL, AMAZON, CREDITCARD])
def test_registry_finds_each_dataset(real_file, name):
    """real_dataset_path finds each dataset's CSV under the configured directory."""
    expected = real_file(name)
    assert real_dataset_path(name) == expected


@pytest.mark.parametrize(
    "loader",
    [load_walmart_store_sales, load_online_retail, load_amazon_catalog, load_creditcard_fraud],
)
def test_missing_dataset_names_env_var(tmp_path, monkeypatch, loader):
    """With RETAIL_REAL_DATA_DIR pointing at an empty directory every loader raises
    RealDataMissingError (a FileNotFoundError) naming the dataset, the path and the env var."""
    monkeypatch.setenv("RETAIL_REAL_DATA_DIR", str(tmp_path))
    with pytest.raises(RealDataMissingError) as caught:
        loader()
    err = caught.value
    assert isinstance(err, FileNotFoundError)
    assert "RETAIL_REAL_DATA_DIR" in str(err)
    assert str(tmp_path) in str(err)
    assert err.dataset in REAL_DATASETS and err.dataset in str(err)


def test_missing_explicit_path_and_registry_path(tmp_path, monkeypatch):
    """An explicit path that does not exist and a registry lookup in an empty data directory
    both raise RealDataMissingError with the expected path."""
    with pytest.raises(RealDataMissingError, match="walmart_store_sales"):
        load_walmart_store_sales(tmp_path / "nope.csv")
    monkeypatch.setenv("RETAIL_REAL_DATA_DIR", str(tmp_path))
    with pytest.raises(RealDataMissingError) as caught:
        real_dataset_path(AMAZON)
    assert caught.value.path == tmp_path.resolve() / AMAZON / "amazon.csv"


# --- Landing through `retail land` -----------------------------------------------------------
#
# Each dataset's files (retail_assets/sources/real/landing.py) are landed with the command
# itself (the click entry point of `retail land`, in-process) and the mappings shipped in
# benchmarks/landing/<dataset>/. Small slices of the real files keep these fast; what lands is
# compared with the loaders' own mapping of the same slice.


def _slice(src: Path, tmp_path: Path, records: int) -> Path:
    """The header and the first ``records`` data lines of ``src`` (none of the files has a
    record spanning lines), line endings kept, in a folder named like the dataset's."""
    lines = src.read_bytes().split(b"\n")
    folder = tmp_path / "slice" / src.parent.name
    folder.mkdir(parents=True)
    dst = folder / src.name
    dst.write_bytes(b"\n".join(lines[: records + 1]) + b"\n")
    return dst


def _land_all(dataset: str, source: Path, tmp_path: Path, monkeypatch) -> LandingZone:
    """Derive the files of ``source`` and land every feed with `retail land`."""
    monkeypatch.setenv("RETAIL_HOME", str(tmp_path / "home"))
    for var in ("RETAIL_LANDING_DIR", "RETAIL_DOMAINS"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()
    for step in landing_plan(dataset, tmp_path / "files", source):
        result = runner.invoke(cli_main, step.command()[1:])
        assert result.exit_code == 0, f"{step.feed}: {result.output}"
        assert f"landed {step.feed}: " in result.output
    return LandingZone(get_settings().landing_dir)


def _assert_landed_from_files(zone: LandingZone, dataset: str, feeds: set[str]) -> None:
    sources = zone.feed_sources()
    assert set(sources) == feeds
    for feed, origin in sources.items():
        assert origin["kind"] == "file" and origin["landed_by"] == "retail land"
        assert origin["mapping"] == str(mapping_path(dataset, feed).resolve())
        _assert_conforms(zone.read(feed), FEEDS[feed])


def _domains(zone: LandingZone) -> list[str]:
    """The domains `retail land` resolved from what landed (its record for serving)."""
    return json.loads(get_settings().domains_record_path.read_text())["domains"]


@pytest.mark.parametrize(
    ("dataset", "feed"),
    [(d, p.stem) for d in DERIVATIONS for p in sorted((MAPPINGS_DIR / d).glob("*.yaml"))],
)
def test_shipped_mappings_fit_their_contracts(dataset, feed):
    """Every shipped mapping names a feed and only that feed's contract columns, and parses
    (its constants are values of the column's type); no data needed."""
    assert feed in FEEDS
    mapping = load_mapping(mapping_path(dataset, feed), FEEDS[feed])
    assert mapping.path == mapping_path(dataset, feed)


def test_every_dataset_has_mappings_for_the_feeds_it_lands():
    """The datasets known to the registry all have a derivation, and a mapping per feed."""
    assert set(DERIVATIONS) == set(REAL_DATASETS)
    expected = {
        WALMART: {"sales", "stores", "calendar", "products"},
        ONLINE_RETAIL: {"sales", "products", "customers", "stores", "calendar"},
        CREDITCARD: {"payments", "fraud_labels"},
        AMAZON: {"products"},
    }
    for dataset, feeds in expected.items():
        assert {p.stem for p in (MAPPINGS_DIR / dataset).glob("*.yaml")} == feeds


def test_walmart_lands_for_a_weekly_demand_only_retailer(real_file, tmp_path, monkeypatch):
    """Three stores of the Walmart file land through the command: the sales feed straight from
    the raw CSV (store number as id, sales value with `measure: value`, day-first Friday
    dates, SKU STORE-TOTAL), stores / calendar / products from the derived files; demand is
    enabled, fraud is not."""
    source = _slice(real_file(WALMART), tmp_path, 3 * 143)
    zone = _land_all(WALMART, source, tmp_path, monkeypatch)
    _assert_landed_from_files(zone, WALMART, {"sales", "stores", "calendar", "products"})
    assert zone.feed_sources()["sales"]["path"] == str(source.resolve())

    panel = load_walmart_store_sales(source)
    sales = zone.read("sales").sort("store_id", "date")
    assert sales.height == panel.height == 429
    assert sales["store_id"].unique().sort().to_list() == ["1", "2", "3"]
    assert set(sales["sku"]) == {"STORE-TOTAL"}
    assert sales["units_sold"].null_count() == sales.height
    assert sales["date"].to_list() == panel["week_date"].to_list()
    assert sales["sales_value"].to_list() == panel["weekly_sales"].to_list()
    assert (sales["date"].dt.weekday() == 5).all()  # Fridays: the last day of each week

    stores = zone.read("stores")
    assert set(stores["store_id"]) == set(sales["store_id"])
    assert set(stores["region"]) == set(stores["format"]) == {"unknown"}
    assert stores["size_sqm"].null_count() == 3
    calendar = zone.read("calendar")
    assert calendar["date"].min() == date(2010, 1, 30)
    assert calendar["date"].max() == date(2012, 10, 26) + timedelta(weeks=8)
    holidays = dict(
        calendar.filter(pl.col("holiday_name").is_not_null()).select("date", "holiday_name").rows()
    )
    assert holidays[date(2011, 11, 24)] == "Thanksgiving"
    assert holidays[date(2012, 11, 22)] == "Thanksgiving"  # ahead of the data, by rule
    assert len(holidays) == 11
    products = zone.read("products")
    assert products["sku"].to_list() == ["STORE-TOTAL"] and products["list_price"][0] == 1.0
    assert "demand" in _domains(zone) and "fraud" not in _domains(zone)


def test_walmart_month_first_date_fails_landing_with_file_line_and_column(
    real_file, tmp_path, monkeypatch
):
    """The sales mapping's day-first date format is enforced by the command: a month-first
    date is reported with the file, its line and the column, and nothing lands."""
    source = _slice(real_file(WALMART), tmp_path, 20)
    broken = _broken_copy(source, tmp_path, 17, _set_field(1, "05-21-2010"))
    monkeypatch.setenv("RETAIL_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(
        cli_main, ["land", "sales", str(broken), "--map", str(mapping_path(WALMART, "sales"))]
    )
    assert result.exit_code == 1
    assert "Walmart_Store_sales.csv line 17, column 'Date': expected a date in format " in (
        result.output
    )
    assert not LandingZone(get_settings().landing_dir).feed_sources()


def test_online_retail_lands_demand_and_search_feeds(real_file, tmp_path, monkeypatch):
    """3,000 lines of the UCI sample land as sales, products, customers, stores and a dates-only
    calendar, each equal to the loader's own mapping of the same lines; demand is enabled."""
    source = _slice(real_file(ONLINE_RETAIL), tmp_path, 3000)
    zone = _land_all(ONLINE_RETAIL, source, tmp_path, monkeypatch)
    feeds = {"sales", "products", "customers", "stores", "calendar"}
    _assert_landed_from_files(zone, ONLINE_RETAIL, feeds)
    lines = load_online_retail_lines(source)
    expected = online_retail_as_raw_feeds(lines)
    for feed in ("sales", "products", "customers", "stores"):
        key = list(FEEDS[feed].key)
        landed = zone.read(feed).sort(key)
        assert landed.equals(expected[feed].sort(key)), feed
    calendar = zone.read("calendar")
    days = lines["invoice_ts"].dt.date()
    assert calendar.height == (days.max() - days.min()).days + 1
    assert calendar["holiday_name"].null_count() == calendar.height
    assert "demand" in _domains(zone) and "fraud" not in _domains(zone)


def test_creditcard_lands_payments_and_labels_for_a_fraud_only_retailer(
    real_file, tmp_path, monkeypatch
):
    """800 transactions land as payments and fraud labels: ids that point back to the source
    line, amounts and labels as in the file, placeholders from the mapping; fraud is the only
    domain enabled."""
    source = _slice(real_file(CREDITCARD), tmp_path, 800)
    zone = _land_all(CREDITCARD, source, tmp_path, monkeypatch)
    _assert_landed_from_files(zone, CREDITCARD, {"payments", "fraud_labels"})
    payments, labels = zone.read("payments"), zone.read("fraud_labels")
    assert payments.height == labels.height == 800
    raw = pl.read_csv(source).with_row_index("line", offset=2)
    by_id = raw.select(
        pl.format("ULB-{}", "line").alias("transaction_id"),
        "Time",
        "Amount",
        (pl.col("Class") == 1).alias("Class"),
    )
    joined = payments.join(labels, on="transaction_id").join(by_id, on="transaction_id")
    assert joined.height == 800
    assert (joined["amount"] == joined["Amount"]).all()
    assert (joined["is_fraud"] == joined["Class"]).all()
    seconds = (joined["event_ts"] - datetime(2013, 9, 1)).dt.total_microseconds() / 1e6
    assert ((seconds - joined["Time"]).abs() < 1e-6).all()
    assert ((joined["label_available_at"] - joined["event_ts"]).dt.total_days() == 60).all()
    assert payments["card_id"].n_unique() == 800
    assert set(payments["currency"]) == {"EUR"} and set(payments["channel"]) == {"online"}
    assert set(labels["label_source"]) == {"dataset_label"}
    assert _domains(zone) == ["fraud"]  # nothing else has the feeds it needs


def test_amazon_catalog_lands_as_products_for_search(real_file, tmp_path, monkeypatch):
    """300 catalog rows land as products equal to the loader's catalog (duplicates dropped,
    rupee prices parsed, JSON attributes, multi-line descriptions): what search needs."""
    source = _slice(real_file(AMAZON), tmp_path, 300)
    zone = _land_all(AMAZON, source, tmp_path, monkeypatch)
    _assert_landed_from_files(zone, AMAZON, {"products"})
    landed = zone.read("products").sort("sku")
    expected = load_amazon_catalog(source).sort("sku")
    assert landed.equals(expected)
    assert landed["description"].str.contains("\n").any()
    # Search needs only the catalog; it turns on by itself only when the retailer also shows
    # an online shop (domains.py), otherwise with RETAIL_DOMAINS=search.
    assert set(DOMAINS["search"].needs) <= set(zone.feed_sources())
    assert "demand" not in _domains(zone)
