"""Prices served over HTTP (issue 14): the pricing chain promotes a model whose prices beat
today's prices on the generator's truth; a served price is the training code's recommendation
for the same row; every price is inside the guardrails and names the rules that bound it; bad
requests are 422s naming the field; and a deliberately broken model promoted under traffic
trips the circuit breaker, which falls back, rolls back, is logged, shown and closed by an
admin, while no customer-facing price leaves the guardrails."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import numpy as np
import polars as pl
import pytest
from conftest import ServingServer

from retail_assets.artifacts import Artifacts
from retail_assets.models.pricing.guardrails import Guardrails, PriceContext, violations

URL = "/v1/price"


def _state(settings) -> pl.DataFrame:
    from retail_assets.online_features import PRICING_FEATURE_SET
    from retail_assets.online_features.store import load_feature_set

    store = Artifacts.from_settings(settings).features(PRICING_FEATURE_SET)
    return load_feature_set(store.version_dir(store.champion()))["price_state"]


def _rails(bundle_signature: dict) -> Guardrails:
    rails = bundle_signature["extras"]["guardrails"]
    return Guardrails(**{**rails, "price_endings": tuple(rails["price_endings"])})


def _context(row: dict) -> PriceContext:
    return PriceContext(
        cost=row["unit_cost"],
        current_price=row["regular_price"],
        price_week_ago=row["regular_price_week_ago"],
        competitor_price=row["competitor_min_price"],
    )


@pytest.fixture(scope="module")
def server(tiny_platform):
    settings, _ = tiny_platform
    with ServingServer(settings) as running:
        yield running


def test_the_pricing_chain_promotes_a_model_whose_prices_beat_todays_on_the_truth(tiny_platform):
    """The first pricing model passed its gate: zero guardrail violations on the held-out
    days, true margin above today's prices and above the better simple policy, and its
    elasticities, judged against the generator's, are recorded with the bundle."""
    settings, _ = tiny_platform
    store = Artifacts.from_settings(settings).model("pricing")
    champion = store.champion()
    assert champion is not None
    metrics = json.loads((store.version_dir(champion) / "metrics.json").read_text())
    overall = metrics["evaluation"]["overall"]
    mine = overall["challenger"]
    assert mine["guardrail_violations"] == 0
    assert mine["margin_uplift"] > 0.001
    assert mine["margin_uplift"] > max(
        overall["max_increase"]["margin_uplift"], overall["match_competitor"]["margin_uplift"]
    )
    assert 0 < mine["uplift_captured"] <= 1
    assert mine["wape"] < overall["recent_profile"]["wape"]
    signature = json.loads((store.version_dir(champion) / "signature.json").read_text())
    reference = signature["extras"]["price_change_reference"]
    assert reference["n"] > 0 and reference["std"] > 0


def test_a_served_price_is_the_training_codes_recommendation_for_the_same_row(
    tiny_platform, server
):
    """The feature row serving builds from the published price state equals the training
    set's `features()` for that store x SKU at its regular price on the priced day, and the
    price, units and trace equal the family's own optimizer over the same bundle."""
    from retail_assets.models.lifecycle.bundle import LoadedBundle
    from retail_assets.models.pricing.family import pricing_family
    from retail_assets.models.pricing.response import Vocabulary, features
    from retail_assets.models.pricing.train import matrix

    settings, _ = tiny_platform
    state = _state(settings)
    store = Artifacts.from_settings(settings).model("pricing")
    bundle = LoadedBundle(store.version_dir(store.champion()))
    encodings = {f["name"]: f.get("categories") for f in bundle.signature["features"]}
    vocabulary = Vocabulary(encodings["category_code"], encodings["store_code"])
    day = state["as_of"].max() + timedelta(days=1)
    for row in state.filter(pl.col("regular_price") > 0).head(5).iter_rows(named=True):
        answer = httpx.post(
            server.url + URL, json={"sku": row["sku"], "store_id": row["store_id"]}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        served = answer.json()
        frame = pl.DataFrame([row]).with_columns(
            pl.lit(day).alias("date"),
            pl.col("regular_price").alias("unit_price"),
            pl.lit(False).alias("on_promotion"),
            pl.lit(0.0).alias("units"),
        )
        base = frame.select("store_id", "sku", "category", "log_baseline")
        featurized = features(frame.drop("log_baseline"), base, vocabulary)
        x = matrix(featurized)
        table = server.state.pricing
        served_x = table.rows(
            server.state.champion("pricing"),
            np.array([table.index[(row["store_id"], row["sku"])]]),
            day,
            table.competitor[[table.index[(row["store_id"], row["sku"])]]],
        )
        np.testing.assert_allclose(served_x, x, rtol=0, atol=1e-12)
        (rec,) = pricing_family.price(bundle.predict_matrix, featurized)
        assert served["price"] == rec.decision.price
        assert served["expected_units"] == pytest.approx(rec.expected_units, abs=1e-4)
        assert [b["rule"] for b in served["bound_by"]] == [b["rule"] for b in rec.decision.bound_by]
        assert served["model"] == {
            "name": "pricing",
            "version": bundle.signature["version"],
            "arm": "champion",
        }


def test_a_catalog_batch_is_priced_inside_every_guardrail_with_the_binding_rules_named(
    tiny_platform, server
):
    settings, _ = tiny_platform
    state = _state(settings)
    items = [{"sku": s, "store_id": st} for st, s in state.select("store_id", "sku").iter_rows()]
    answer = httpx.post(server.url + URL + ":batch", json={"items": items}, timeout=60)
    assert answer.status_code == 200, answer.text
    prices = answer.json()["prices"]
    assert [(p["store_id"], p["sku"]) for p in prices] == [(i["store_id"], i["sku"]) for i in items]
    rails = _rails(server.state.champion("pricing").signature)
    rows = {(r["store_id"], r["sku"]): r for r in state.iter_rows(named=True)}
    for p in prices:
        ctx = _context(rows[(p["store_id"], p["sku"])])
        assert violations(rails, ctx, p["price"]) == [], p
        assert p["allowed_range"][0] - 0.01 <= p["price"]
        assert f"{p['price']:.2f}".endswith(".99") or "no allowed ending" in p["ending"]
        low, high = p["allowed_range"]
        if not low <= p["proposed_price"] <= (high if high is not None else np.inf):
            assert p["bound_by"], p  # a proposal outside the range names the rule that held it
    assert any(p["bound_by"] for p in prices)
    assert all(p["fallback"] is None for p in prices)


def test_scarce_stock_never_lowers_the_price_and_caps_expected_units(tiny_platform, server):
    settings, _ = tiny_platform
    row = _state(settings).filter(pl.col("regular_price") > 0).row(0, named=True)
    ask = {"sku": row["sku"], "store_id": row["store_id"]}
    free = httpx.post(server.url + URL, json=ask, timeout=30).json()
    scarce = httpx.post(server.url + URL, json={**ask, "stock": 0.01}, timeout=30).json()
    assert scarce["price"] >= free["price"]
    assert scarce["expected_units"] <= 0.01 + 1e-9


@pytest.mark.parametrize(
    ("body", "path", "field"),
    [
        ({"sku": "SKU-00008", "store_id": "NOPE"}, URL, "store_id"),
        ({"sku": "NOT-A-SKU", "store_id": "S001"}, URL, "sku"),
        ({"sku": "SKU-00008", "store_id": "S001", "stock": -1}, URL, "stock"),
        ({"sku": "SKU-00008", "store_id": "S001", "competitor_price": 0}, URL, "competitor_price"),
        ({"sku": "SKU-00008", "store_id": "S001", "colour": "red"}, URL, "colour"),
        ({"store_id": "S001"}, URL, "sku"),
        ({"items": []}, URL + ":batch", "items"),
        (
            {"items": [{"sku": "SKU-00008", "store_id": "S001"}, {"sku": "X", "store_id": "S001"}]},
            URL + ":batch",
            "items[1].sku",
        ),
    ],
)
def test_bad_price_requests_are_422s_naming_the_field(server, body, path, field):
    answer = httpx.post(server.url + path, json=body, timeout=30)
    assert answer.status_code == 422, answer.text
    assert any(field in f["field"] for f in answer.json()["fields"]), answer.json()


def test_a_broken_model_promoted_under_traffic_trips_the_breaker_and_no_price_leaves_the_guardrails(
    platform_copy,
):
    """Promote an inverted-elasticity copy of the champion while prices are requested: the
    breaker opens within the configured window, its event is in the decision log with the
    evidence, the champion is rolled back to the one it replaced, `/health` and `/metrics`
    show it, every price answered before, during and after is inside the guardrails, an open
    breaker survives a restart, and only an authenticated admin closes it."""
    from retail_assets.models.pricing.faults import inverted_elasticity_bundle

    settings = platform_copy
    artifacts = Artifacts.from_settings(settings)
    store = artifacts.model("pricing")
    good = store.champion()
    store.write("900", inverted_elasticity_bundle(store.version_dir(good), "900"))
    assert store.problems("900") == []  # nothing a bundle check catches
    state = _state(settings)
    rows = {(r["store_id"], r["sku"]): r for r in state.iter_rows(named=True)}
    pairs = sorted(rows)
    with ServingServer(settings) as server:
        rails = _rails(server.state.champion("pricing").signature)
        promoted = httpx.post(
            server.url + "/v1/admin/models/pricing/promote",
            json={"version": "900", "reason": "deliberately broken model (breaker test)"},
            headers=server.admin,
            timeout=30,
        )
        assert promoted.status_code == 200, promoted.text
        served_by_broken, tripped_at = 0, None
        for n in range(400):
            store_id, sku = pairs[n % len(pairs)]
            answer = httpx.post(
                server.url + URL, json={"sku": sku, "store_id": store_id}, timeout=30
            ).json()
            assert violations(rails, _context(rows[(store_id, sku)]), answer["price"]) == []
            if answer["model"]["version"] == "900" and answer["fallback"] is None:
                served_by_broken += 1
            elif tripped_at is None:
                tripped_at = n
        assert tripped_at is not None and served_by_broken <= server.state.config.breaker.window
        health = httpx.get(server.url + "/health", timeout=30).json()
        assert health["status"] == "degraded"
        assert "900" in health["pricing_breaker"]["open"]
        assert health["models"]["pricing"] == good  # rolled back to the champion it replaced
        metrics = httpx.get(server.url + "/metrics", timeout=30).text
        assert 'retail_price_breaker_open{model="pricing",version="900"} 1.0' in metrics
    log = store.log.entries(store.artifact)
    opened = [e for e in log if e["action"] == "breaker_opened"]
    assert opened and opened[-1]["version"] == "900" and opened[-1]["evidence"]["z"] > 5
    assert any(e["action"] == "rollback" and e["actor"] == "circuit_breaker" for e in log)

    with ServingServer(settings) as server:  # a restart keeps the breaker open
        assert (
            "900" in httpx.get(server.url + "/health", timeout=30).json()["pricing_breaker"]["open"]
        )
        close = server.url + "/v1/admin/pricing/breaker/900/close"
        body = {"reason": "model retrained and checked"}
        assert httpx.post(close, json=body, timeout=30).status_code == 401
        assert (
            httpx.post(
                close, json=body, headers={"authorization": "Bearer nope"}, timeout=30
            ).status_code
            == 403
        )
        closed = httpx.post(close, json=body, headers=server.admin, timeout=30)
        assert closed.status_code == 200 and closed.json()["action"] == "breaker_closed"
        assert httpx.post(close, json=body, headers=server.admin, timeout=30).status_code == 404
        assert httpx.get(server.url + "/health", timeout=30).json()["pricing_breaker"]["open"] == {}


def test_the_promoted_model_does_not_trip_the_breaker_on_its_own_traffic(tiny_platform, server):
    settings, _ = tiny_platform
    pairs = sorted(_state(settings).select("store_id", "sku").iter_rows())
    for n in range(300):
        store_id, sku = pairs[n % len(pairs)]
        answer = httpx.post(server.url + URL, json={"sku": sku, "store_id": store_id}, timeout=30)
        assert answer.json()["fallback"] is None
    assert server.state.pricing_runtime.open == {}


def test_a_pricing_model_trained_on_shuffled_units_is_refused_by_the_gate(tiny_platform):
    """The negative control: units permuted across rows carry no price response and no level;
    the gate refuses the model (it cannot forecast units better than the recent profile),
    whatever its prices happen to earn."""
    from retail_assets.models.lifecycle.gate import decide
    from retail_assets.models.pricing.family import PricingFamily
    from retail_assets.warehouse import WarehouseResource

    settings, _ = tiny_platform
    warehouse = WarehouseResource(path=str(settings.warehouse_path))
    truth = json.loads((settings.landing_dir / "ground_truth.json").read_text())
    family = PricingFamily(truth=lambda: truth)
    training_set = family.build_training_set(
        {
            "marts/fct_daily_sales": warehouse.read_table("marts", "fct_daily_sales"),
            "marts/dim_products": warehouse.read_table("marts", "dim_products"),
        }
    )
    model = family.train(training_set, shuffle_labels_seed=3)
    test = training_set.split("test")
    evaluation = family.evaluate(training_set, {"challenger": family.predict(model, test)}, model)
    verdict = decide(
        evaluation, family.gate_rules, parity_passed=True, bundle_problems=[], has_champion=False
    )
    assert not verdict.passed
    assert any("recent_profile" in reason for reason in verdict.reasons)


def test_when_every_pricing_model_was_refused_the_other_domains_are_ready_and_prices_are_503(
    platform_copy,
):
    """A deployment whose first pricing model the gate refused (say, sales without unit cost)
    must not hold forecasts and fraud scores hostage: `/ready` does not wait for a model that
    waiting cannot load, `/health` says why pricing is missing, and `/v1/price` answers 503."""
    settings = platform_copy
    store = Artifacts.from_settings(settings).model("pricing")
    store.roles_path.unlink()  # no champion: as if v1 had never passed
    store.record("refuse", "1", reason="priced_rows >= 1 failed", actor="promotion_gate")
    with ServingServer(settings) as server:
        assert httpx.get(server.url + "/ready", timeout=30).json() == {
            "ready": True,
            "missing": [],
        }
        health = httpx.get(server.url + "/health", timeout=30).json()
        assert any("pricing: no champion" in p and "priced_rows" in p for p in health["problems"])
        answer = httpx.post(server.url + URL, json={"sku": "SKU-00008", "store_id": "S001"})
        assert answer.status_code == 503, answer.text
