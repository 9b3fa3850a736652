"""The platform's one clock: `RETAIL_NOW` when set, else the UTC wall clock.

Everything that is later compared in time reads it: decision-log entries and role pointers
(when a canary started), prediction-log timestamps (which lists a click answers, which
predictions a canary judges), the canary's minimum time, and serving's "today". One clock
keeps them comparable. Production leaves `RETAIL_NOW` unset. `retail simulate` sets it to each
simulated night and to the day's traffic, whose data lie days or weeks from today's real date:
with two clocks, a shopper's click at a simulated time could never be matched to the list
that served it, logged at the real time. The checks that reject data from the future read it
too, as does dbt's `not_in_future` test.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

CLOCK_ENV = "RETAIL_NOW"


def now() -> datetime:
    """The platform's "now", timezone-aware UTC (a naive `RETAIL_NOW` is taken as UTC)."""
    value = os.environ.get(CLOCK_ENV, "").strip()
    if not value:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{CLOCK_ENV} must be an ISO timestamp such as 2026-12-08T06:00:00; got {value!r}"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def now_naive() -> datetime:
    """The platform's "now" in naive UTC (the marts' timestamps are naive UTC)."""
    return now().replace(tzinfo=None)


def now_iso() -> str:
    return now().isoformat()


def timestamp() -> float:
    """The platform's "now" in seconds since the epoch."""
    return now().timestamp()
