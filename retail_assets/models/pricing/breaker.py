"""The pricing circuit breaker's test: is a model version's recent behaviour still the
behaviour it was promoted with?

At training, the family records the distribution of the price changes (log of recommended
over current price) its policy made on the validation window: the reference, in the bundle
(`signature.extras.price_change_reference`). Serving keeps, per model version, a rolling
window of the changes it actually recommended. The breaker trips when

- any recommended price violates a guardrail (it never should: the optimizer clamps every
  price; a violation means the model, the rules or the data are broken), or
- the window's mean change is more than `sigmas` standard errors from the reference mean
  (standard error = reference SD / sqrt(window size)), once the window holds `min_changes`.

A model with inverted elasticity, for instance, pushes every price to the top of its
allowed range: its mean change sits near +9.5 % against a reference near 0 with an SD near
8 %, which is 6.5 standard errors after 30 requests.

Runtime only (stdlib): serving imports it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

# Defaults (RETAIL_PRICING_BREAKER_* override them in serving):
# - 200 changes: about a minute of one store's repricing traffic, short enough to react,
#   long enough that the mean is stable;
# - 30 changes before judging: below that one SKU family's legitimate moves can dominate;
# - 5 standard errors: a false trip under the reference distribution is then a
#   less-than-one-in-a-million event per check, while a broken model trips within tens of
#   requests (measured: benchmarks/bench_pricing_serving.py).
DEFAULT_WINDOW = 200
DEFAULT_MIN_CHANGES = 30
DEFAULT_SIGMAS = 5.0
# The reference SD never counts as less than half a percent: a model that barely moves prices
# must not trip on a few cents of rounding to price endings.
MIN_REFERENCE_SD = 0.005


@dataclass(frozen=True)
class BreakerSettings:
    window: int = DEFAULT_WINDOW
    min_changes: int = DEFAULT_MIN_CHANGES
    sigmas: float = DEFAULT_SIGMAS

    def __post_init__(self) -> None:
        if self.window < 2 or not 2 <= self.min_changes <= self.window:
            raise ValueError(
                f"breaker window must be >= 2 and min_changes in [2, window]; got window "
                f"{self.window}, min_changes {self.min_changes}"
            )
        if self.sigmas <= 0:
            raise ValueError(f"breaker sigmas must be > 0; got {self.sigmas}")


@dataclass(frozen=True)
class Trip:
    reason: str
    evidence: dict[str, Any]


class ChangeWindow:
    """The recent price changes of one model version against its reference."""

    def __init__(self, reference: dict[str, Any], settings: BreakerSettings):
        self.settings = settings
        self.reference_mean = float(reference.get("mean", 0.0))
        self.reference_sd = max(float(reference.get("std", 0.0)), MIN_REFERENCE_SD)
        self.changes: deque[float] = deque(maxlen=settings.window)
        self.total = 0.0
        self.observed = 0

    def observe(self, change: float, violated: list[str]) -> Trip | None:
        """Add one recommended change (log of new over current price); a Trip when the
        breaker must open."""
        self.observed += 1
        if violated:
            return Trip(
                f"guardrail violated: {'; '.join(violated)}",
                {"violations": violated, "change": change, "observed": self.observed},
            )
        if len(self.changes) == self.changes.maxlen:
            self.total -= self.changes[0]
        self.changes.append(change)
        self.total += change
        n = len(self.changes)
        if n < self.settings.min_changes:
            return None
        mean = self.total / n
        z = (mean - self.reference_mean) / (self.reference_sd / math.sqrt(n))
        if abs(z) <= self.settings.sigmas:
            return None
        return Trip(
            f"mean price change {mean:+.2%} over the last {n} recommendations is {z:+.1f} "
            f"standard errors from the reference {self.reference_mean:+.2%} "
            f"(limit {self.settings.sigmas:g})",
            {
                "window": n,
                "window_mean": mean,
                "reference_mean": self.reference_mean,
                "reference_sd": self.reference_sd,
                "z": z,
                "sigmas": self.settings.sigmas,
                "observed": self.observed,
            },
        )
