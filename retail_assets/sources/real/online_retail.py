"""UCI Online Retail, a random 20,000-line sample of a UK online gift-ware retailer (2010-2011).

Source: ``uci_online_retail_sample/online_retail_sample.csv`` (see its SOURCE.md), written by R
``write.csv``: strings are quoted and a missing value is the literal ``NA`` (CustomerID; a
missing Description is an empty string in this copy, both are read as null).

Two views are offered:

- ``load_online_retail_lines``: the invoice lines, typed and validated, nothing dropped.
- ``load_online_retail``: the lines mapped onto the raw feed contracts (``products``,
  ``customers``, ``sales`` and ``stores``) for one store, ``UK-ONLINE``. Lines that are not a
  product sale are excluded first (see ``exclusion_reason``); the counts per reason are logged
  and available from ``online_retail_exclusions``.

This is a sample of LINES, not invoices: most invoices are incomplete, and a day or SKU that
is absent from the sample is not a day without sales. Fine for per-SKU demand aggregates and
catalog text, wrong for basket analysis (SOURCE.md).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import polars as pl

from retail_assets.sources.contracts import CUSTOMERS, PRODUCTS, SALES, STORES
from retail_assets.sources.real._csv import read_records, resolve_dataset_file

logger = logging.getLogger(__name__)

DATASET = "uci_online_retail_sample"
FOLDER = "uci_online_retail_sample"
FILE_NAME = "online_retail_sample.csv"
STORE_ID = "UK-ONLINE"
CURRENCY = "GBP"

HEADER = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)

LINES_SCHEMA: dict[str, pl.DataType] = {
    "invoice_no": pl.String(),
    "stock_code": pl.String(),
    "description": pl.String(),
    "quantity": pl.Int32(),
    "invoice_ts": pl.Datetime("us"),
    "unit_price": pl.Float64(),
    "customer_id": pl.String(),
    "country": pl.String(),
    "is_cancellation": pl.Boolean(),
}

# Stock codes that are fees, postage or manual adjustments rather than products. The first
# seven are listed in SOURCE.md and occur in the sample; AMAZONFEE, B (bad-debt adjustment) and
# CRUK (charity commission) only occur in the full UCI file and are listed so the same loader
# stays correct on it. Gift vouchers (``gift_0001_20`` ...) are matched by prefix.
NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "M", "D", "C2", "S", "BANK CHARGES", "AMAZONFEE", "B", "CRUK"}
)
GIFT_VOUCHER_PREFIX = "GIFT_"

EXCLUSION_REASONS = (
    "cancellation",
    "non_product_code",
    "negative_quantity_adjustment",
    "non_positive_price",
)

_INVOICE = re.compile(r"[AC]?\d{6}")
_CUSTOMER = re.compile(r"\d{5}")
_R_NA = "NA"


def load_online_retail_lines(path: Path | str | None = None) -> pl.DataFrame:
    """Load every invoice line, typed and validated, sorted by ``invoice_ts`` (stable).

    Columns: ``invoice_no``, ``stock_code`` (as in the file; lower-case variants such as
    ``85123a`` are kept here), ``description`` (whitespace-normalised, null when empty or
    ``NA``), ``quantity`` (negative for cancellations and stock adjustments),
    ``invoice_ts``, ``unit_price`` (GBP), ``customer_id`` (5-digit string, null for R ``NA``),
    ``country`` and ``is_cancellation`` (invoice number starts with ``C``).

    Nothing is dropped: cancellations, adjustments, non-product codes and the 7 fully
    duplicated lines (which the original data contains too) are all kept. A malformed field
    raises ``RealDataFormatError`` with file, line and column.
    """
    csv_path = resolve_dataset_file(DATASET, FOLDER, FILE_NAME, path)
    columns: dict[str, list] = {name: [] for name in LINES_SCHEMA}
    for record in read_records(csv_path, HEADER):
        invoice = record.matching("InvoiceNo", _INVOICE, "a 6-digit invoice number (C = cancel)")
        description = record.text("Description", null_values=("", _R_NA))
        customer = record.text("CustomerID", null_values=(_R_NA,))
        if customer is not None and not _CUSTOMER.fullmatch(customer):
            raise record.error("CustomerID", f"expected a 5-digit id or NA, got {customer!r}")
        columns["invoice_no"].append(invoice)
        columns["stock_code"].append(record.required("StockCode", null_values=("", _R_NA)))
        columns["description"].append(_normalise_space(description))
        columns["quantity"].append(record.integer("Quantity"))
        columns["invoice_ts"].append(
            record.datetime("InvoiceDate", "%Y-%m-%d %H:%M:%S", "'YYYY-MM-DD HH:MM:SS'")
        )
        columns["unit_price"].append(record.number("UnitPrice"))
        columns["customer_id"].append(customer)
        columns["country"].append(record.required("Country", null_values=("", _R_NA)))
        columns["is_cancellation"].append(invoice.startswith("C"))
    return pl.DataFrame(columns, schema=LINES_SCHEMA).sort("invoice_ts", maintain_order=True)


def _normalise_space(text: str | None) -> str | None:
    """Collapse runs of whitespace and trim; all-blank text becomes null."""
    normalised = " ".join(text.split()) if text is not None else ""
    return normalised or None


def exclusion_reason() -> pl.Expr:
    """Why a line is not a product sale (null for product sales); first matching rule wins.

    1. ``cancellation``: a ``C`` invoice (always negative quantity). Dropped, not netted: in
       a random line sample the matching sale is usually not present.
    2. ``non_product_code``: postage, fees, manual lines, samples, gift vouchers.
    3. ``negative_quantity_adjustment``: negative quantity on a normal invoice (stock
       written off as damaged/missing, usually price 0 and no customer).
    4. ``non_positive_price``: price <= 0 on a positive quantity (free items, stock
       corrections such as "check" or "add stock to allocate online orders").
    """
    code = pl.col("stock_code").str.to_uppercase()
    return (
        pl.when(pl.col("is_cancellation"))
        .then(pl.lit("cancellation"))
        .when(code.is_in(list(NON_PRODUCT_CODES)) | code.str.starts_with(GIFT_VOUCHER_PREFIX))
        .then(pl.lit("non_product_code"))
        .when(pl.col("quantity") < 0)
        .then(pl.lit("negative_quantity_adjustment"))
        .when(pl.col("unit_price") <= 0)
        .then(pl.lit("non_positive_price"))
        .otherwise(pl.lit(None, dtype=pl.String))
        .alias("exclusion_reason")
    )


def online_retail_exclusions(lines: pl.DataFrame) -> pl.DataFrame:
    """Lines and units excluded from the feeds per reason (every reason listed, even at 0)."""
    counted = (
        lines.with_columns(exclusion_reason())
        .filter(pl.col("exclusion_reason").is_not_null())
        .group_by("exclusion_reason")
        .agg(pl.len().cast(pl.Int64).alias("lines"), pl.col("quantity").sum().alias("quantity"))
    )
    reasons = pl.DataFrame({"reason": list(EXCLUSION_REASONS)})
    return reasons.join(
        counted.rename({"exclusion_reason": "reason"}), on="reason", how="left"
    ).with_columns(pl.col("lines").fill_null(0), pl.col("quantity").fill_null(0).cast(pl.Int64))


def load_online_retail(path: Path | str | None = None) -> dict[str, pl.DataFrame]:
    """Load the sample as raw feeds ``products``, ``customers``, ``sales`` and ``stores``.

    See ``online_retail_as_raw_feeds`` for the mapping. The excluded line counts are logged
    at INFO; call ``online_retail_exclusions(load_online_retail_lines())`` to get them.
    """
    lines = load_online_retail_lines(path)
    for row in online_retail_exclusions(lines).iter_rows(named=True):
        logger.info(
            "online retail: excluded %d line(s) (%d units): %s",
            row["lines"],
            row["quantity"],
            row["reason"],
        )
    return online_retail_as_raw_feeds(lines)


def online_retail_as_raw_feeds(lines: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Map invoice lines (``load_online_retail_lines``) onto the raw feed contracts.

    Only product-sale lines (``exclusion_reason`` null) feed ``sales`` and ``products``. SKUs
    are the stock codes upper-cased: ``85123a`` and ``85123A`` are the same product with the
    same description in this data.

    - ``sales`` (one store, ``UK-ONLINE``; one row per day and SKU that has sampled lines):
      ``units_sold`` summed, ``sales_value`` = ``revenue`` = sum(quantity x unit_price) in GBP
      (the source reports both units and value), ``unit_price`` = revenue / units (the
      quantity-weighted mean price, so revenue = units x price holds as the contract states).
      ``on_promotion``, ``promo_discount_pct`` and ``stockout`` are null: the source records
      no promotions or stock, and the contract lets a feed say "not recorded" instead of
      claiming "none". Days without sampled lines are absent, NOT zero-sale days (this is a
      ~3.7% line sample).
    - ``products``: ``title`` and ``description`` are the SKU's most frequent description on
      its sale lines (ties: the latest); the source has no other text. ``department``,
      ``category``, ``subcategory`` and ``brand`` are "unknown": nothing in the data gives a
      hierarchy or brand and none is guessed from the wording. ``list_price`` is the most
      frequent unit price on the SKU's sale lines (ties: the higher price), since prices vary
      with quantity tiers; ``unit_cost`` and dates are null. ``attributes`` holds currency
      GBP, every description and stock-code variant seen, the min/max price and line count.
    - ``customers``: every CustomerID in the file (also those with only excluded lines).
      ``region`` is the customer's most frequent Country (2 customers have two; ties: the
      latest). ``home_store_id`` is ``UK-ONLINE`` (the only store). ``segment`` and
      ``signup_date`` are null: the data has neither (the first sampled line is no signup
      date; the customer signed up on or before it, and it is in ``load_online_retail_lines``
      for whoever wants that proxy).
    - ``stores``: the single online store, format "online", ``size_sqm`` 0 (as the contract
      specifies for online), region "United Kingdom" (SOURCE.md: a UK-based retailer);
      ``city`` and ``opened_date`` null (not in the data; the retailer traded before it starts).

    Not mapped: ``calendar`` and ``store_calendar`` (the data has no calendar; UK bank
    holidays would come from elsewhere, not from this file) and ``promotion_plan`` (no
    promotion data).
    """
    product_lines = (
        lines.with_columns(exclusion_reason(), sku=pl.col("stock_code").str.to_uppercase())
        .filter(pl.col("exclusion_reason").is_null())
        .drop("exclusion_reason")
    )
    return {
        "products": _products(product_lines),
        "customers": _customers(lines),
        "sales": _sales(product_lines),
        "stores": _stores(lines),
    }


def _sales(product_lines: pl.DataFrame) -> pl.DataFrame:
    daily = (
        product_lines.group_by(pl.col("invoice_ts").dt.date().alias("date"), "sku")
        .agg(
            pl.col("quantity").sum().alias("units_sold"),
            (pl.col("quantity") * pl.col("unit_price")).sum().alias("revenue"),
        )
        .with_columns(
            unit_price=pl.col("revenue") / pl.col("units_sold"),
            sales_value=pl.col("revenue"),
            store_id=pl.lit(STORE_ID),
            on_promotion=pl.lit(None, dtype=pl.Boolean),
            promo_discount_pct=pl.lit(None, dtype=pl.Float64),
            stockout=pl.lit(None, dtype=pl.Boolean),
        )
        .sort("date", "sku")
    )
    return SALES.conform(daily)


def _products(product_lines: pl.DataFrame) -> pl.DataFrame:
    title = _most_frequent(
        product_lines.filter(pl.col("description").is_not_null()),
        by="sku",
        value="description",
        ties="latest",
    ).rename({"description": "title"})
    list_price = _most_frequent(product_lines, by="sku", value="unit_price", ties="highest").rename(
        {"unit_price": "list_price"}
    )
    summary = product_lines.group_by("sku").agg(
        pl.col("description").drop_nulls().unique().sort().alias("descriptions"),
        pl.col("stock_code").unique().sort().alias("stock_codes"),
        pl.col("unit_price").min().alias("min_unit_price"),
        pl.col("unit_price").max().alias("max_unit_price"),
        pl.len().alias("sale_lines"),
    )
    attributes = [
        json.dumps(
            {
                "currency": CURRENCY,
                "descriptions": row["descriptions"],
                "stock_codes": row["stock_codes"],
                "min_unit_price": row["min_unit_price"],
                "max_unit_price": row["max_unit_price"],
                "sale_lines": row["sale_lines"],
            }
        )
        for row in summary.iter_rows(named=True)
    ]
    unknown = pl.lit("unknown")
    products = (
        summary.select("sku")
        .with_columns(attributes=pl.Series(attributes, dtype=pl.String))
        .join(title, on="sku", how="left")
        .join(list_price, on="sku", how="left")
        .with_columns(
            # A SKU whose sale lines all lack a description is named by its code, not guessed.
            title=pl.coalesce("title", pl.format("stock code {}", "sku")),
            department=unknown,
            category=unknown,
            subcategory=unknown,
            brand=unknown,
            color=pl.lit(None, dtype=pl.String),
            material=pl.lit(None, dtype=pl.String),
            sizes=pl.lit(None, dtype=pl.String),
            waterproof=pl.lit(None, dtype=pl.Boolean),
            unit_cost=pl.lit(None, dtype=pl.Float64),
            launch_date=pl.lit(None, dtype=pl.Date),
            discontinued_date=pl.lit(None, dtype=pl.Date),
        )
        .with_columns(description=pl.col("title"))
        .sort("sku")
    )
    return PRODUCTS.conform(products)


def _customers(lines: pl.DataFrame) -> pl.DataFrame:
    known = lines.filter(pl.col("customer_id").is_not_null())
    region = _most_frequent(known, by="customer_id", value="country", ties="latest").rename(
        {"country": "region"}
    )
    customers = (
        known.select("customer_id")
        .unique()
        .join(region, on="customer_id", how="left")
        .with_columns(
            segment=pl.lit(None, dtype=pl.String),
            signup_date=pl.lit(None, dtype=pl.Date),
            home_store_id=pl.lit(STORE_ID),
        )
        .sort("customer_id")
    )
    return CUSTOMERS.conform(customers)


def _stores(lines: pl.DataFrame) -> pl.DataFrame:
    store = pl.DataFrame(
        {
            "store_id": [STORE_ID],
            "store_name": ["UCI Online Retail (UK online gift-ware retailer)"],
            "region": ["United Kingdom"],
            "format": ["online"],
            "city": [None],
            "opened_date": [None],
            "size_sqm": [0.0],
        },
        schema_overrides={"city": pl.String, "opened_date": pl.Date},
    )
    return STORES.conform(store)


def _most_frequent(frame: pl.DataFrame, *, by: str, value: str, ties: str) -> pl.DataFrame:
    """Per ``by``, the ``value`` found on the most lines.

    Ties go to the value seen most recently (``ties="latest"``) or to the larger value
    (``ties="highest"``), so the result does not depend on row order.
    """
    tie_column = {"latest": "latest", "highest": value}[ties]
    return (
        frame.group_by(by, value)
        .agg(pl.len().alias("n"), pl.col("invoice_ts").max().alias("latest"))
        .sort(by, "n", tie_column, descending=[False, True, True])
        .unique(by, keep="first", maintain_order=True)
        .select(by, value)
    )


# --- files for `retail land` ----------------------------------------------------------------


def derive_landing_files(out_dir: Path | str, path: Path | str | None = None) -> dict[str, Path]:
    """Write the sample as files for `retail land` (one per feed) and return them; land each
    with ``benchmarks/landing/uci_online_retail_sample/<feed>.yaml``.

    The invoice lines cannot be landed row for row: the sales feed is one row per day, store
    and SKU (lines are summed), products and customers are one row per key. The columns come
    from ``online_retail_as_raw_feeds`` (exclusions and all); what is the same for every row
    is left to the mappings, where it can be read and changed:

    - ``sales.csv``: date, sku, units_sold, unit_price, revenue, sales_value (units AND value:
      the demand quantity is units); ``sales.yaml`` sets the store ``UK-ONLINE``. Days without
      a sampled line are absent - this is a ~3.7 % line sample, not a zero-sale day.
    - ``products.csv``: sku, title, description, list_price, attributes; ``products.yaml``
      sets department, category, subcategory and brand "unknown" (the data has none).
    - ``customers.csv``: customer_id and region (the customer's most frequent country);
      ``customers.yaml`` sets the home store ``UK-ONLINE``; segment and signup date are null.
    - ``stores.csv``: the one online store (``store_id``, ``store_name``); ``stores.yaml``
      sets region "United Kingdom", format "online" and size 0.
    - ``calendar.csv``: every day from the first to the last invoice day, dates only. The file
      has no holidays; staging derives the ISO parts, and no day is a holiday. UK bank
      holidays would come from another source (gov.uk), not from this data.
    """
    lines = load_online_retail_lines(path)
    feeds = online_retail_as_raw_feeds(lines)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    days = lines["invoice_ts"].dt.date()
    frames = {
        "sales": feeds["sales"].select(
            "date", "sku", "units_sold", "unit_price", "revenue", "sales_value"
        ),
        "products": feeds["products"].select(
            "sku", "title", "description", "list_price", "attributes"
        ),
        "customers": feeds["customers"].select("customer_id", "region"),
        "stores": feeds["stores"].select("store_id", "store_name"),
        "calendar": pl.DataFrame(
            {"date": pl.date_range(days.min(), days.max(), interval="1d", eager=True)}
        ),
    }
    files = {}
    for feed, frame in frames.items():
        files[feed] = out / f"{feed}.csv"
        frame.write_csv(files[feed])
    return files
