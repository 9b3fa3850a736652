"""The request path of the shopping assistant.

    message -> sanitise (flags) -> retrieve products and policy sections (llama-index)
            -> decide: answerable, or decline (not in the catalog / nothing relevant)
            -> prompt (registered template, retrieved text in a delimited data block)
            -> LLM draft -> grounding guard (drops unsupported sentences, reports them)
            -> compose: kept sentences + deterministic grounded facts the draft left out
            -> guard again -> citations from metadata of what the answer uses

`ShoppingAssistant.answer` runs these steps in order: `_conversation` (sanitise message and
history), `_query` (expand a follow-up) and `retrieve`, `classify` (intent), `decline_reason`,
`_context` (what the model is shown), `_draft` (the LLM, with its failure fallback) and
`_grounded_answer` (guard, compose, guard, cite). `classify`, `decline_reason` and the
`select_context_*` functions are pure.

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
MAX_TOKENS = 128  # longest draft the model may write
PRODUCT_K = 5  # retrieved (and scored for recall@k)
DOCUMENT_K = 3  # policy sections retrieved (and scored for recall@k)
MAX_CONTEXT_PRODUCTS = 3  # most products shown to the model
MAX_CONTEXT_DOCUMENTS = 2  # most policy sections shown to the model
DOC_CHARS = 420  # a policy section in the prompt is cut to this (at a word boundary)
# The small model likes to echo the prompt layout; stop it there instead of paying for tokens.
STOP = ["<data>", "</data>", "[product", "[document", "QUESTION:", "DATA:"]
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])")
RANGE = re.compile(r"([A-Za-z]+)\s+(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)")
# Dense-score thresholds (cosine, MiniLM), set on the default catalog: nothing in the catalog
# resembles the request below NO_MATCH; a request naming something the catalog has never heard
# of is declined below WEAK_MATCH.
NO_MATCH = 0.42
WEAK_MATCH = 0.56

# -- conversation ---------------------------------------------------------------------------------
HISTORY_TURNS = 4  # how many of the latest history turns are kept (and reach the prompt)
HISTORY_TURN_CHARS = 300  # each kept history turn is cut to this many characters
# A question with fewer salient words than this ("and in blue?") is a follow-up: it is retrieved
# together with the customer's previous message.
FOLLOW_UP_WORDS = 3

# -- retrieval scores -----------------------------------------------------------------------------
# A product the question names by SKU scores this, above any dense score plus the rerank
# bonuses (at most 1.4): it counts as an exact match and is never declined as unknown.
DIRECT_SKU_SCORE = 2.0
# Added to the best match of each side of a comparison ("the X or the Y"); a score at or above
# it is read as a comparison side (so it is left out of the best dense product score). A product
# named by its whole title can reach it through the lexical bonuses alone.
COMPARISON_SIDE = 1.0
# A part of a comparison question ("the X or the Y") with this many content words is looked up
# as one side of the comparison.
COMPARISON_PART_WORDS = 2
TITLE_OVERLAP_BONUS = 0.25  # rerank weight of the share of a product's title the query contains
SUBCATEGORY_BONUS = 0.15  # rerank bonus when the query names the product's subcategory
PRODUCT_OVERFETCH = 2  # candidates retrieved per product slot before the rerank
# With a price, waterproof or brand filter most candidates are filtered out: fetch more.
FILTERED_OVERFETCH = 12

# -- what the question asks for -------------------------------------------------------------------
# A product whose title the question (nearly) contains is a strong match: the question is about
# that product, not a policy, and it is never declined as unknown.
STRONG_TITLE_OVERLAP = 0.75
# A policy section scoring this is about the question: it can outrank the products, it keeps an
# otherwise weak product question from being declined, and it joins a product answer's context.
DOCUMENT_MATCH = 0.5
# The policy sections win over the products only when they beat the best product (or
# DOCUMENT_MATCH) by this much.
DOCUMENT_MARGIN = 0.1

# -- grounding context ----------------------------------------------------------------------------
CONTEXT_DOCUMENT = 0.3  # least score of a policy section in the context of a policy question
POLICY_CONTEXT_PRODUCT = 0.55  # least score of the one product shown with a policy answer
# Without an exact or strong match, the products within this of the top score are shown.
CONTEXT_PRODUCT_SPREAD = 0.12

# -- composition ----------------------------------------------------------------------------------
FALLBACK_CHARS = 200  # the LLM failure reported in `fallback` is cut to this
MIN_SENTENCE_WORDS = 3  # draft fragments with fewer words ("1.", "2.82 kg") are dropped
# A kept draft this short that declines ("I'm not sure.") is dropped when grounded facts follow.
SHORT_DECLINE_WORDS = 8
# Policy evidence ranking (`_evidence`): cosine similarity plus these bonuses.
EVIDENCE_WORD_BONUS = 0.05  # per content word the passage shares with the question
EVIDENCE_NUMBER_BONUS = 0.3  # per question number the passage states
EVIDENCE_RANGE_BONUS = 0.5  # per number inside a range of the measure the question names
EVIDENCE_OTHER_RANGE_BONUS = 0.05  # per number inside a range of another measure
EVIDENCE_SECOND_MARGIN = 0.08  # a second passage is quoted when it scores this close to the best

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


def salient_words(question: str) -> list[str]:
    """The question's content words: no stopwords, no generic shopping words, no numbers."""
    return [w for w in words(question) if w not in STOPWORDS | GENERIC and not w.isdigit()]


CAPITALISED = re.compile(r"(?<=\w\s)\b([A-Za-z]*[A-Z][A-Za-z0-9'-]*)")
"""A capitalised word after the first one: a name ("Do you sell Nike shoes?")."""


@dataclass(frozen=True)
class Conversation:
    """The sanitised request: the question, the history turns the prompt keeps, and every
    injection flag raised in either."""

    question: str
    history: list[dict[str, str]]
    flags: list[Flag]


@dataclass(frozen=True)
class Classification:
    """What a question asks for, judged from its words and what retrieval found."""

    exact: tuple[Hit, ...]
    """Products the question names: by SKU (a direct lookup) or by their whole title."""
    strong: tuple[Hit, ...]
    """The exact matches, else the products whose title the question (nearly) contains."""
    best_product: float
    """The best product score that is not a comparison side or a direct SKU lookup."""
    best_document: float
    comparison: bool
    """Comparison words and at least two comparison sides (or exact matches)."""
    wants_documents: bool
    """Policy or sizing words, or policy sections that clearly beat the products."""
    intent: str
    """"comparison", "policy" or "product"."""


def classify(question: str, products: list[Hit], documents: list[Hit]) -> Classification:
    """The intent of `question` given the retrieved (reranked) products and policy sections."""
    lowered = question.lower()
    exact = tuple(
        h for h in products if h.score >= DIRECT_SKU_SCORE or h.metadata["title"].lower() in lowered
    )
    strong = exact or tuple(
        h for h in products if title_overlap(question, h.metadata["title"]) >= STRONG_TITLE_OVERLAP
    )
    best_product = max((h.score for h in products if h.score < COMPARISON_SIDE), default=0.0)
    best_document = documents[0].score if documents else 0.0
    asks_policy = bool(POLICY_WORDS.search(question))
    asks_sizing = bool(SIZING_WORDS.search(question)) and not strong
    sides = sum(COMPARISON_SIDE <= h.score < DIRECT_SKU_SCORE or h in exact for h in products)
    comparison = bool(COMPARE_WORDS.search(question)) and sides >= 2
    wants_documents = (
        asks_policy
        or asks_sizing
        or best_document > max(best_product, DOCUMENT_MATCH) + DOCUMENT_MARGIN
    )
    if comparison:
        intent = "comparison"
    elif wants_documents and not strong:
        intent = "policy"
    else:
        intent = "product"
    return Classification(
        exact=exact,
        strong=strong,
        best_product=best_product,
        best_document=best_document,
        comparison=comparison,
        wants_documents=wants_documents,
        intent=intent,
    )


def decline_reason(
    question: str,
    products: list[Hit],
    classification: Classification,
    unknown_skus: list[str],
    vocabulary: set[str],
    retailer: str = RETAILER,
) -> str | None:
    """The answer that declines `question`, or None to answer it: a named SKU the index does
    not hold (and no SKU it does), or a product request nothing in the catalog fits (a
    capitalised name the catalog never uses, words it never uses and no product above
    WEAK_MATCH, or no product above NO_MATCH and no relevant policy section). Policy questions
    and questions about a product they name are never declined for unknown words."""
    if unknown_skus and not any(h.score >= DIRECT_SKU_SCORE for h in products):
        return f"Sorry, that SKU is not in the {retailer} catalog, so I can't tell you about it."
    if classification.intent == "policy" or classification.strong:
        return None
    unknown_terms = [w for w in salient_words(question) if not _known(w, vocabulary)]
    capitalised_unknown = [
        w
        for w in CAPITALISED.findall(question)
        if not _known(w.lower(), vocabulary) and w.lower() not in STOPWORDS | GENERIC
    ]
    weak = classification.best_product < WEAK_MATCH
    missing = capitalised_unknown or (unknown_terms if unknown_terms and weak else [])
    nothing_fits = classification.best_product < NO_MATCH and (
        classification.best_document < DOCUMENT_MATCH
    )
    if not (missing or nothing_fits):
        return None
    what = " ".join(missing or unknown_terms) or "that"
    return (
        f"Sorry, we don't carry {what} at {retailer}, so I can't recommend or quote it. I can "
        "help you find something similar that we do sell."
    )


def select_context_products(products: list[Hit], classification: Classification) -> list[Hit]:
    """The products shown to the model: the two comparison sides; else the exact matches;
    else the strong matches, best first; else for a policy question the top product if it is
    clearly relevant; else the products close to the top score."""
    if classification.comparison:
        return [h for h in products if h.score >= COMPARISON_SIDE][:2]
    if classification.exact:
        return list(classification.exact[:MAX_CONTEXT_PRODUCTS])
    if classification.strong:
        return sorted(classification.strong, key=lambda h: -h.score)[:MAX_CONTEXT_PRODUCTS]
    if classification.intent == "policy":
        return [h for h in products[:1] if h.score >= POLICY_CONTEXT_PRODUCT]
    top = products[0].score if products else 0.0
    return [h for h in products if h.score >= top - CONTEXT_PRODUCT_SPREAD][:MAX_CONTEXT_PRODUCTS]


def select_context_documents(documents: list[Hit], wants_documents: bool) -> list[Hit]:
    """The policy sections shown to the model: up to MAX_CONTEXT_DOCUMENTS for a question that
    wants them, else only the top section and only if it is clearly about the question."""
    if wants_documents:
        return [h for h in documents[:MAX_CONTEXT_DOCUMENTS] if h.score >= CONTEXT_DOCUMENT]
    return [h for h in documents[:1] if h.score >= DOCUMENT_MATCH]


@dataclass(frozen=True)
class Context:
    """What an answer may use: the products and policy sections shown to the model, the
    grounding context the guard checks against, and the request nothing shown fits."""

    products: list[Hit]
    documents: list[Hit]
    grounding: GroundingContext
    unmet: str | None


@dataclass(frozen=True)
class Draft:
    """The model's draft; on a backend failure an empty draft and the failure in `fallback`."""

    text: str = ""
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallback: str | None = None


@dataclass(frozen=True)
class Composed:
    """The final, guarded answer text, its citations, every claim removed on the way, and the
    fallback that explains where the text came from."""

    text: str
    citations: list[Citation]
    removed_claims: list[RemovedClaim]
    fallback: str | None


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
                bonus = TITLE_OVERLAP_BONUS * title_overlap(question, hit.metadata["title"])
                sub = words(hit.metadata.get("subcategory") or "")
                if sub and all(_known(w, q_words) for w in sub):
                    bonus += SUBCATEGORY_BONUS
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
        hits = self.index.retrieve(
            semantic, PRODUCT, (FILTERED_OVERFETCH if filtered else PRODUCT_OVERFETCH) * k, vector
        )
        if any(h.metadata["title"].lower() in lowered for h in hits):
            filtered = False  # a question about a named product ("is X waterproof?")
            hits = hits[: PRODUCT_OVERFETCH * k]
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
                hit.score = DIRECT_SKU_SCORE
                direct.append(hit)
        products = self._products(query, vector, PRODUCT_K)
        if COMPARE_WORDS.search(query):
            for part in re.split(r"\b(?:or|vs\.?|versus|and|compared (?:to|with))\b|,", query):
                content = [w for w in words(part) if w not in STOPWORDS | GENERIC]
                if len(content) >= COMPARISON_PART_WORDS:
                    best = self._products(part, None, 1)
                    if best:
                        best[0].score += COMPARISON_SIDE  # each side of a comparison gets a slot
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
        """Answer `message` (with the latest `history` turns): sanitise, retrieve, classify,
        decline or ground a draft, compose, guard and cite."""
        started = time.perf_counter()
        conversation = self._conversation(message, history)
        question, flags = conversation.question, conversation.flags
        if not question:
            return self._declined(
                started,
                flags,
                f"I can help with questions about {self.retailer} products, prices, sizes and "
                "store policies.",
                intent="none",
                fallback="only_instructions",
            )
        products, documents, unknown_skus = self.retrieve(
            self._query(question, conversation.history)
        )
        retrieved = [(h.node_id, round(h.score, 4)) for h in [*products, *documents]]
        classification = classify(question, products, documents)
        decline = decline_reason(
            question, products, classification, unknown_skus, self.vocabulary, self.retailer
        )
        if decline:
            return self._declined(
                started,
                flags,
                decline,
                intent=classification.intent,
                fallback="declined",
                retrieved=retrieved,
            )
        context = self._context(question, products, documents, classification)
        for hit in context.products:
            flags.extend(_node_flags(hit))
        messages = self.prompt.render(
            question=question[:MAX_QUESTION_CHARS],
            context=self.render_context(context.products, context.documents),
            retailer=self.retailer,
            history=conversation.history,
        )
        draft = self._draft(messages)
        composed = self._grounded_answer(question, draft, context, classification.intent)
        return self._result(
            started,
            flags,
            composed.text,
            citations=composed.citations,
            removed_claims=composed.removed_claims,
            declined=bool(DECLINE_WORDS.search(composed.text)) and not composed.citations,
            intent=classification.intent,
            fallback=composed.fallback,
            draft=draft.text,
            retrieved=retrieved,
            llm_seconds=draft.seconds,
            prompt_tokens=draft.prompt_tokens,
            completion_tokens=draft.completion_tokens,
        )

    @staticmethod
    def _conversation(message: str, history: list[dict[str, str]] | None) -> Conversation:
        """The sanitised message and the last HISTORY_TURNS user/assistant turns (each cut to
        HISTORY_TURN_CHARS); flags from the message first, then from every turn looked at."""
        question, flags = sanitize(message, "user_message")
        turns: list[dict[str, str]] = []
        for turn in (history or [])[-HISTORY_TURNS:]:
            content, turn_flags = sanitize(str(turn.get("content", "")), "history")
            flags.extend(turn_flags)
            if content and turn.get("role") in ("user", "assistant"):
                turns.append({"role": turn["role"], "content": content[:HISTORY_TURN_CHARS]})
        return Conversation(question, turns, flags)

    @staticmethod
    def _query(question: str, history: list[dict[str, str]]) -> str:
        """What to retrieve for: the question, or for a follow-up with few salient words
        ("and in blue?") the customer's previous message followed by the question."""
        previous = [t["content"] for t in history if t["role"] == "user"]
        if previous and len(salient_words(question)) < FOLLOW_UP_WORDS:
            return f"{previous[-1]} {question}"
        return question

    def _context(
        self,
        question: str,
        products: list[Hit],
        documents: list[Hit],
        classification: Classification,
    ) -> Context:
        """The products and policy sections the answer may use, the grounding context the
        guard checks against, and the request nothing shown fits (unless a product is named)."""
        context_products = select_context_products(products, classification)
        unmet = (
            self._unmet_request(question, context_products) if not classification.exact else None
        )
        context_docs = select_context_documents(documents, classification.wants_documents)
        grounding = GroundingContext(
            question=question,
            products={
                h.node_id: ContextProduct.from_metadata(h.metadata, h.text)
                for h in context_products
            },
            documents={h.node_id: h.text for h in context_docs},
        )
        grounding.words.update(words(self.retailer))
        return Context(context_products, context_docs, grounding, unmet)

    def _draft(self, messages: list[dict[str, str]]) -> Draft:
        """The model's draft (a draft cut off by MAX_TOKENS loses its unfinished sentence); any
        backend failure gives an empty draft and `fallback` "llm_unavailable: ..." instead."""
        try:
            completion = self.backend.chat(messages, max_tokens=self.max_tokens, stop=STOP)
        except Exception as exc:  # any backend failure degrades to the grounded facts
            if not isinstance(exc, LLMError):
                log.warning("LLM backend failed: %r", exc)
            return Draft(fallback=f"llm_unavailable: {exc}"[:FALLBACK_CHARS])
        text = completion.text
        if completion.finish_reason == "length":
            text = _drop_unfinished_sentence(text)
        return Draft(
            text, completion.seconds, completion.prompt_tokens, completion.completion_tokens
        )

    def _grounded_answer(
        self, question: str, draft: Draft, context: Context, intent: str
    ) -> Composed:
        """Guard the draft, add the grounded facts it left out, guard the result again and cite
        what it uses; `fallback` says when grounded facts were added (or are all there is)."""
        ctx = context.grounding
        checked: GuardResult = guard(strip_markup(draft.text, question), ctx)
        removed = list(checked.removed)
        text, evidence_docs, added, contradicted = self._compose(
            question, checked, ctx, context.products, context.documents, intent, context.unmet
        )
        removed.extend(contradicted)
        fallback = draft.fallback
        if added and fallback is None:
            fallback = "grounded_facts_added" if checked.kept else "grounded_facts_only"
        final = guard(text, ctx)  # defence in depth: the composed text is checked too
        removed.extend(final.removed)
        text = final.text or (
            f"I couldn't find a grounded answer to that in the {self.retailer} catalog or policies."
        )
        citations = self._citations(text, context.products, context.documents, evidence_docs)
        return Composed(text, citations, removed, fallback)

    def _result(
        self, started: float, flags: list[Flag], text: str, **fields: Any
    ) -> AssistantAnswer:
        """The answer with the prompt, index and model that made it and its latency so far."""
        return AssistantAnswer(
            answer=text,
            flags=flags,
            prompt_version=str(self.prompt.version or self.prompt.name),
            prompt_name=self.prompt.name,
            index_version=self.index.version,
            model=self.backend.model,
            latency_ms=(time.perf_counter() - started) * 1000,
            **fields,
        )

    def _declined(
        self,
        started: float,
        flags: list[Flag],
        text: str,
        *,
        intent: str,
        fallback: str,
        retrieved: list[tuple[str, float]] | None = None,
    ) -> AssistantAnswer:
        """An answer that declines: no model call, no citations."""
        return self._result(
            started,
            flags,
            text,
            citations=[],
            removed_claims=[],
            declined=True,
            intent=intent,
            fallback=fallback,
            retrieved=retrieved or [],
        )

    # -- context ------------------------------------------------------------------------------

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
            bonus = EVIDENCE_WORD_BONUS * len(q_words & set(words(passage)))
            ranges = [
                (label.lower(), float(low), float(high))
                for label, low, high in RANGE.findall(passage)
            ]
            singles = [float(n) for n in NUMBER.findall(RANGE.sub(" ", passage))]
            for number in numbers:
                if number in singles:
                    bonus += EVIDENCE_NUMBER_BONUS
                for label, low, high in ranges:
                    if low <= number <= high:
                        # the range of the measure the customer gave (chest, bust, ...) counts
                        bonus += (
                            EVIDENCE_RANGE_BONUS if label in q_words else EVIDENCE_OTHER_RANGE_BONUS
                        )
            ranked.append((float(score) + bonus, doc, passage))
        ranked.sort(key=lambda r: -r[0])
        best = [(ranked[0][1], ranked[0][2])]
        if len(ranked) > 1 and ranked[1][0] >= ranked[0][0] - EVIDENCE_SECOND_MARGIN:
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
                if len(words(sentence)) < MIN_SENTENCE_WORDS:
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
        if (
            additions
            and kept
            and len(kept.split()) <= SHORT_DECLINE_WORDS
            and DECLINE_WORDS.search(kept)
        ):
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
