"""Monitoring: how fast it detects the generator's shifts, whether it stays quiet through the
holidays, and what one monitoring run costs.

    uv run python benchmarks/bench_monitoring.py [--scale default] [--seed 42]
                                                 [--cost-home /tmp/retail-bench-default]

1. Detection delay, in simulated days. The generator makes the world with one knob, and the
   monitoring statistics (the same functions the monitoring assets call) are evaluated as of
   each day from the change on, with only the data (and the labels) known by that day:
   * `--demand-shift START:1.8` (all departments) and `START:0.5` on one department:
     the seasonally adjusted level test;
   * `--fraud-change START` at the CLI's default rate: the known-fraud-rate tests against
     the same weeks a year earlier, labels as known the same time after, over the champion's
     live window and over the last weeks; the live window alone is the baseline.
   Baseline in the same run: the same evaluation on the world without the knob (false alarms
   over the same days), and through the Black Friday to Christmas surge (2026-11-01 to
   2026-12-31), where any alarm is a false one.
   `--fraud-windows`: the recent known-fraud test at 14, 21 and 28 days, on the world without
   a knob to the year's end and with a new pattern at 5 % and 10 % of payments.
2. Cost of one monitoring run (drift and live metrics, no Dagster) on the warehouse at
   --cost-home (materialized at that scale; skipped if absent): seconds and rows.
3. Cost per day of logs (--log-day-home, a materialized home; its prediction log is used):
   on a copy of it without its prediction log, the monitoring assets (prediction_log load,
   demand, fraud, search, assistant monitoring) run through Dagster first without serving
   traffic (the baseline, same run, after a warm-up run), then after
   one day of traffic at that scale went through `retail serve` over HTTP: every payment of
   the last day scored again as a new payment, and every store x SKU series forecast 28 days
   ahead once (a replenishment system's daily call). Printed: log rows, seconds per asset
   with and without the day, and the difference.
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from retail_assets.monitoring.drift import level_change
from retail_assets.monitoring.monitors import LEVEL_SERIES, fraud_rate_changes
from retail_assets.sources.synthetic import GeneratorConfig, Knobs, generate
from retail_assets.sources.synthetic.config import DemandShift, FraudPatternChange

SHIFT_START = date(2026, 8, 1)
DAYS = 60
# Days from the champion's test-window end to the change (label maturity plus a few days).
CHAMPION_TEST_END_DAYS = 64


def world(scale: str, seed: int, knobs: Knobs, end: date) -> dict[str, pl.DataFrame]:
    started = time.perf_counter()
    feeds = generate(GeneratorConfig(scale=scale, seed=seed, knobs=knobs, end_date=end)).feeds
    print(
        f"  generated {scale} world to {end} in {time.perf_counter() - started:.1f} s", flush=True
    )
    return feeds


def daily_sales(feeds: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return (
        feeds["sales"]
        .select("date", "store_id", "sku", pl.col("units_sold").alias("demand_quantity"))
        .join(feeds["products"].select("sku", "department", "category"), on="sku")
    )


def level_alarms(
    daily: pl.DataFrame,
    days: list[date],
    segment: str = "overall",
    series: list[str] = LEVEL_SERIES,
) -> list[date]:
    """Days the level test fires in `segment` ("any": anywhere), tested as monitoring does
    (per SKU, overall, per department and category) or over other `series`."""
    alarms = []
    for day in days:
        known = daily.filter(pl.col("date") <= day)
        changes = level_change(
            known, "date", "demand_quantity", series, day, ("department", "category")
        )
        if any(c.drifted and (segment == "any" or c.segment == segment) for c in changes):
            alarms.append(day)
    return alarms


def payments_with_labels(feeds: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return (
        feeds["payments"]
        .select("transaction_id", pl.col("event_ts").alias("transaction_ts"), "card_id")
        .join(
            feeds["fraud_labels"].select("transaction_id", "is_fraud", "label_available_at"),
            on="transaction_id",
            how="left",
        )
        .with_columns(pl.col("label_available_at").cast(pl.Datetime("us")))
    )


def fraud_alarms(
    payments: pl.DataFrame, since: datetime, days: list[date], recent: bool = True
) -> list[date]:
    """Days the known-fraud-rate test fires: both windows as monitoring runs them, or
    (`recent=False`) only the champion's live window since `since`, as before the recent
    window existed."""
    alarms = []
    for day in days:
        now = datetime.combine(day, datetime.max.time())
        known = payments.filter(pl.col("transaction_ts") <= now)
        changes = fraud_rate_changes(known, since, now)[: None if recent else 1]
        if any(change.drifted for change in changes):
            alarms.append(day)
    return alarms


def delay(alarms: list[date], start: date) -> str:
    return f"{(alarms[0] - start).days} days" if alarms else f"not within {DAYS} days"


def detection(scale: str, seed: int) -> None:
    end = SHIFT_START + timedelta(days=DAYS)
    days = [SHIFT_START + timedelta(days=i) for i in range(DAYS + 1)]
    print(f"detection delay at {scale}, changes on {SHIFT_START}, evaluated daily to {end}")

    plain = world(scale, seed, Knobs(), end)
    shifted = world(scale, seed, Knobs(demand_shift=DemandShift(SHIFT_START, 1.8)), end)
    one = world(
        scale, seed, Knobs(demand_shift=DemandShift(SHIFT_START, 0.5, ("Electronics",))), end
    )
    fraud = world(scale, seed, Knobs(fraud_pattern_change=FraudPatternChange(SHIFT_START)), end)

    base = level_alarms(daily_sales(plain), days, "any")
    pseudo = level_alarms(daily_sales(plain), days, "any", ["store_id", "sku"])
    print(
        f"  demand, no knob (baseline): {len(base)} alarm days of {len(days)} "
        f"({len(pseudo)} testing store x SKU series as independent)"
    )
    alarms = level_alarms(daily_sales(shifted), days)
    print(
        f"  demand --demand-shift {SHIFT_START}:1.8: first overall alarm after {delay(alarms, SHIFT_START)}"
    )
    alarms = level_alarms(daily_sales(one), days, "department=Electronics")
    others = [d for d in level_alarms(daily_sales(one), days, "any")]
    print(
        f"  demand Electronics x0.5: first Electronics alarm after {delay(alarms, SHIFT_START)}; "
        f"alarm days in any segment {len(others)}"
    )
    # The champion's live window starts where its test window ended: 60 days of label
    # maturity before its training date, itself a few days before the change.
    since = datetime.combine(
        SHIFT_START - timedelta(days=CHAMPION_TEST_END_DAYS), datetime.min.time()
    )
    stationary = payments_with_labels(plain)
    base = fraud_alarms(stationary, since, days)
    base_live = fraud_alarms(stationary, since, days, recent=False)
    print(
        f"  fraud, no knob (baseline): {len(base)} alarm days of {len(days)} "
        f"({len(base_live)} with the live window alone)"
    )
    changed = payments_with_labels(fraud)
    alarms = fraud_alarms(changed, since, days)
    live_only = fraud_alarms(changed, since, days, recent=False)
    print(
        f"  fraud --fraud-change {SHIFT_START} (default rate): first alarm after "
        f"{delay(alarms, SHIFT_START)}; with the live window since the champion's test window "
        f"alone (baseline): {delay(live_only, SHIFT_START)}"
    )

    holiday_end = date(2026, 12, 31)
    holiday = daily_sales(world(scale, seed, Knobs(), holiday_end))
    season = [date(2026, 11, 1) + timedelta(days=i) for i in range(61)]
    alarms = level_alarms(holiday, season, "any")
    print(f"  Black Friday to Christmas, no knob: {len(alarms)} alarm days of {len(season)}")


def fraud_window_sweep(scale: str, seed: int) -> None:
    """The recent known-fraud test (cards, rises only) at other window lengths than
    `RECENT_FRAUD_DAYS`: false alarm days without a knob (to the end of the year, holidays
    included) and days to the first alarm for a new pattern at 5 % and 10 % of payments."""
    from retail_assets.monitoring.drift import fraud_rate_change

    end = date(2026, 12, 31)
    days = [SHIFT_START + timedelta(days=i) for i in range(DAYS + 1)]
    quiet = days + [date(2026, 11, 1) + timedelta(days=i) for i in range(61)]
    worlds = {"no knob": payments_with_labels(world(scale, seed, Knobs(), end))}
    for rate in (0.05, 0.10):
        change = FraudPatternChange(SHIFT_START, new_pattern_rate=rate)
        worlds[f"{rate:.0%}"] = payments_with_labels(
            world(scale, seed, Knobs(fraud_pattern_change=change), end)
        )
    print(f"recent fraud window at {scale} (cards, rises only)")
    for length in (14, 21, 28):
        cells = []
        for name, payments in worlds.items():
            alarms = []
            for day in quiet if name == "no knob" else days:
                now = datetime.combine(day, datetime.max.time())
                known = payments.filter(pl.col("transaction_ts") <= now)
                since = now - timedelta(days=length)
                if fraud_rate_change(known, since, now, "recent", recent_rise=True).drifted:
                    alarms.append(day)
            if name == "no knob":
                cells.append(f"no knob: {len(alarms)} alarm days of {len(quiet)}")
            else:
                cells.append(f"{name}: first alarm after {delay(alarms, SHIFT_START)}")
        print(f"  {length} days: " + "; ".join(cells), flush=True)


def cost(home: Path) -> None:
    import pickle

    import duckdb

    from retail_assets.monitoring.monitors import monitor_demand, monitor_fraud

    warehouse = home / "warehouse.duckdb"
    if not warehouse.exists():
        print(f"cost: no warehouse at {home}; materialize the platform there first")
        return
    with duckdb.connect(str(warehouse), read_only=True) as con:
        transactions = con.sql("select * from marts.transaction_features").pl()
        customers = con.sql("select * from marts.dim_customers").pl()
        daily = con.sql(
            "select f.date, f.store_id, f.sku, f.demand_quantity, p.department, p.category "
            "from marts.fct_daily_sales f join marts.dim_products p using (sku)"
        ).pl()
    per_day = transactions.height / max(transactions["transaction_ts"].dt.date().n_unique(), 1)
    started = time.perf_counter()
    report = monitor_fraud(transactions, customers, None, None)
    fraud_s = time.perf_counter() - started
    print(
        f"cost at {home}: fraud drift over {transactions.height:,} payments "
        f"({per_day:,.0f} a day): {fraud_s:.1f} s, {len(report.feature_drift)} feature tests"
    )
    training_set = home / "assets" / "demand_training_set"
    if training_set.exists():
        frame = pickle.loads(training_set.read_bytes())
        started = time.perf_counter()
        report = monitor_demand(daily, frame.frame, frame.feature_columns, None, None)
        print(
            f"  demand drift over {daily.height:,} series-days and {frame.frame.height:,} "
            f"training rows: {time.perf_counter() - started:.1f} s, "
            f"{len(report.level_drift)} level tests, {len(report.feature_drift)} feature tests"
        )


def _monitoring_seconds(settings) -> dict[str, float]:
    from bench_automation import step_seconds

    from retail_assets.runner import instance_for, materialize_platform

    selection = (
        'key:"serving/prediction_log" or key:demand_monitoring or key:fraud_monitoring or '
        "key:search_monitoring or key:assistant_monitoring"
    )
    summary = materialize_platform(settings, selection=selection)
    assert summary.success, summary.failures
    seconds = step_seconds(instance_for(settings), summary.run_id)
    seconds["run (wall)"] = summary.seconds
    return seconds


def send_one_day(settings, port: int) -> dict[str, int]:
    """One day of traffic over HTTP: the last day's payments (new ids) and a 28-day forecast
    of every store x SKU series."""
    import duckdb
    import httpx

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        payments = con.sql(
            "select * from marts.transaction_features where cast(transaction_ts as date) = "
            "(select max(cast(transaction_ts as date)) from marts.transaction_features)"
        ).pl()
        series = con.sql(
            "select distinct store_id, sku from marts.fct_daily_sales order by 1, 2"
        ).pl()
    fields = (
        "card_id", "customer_id", "amount", "device_id", "shipping_address_id", "n_items",
        "channel", "payment_method", "billing_country", "ip_country", "shipping_country",
    )  # fmt: skip
    sent = {"payments": 0, "series": 0}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as client:
        rows = payments.to_dicts()
        for start in range(0, len(rows), 1000):
            batch = [
                {
                    **{f: r[f] for f in fields if f in r and r[f] is not None},
                    "transaction_id": f"{r['transaction_id']}-live",
                }
                for r in rows[start : start + 1000]
            ]
            response = client.post("/v1/fraud/score:batch", json={"payments": batch})
            assert response.status_code == 200, response.text[:500]
            sent["payments"] += len(batch)
        for store_id, group in series.group_by("store_id", maintain_order=True):
            skus = group["sku"].to_list()
            for start in range(0, len(skus), 200):
                page = skus[start : start + 200]
                response = client.post(
                    "/v1/forecast", json={"store_id": store_id[0], "sku": page, "horizon": 28}
                )
                assert response.status_code == 200, response.text[:500]
                sent["series"] += len(page)
    return sent


def log_day_cost(home: Path, scale: str) -> None:
    """On a copy of `home` without its prediction log."""
    import shutil
    import tempfile

    from retail_assets.settings import settings_for_home

    copy = Path(tempfile.mkdtemp(prefix="retail-bench-logday-")) / "home"
    shutil.copytree(home, copy, ignore=shutil.ignore_patterns("prediction_logs", "logs"))
    try:
        _log_day_cost(settings_for_home(copy, scale))
    finally:
        shutil.rmtree(copy.parent, ignore_errors=True)


def _log_day_cost(settings) -> None:
    from bench_serving import VENV_BIN, wait_http
    from harness import free_port, start, stop

    (settings.home / "logs").mkdir(exist_ok=True)
    _monitoring_seconds(settings)  # warm-up: first imports and caches, not monitoring's cost
    before = _monitoring_seconds(settings)
    port = free_port()
    process = start(
        [str(VENV_BIN / "retail"), "serve", "--port", str(port), "--log-level", "warning"],
        {**os.environ, "RETAIL_SERVING_POLL_SECONDS": "60"},
        settings.home / "logs" / "bench-monitoring-serve.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready", timeout=600)
        started = time.perf_counter()
        sent = send_one_day(settings, port)
        print(
            f"one day of traffic: {sent['payments']:,} payments scored, {sent['series']:,} "
            f"series forecast 28 days ahead, in {time.perf_counter() - started:.0f} s"
        )
    finally:
        stop(process)  # flushes the prediction log
    logged = pl.read_parquet(settings.prediction_log_dir / "**/*.parquet").height
    after = _monitoring_seconds(settings)
    print(f"prediction log rows: {logged:,}")
    print(f"{'step':<40} {'no logs s':>9} {'one day s':>9} {'difference':>10}")
    for step in sorted(set(before) | set(after)):
        b, a = before.get(step, 0.0), after.get(step, 0.0)
        print(f"{step:<40} {b:9.1f} {a:9.1f} {a - b:10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="default")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--cost-home", type=Path, default=None)
    parser.add_argument("--log-day-home", type=Path, default=None)
    parser.add_argument("--skip-detection", action="store_true")
    parser.add_argument(
        "--fraud-windows", action="store_true", help="also sweep the recent fraud window length"
    )
    args = parser.parse_args()
    if not args.skip_detection:
        detection(args.scale, args.seed)
    if args.fraud_windows:
        fraud_window_sweep(args.scale, args.seed)
    if args.cost_home:
        cost(args.cost_home)
    if args.log_day_home:
        log_day_cost(args.log_day_home, args.scale)


if __name__ == "__main__":
    main()
