"""Deterministic checks of one answer against the truth: the whole catalog (plus the eval's
test-only products) and every policy document - not the retrieved context, so retrieval
misses cannot hide a wrong claim.

A claim is unsupported (a hallucination) when:
- it names a SKU that does not exist;
- it quotes a price that is not the list price of a product the sentence (or, if the sentence
  names none, the answer) mentions, nor an amount in a policy, nor a bound the customer gave;
- it quotes a percentage or a policy quantity (days, hours, years, months, weeks, points) that
  no policy and no mentioned product's attributes contain;
- it gives a size a mentioned product does not come in, or a US shoe size not in the guide.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from retail_assets.assistant.guard import (
    _SIZE_TOKEN,
    _UNITS,
    PERCENT_RE,
    PRICE_RE,
    QUANTITY_RE,
    SIZE_RE,
    SKU_RE,
    _find_all,
    _price,
    _table_column_values,
    normalise_sku,
    price_owners,
    split_sentences,
    strip_markup,
    text_quantities,
)
from retail_assets.assistant.guard import BOUND_RE as _BOUND_RE

POLICY_UNITS = {"day", "hour", "year", "month", "week", "point"}


@dataclass
class Truth:
    products: dict[str, dict[str, Any]]
    policy_text: str
    titles: list[tuple[str, str]] = field(default_factory=list)  # (lower title, sku)

    @classmethod
    def build(
        cls,
        products: pl.DataFrame,
        documents: pl.DataFrame,
        fixtures: list[dict[str, Any]] | None = None,
    ) -> Truth:
        rows = {r["sku"]: r for r in products.iter_rows(named=True)}
        for fixture in fixtures or []:
            rows[fixture["sku"]] = fixture
        text = "\n".join(str(b) for b in documents["body"].to_list()).replace("**", "")
        truth = cls(rows, text)
        truth.titles = sorted(
            ((str(r["title"]).lower(), sku) for sku, r in rows.items() if r.get("title")),
            key=lambda t: -len(t[0]),
        )
        truth.policy_amounts = {_price(m) for m in PRICE_RE.finditer(text)}
        truth.policy_percents = {float(m.group(1)) for m in PERCENT_RE.finditer(text)}
        truth.policy_quantities = text_quantities(text)
        truth.us_sizes = _table_column_values(text, "US")
        return truth

    def mentions(self, sentence: str) -> list[tuple[int, str]]:
        """(position, SKU) of every mention of a product: by SKU, by full title, or by title
        without its color where no full title covers that spot."""
        found: set[tuple[int, str]] = set()
        covered: list[tuple[int, int]] = []
        for match in SKU_RE.finditer(sentence):
            found.add((match.start(), normalise_sku(match.group(1))))
        lowered = sentence.lower()
        for title, sku in self.titles:
            for start, end in _find_all(lowered, title):
                found.add((start, sku))
                covered.append((start, end))
        for title, sku in self.titles:
            short = title.rsplit(" - ", 1)[0]
            if short == title:
                continue
            for start, _ in _find_all(lowered, short):
                if not any(a <= start < b for a, b in covered):
                    found.add((start, sku))
        return sorted(found)

    def referenced(self, sentence: str) -> list[str]:
        return list(dict.fromkeys(sku for _, sku in self.mentions(sentence)))

    def product_quantities(self, sku: str) -> set[tuple[float, str]]:
        row = self.products.get(sku) or {}
        try:
            attributes = json.loads(row.get("attributes_json") or "{}")
        except (TypeError, ValueError):
            attributes = {}
        out = set()
        for key, value in attributes.items():
            if isinstance(value, int | float):
                for suffix, unit in (("_h", "hour"), ("_years", "year"), ("_kg", "kg")):
                    if key.endswith(suffix):
                        out.add((round(float(value), 2), unit))
        return out

    def sizes(self, sku: str) -> set[str]:
        raw = str((self.products.get(sku) or {}).get("sizes") or "")
        return {s.strip().upper() for s in raw.split(",") if s.strip()}


def unsupported_claims(text: str, truth: Truth, question: str = "") -> list[str]:
    """Every claim in `text` the catalog and the policies do not support."""
    problems: list[str] = []
    text = strip_markup(text, question)
    answer_refs = [s for s in truth.referenced(text) if s in truth.products]
    bounds = {float(m.group(2)) for m in _BOUND_RE.finditer(question)}
    for sentence in split_sentences(text):
        refs = [s for s in truth.referenced(sentence) if s in truth.products]
        for match in SKU_RE.finditer(sentence):
            sku = normalise_sku(match.group(1))
            if sku not in truth.products:
                problems.append(f"invented SKU {sku}")
        mentions = [(pos, sku) for pos, sku in truth.mentions(sentence) if sku in truth.products]
        for match in PRICE_RE.finditer(sentence):
            value = _price(match)
            scope = price_owners(mentions, match.start()) or answer_refs
            prices = {round(float(truth.products[s]["list_price"]), 2) for s in scope}
            if value in prices or value in truth.policy_amounts:
                continue
            before = sentence[max(0, match.start() - 16) : match.start()]
            if value in bounds and _BOUND_RE.search(before + match.group(0)):
                continue
            problems.append(
                f"price {match.group(0).strip()} is not a list price of {scope or 'any mentioned product'} nor a policy amount"
            )
        for match in PERCENT_RE.finditer(sentence):
            if float(match.group(1)) not in truth.policy_percents:
                problems.append(f"percentage {match.group(0)} is in no policy")
        for match in QUANTITY_RE.finditer(sentence):
            unit = _UNITS[match.group(3).lower()]
            if unit not in POLICY_UNITS:
                continue
            allowed = set(truth.policy_quantities)
            for sku in refs or answer_refs:
                allowed |= truth.product_quantities(sku)
            for number in (match.group(1), match.group(2)):
                if number and (round(float(number), 2), unit) not in allowed:
                    problems.append(f"{match.group(0)} is in no policy nor product attribute")
                    break
        for match in SIZE_RE.finditer(sentence):
            raw = match.group(1) or match.group(2) or match.group(3) or ""
            tokens = [
                f"{float(t):g}" if t[0].isdigit() else t.upper()
                for t in re.findall(_SIZE_TOKEN, re.sub(r"\b(?:EU|US)\b", " ", raw))
            ]
            if match.group(3):
                bad = [t for t in tokens if t not in truth.us_sizes]
            else:
                sized = [s for s in refs if truth.sizes(s)]
                if not sized:
                    continue
                offered = set().union(*(truth.sizes(s) for s in sized))
                bad = [t for t in tokens if t not in offered]
            if bad:
                problems.append(f"size {', '.join(bad)} not offered")
    return problems


def has_fact(answer: str, fact: str) -> bool:
    text = answer.replace("**", "")
    pattern = r"(?<![\w.])" + re.escape(fact) + r"(?![\w])"
    if fact.startswith("$"):
        pattern = re.escape(fact) + r"(?!\d|[.,]\d)"
    flags = 0 if (fact.isupper() or fact.startswith("Size ")) else re.IGNORECASE
    if fact == "waterproof":  # "not waterproof" must not count as "waterproof"
        return bool(re.search(r"(?<!not )\bwaterproof\b", text, re.IGNORECASE))
    return bool(re.search(pattern, text, flags))
