"""schemathesis hooks for the API contract run (loaded through SCHEMATHESIS_HOOKS).

Payment timestamps are valid only inside a window around the serving clock (see
`serving/clock.py`); JSON Schema cannot state a bound relative to "now", so the document
describes it in words and the 422 it causes. Positive (schema-valid) fraud cases therefore
leave `transaction_ts` out, which dates the payment "now" on the serving clock; the refusal
of out-of-window timestamps is tested explicitly in `tests/test_serving.py`.
"""

from __future__ import annotations

import schemathesis


@schemathesis.hook("map_case").apply_to(path_regex=r"^/v1/fraud/")
def payments_dated_by_the_serving_clock(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or not isinstance(case.body, dict):
        return case
    payments = case.body.get("payments") if "payments" in case.body else [case.body]
    for payment in payments if isinstance(payments, list) else []:
        if isinstance(payment, dict):
            payment.pop("transaction_ts", None)
    return case
