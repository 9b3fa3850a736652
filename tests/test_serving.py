"""The serving app over real HTTP (uvicorn on a local port) against the materialized tiny
platform: online feature join without skew, cold start, client errors, admin auth."""

from __future__ import annotations

import json
import pickle
from datetime import timedelta

import httpx
import numpy as np
import polars as pl

from retail_assets.artifacts import Artifacts
from retail_assets.models.demand import demand_family
from retail_assets.models.demand.features import apply_plan, closed_to_zero, encode_categoricals
from retail_assets.models.fraud import fraud_family
from retail_assets.models.fraud.training_set import prepare_features
from retail_assets.online_features.store import load_feature_set
from retail_assets.warehouse import WarehouseResource


def _asset(settings, key):
    """A pickled asset value, as the pipeline stored it (training sets, trained models)."""
    with open(settings.asset_storage_dir / key, "rb") as handle:
        return pickle.load(handle)


def test_forecasts_over_http_equal_the_training_code_path_and_cold_start_is_named(
    tiny_platform, serving_server
):
    """A served forecast equals LightGBM (the trained model, not the ONNX bundle) applied to
    the feature rows the pipeline computed with the training code: the online join and the
    categorical encoding in serving add no skew. An unknown SKU of a known category gets the
    store's category-level cold-start features and the response says so."""
    settings, _ = tiny_platform
    store = Artifacts.from_settings(settings).features("demand_forecast")
    tables = load_feature_set(store.version_dir(store.champion()))
    table = tables["forecast_features"]
    store_id = table.filter(pl.col("fallback").is_null())["store_id"][0]
    sku = table.filter(pl.col("store_id") == store_id, pl.col("fallback").is_null())["sku"][0]
    category = tables["sku_categories"].filter(pl.col("sku") == sku)["category"][0]

    with serving_server(settings) as server:
        response = httpx.post(
            f"{server.url}/v1/forecast",
            json={
                "store_id": store_id,
                "sku": [sku, "SKU-NEW-1"],
                "category": category,
                "horizon": 7,
            },
        )
    assert response.status_code == 200, response.text
    known, new = response.json()["forecasts"]

    model = _asset(settings, "demand_model").model
    encodings = _asset(settings, "demand_training_set").encodings
    rows = table.filter(pl.col("store_id") == store_id, pl.col("sku") == sku).sort("horizon")[:7]
    frame = encode_categoricals(rows, encodings)
    expected = demand_family.predict(model, frame)
    served = {q: np.array([day[q] for day in known["days"]]) for q in ("p10", "p50", "p90", "mean")}
    for output in ("p10", "p50", "p90", "mean"):
        np.testing.assert_allclose(served[output], expected[output], atol=1e-3)
    assert [d["date"] for d in known["days"]] == [str(d) for d in rows["target_date"]]
    assert known["fallback"] is None and known["model"]["arm"] == "champion"
    assert all(d["p10"] <= d["p50"] <= d["p90"] for d in known["days"])

    assert new["fallback"] == "category"
    assert "category" in new["fallback_detail"]
    assert len(new["days"]) == 7


def test_a_forecast_is_at_the_callers_plan_where_given_and_zero_on_planned_closed_days(
    tiny_platform, serving_server
):
    """The caller's plan moves the forecast exactly as the training code says it should: the
    served numbers equal LightGBM on the online rows with the plan applied by `apply_plan`
    (the function training's plan features come from), and each period names its plan's
    source. A 30 % discount raises the forecast. A day the store calendar plans closed is 0
    whatever the plan. Plan entries for periods, stores or SKUs outside the request, and the
    same series planned twice, are 422s naming the entry."""
    settings, _ = tiny_platform
    store = Artifacts.from_settings(settings).features("demand_forecast")
    table = load_feature_set(store.version_dir(store.champion()))["forecast_features"]
    real = table.filter(pl.col("fallback").is_null())
    closed = real.filter(pl.col("is_open").cast(pl.Float64) == 0).sort("store_id", "sku", "horizon")
    assert closed.height, "the synthetic store calendar plans a refit inside the horizon"
    store_id, sku = closed["store_id"][0], closed["sku"][0]
    closed_dates = set(
        closed.filter(pl.col("store_id") == store_id, pl.col("sku") == sku)["target_date"]
    )
    rows = real.filter(pl.col("store_id") == store_id, pl.col("sku") == sku).sort("horizon")
    regular = rows.filter(
        pl.col("is_open").cast(pl.Float64) != 0, pl.col("plan_source") == "regular price"
    )["target_date"]
    assert regular.len() >= 2, "some open days are at the regular price"
    promoted_day, priced_day = regular[0], regular[1]
    plan = [
        {"date": str(promoted_day), "discount_pct": 0.3},
        {"date": str(priced_day), "store_id": store_id, "sku": sku, "price": 1.0},
        {"date": str(min(closed_dates)), "discount_pct": 0.5},
    ]

    with serving_server(settings) as server:
        url = f"{server.url}/v1/forecast"
        request = {"store_id": store_id, "sku": sku, "horizon": 28}
        plain = httpx.post(url, json=request)
        planned = httpx.post(url, json={**request, "plan": plan})
        bad = [
            ({"date": str(rows["origin_date"][0]), "discount_pct": 0.1}, "$.plan[0].date"),
            (
                {"date": str(promoted_day), "store_id": "S-NOT-ASKED", "discount_pct": 0.1},
                "$.plan[0].store_id",
            ),
            ({"date": str(promoted_day)}, "$.plan[0]"),
            ({"date": str(promoted_day), "discount_pct": 1.0}, "$.plan[0].discount_pct"),
            ({"date": str(promoted_day), "price": -2}, "$.plan[0].price"),
        ]
        refused = [(httpx.post(url, json={**request, "plan": [e]}), f) for e, f in bad]
        twice = httpx.post(
            url,
            json={**request, "plan": [plan[0], {"date": str(promoted_day), "sku": sku}]},
        )
    assert plain.status_code == 200, plain.text
    assert planned.status_code == 200, planned.text
    before = {d["date"]: d for d in plain.json()["forecasts"][0]["days"]}
    after = {d["date"]: d for d in planned.json()["forecasts"][0]["days"]}
    assert after[str(promoted_day)]["plan_source"] == "request"
    assert after[str(priced_day)]["plan_source"] == "request"
    assert before[str(promoted_day)]["plan_source"] == "regular price"
    assert after[str(promoted_day)]["mean"] > before[str(promoted_day)]["mean"]
    for day in closed_dates:
        for output in ("p10", "p50", "p90", "mean"):
            assert before[str(day)][output] == 0.0 and after[str(day)][output] == 0.0

    model = _asset(settings, "demand_model").model
    encodings = _asset(settings, "demand_training_set").encodings
    plan_frame = pl.DataFrame(
        {
            "target_date": [promoted_day, priced_day, min(closed_dates)],
            "price": [None, 1.0, None],
            "discount_pct": [0.3, None, 0.5],
            "on_promotion": [None, None, None],
        },
        schema={
            "target_date": pl.Date,
            "price": pl.Float64,
            "discount_pct": pl.Float64,
            "on_promotion": pl.Boolean,
        },
    )
    with_plan = apply_plan(rows, plan_frame, demand_family.grain)
    expected = closed_to_zero(
        demand_family.predict(model, encode_categoricals(with_plan, encodings)),
        with_plan["is_open"].cast(pl.Float64).to_numpy(),
    )
    served = planned.json()["forecasts"][0]["days"]
    for output in ("p10", "p50", "p90", "mean"):
        np.testing.assert_allclose([d[output] for d in served], expected[output], atol=1e-3)

    for response, field in refused:
        assert response.status_code == 422, (field, response.text)
        assert field in {f["field"] for f in response.json()["fields"]}, response.text
    assert twice.status_code == 422
    assert "$.plan[1]" in {f["field"] for f in twice.json()["fields"]}


def test_fraud_scores_join_live_velocity_and_log_features_that_reproduce_the_score(
    tiny_platform, serving_server
):
    """Three payments of one card a minute apart: the online state counts the earlier ones
    (card velocity 0, 1, 2), the decision follows the bundle's threshold, reason codes come
    with each score. The prediction log holds the joined features; the trained LightGBM model
    on those logged features gives the served probability (no training/serving skew)."""
    settings, _ = tiny_platform
    customers = WarehouseResource(path=str(settings.warehouse_path)).read_table(
        "marts", "dim_customers"
    )
    customer = customers["customer_id"][0]
    with serving_server(settings) as server:
        as_of = server.state.fraud.as_of
        payments = [
            {
                "transaction_id": f"T-TEST-{i}",
                "transaction_ts": (as_of + timedelta(minutes=1 + i)).isoformat(),
                "card_id": "CARD-TEST-1",
                "customer_id": customer,
                "device_id": "DEV-TEST-NEW",
                "amount": 50.0 + 400 * i,
                "n_items": 1,
                "channel": "online",
                "payment_method": "credit",
                "top_department": "Electronics",
                "billing_country": "US",
                "ip_country": "US" if i < 2 else "RU",
                "shipping_country": "US",
            }
            for i in range(3)
        ]
        first = httpx.post(f"{server.url}/v1/fraud/score", json=payments[0])
        batch = httpx.post(f"{server.url}/v1/fraud/score:batch", json={"payments": payments[1:]})
        threshold = server.state.champion("fraud").threshold
    assert first.status_code == 200 and batch.status_code == 200, (first.text, batch.text)
    results = [first.json(), *batch.json()["results"]]
    for result in results:
        assert result["decision"] == ("review" if result["probability"] >= threshold else "approve")
        assert result["model"] == {"name": "fraud", "version": "1", "arm": "champion"}
        assert all(code["contribution"] > 0 for code in result["reason_codes"])
    assert results[2]["probability"] > results[0]["probability"]

    log = pl.read_parquet(sorted(settings.prediction_log_dir.glob("date=*/part-*.parquet")))
    logged = log.filter(pl.col("entity_id").str.starts_with("T-TEST-")).sort("entity_id")
    features = pl.DataFrame([json.loads(f) for f in logged["features"]])
    assert features["card_txn_count_1h"].to_list() == [0, 1, 2]
    assert features["card_amount_1h"].to_list() == [0.0, 50.0, 500.0]
    assert features["is_first_device_use_for_customer"].to_list() == [True, False, False]

    model = _asset(settings, "fraud_model").model
    expected = fraud_family.predict(model, prepare_features(features, model.extras["encodings"]))
    np.testing.assert_allclose(
        [r["probability"] for r in results], expected["probability"], atol=1e-6
    )


def test_client_errors_are_4xx_naming_each_field_and_admin_needs_the_token(
    tiny_platform, serving_server
):
    """Malformed JSON 400; missing, mistyped, non-finite, out-of-range and unknown fields 422
    with every field named; oversized body 413; unknown route 404; admin 401 without a token,
    403 with a wrong one; a path-traversal model name never reaches the filesystem."""
    settings, _ = tiny_platform
    with serving_server(settings, max_body_bytes=20_000) as server:
        url = server.url

        def post(path, body: bytes, headers=None):
            return httpx.post(
                url + path,
                content=body,
                headers={"content-type": "application/json", **(headers or {})},
            )

        assert post("/v1/fraud/score", b'{"card_id": ').status_code == 400
        response = post("/v1/fraud/score", b'{"amount": "12", "n_items": 0, "colour": "red"}')
        assert response.status_code == 422
        fields = {f["field"] for f in response.json()["fields"]}
        assert fields == {"$.card_id", "$.amount", "$.n_items", "$.colour"}

        for body in (b'{"card_id": "K1", "amount": NaN}', b'{"card_id": "K1", "amount": 1e999}'):
            response = post("/v1/fraud/score", body)
            assert response.status_code == 422, body
            assert response.json()["fields"][0]["field"] == "$.amount"

        response = post(
            "/v1/fraud/score", b'{"card_id": "K1", "amount": -5, "billing_country": "usa"}'
        )
        assert response.status_code == 422
        assert {f["field"] for f in response.json()["fields"]} == {"$.amount", "$.billing_country"}

        response = post("/v1/forecast", b'{"horizon": 90}')
        assert response.status_code == 422
        assert "$.horizon" in {f["field"] for f in response.json()["fields"]}
        response = post("/v1/forecast", b'{"horizon": 3}')
        assert response.status_code == 422
        assert {f["field"] for f in response.json()["fields"]} == {"$.store_id", "$.sku"}
        pairs = json.dumps(
            {"store_id": [f"S{i}" for i in range(21)], "sku": [f"K{i}" for i in range(20)]}
        )
        response = post("/v1/forecast", pairs.encode())
        assert response.status_code == 422
        assert response.json()["fields"][0]["field"] == "$.store_id"

        big = json.dumps({"payments": [{"card_id": "K1", "amount": 1.0}] * 2000}).encode()
        assert post("/v1/fraud/score:batch", big).status_code == 413
        assert httpx.get(url + "/v1/nothing-here").status_code == 404
        response = httpx.get(url + "/v1/fraud/score")
        assert response.status_code == 405
        assert set(response.headers["allow"].split(", ")) == {"OPTIONS", "POST"}
        response = httpx.request("TRACE", url + "/health")
        assert response.status_code == 405 and "GET" in response.headers["allow"]

        assert post("/v1/admin/reload", b"").status_code == 401
        assert post("/v1/admin/reload", b"", {"authorization": "Bearer wrong"}).status_code == 403
        assert post("/v1/admin/reload", b"", server.admin).status_code == 200
        rollout = b'{"mode": "shadow"}'
        for name in ("..%2F..%2Fetc", "no_such_model"):
            response = httpx.put(
                f"{url}/v1/admin/models/{name}/rollout",
                content=rollout,
                headers={**server.admin, "content-type": "application/json"},
            )
            assert response.status_code in (404, 422), (name, response.status_code)
        metrics = httpx.get(url + "/metrics").text
    assert 'retail_http_requests_total{route="/v1/fraud/score",status="422"}' in metrics
    assert 'route="unmatched",status="404"' in metrics
    assert "retail_http_requests_total{" in metrics and 'status="500"' not in metrics


def _logged_features(settings, prefix: str) -> pl.DataFrame:
    log = pl.read_parquet(sorted(settings.prediction_log_dir.glob("date=*/part-*.parquet")))
    logged = log.filter(pl.col("entity_id").str.starts_with(prefix)).sort("entity_id")
    return pl.DataFrame([json.loads(f) for f in logged["features"]]).with_columns(
        entity_id=logged["entity_id"]
    )


def test_payment_timestamps_outside_the_serving_clock_are_refused_and_never_enter_the_state(
    platform_copy, serving_server
):
    """Once a 500 (`OverflowError` computing the velocity windows): a payment dated
    0001-01-01, one whose offset overflows when converted to UTC, one years ahead, one more
    than the 7-day window late and one beyond the 5-minute skew allowance are each refused
    with a 422 naming `transaction_ts`; in a batch the whole batch is refused and the field
    is named with its index. None of them reaches the velocity state: the card's next valid
    payment is scored as its first. (Replay clock: "now" is the state's as-of time.)"""
    settings = platform_copy
    with serving_server(settings) as server:
        as_of = server.state.fraud.as_of
        card = "CARD-CLOCK-1"

        def payment(i: int, ts: str) -> dict:
            return {
                "transaction_id": f"T-CLOCK-{i}",
                "card_id": card,
                "amount": 25.0,
                "transaction_ts": ts,
            }

        refused = [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00+05:00",
            "9999-12-31T23:59:59-05:00",
            (as_of + timedelta(days=3 * 365)).isoformat(),
            (as_of - timedelta(days=8)).isoformat(),
            (as_of + timedelta(minutes=6)).isoformat(),
        ]
        for i, ts in enumerate(refused):
            response = httpx.post(f"{server.url}/v1/fraud/score", json=payment(i, ts))
            assert response.status_code == 422, (ts, response.text)
            (error,) = response.json()["fields"]
            assert error["field"] == "$.transaction_ts"
            assert "serving clock (replay" in error["message"]

        batch = [payment(10, (as_of + timedelta(minutes=1)).isoformat()), payment(11, refused[3])]
        response = httpx.post(f"{server.url}/v1/fraud/score:batch", json={"payments": batch})
        assert response.status_code == 422, response.text
        assert [f["field"] for f in response.json()["fields"]] == ["$.payments[1].transaction_ts"]

        accepted = payment(20, (as_of + timedelta(minutes=2)).isoformat())
        response = httpx.post(f"{server.url}/v1/fraud/score", json=accepted)
        assert response.status_code == 200, response.text
        assert response.json()["features_as_of"].endswith("Z")
    features = _logged_features(settings, "T-CLOCK-")
    assert features["entity_id"].to_list() == ["T-CLOCK-20"]
    assert features["card_txn_count_7d"].to_list() == [0]
    assert features["card_amount_7d"].to_list() == [0.0]


def test_on_the_wall_clock_a_payment_is_dated_now_and_late_or_future_ones_are_refused(
    platform_copy, serving_server
):
    """The default clock for live traffic: a payment without `transaction_ts` is dated now
    (UTC), one an hour old is accepted, one 10 minutes ahead or 8 days old is a 422."""
    from datetime import UTC, datetime

    from serving.clock import PaymentClock

    settings = platform_copy
    with serving_server(settings, payment_clock=PaymentClock(mode="wall")) as server:

        def score(i: int, ts: datetime | None) -> httpx.Response:
            body = {"transaction_id": f"T-WALL-{i}", "card_id": "CARD-WALL", "amount": 9.5}
            if ts is not None:
                body["transaction_ts"] = ts.isoformat()
            return httpx.post(f"{server.url}/v1/fraud/score", json=body)

        now = datetime.now(UTC)
        assert score(1, now - timedelta(hours=1)).status_code == 200
        assert score(2, None).status_code == 200
        for i, ts in ((3, now + timedelta(minutes=10)), (4, now - timedelta(days=8))):
            response = score(i, ts)
            assert response.status_code == 422, response.text
            assert "serving clock (wall" in response.json()["fields"][0]["message"]
    features = _logged_features(settings, "T-WALL-")
    assert features["entity_id"].to_list() == ["T-WALL-1", "T-WALL-2"]
    # The undated payment was stamped now, so it sees the hour-old one in its 24 h window.
    assert features["card_txn_count_24h"].to_list() == [0, 1]
