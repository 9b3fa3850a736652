"""The search eval set: queries written from catalog facts, with graded relevance from the same
facts, so it never depends on an index or an embedding model.

Every searchable product is an anchor for queries of several families, each naming a product
type (its subcategory, or its category) plus zero or more modifiers taken from the product's
own columns:

| family | example | type | modifiers |
| --- | --- | --- | --- |
| subcategory | `rain jackets` | subcategory | - |
| category | `cookware` | category | - |
| color | `navy rain jackets` | subcategory | color |
| brand | `sonara earbuds` | subcategory | brand |
| material | `duvet covers made of linen` | subcategory | material |
| waterproof | `waterproof hiking boots` | subcategory | waterproof |
| gender | `hiking jackets for women` | subcategory | gender |
| title | `packable rain jacket for women in charcoal` (title paraphrase: brand dropped, gender and colour moved into words) | subcategory | name, gender, color |

A product's grade for a query is 0 if its type differs, otherwise 1 + 2 x (share of the
query's modifiers it matches), rounded: 3 = matches everything the query says, 1 = right kind
of product only. Queries are deduplicated by text and, per family, a deterministic sample (by
a hash of the text) of at most `MAX_PER_FAMILY` is kept.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

MAX_PER_FAMILY = 50
K = 10
# Graded relevance: recall counts products that match everything the query says.
RELEVANT_GRADE = 3
_GENDER = {"Men's": ("men", "men's"), "Women's": ("women", "women's")}


@dataclass(frozen=True)
class EvalQuery:
    qid: str
    text: str
    family: str
    facts: dict[str, Any]
    relevance: dict[str, int]
    """SKU -> grade (1-3); products not listed are grade 0."""


@dataclass(frozen=True)
class EvalSet:
    version: str
    catalog_hash: str
    n_products: int
    queries: list[EvalQuery] = field(default_factory=list)

    @property
    def texts(self) -> list[str]:
        return [q.text for q in self.queries]

    def families(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for q in self.queries:
            counts[q.family] = counts.get(q.family, 0) + 1
        return dict(sorted(counts.items()))

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "catalog_hash": self.catalog_hash,
                "n_products": self.n_products,
                "queries": [q.__dict__ for q in self.queries],
            },
            indent=1,
        )


def product_name(title: str, brand: str | None, gender: str | None, color: str | None) -> str:
    """The title without brand, gender word and colour suffix: 'Packable Rain Jacket'."""
    name = title
    if brand and name.startswith(brand + " "):
        name = name[len(brand) + 1 :]
    if gender and name.startswith(gender + " "):
        name = name[len(gender) + 1 :]
    if color and name.endswith(f" - {color}"):
        name = name[: -len(color) - 3]
    return name.strip()


def _pick(options: Sequence[str], text_seed: str) -> str:
    digest = hashlib.blake2b(text_seed.encode(), digest_size=4).digest()
    return options[int.from_bytes(digest, "big") % len(options)]


def _anchor_queries(p: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(family, text, facts) for one anchor product. Facts: 'type' (column, value) and
    'modifiers' {column: value}."""
    sub = p["subcategory"]
    sub_l = sub.lower()
    by_sub = ("subcategory", sub)
    out: list[tuple[str, str, dict[str, Any]]] = [
        ("subcategory", sub_l, {"type": by_sub, "modifiers": {}}),
        ("category", p["category"].lower(), {"type": ("category", p["category"]), "modifiers": {}}),
        (
            "brand",
            f"{p['brand'].lower()} {sub_l}",
            {"type": by_sub, "modifiers": {"brand": p["brand"]}},
        ),
    ]
    if p["color"]:
        color = p["color"].lower()
        text = _pick((f"{color} {sub_l}", f"{sub_l} in {color}"), p["sku"] + "color")
        out.append(("color", text, {"type": by_sub, "modifiers": {"color": p["color"]}}))
    if p["material"]:
        material = p["material"].lower()
        text = _pick((f"{sub_l} made of {material}", f"{material} {sub_l}"), p["sku"] + "mat")
        out.append(("material", text, {"type": by_sub, "modifiers": {"material": p["material"]}}))
    if p["is_waterproof"] is True:
        out.append(
            (
                "waterproof",
                f"waterproof {sub_l}",
                {"type": by_sub, "modifiers": {"is_waterproof": True}},
            )
        )
    if p["gender"] in _GENDER:
        plain, possessive = _GENDER[p["gender"]]
        text = _pick((f"{sub_l} for {plain}", f"{possessive} {sub_l}"), p["sku"] + "gender")
        out.append(("gender", text, {"type": by_sub, "modifiers": {"gender": p["gender"]}}))
    name = product_name(p["title"], p["brand"], p["gender"], p["color"])
    modifiers: dict[str, Any] = {"name": name}
    words = [name.lower()]
    if p["gender"] in _GENDER:
        modifiers["gender"] = p["gender"]
        words.append(f"for {_GENDER[p['gender']][0]}")
    if p["color"]:
        modifiers["color"] = p["color"]
        words.append(f"in {p['color'].lower()}")
    out.append(("title", " ".join(words), {"type": by_sub, "modifiers": modifiers}))
    return out


def _grades(products: list[dict[str, Any]], facts: dict[str, Any]) -> dict[str, int]:
    column, value = facts["type"]
    modifiers = facts["modifiers"]
    grades = {}
    for p in products:
        if p[column] != value:
            continue
        if not modifiers:
            grades[p["sku"]] = 3
            continue
        matched = sum(p["name"] == v if c == "name" else p[c] == v for c, v in modifiers.items())
        grades[p["sku"]] = 1 + round(2 * matched / len(modifiers))
    return grades


def build_eval_set(products: pl.DataFrame, catalog_hash: str) -> EvalSet:
    """The eval set for a searchable catalog (`catalog.searchable_products`)."""
    rows = [
        {**p, "name": product_name(p["title"], p["brand"], p["gender"], p["color"])}
        for p in products.iter_rows(named=True)
    ]
    candidates: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
    for p in rows:
        for family, text, facts in _anchor_queries(p):
            candidates.setdefault(family, {}).setdefault(text, (family, facts))
    queries: list[EvalQuery] = []
    for family in sorted(candidates):
        ranked = sorted(
            candidates[family].items(),
            key=lambda item: hashlib.blake2b(item[0].encode(), digest_size=8).digest(),
        )[:MAX_PER_FAMILY]
        for text, (_, facts) in sorted(ranked):
            relevance = _grades(rows, facts)
            if not any(g >= RELEVANT_GRADE for g in relevance.values()):
                continue
            qid = hashlib.blake2b(f"{family}:{text}".encode(), digest_size=6).hexdigest()
            queries.append(
                EvalQuery(
                    qid=qid,
                    text=text,
                    family=family,
                    facts={"type": list(facts["type"]), "modifiers": facts["modifiers"]},
                    relevance=relevance,
                )
            )
    digest = hashlib.sha256()
    for q in queries:
        digest.update(json.dumps([q.text, sorted(q.relevance.items())]).encode())
    return EvalSet(
        version=digest.hexdigest()[:12],
        catalog_hash=catalog_hash,
        n_products=len(rows),
        queries=queries,
    )


# -- metrics ------------------------------------------------------------------------------------


def recall_at_k(ranked: Sequence[str], relevance: dict[str, int], k: int = K) -> float:
    """Share of the fully relevant products (grade 3) in the top k, out of at most k."""
    relevant = {sku for sku, grade in relevance.items() if grade >= RELEVANT_GRADE}
    if not relevant:
        return float("nan")
    return len(relevant.intersection(ranked[:k])) / min(k, len(relevant))


def ndcg_at_k(ranked: Sequence[str], relevance: dict[str, int], k: int = K) -> float:
    """NDCG with gains 2^grade - 1."""
    dcg = sum(
        (2 ** relevance.get(sku, 0) - 1) / math.log2(i + 2) for i, sku in enumerate(ranked[:k])
    )
    ideal = sorted((2**g - 1 for g in relevance.values()), reverse=True)[:k]
    idcg = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal))
    return dcg / idcg if idcg > 0 else float("nan")


def overlap_at_k(ranked: Sequence[str], reference: Sequence[str], k: int = K) -> float:
    """recall@k of `ranked` against a reference ranking (e.g. ANN vs exact search)."""
    truth = set(reference[:k])
    return len(truth.intersection(ranked[:k])) / len(truth) if truth else float("nan")


def _mean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else float("nan")


def score_rankings(eval_set: EvalSet, rankings: list[list[str]], k: int = K) -> dict[str, Any]:
    """Mean recall@k and NDCG@k overall and per family for one ranking per query."""
    per_query = [
        (q.family, recall_at_k(r, q.relevance, k), ndcg_at_k(r, q.relevance, k))
        for q, r in zip(eval_set.queries, rankings, strict=True)
    ]
    families = {}
    for family in sorted({f for f, _, _ in per_query}):
        rows = [(r, n) for f, r, n in per_query if f == family]
        families[family] = {
            "queries": len(rows),
            f"recall@{k}": _mean([r for r, _ in rows]),
            f"ndcg@{k}": _mean([n for _, n in rows]),
        }
    return {
        "queries": len(per_query),
        f"recall@{k}": _mean([r for _, r, _ in per_query]),
        f"ndcg@{k}": _mean([n for _, _, n in per_query]),
        "families": families,
    }
