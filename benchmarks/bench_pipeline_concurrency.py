"""A full platform run with steps one after another against steps in parallel processes.

    uv run python benchmarks/bench_pipeline_concurrency.py [--scale default] [--parallel 2]

Each mode gets a fresh RETAIL_HOME with the same landed feeds and materializes every asset of
the platform job through `retail materialize`'s runner: first the baseline, one step after
another in the run's process (`RETAIL_PARALLEL_STEPS=1`, the default), then Dagster's
multiprocess executor with `--parallel` steps at once (independent branches such as fraud,
demand and search training run together; DuckDB stays one writer at a time through the
warehouse lock). Prints the wall time of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(scale: str, seed: int) -> None:
    from retail_assets.runner import materialize_platform
    from retail_assets.settings import get_settings

    summary = materialize_platform(get_settings())
    print(
        json.dumps(
            {
                "ok": bool(summary.success),
                "assets": len(summary.materialized),
                "failures": [str(f) for f in summary.failures][:3],
                "run_seconds": summary.seconds,
            }
        )
    )


def run_mode(parallel: int, scale: str, seed: int, landing: Path) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"retail-concurrency-{parallel}-"))
    try:
        shutil.copytree(landing, home / "landing")
        env = {
            **os.environ,
            "RETAIL_HOME": str(home),
            "RETAIL_SCALE": scale,
            "RETAIL_PARALLEL_STEPS": str(parallel),
            "DAGSTER_HOME": str(home / "dagster"),
        }
        (home / "dagster").mkdir()
        started = time.perf_counter()
        with tempfile.TemporaryFile("w+") as out:
            process = subprocess.Popen(
                [sys.executable, __file__, "--child", "--scale", scale, "--seed", str(seed)],
                env=env,
                stdout=out,
            )
            _, status, _ = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            out.seek(0)
            lines = [line for line in out.read().splitlines() if line.startswith("{")]
        result = json.loads(lines[-1]) if lines else {"ok": False, "failures": ["no output"]}
        result.update(wall_seconds=seconds, exit_code=os.waitstatus_to_exitcode(status))
        return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.scale, args.seed)
        return

    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    landing = Path(tempfile.mkdtemp(prefix="retail-concurrency-landing-"))
    try:
        land_synthetic_feeds(LandingZone(landing), scale=args.scale, seed=args.seed)
        print(f"{'mode':<34} {'wall':>9} {'run':>9} {'assets':>7}")
        results = {}
        for parallel in (1, args.parallel):
            label = (
                "one step at a time (baseline)"
                if parallel == 1
                else f"{parallel} steps at once (multiprocess)"
            )
            r = results[parallel] = run_mode(parallel, args.scale, args.seed, landing)
            print(
                f"{label:<34} {r['wall_seconds']:>8.1f}s {r.get('run_seconds', 0):>8.1f}s "
                f"{r.get('assets', 0):>7} "
                f"{'ok' if r['ok'] else 'FAILED ' + str(r.get('failures'))}",
                flush=True,
            )
        base, fast = results[1], results[args.parallel]
        if base["ok"] and fast["ok"]:
            print(
                f"\n{args.scale}: {args.parallel} steps at once take "
                f"{fast['wall_seconds'] / base['wall_seconds']:.2f}x the baseline's wall time "
                f"({base['wall_seconds'] - fast['wall_seconds']:+.1f} s saved)"
            )
    finally:
        shutil.rmtree(landing, ignore_errors=True)


if __name__ == "__main__":
    main()
