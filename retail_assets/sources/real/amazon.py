"""Amazon India product catalog (1,465 scraped product rows, 1,351 distinct ASINs, prices in INR).

Source: ``amazon_india_product_catalog/amazon.csv`` (see its SOURCE.md). Used as a real product
catalog with long-form text for semantic search / RAG, mapped onto the ``products`` contract.
Prices, discounts and counts are text (``₹1,099``, ``₹1,39,900`` in Indian digit grouping,
``64%``, ``24,269``) and are parsed strictly; the two documented dirty values are handled as
SOURCE.md describes: the rating ``|`` of product B08L12N5H1 (a scraping error) and the two
empty ``rating_count`` values both become ``null`` in the attributes.

The review columns (``review_id``, ``review_title``, ``review_content``) are not loaded: this
copy keeps one truncated review per row, which SOURCE.md warns is not usable as reviews.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from retail_assets.sources.contracts import PRODUCTS
from retail_assets.sources.real._csv import CsvRecord, read_records, resolve_dataset_file

DATASET = "amazon_india_product_catalog"
FOLDER = "amazon_india_product_catalog"
FILE_NAME = "amazon.csv"
CURRENCY = "INR"

HEADER = (
    "product_id",
    "product_name",
    "category",
    "discounted_price",
    "actual_price",
    "discount_percentage",
    "rating",
    "rating_count",
    "about_product",
    "review_id",
    "review_title",
    "review_content",
    "img_link",
    "product_link",
)

_ASIN = re.compile(r"[A-Z0-9]{10}")
# Digits with optional thousands separators in either Western (1,099) or Indian (1,39,900)
# grouping, optional decimals.
_GROUPED_NUMBER = re.compile(r"\d{1,3}(?:,\d{2,3})*(?:\.\d+)?|\d+(?:\.\d+)?")
_RUPEES = re.compile(rf"₹({_GROUPED_NUMBER.pattern})")
_PERCENT = re.compile(r"(\d{1,3})%")
_RATING = re.compile(r"\d(?:\.\d+)?")
_URL = re.compile(r"https?://\S+")
_MALFORMED_RATING = "|"  # SOURCE.md: one row (B08L12N5H1) has rating `|`, a scraping error
# Trailing characters dropped from the first title word when it is used as the brand.
_BRAND_TRAILING = ",;:®™"

_ROW_SCHEMA: dict[str, pl.DataType] = {
    "sku": pl.String(),
    "department": pl.String(),
    "category": pl.String(),
    "subcategory": pl.String(),
    "brand": pl.String(),
    "title": pl.String(),
    "description": pl.String(),
    "attributes": pl.String(),
    "list_price": pl.Float64(),
}
# Contract columns this catalog has no data for; they stay null rather than being guessed.
_NOT_IN_SOURCE: dict[str, pl.DataType] = {
    "color": pl.String(),
    "material": pl.String(),
    "sizes": pl.String(),
    "waterproof": pl.Boolean(),
    "unit_cost": pl.Float64(),
    "launch_date": pl.Date(),
    "discontinued_date": pl.Date(),
}


def load_amazon_catalog(path: Path | str | None = None) -> pl.DataFrame:
    """Load the catalog as a ``products`` feed (conformed with ``contracts.PRODUCTS``).

    One row per ASIN: the 1,465 rows hold 114 repeat rows (70 ASINs twice, 22 three times,
    always with the same category; SOURCE.md's "114 products appear twice" counts the repeat
    rows), differing in re-scraped price, rating count or links. The first row in file order
    is kept. Mapping:

    - ``sku``: ``product_id`` (the ASIN).
    - ``department`` / ``category`` / ``subcategory``: levels 1, 2 and 3 of the ``|`` category
      path. The 8 paths with only two levels repeat level 2 as the subcategory; the full path
      (2-7 levels) is kept in ``attributes.category_path``.
    - ``brand``: HEURISTIC - the first word of the title, with trailing ``,;:®™`` removed.
      The source has no brand column; this is right for most rows ("boAt", "Samsung") but
      wrong where a title starts with a generic word ("Portable", "4"). Case variants such
      as "Bajaj"/"BAJAJ" are not merged.
    - ``title``: ``product_name``; ``description``: ``about_product`` with its ``|`` bullet
      separators turned into one bullet per line (empty bullets dropped).
    - ``list_price``: ``actual_price`` in INR (the undiscounted price).
    - ``unit_cost``, ``launch_date``, ``discontinued_date``, ``color``, ``material``, ``sizes``,
      ``waterproof``: null - not in the source (nothing is guessed from the text).
    - ``attributes`` (JSON): ``currency`` "INR", ``discounted_price``, ``discount_pct`` (a
      fraction, 0.64 for "64%", like the platform's ``promo_discount_pct``), ``rating``
      (null for the malformed ``|``), ``rating_count`` (null when empty), ``category_path``,
      ``product_url`` and ``image_url``.

    Every used field is validated and problems raise ``RealDataFormatError`` with file, line
    and column. The prices are as scraped around January 2023.
    """
    csv_path = resolve_dataset_file(DATASET, FOLDER, FILE_NAME, path)
    rows: list[dict] = []
    seen: set[str] = set()
    for record in read_records(csv_path, HEADER):
        row = _product_row(record)
        if row["sku"] in seen:
            continue
        seen.add(row["sku"])
        rows.append(row)
    frame = pl.DataFrame(rows, schema=_ROW_SCHEMA).with_columns(
        pl.lit(None, dtype=dtype).alias(name) for name, dtype in _NOT_IN_SOURCE.items()
    )
    return PRODUCTS.conform(frame)


def _product_row(record: CsvRecord) -> dict:
    sku = record.matching("product_id", _ASIN, "a 10-character ASIN")
    title = record.required("product_name").strip()
    path = _category_path(record)
    list_price = _rupees(record, "actual_price")
    if list_price <= 0:
        raise record.error("actual_price", f"expected a positive price, got {list_price}")
    discounted = _rupees(record, "discounted_price")
    discount_pct = int(
        record.matching("discount_percentage", _PERCENT, "a percentage like '64%'")[:-1]
    )
    if discount_pct > 100:
        raise record.error("discount_percentage", f"expected 0-100%, got {discount_pct}%")
    description = "\n".join(
        part.strip() for part in record.required("about_product").split("|") if part.strip()
    )
    attributes = {
        "currency": CURRENCY,
        "discounted_price": discounted,
        "discount_pct": discount_pct / 100,
        "rating": _rating(record),
        "rating_count": _rating_count(record),
        "category_path": path,
        "product_url": record.matching("product_link", _URL, "an http(s) URL"),
        "image_url": record.matching("img_link", _URL, "an http(s) URL"),
    }
    return {
        "sku": sku,
        "department": path[0],
        "category": path[1],
        "subcategory": path[2] if len(path) > 2 else path[1],
        "brand": _brand(title),
        "title": title,
        "description": description,
        "attributes": json.dumps(attributes, ensure_ascii=False),
        "list_price": list_price,
    }


def _category_path(record: CsvRecord) -> list[str]:
    value = record.required("category")
    parts = value.split("|")
    if len(parts) < 2 or any(not p.strip() for p in parts):
        raise record.error(
            "category", f"expected a '|'-separated path of at least 2 levels, got {value!r}"
        )
    return [p.strip() for p in parts]


def _rupees(record: CsvRecord, column: str) -> float:
    match = _RUPEES.fullmatch(record.required(column))
    if match is None:
        raise record.error(
            column, f"expected a rupee price like '₹1,099', got {record.fields[column]!r}"
        )
    return float(match.group(1).replace(",", ""))


def _rating(record: CsvRecord) -> float | None:
    value = record.fields["rating"]
    if value == _MALFORMED_RATING:
        return None
    if not _RATING.fullmatch(value) or not 0 <= float(value) <= 5:
        raise record.error("rating", f"expected a rating 0-5 (or the known '|'), got {value!r}")
    return float(value)


def _rating_count(record: CsvRecord) -> int | None:
    value = record.fields["rating_count"]
    if value == "":
        return None
    if not re.fullmatch(r"\d{1,3}(?:,\d{2,3})*|\d+", value):
        raise record.error("rating_count", f"expected a count like '24,269', got {value!r}")
    return int(value.replace(",", ""))


def _brand(title: str) -> str:
    first_word = title.split()[0]
    return first_word.rstrip(_BRAND_TRAILING) or first_word


# --- files for `retail land` ----------------------------------------------------------------


def derive_landing_files(out_dir: Path | str, path: Path | str | None = None) -> dict[str, Path]:
    """Write the catalog as ``products.csv`` for `retail land` (with
    ``benchmarks/landing/amazon_india_product_catalog/products.yaml``) and return it.

    The raw file cannot be landed row for row: 114 ASINs appear twice (the products key must
    be unique; the first row is kept), prices are text like ``₹1,39,900`` (Indian digit
    grouping, which a plain number parser rejects), the ``|`` category path is three columns
    of the contract, and ``attributes`` is JSON built from several columns. The columns are
    those of ``load_amazon_catalog``; the ones the catalog has no data for are left out and
    land as null.
    """
    catalog = load_amazon_catalog(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"products": out / "products.csv"}
    catalog.select(list(_ROW_SCHEMA)).write_csv(files["products"])
    return files
