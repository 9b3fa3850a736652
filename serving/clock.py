"""The serving clock: what "now" is for a payment, and which payment timestamps are accepted.

Fraud velocity features count a card's, customer's and device's payments in the hour, day and
week before each payment, and every scored payment is folded into that state. A timestamp the
client sends therefore changes what later payments see: a payment dated years ahead would sit
in every later window, and one dated before year 1 + 7 days cannot even have its windows
computed. So serving accepts a `transaction_ts` only inside a window around its clock and
refuses the rest with a 422 naming the field, before anything is folded into the state.

Two clocks:

* `wall` (the default): now, in UTC. For live traffic.
* `replay`: the fraud state's as-of time, i.e. the latest payment it has seen. For back-tests
  and simulations that send a historical day's payments in order; within a batch the clock
  moves with the payments already accepted, exactly as the state does.

A payment without `transaction_ts` is dated "now" on the chosen clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CLOCKS = ("wall", "replay")

# The longest velocity window is 7 days: the state forgets events older than that before the
# latest payment, so a payment more than a week late would be scored against a week that is
# partly gone (wrong features) and would put events back into a pruned window.
DEFAULT_MAX_AGE = timedelta(days=7)
# Checkout hosts and this server disagree by clock skew only; NTP keeps it far below a
# second, five minutes still admits a badly synced terminal while refusing "future" payments.
DEFAULT_MAX_AHEAD = timedelta(minutes=5)


def now_utc_naive() -> datetime:
    """Payment timestamps are compared with the mart's naive UTC timestamps."""
    return datetime.now(UTC).replace(tzinfo=None)


def as_naive_utc(ts: datetime) -> datetime | None:
    """`ts` in naive UTC (naive input is taken as UTC); None when the conversion leaves the
    representable range (e.g. 0001-01-01T00:00:00+05:00)."""
    if ts.tzinfo is None:
        return ts
    try:
        return ts.astimezone(UTC).replace(tzinfo=None)
    except OverflowError:
        return None


@dataclass(frozen=True)
class PaymentClock:
    mode: str = "wall"
    max_age: timedelta = DEFAULT_MAX_AGE
    max_ahead: timedelta = DEFAULT_MAX_AHEAD

    def __post_init__(self) -> None:
        if self.mode not in CLOCKS:
            raise ValueError(f"serving clock must be one of {', '.join(CLOCKS)}; got {self.mode!r}")
        if self.max_age <= timedelta(0) or self.max_ahead < timedelta(0):
            raise ValueError("payment timestamp window must have max_age > 0 and max_ahead >= 0")

    def now(self, state_as_of: datetime | None) -> datetime:
        if self.mode == "replay" and state_as_of is not None:
            return state_as_of
        return now_utc_naive()

    def stamp(
        self, requested: list[datetime | None], state_as_of: datetime | None
    ) -> tuple[list[datetime], list[tuple[int, str]]]:
        """Timestamps for payments in order (None -> now) and the (index, problem) of each
        one outside the accepted window. In replay mode "now" moves with the accepted ones."""
        now = self.now(state_as_of)
        stamped: list[datetime] = []
        problems: list[tuple[int, str]] = []
        for i, ts in enumerate(requested):
            value = now if ts is None else as_naive_utc(ts)
            problem = self._problem(value, now)
            if problem:
                problems.append((i, problem))
                stamped.append(now)
                continue
            stamped.append(value)
            if self.mode == "replay" and value > now:
                now = value
        return stamped, problems

    def _problem(self, ts: datetime | None, now: datetime) -> str | None:
        earliest, latest = now - self.max_age, now + self.max_ahead
        if ts is not None and earliest <= ts <= latest:
            return None
        return (
            f"must lie between {earliest.isoformat()}Z and {latest.isoformat()}Z: at most "
            f"{_span(self.max_age)} before and {_span(self.max_ahead)} after the serving clock "
            f"({self.mode}: {now.isoformat()}Z); the payment was not scored nor added to the "
            "velocity state"
        )


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} s"
