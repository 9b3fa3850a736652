"""The self-healing loop against a naive "retrain everything nightly" policy, on the same
simulated world.

    uv run python benchmarks/bench_simulation.py [--scenario supply_shock] [--days 12]
                                                 [--scale tiny] [--out /tmp/retail-sim-bench]

Runs `retail simulate` twice on the same scenario, seed and days: once with the platform's
own (targeted) retraining, once with every model's chain also retrained every night (each
candidate through the same gates and canaries). Printed per policy: wall time, compute
seconds in retrain runs and in all nightly runs, retrain runs, and the oracle's live quality
over the days after the event (pooled over every version and arm that answered): forecast
WAPE, fraud recall, true pricing margin against today's prices, and 5xx.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="supply_shock")
    parser.add_argument("--days", type=int, default=12)
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("/tmp/retail-sim-bench"))
    args = parser.parse_args()

    from retail_assets.simulation.report import pooled
    from retail_assets.simulation.simulate import simulate

    results = {}
    for policy in ("targeted", "nightly"):
        out = args.out / f"{args.scenario}-{policy}"
        timeline = simulate(
            args.scenario, args.days, out, scale=args.scale, seed=args.seed, policy=policy,
            progress=lambda line, policy=policy: print(f"[{policy}] {line}", flush=True),
        )  # fmt: skip
        facts = timeline["summary_numbers"]
        results[policy] = {
            "wall_s": timeline["wall_seconds"],
            "retrain_s": facts["retrain_seconds"],
            "night_s": facts["night_seconds"],
            "retrain_runs": facts["retrain_runs"],
            "models_retrained": facts["models_retrained"],
            "server_errors": facts["server_errors"],
            "requests": facts["requests"],
            "expectations_passed": sum(e["passed"] for e in timeline["expectations"]),
            "expectations": len(timeline["expectations"]),
            **pooled(timeline, timeline["event_day"]),
        }
        (args.out / f"{args.scenario}-{policy}.json").write_text(
            json.dumps(results[policy], indent=2)
        )

    def fmt(value):
        return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)

    keys = list(results["targeted"])
    print(f"\n{args.scenario}, {args.days} days at {args.scale}, seed {args.seed}")
    print(f"{'measure':<26} {'targeted':>22} {'nightly (baseline)':>22}")
    for key in keys:
        print(f"{key:<26} {fmt(results['targeted'][key]):>22} {fmt(results['nightly'][key]):>22}")
    t, n = results["targeted"], results["nightly"]
    if n["retrain_s"]:
        print(f"retrain compute: targeted uses {t['retrain_s'] / n['retrain_s']:.0%} of nightly's")


if __name__ == "__main__":
    main()
