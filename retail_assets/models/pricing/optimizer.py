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

from collections.abc import Callable
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

    def value(self, price: np.ndarray, units: np.ndarray, cost: float) -> np.ndarray:
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


def recommend_price(
    expected_units: Callable[[np.ndarray], np.ndarray],
    ctx: PriceContext,
    rails: Guardrails | None = None,
    objective: Objective | None = None,
) -> Recommendation:
    """The recommended price for one SKU (and store): `expected_units(prices)` answers the
    demand response at each candidate price. Defaults: `Guardrails()`, `Objective()`."""
    rails = rails or Guardrails()
    objective = objective or Objective()
    prices = grid(ctx.current_price)
    value = objective.value(prices, expected_units(prices), ctx.cost)
    decision = decide(rails, ctx, float(prices[int(np.argmax(value))]))
    high = decision.high if decision.high is not None else np.inf
    inside = (prices >= decision.low) & (prices <= high)
    if inside.any():
        clamped = np.array([min(max(decision.proposed, decision.low), high)])
        at_clamp = objective.value(clamped, expected_units(clamped), ctx.cost)[0]
        best_inside = float(prices[inside][int(np.argmax(value[inside]))])
        if value[inside].max() > at_clamp + 0.005 * abs(at_clamp) + 1e-9:
            # Not one peak: the best price inside the bounds is not the clamp of the best.
            first = decision
            decision = decide(rails, ctx, best_inside)
            decision.proposed = first.proposed
            decision.bound_by = [
                *first.bound_by,
                {"rule": "best_inside_bounds", "side": "-", "limit": best_inside, "moved_by": 0},
            ]
    units = float(expected_units(np.array([decision.price]))[0])
    return Recommendation(
        decision=decision,
        expected_units=units,
        expected_margin=(decision.price - ctx.cost) * units,
        expected_revenue=decision.price * units,
    )
