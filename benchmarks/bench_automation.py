"""What one new day of data costs: the automatic runs it triggers against the full run.

    uv run python benchmarks/bench_automation.py [--scale default] [--seed 42] [--home DIR]

1. Baseline, in the same run: the full platform run on a fresh home (what `retail up` does
   before serving: land, then materialize every asset), wall time.
2. The next day lands: the day's transactional feeds (DAILY_FEEDS) from the same generator
   one day longer; the catalog, the stores and the policy documents did not change that day
   and are not sent again. Then the daemon's night, in process at the next day's time
   (`simulation.daemon.SimulatedDaemon`, the same night `retail simulate` runs), each run timed:
   * `landed_feeds_sensor`'s request: the raw tables of the landed feeds;
   * the schedules whose cron ticked;
   * the automation sensor's ticks: `evaluate_automation_conditions` on every asset, then a
     run of what it requested, until a tick requests nothing (eager assets downstream of new
     data; model chains never run this way);
   * `monitoring_retrain_sensor`: the retraining chain monitoring asks for, if any.
   Printed: each run's seconds and assets, the total against the full run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

# What a retailer sends every day; master data (products, stores, policy documents) only when
# it changes.
DAILY_FEEDS = (
    "sales", "inventory", "competitor_prices", "clickstream", "payments", "fraud_labels",
    "customers", "calendar", "store_calendar", "promotion_plan",
)  # fmt: skip


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Wall seconds per step of a run, from its event log."""
    import dagster as dg

    started: dict[str, float] = {}
    took: dict[str, float] = {}
    for record in instance.get_records_for_run(run_id).records:
        event = record.event_log_entry
        step = event.step_key
        if not event.is_dagster_event or step is None:
            continue
        kind = event.dagster_event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            started[step] = event.timestamp
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            took[step] = event.timestamp - started.get(step, event.timestamp)
    return took


def slowest_steps(instance, run_id: str, top: int = 8) -> str:
    ranked = sorted(step_seconds(instance, run_id).items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{step} {seconds:.0f} s" for step, seconds in ranked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--home", type=Path, default=None, help="kept afterwards if given")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix=f"retail-bench-auto-{args.scale}-"))
    os.environ["RETAIL_HOME"] = str(home)
    os.environ["RETAIL_SCALE"] = args.scale
    os.environ.pop("DAGSTER_HOME", None)
    import logging

    from retail_assets.runner import materialize_platform
    from retail_assets.settings import get_settings
    from retail_assets.simulation.daemon import SimulatedDaemon
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic.config import DEFAULT_END_DATE
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    logging.getLogger("dagster.automation_condition_tester").setLevel(logging.WARNING)
    settings = get_settings()
    settings.ensure_dirs()
    zone = LandingZone(settings.landing_dir)
    print(f"scale {args.scale}, seed {args.seed}, home {home}", flush=True)
    try:
        started = time.perf_counter()
        land_synthetic_feeds(zone, scale=args.scale, seed=args.seed)
        full = materialize_platform(settings)
        full_s = time.perf_counter() - started
        assert full.success, full.failures
        print(f"full run (land + every asset): {full_s:.0f} s, {len(full.materialized)} assets")

        # The daemon's night, in process at the simulated time (what `retail simulate` runs):
        # the landed_feeds sensor's raw tables, automation ticks until nothing is requested,
        # the other sensors (monitoring's retrain requests) and schedules that ticked.
        data_end = datetime.combine(DEFAULT_END_DATE, datetime.max.time())
        daemon = SimulatedDaemon(settings, data_end)
        steps: list[tuple[str, float, int]] = []

        started = time.perf_counter()
        manifest = land_synthetic_feeds(
            zone,
            scale=args.scale,
            seed=args.seed,
            end_date=DEFAULT_END_DATE + timedelta(days=1),
            feeds=DAILY_FEEDS,
        )
        steps.append(("land the next day", time.perf_counter() - started, 0))
        feeds = sorted(
            f for f, e in manifest["feeds"].items() if e["landed_at"] == manifest["landed_at"]
        )
        print(f"  changed feeds: {feeds} (the others landed the same bytes: nothing new)")
        for run in daemon.night(data_end + timedelta(days=1)):
            assert run.summary.success, run.summary.failures
            steps.append((run.trigger, run.summary.seconds, len(run.summary.materialized)))
            print(f"  {run.trigger}: {len(run.assets)} assets", flush=True)
            print(f"  slowest steps: {slowest_steps(daemon.instance, run.summary.run_id)}")

        print(f"\n{'step':<36} {'seconds':>8} {'assets':>7}")
        for name, seconds, assets in steps:
            print(f"{name:<36} {seconds:8.1f} {assets:7d}")
        total = sum(seconds for _, seconds, _ in steps)
        print(f"{'one new day, total':<36} {total:8.1f}")
        print(f"{'full run (baseline)':<36} {full_s:8.1f} {len(full.materialized):7d}")
        print(f"ratio: one new day costs {total / full_s:.0%} of the full run")
    finally:
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
