"""Pricing guardrails: the bounds a recommended price must respect, and the trace of which
bound decided it and by how much.

The optimizer proposes the price that maximizes the objective; these rules then decide what
may be charged. Each rule is a bound on the price, with a priority: when two bounds cannot
both hold (a cost rise pushes the margin floor above the weekly change limit), the rule of
lower priority gives way and the trace says so. From the highest priority:

1. `anti_gouging` (law): during a declared emergency, at most `emergency_max_increase` above
   the price before the emergency;
2. `minimum_advertised_price` (contract): at least the supplier's MAP where one is set;
3. `margin_floor`: at least cost x (1 + `min_margin`);
4. `max_change_per_update`: within +-`max_change_per_update` of the current price;
5. `max_change_per_week`: within +-`max_change_per_week` of the price seven days ago;
6. `competitor_band`: within [`competitor_band_low`, `competitor_band_high`] x the competitor's
   price, where one is known.

Then `price_ending`: the price is moved to the nearest allowed ending (.99 by default) inside
the bounds; when no such price lies inside them, the bounded price is kept and the trace
says the ending could not be honoured.

Runtime only (numpy-free, stdlib): serving imports it to check every price it answers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Priority order: earlier rules win when bounds conflict.
RULES = (
    "anti_gouging",
    "minimum_advertised_price",
    "margin_floor",
    "max_change_per_update",
    "max_change_per_week",
    "competitor_band",
)
# Cent tolerance: prices are money, compared to the cent.
CENT = 0.005


@dataclass(frozen=True)
class Guardrails:
    """The configured limits (each named rule above). Defaults: a 10 % minimum margin keeps
    every sale above cost after typical shrink and payment fees; 10 % per update and 15 % per
    week keep shoppers' reference prices meaningful; a band of -15 % / +10 % around the
    competitor stops predatory undercutting and visible overpricing; 10 % is the usual
    statutory cap on increases during a declared emergency."""

    min_margin: float = 0.10
    max_change_per_update: float = 0.10
    max_change_per_week: float = 0.15
    competitor_band_low: float = 0.85
    competitor_band_high: float = 1.10
    emergency_max_increase: float = 0.10
    price_endings: tuple[float, ...] = (0.99,)

    def __post_init__(self) -> None:
        for name in ("min_margin", "max_change_per_update", "max_change_per_week"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1); got {getattr(self, name)}")
        if not 0 < self.competitor_band_low <= 1 <= self.competitor_band_high:
            raise ValueError(
                "competitor band must satisfy 0 < low <= 1 <= high; got "
                f"[{self.competitor_band_low}, {self.competitor_band_high}]"
            )
        if any(not 0 <= e < 1 for e in self.price_endings):
            raise ValueError(f"price endings are cents in [0, 1); got {self.price_endings}")


@dataclass(frozen=True)
class PriceContext:
    """What the rules need to know about one SKU (and store) now."""

    cost: float
    current_price: float
    price_week_ago: float | None = None
    competitor_price: float | None = None
    minimum_advertised_price: float | None = None
    emergency: bool = False
    pre_emergency_price: float | None = None


@dataclass
class Bound:
    rule: str
    low: float | None
    high: float | None


@dataclass
class Decision:
    """The price charged and why: the bounds that applied, which of them moved the proposal
    (and by how much), which gave way to a higher-priority rule, and the ending."""

    proposed: float
    price: float
    low: float
    high: float | None
    """None: no rule caps the price."""
    bound_by: list[dict[str, Any]] = field(default_factory=list)
    relaxed: list[dict[str, Any]] = field(default_factory=list)
    ending: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _band(rule: str, reference: float, low: float, high: float) -> Bound:
    return Bound(rule, reference * low, reference * high)


def bounds(rails: Guardrails, ctx: PriceContext) -> list[Bound]:
    """Every rule's bound for this context, in priority order (rules that do not apply, e.g.
    no competitor price, are left out)."""
    out = []
    if ctx.emergency:
        reference = ctx.pre_emergency_price or ctx.current_price
        out.append(Bound("anti_gouging", None, reference * (1 + rails.emergency_max_increase)))
    if ctx.minimum_advertised_price:
        out.append(Bound("minimum_advertised_price", ctx.minimum_advertised_price, None))
    out.append(Bound("margin_floor", ctx.cost * (1 + rails.min_margin), None))
    out.append(
        _band(
            "max_change_per_update",
            ctx.current_price,
            1 - rails.max_change_per_update,
            1 + rails.max_change_per_update,
        )
    )
    if ctx.price_week_ago:
        week = rails.max_change_per_week
        out.append(_band("max_change_per_week", ctx.price_week_ago, 1 - week, 1 + week))
    if ctx.competitor_price:
        out.append(
            _band(
                "competitor_band",
                ctx.competitor_price,
                rails.competitor_band_low,
                rails.competitor_band_high,
            )
        )
    return out


def feasible_range(rails: Guardrails, ctx: PriceContext) -> tuple[float, float, list[dict]]:
    """(low, high, relaxed): the intersection of the bounds, taking them in priority order; a
    bound that would leave nothing is relaxed (recorded with the range it conflicted with)."""
    return _intersect(bounds(rails, ctx))


def _intersect(ordered: list[Bound]) -> tuple[float, float, list[dict]]:
    low, high = 0.0, math.inf
    relaxed = []
    for bound in ordered:
        new_low = max(low, bound.low) if bound.low is not None else low
        new_high = min(high, bound.high) if bound.high is not None else high
        if new_low > new_high + CENT:
            relaxed.append(
                {
                    "rule": bound.rule,
                    "wanted": [bound.low, bound.high],
                    "kept": [low, high],
                    "reason": "conflicts with a higher-priority rule",
                }
            )
            continue
        low, high = new_low, new_high
    return low, high, relaxed


def _endings(price: float, endings: tuple[float, ...]) -> list[float]:
    whole = math.floor(price)
    return [round(w + e, 2) for w in (whole - 1, whole, whole + 1) for e in endings]


def decide(rails: Guardrails, ctx: PriceContext, proposed: float) -> Decision:
    """The price to charge for an optimizer's `proposed` price, with its trace."""
    ordered = bounds(rails, ctx)
    low, high, relaxed = _intersect(ordered)
    skipped = {r["rule"] for r in relaxed}
    bounded = min(max(proposed, low), high)
    bound_by = []
    if bounded != proposed:
        side = "low" if bounded > proposed else "high"
        for bound in ordered:
            if bound.rule in skipped:
                continue
            value = bound.low if side == "low" else bound.high
            if value is not None and abs(value - bounded) <= CENT:
                bound_by.append(
                    {
                        "rule": bound.rule,
                        "side": side,
                        "limit": round(value, 4),
                        "moved_by": round(bounded - proposed, 4),
                    }
                )
    price, ending = bounded, "none configured"
    if rails.price_endings:
        inside = [
            p for p in _endings(bounded, rails.price_endings) if low - CENT <= p <= high + CENT
        ]
        if inside:
            price = min(inside, key=lambda p: (abs(p - bounded), p))
            ending = f"{price:.2f}"
        else:
            price = round(bounded, 2)
            ending = "no allowed ending inside the bounds: kept the bounded price"
    return Decision(
        proposed=round(proposed, 4),
        price=round(price, 2),
        low=round(low, 4),
        high=round(high, 4) if math.isfinite(high) else None,
        bound_by=bound_by,
        relaxed=relaxed,
        ending=ending,
    )


def violations(rails: Guardrails, ctx: PriceContext, price: float) -> list[str]:
    """The rules a charged `price` breaks (empty: it is within every bound that can hold
    together); what the gate and serving's circuit breaker count."""
    ordered = bounds(rails, ctx)
    skipped = {r["rule"] for r in _intersect(ordered)[2]}
    out = []
    for bound in ordered:
        if bound.rule in skipped:
            continue
        if bound.low is not None and price < bound.low - CENT:
            out.append(f"{bound.rule}: {price:.2f} < {bound.low:.2f}")
        if bound.high is not None and price > bound.high + CENT:
            out.append(f"{bound.rule}: {price:.2f} > {bound.high:.2f}")
    return out
