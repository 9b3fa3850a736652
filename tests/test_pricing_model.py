"""The pricing model's parts (issue 14): the elasticity regression finds the true slopes when
item levels, seasons and promotions are confounded with price; the exported graph computes the
offset exactly as training did, unknown categories included; the breaker's test stays quiet on
the reference behaviour and trips on a shifted one or any guardrail violation."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from retail_assets.models.pricing.breaker import MIN_SHIFT_SD, BreakerSettings, ChangeWindow


def _world(seed: int, skus_per_category: int, days: int = 200) -> tuple[pl.DataFrame, dict]:
    """Sales with item levels, a shared season, promotions that lift demand beyond their
    price cut, and regular price changes: units ~ Poisson(level x season x promo x price^e)."""
    rng = np.random.default_rng(seed)
    truth = {"A": -1.2, "B": -2.4}
    rows = []
    for c, elasticity in truth.items():
        for k in range(skus_per_category):
            level = np.exp(rng.normal(0.5, 0.6))
            regular = 30.0 * np.exp(np.cumsum(rng.normal(0, 0.03, days)))
            promo = rng.random(days) < 0.15
            depth = rng.choice([0.1, 0.2, 0.3], days)
            paid = np.where(promo, regular * (1 - depth), regular)
            season = 1 + 0.5 * np.sin(np.arange(days) / 20)
            mu = level * season * np.where(promo, 1.3, 1.0) * (paid / 30.0) ** elasticity
            units = rng.poisson(mu)
            for d in range(days):
                rows.append(
                    {
                        "date": date(2026, 1, 1) + timedelta(days=d),
                        "store_id": "S1",
                        "sku": f"{c}{k}",
                        "category": c,
                        "units": float(units[d]),
                        "unit_price": paid[d],
                        "regular_price": regular[d],
                        "list_price": 30.0,
                        "competitor_min_price": None,
                        "on_promotion": bool(promo[d]),
                    }
                )
    return pl.DataFrame(rows), truth


def test_the_elasticity_regression_recovers_each_categorys_slope_despite_confounding():
    from retail_assets.models.pricing.elasticity import estimate

    rows, truth = _world(0, skus_per_category=12)
    found = estimate(rows)
    for category, elasticity in truth.items():
        assert found.slopes(category).own_price == pytest.approx(elasticity, abs=0.25)
    assert found.slopes("unknown") == found.pooled


def test_a_category_with_too_few_skus_takes_the_pooled_slope_instead_of_its_noise():
    from retail_assets.models.pricing.elasticity import MIN_CLUSTERS, estimate

    rows, _ = _world(1, skus_per_category=MIN_CLUSTERS - 1)
    found = estimate(rows)
    assert found.slopes("A") == found.slopes("B")
    assert found.slopes("A").own_price == found.pooled.own_price
    assert -2.4 < found.pooled.own_price < -1.2


def test_the_exported_graph_adds_the_offset_exactly_as_training_does_unknown_codes_included():
    """Trees on an init_score offset: onnxruntime equals the numpy twin (and LightGBM's raw
    score plus the offset) for known, unknown (-1), out-of-range and missing category codes."""
    import lightgbm as lgb

    from retail_assets.models.lifecycle.onnx_export import (
        boosters_to_onnx,
        lightgbm_outputs,
        parity_with,
        raw_offset_values,
    )

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0, 0.2, 3000), rng.integers(0, 3, 3000).astype(float)])
    offset = {"group_feature": 1, "terms": {0: [-1.0, -0.5, -1.5, -2.5]}}
    y = rng.poisson(np.exp(1 + raw_offset_values(offset, x)))
    booster = lgb.train(
        {"objective": "poisson", "verbose": -1, "num_threads": 1},
        lgb.Dataset(x, label=y, init_score=raw_offset_values(offset, x)),
        num_boost_round=20,
    )
    probe = np.array([[0.1, 0.0], [0.1, 2.0], [0.1, -1.0], [0.1, 7.0], [0.1, np.nan]])
    expected = lightgbm_outputs({"units": booster}, probe, raw_offsets={"units": offset})
    graph = boosters_to_onnx({"units": booster}, 2, raw_offsets={"units": offset})
    assert parity_with(graph, expected, probe)["units"] < 1e-9
    added = np.log(expected["units"]) - booster.predict(probe, raw_score=True)
    # code 0 -> entry 1, code 2 -> entry 3; -1, out of range and missing -> entry 0 (pooled)
    assert added == pytest.approx(0.1 * np.array([-0.5, -2.5, -1.0, -1.0, -1.0]))


def test_the_breaker_stays_closed_on_reference_behaviour_and_trips_on_a_shift():
    rng = np.random.default_rng(0)
    reference = {"mean": 0.0, "std": 0.08}
    calm = ChangeWindow(reference, BreakerSettings())
    assert all(calm.observe(float(c), []) is None for c in rng.normal(0, 0.08, 5000))

    broken = ChangeWindow(reference, BreakerSettings(min_changes=30, sigmas=5))
    trips = [broken.observe(0.095, []) for _ in range(40)]
    first = next(i for i, t in enumerate(trips) if t is not None)
    assert first + 1 == 30  # judged from the 30th change: +0.095 is 6.5 standard errors away
    assert trips[first].evidence["z"] > 5


def test_a_whole_catalog_moving_half_an_sd_together_does_not_trip_but_a_broken_shift_does():
    """A day's shared context moves every change a little (many standard errors over a whole
    catalog, well under one reference SD): not a broken model. A shift past MIN_SHIFT_SD is."""
    reference = {"mean": 0.0, "std": 0.08}
    rng = np.random.default_rng(1)
    day = ChangeWindow(reference, BreakerSettings(min_changes=30))
    changes = rng.normal(-0.54 * 0.08, 0.08, 200)
    assert all(day.observe(float(c), [], key=i) is None for i, c in enumerate(changes))
    assert abs(sum(day.scores.values()) / math.sqrt(len(day.scores))) > 5  # many SEs away
    shifted = ChangeWindow(reference, BreakerSettings(min_changes=30))
    trips = [shifted.observe(float(c), [], key=i) for i, c in enumerate(rng.normal(0.1, 0.08, 200))]
    tripped = next(t for t in trips if t is not None)
    assert tripped.evidence["mean_standardized_change"] >= MIN_SHIFT_SD


def test_one_guardrail_violation_trips_the_breaker_at_once():
    window = ChangeWindow({"mean": 0.0, "std": 0.08}, BreakerSettings())
    trip = window.observe(0.0, ["margin_floor: 9.00 < 11.00"])
    assert trip is not None and "margin_floor" in trip.reason


def test_the_breaker_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="min_changes"):
        BreakerSettings(window=10, min_changes=50)
    with pytest.raises(ValueError, match="sigmas"):
        BreakerSettings(sigmas=0)


def test_one_store_sku_asked_again_and_again_counts_once_in_the_breakers_window():
    window = ChangeWindow({"mean": 0.0, "std": 0.08}, BreakerSettings(min_changes=30))
    assert all(window.observe(0.095, [], key=("S1", "K1")) is None for _ in range(500))
    assert len(window.scores) == 1


def test_a_category_that_always_moves_up_is_judged_against_its_own_reference():
    """Traffic for one category at a time (a batch sorted by category) is normal when that
    category's reference moves the same way; the same changes trip under the overall one."""
    reference = {
        "mean": 0.0,
        "std": 0.08,
        "by_category": {"Audio": {"mean": 0.09, "std": 0.02, "n": 100}},
    }
    window = ChangeWindow(reference, BreakerSettings(min_changes=30))
    trips = [window.observe(0.095, [], key=i, category="Audio") for i in range(200)]
    assert trips == [None] * 200
    other = ChangeWindow(reference, BreakerSettings(min_changes=30))
    assert any(other.observe(0.095, [], key=i, category="Tops") for i in range(200))
