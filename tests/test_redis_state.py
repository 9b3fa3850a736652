"""Serving's online state in Redis (`RETAIL_REDIS_URL`) and `retail serve --workers N`, on a real
Redis server: several workers sharing one state compute exactly the features one process
computes, no concurrent update is lost, versions load once, and a multi-worker server logs every
prediction and converges on a hot swap."""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest
from click.testing import CliRunner
from test_fraud_online import _customers, _random_history
from test_serving_rollout import _clone_bundle

from retail_assets.models.fraud.online import FraudFeatureState
from serving.redis_state import PREFIX, RedisFraudFeatures, redis_client


def _published(history: pl.DataFrame, cut) -> dict[str, pl.DataFrame]:
    customers = _customers([f"C{i}" for i in range(20)])  # some payers are unknown customers
    before = history.filter(pl.col("transaction_ts") < cut)
    return FraudFeatureState.from_history(before, customers).to_frames()


def test_two_workers_sharing_redis_compute_exactly_the_features_of_one_process(redis_url):
    """The published state is loaded once into Redis; two workers (two clients) then take turns
    scoring the later payments, some of them arriving late (after a later payment of the same
    customer). Every feature of every payment equals, bit for bit, what one in-process state
    computes from the same payments in the same order; both report the same as-of time."""
    history = _random_history(3000).sort("transaction_ts", "transaction_id")
    cut = history["transaction_ts"][1500]
    published = _published(history, cut)
    local = FraudFeatureState.from_frames(published)
    workers = [RedisFraudFeatures(redis_client(redis_url), "v1", published) for _ in range(2)]
    rest = history.filter(pl.col("transaction_ts") >= cut).to_dicts()
    for i in range(10, len(rest) - 1, 97):  # late arrivals: swap neighbours
        rest[i], rest[i + 1] = rest[i + 1], rest[i]
    late = sum(a["transaction_ts"] > b["transaction_ts"] for a, b in itertools.pairwise(rest))
    assert late >= 10
    for i, payment in enumerate(rest):
        expected = local.features(payment)
        local.observe(payment)
        features, as_of = workers[i % 2].features_and_observe(payment)
        assert features == expected, payment
        assert as_of == local.as_of
    assert workers[0].as_of == workers[1].as_of == local.as_of


def test_concurrent_payments_of_one_card_lose_no_update(redis_url):
    """Eight threads on two workers fold 50 payments each of the same card, customer and
    device at once. A payment after all of them sees all 400 (counts and amounts exactly as one
    process folding them in time order): the atomic script leaves no read-modify-write race."""
    history = _random_history(200)
    published = _published(history, history["transaction_ts"].max())
    workers = [RedisFraudFeatures(redis_client(redis_url), "v1", published) for _ in range(2)]
    start = history["transaction_ts"].max() + timedelta(days=1)
    base = {"card_id": "K-HOT", "customer_id": "C1", "device_id": "D-HOT"}
    payments = [
        {**base, "transaction_ts": start + timedelta(seconds=i), "amount": 1.0 + i / 8}
        for i in range(400)
    ]

    def fold(thread: int) -> None:
        for payment in payments[thread::8]:
            workers[thread % 2].features_and_observe(payment)

    threads = [threading.Thread(target=fold, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    local = FraudFeatureState.from_frames(published)
    for payment in payments:
        local.observe(payment)
    probe = {**base, "transaction_ts": start + timedelta(minutes=30), "amount": 5.0}
    got, _ = workers[0].features_and_observe(probe)
    assert got["card_txn_count_1h"] == got["device_txn_count_1h"] == 400
    assert got == local.features(probe)


def test_a_version_loads_once_and_the_versions_before_the_previous_are_forgotten(redis_url):
    """Each published version gets its own key space, filled by the first worker only; loading
    a third version deletes the first one's keys and keeps the second (a worker still on it
    converges within one poll interval)."""
    history = _random_history(300)
    published = _published(history, history["transaction_ts"].max())
    client = redis_client(redis_url)
    first = RedisFraudFeatures(client, "v1", published)
    loaded_by = client.get(f"{PREFIX}:fraud:v1:ready")
    RedisFraudFeatures(redis_client(redis_url), "v1", published)
    assert client.get(f"{PREFIX}:fraud:v1:ready") == loaded_by  # not loaded twice
    assert first.as_of == FraudFeatureState.from_frames(published).as_of
    RedisFraudFeatures(client, "v2", published)
    RedisFraudFeatures(client, "v3", published)
    spaces = {key.split(":")[2] for key in client.scan_iter(f"{PREFIX}:fraud:v*:*")}
    assert spaces == {"v2", "v3"}
    assert client.zrange(f"{PREFIX}:fraud:versions", 0, -1) == ["v2", "v3"]


def test_more_than_one_worker_without_redis_is_refused_with_the_reason(monkeypatch):
    from retail_assets.cli import main

    monkeypatch.delenv("RETAIL_REDIS_URL", raising=False)
    result = CliRunner().invoke(main, ["serve", "--workers", "2"])
    assert result.exit_code != 0
    assert "--workers 2 needs RETAIL_REDIS_URL" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_redis_is_named_without_its_password():
    with pytest.raises(RuntimeError, match="RETAIL_REDIS_URL: cannot reach Redis") as error:
        redis_client("redis://user:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in str(error.value)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _payments(as_of, n: int = 60) -> list[dict]:
    """Payments of a few cards, customers and devices, minutes apart, after the state's as-of."""
    return [
        {
            "transaction_id": f"T-RW-{i:03d}",
            "transaction_ts": (as_of + timedelta(minutes=3 * i + 1)).isoformat(),
            "card_id": f"CARD-RW-{i % 3}",
            "customer_id": f"C{(i % 4) + 1:06d}",
            "device_id": f"DEV-RW-{i % 5}",
            "shipping_address_id": f"ADDR-RW-{i % 2}",
            "amount": 15.0 + 7.5 * (i % 11),
            "channel": "online",
            "billing_country": "US",
            "ip_country": "US" if i % 6 else "RU",
        }
        for i in range(n)
    ]


def _fraud_predictions_counted(text: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "retail_predictions"
        for sample in family.samples
        if sample.name == "retail_predictions_total" and sample.labels["model"] == "fraud"
    )


def _logged_features(log_dir: Path) -> tuple[dict[str, str], set[str]]:
    """Fraud features logged per transaction, and the pids of the files they came from."""
    files = sorted(log_dir.rglob("part-*.parquet"))
    frames = [
        pl.read_parquet(f).with_columns(pl.lit(f.name.split("-")[2]).alias("pid")) for f in files
    ]
    log = pl.concat(frames).filter(pl.col("model") == "fraud")
    return dict(zip(log["entity_id"], log["features"], strict=True)), set(log["pid"])


def test_serve_with_two_workers_scores_like_one_process_logs_everything_and_converges(
    tiny_platform, tmp_path, serving_server, redis_url
):
    """`retail serve --workers 2` with RETAIL_REDIS_URL next to a one-process server with the
    in-process state, both on copies of the tiny platform. The same payments, sent one at a
    time on new connections (the kernel spreads them over both workers), get the same
    probabilities, /metrics counts every worker's predictions, and the prediction logs of both
    workers together hold every payment once with exactly the one-process features. A new fraud champion is then published: every
    worker serves it within one poll interval (plus a second for the requests that look)."""
    settings, _ = tiny_platform
    reference_home, workers_home = tmp_path / "reference", tmp_path / "workers"
    shutil.copytree(settings.home, reference_home)
    shutil.copytree(settings.home, workers_home)
    from retail_assets.artifacts import Artifacts
    from retail_assets.settings import settings_for_home

    reference_settings = settings_for_home(reference_home, "tiny")
    for home in (reference_home, workers_home):  # other tests' servers logged into the original
        shutil.rmtree(
            home / reference_settings.prediction_log_dir.relative_to(reference_home),
            ignore_errors=True,
        )
    with serving_server(reference_settings) as reference:
        as_of = reference.state.fraud.as_of
        payments = _payments(as_of)
        expected = [httpx.post(f"{reference.url}/v1/fraud/score", json=p).json() for p in payments]
    workers_settings = settings_for_home(workers_home, "tiny")
    port, poll = _free_port(), 0.5
    env = {
        **os.environ,
        "RETAIL_REDIS_URL": redis_url,
        "RETAIL_SERVING_CLOCK": "replay",
        "RETAIL_SERVING_POLL_SECONDS": str(poll),
        "RETAIL_PREDICTION_LOG_FLUSH_SECONDS": "0.5",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "retail_assets.cli", "serve", "--workers", "2", "--port", str(port),
         "--log-level", "warning"],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    health: dict = {}
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"{url}/health", timeout=2).json()
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert health.get("online_state") == "redis", health
        got = [httpx.post(f"{url}/v1/fraud/score", json=p).json() for p in payments]
        assert all("probability" in g for g in got + expected), [
            g for g in got + expected if "probability" not in g
        ][:2]
        assert [g["probability"] for g in got] == [e["probability"] for e in expected]
        assert [g["reason_codes"] for g in got] == [e["reason_codes"] for e in expected]
        # Whichever worker answers the scrape, /metrics counts every worker's predictions.
        for _ in range(3):
            assert _fraud_predictions_counted(httpx.get(f"{url}/metrics").text) == len(payments)

        store = Artifacts.from_settings(workers_settings).model("fraud")
        _clone_bundle(store, "1", "2")
        store.promote("2", reason="test: new champion", actor="test")
        time.sleep(poll + 1.0)
        seen = {}
        for _ in range(40):
            health = httpx.get(f"{url}/health", timeout=5).json()
            seen[health["worker_pid"]] = health["models"]["fraud"]
        assert set(seen.values()) == {"2"}, seen
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        settings_for_home(settings.home, "tiny")
    logged, pids = _logged_features(workers_settings.prediction_log_dir)
    reference_logged, _ = _logged_features(reference_settings.prediction_log_dir)
    ids = [p["transaction_id"] for p in payments]
    assert sorted(logged) == sorted(ids)
    assert {i: logged[i] for i in ids} == {i: reference_logged[i] for i in ids}
    assert len(pids) == 2, "both workers served payments"


def test_two_workers_share_the_pricing_breaker_window_and_open_it_once(platform_copy, redis_url):
    """A broken pricing version (+9.5 % on every store x SKU against a reference of 0 +- 8 %)
    answered alternately by two workers: their one shared window trips after exactly as many
    changes as one process's window, the breaker is recorded once, the other worker stops
    serving the version within one sync tick, and closing it on one worker closes it on both."""
    from types import SimpleNamespace

    from retail_assets.artifacts import Artifacts
    from retail_assets.models.pricing.breaker import BreakerSettings, ChangeWindow
    from serving.metrics import ServingMetrics
    from serving.pricing import BREAKER_ACTIONS, PRICING_MODEL, SYNC_SECONDS, PricingRuntime
    from serving.redis_state import RedisBreakers

    artifacts = Artifacts.from_settings(platform_copy)
    settings = BreakerSettings(window=200, min_changes=30, sigmas=5)
    reference = {"mean": 0.0, "std": 0.08}
    model = SimpleNamespace(
        version="1", signature={"extras": {"price_change_reference": reference}}
    )
    workers = [
        PricingRuntime(settings, artifacts, ServingMetrics(), shared=RedisBreakers(redis_client(redis_url)))
        for _ in range(2)
    ]  # fmt: skip
    single = ChangeWindow(reference, settings)
    expected = next(i for i in range(100) if single.observe(0.095, [], ("S1", f"SKU-{i}")))
    tripped = None
    for i in range(100):
        worker = workers[i % 2]
        trip = worker.window(model).observe(0.095, [], ("S1", f"SKU-{i}"))
        if trip is not None:
            tripped = i
            worker.trip("1", trip)
            workers[1 - i % 2].trip("1", trip)  # the other worker's window saw it too
            break
    assert tripped == expected
    time.sleep(SYNC_SECONDS + 0.05)
    assert all(w.is_open("1") for w in workers)
    store = artifacts.model(PRICING_MODEL)
    assert [e["action"] for e in store.log.entries(store.artifact, BREAKER_ACTIONS)] == [
        "breaker_opened"
    ]
    # A worker restarting after Redis lost its data takes the open breaker from the decision
    # log and shares it again, so the next sync does not take it for closed.
    redis_client(redis_url).flushdb()
    restarted = PricingRuntime(
        settings, artifacts, ServingMetrics(), shared=RedisBreakers(redis_client(redis_url))
    )
    restarted.restore()
    time.sleep(SYNC_SECONDS + 0.05)
    assert restarted.is_open("1") and workers[1].is_open("1")
    workers[0].close("1", reason="test: fixed", actor="test")
    time.sleep(SYNC_SECONDS + 0.05)
    assert not workers[1].is_open("1")
    assert workers[1].window(model).size() == 0
