"""What search knows about a product: the text it embeds, the fields it filters and returns,
and the content hash that decides whether a product's vector can be reused.

Only products on sale (`is_active`: launched and not discontinued) are searchable; a product
that is discontinued drops out of the next index version.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import polars as pl

# MiniLM was trained on 128-token inputs; the title, taxonomy and attributes come first, so
# truncation only cuts the tail of the description (care and warranty boilerplate).
PRODUCT_MAX_TOKENS = 128
# Attributes already rendered from their own column, and ones that say nothing to a shopper.
_RENDERED = {"color", "material", "waterproof", "gender", "sizes"}
_GENDER_WORDS = {"Men's": "men", "Women's": "women", "Unisex": "unisex"}

# Columns of the products table stored with every index version (serving filters and answers
# from it); `key` is the usearch key, `content_hash` the hash of `text`.
PRODUCT_COLUMNS = (
    "sku",
    "key",
    "title",
    "department",
    "category",
    "subcategory",
    "brand",
    "color",
    "material",
    "gender",
    "is_waterproof",
    "list_price",
    "content_hash",
)


def _attributes(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def product_text(row: dict[str, Any]) -> str:
    """The text a product is embedded from: title, taxonomy, brand, attributes, description."""
    attributes = _attributes(row.get("attributes_json"))
    parts = [f"{row['title']}."]
    taxonomy = ", ".join(
        str(row[c]) for c in ("department", "category", "subcategory") if row.get(c)
    )
    if taxonomy:
        parts.append(f"{taxonomy}.")
    if row.get("brand"):
        parts.append(f"Brand: {row['brand']}.")
    gender = attributes.get("gender")
    if gender in _GENDER_WORDS:
        parts.append(f"For {_GENDER_WORDS[gender]}.")
    if row.get("color"):
        parts.append(f"Color: {row['color']}.")
    if row.get("material"):
        parts.append(f"Material: {row['material']}.")
    if row.get("is_waterproof") is True:
        parts.append("Waterproof.")
    elif row.get("is_waterproof") is False:
        parts.append("Not waterproof.")
    extras = [
        f"{key.replace('_', ' ')}: {_value_text(value)}"
        for key, value in sorted(attributes.items())
        if key not in _RENDERED and value is not None
    ]
    if extras:
        parts.append("; ".join(extras) + ".")
    if row.get("sizes"):
        parts.append(f"Sizes: {row['sizes'].replace(',', ', ')}.")
    if row.get("description"):
        parts.append(str(row["description"]))
    return " ".join(parts)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def sku_key(sku: str) -> int:
    """The usearch key of a SKU: 63 bits of a hash (stable across versions and processes)."""
    return int.from_bytes(hashlib.blake2b(sku.encode(), digest_size=8).digest(), "big") >> 1


def searchable_products(dim_products: pl.DataFrame) -> pl.DataFrame:
    """The searchable catalog, one row per SKU sorted by SKU: PRODUCT_COLUMNS plus `text`."""
    active = dim_products.filter(pl.col("is_active").fill_null(False)).sort("sku")
    rows = []
    for row in active.iter_rows(named=True):
        text = product_text(row)
        gender = _attributes(row.get("attributes_json")).get("gender")
        rows.append(
            {
                "sku": row["sku"],
                "key": sku_key(row["sku"]),
                "title": row["title"],
                "department": row.get("department"),
                "category": row.get("category"),
                "subcategory": row.get("subcategory"),
                "brand": row.get("brand"),
                "color": row.get("color"),
                "material": row.get("material"),
                "gender": gender if isinstance(gender, str) else None,
                "is_waterproof": row.get("is_waterproof"),
                "list_price": float(row["list_price"])
                if row.get("list_price") is not None
                else None,
                "content_hash": content_hash(text),
                "text": text,
            }
        )
    schema = {
        "sku": pl.String,
        "key": pl.Int64,
        "title": pl.String,
        "department": pl.String,
        "category": pl.String,
        "subcategory": pl.String,
        "brand": pl.String,
        "color": pl.String,
        "material": pl.String,
        "gender": pl.String,
        "is_waterproof": pl.Boolean,
        "list_price": pl.Float64,
        "content_hash": pl.String,
        "text": pl.String,
    }
    frame = pl.DataFrame(rows, schema=schema)
    duplicated = frame.filter(pl.col("key").is_duplicated())
    if duplicated.height:
        raise ValueError(f"usearch key collision between SKUs {duplicated['sku'].to_list()}")
    return frame


def catalog_hash(products: pl.DataFrame) -> str:
    """Hash of everything search serves from the catalog (texts, filters, prices)."""
    digest = hashlib.sha256()
    for row in products.select(PRODUCT_COLUMNS).iter_rows():
        digest.update(json.dumps(row, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:12]
