"""POST /v1/fraud/score and /v1/fraud/score:batch: payment fraud probability, decision and
reason codes at authorisation time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.params import JSONBody

from serving.schemas import Id, ModelRef, ShortText
from serving.scoring import FraudResult, now_utc_naive, run_fraud_shadow, score_payments
from serving.state import ServingDependency

Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{2}$")]
MAX_BATCH = 1000


class Payment(msgspec.Struct, forbid_unknown_fields=True):
    """What the checkout knows at authorisation: ids and raw fields. Velocity, device and
    customer-history features are joined from the online feature state."""

    card_id: Id
    amount: Annotated[float, msgspec.Meta(gt=0, le=1_000_000)]
    customer_id: Id | None = None
    transaction_id: Id | None = None
    transaction_ts: datetime | None = None
    """Default: now (UTC). Naive timestamps are taken as UTC."""
    device_id: Id | None = None
    shipping_address_id: Id | None = None
    n_items: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    channel: ShortText | None = None
    payment_method: ShortText | None = None
    top_department: ShortText | None = None
    billing_country: Country | None = None
    ip_country: Country | None = None
    shipping_country: Country | None = None


class PaymentBatch(msgspec.Struct, forbid_unknown_fields=True):
    payments: Annotated[list[Payment], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]


class ReasonCode(msgspec.Struct):
    feature: str
    value: float | int | str | bool | None
    contribution: float
    """Log-odds pushed towards fraud by this feature (path attribution)."""


class FraudScore(msgspec.Struct):
    transaction_id: str
    probability: float
    decision: str
    """'review' when probability >= threshold, else 'approve'."""
    threshold: float
    reason_codes: list[ReasonCode]
    model: ModelRef
    features_as_of: datetime | None


class FraudBatchResponse(msgspec.Struct):
    results: list[FraudScore]


def _payment_dict(payment: Payment) -> dict:
    values = msgspec.structs.asdict(payment)
    ts = payment.transaction_ts
    if ts is None:
        ts = now_utc_naive()
    elif ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    values["transaction_ts"] = ts
    values["transaction_id"] = payment.transaction_id or f"req-{uuid.uuid4().hex[:16]}"
    return values


def _response(result: FraudResult) -> FraudScore:
    return FraudScore(
        transaction_id=result.transaction_id,
        probability=round(result.probability, 6),
        decision="review" if result.flagged else "approve",
        threshold=round(result.threshold, 6),
        reason_codes=[ReasonCode(**reason) for reason in result.reasons],
        model=ModelRef(result.model.name, result.model.version, result.arm),
        features_as_of=result.features_as_of,
    )


class FraudController(Controller):
    path = "/v1/fraud"
    tags = ["fraud"]

    @post("/score", sync_to_thread=False, status_code=200)
    def score(self, data: JSONBody[Payment], serving: ServingDependency) -> Response[FraudScore]:
        """Score one payment: probability, decision at the model's threshold, and the top
        reasons pushing it towards fraud. The payment is then folded into the velocity state."""
        (result,), shadow_work = score_payments(serving, [_payment_dict(data)])
        background = BackgroundTask(run_fraud_shadow, serving, shadow_work) if shadow_work else None
        return Response(_response(result), background=background)

    @post("/score:batch", sync_to_thread=False, status_code=200)
    def score_batch(
        self, data: JSONBody[PaymentBatch], serving: ServingDependency
    ) -> Response[FraudBatchResponse]:
        """Score up to 1000 payments in order (each sees the earlier ones of the batch)."""
        results, shadow_work = score_payments(serving, [_payment_dict(p) for p in data.payments])
        background = BackgroundTask(run_fraud_shadow, serving, shadow_work) if shadow_work else None
        return Response(FraudBatchResponse([_response(r) for r in results]), background=background)
