"""What the RAG index holds: one node per active catalog SKU and one per section of each policy
or FAQ document.

Every node carries two things. Its *text* is what gets embedded and (shortened) shown to the
model; it is sanitised first (see safety.py), and anything instruction-like found in a product
description is recorded in the node's `flags`. Its *metadata* is structured and trusted: SKU,
list price, sizes, attributes, document id. The grounding guard and the citations use only the
metadata (and the company's own policy text), never the free text of a listing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from retail_assets.assistant.safety import sanitize

PRODUCT = "product"
DOCUMENT = "document"

PRODUCT_COLUMNS = (
    "sku",
    "department",
    "category",
    "subcategory",
    "brand",
    "title",
    "description",
    "color",
    "material",
    "sizes",
    "is_waterproof",
    "attributes_json",
    "list_price",
)

# attributes_json keys -> how to say them (value, unit)
ATTRIBUTE_LABELS: dict[str, tuple[str, str]] = {
    "battery_h": ("battery life", "hours"),
    "screen_in": ("screen", "inch"),
    "weight_kg": ("weight", "kg"),
    "warranty_years": ("warranty", "years"),
    "thickness_mm": ("thickness", "mm"),
    "pieces": ("pieces", ""),
    "volume_ml": ("volume", "ml"),
    "capacity_l": ("capacity", "L"),
    "age_min": ("ages", "and up"),
    "capacity_persons": ("sleeps", "people"),
    "comfort_temp_c": ("comfort temperature", "°C"),
    "wattage_w": ("power", "W"),
    "lumens": ("brightness", "lumens"),
    "diameter_cm": ("diameter", "cm"),
    "max_load_kg": ("max load", "kg"),
    "max_weight_kg": ("max weight", "kg"),
    "key_ingredients": ("key ingredients", ""),
    "scent_notes": ("scent notes", ""),
    "bed_size": ("bed size", ""),
    "players": ("players", ""),
    "burners": ("burners", ""),
    "channels": ("channels", ""),
    "certification": ("certification", ""),
    "gender": ("fit", ""),
}
# Already in their own columns (or internal).
SKIP_ATTRIBUTES = {"brand_tier", "color", "material", "sizes", "waterproof"}


@dataclass
class NodeSpec:
    """A node before embedding: id, embedded text, trusted metadata."""

    node_id: str
    text: str
    metadata: dict[str, Any]
    flags: list[dict[str, str]] = field(default_factory=list)


def _clean(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    return value


def product_attributes(attributes_json: str | None) -> dict[str, Any]:
    if not attributes_json:
        return {}
    try:
        values = json.loads(attributes_json)
    except (TypeError, ValueError):
        return {}
    return {k: v for k, v in values.items() if k not in SKIP_ATTRIBUTES and v is not None}


def attribute_phrases(attributes: dict[str, Any]) -> list[str]:
    phrases = []
    for key, value in sorted(attributes.items()):
        label, unit = ATTRIBUTE_LABELS.get(key, (key.replace("_", " "), ""))
        text = f"{value:g}" if isinstance(value, float) else str(value)
        if unit.endswith("s") and value == 1:
            unit = unit[:-1]
        phrases.append(f"{label} {text}{(' ' + unit) if unit else ''}".strip())
    return phrases


def product_node(row: dict[str, Any]) -> NodeSpec:
    sku = str(row["sku"])
    description, flags = sanitize(str(row.get("description") or ""), sku)
    attributes = product_attributes(row.get("attributes_json"))
    sizes = _clean(row.get("sizes"))
    waterproof = _clean(row.get("is_waterproof"))
    facts = [
        f"{row['brand']} {row['subcategory']} ({row['department']} > {row['category']})",
        f"color {row['color']}" if _clean(row.get("color")) else "",
        f"material {row['material']}" if _clean(row.get("material")) else "",
        f"sizes {sizes}" if sizes else "",
        {True: "waterproof", False: "not waterproof"}.get(waterproof, ""),
    ]
    text = f"{row['title']}. " + ". ".join(f for f in facts if f) + f". {description}"
    price = _clean(row.get("list_price"))
    metadata = {
        "kind": PRODUCT,
        "sku": sku,
        "title": str(row["title"]),
        "brand": str(row["brand"]),
        "department": str(row["department"]),
        "category": str(row["category"]),
        "subcategory": str(row["subcategory"]),
        "color": _clean(row.get("color")),
        "material": _clean(row.get("material")),
        "sizes": sizes,
        "is_waterproof": waterproof,
        "list_price": round(float(price), 2) if price is not None else None,
        "attributes": json.dumps(attributes, sort_keys=True),
        "flags": json.dumps([f.as_dict() for f in flags]),
    }
    return NodeSpec(sku, text, metadata, [f.as_dict() for f in flags])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:48] or "section"


def split_sections(body: str) -> list[tuple[str, str]]:
    """Markdown body -> (section heading, section text); FAQ questions (###) are sections too."""
    sections: list[tuple[str, list[str]]] = [("overview", [])]
    for line in body.splitlines():
        heading = re.match(r"^(#{2,3})\s+(.*)$", line)
        if heading:
            sections.append((heading.group(2).strip(), []))
        elif re.match(r"^#\s+", line):
            continue
        else:
            sections[-1][1].append(line)
    out = []
    for heading, lines in sections:
        text = "\n".join(lines).strip()
        if text:
            out.append((heading, text))
    return out


def document_nodes(row: dict[str, Any]) -> list[NodeSpec]:
    doc_id = str(row["doc_id"])
    title = str(row["title"])
    nodes = []
    seen: set[str] = set()
    for heading, text in split_sections(str(row["body"] or "")):
        slug = _slug(heading)
        while slug in seen:
            slug += "-x"
        seen.add(slug)
        clean, flags = sanitize(text.replace("**", ""), doc_id)
        # Tables keep their line structure (sanitize joins sentences; rows are one per line).
        if "|" in text and not flags:
            clean = re.sub(r"[ \t]+", " ", text.replace("**", "")).strip()
        section = "" if heading == "overview" else heading
        nodes.append(
            NodeSpec(
                f"{doc_id}#{slug}",
                f"{title}{(' - ' + section) if section else ''}\n{clean}",
                {
                    "kind": DOCUMENT,
                    "doc_id": doc_id,
                    "title": title,
                    "section": section,
                    "doc_type": str(row.get("doc_type") or ""),
                    "effective_date": str(row.get("effective_date") or ""),
                    "flags": json.dumps([f.as_dict() for f in flags]),
                },
                [f.as_dict() for f in flags],
            )
        )
    return nodes


def active_products(products: pl.DataFrame) -> pl.DataFrame:
    frame = products
    if "is_active" in frame.columns:
        frame = frame.filter(pl.col("is_active").fill_null(False))
    missing = [c for c in PRODUCT_COLUMNS if c not in frame.columns]
    for column in missing:
        frame = frame.with_columns(pl.lit(None).alias(column))
    return frame.select(PRODUCT_COLUMNS).sort("sku")


def build_nodes(products: pl.DataFrame, documents: pl.DataFrame) -> list[NodeSpec]:
    nodes = [product_node(row) for row in active_products(products).iter_rows(named=True)]
    for row in documents.sort("doc_id").iter_rows(named=True):
        nodes.extend(document_nodes(row))
    return nodes


def content_hash(nodes: list[NodeSpec]) -> str:
    digest = hashlib.sha256()
    for node in sorted(nodes, key=lambda n: n.node_id):
        digest.update(json.dumps([node.node_id, node.text, node.metadata], sort_keys=True).encode())
    return digest.hexdigest()
