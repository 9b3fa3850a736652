"""The price to recommend: the best of a grid of candidate prices by expected margin (or a
revenue/margin mix), then the guardrails (`guardrails.decide`) with their trace.

Two grids, asked of the model in one call:
- the *proposal* grid spans GRID_LOW..GRID_HIGH times the current price in PROPOSAL_STEP
  steps: wider than any guardrail lets a price move in one update, so the trace can say how
  far the model wanted to go (`proposed`) and which rule held it;
- the *decision* grid covers the guardrails' allowed range [low, high] in GRID_STEP steps
  (relative to the current price; at least DECISION_POINTS points), endpoints included.
The proposal is the best price of both grids; the price charged is the best price of the
decision grid, through `decide` (price endings). With units monotone decreasing in price and
a margin objective, margin rises to one peak and falls, so that is the clamp of the proposal
into the range; when it is not (a demand curve with a flat stretch), the trace says so
(`best_inside_bounds`). Searching only the allowed range finely is what keeps a price request
at about 50 model rows instead of 150.

Runtime only (numpy): serving imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from retail_assets.models.pricing.guardrails import (
    Decision,
    Guardrails,
    PriceContext,
    decide,
    feasible_range,
)

GRID_LOW, GRID_HIGH, GRID_STEP = 0.5, 2.0, 0.01
PROPOSAL_STEP = 0.05
# The decision grid's minimum size: the 10 % change limit's +-10 % range in 1 % steps.
DECISION_POINTS = 21


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


def grid(current_price: float, step: float = GRID_STEP) -> np.ndarray:
    steps = round((GRID_HIGH - GRID_LOW) / step) + 1
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
    a [rows, k] matrix of expected units. Two calls in all, whatever the number of rows (both
    grids, then the decided prices): one model call per batch, not per row."""
    rails = rails or Guardrails()
    objective = objective or Objective()
    if not contexts:
        return []
    n = len(contexts)
    rows = np.arange(n)
    current = np.array([c.current_price for c in contexts], dtype=np.float64)
    cost = np.array([c.cost for c in contexts], dtype=np.float64)
    ranges = [feasible_range(rails, c) for c in contexts]
    low = np.array([r[0] for r in ranges])
    high = np.minimum(np.array([r[1] for r in ranges]), current * GRID_HIGH)
    high = np.maximum(high, low)
    span = float(np.max((high - low) / current))
    points = max(DECISION_POINTS, int(np.ceil(span / GRID_STEP)) + 1)
    steps = np.linspace(0.0, 1.0, points)
    inside = low[:, None] + (high - low)[:, None] * steps[None, :]
    proposal = current[:, None] * grid(1.0, PROPOSAL_STEP)[None, :]
    prices = np.concatenate([proposal, inside], axis=1)
    value = objective.value(prices, units_at(prices), cost[:, None])
    proposed = prices[rows, np.argmax(value, axis=1)]
    inside_value = value[:, proposal.shape[1] :]
    best_inside = inside[rows, np.argmax(inside_value, axis=1)]
    # The clamp of the proposal is an endpoint of the decision grid or the proposal itself.
    clamped = np.clip(proposed, low, high)
    at_clamp = np.where(
        clamped == proposed,
        value[rows, np.argmax(value, axis=1)],
        np.where(clamped <= low, inside_value[:, 0], inside_value[:, -1]),
    )
    decisions = []
    for i, ctx in enumerate(contexts):
        first = decide(rails, ctx, float(proposed[i]))
        if inside_value[i].max() > at_clamp[i] + 0.005 * abs(at_clamp[i]) + 1e-9:
            # Not one peak: the best price inside the bounds is not the clamp of the best.
            decision = decide(rails, ctx, float(best_inside[i]))
            decision.proposed = first.proposed
            decision.bound_by = [
                *first.bound_by,
                {
                    "rule": "best_inside_bounds",
                    "side": "-",
                    "limit": round(float(best_inside[i]), 4),
                    "moved_by": 0,
                },
            ]
        else:
            decision = first
        decisions.append(decision)
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
