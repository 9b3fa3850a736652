"""Automatic rollback under load: how long until serving answers with the previous champion,
and whether any request fails meanwhile.

    uv run python benchmarks/bench_rollback.py [--home /tmp/retail-bench-small] [--scale small]
                                               [--poll 2] [--duration 30] [--rounds 6]

Setup, on a copy of a materialized home (materialized first if `--home` has no fraud model):
the fraud champion's bundle is republished as a new version (the same files, renamed: the swap
loads a whole bundle) and promoted, so the old champion is its rollback target. Then
`retail serve` (slot poll every `--poll` s) is loaded by wrk on POST /v1/fraud/score, and
meanwhile `--rounds` times the bad version is promoted and then rolled back by the lifecycle's
rollback: exactly what `fraud_monitoring` calls on live degradation (store pointer + MLflow
alias + decision log); serving is not told, it polls. A probe thread scores one payment every
10 ms and records which version answered.

Printed: seconds from the rollback to the first answer by the restored champion against the
poll interval (the target: within one interval); wrk's requests, non-2xx and socket errors;
p99 against a baseline run of the same length on the same server without a rollback.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from bench_serving import (
    PAYMENT_LUA,
    VENV_BIN,
    clone_bundle,
    ensure_platform,
    fraud_store,
    wait_http,
)
from harness import free_port, run_wrk, start, stop

PROBE = {
    "card_id": "K77",
    "customer_id": "C000077",
    "amount": 42.5,
    "channel": "online",
    "payment_method": "credit",
    "device_id": "D77",
    "shipping_address_id": "A77",
    "billing_country": "US",
    "ip_country": "US",
    "shipping_country": "US",
    "n_items": 2,
}


def lifecycle_for(settings):
    from retail_assets.artifacts import Artifacts
    from retail_assets.models.lifecycle.operations import Lifecycle
    from retail_assets.models.lifecycle.registry import ModelRegistry

    return Lifecycle(
        registry=ModelRegistry(settings.mlflow_tracking_uri, Path(settings.mlflow_artifacts_dir)),
        artifacts=Artifacts.from_settings(settings),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/retail-bench-small"))
    parser.add_argument("--scale", default="small")
    parser.add_argument("--poll", type=float, default=2.0)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    ensure_platform(args.home, args.scale)
    copy = Path(tempfile.mkdtemp(prefix="retail-bench-rollback-")) / "home"
    shutil.copytree(args.home, copy, ignore=shutil.ignore_patterns("prediction_logs", "logs"))
    settings = ensure_platform(copy, args.scale)
    (settings.home / "logs").mkdir(exist_ok=True)
    store = fraud_store(settings)
    restored = store.champion()
    bad = "901"
    clone_bundle(settings, restored, bad)
    store.promote(bad, reason="benchmark: the champion to roll back", actor="bench_rollback")
    assert store.rollback_target() == restored

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "RETAIL_SERVING_POLL_SECONDS": str(args.poll)}
    process = start(
        [str(VENV_BIN / "retail"), "serve", "--port", str(port), "--log-level", "warning"],
        env,
        settings.home / "logs" / "bench-rollback-serve.log",
    )
    try:
        wait_http(f"{url}/ready")
        baseline = run_wrk(f"{url}/v1/fraud/score", PAYMENT_LUA, args.duration, args.connections)

        answers: list[tuple[float, int, str | None]] = []
        stop_probe = threading.Event()

        def probe() -> None:
            with httpx.Client(base_url=url, timeout=10) as client:
                while not stop_probe.is_set():
                    response = client.post("/v1/fraud/score", json=PROBE)
                    version = (
                        response.json()["model"]["version"] if response.status_code == 200 else None
                    )
                    answers.append((time.monotonic(), response.status_code, version))
                    time.sleep(0.01)

        rolled_back_at: list[float] = []
        period = args.duration / args.rounds

        def cycle() -> None:
            """Each round: the bad version serves, then the rollback (moments spread over
            the poll phase, so the delays sample it)."""
            lifecycle = lifecycle_for(settings)
            for i in range(args.rounds):
                if i:  # the first round starts with the bad version serving already
                    store.promote(bad, reason="benchmark: bad again", actor="bench_rollback")
                time.sleep(period / 2 + (i * 0.37) % 1.0)
                lifecycle.rollback(
                    "fraud", reason="benchmark: live degradation", actor="monitoring"
                )
                rolled_back_at.append(time.monotonic())
                time.sleep(period / 2 - (i * 0.37) % 1.0)

        threads = [threading.Thread(target=probe), threading.Thread(target=cycle)]
        for thread in threads:
            thread.start()
        loaded = run_wrk(f"{url}/v1/fraud/score", PAYMENT_LUA, args.duration, args.connections)
        threads[1].join()  # the rounds may outlast the load (MLflow alias moves take time)
        time.sleep(2 * args.poll + 1)  # the probe sees the last rollback through
        stop_probe.set()
        threads[0].join()
    finally:
        stop(process)
        shutil.rmtree(copy.parent, ignore_errors=True)

    delays, stale = [], 0
    for moment in rolled_back_at:
        first = next((t for t, _, v in answers if t >= moment and v == restored), None)
        if first is not None:
            delays.append(first - moment)
            window_end = moment + period / 2 - 1.0
            stale += sum(1 for t, _, v in answers if first < t < window_end and v != restored)
    failed_probes = sum(status != 200 for _, status, _ in answers)
    print(f"fraud: v{bad} -> v{restored}, {args.rounds} rollbacks, serving poll {args.poll} s")
    print(
        f"  rollback to first answer by v{restored}: max {max(delays):.2f} s, median "
        f"{statistics.median(delays):.2f} s over {len(delays)} of {len(rolled_back_at)} "
        f"rollbacks (poll interval {args.poll} s: the rest is the slot loading and "
        f"self-testing the bundle); answers by v{bad} after the switch: {stale}"
    )
    print(f"  probe: {len(answers)} requests, {failed_probes} failed")
    for name, run in (("baseline (no rollback)", baseline), ("with the rollback", loaded)):
        print(
            f"  wrk {name:<24} {run['requests']:>7} requests, {run['rps']:8.0f} req/s, "
            f"p99 {run['p99_ms']:6.1f} ms, non-2xx {run['non_2xx']}, "
            f"socket errors {run['socket_errors']}"
        )
    print(json.dumps({"seconds_to_restored": [round(d, 3) for d in delays]}))


if __name__ == "__main__":
    main()
