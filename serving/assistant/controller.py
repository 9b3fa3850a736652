"""POST /v1/assistant/chat: the shopping assistant over the current RAG index and the
production prompt, with grounded citations and the claims the guard removed."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, SkipValidation

from serving.assistant.runtime import AssistantExtension
from serving.openapi import BODY_ERRORS, errors
from serving.schemas import Id
from serving.scoring import NotReadyError
from serving.state import ServingDependency, ServingState

Message = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
MAX_HISTORY = 20

AssistantDependency = NamedDependency[SkipValidation[AssistantExtension]]


class ChatTurn(msgspec.Struct, forbid_unknown_fields=True):
    role: Literal["user", "assistant"]
    content: Message


class ChatRequest(msgspec.Struct, forbid_unknown_fields=True):
    """A customer's message, optionally with the conversation so far (oldest first)."""

    message: Message
    history: Annotated[list[ChatTurn], msgspec.Meta(max_length=MAX_HISTORY)] = []
    customer_id: Id | None = None


class CitationOut(msgspec.Struct):
    kind: str
    """'product' (id is a SKU) or 'document' (id is a policy document id)."""
    id: str
    title: str


class RemovedClaimOut(msgspec.Struct):
    claim: str
    kind: str
    """sku, price, size, policy, attribute, comparison, number, name or instruction."""
    reason: str
    sentence: str


class FlagOut(msgspec.Struct):
    source: str
    """'user_message', 'history', or the SKU / document whose text carried it."""
    text: str


class ChatResponse(msgspec.Struct):
    request_id: str
    answer: str
    citations: list[CitationOut]
    removed_claims: list[RemovedClaimOut]
    """Claims of the model's draft (or of the composed answer) that the retrieved context did
    not support, and were removed."""
    flags: list[FlagOut]
    """Instruction-like text removed from the message, history or retrieved descriptions."""
    declined: bool
    intent: str
    fallback: str | None
    """How the answer was made when the draft alone was not enough: grounded_facts_added,
    grounded_facts_only, declined, only_instructions, llm_unavailable: ..."""
    prompt_version: str
    prompt_name: str
    index_version: str
    model: str
    latency_ms: float
    customer_id: str | None


class AssistantStatus(msgspec.Struct):
    ready: bool
    index_version: str | None
    prompt_version: str | None
    loaded_at: str | None
    model: str | None
    problems: list[str]


def record_answer(serving: ServingState, prompt_version: str, result, request_id: str) -> None:
    """Production metrics of one answer, per prompt version: Prometheus counters and a
    prediction-log row (`model` assistant, `version` the prompt version), which the pipeline's
    `assistant_monitoring` asset aggregates."""
    metrics = serving.metrics
    metrics.assistant_answers.labels(
        prompt_version, "declined" if result.declined else "answered"
    ).inc()
    metrics.assistant_removed_claims.labels(prompt_version).inc(len(result.removed_claims))
    metrics.assistant_injection_flags.labels(prompt_version).inc(len(result.flags))
    metrics.assistant_latency.labels(prompt_version).observe(result.latency_ms / 1000)
    serving.prediction_log.log(
        model="assistant",
        version=prompt_version,
        arm="champion",
        entity_id=request_id,
        features={"intent": result.intent},
        output={
            "declined": result.declined,
            "removed_claims": len(result.removed_claims),
            "injection_flags": len(result.flags),
            "fallback": result.fallback,
        },
        latency_ms=result.latency_ms,
        request_id=request_id,
    )


def _problems(assistant: AssistantExtension) -> list[str]:
    return [
        *(f"{slot.name}: {p}" for slot in assistant.slots for p in slot.problems),
        *assistant.problems(),
    ]


class AssistantController(Controller):
    path = "/v1/assistant"
    tags = ["assistant"]  # noqa: RUF012 (Litestar's documented idiom)

    @post("/chat", sync_to_thread=True, status_code=200, responses=errors(*BODY_ERRORS, 503))
    def chat(
        self,
        data: JSONBody[ChatRequest],
        assistant: AssistantDependency,
        serving: ServingDependency,
    ) -> ChatResponse:
        """Answer a shopping question (products, attributes, sizing, prices, returns and
        shipping policy, comparisons) from the catalog and policy documents, citing SKUs and
        document ids. Every SKU, price, size and policy claim is checked against the retrieved
        context; unsupported ones are removed and listed in `removed_claims`."""
        snapshot = assistant.current
        if snapshot is None:
            raise NotReadyError(
                "the assistant is not loaded: " + ("; ".join(_problems(assistant)) or "starting")
            )
        history = [{"role": t.role, "content": t.content} for t in data.history]
        result = snapshot.assistant.answer(data.message, history, data.customer_id)
        request_id = uuid.uuid4().hex
        record_answer(serving, snapshot.prompt_version, result, request_id)
        return ChatResponse(
            request_id=request_id,
            answer=result.answer,
            citations=[CitationOut(c.kind, c.id, c.title) for c in result.citations],
            removed_claims=[
                RemovedClaimOut(c.claim, c.kind, c.reason, c.sentence)
                for c in result.removed_claims
            ],
            flags=[FlagOut(f.source, f.text) for f in result.flags],
            declined=result.declined,
            intent=result.intent,
            fallback=result.fallback,
            prompt_version=snapshot.prompt_version,
            prompt_name=result.prompt_name,
            index_version=snapshot.index_version,
            model=result.model,
            latency_ms=round(result.latency_ms, 1),
            customer_id=data.customer_id,
        )

    @get("/status", sync_to_thread=False)
    def status(self, assistant: AssistantDependency) -> AssistantStatus:
        """Which RAG index and prompt version are loaded, and what is wrong if anything."""
        snapshot = assistant.current
        return AssistantStatus(
            ready=snapshot is not None,
            index_version=snapshot.index_version if snapshot else None,
            prompt_version=snapshot.prompt_version if snapshot else None,
            loaded_at=snapshot.loaded_at if snapshot else None,
            model=snapshot.assistant.backend.model if snapshot else None,
            problems=_problems(assistant),
        )
