"""POST /v1/fraud/score and /v1/fraud/score:batch: payment fraud probability, decision and
reason codes at authorisation time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Controller, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.exceptions import ValidationException
from litestar.params import JSONBody

from serving.openapi import BODY_ERRORS, errors
from serving.schemas import Id, ModelRef, ShortText
from serving.scoring import (
    FraudResult,
    NotReadyError,
    run_fraud_shadow,
    score_payments,
)
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
    """Default: now on the serving clock. Naive timestamps are taken as UTC. Accepted only
    within 7 days before and 5 minutes after the serving clock (configurable); others are
    refused with a 422 and never added to the velocity state."""
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
    value: float | str | bool | None
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
    """Time of the latest payment in the velocity state (UTC)."""


class FraudBatchResponse(msgspec.Struct):
    results: list[FraudScore]


def _payment_dicts(serving: ServingDependency, payments: list[Payment], path: str) -> list[dict]:
    """Payments as the feature state takes them, each stamped on the serving clock. A
    timestamp outside the accepted window refuses the whole request (422 naming each such
    field) before anything is scored or folded into the velocity state."""
    fraud = serving.fraud
    if fraud is None:
        raise NotReadyError("fraud online features are not loaded")
    clock = serving.config.payment_clock
    # Only the replay clock reads the state's as-of time (with Redis, a round trip).
    stamped, problems = clock.stamp(
        [p.transaction_ts for p in payments], fraud.as_of if clock.mode == "replay" else None
    )
    if problems:
        raise ValidationException(
            "transaction_ts outside the accepted window",
            extra=[
                {"key": path.format(i=i) + "transaction_ts", "message": message}
                for i, message in problems
            ],
        )
    out = []
    for payment, ts in zip(payments, stamped, strict=True):
        values = msgspec.structs.asdict(payment)
        values["transaction_ts"] = ts
        values["transaction_id"] = payment.transaction_id or f"req-{uuid.uuid4().hex[:16]}"
        out.append(values)
    return out


def _response(result: FraudResult) -> FraudScore:
    return FraudScore(
        transaction_id=result.transaction_id,
        probability=round(result.probability, 6),
        decision="review" if result.flagged else "approve",
        threshold=round(result.threshold, 6),
        reason_codes=[ReasonCode(**reason) for reason in result.reasons],
        model=ModelRef(result.model.name, result.model.version, result.arm),
        features_as_of=(
            result.features_as_of.replace(tzinfo=UTC) if result.features_as_of else None
        ),
    )


class FraudController(Controller):
    path = "/v1/fraud"
    tags = ["fraud"]

    @post("/score", sync_to_thread=False, status_code=200, responses=errors(*BODY_ERRORS, 503))
    def score(self, data: JSONBody[Payment], serving: ServingDependency) -> Response[FraudScore]:
        """Score one payment: probability, decision at the model's threshold, and the top
        reasons pushing it towards fraud. The payment is then folded into the velocity state."""
        (result,), shadow_work = score_payments(serving, _payment_dicts(serving, [data], ""))
        background = BackgroundTask(run_fraud_shadow, serving, shadow_work) if shadow_work else None
        return Response(_response(result), background=background)

    @post(
        "/score:batch",
        sync_to_thread=False,
        status_code=200,
        responses=errors(*BODY_ERRORS, 503),
    )
    def score_batch(
        self, data: JSONBody[PaymentBatch], serving: ServingDependency
    ) -> Response[FraudBatchResponse]:
        """Score up to 1000 payments in order (each sees the earlier ones of the batch)."""
        payments = _payment_dicts(serving, data.payments, "payments[{i}].")
        results, shadow_work = score_payments(serving, payments)
        background = BackgroundTask(run_fraud_shadow, serving, shadow_work) if shadow_work else None
        return Response(FraudBatchResponse([_response(r) for r in results]), background=background)
