"""Serving under change: hot swap under load, refusal of a corrupt bundle, shadow and canary
challengers, and the prediction log's way back into the warehouse."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from datetime import timedelta

import httpx
import polars as pl

from retail_assets.artifacts import Artifacts
from retail_assets.core.store import ArtifactStore
from retail_assets.warehouse import WarehouseResource


def _clone_bundle(store: ArtifactStore, source: str, target: str) -> None:
    """A new registry version of the same model (same weights): enough to see which version
    answers a request."""
    shutil.copytree(store.version_dir(source), store.version_dir(target))
    for filename in ("signature.json", "mlflow.json"):
        path = store.version_dir(target) / filename
        document = json.loads(path.read_text())
        document["version"] = target
        path.write_text(json.dumps(document))


def _payment(as_of, i: int, customer: str | None = None) -> dict:
    return {
        "transaction_id": f"T-LOAD-{i}",
        # Microseconds apart: every client's payments stay within the serving clock's window.
        "transaction_ts": (as_of + timedelta(microseconds=i)).isoformat(),
        "card_id": f"CARD-{i % 97}",
        "customer_id": customer or f"C{(i % 1500) + 1:06d}",
        "amount": 20.0 + (i % 300),
        "channel": "online",
    }


def test_hot_swap_under_load_fails_no_request_and_a_corrupt_bundle_is_refused(
    platform_copy, serving_server
):
    """Four clients score payments and forecasts continuously while a new champion (v2) is
    published and loaded, then a v3 whose model.onnx is corrupted after publication. Every
    request succeeds; answers move from v1 to v2 and never come from v3; /health reports the
    app degraded with the refusal while it keeps serving v2."""
    settings = platform_copy
    artifacts = Artifacts.from_settings(settings)
    with serving_server(settings) as server:
        as_of = server.state.fraud.as_of
        stop = threading.Event()
        outcomes: list[tuple[int, str | None]] = []
        lock = threading.Lock()

        def client(worker: int) -> None:
            i = worker * 1_000_000
            with httpx.Client(base_url=server.url, timeout=10) as http:
                while not stop.is_set():
                    i += 1
                    try:
                        if i % 2:
                            r = http.post("/v1/fraud/score", json=_payment(as_of, i))
                            version = r.json()["model"]["version"] if r.status_code == 200 else None
                        else:
                            r = http.post(
                                "/v1/forecast", json={"store_id": "S001", "sku": "SKU-00004"}
                            )
                            body = r.json()
                            version = (
                                body["forecasts"][0]["model"]["version"]
                                if r.status_code == 200
                                else None
                            )
                        status = r.status_code
                    except httpx.HTTPError:
                        status, version = -1, None
                    with lock:
                        outcomes.append((status, version))

        threads = [threading.Thread(target=client, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        for name in ("fraud", "demand"):
            _clone_bundle(artifacts.model(name), "1", "2")
            artifacts.model(name).promote("2", reason="test: new champion", actor="test")
        assert httpx.post(f"{server.url}/v1/admin/reload", headers=server.admin).status_code == 200
        time.sleep(1.0)
        with lock:
            swapped_at = len(outcomes)
        _clone_bundle(artifacts.model("fraud"), "2", "3")
        artifacts.model("fraud").promote("3", reason="test: corrupted later", actor="test")
        model_file = artifacts.model("fraud").version_dir("3") / "model.onnx"
        model_file.write_bytes(model_file.read_bytes()[:200])
        reload = httpx.post(f"{server.url}/v1/admin/reload", headers=server.admin).json()
        time.sleep(1.0)
        stop.set()
        for thread in threads:
            thread.join()
        health = httpx.get(f"{server.url}/health").json()
        models = httpx.get(f"{server.url}/v1/models").json()["models"]

    statuses = Counter(status for status, _ in outcomes)
    assert statuses == {200: len(outcomes)}, statuses
    assert len(outcomes) > 200
    versions = [v for _, v in outcomes]
    assert set(versions) == {"1", "2"}
    assert set(versions[swapped_at + 50 :]) == {"2"}, "new requests must use the new champion"
    assert any("fraud: champion v3 refused" in p for p in reload["problems"]), reload
    assert health["status"] == "degraded"
    assert any("still serving v2" in p for p in health["problems"]), health
    assert {(m["name"], m["role"], m["version"]) for m in models} == {
        ("fraud", "champion", "2"),
        ("demand", "champion", "2"),
        ("recommend", "champion", "1"),  # untouched by the swaps
        ("pricing", "champion", "1"),
    }


def test_shadow_and_canary_challengers_switched_at_runtime_and_logged(
    platform_copy, serving_server
):
    """With a challenger published: shadow mode answers every request with the champion and
    logs the challenger's score for the same transaction; canary mode at 50 % sends a sticky
    half of customers to the challenger (same customer, same arm, every time) and /metrics
    counts predictions per version and arm (and the admin calls under their route template).
    The prediction log survives shutdown complete and
    the `serving/prediction_log` asset loads it into the warehouse."""
    from retail_assets.runner import materialize_platform

    settings = platform_copy
    store = Artifacts.from_settings(settings).model("fraud")
    _clone_bundle(store, "1", "2")
    store.offer("2", reason="test: challenger", actor="test")
    served = 0
    with serving_server(settings) as server:
        as_of = server.state.fraud.as_of
        headers = {**server.admin, "content-type": "application/json"}
        rollout = f"{server.url}/v1/admin/models/fraud/rollout"

        assert httpx.put(rollout, json={"mode": "shadow"}, headers=headers).status_code == 200
        shadow_arms = set()
        for i in range(20):
            r = httpx.post(f"{server.url}/v1/fraud/score", json=_payment(as_of, i))
            shadow_arms.add((r.json()["model"]["version"], r.json()["model"]["arm"]))
            served += 1
        assert shadow_arms == {("1", "champion")}

        response = httpx.put(rollout, json={"mode": "canary", "canary_share": 0.5}, headers=headers)
        assert response.json()["challenger_version"] == "2"
        arms: dict[str, set[str]] = {}
        for round_ in range(2):
            for c in range(60):
                customer = f"C{c + 1:06d}"
                r = httpx.post(
                    f"{server.url}/v1/fraud/score",
                    json=_payment(as_of, 1000 + round_ * 100 + c, customer),
                )
                arms.setdefault(customer, set()).add(r.json()["model"]["arm"])
                served += 1
        metrics = httpx.get(f"{server.url}/metrics").text
        listed = httpx.get(f"{server.url}/v1/models").json()["models"]

    assert all(len(a) == 1 for a in arms.values()), "canary assignment must be sticky"
    share = sum(a == {"challenger"} for a in arms.values()) / len(arms)
    assert 0.25 < share < 0.75, share
    assert 'retail_predictions_total{arm="challenger",model="fraud",version="2"}' in metrics
    assert 'retail_predictions_total{arm="shadow",model="fraud",version="2"} 20.0' in metrics
    # Admin model routes count under their template, not as "unmatched".
    assert (
        'retail_http_requests_total{route="/v1/admin/models/{name}/rollout",status="200"} 2.0'
        in metrics
    )
    assert {"champion", "challenger"} == {m["role"] for m in listed if m["name"] == "fraud"}

    everything = pl.read_parquet(sorted(settings.prediction_log_dir.glob("date=*/part-*.parquet")))
    log = everything.filter(pl.col("entity_id").str.starts_with("T-LOAD-"))
    assert log.filter(pl.col("arm") != "shadow").height == served, "clean shutdown loses nothing"
    shadowed = log.filter(pl.col("arm") == "shadow")
    assert shadowed.height == 20 and set(shadowed["version"]) == {"2"}
    assert set(shadowed["entity_id"]) == {f"T-LOAD-{i}" for i in range(20)}

    summary = materialize_platform(settings, selection="key:serving/prediction_log")
    assert summary.success
    table = WarehouseResource(path=str(settings.warehouse_path)).read_table(
        "serving", "prediction_log"
    )
    assert table.height == everything.height
    assert set(table["arm"]) == {"champion", "challenger", "shadow"}
