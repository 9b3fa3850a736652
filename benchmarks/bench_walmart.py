"""Walmart store weekly sales through the platform: `retail land`, the dbt marts at the weekly
grain, and a rolling-origin backtest of the platform's own demand family against its baselines.

    uv run python benchmarks/bench_walmart.py [--origins 7] [--home DIR] [--skip-build]

Data: 45 Walmart stores x 143 weeks (2010-02-05 .. 2012-10-26), store totals in USD
(`walmart_store_sales/Walmart_Store_sales.csv`, see its SOURCE.md; `RETAIL_REAL_DATA_DIR`).

What runs, as a retailer would run it (nothing here is a model of its own):

1. `retail_assets.sources.real.walmart.derive_landing_files` writes what the raw file cannot
   give row for row (stores.csv, calendar.csv with the holiday behind each flagged week,
   products.csv with the one pseudo-SKU STORE-TOTAL); the sales feed is the raw CSV itself
   (`retail_assets.sources.real.landing.landing_plan`).
2. Each feed is landed with the command, in a fresh RETAIL_HOME (a temporary directory unless
   --home), with the mappings shipped in `benchmarks/landing/walmart_store_sales/`:
   `retail land sales Walmart_Store_sales.csv --map sales.yaml` (store = `Store`, SKU the
   constant STORE-TOTAL, `sales_value` = `Weekly_Sales` with `measure: value`, day-first
   dates), then stores, calendar and products. Demand is enabled by the landed feeds alone.
3. `RETAIL_DEMAND_GRAIN=week retail materialize --select '+key:marts/demand_features'` builds
   the raw assets and the dbt models up to `marts.demand_features` (weekly rows dated on the
   Friday that ends each Saturday-Friday week; calendar flags aggregated over that week).
4. Rolling origins: for each origin o (by default 7 origins 8 weeks apart, the last one 8 weeks
   before the data end, so the test windows tile the last 56 weeks including Thanksgiving and
   Christmas 2011), the mart is cut at o + 8 weeks and `DemandForecastFamily(grain=WEEKLY)`
   runs exactly what the lifecycle runs: `build_training_set` (test = the 8 weeks after o,
   all forecast from o; validation = the 8 weeks before, from o - 8 weeks; training targets
   the `train_days` before that, one drawn horizon each), `train`, `predict` on the test rows
   and `evaluate`, which scores the challenger beside the platform's baselines on the same
   rows: seasonal naive (weekly: the last observed week), last year (the same week 52 weeks
   earlier), the store x week promotion profile of recent weeks, and the level-scaled last
   year.

Pooled over origins: WAPE = sum |e| / sum y over all store-weeks (from each origin's WAPE and
its support, sum y), bias = sum f / sum y - 1, p10-p90 coverage over all test rows. The gate
line applies the family's own overall rule: the challenger's WAPE must beat the best baseline
by `baseline_margin` (2 %, relative).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl

from retail_assets.models.demand.evaluate import BASELINES
from retail_assets.models.demand.family import SOURCE_KEY, DemandForecastFamily
from retail_assets.models.demand.grain import WEEKLY
from retail_assets.settings import PATH_OVERRIDES
from retail_assets.sources.real import walmart
from retail_assets.sources.real.landing import landing_plan

FEEDS = ("sales", "stores", "calendar", "products")
SELECTION = "+key:marts/demand_features"
PREDICTORS = ("challenger", *BASELINES)


def retail_command() -> list[str]:
    """The `retail` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "retail"
    if script.exists():
        return [str(script)]
    found = shutil.which("retail")
    if found is None:
        raise SystemExit("the `retail` command is not installed in this environment")
    return [found]


def platform_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PATH_OVERRIDES}
    env.pop("RETAIL_DOMAINS", None)  # domains follow from what landed
    env["RETAIL_HOME"] = str(home)
    env["RETAIL_DEMAND_GRAIN"] = WEEKLY.name
    return env


def run(command: list[str], env: dict[str, str]) -> str:
    shown = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(command))
    print(f"$ {shown}", flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        raise SystemExit(f"command failed ({done.returncode}): {shown}")
    return done.stdout


def land_and_build(home: Path) -> None:
    """Derive the files, land every feed with `retail land`, build the marts."""
    env = platform_env(home)
    retail = retail_command()
    steps = landing_plan(walmart.DATASET, home / "walmart_files")
    assert [step.feed for step in steps] == list(FEEDS), steps
    for step in steps:
        out = run(step.command(*retail), env)
        print("  " + " ".join(out.splitlines()[0].split()))
    started = time.perf_counter()
    out = run([*retail, "materialize", "--select", SELECTION], env)
    last = [line for line in out.splitlines() if line.strip()][-3:]
    print("  " + " / ".join(" ".join(line.split()) for line in last))
    print(f"  marts built in {time.perf_counter() - started:.0f} s", flush=True)


def read_mart(home: Path) -> pl.DataFrame:
    warehouse = home / "warehouse.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.sql("select * from marts.demand_features").pl()


def backtest(mart: pl.DataFrame, n_origins: int, train_days: int) -> bool:
    grain = WEEKLY
    period = timedelta(days=grain.days)
    horizon = grain.max_horizon
    family = DemandForecastFamily(grain=grain, train_days=train_days)
    data_end = mart["date"].max()
    last_origin = data_end - horizon * period
    origins = [last_origin - i * horizon * period for i in range(n_origins)][::-1]
    print(
        f"\nmarts.demand_features: {mart['store_id'].n_unique()} stores x "
        f"{mart['sku'].n_unique()} SKU x {mart['date'].n_unique()} weeks "
        f"({mart['date'].min()} .. {data_end}), measure {sorted(set(mart['demand_measure']))}; "
        f"{n_origins} origins, h = 1..{horizon} weeks, train_days {train_days}"
    )
    header = (
        f"{'origin':<11} {'test weeks':<23} {'train':>5} "
        + " ".join(f"{p:>16}" for p in PREDICTORS)
        + f" {'coverage':>9}"
    )
    print(header)
    print("-" * len(header))
    totals = {p: {"abs_error": 0.0, "forecast": 0.0} for p in PREDICTORS}
    support, rows, covered = 0.0, 0.0, 0.0
    # Diagnostic, not a predictor of the table: last_year_scaled without its 3-week smoothing,
    # y(t - 52) x the same year-on-year level ratio, from the test rows' own feature columns.
    unsmoothed = {"abs_error": 0.0, "y": 0.0}
    started = time.perf_counter()
    for origin in origins:
        cut = mart.filter(pl.col("date") <= origin + horizon * period)
        training_set = family.build_training_set({SOURCE_KEY: cut})
        test_origin = training_set.info["origins"]["test"]
        if test_origin != origin.isoformat():
            raise RuntimeError(f"the test origin is {test_origin}, expected {origin}")
        model = family.train(training_set)
        test = training_set.split("test")
        evaluation = family.evaluate(
            training_set, {"challenger": family.predict(model, test)}, model
        )
        overall = evaluation.overall
        y_sum = overall["challenger"]["support"]
        for p in PREDICTORS:
            totals[p]["abs_error"] += overall[p]["wape"] * overall[p]["support"]
            totals[p]["forecast"] += (overall[p]["bias"] + 1.0) * overall[p]["support"]
        support += y_sum
        y = test[training_set.target_column].to_numpy()
        f = (test[grain.year_lag] * test["units_yoy_level_ratio"]).fill_null(0.0).to_numpy()
        unsmoothed["abs_error"] += float(abs(y - f).sum())
        unsmoothed["y"] += float(y.sum())
        rows += overall["challenger"]["n"]
        covered += overall["challenger"]["coverage_p10_p90"] * overall["challenger"]["n"]
        window = training_set.windows["test"]
        print(
            f"{origin!s:<11} {window['start'] + '..' + window['end'][5:]:<23} "
            f"{training_set.info['rows']['train']:>5} "
            + " ".join(f"{overall[p]['wape']:>16.4f}" for p in PREDICTORS)
            + f" {overall['challenger']['coverage_p10_p90']:>9.3f}",
            flush=True,
        )
    wape = {p: totals[p]["abs_error"] / support for p in PREDICTORS}
    bias = {p: totals[p]["forecast"] / support - 1.0 for p in PREDICTORS}
    coverage = covered / rows
    print("-" * len(header))
    print(
        f"{'pooled WAPE':<41} "
        + " ".join(f"{wape[p]:>16.4f}" for p in PREDICTORS)
        + f" {coverage:>9.3f}"
    )
    print(f"{'pooled bias':<41} " + " ".join(f"{bias[p]:>+16.4f}" for p in PREDICTORS))
    print(
        f"diagnostic: last year unsmoothed x level ratio ({grain.year_lag} x "
        f"units_yoy_level_ratio) pooled WAPE {unsmoothed['abs_error'] / unsmoothed['y']:.4f}"
    )
    best = min(BASELINES, key=lambda p: wape[p])
    gain = 1.0 - wape["challenger"] / wape[best]
    margin = family.gate_rules[0].baseline_margin
    passed = gain >= margin
    print(
        f"\nchallenger WAPE {wape['challenger']:.4f} vs best baseline {best} {wape[best]:.4f} "
        f"({gain:+.1%} relative); p10-p90 coverage {coverage:.3f} (nominal 0.80); "
        f"{int(rows)} store-weeks; {time.perf_counter() - started:.1f} s"
    )
    print(
        f"gate (beat the best baseline by {margin:.0%}, pooled WAPE): "
        f"{'PASS' if passed else 'FAIL'}"
    )
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--origins", type=int, default=7, help="rolling origins, 8 weeks apart")
    parser.add_argument(
        "--train-days",
        type=int,
        default=DemandForecastFamily().train_days,
        help="training target window of the family (default: the family's own)",
    )
    parser.add_argument(
        "--home", type=Path, help="RETAIL_HOME to land and build in (kept; default: a temp dir)"
    )
    parser.add_argument(
        "--skip-build",
        action="store_true",
        help="reuse the marts already built in --home (no landing, no materialize)",
    )
    args = parser.parse_args()
    if args.skip_build and args.home is None:
        parser.error("--skip-build needs --home")
    with tempfile.TemporaryDirectory(prefix="bench-walmart-") as tmp:
        home = (args.home or Path(tmp)).resolve()
        if not args.skip_build:
            land_and_build(home)
        backtest(read_mart(home), args.origins, args.train_days)


if __name__ == "__main__":
    main()
