"""Fraud serving A/B between two checkouts, interleaved, on the same payments.

    uv run python benchmarks/ab_serving.py --before-venv /tmp/old/.venv --before-home /tmp/old-home \
        --after-home /tmp/new-home [--rounds 4] [--duration 10] [--connections 8]

Sequential before/after runs on a 2-core machine differ by 10-15 % from run order and
background load alone. This starts both apps (`retail serve` from each venv on its own home,
both materialized at the same scale), then loads POST /v1/fraud/score on each in turn with
the payments `bench_serving.py` sends, alternating which goes first each round, and prints
every round and the medians. Needs `wrk`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from bench_serving import PAYMENT_LUA
from harness import free_port, run_wrk, stop

AFTER_VENV = Path(sys.executable).parent.parent


def serve(venv: Path, home: Path, scale: str, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {
        **os.environ,
        "RETAIL_HOME": str(home),
        "RETAIL_SCALE": scale,
        "RETAIL_SERVING_POLL_SECONDS": "60",
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
    }
    env.pop("VIRTUAL_ENV", None)
    process = subprocess.Popen(
        [str(venv / "bin" / "retail"), "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=venv.parent,  # the checkout the venv belongs to, so its own code is imported
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process, port
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop(process)
    raise SystemExit(f"{venv} on {home} did not become ready within 180 s; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before-venv", type=Path, required=True)
    parser.add_argument("--before-home", type=Path, required=True)
    parser.add_argument("--after-venv", type=Path, default=AFTER_VENV)
    parser.add_argument("--after-home", type=Path, required=True)
    parser.add_argument("--scale", default="small")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()

    servers = {}
    try:
        for name, venv, home in (
            ("before", args.before_venv, args.before_home),
            ("after", args.after_venv, args.after_home),
        ):
            servers[name] = serve(venv, home, args.scale, home / "logs" / f"ab-{name}.log")
        results: dict[str, list[dict]] = {name: [] for name in servers}
        for round_ in range(args.rounds):
            order = list(servers) if round_ % 2 == 0 else list(servers)[::-1]
            for name in order:
                port = servers[name][1]
                result = run_wrk(
                    f"http://127.0.0.1:{port}/v1/fraud/score",
                    PAYMENT_LUA,
                    args.duration,
                    args.connections,
                )
                results[name].append(result)
                print(
                    f"round {round_ + 1} {name:6} {result['rps']:8.1f} req/s  "
                    f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  "
                    f"non-2xx {result['non_2xx']}",
                    flush=True,
                )
    finally:
        for process, _ in servers.values():
            stop(process)
    medians = {
        name: (
            statistics.median(r["rps"] for r in runs),
            statistics.median(r["p99_ms"] for r in runs),
        )
        for name, runs in results.items()
    }
    for name, (rps, p99) in medians.items():
        print(f"{name:6} median {rps:8.1f} req/s  p99 {p99:.2f} ms")
    ratio = medians["after"][0] / medians["before"][0]
    print(f"after / before throughput: {ratio:.3f}")


if __name__ == "__main__":
    main()
