"""The pricing circuit breaker's test: is a model version's recent behaviour still the
behaviour it was promoted with?

At training, the family records the distribution of the price changes (log of recommended
over current price) its policy made on the validation window: the reference, in the bundle
(`signature.extras.price_change_reference`). Serving keeps, per model version, a rolling
window of the changes it actually recommended. The breaker trips when

- any recommended price violates a guardrail (it never should: the optimizer clamps every
  price; a violation means the model, the rules or the data are broken), or
- the window's mean standardized change is more than `sigmas` standard errors from zero,
  once the window holds `min_changes`, and at least `MIN_SHIFT_SD` reference SDs (a day's
  shared context moves a whole catalog's changes together, so the standard error alone
  overstates the evidence). Each change is standardized by its category's
  reference (mean and SD of that category's changes at training; the overall ones for a
  category without enough of them), so traffic that happens to ask for one category at a
  time is judged against that category's own moves; and each store x SKU counts once in the
  window (its latest change), so a client asking for the same price repeatedly cannot trip it.

A model with inverted elasticity, for instance, pushes every price to the top of its
allowed range: its changes sit near +9.5 % against a reference near 0 with an SD near 8 %,
more than 6 standard errors after 30 store x SKUs.

Runtime only (stdlib): serving imports it.
"""

from __future__ import annotations

import math
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
# The window's mean must also be at least this many reference SDs from the reference mean. The
# standard error assumes independent changes, but a whole catalog repriced on one day shares
# that day's context (competitors' moves, the week in the calendar): the healthy champion of
# `retail simulate` moved its full-catalog changes by -0.54 SD on such a day (-5.1 standard
# errors over 90 store x SKUs) and tripped. A broken model moves far more: the
# inverted-elasticity fault +1.2 SD against a wide overall reference, +8.4 SD against its
# categories' references in the same simulation.
MIN_SHIFT_SD = 1.0
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
        self.overall = _moments(reference)
        self.by_category = {c: _moments(r) for c, r in (reference.get("by_category") or {}).items()}
        self.scores: dict[Any, float] = {}  # key -> standardized change, oldest first
        self.observed = 0

    def observe(
        self, change: float, violated: list[str], key: Any = None, category: str | None = None
    ) -> Trip | None:
        """Add one recommended change (log of new over current price) of store x SKU `key`; a
        Trip when the breaker must open."""
        if violated:
            self.observed += 1
            return Trip(
                f"guardrail violated: {'; '.join(violated)}",
                {"violations": violated, "change": change, "observed": self.observed},
            )
        mean, sd = self.by_category.get(category, self.overall)
        n, total = self.push(self.observed + 1 if key is None else key, (change - mean) / sd)
        return self._judge(n, total, change, mean, sd)

    def push(self, key: Any, score: float) -> tuple[int, float]:
        """Keep `score` as `key`'s latest standardized change (one vote per store x SKU), drop
        the oldest keys beyond the window; the window's size and sum. Serving with
        RETAIL_REDIS_URL keeps the window in Redis instead (`serving/redis_state.py`)."""
        self.observed += 1
        self.scores.pop(key, None)
        self.scores[key] = score
        while len(self.scores) > self.settings.window:
            self.scores.pop(next(iter(self.scores)))
        return len(self.scores), sum(self.scores.values())

    def size(self) -> int:
        return len(self.scores)

    def _judge(self, n: int, total: float, change: float, mean: float, sd: float) -> Trip | None:
        if n < self.settings.min_changes:
            return None
        z = total / math.sqrt(n)
        if abs(z) <= self.settings.sigmas or abs(z) / math.sqrt(n) < MIN_SHIFT_SD:
            return None
        return Trip(
            f"price changes of the last {n} store x SKUs are {z:+.1f} standard errors from "
            f"their reference (limit {self.settings.sigmas:g}), a shift of "
            f"{z / math.sqrt(n):+.2f} reference SDs (limit {MIN_SHIFT_SD:g}); latest {change:+.2%} against "
            f"{mean:+.2%} +- {sd:.2%}",
            {
                "window": n,
                "mean_standardized_change": z / math.sqrt(n),
                "reference_mean": self.overall[0],
                "reference_sd": self.overall[1],
                "z": z,
                "sigmas": self.settings.sigmas,
                "observed": self.observed,
            },
        )


def _moments(reference: dict[str, Any]) -> tuple[float, float]:
    return float(reference.get("mean", 0.0)), max(
        float(reference.get("std", 0.0)), MIN_REFERENCE_SD
    )
