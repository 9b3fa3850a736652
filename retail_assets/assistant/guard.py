"""The grounding guard: every checkable claim in an answer must be supported by the context
that was retrieved for it, or the sentence carrying it is removed.

Claims, per sentence:

| kind | example | supported when |
| --- | --- | --- |
| sku | `SKU-00042` | the SKU is a retrieved product (metadata, not text) |
| price | `$39.99`, `40 dollars` | equals the list price of a product the sentence refers to (or of any retrieved product if it names none), or an amount in a retrieved policy section |
| percent | `15%` | appears in a retrieved policy section or product attributes |
| quantity | `45 days`, `3-7 business days`, `27 cm` | the number appears in the context with the same unit, or in a context passage that uses that unit |
| size | `size XL`, `EU 42`, `US 10.5` | a size of the product referred to (or of any retrieved product), or in a retrieved size guide |
| comparison | `A is cheaper than B` | the list prices say so |
| number | any other number | appears in the context or the question |
| name | a capitalised name mid-sentence | appears in the context or the question |

Support comes from trusted data only: product metadata (SKU, list price, sizes, attributes
from the warehouse) and the company's policy text. A product description is never a source of
support for prices or SKUs, so an injected "this item costs $1" cannot be made true.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar

from retail_assets.assistant.safety import INSTRUCTION_LIKE, strip_control_tokens

SKU_RE = re.compile(r"\bSKU[\s\-_#:]*(\d{1,6})\b", re.IGNORECASE)
PRICE_RE = re.compile(
    r"(?:\$|USD\s?)\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?!\d)"
    r"|\b(\d+(?:\.\d{1,2})?)\s?(?:USD|usd|dollars?)\b"
)
PERCENT_RE = re.compile(r"\b(\d+(?:\.\d+)?)\s?(?:%|percent\b)")
_UNITS = {
    "business day": "day",
    "business days": "day",
    "day": "day",
    "days": "day",
    "hour": "hour",
    "hours": "hour",
    "hr": "hour",
    "hrs": "hour",
    "h": "hour",
    "year": "year",
    "years": "year",
    "yr": "year",
    "month": "month",
    "months": "month",
    "week": "week",
    "weeks": "week",
    "point": "point",
    "points": "point",
    "cm": "cm",
    "mm": "mm",
    "kg": "kg",
    "g": "g",
    "ml": "ml",
    "l": "l",
    "liter": "l",
    "liters": "l",
    "litre": "l",
    "litres": "l",
    "inch": "inch",
    "inches": "inch",
    "piece": "piece",
    "pieces": "piece",
    "lumen": "lumen",
    "lumens": "lumen",
    "w": "watt",
    "watt": "watt",
    "watts": "watt",
    "°c": "celsius",
    "units": "unit",
    "unit": "unit",
    "people": "people",
    "persons": "people",
}
_UNIT_ALT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
QUANTITY_RE = re.compile(
    rf"(?<![\w.$])(\d+(?:\.\d+)?)(?:\s?(?:-|–|to)\s?(\d+(?:\.\d+)?))?\s?(?:-\s?)?({_UNIT_ALT})(?![\w])",
    re.IGNORECASE,
)
_SIZE_TOKEN = r"(?:XXXL|XXL|XXS|XS|XL|S|M|L|\d{1,2}(?:\.5)?)"
SIZE_RE = re.compile(
    rf"\bsizes?\s*:?\s*((?:EU\s*|US\s*)?{_SIZE_TOKEN}(?:\s*(?:,|/|and|or|to|-|–)\s*(?:EU\s*|US\s*)?{_SIZE_TOKEN})*)(?![\w])"
    r"|\bEU\s?(\d{2})\b"
    r"|\bUS\s?(?:men'?s|women'?s|mens|womens)?\s?(?:size\s)?(\d{1,2}(?:\.5)?)\b",
)
BOUND_RE = re.compile(
    r"\b(under|below|less than|cheaper than|at most|max(?:imum)?|up to|over|above|more than|"
    r"at least|min(?:imum)?|within)\s*(?:of\s*)?\$\s?(\d+(?:\.\d+)?)",
    re.IGNORECASE,
)
NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])")
NAME_RE = re.compile(r"(?<=[a-z,;:]\s)([A-Z][a-zA-Z0-9'&-]+(?:\s+[A-Z0-9][a-zA-Z0-9'&-]*)*)")
CHEAPER_RE = re.compile(
    r"\b(cheaper|less expensive|more affordable|lower[- ]priced|costs? less|lower price)\b", re.I
)
DEARER_RE = re.compile(
    r"\b(more expensive|pricier|costs? more|higher[- ]priced|higher price)\b", re.I
)
CHEAPEST_RE = re.compile(r"\b(cheapest|least expensive|most affordable|lowest[- ]priced)\b", re.I)
PRICIEST_RE = re.compile(r"\b(most expensive|priciest|highest[- ]priced)\b", re.I)

# Capitalised words that are not claims about the catalog.
COMMON_NAMES = {
    "i",
    "i'm",
    "i'd",
    "i'll",
    "i've",
    "you",
    "your",
    "we",
    "our",
    "it",
    "its",
    "the",
    "a",
    "an",
    "this",
    "that",
    "these",
    "those",
    "yes",
    "no",
    "sure",
    "sorry",
    "please",
    "thanks",
    "thank",
    "hello",
    "hi",
    "hey",
    "here",
    "there",
    "however",
    "also",
    "unfortunately",
    "note",
    "great",
    "good",
    "ok",
    "okay",
    "and",
    "or",
    "but",
    "if",
    "for",
    "with",
    "sku",
    "skus",
    "usd",
    "eu",
    "us",
    "uk",
    "id",
    "faq",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "store",
    "customer",
    "service",
    "standard",
    "express",
    "price",
    "answer",
    "question",
    "data",
    "data:",
    "based",
    "according",
    "in",
    "on",
    "at",
    "to",
    "of",
    "is",
    "are",
}


@dataclass
class RemovedClaim:
    claim: str
    kind: str
    reason: str
    sentence: str


@dataclass
class ContextProduct:
    sku: str
    title: str
    brand: str
    list_price: float | None
    sizes: list[str]
    attributes: dict[str, Any]
    text: str  # the product node's (sanitised) text

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any], text: str = "") -> ContextProduct:
        sizes = [s.strip() for s in str(metadata.get("sizes") or "").split(",") if s.strip()]
        try:
            attributes = json.loads(metadata.get("attributes") or "{}")
        except ValueError:
            attributes = {}
        price = metadata.get("list_price")
        return cls(
            sku=str(metadata["sku"]),
            title=str(metadata.get("title") or ""),
            brand=str(metadata.get("brand") or ""),
            list_price=float(price) if price is not None else None,
            sizes=sizes,
            attributes=attributes,
            text=text,
        )

    @property
    def short_title(self) -> str:
        """The title without its trailing color variant ("... - Silver")."""
        return self.title.rsplit(" - ", 1)[0]


@dataclass
class PolicyRow:
    """A row of a policy table ("Canada | $19.99 | 7-14 business days"): a sentence that names
    only this row's label must quote this row's amounts."""

    label: str
    text: str
    amounts: set[float]
    quantities: set[tuple[float, str]]

    @property
    def units(self) -> set[str]:
        return {unit for _, unit in self.quantities}


def policy_rows(text: str) -> list[PolicyRow]:
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        label = cells[0].lower() if cells else ""
        if len(label) < 3 or not re.fullmatch(r"[a-z][a-z &'-]*", label):
            continue
        rest = " ".join(cells[1:])
        quantities = text_quantities(rest)
        amounts = {_price(m) for m in PRICE_RE.finditer(rest)}
        if amounts or quantities:
            rows.append(PolicyRow(label, " | ".join(cells), amounts, quantities))
    return rows


T = TypeVar("T")


def price_owners(refs: list[tuple[int, T]], position: int) -> list[T]:
    """The product(s) a price at `position` is given for: the nearest mention before it (all
    products tied at that mention, e.g. color variants named by their shared title), else the
    first mention after it."""
    before = [(pos, p) for pos, p in refs if pos < position]
    if before:
        last = before[-1][0]
        return [p for pos, p in before if pos == last]
    if refs:
        first = refs[0][0]
        return [p for pos, p in refs if pos == first]
    return []


@dataclass
class GroundingContext:
    """What an answer may rely on: the retrieved products and policy sections."""

    question: str
    products: dict[str, ContextProduct] = field(default_factory=dict)
    documents: dict[str, str] = field(default_factory=dict)  # node id -> sanitised text

    def __post_init__(self) -> None:
        self._index()

    def _index(self) -> None:
        doc_text = "\n".join(self.documents.values())
        product_text = "\n".join(
            " ".join(
                [
                    p.title,
                    p.brand,
                    p.text,
                    " ".join(p.sizes),
                    json.dumps(p.attributes),
                    f"{p.list_price}" if p.list_price is not None else "",
                ]
            )
            for p in self.products.values()
        )
        self.all_text = f"{doc_text}\n{product_text}"
        self.words = {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z0-9'&-]*", self.all_text)}
        self.question_words = {
            w.lower() for w in re.findall(r"[A-Za-z][A-Za-z0-9'&-]*", self.question)
        }
        # "under $100" in the question may be repeated in the answer as a bound, not a price.
        self.question_bounds = {_num(m.group(2)) for m in BOUND_RE.finditer(self.question)}
        self.numbers = {_num(n) for n in NUMBER_RE.findall(self.all_text.replace(",", ""))}
        self.numbers |= {_num(n) for n in NUMBER_RE.findall(self.question.replace(",", ""))}
        for product in self.products.values():
            if product.list_price is not None:
                self.numbers.add(round(product.list_price, 2))
            for value in product.attributes.values():
                if isinstance(value, int | float):
                    self.numbers.add(round(float(value), 2))
        self.doc_amounts = {_price(m) for m in PRICE_RE.finditer(doc_text)}
        self.doc_percents = {_num(m.group(1)) for m in PERCENT_RE.finditer(doc_text)}
        self.quantities = text_quantities(self.all_text)
        for product in self.products.values():
            for key, value in product.attributes.items():
                unit = _attribute_unit(key)
                if unit and isinstance(value, int | float):
                    self.quantities.add((round(float(value), 2), unit))
        self.doc_sizes: set[str] = set()  # sizes a retrieved size guide names (any system)
        self.us_sizes: set[str] = set()  # values of the guide's "US ..." columns
        for text in self.documents.values():
            if re.search(r"size", text, re.I):
                self.doc_sizes |= {t.upper() for t in re.findall(rf"\b{_SIZE_TOKEN}\b", text)}
                self.us_sizes |= _table_column_values(text, "US")
        self.all_sizes = {s.upper() for p in self.products.values() for s in p.sizes}
        self.rows = [row for text in self.documents.values() for row in policy_rows(text)]

    def unit_mentioned(self, unit: str) -> bool:
        names = [u for u, family in _UNITS.items() if family == unit]
        return any(re.search(rf"\b{re.escape(n)}\b", self.all_text, re.I) for n in names)

    def referenced(self, sentence: str) -> list[tuple[int, ContextProduct]]:
        """Every mention of a product in a sentence - by SKU, full title, or title without its
        color where no full title covers that spot - as (position, product), in order."""
        mentions: list[tuple[int, str]] = []
        covered: list[tuple[int, int]] = []
        lowered = sentence.lower()
        for match in SKU_RE.finditer(sentence):
            sku = normalise_sku(match.group(1))
            if sku in self.products:
                mentions.append((match.start(), sku))
        for product in self.products.values():
            for position, end in _find_all(lowered, product.title.lower()):
                mentions.append((position, product.sku))
                covered.append((position, end))
        for product in self.products.values():
            for position, _ in _find_all(lowered, product.short_title.lower()):
                if not any(a <= position < b for a, b in covered):
                    mentions.append((position, product.sku))
        return [(pos, self.products[sku]) for pos, sku in sorted(set(mentions))]


def _find_all(text: str, name: str) -> list[tuple[int, int]]:
    if len(name) <= 6:
        return []
    out, start = [], text.find(name)
    while start >= 0:
        out.append((start, start + len(name)))
        start = text.find(name, start + 1)
    return out


def table_cells(line: str) -> list[str] | None:
    """The cells of a markdown table row; None for the |---|:--:| separator row."""
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return None if all(set(c) <= set("-: ") for c in cells) else cells


def _table_column_values(text: str, prefix: str) -> set[str]:
    """Values of the markdown-table columns whose header starts with `prefix`."""
    values: set[str] = set()
    header: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|"):
            header = []
            continue
        cells = table_cells(line)
        if cells is None:
            continue
        if not header:
            header = cells
            continue
        for name, cell in zip(header, cells, strict=False):
            if name.startswith(prefix) and cell not in ("", "-"):
                values.add(f"{float(cell):g}" if re.fullmatch(r"\d+(?:\.\d+)?", cell) else cell)
    return values


def _num(text: str) -> float:
    return round(float(text.replace(",", "")), 2)


def text_quantities(text: str) -> set[tuple[float, str]]:
    """Every (number, unit) in `text`, both ends of a range ("8-10 hours") included."""
    quantities = set()
    for match in QUANTITY_RE.finditer(text):
        unit = _UNITS[match.group(3).lower()]
        for number in (match.group(1), match.group(2)):
            if number:
                quantities.add((_num(number), unit))
    return quantities


def _price(match: re.Match) -> float:
    if match.group(3):
        return _num(match.group(3))
    whole = match.group(1).replace(",", "")
    cents = match.group(2) or "0"
    return round(float(f"{whole}.{cents}"), 2)


def _attribute_unit(key: str) -> str | None:
    for suffix, unit in (
        ("_h", "hour"),
        ("_kg", "kg"),
        ("_years", "year"),
        ("_mm", "mm"),
        ("_ml", "ml"),
        ("_l", "l"),
        ("_in", "inch"),
        ("_cm", "cm"),
        ("_w", "watt"),
        ("_c", "celsius"),
        ("lumens", "lumen"),
        ("pieces", "piece"),
        ("_persons", "people"),
    ):
        if key.endswith(suffix):
            return unit
    return None


def normalise_sku(digits: str) -> str:
    return f"SKU-{int(digits):05d}"


_DATA_TAG = re.compile(r"</?data>|\[(?:product|document)\s+[^\]]*\]", re.IGNORECASE)
_LABEL_LINE = re.compile(
    r"^\s*(?:DATA|QUESTION|ANSWER|Data|Question|Answer|Store data|Context)\s*:?\s*$"
)
_ANSWER_PREFIX = re.compile(
    r"^\s*(?:the answer(?: to (?:the|your) question)? is|answer(?: \(from data only\))?|"
    r"data|question)\s*:\s*",
    re.IGNORECASE,
)


def strip_markup(text: str, question: str = "") -> str:
    """Undo what a small model echoes from the prompt layout: data tags and node labels,
    table pipes, bare section labels, and sentences restating the question. What remains
    (including echoed data) is guarded like any other text."""
    q_words = set(re.findall(r"[a-z0-9]+", question.lower()))
    out = []
    for line in strip_control_tokens(text).splitlines():
        line = _DATA_TAG.sub(" ", line)
        if _LABEL_LINE.match(line):
            continue
        if line.strip().startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            line = "; ".join(c for c in cells if c) + "."
        line = _ANSWER_PREFIX.sub("", line).strip()
        if not line:
            continue
        kept = []
        for sentence in split_sentences(line):
            s_words = set(re.findall(r"[a-z0-9]+", sentence.lower()))
            if q_words and s_words and len(s_words & q_words) / len(s_words | q_words) >= 0.8:
                continue
            kept.append(sentence)
        if kept:
            out.append(" ".join(kept))
    return "\n".join(out)


def split_sentences(text: str) -> list[str]:
    """Sentences and list items; keeps decimals ($5.99) and abbreviations intact."""
    text = strip_control_tokens(text).replace("**", "")
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[*•-])|\n+", text)
    return [p.strip() for p in parts if p and p.strip() and re.search(r"\w", p)]


@dataclass
class GuardResult:
    text: str
    kept: list[str]
    removed: list[RemovedClaim]
    claims_checked: int


def _masked(sentence: str, spans: list[tuple[int, int]]) -> str:
    chars = list(sentence)
    for start, end in spans:
        for i in range(start, min(end, len(chars))):
            chars[i] = " "
    return "".join(chars)


def check_sentence(sentence: str, ctx: GroundingContext) -> tuple[list[RemovedClaim], int]:
    """The unsupported claims of one sentence and how many claims it made."""
    problems: list[RemovedClaim] = []
    spans: list[tuple[int, int]] = []
    checked = 0

    def bad(claim: str, kind: str, reason: str) -> None:
        problems.append(RemovedClaim(claim.strip(), kind, reason, sentence))

    if INSTRUCTION_LIKE.search(sentence):
        bad(sentence[:120], "instruction", "instruction-like text in the answer")
    refs = ctx.referenced(sentence)
    ref_products = list({p.sku: p for _, p in refs}.values())

    for match in SKU_RE.finditer(sentence):
        checked += 1
        spans.append(match.span())
        sku = normalise_sku(match.group(1))
        if sku not in ctx.products:
            bad(match.group(0), "sku", f"{sku} is not among the retrieved products")

    lowered = sentence.lower()
    rows = [r for r in ctx.rows if re.search(rf"(?<![\w-]){re.escape(r.label)}(?![\w-])", lowered)]
    row = rows[0] if len(rows) == 1 else None

    for match in PRICE_RE.finditer(sentence):
        checked += 1
        spans.append(match.span())
        value = _price(match)
        before = sentence[max(0, match.start() - 16) : match.start()]
        if value in ctx.question_bounds and BOUND_RE.search(before + match.group(0)):
            continue
        if row is not None and row.amounts and value in ctx.doc_amounts:
            if value not in row.amounts:
                bad(match.group(0), "policy", f"the policy gives {row.label!r} as: {row.text}")
            continue
        if value in ctx.doc_amounts:
            continue
        owners = price_owners(refs, match.start())
        allowed = {p.list_price for p in (owners or ctx.products.values())}
        if value not in allowed:
            if owners:
                named = ", ".join(f"{p.sku} is ${p.list_price:,.2f}" for p in owners)
                reason = f"price does not match the product it is given for ({named})"
            else:
                reason = "no retrieved product or policy has this price"
            bad(match.group(0), "price", reason)

    for match in PERCENT_RE.finditer(sentence):
        checked += 1
        spans.append(match.span())
        if _num(match.group(1)) not in ctx.doc_percents:
            bad(match.group(0), "policy", "percentage not in the retrieved policy text")

    for match in QUANTITY_RE.finditer(sentence):
        checked += 1
        spans.append(match.span())
        unit = _UNITS[match.group(3).lower()]
        for number in (match.group(1), match.group(2)):
            if not number:
                continue
            value = _num(number)
            if row is not None and unit in row.units and (value, unit) not in row.quantities:
                bad(match.group(0), "policy", f"the policy gives {row.label!r} as: {row.text}")
                break
            if (value, unit) in ctx.quantities:
                continue
            if value in ctx.numbers and ctx.unit_mentioned(unit):
                continue
            kind = (
                "policy"
                if unit in {"day", "hour", "month", "week", "point", "year"}
                else "attribute"
            )
            bad(match.group(0), kind, f"{number} {match.group(3)} is not in the retrieved context")
            break

    for match in SIZE_RE.finditer(sentence):
        checked += 1
        spans.append(match.span())
        raw = match.group(1) or match.group(2) or match.group(3) or ""
        tokens = [
            f"{float(t):g}" if t[0].isdigit() else t.upper()
            for t in re.findall(_SIZE_TOKEN, re.sub(r"\b(?:EU|US)\b", " ", raw))
        ]
        allowed = (
            {s.upper() for p in ref_products for s in p.sizes}
            if ref_products and any(p.sizes for p in ref_products)
            else ctx.all_sizes
        ) | ctx.doc_sizes
        if match.group(3):  # US sizes come from the footwear size guide's US columns only
            allowed = ctx.us_sizes
        missing = [t for t in tokens if t not in allowed]
        if missing:
            bad(
                match.group(0),
                "size",
                f"size {', '.join(missing)} not offered in the retrieved context",
            )

    if len(ref_products) >= 2 and (CHEAPER_RE.search(sentence) or DEARER_RE.search(sentence)):
        checked += 1
        first, second = ref_products[0], ref_products[1]
        if first.list_price is not None and second.list_price is not None:
            cheaper_claimed = bool(CHEAPER_RE.search(sentence))
            truth = first.list_price < second.list_price
            if cheaper_claimed != truth:
                bad(
                    f"{first.sku} {'cheaper' if cheaper_claimed else 'more expensive'} than {second.sku}",
                    "comparison",
                    f"{first.sku} is ${first.list_price:.2f}, {second.sku} is ${second.list_price:.2f}",
                )
    superlative = CHEAPEST_RE.search(sentence) or PRICIEST_RE.search(sentence)
    if superlative and len(ref_products) == 1 and len(ctx.products) > 1:
        checked += 1
        prices = [p.list_price for p in ctx.products.values() if p.list_price is not None]
        target = min(prices) if CHEAPEST_RE.search(sentence) else max(prices)
        if ref_products[0].list_price != target:
            bad(
                superlative.group(0),
                "comparison",
                f"{ref_products[0].sku} is not the {superlative.group(0)} retrieved product",
            )

    rest = _masked(sentence, spans)
    for match in NUMBER_RE.finditer(rest):
        checked += 1
        if _num(match.group(0)) not in ctx.numbers:
            bad(match.group(0), "number", "number not in the retrieved context")

    for match in NAME_RE.finditer(rest):
        for word in match.group(1).split():
            lowered = word.lower().strip("'")
            if lowered in COMMON_NAMES or lowered in ctx.words or lowered in ctx.question_words:
                continue
            if any(ch.isdigit() for ch in lowered):
                continue
            checked += 1
            bad(word, "name", "name not in the retrieved context")
    return problems, checked


def guard(answer: str, ctx: GroundingContext) -> GuardResult:
    """Drop every sentence with an unsupported claim; report each removed claim. Line breaks
    between kept sentences are preserved."""
    kept: list[str] = []
    lines: list[str] = []
    removed: list[RemovedClaim] = []
    checked = 0
    for line in answer.splitlines():
        kept_line = []
        for sentence in split_sentences(line):
            problems, n = check_sentence(sentence, ctx)
            checked += n
            if problems:
                removed.extend(problems)
            else:
                kept_line.append(sentence)
        kept.extend(kept_line)
        if kept_line:
            lines.append(" ".join(kept_line))
    return GuardResult("\n".join(lines).strip(), kept, removed, checked)
