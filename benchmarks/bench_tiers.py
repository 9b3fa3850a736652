"""Tiered demand retraining: what a tier's retrain costs and what the routed model forecasts,
against one global model trained on every category (the baseline, same run, same rows).

    uv run python benchmarks/bench_tiers.py --home /tmp/retail-bench-default

`--home` is a platform home materialized at some scale (its `demand_training_set` asset value
and its warehouse are read; nothing in it is changed). Printed:

* the tiers the velocity score assigns on that warehouse (categories per tier, with scores);
* per tier: training rows and seconds of its part, against the global model's rows and
  seconds (the cost of a weekly fast-tier retrain against retraining everything);
* held-out test WAPE of the routed model against the global model, overall and on each
  tier's categories (the price, or gain, of training each tier on its own rows).
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
import polars as pl

from retail_assets.models.demand import demand_family
from retail_assets.models.demand.tiers import SOURCE_COLUMNS, assign_demand_tiers
from retail_assets.models.lifecycle.tiers import compose, train_tier
from retail_assets.warehouse import WarehouseResource


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.abs(actual - forecast).sum() / max(actual.sum(), 1e-9))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    with open(args.home / "assets" / "demand_training_set", "rb") as handle:
        training_set = pickle.load(handle)
    daily = WarehouseResource(path=str(args.home / "warehouse.duckdb")).read_table(
        "marts", "demand_features", SOURCE_COLUMNS
    )
    started = time.perf_counter()
    memberships = assign_demand_tiers(daily)
    assign_seconds = time.perf_counter() - started
    print(f"home {args.home}: {daily.height:,} mart rows, {training_set.frame.height:,} examples")
    print(f"tier assignment: {assign_seconds:.1f} s")
    for membership in memberships:
        print(f"  {membership.tier}: {len(membership.values)} categories")
        for row in membership.evidence:
            print(f"    {row['category']}: {row['why']}")

    started = time.perf_counter()
    global_model = demand_family.train(training_set)
    global_seconds = time.perf_counter() - started
    global_rows = training_set.split("train").height
    parts, seconds = {}, {}
    for membership in memberships:
        started = time.perf_counter()
        parts[membership.tier] = train_tier(membership, training_set, demand_family.train)
        seconds[membership.tier] = time.perf_counter() - started
    routed = compose(training_set, parts, "category")

    print("\ntraining cost (baseline: one global model on every category)")
    print(f"  global: {global_rows:,} rows, {global_seconds:.1f} s")
    for tier, part in parts.items():
        share = seconds[tier] / global_seconds
        print(f"  {tier} part: {part.rows:,} rows, {seconds[tier]:.1f} s ({share:.0%} of global)")

    test = training_set.split("test")
    actual = test[training_set.target_column].cast(float).to_numpy()
    by_global = demand_family.predict(global_model, test)["mean"]
    by_routed = demand_family.predict(routed, test)["mean"]
    print("\nheld-out test WAPE (mean forecast): routed tiers vs global")
    print(f"  all: routed {wape(actual, by_routed):.4f} vs global {wape(actual, by_global):.4f}")
    for tier, part in parts.items():
        rows = test["category"].is_in(part.values).to_numpy()
        if rows.any():
            print(
                f"  {tier} categories ({rows.sum():,} rows): routed "
                f"{wape(actual[rows], by_routed[rows]):.4f} vs global "
                f"{wape(actual[rows], by_global[rows]):.4f}"
            )
    unrouted = test.filter(~pl.col("category").is_in(list(routed.extras["routing"]))).height
    print(f"  rows of categories no tier learned: {unrouted}")


if __name__ == "__main__":
    main()
