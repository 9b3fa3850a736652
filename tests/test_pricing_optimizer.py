"""Price optimisation (issue 14, second part): on a known constant-elasticity demand curve the
optimizer finds the textbook margin optimum, stays inside the guardrails and says which one
held it; judged against the truth, the true optimum captures all the achievable uplift, list
prices none, and the response model's monotone constraint keeps units falling with price."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from retail_assets.models.pricing.guardrails import Guardrails, PriceContext, violations
from retail_assets.models.pricing.optimizer import Objective, recommend_price
from retail_assets.models.pricing.truth import TrueResponse, compare, uplift_captured


def _demand(elasticity: float, reference: float = 20.0, level: float = 100.0):
    return lambda prices: level * (np.asarray(prices) / reference) ** elasticity


LOOSE = Guardrails(
    min_margin=0.0,
    max_change_per_update=0.99,
    max_change_per_week=0.99,
    competitor_band_low=0.01,
    competitor_band_high=100.0,
    price_endings=(),
)


def test_without_binding_rules_the_optimizer_finds_the_textbook_margin_optimum():
    cost, elasticity = 10.0, -2.0  # p* = c e / (1 + e) = 20
    rec = recommend_price(_demand(elasticity), PriceContext(cost=cost, current_price=18.0), LOOSE)
    assert rec.decision.price == pytest.approx(20.0, rel=0.011)
    assert rec.decision.bound_by == []
    assert rec.expected_margin == pytest.approx((rec.decision.price - cost) * rec.expected_units)


def test_revenue_objective_prices_lower_than_margin_objective():
    ctx = PriceContext(cost=10.0, current_price=18.0)
    margin = recommend_price(_demand(-2.0), ctx, LOOSE, Objective(1.0)).decision.price
    revenue = recommend_price(_demand(-2.0), ctx, LOOSE, Objective(0.0)).decision.price
    assert revenue < margin


def test_the_default_guardrails_hold_a_greedy_optimum_and_name_the_rule():
    ctx = PriceContext(cost=10.0, current_price=15.0, competitor_price=16.0)
    rec = recommend_price(_demand(-1.5), ctx)  # free optimum 30: far above every limit
    rules = {b["rule"] for b in rec.decision.bound_by}
    assert rules and rules <= {"max_change_per_update", "competitor_band"}
    assert rec.decision.proposed == pytest.approx(30.0, rel=0.02)
    assert rec.decision.price <= 16.5 and violations(Guardrails(), ctx, rec.decision.price) == []
    assert f"{rec.decision.price:.2f}".endswith(".99")


def test_an_inelastic_product_is_priced_at_its_ceiling_not_beyond():
    ctx = PriceContext(cost=10.0, current_price=20.0)
    rec = recommend_price(_demand(-0.5), ctx)  # margin rises with price forever
    assert rec.decision.price <= 22.0 and violations(Guardrails(), ctx, rec.decision.price) == []


ROWS = pl.DataFrame(
    {
        "category": ["A", "A", "B"],
        "units": [10.0, 4.0, 7.0],
        "unit_price": [20.0, 20.0, 50.0],
        "unit_cost": [10.0, 10.0, 30.0],
        "list_price": [20.0, 20.0, 50.0],
    }
)
TRUTH = TrueResponse({"A": -2.6, "B": -1.6}, cross_elasticity=0.4)


def test_the_true_optimum_captures_all_the_uplift_and_list_prices_none():
    low, high = ROWS["unit_price"].to_numpy() * 0.5, ROWS["unit_price"].to_numpy() * 2
    optimum = TRUTH.optimum(ROWS, low, high)
    # E = e - cross: A -3.0 -> p* = 10 * 3 / 2 = 15; B -2.0 -> p* = 60
    assert optimum.tolist() == pytest.approx([15.0, 15.0, 60.0])
    halfway = (ROWS["list_price"].to_numpy() + optimum) / 2
    table = compare(
        ROWS,
        {"list": ROWS["list_price"].to_numpy(), "optimum": optimum, "halfway": halfway},
        TRUTH,
    )
    assert uplift_captured(table, "optimum", "list", "optimum") == pytest.approx(1.0)
    assert uplift_captured(table, "list", "list", "optimum") == pytest.approx(0.0)
    assert 0 < uplift_captured(table, "halfway", "list", "optimum") < 1
    assert set(table["category"]) == {"A", "B", "all"}
    # Units at the charged price are the units sold: the truth is anchored on what happened.
    assert TRUTH.units(ROWS, ROWS["unit_price"].to_numpy()).tolist() == [10.0, 4.0, 7.0]
    with pytest.raises(ValueError, match="no true elasticity"):
        TRUTH.units(ROWS.with_columns(pl.lit("C").alias("category")), np.ones(3))


def test_the_response_model_never_sells_more_at_a_higher_price_and_recovers_the_slope():
    """The trained response model (elasticity offset + monotone LightGBM), on a toy world
    where price and demand are confounded (promotions cut the price and lift demand): predicted
    units fall along every row's price grid, and its elasticity is the true -1.5, not the
    promotion-inflated slope a naive fit of units on price would find."""
    from retail_assets.models.pricing.response import Vocabulary, baselines, features
    from retail_assets.models.pricing.train import OUTPUT, fit_response, matrix

    rng = np.random.default_rng(0)
    n = 12000
    sku = rng.integers(0, 40, n)
    regular = 20.0 * np.exp(rng.normal(0, 0.1, 40))[sku] * np.exp(rng.normal(0, 0.05, n))
    promo = rng.random(n) < 0.2
    depth = rng.choice([0.1, 0.2, 0.3], n)
    price = np.where(promo, regular * (1 - depth), regular)
    mu = 5 * (price / 20) ** -1.5 * np.where(promo, 1.4, 1.0)
    rows = pl.DataFrame(
        {
            "date": [date(2026, 1, 1 + i % 28) for i in range(n)],
            "store_id": [f"S{i % 3}" for i in range(n)],
            "sku": [f"K{k}" for k in sku],
            "category": ["A" if k < 20 else "B" for k in sku],
            "units": rng.poisson(mu).astype(float),
            "unit_price": price,
            "regular_price": regular,
            "list_price": 20.0,
            "unit_cost": 10.0,
            "competitor_min_price": 20.0,
            "on_promotion": promo,
        }
    )
    vocabulary = Vocabulary.of(rows)
    frame = features(rows, baselines(rows), vocabulary)
    model = fit_response(frame.head(10000), frame.tail(2000), vocabulary.categories)
    slopes = model.extras["elasticities"]["pooled"]
    assert slopes["own_price"] == pytest.approx(-1.5, abs=0.2)
    sample = frame.head(200)
    curves = np.column_stack(
        [
            model.outputs(
                matrix(features(sample, baselines(rows), vocabulary, pl.col("regular_price") * m))
            )[OUTPUT]
            for m in np.linspace(0.6, 1.6, 21)
        ]
    )
    assert (np.diff(curves, axis=1) <= 1e-9).all()
    assert (curves[:, 0] > curves[:, -1]).all()
