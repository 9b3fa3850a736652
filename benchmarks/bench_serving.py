"""Serving benchmark: this app vs `mlflow models serve` on the same registered fraud model.

    uv run python benchmarks/bench_serving.py [--scale small] [--home /tmp/retail-bench-serving]
                                              [--duration 20] [--connections 8]

In one run: materializes the platform at --home if it has no fraud champion yet, then
1. starts `mlflow models serve -m models:/fraud/<champion> --env-manager local` (the venv's bin
   on PATH for uvicorn) and loads it with wrk, one engineered feature row per request;
2. starts `retail serve` and loads POST /v1/fraud/score with raw payments (ids and fields
   only: the app joins velocity and customer features, scores with ONNX, computes reason codes
   and logs every prediction);
3. repeats 2 while a new champion version is published and hot-swapped every 2 s, and
   reports p99 and non-2xx responses during the swaps.
Prints requests/s, p50 and p99 for each and the ratios. Needs `wrk` (Debian package).
Targets (issue 4): at least 50x mlflow's throughput and p99 under 10 ms at 8 connections.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from harness import free_port, run_wrk, start, stop

VENV_BIN = Path(sys.executable).parent
ADMIN_TOKEN = "bench-admin-token"

PAYMENT_LUA = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local thread_id = 0
setup = function(thread)
  thread:set("thread_id", counter)
  counter = counter + 1
end
request = function()
  counter = counter + 1
  local i = counter * 2 + thread_id
  local body = string.format(
    '{"card_id": "K%d", "customer_id": "C%06d", "amount": %d.5, "channel": "online", ' ..
    '"payment_method": "credit", "device_id": "D%d", "shipping_address_id": "A%d", ' ..
    '"billing_country": "US", "ip_country": "US", "shipping_country": "US", "n_items": 2}',
    i % 20000, (i % 1500) + 1, (i % 900) + 5, i % 5000, i % 7000)
  return wrk.format(nil, nil, nil, body)
end
"""


def fraud_store(settings):
    from retail_assets.artifacts import Artifacts

    return Artifacts.from_settings(settings).model("fraud")


def ensure_platform(home: Path, scale: str):
    from retail_assets.settings import settings_for_home

    settings = settings_for_home(home, scale)
    if fraud_store(settings).champion() is None:
        from retail_assets.runner import materialize_platform
        from retail_assets.sources.landing_zone import LandingZone
        from retail_assets.sources.synthetic_landing import land_synthetic_feeds

        print(f"materializing the {scale} platform in {home} ...", flush=True)
        land_synthetic_feeds(LandingZone(settings.landing_dir), scale=scale, seed=settings.seed)
        summary = materialize_platform(settings)
        assert summary.success, summary.failures
    return settings


def wait_http(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {timeout} s")


def mlflow_payload(settings) -> tuple[str, str]:
    """One engineered feature row (from the bundle's self-test rows) as MLflow's
    dataframe_split body, and the registered champion version."""
    store = fraud_store(settings)
    version = store.champion()
    folder = store.version_dir(version)
    signature = json.loads((folder / "signature.json").read_text())
    reference = json.loads((folder / "reference.json").read_text())
    row = [None if v != v else v for v in reference["self_test"]["features"][0]]
    columns = [f["name"] for f in signature["features"]]
    body = json.dumps({"dataframe_split": {"columns": columns, "data": [row]}})
    return body, version


def serve_mlflow(
    settings, model: str, version: str, body: str, duration: int, connections: int
) -> dict:
    """wrk against `mlflow models serve` on models:/<model>/<version>, posting `body`."""
    port = free_port()
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    log = settings.home / "logs" / f"bench-mlflow-serve-{model}.log"
    process = start(
        [
            str(VENV_BIN / "mlflow"),
            "models",
            "serve",
            "-m",
            f"models:/{model}/{version}",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env,
        log,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ping")
        check = httpx.post(
            f"http://127.0.0.1:{port}/invocations",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert check.status_code == 200, check.text
        script = (
            'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {json.dumps(body)}\n"
        )
        result = run_wrk(f"http://127.0.0.1:{port}/invocations", script, duration, connections)
        result["version"] = version
        return result
    finally:
        stop(process)


def bench_mlflow(settings, duration: int, connections: int) -> dict:
    body, version = mlflow_payload(settings)
    return serve_mlflow(settings, "fraud", version, body, duration, connections)


def clone_bundle(settings, source: str, target: str) -> None:
    store = fraud_store(settings)
    destination = store.version_dir(target)
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(store.version_dir(source), destination)
    for filename in ("signature.json", "mlflow.json"):
        path = destination / filename
        document = json.loads(path.read_text())
        document["version"] = target
        path.write_text(json.dumps(document))


def bench_app(settings, duration: int, connections: int, hot_swap: bool) -> dict:
    store = fraud_store(settings)
    original = store.champion()
    port = free_port()
    env = {**os.environ, "RETAIL_ADMIN_TOKEN": ADMIN_TOKEN, "RETAIL_SERVING_POLL_SECONDS": "60"}
    log = settings.home / "logs" / "bench-retail-serve.log"
    process = start(
        [str(VENV_BIN / "retail"), "serve", "--port", str(port), "--log-level", "warning"],
        env,
        log,
    )
    swaps: list[str] = []
    stop_swapping = threading.Event()

    def swapper() -> None:
        versions = [f"{900 + i}" for i in range(100)]
        for version in versions:
            if stop_swapping.wait(2.0):
                return
            clone_bundle(settings, original, version)
            store.promote(version, reason="benchmark hot swap", actor="bench_serving")
            answer = httpx.post(
                f"http://127.0.0.1:{port}/v1/admin/reload",
                headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=30,
            ).json()
            swaps.extend(answer["changes"])

    try:
        wait_http(f"http://127.0.0.1:{port}/ready")
        thread = threading.Thread(target=swapper) if hot_swap else None
        if thread:
            thread.start()
        result = run_wrk(
            f"http://127.0.0.1:{port}/v1/fraud/score", PAYMENT_LUA, duration, connections
        )
        stop_swapping.set()
        if thread:
            thread.join()
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        result["swaps"] = len([s for s in swaps if s.startswith("fraud: champion")])
        result["logged"] = health["prediction_log_rows_written"] + health["prediction_log_pending"]
        result["health"] = health["status"]
        return result
    finally:
        stop(process)
        if hot_swap:
            store.promote(original, reason="benchmark done", actor="bench_serving")
            for version in store.versions():
                if version.startswith("9") and len(version) == 3:
                    shutil.rmtree(store.version_dir(version), ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="small")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    home = args.home or Path(tempfile.gettempdir()) / f"retail-bench-serving-{args.scale}"
    settings = ensure_platform(home, args.scale)

    print(f"scale={args.scale} home={home} wrk -t2 -c{args.connections} -d{args.duration}s")
    mlflow_result = bench_mlflow(settings, args.duration, args.connections)
    app_result = bench_app(settings, args.duration, args.connections, hot_swap=False)
    swap_result = bench_app(settings, args.duration, args.connections, hot_swap=True)

    rows = [
        ("mlflow models serve (engineered row)", mlflow_result),
        ("retail serve (raw payment + online join)", app_result),
        ("retail serve during hot swaps", swap_result),
    ]
    print(f"\n{'server':44} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for label, r in rows:
        print(
            f"{label:44} {r['rps']:>10,.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['non_2xx']:>8}"
        )
    ratio = app_result["rps"] / mlflow_result["rps"]
    print(
        f"\nthroughput ratio: {ratio:.1f}x (target >= 50x: {'PASS' if ratio >= 50 else 'FAIL'})"
        f"\np99 at {args.connections} connections: {app_result['p99_ms']:.2f} ms "
        f"(target < 10 ms: {'PASS' if app_result['p99_ms'] < 10 else 'FAIL'}); "
        f"p99 latency ratio mlflow/app: {mlflow_result['p99_ms'] / app_result['p99_ms']:.1f}x"
        f"\nhot swap: {swap_result['swaps']} champion swaps during the run, "
        f"p99 {swap_result['p99_ms']:.2f} ms, non-2xx {swap_result['non_2xx']}, "
        f"socket errors {swap_result['socket_errors']}"
        f"\npredictions logged by the app (incl. pending): {app_result['logged']:,} in the "
        f"plain run ({app_result['requests']:,} requests)"
    )


if __name__ == "__main__":
    main()
