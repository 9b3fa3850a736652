"""Price serving under load, and the circuit breaker under traffic.

    uv run python benchmarks/bench_pricing_serving.py --home <a materialized home> \
        [--duration 20] [--connections 8] [--clients 8]

Starts `retail serve` on the home (its promoted pricing bundle and price state) and measures:

1. `POST /v1/price` with wrk at `--connections` connections, one store x SKU per request
   (rotating over the whole price state): requests/s, p50, p99 (target: p99 under 10 ms at 8
   connections), non-2xx;
2. `POST /v1/price:batch` with the whole catalog (every store x SKU) in one call, five times:
   SKU-stores priced per second (median call);
3. the breaker: `--clients` threads request prices while an inverted-elasticity copy of the
   champion (models/pricing/faults.py) is promoted through the admin API. Prints how many
   requests the broken version answered and how many seconds passed before the first
   fallback, the decision-log event, and whether any answered price left the guardrails
   (every answer is checked against the rules with the price state's context).

Needs `wrk` (Debian package). The home is left as found: the broken version's breaker is
closed and the original champion promoted again at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from bench_serving import wait_http
from harness import free_port, run_wrk, start, stop

VENV_BIN = Path(sys.executable).parent
ADMIN_TOKEN = "bench-admin-token"
BROKEN_VERSION = "9000"


def price_state(settings):
    from retail_assets.artifacts import Artifacts
    from retail_assets.online_features import PRICING_FEATURE_SET
    from retail_assets.online_features.store import load_feature_set

    store = Artifacts.from_settings(settings).features(PRICING_FEATURE_SET)
    return load_feature_set(store.version_dir(store.champion()))["price_state"]


def lua(pairs: list[tuple[str, str]]) -> str:
    rows = ",\n".join(f'  {{"{s}", "{k}"}}' for s, k in pairs)
    return (
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f"local pairs = {{\n{rows}\n}}\n"
        "local counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        "  local p = pairs[(counter % #pairs) + 1]\n"
        '  local body = string.format(\'{"store_id": "%s", "sku": "%s"}\', p[1], p[2])\n'
        "  return wrk.format(nil, nil, nil, body)\n"
        "end\n"
    )


def breaker_under_traffic(url: str, settings, state, clients: int) -> dict:
    from retail_assets.artifacts import Artifacts
    from retail_assets.models.pricing.faults import inverted_elasticity_bundle
    from retail_assets.models.pricing.guardrails import Guardrails, PriceContext, violations

    store = Artifacts.from_settings(settings).model("pricing")
    good = store.champion()
    signature = json.loads((store.version_dir(good) / "signature.json").read_text())
    rails_doc = signature["extras"]["guardrails"]
    rails = Guardrails(**{**rails_doc, "price_endings": tuple(rails_doc["price_endings"])})
    store.write(BROKEN_VERSION, inverted_elasticity_bundle(store.version_dir(good), BROKEN_VERSION))
    rows = {(r["store_id"], r["sku"]): r for r in state.iter_rows(named=True)}
    pairs = sorted(rows)
    answers: list[tuple[float, dict]] = []
    lock = threading.Lock()
    stop_at = threading.Event()
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}

    def client(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            n = offset
            while not stop_at.is_set():
                store_id, sku = pairs[n % len(pairs)]
                n += clients
                answer = http.post("/v1/price", json={"store_id": store_id, "sku": sku}).json()
                with lock:
                    answers.append((time.monotonic(), answer))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(3)  # steady traffic on the good champion first
    promoted_at = time.monotonic()
    response = httpx.post(
        f"{url}/v1/admin/models/pricing/promote",
        json={"version": BROKEN_VERSION, "reason": "benchmark: deliberately broken model"},
        headers=admin,
        timeout=60,
    )
    response.raise_for_status()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with lock:
            done = any(a["fallback"] for _, a in answers if _ >= promoted_at)
        if done:
            break
        time.sleep(0.05)
    time.sleep(3)  # and after the rollback
    stop_at.set()
    for thread in threads:
        thread.join()
    broken = [(t, a) for t, a in answers if a["model"]["version"] == BROKEN_VERSION]
    unguarded = broken_answers = 0
    for _, a in answers:
        row = rows[(a["store_id"], a["sku"])]
        ctx = PriceContext(
            cost=row["unit_cost"],
            current_price=row["regular_price"],
            price_week_ago=row["regular_price_week_ago"],
            competitor_price=row["competitor_min_price"],
        )
        unguarded += bool(violations(rails, ctx, a["price"]))
    by_broken = [a for _, a in broken if a["fallback"] is None]
    broken_answers = len(by_broken)
    fallbacks = [t for t, a in answers if a["fallback"] and t >= promoted_at]
    event = store.log.last(store.artifact, {"breaker_opened"})
    health = httpx.get(f"{url}/health", timeout=30).json()
    result = {
        "answers": len(answers),
        "answered_by_broken_model": broken_answers,
        "seconds_promote_to_first_fallback": (fallbacks[0] - promoted_at) if fallbacks else None,
        "prices_outside_guardrails": unguarded,
        "event": event and {k: event[k] for k in ("action", "version", "reason", "actor")},
        "champion_after": health["models"].get("pricing"),
    }
    # Leave the home as found.
    httpx.post(
        f"{url}/v1/admin/pricing/breaker/{BROKEN_VERSION}/close",
        json={"reason": "benchmark finished"},
        headers=admin,
        timeout=30,
    )
    if store.champion() != good:
        store.promote(good, reason="benchmark finished", actor="benchmark", action="manual_promote")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    from retail_assets.settings import settings_for_home

    settings = settings_for_home(args.home, "default")
    state = price_state(settings)
    pairs = sorted(state.select("store_id", "sku").iter_rows())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "RETAIL_HOME": str(args.home),
        "RETAIL_ADMIN_TOKEN": ADMIN_TOKEN,
        "RETAIL_SERVING_CLOCK": "replay",
        "RETAIL_SERVING_POLL_SECONDS": "1",
    }
    log = args.home / "bench_pricing_serving.log"
    server = start([str(VENV_BIN / "retail"), "serve", "--port", str(port)], env, log)
    try:
        wait_http(f"{url}/ready", timeout=180)
        print(f"home {args.home}: {len(pairs):,} store x SKUs in the price state")
        httpx.post(f"{url}/v1/price", json={"store_id": pairs[0][0], "sku": pairs[0][1]})
        single = run_wrk(f"{url}/v1/price", lua(pairs[:5000]), args.duration, args.connections)
        print(
            f"POST /v1/price, wrk -c{args.connections} -d{args.duration}s: "
            f"{single['rps']:,.0f} req/s, p50 {single['p50_ms']:.2f} ms, "
            f"p99 {single['p99_ms']:.2f} ms (target < 10 ms), non-2xx {single['non_2xx']}"
        )
        items = [{"store_id": s, "sku": k} for s, k in pairs]
        seconds = []
        for _ in range(5):
            started = time.perf_counter()
            answer = httpx.post(f"{url}/v1/price:batch", json={"items": items}, timeout=600)
            answer.raise_for_status()
            seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        print(
            f"POST /v1/price:batch with the catalog ({len(items):,} SKU-stores): median "
            f"{median:.2f} s per call = {len(items) / median:,.0f} SKU-stores/s"
        )
        breaker = breaker_under_traffic(url, settings, state, args.clients)
        print(f"breaker under {args.clients} clients: {json.dumps(breaker, indent=1)}")
    finally:
        stop(server)


if __name__ == "__main__":
    main()
