"""The request path of the shopping assistant.

    message -> sanitise (flags) -> retrieve products and policy sections (llama-index)
            -> decide: answerable, or decline (not in the catalog / nothing relevant)
            -> prompt (registered template, retrieved text in a delimited data block)
            -> LLM draft -> grounding guard (drops unsupported sentences, reports them)
            -> compose: kept sentences + deterministic grounded facts the draft left out
            -> guard again -> citations from metadata of what the answer uses

The model is small (SmolLM2-135M): it drafts, the guard and the deterministic composition are
what make answers safe. Citations are computed by the system from the retrieved nodes'
metadata; nothing the model or a product description says can add one.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from retail_assets.assistant.documents import PRODUCT, attribute_phrases
from retail_assets.assistant.guard import (
    SKU_RE,
    ContextProduct,
    GroundingContext,
    GuardResult,
    RemovedClaim,
    guard,
    normalise_sku,
    split_sentences,
    strip_markup,
    table_cells,
)
from retail_assets.assistant.index import Hit, RagIndex
from retail_assets.assistant.llm import LLMBackend, LLMError
from retail_assets.assistant.prompts import PromptTemplate
from retail_assets.assistant.safety import Flag, sanitize

log = logging.getLogger("retail.assistant")

RETAILER = "Larkfield"
MAX_QUESTION_CHARS = 600  # what reaches the model; keeps every prompt inside the 2048 context
MAX_TOKENS = 128
PRODUCT_K = 5  # retrieved (and scored for recall@k)
DOCUMENT_K = 3
MAX_CONTEXT_PRODUCTS = 3
MAX_CONTEXT_DOCUMENTS = 2
DOC_CHARS = 420
# The small model likes to echo the prompt layout; stop it there instead of paying for tokens.
STOP = ["<data>", "</data>", "[product", "[document", "QUESTION:", "DATA:"]
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
RANGE = re.compile(r"([A-Za-z]+)\s+(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)")
# Dense-score thresholds (cosine, MiniLM), set on the default catalog: nothing in the catalog
# resembles the request below NO_MATCH; a request naming something the catalog has never heard
# of is declined below WEAK_MATCH.
NO_MATCH = 0.42
WEAK_MATCH = 0.56

_STOPWORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves i'm i'd i've you're it's don't doesn't isn't what's there's let's
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_GENERIC_TEXT = """
    sell sells selling sold have has carry carries stock stocked buy buying purchase looking
    look need needs want wants find get order ordering available availability price prices
    cost costs much many cheap cheaper cheapest expensive best good great nice recommend
    recommendation suggest please thanks thank hi hello hey something anything item items
    product products store stores shop shopping online today new kind type like would could
    can gift gifts present help one ones also tell know show give offer offers options option
    got us you any some which what come comes came made make way really quite bit little lot
    lots compare comparison versus vs difference better between exactly currently
"""
GENERIC = frozenset(_GENERIC_TEXT.split())
POLICY_WORDS = re.compile(
    r"\b(return|returns|returned|returning|refund|refunds|exchange|restocking|ship|ships|"
    r"shipping|shipped|deliver|delivery|delivered|arrive|arrives|tracking|warranty|warranties|"
    r"guarantee|price[- ]match|match|loyalty|rewards?|points|member|members|tier|gold|platinum|"
    r"click\s*&\s*collect|click and collect|pick ?up|collect|customer service|phone|chat|contact|"
    r"gift cards?|receipt|holiday|canada|international|express|oversized|policy|policies|"
    r"cut-?off|business days?|price drops?|drops? in price|the difference|price protection|"
    r"cheaper elsewhere|found it cheaper|restock)\b",
    re.IGNORECASE,
)
SIZING_WORDS = re.compile(
    r"\b(size guide|sizing|which size|what size|chest|waist|bust|hips?|foot length|measure|"
    r"between sizes|size down|size up|US men'?s|US women'?s|EU size|shoe size|cm)\b",
    re.IGNORECASE,
)
COMPARE_WORDS = re.compile(
    r"\b(compare|comparison|versus|vs\.?|difference|cheaper|better|which (?:one|is)|or the)\b",
    re.IGNORECASE,
)
NOT_AVAILABLE = re.compile(
    r"\b(don't have|do not have|don't carry|do not carry|don't sell|do not sell|not available|"
    r"unavailable|out of stock|no longer (?:sold|available)|not in (?:our|the) catalog|"
    r"couldn't find|could not find|can't find|cannot find|don't know|do not know|not sure)\b",
    re.IGNORECASE,
)
DECLINE_WORDS = re.compile(
    r"\b(don't know|do not know|not sure|couldn't find|could not find|can't find|cannot find|"
    r"don't carry|do not carry|don't sell|do not sell|not in (?:our|the) catalog|"
    r"can only help)\b",
    re.IGNORECASE,
)


@dataclass
class Citation:
    kind: str  # "product" | "document"
    id: str
    title: str


@dataclass
class AssistantAnswer:
    answer: str
    citations: list[Citation]
    removed_claims: list[RemovedClaim]
    flags: list[Flag]
    declined: bool
    intent: str
    fallback: str | None
    prompt_version: str
    prompt_name: str
    index_version: str
    model: str
    latency_ms: float
    draft: str = ""
    retrieved: list[tuple[str, float]] = field(default_factory=list)
    llm_seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def cited_skus(self) -> list[str]:
        return [c.id for c in self.citations if c.kind == "product"]


PRICE_BOUND = re.compile(
    r"\b(under|below|less than|cheaper than|at most|max(?:imum)?|up to|over|above|more than|"
    r"at least|min(?:imum)?)\s*(?:of\s*)?\$\s?(\d+(?:\.\d+)?)",
    re.IGNORECASE,
)


def price_bounds(question: str) -> tuple[float | None, float | None]:
    """("under $100" -> (None, 100)); ("over $50" -> (50, None))."""
    low = high = None
    for word, value in PRICE_BOUND.findall(question):
        if word.lower() in {"over", "above", "more than", "at least", "min", "minimum"}:
            low = float(value)
        else:
            high = float(value)
    return low, high


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9][a-z0-9'&-]*", text.lower())


def _known(word: str, vocabulary: set[str]) -> bool:
    candidates = {word, word.rstrip("s"), word[:-2] if word.endswith("es") else word, word + "s"}
    if word.endswith("ies"):
        candidates.add(word[:-3] + "y")
    return bool(candidates & vocabulary)


def title_overlap(question: str, title: str) -> float:
    """Share of the title's content words that the question contains."""
    q = set(words(question))
    t = [w for w in words(title) if w not in STOPWORDS and w != "-"]
    return sum(1 for w in t if w in q or w.rstrip("s") in q) / len(t) if t else 0.0


class ShoppingAssistant:
    def __init__(
        self,
        index: RagIndex,
        prompt: PromptTemplate,
        backend: LLMBackend,
        *,
        retailer: str = RETAILER,
        max_tokens: int = MAX_TOKENS,
    ):
        self.index = index
        self.prompt = prompt
        self.backend = backend
        self.retailer = retailer
        self.max_tokens = max_tokens
        self.vocabulary = self._vocabulary()
        self.subcategories = {
            str(h.metadata.get("subcategory")).lower() for h in self.index.nodes(PRODUCT)
        } - {"", "none"}
        self.brands = {str(h.metadata.get("brand")).lower() for h in self.index.nodes(PRODUCT)} - {
            "",
            "none",
        }

    def _vocabulary(self) -> set[str]:
        vocabulary: set[str] = set(words(self.retailer))
        for hit in self.index.nodes():
            vocabulary.update(words(hit.text))
            for key in ("title", "brand", "department", "category", "subcategory", "color"):
                vocabulary.update(words(str(hit.metadata.get(key) or "")))
        return vocabulary

    # -- retrieval ----------------------------------------------------------------------------

    def _rerank(self, question: str, hits: list[Hit]) -> list[Hit]:
        """Dense score plus lexical evidence: the share of the title the question contains,
        and whether it names the product's subcategory ("tablets", "hiking boots")."""
        q_words = set(words(question))
        for hit in hits:
            if hit.kind == PRODUCT:
                bonus = 0.25 * title_overlap(question, hit.metadata["title"])
                sub = words(hit.metadata.get("subcategory") or "")
                if sub and all(_known(w, q_words) for w in sub):
                    bonus += 0.15
                hit.score = hit.score + bonus
        return sorted(hits, key=lambda h: -h.score)

    def _products(self, query: str, vector: np.ndarray | None, k: int) -> list[Hit]:
        """Top-k products; a price range ("under $100") or "waterproof" in the query filters
        the candidates (structured metadata, not text)."""
        low, high = price_bounds(query)
        waterproof = bool(re.search(r"(?<!not )\bwaterproof\b", query, re.I))
        lowered = query.lower()
        brands = {b for b in self.brands if re.search(rf"(?<!\w){re.escape(b)}(?!\w)", lowered)}
        semantic = PRICE_BOUND.sub(" ", query)
        if vector is None or semantic != query:
            vector = self.index.embed(semantic)
        filtered = low is not None or high is not None or waterproof or bool(brands)
        hits = self.index.retrieve(semantic, PRODUCT, (12 if filtered else 2) * k, vector)
        if any(h.metadata["title"].lower() in lowered for h in hits):
            filtered = False  # a question about a named product ("is X waterproof?")
            hits = hits[: 2 * k]
        if filtered:
            matching = [
                h
                for h in hits
                if h.metadata.get("list_price") is not None
                and (low is None or h.metadata["list_price"] >= low)
                and (high is None or h.metadata["list_price"] <= high)
                and (not waterproof or h.metadata.get("is_waterproof") is True)
            ]
            # A brand narrows the results only when it has something that fits.
            branded = [h for h in matching if str(h.metadata.get("brand", "")).lower() in brands]
            hits = branded or matching
        return self._rerank(query, hits)[:k]

    def retrieve(self, query: str) -> tuple[list[Hit], list[Hit], list[str]]:
        """Products (direct SKU lookups first) and policy sections for `query`; SKUs the
        query names that the index does not hold."""
        vector = self.index.embed(query)
        direct: list[Hit] = []
        unknown: list[str] = []
        for match in SKU_RE.finditer(query):
            sku = normalise_sku(match.group(1))
            hit = self.index.get(sku)
            if hit is None:
                unknown.append(sku)
            elif all(h.node_id != sku for h in direct):
                hit.score = 2.0
                direct.append(hit)
        products = self._products(query, vector, PRODUCT_K)
        if COMPARE_WORDS.search(query):
            for part in re.split(r"\b(?:or|vs\.?|versus|and|compared (?:to|with))\b|,", query):
                if len([w for w in words(part) if w not in STOPWORDS | GENERIC]) >= 2:
                    best = self._products(part, None, 1)
                    if best:
                        best[0].score += 1.0  # each side of a comparison gets a slot
                        products.append(best[0])
        merged: dict[str, Hit] = {}
        for hit in [*direct, *sorted(products, key=lambda h: -h.score)]:
            if hit.node_id not in merged:
                merged[hit.node_id] = hit
        documents = self.index.retrieve(query, "document", DOCUMENT_K, vector)
        return list(merged.values())[: max(PRODUCT_K, len(direct))], documents, unknown

    # -- the request --------------------------------------------------------------------------

    def answer(
        self,
        message: str,
        history: list[dict[str, str]] | None = None,
        customer_id: str | None = None,
    ) -> AssistantAnswer:
        started = time.perf_counter()
        question, flags = sanitize(message, "user_message")
        chat_history: list[dict[str, str]] = []
        for turn in (history or [])[-4:]:
            content, turn_flags = sanitize(str(turn.get("content", "")), "history")
            flags.extend(turn_flags)
            if content and turn.get("role") in ("user", "assistant"):
                chat_history.append({"role": turn["role"], "content": content[:300]})

        def finish(text: str, **kwargs: Any) -> AssistantAnswer:
            return AssistantAnswer(
                answer=text,
                flags=flags,
                prompt_version=str(self.prompt.version or self.prompt.name),
                prompt_name=self.prompt.name,
                index_version=self.index.version,
                model=self.backend.model,
                latency_ms=(time.perf_counter() - started) * 1000,
                **kwargs,
            )

        if not question:
            return finish(
                f"I can help with questions about {self.retailer} products, prices, sizes and "
                "store policies.",
                citations=[],
                removed_claims=[],
                declined=True,
                intent="none",
                fallback="only_instructions",
            )

        query = question
        salient = [w for w in words(question) if w not in STOPWORDS | GENERIC and not w.isdigit()]
        previous = [t["content"] for t in chat_history if t["role"] == "user"]
        if previous and len(salient) < 3:
            query = f"{previous[-1]} {question}"
        products, documents, unknown_skus = self.retrieve(query)
        retrieved = [(h.node_id, round(h.score, 4)) for h in [*products, *documents]]

        lowered_question = question.lower()
        exact = [
            h for h in products if h.score >= 2.0 or h.metadata["title"].lower() in lowered_question
        ]
        strong = exact or [
            h for h in products if title_overlap(question, h.metadata["title"]) >= 0.75
        ]
        best_product = max((h.score for h in products if h.score < 1.0), default=0.0)
        best_doc = documents[0].score if documents else 0.0
        asks_policy = bool(POLICY_WORDS.search(question))
        asks_sizing = bool(SIZING_WORDS.search(question)) and not strong
        comparison = (
            bool(COMPARE_WORDS.search(question))
            and sum(1.0 <= h.score < 2.0 or h in exact for h in products) >= 2
        )
        wants_docs = asks_policy or asks_sizing or best_doc > max(best_product, 0.5) + 0.1
        if comparison:
            intent = "comparison"
        elif wants_docs and not strong:
            intent = "policy"
        else:
            intent = "product"

        # Decline: a named SKU we do not have, or a product request nothing in the catalog fits.
        unknown_terms = [w for w in salient if not _known(w, self.vocabulary)]
        capitalised_unknown = [
            w
            for w in re.findall(r"(?<=\w\s)\b([A-Za-z]*[A-Z][A-Za-z0-9'-]*)", question)
            if not _known(w.lower(), self.vocabulary) and w.lower() not in STOPWORDS | GENERIC
        ]
        decline = None
        if unknown_skus and not any(h.score >= 2.0 for h in products):
            decline = (
                f"Sorry, that SKU is not in the {self.retailer} catalog, so I can't tell you "
                "about it."
            )
        elif intent != "policy" and not strong:
            missing = capitalised_unknown or (
                unknown_terms if unknown_terms and best_product < WEAK_MATCH else []
            )
            if missing or (best_product < NO_MATCH and best_doc < 0.5):
                what = " ".join(missing or unknown_terms) or "that"
                decline = (
                    f"Sorry, we don't carry {what} at {self.retailer}, so I can't recommend "
                    "or quote it. I can help you find something similar that we do sell."
                )
        if decline:
            return finish(
                decline,
                citations=[],
                removed_claims=[],
                declined=True,
                intent=intent,
                fallback="declined",
                retrieved=retrieved,
            )

        context_products = self._context_products(products, exact, strong, comparison, intent)
        unmet = self._unmet_request(question, context_products) if not exact else None
        if wants_docs:
            context_docs = [h for h in documents[:MAX_CONTEXT_DOCUMENTS] if h.score >= 0.3]
        else:
            context_docs = [h for h in documents[:1] if h.score >= 0.5]
        for hit in context_products:
            flags.extend(_node_flags(hit))
        ctx = GroundingContext(
            question=question,
            products={
                h.node_id: ContextProduct.from_metadata(h.metadata, h.text)
                for h in context_products
            },
            documents={h.node_id: h.text for h in context_docs},
        )
        ctx.words.update(words(self.retailer))
        messages = self.prompt.render(
            question=question[:MAX_QUESTION_CHARS],
            context=self.render_context(context_products, context_docs),
            retailer=self.retailer,
            history=chat_history,
        )
        fallback = None
        draft = ""
        llm_seconds = 0.0
        usage = (0, 0)
        try:
            completion = self.backend.chat(messages, max_tokens=self.max_tokens, stop=STOP)
            draft, llm_seconds = completion.text, completion.seconds
            if completion.finish_reason == "length":
                draft = _drop_unfinished_sentence(draft)
            usage = (completion.prompt_tokens, completion.completion_tokens)
        except Exception as exc:  # any backend failure degrades to the grounded facts
            if not isinstance(exc, LLMError):
                log.warning("LLM backend failed: %r", exc)
            fallback = f"llm_unavailable: {exc}"[:200]
        checked: GuardResult = guard(strip_markup(draft, question), ctx)
        removed = list(checked.removed)
        text, evidence_docs, added, contradicted = self._compose(
            question, checked, ctx, context_products, context_docs, intent, unmet
        )
        removed.extend(contradicted)
        if added and fallback is None:
            fallback = "grounded_facts_added" if checked.kept else "grounded_facts_only"
        final = guard(text, ctx)  # defence in depth: the composed text is checked too
        removed.extend(final.removed)
        text = final.text or (
            f"I couldn't find a grounded answer to that in the {self.retailer} catalog or policies."
        )
        citations = self._citations(text, context_products, context_docs, evidence_docs)
        return finish(
            text,
            citations=citations,
            removed_claims=removed,
            declined=bool(DECLINE_WORDS.search(text)) and not citations,
            intent=intent,
            fallback=fallback,
            draft=draft,
            retrieved=retrieved,
            llm_seconds=llm_seconds,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
        )

    # -- context ------------------------------------------------------------------------------

    def _context_products(
        self,
        products: list[Hit],
        exact: list[Hit],
        strong: list[Hit],
        comparison: bool,
        intent: str,
    ) -> list[Hit]:
        if comparison:
            pair = [h for h in products if h.score >= 1.0][:2]
            return pair
        if exact:
            return exact[:MAX_CONTEXT_PRODUCTS]
        if strong:
            return sorted(strong, key=lambda h: -h.score)[:MAX_CONTEXT_PRODUCTS]
        if intent == "policy":
            return [h for h in products[:1] if h.score >= 0.55]
        top = products[0].score if products else 0.0
        return [h for h in products if h.score >= top - 0.12][:MAX_CONTEXT_PRODUCTS]

    def _unmet_request(self, question: str, products: list[Hit]) -> str | None:
        """ "waterproof hiking boots under $150" when no shown product is a hiking boot: the
        request as the customer put it (subcategory plus constraints), else None."""
        q_words = set(words(question))
        named = [s for s in self.subcategories if all(_known(w, q_words) for w in words(s))]
        if not named or not products:
            return None
        if any(str(h.metadata.get("subcategory", "")).lower() in named for h in products):
            return None
        low, high = price_bounds(question)
        parts = ["waterproof"] if re.search(r"(?<!not )\bwaterproof\b", question, re.I) else []
        parts.append(max(named, key=len))
        if high is not None:
            parts.append(f"under ${high:,.0f}")
        if low is not None:
            parts.append(f"over ${low:,.0f}")
        return " ".join(parts) if len(parts) > 1 else None

    @staticmethod
    def product_line(metadata: dict[str, Any]) -> str:
        product = ContextProduct.from_metadata(metadata)
        parts = [f"{product.title} ({product.sku})"]
        if product.list_price is not None:
            parts.append(f"${product.list_price:,.2f}")
        for key in ("color", "material"):
            if metadata.get(key):
                parts.append(f"{key} {metadata[key]}")
        if product.sizes:
            parts.append("sizes " + ", ".join(product.sizes))
        if metadata.get("is_waterproof") is True:
            parts.append("waterproof")
        elif metadata.get("is_waterproof") is False:
            parts.append("not waterproof")
        parts.extend(attribute_phrases(product.attributes))
        return "; ".join(parts) + "."

    def render_context(self, products: list[Hit], documents: list[Hit]) -> str:
        lines = []
        for hit in products:
            lines.append(f"[product {hit.node_id}] " + self.product_line(hit.metadata))
        for hit in documents:
            body = (
                hit.text
                if len(hit.text) <= DOC_CHARS
                else hit.text[:DOC_CHARS].rsplit(" ", 1)[0] + " ..."
            )
            lines.append(f"[document {hit.metadata['doc_id']}] {body}")
        return "\n".join(lines) if lines else "(no matching products or policies)"

    # -- composition --------------------------------------------------------------------------

    @staticmethod
    def _passages(hit: Hit) -> list[str]:
        """A policy section as sentences and size-table rows ("EU 42, US men 8.5, ...")."""
        out: list[str] = []
        header: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                out.extend(s.lstrip("-• ").strip() for s in split_sentences(" ".join(paragraph)))
                paragraph.clear()

        for line in hit.text.splitlines()[1:]:
            line = line.strip()
            if line.startswith("|"):
                flush()
                cells = table_cells(line)
                if cells is None:
                    continue
                if not header:
                    header = cells
                    continue
                row = ", ".join(
                    f"{h} {c}" for h, c in zip(header, cells, strict=False) if c and c != "-"
                )
                out.append(f"{hit.metadata['title']}: {row}")
                continue
            header = []
            if not line or line.startswith("-"):
                flush()
                if line:
                    out.append(line.lstrip("- ").strip())
                continue
            paragraph.append(line)
        flush()
        return [p for p in out if p]

    def _evidence(self, question: str, documents: list[Hit]) -> list[tuple[str, str]]:
        """The policy sentences (or size-table rows) that best answer the question: cosine
        similarity plus a bonus for sharing the question's words and numbers (a number inside
        a range counts, so 100 cm finds the 96-104 row)."""
        candidates = [(h.metadata["doc_id"], p) for h in documents for p in self._passages(h)]
        if not candidates:
            return []
        headings = {
            h.metadata["doc_id"]: h.metadata.get("section") or h.metadata["title"]
            for h in documents
        }
        scored_text = [f"{headings.get(doc, '')}: {p}" for doc, p in candidates]
        question_vector = self.index.encoder.encode([question])[0]
        scores = self.index.passage_vectors(scored_text) @ question_vector
        numbers = [float(n) for n in NUMBER.findall(question)]
        q_words = set(words(question)) - STOPWORDS - GENERIC
        ranked = []
        for (doc, passage), score in zip(candidates, scores, strict=True):
            bonus = 0.05 * len(q_words & set(words(passage)))
            ranges = [
                (label.lower(), float(low), float(high))
                for label, low, high in RANGE.findall(passage)
            ]
            singles = [float(n) for n in NUMBER.findall(RANGE.sub(" ", passage))]
            for number in numbers:
                if number in singles:
                    bonus += 0.3
                for label, low, high in ranges:
                    if low <= number <= high:
                        # the range of the measure the customer gave (chest, bust, ...) counts
                        bonus += 0.5 if label in q_words else 0.05
            ranked.append((float(score) + bonus, doc, passage))
        ranked.sort(key=lambda r: -r[0])
        best = [(ranked[0][1], ranked[0][2])]
        if len(ranked) > 1 and ranked[1][0] >= ranked[0][0] - 0.08:
            best.append((ranked[1][1], ranked[1][2]))
        return best

    def _compose(
        self,
        question: str,
        checked: GuardResult,
        ctx: GroundingContext,
        products: list[Hit],
        documents: list[Hit],
        intent: str,
        unmet: str | None = None,
    ) -> tuple[str, list[str], bool, list[RemovedClaim]]:
        """The guarded draft plus the grounded facts it is missing: the price comparison, a
        line per product it does not mention, the policy passage that answers the question.
        Draft sentences that deny availability while the catalog has the products are removed
        (reported), and fragments of one or two words ("1.", "2.82 kg") are dropped."""
        contradicted: list[RemovedClaim] = []
        lines = []
        for line in checked.text.splitlines():
            sentences = []
            for sentence in split_sentences(line):
                if len(words(sentence)) < 3:
                    continue
                if products and not unmet and NOT_AVAILABLE.search(sentence):
                    contradicted.append(
                        RemovedClaim(
                            NOT_AVAILABLE.search(sentence).group(0),
                            "availability",
                            "the catalog has matching products: "
                            + ", ".join(h.node_id for h in products),
                            sentence,
                        )
                    )
                    continue
                sentences.append(sentence)
            if sentences:
                lines.append(" ".join(sentences))
        kept = "\n".join(lines)
        lowered = kept.lower()
        kept_numbers = set(NUMBER.findall(kept))
        additions: list[str] = []
        evidence_docs: list[str] = []
        if intent == "comparison":
            pair = [ctx.products[h.node_id] for h in products[:2] if h.node_id in ctx.products]
            priced = [p for p in pair if p.list_price is not None]
            if len(priced) == 2:
                cheap, dear = sorted(priced, key=lambda p: p.list_price)
                if cheap.list_price == dear.list_price:
                    additions.append(
                        f"{cheap.title} ({cheap.sku}) and {dear.title} ({dear.sku}) cost the "
                        f"same, ${cheap.list_price:,.2f}."
                    )
                else:
                    additions.append(
                        f"{cheap.title} ({cheap.sku}) is cheaper at ${cheap.list_price:,.2f}; "
                        f"{dear.title} ({dear.sku}) costs ${dear.list_price:,.2f}."
                    )
        else:
            if unmet and unmet.lower() not in lowered:
                additions.append(f"We have no {unmet}. The closest matches:")
            # Product cards: the catalog facts of every product the answer is about.
            for hit in products:
                line = self.product_line(hit.metadata)
                if line.lower() not in lowered:
                    additions.append(line)
        if documents and (intent == "policy" or not products):
            for doc_id, passage in self._evidence(question, documents):
                numbers = set(NUMBER.findall(passage))
                if (not numbers or not numbers <= kept_numbers) and passage.lower() not in lowered:
                    additions.append(
                        passage if passage.endswith((".", "?", "!")) else passage + "."
                    )
                    evidence_docs.append(doc_id)
        if additions and kept and len(kept.split()) <= 8 and DECLINE_WORDS.search(kept):
            kept = ""  # "I'm not sure." followed by the grounded facts reads as a contradiction
        if not kept and not additions:
            return "", evidence_docs, False, contradicted
        text = "\n".join([kept, *additions]) if kept else "\n".join(additions)
        return text, evidence_docs, bool(additions), contradicted

    def _citations(
        self,
        text: str,
        products: list[Hit],
        documents: list[Hit],
        evidence_docs: list[str],
    ) -> list[Citation]:
        """Products the answer names (by SKU or title) and documents it quotes: from the
        retrieved nodes' metadata only."""
        citations: list[Citation] = []
        lowered = text.lower()
        for hit in products:
            if hit.node_id.lower() in lowered or hit.metadata["title"].lower() in lowered:
                citations.append(Citation("product", hit.node_id, hit.metadata["title"]))
        used: list[str] = list(evidence_docs)
        answer_numbers = set(NUMBER.findall(text)) - {
            n for c in citations for n in NUMBER.findall(c.id)
        }
        for hit in documents:
            if set(NUMBER.findall(hit.text)) & answer_numbers:
                used.append(hit.metadata["doc_id"])
        for doc_id in dict.fromkeys(used):
            title = next(
                (h.metadata["title"] for h in documents if h.metadata["doc_id"] == doc_id), doc_id
            )
            citations.append(Citation("document", doc_id, title))
        return citations


def _drop_unfinished_sentence(text: str) -> str:
    """A draft cut off by max_tokens ends mid-sentence; keep what was finished."""
    stripped = text.rstrip()
    if not stripped or stripped[-1] in ".!?":
        return text
    cut = max(
        stripped.rfind(". "), stripped.rfind("! "), stripped.rfind("? "), stripped.rfind("\n")
    )
    return stripped[: cut + 1] if cut >= 0 else ""


def _node_flags(hit: Hit) -> list[Flag]:
    import json

    try:
        raw = json.loads(hit.metadata.get("flags") or "[]")
    except ValueError:
        return []
    return [Flag(f["source"], f["text"]) for f in raw]
