"""The price to recommend: the best of a grid of candidate prices by expected margin (or a
revenue/margin mix), then the guardrails (`guardrails.decide`) with their trace.

The grid spans GRID_LOW..GRID_HIGH times the current price in GRID_STEP steps: wider than any
guardrail lets a price move in one update, so the trace can say how far the model wanted to go
(`proposed`) and which rule held it. With units monotone decreasing in price (the response
model's constraint) and a margin objective, expected margin over price rises to one peak and
falls, so the clamp of the grid's best price into the guardrails' range is the best price
inside them; the optimizer checks that on the grid and takes the best feasible grid price when
it is not (a demand curve with a flat stretch), saying so in the trace.

Runtime only (numpy): serving imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from retail_assets.models.pricing.guardrails import Decision, Guardrails, PriceContext, decide

GRID_LOW, GRID_HIGH, GRID_STEP = 0.5, 2.0, 0.01


@dataclass(frozen=True)
class Objective:
    """margin_weight 1: expected margin; 0: expected revenue; between: the mix."""

    margin_weight: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.margin_weight <= 1:
            raise ValueError(f"margin_weight must be in [0, 1]; got {self.margin_weight}")

    def value(self, price: np.ndarray, units: np.ndarray, cost: float | np.ndarray) -> np.ndarray:
        margin = (price - cost) * units
        revenue = price * units
        return self.margin_weight * margin + (1 - self.margin_weight) * revenue


def grid(current_price: float) -> np.ndarray:
    steps = round((GRID_HIGH - GRID_LOW) / GRID_STEP) + 1
    return current_price * np.linspace(GRID_LOW, GRID_HIGH, steps)


@dataclass
class Recommendation:
    decision: Decision
    expected_units: float
    expected_margin: float
    expected_revenue: float

    def as_dict(self) -> dict:
        return {
            **self.decision.as_dict(),
            "expected_units": self.expected_units,
            "expected_margin": self.expected_margin,
            "expected_revenue": self.expected_revenue,
        }


def recommend_prices(
    units_at: Callable[[np.ndarray], np.ndarray],
    contexts: Sequence[PriceContext],
    rails: Guardrails | None = None,
    objective: Objective | None = None,
) -> list[Recommendation]:
    """Recommended prices for many SKU-stores at once: `units_at(prices)` answers the demand
    response for a [rows, k] matrix of candidate prices (row i: prices for contexts[i]) with
    a [rows, k] matrix of expected units. Three calls in all, whatever the number of rows (the
    grid, the clamped prices, the decided prices): one model call per batch, not per row."""
    rails = rails or Guardrails()
    objective = objective or Objective()
    if not contexts:
        return []
    current = np.array([c.current_price for c in contexts], dtype=np.float64)
    cost = np.array([c.cost for c in contexts], dtype=np.float64)
    prices = current[:, None] * grid(1.0)[None, :]
    value = objective.value(prices, units_at(prices), cost[:, None])
    best = prices[np.arange(len(contexts)), np.argmax(value, axis=1)]
    decisions = [decide(rails, ctx, float(p)) for ctx, p in zip(contexts, best, strict=True)]
    low = np.array([d.low for d in decisions])
    high = np.array([np.inf if d.high is None else d.high for d in decisions])
    clamped = np.clip(best, low, high)
    at_clamp = objective.value(clamped[:, None], units_at(clamped[:, None]), cost[:, None])[:, 0]
    inside = (prices >= low[:, None]) & (prices <= high[:, None])
    inside_value = np.where(inside, value, -np.inf)
    best_inside = prices[np.arange(len(contexts)), np.argmax(inside_value, axis=1)]
    for i in np.flatnonzero(
        inside.any(axis=1) & (inside_value.max(axis=1) > at_clamp + 0.005 * np.abs(at_clamp) + 1e-9)
    ):
        # Not one peak: the best price inside the bounds is not the clamp of the best.
        first = decisions[i]
        decisions[i] = decide(rails, contexts[i], float(best_inside[i]))
        decisions[i].proposed = first.proposed
        decisions[i].bound_by = [
            *first.bound_by,
            {
                "rule": "best_inside_bounds",
                "side": "-",
                "limit": float(best_inside[i]),
                "moved_by": 0,
            },
        ]
    final = np.array([d.price for d in decisions])
    units = units_at(final[:, None])[:, 0]
    return [
        Recommendation(
            decision=d,
            expected_units=float(u),
            expected_margin=float((d.price - c) * u),
            expected_revenue=float(d.price * u),
        )
        for d, u, c in zip(decisions, units, cost, strict=True)
    ]


def recommend_price(
    expected_units: Callable[[np.ndarray], np.ndarray],
    ctx: PriceContext,
    rails: Guardrails | None = None,
    objective: Objective | None = None,
) -> Recommendation:
    """The recommended price for one SKU (and store): `expected_units(prices)` answers the
    demand response at each candidate price. Defaults: `Guardrails()`, `Objective()`."""
    return recommend_prices(
        lambda prices: np.asarray(expected_units(prices[0]), dtype=np.float64)[None, :],
        [ctx],
        rails,
        objective,
    )[0]
