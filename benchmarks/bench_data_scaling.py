"""How each data step grows with the data: wall time and peak memory from one scale to the next.

    uv run python benchmarks/bench_data_scaling.py --scales default large [--keep DIR]

Each scale runs in a fresh RETAIL_HOME through the same runner as `retail materialize`
(Dagster overhead included), step after step, each step in its own process so that its peak
resident memory (`wait4`'s maxrss: the process and the dbt process it waits for) is its own:

1. generate: the synthetic feeds landed as files (`land_synthetic_feeds`);
2. raw load: the raw tables with their blocking checks (`group:raw`);
3. dbt build: staging, intermediate and marts with their dbt tests;
4. demand training set (`demand_training_set`);
5. demand training: the tier assignment and both tier models, then the assembled model.

The last scale's figures are divided by the first's: a step whose time or memory grows faster
than its rows is named. The baseline is the first scale in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS = {
    "generate": None,
    "raw load": "group:raw",
    "dbt build": "group:staging or group:intermediate or group:marts",
    "demand training set": "key:demand_training_set",
    "demand training": (
        "key:demand_fast_tier or key:demand_stable_tier or key:demand_fast_tier_model or "
        "key:demand_stable_tier_model or key:demand_model"
    ),
}
# A step "grows faster than the data" when its time or memory grows by more than this factor
# times the data's growth: the slack covers fixed costs that shrink in relative terms and the
# noise of one run on a shared 2-core box.
FASTER_THAN_DATA = 1.25


def _child(step: str, scale: str, seed: int) -> None:
    """Run one step in this process and print its outcome as JSON (the parent measures)."""
    from retail_assets.runner import materialize_platform
    from retail_assets.settings import get_settings

    settings = get_settings()
    settings.ensure_dirs()
    if STEPS[step] is None:
        from retail_assets.sources.landing_zone import LandingZone
        from retail_assets.sources.synthetic_landing import land_synthetic_feeds

        manifest = land_synthetic_feeds(LandingZone(settings.landing_dir), scale=scale, seed=seed)
        rows = {name: feed["control_total"] for name, feed in manifest["feeds"].items()}
        print(json.dumps({"ok": True, "rows": rows}))
        return
    summary = materialize_platform(settings, selection=STEPS[step])
    print(
        json.dumps(
            {
                "ok": bool(summary.success),
                "failures": [str(f) for f in summary.failures][:3],
                "rows": {k: v for k, v in summary.materialized.items() if v},
            },
            default=str,
        )
    )


def run_step(step: str, scale: str, seed: int, home: Path, timeout: float | None = None) -> dict:
    env = {**os.environ, "RETAIL_HOME": str(home), "RETAIL_SCALE": scale}
    env.pop("DAGSTER_HOME", None)
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", step, "--scales", scale, "--seed", str(seed)],
            env=env,
            stdout=out,
            start_new_session=True,  # a step stopped at the timeout takes dbt with it
        )
        timer = None
        if timeout:
            import threading

            timer = threading.Timer(timeout, os.killpg, (process.pid, signal.SIGKILL))
            timer.start()
        _, status, usage = os.wait4(process.pid, 0)
        if timer is not None:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith("{")]
    result = json.loads(lines[-1]) if lines else {"ok": False, "failures": ["no output"]}
    if timeout and seconds >= timeout:
        result = {"ok": False, "failures": [f"stopped after {timeout:.0f} s"]}
    result.update(
        seconds=seconds,
        peak_gib=usage.ru_maxrss / 2**20,  # KiB on Linux
        exit_code=process.returncode,
    )
    return result


def bench_scale(
    scale: str,
    seed: int,
    keep: Path | None,
    timeout: float | None = None,
    steps: list[str] | None = None,
) -> dict[str, dict]:
    """Each step of `steps` (default: all) on a fresh home, or, with `keep` and `steps`, on
    the kept home where the earlier steps ran."""
    home = (keep / scale) if keep else Path(tempfile.mkdtemp(prefix=f"retail-scale-{scale}-"))
    if not (keep and steps):
        shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    try:
        for step in steps or STEPS:
            result = run_step(step, scale, seed, home, timeout)
            results[step] = result
            rows = sum(result.get("rows", {}).values())
            print(
                f"{scale:<8} {step:<20} {result['seconds']:>9.1f} s {result['peak_gib']:>7.2f} GiB "
                f"{rows:>13,} rows  {'ok' if result['ok'] else 'FAILED ' + str(result)}",
                flush=True,
            )
            if not result["ok"] or result["exit_code"] != 0:
                break
    finally:
        if keep is None:
            shutil.rmtree(home, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["default", "large"])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="build each scale's home under DIR and keep it")
    parser.add_argument("--step-timeout", type=float, help="stop a step after this many seconds")
    parser.add_argument(
        "--steps",
        help="comma-separated steps to run on the --keep home where the earlier ones ran",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.scales[0], args.seed)
        return

    print(f"{'scale':<8} {'step':<20} {'wall':>11} {'peak':>11} {'rows written':>18}")
    steps = [step.strip() for step in args.steps.split(",")] if args.steps else None
    unknown = set(steps or []) - set(STEPS)
    if unknown:
        parser.error(f"--steps: unknown {sorted(unknown)}; the steps are {list(STEPS)}")
    if steps and not args.keep:
        parser.error("--steps runs on a kept home: give --keep DIR")
    by_scale = {
        scale: bench_scale(scale, args.seed, args.keep, args.step_timeout, steps)
        for scale in args.scales
    }
    if len(args.scales) < 2:
        return
    first, last = args.scales[0], args.scales[-1]
    base, big = by_scale[first], by_scale[last]
    raw = [sum(r["generate"]["rows"].values()) for r in (base, big) if "generate" in r]
    data_growth = raw[1] / raw[0] if len(raw) == 2 and raw[0] else float("nan")
    print(f"\nGrowth {first} -> {last}; the data (raw rows) grew {data_growth:.1f}x.\n")
    print("| step | wall " + first + " | wall " + last + " | time growth | peak " + first
          + " | peak " + last + " | memory growth | faster than the data? |")  # fmt: skip
    print("| --- " * 8 + "|")
    for step in STEPS:
        if step not in base or step not in big or not big[step]["ok"]:
            print(f"| {step} | | | did not complete at {last} | | | | |")
            continue
        time_growth = big[step]["seconds"] / base[step]["seconds"]
        memory_growth = big[step]["peak_gib"] / base[step]["peak_gib"]
        faster = [
            name
            for name, growth in (("time", time_growth), ("memory", memory_growth))
            if growth > FASTER_THAN_DATA * data_growth
        ]
        print(
            f"| {step} | {base[step]['seconds']:.1f} s | {big[step]['seconds']:.1f} s | "
            f"{time_growth:.1f}x | {base[step]['peak_gib']:.2f} GiB | "
            f"{big[step]['peak_gib']:.2f} GiB | {memory_growth:.1f}x | "
            f"{', '.join(faster) or 'no'} |"
        )


if __name__ == "__main__":
    main()
