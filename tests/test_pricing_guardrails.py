"""Pricing guardrails (issue 14, first part): every bound holds, each binding rule is named
with how far it moved the price, conflicting rules give way by priority and say so, and
prices end in an allowed ending inside the bounds."""

from __future__ import annotations

import math

import pytest

from retail_assets.models.pricing.guardrails import (
    Guardrails,
    PriceContext,
    decide,
    feasible_range,
    violations,
)

RAILS = Guardrails()


def test_an_unconstrained_proposal_only_gets_its_price_ending():
    ctx = PriceContext(cost=10.0, current_price=20.0, competitor_price=20.0)
    decision = decide(RAILS, ctx, 20.6)
    assert decision.price == 20.99 and decision.bound_by == [] and decision.relaxed == []
    assert violations(RAILS, ctx, decision.price) == []


def test_a_greedy_proposal_is_held_by_the_change_limit_and_the_trace_says_by_how_much():
    ctx = PriceContext(cost=10.0, current_price=20.0, competitor_price=25.0)
    decision = decide(RAILS, ctx, 35.0)  # what a constant-elasticity optimum asks for
    assert decision.high == pytest.approx(22.0)
    assert [b["rule"] for b in decision.bound_by] == ["max_change_per_update"]
    assert decision.bound_by[0]["moved_by"] == pytest.approx(-13.0)
    assert decision.price == 21.99 and violations(RAILS, ctx, decision.price) == []


def test_predatory_undercutting_stops_at_the_competitor_band_and_never_below_the_margin_floor():
    ctx = PriceContext(cost=17.0, current_price=17.0, competitor_price=21.0)
    decision = decide(RAILS, ctx, 5.0)
    # lower bounds: margin 18.7, change 15.3, band 17.85: the margin floor decides
    assert {b["rule"] for b in decision.bound_by} == {"margin_floor"}
    assert decision.price >= 18.7 and violations(RAILS, ctx, decision.price) == []
    cheap = decide(RAILS, PriceContext(cost=5.0, current_price=17.0, competitor_price=21.0), 5.0)
    assert {b["rule"] for b in cheap.bound_by} == {"competitor_band"}
    assert cheap.low == pytest.approx(21.0 * 0.85)
    assert cheap.price >= cheap.low


def test_emergency_caps_increases_and_the_law_wins_over_the_margin_floor():
    ctx = PriceContext(
        cost=30.0, current_price=20.0, emergency=True, pre_emergency_price=20.0
    )  # cost rose above what the cap allows
    _, high, relaxed = feasible_range(RAILS, ctx)
    assert high == pytest.approx(22.0)
    assert [r["rule"] for r in relaxed] == ["margin_floor"]
    decision = decide(RAILS, ctx, 40.0)
    assert decision.price <= 22.0 and decision.relaxed[0]["rule"] == "margin_floor"
    assert violations(RAILS, ctx, decision.price) == []
    assert "anti_gouging: 25.00 > 22.00" in violations(RAILS, ctx, 25.0)


def test_minimum_advertised_price_and_weekly_limits_apply_where_set():
    ctx = PriceContext(
        cost=10.0, current_price=20.0, price_week_ago=24.0, minimum_advertised_price=19.5
    )
    decision = decide(RAILS, ctx, 15.0)
    assert decision.low == pytest.approx(24.0 * 0.85)  # the weekly limit is the highest floor
    assert {b["rule"] for b in decision.bound_by} == {"max_change_per_week"}
    broken = violations(RAILS, ctx, 19.0)
    assert "minimum_advertised_price: 19.00 < 19.50" in broken
    assert "max_change_per_week: 19.00 < 20.40" in broken


def test_no_allowed_ending_inside_narrow_bounds_keeps_the_bounded_price():
    rails = Guardrails(max_change_per_update=0.01)
    decision = decide(rails, PriceContext(cost=10.0, current_price=20.40), 30.0)
    assert decision.price == pytest.approx(20.6, abs=0.01)
    assert "no allowed ending" in decision.ending
    assert math.isclose(decision.high, 20.604)


@pytest.mark.parametrize(
    "bad",
    [
        {"min_margin": -0.1},
        {"max_change_per_update": 1.5},
        {"competitor_band_low": 1.2},
        {"price_endings": (1.5,)},
    ],
)
def test_impossible_configurations_are_refused_naming_the_setting(bad):
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        Guardrails(**bad)
