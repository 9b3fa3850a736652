"""Dynamic pricing against the generator's truth: the demand response model, its elasticities,
and the margin its recommended prices would earn on a held-out period.

    uv run python benchmarks/bench_pricing.py --home <a synthetic home> [--sample 3000]

Reads `marts.fct_daily_sales` and `marts.dim_products` of a home materialized from the
generator, and its ground truth (`landing/ground_truth.json`). Trains the response model
(LightGBM Poisson, monotone decreasing in own price; models/pricing/response.py) on the year
before the last HOLDOUT_DAYS, then on a sample of held-out regular-price days (no promotion)
recommends a price per row with the optimizer and the default guardrails. Prints:
- training time and held-out WAPE of the response model;
- estimated vs true elasticity per category (arc elasticity of the model at +-5 %, competitor
  price held; the truth for a regular-price move is e - cross elasticity);
- true margin and revenue under list prices, the prices charged, the recommended prices and
  the true optimum inside the same guardrails, per category and overall, with the share of the
  achievable uplift captured and the guardrail violations of the recommended prices.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl

from retail_assets.models.pricing.guardrails import (
    Guardrails,
    PriceContext,
    feasible_range,
    violations,
)
from retail_assets.models.pricing.optimizer import grid, recommend_price
from retail_assets.models.pricing.response import (
    CATEGORICAL,
    FEATURES,
    Vocabulary,
    arc_elasticity,
    baselines,
    features,
    monotone_constraints,
    sales_rows,
)
from retail_assets.models.pricing.truth import TrueResponse, compare, uplift_captured
from retail_assets.warehouse import WarehouseResource

HOLDOUT_DAYS = 28
TRAIN_DAYS = 365


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--sample", type=int, default=3000)
    args = parser.parse_args()
    warehouse = WarehouseResource(path=str(args.home / "warehouse.duckdb"))
    truth = TrueResponse.from_ground_truth(
        json.loads((args.home / "landing" / "ground_truth.json").read_text())
    )
    rows = sales_rows(
        warehouse.read_table("marts", "fct_daily_sales"),
        warehouse.read_table("marts", "dim_products"),
    )
    split = rows["date"].max() - timedelta(days=HOLDOUT_DAYS - 1)
    train = rows.filter(pl.col("date") < split, pl.col("date") >= split - timedelta(TRAIN_DAYS))
    holdout = rows.filter(pl.col("date") >= split)
    vocabulary, base = Vocabulary.of(train), baselines(train)
    fit_at = split - timedelta(days=HOLDOUT_DAYS)
    fit, valid = train.filter(pl.col("date") < fit_at), train.filter(pl.col("date") >= fit_at)
    started = time.perf_counter()
    x_fit, x_valid = features(fit, base, vocabulary), features(valid, base, vocabulary)
    booster = lgb.train(
        {
            "objective": "poisson",
            "learning_rate": 0.05,
            "num_leaves": 63,
            "min_data_in_leaf": 200,
            "monotone_constraints": monotone_constraints(),
            "monotone_constraints_method": "advanced",
            "num_threads": 2,
            "seed": 0,
            "verbose": -1,
        },
        lgb.Dataset(
            x_fit.select(FEATURES).to_numpy(),
            label=x_fit["units"].to_numpy(),
            feature_name=FEATURES,
            categorical_feature=CATEGORICAL,
        ),
        num_boost_round=1000,
        valid_sets=[
            lgb.Dataset(x_valid.select(FEATURES).to_numpy(), label=x_valid["units"].to_numpy())
        ],
        callbacks=[lgb.early_stopping(50, verbose=False)],
    )
    seconds = time.perf_counter() - started
    model = lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))
    x_hold = features(holdout, base, vocabulary)
    predicted = model.predict(x_hold.select(FEATURES).to_numpy())
    wape = float(np.abs(predicted - x_hold["units"]).sum() / x_hold["units"].sum())
    print(
        f"home {args.home}: {rows.height:,} in-stock sales days; trained on {fit.height:,} rows "
        f"in {seconds:.1f} s ({model.num_trees()} trees); held-out WAPE {wape:.3f} "
        f"({holdout.height:,} rows from {split})"
    )

    regular = holdout.filter(~pl.col("on_promotion"), pl.col("unit_cost") > 0)
    sample = regular.sample(min(args.sample, regular.height), seed=0)

    # Elasticities: the model's arc elasticity per row, averaged per category.
    def frame_at(multiplier: float) -> np.ndarray:
        price = pl.col("unit_price") * multiplier
        return features(sample, base, vocabulary, price).select(FEATURES).to_numpy()

    estimated = sample.select("category").with_columns(
        pl.Series("estimated", arc_elasticity(model.predict, frame_at))
    )
    elasticities = (
        estimated.group_by("category")
        .agg(pl.col("estimated").mean(), pl.len().alias("rows"))
        .with_columns(
            pl.col("category")
            .replace_strict(truth.elasticity, return_dtype=pl.Float64)
            .alias("true_own"),
        )
        .with_columns((pl.col("true_own") - truth.cross_elasticity).alias("true_regular_move"))
        .sort("category")
    )
    error = (elasticities["estimated"] - elasticities["true_regular_move"]).abs()
    correlation = np.corrcoef(elasticities["estimated"], elasticities["true_regular_move"])[0, 1]
    print("\n| category | estimated | true own | true for a regular-price move | rows |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in elasticities.iter_rows(named=True):
        print(
            f"| {row['category']} | {row['estimated']:.2f} | {row['true_own']:.2f} | "
            f"{row['true_regular_move']:.2f} | {row['rows']} |"
        )
    print(
        f"mean absolute error {error.mean():.2f}, correlation {correlation:.2f} "
        f"({elasticities.height} categories)"
    )

    # Recommended prices, one optimizer call per sampled row.
    rails = Guardrails()
    started = time.perf_counter()
    recommended, lows, highs, broken, bound = [], [], [], 0, {}
    for i, row in enumerate(sample.iter_rows(named=True)):
        ctx = PriceContext(
            cost=row["unit_cost"],
            current_price=row["unit_price"],
            competitor_price=row["competitor_min_price"],
        )
        one = sample.slice(i, 1)

        def units(prices: np.ndarray, one=one) -> np.ndarray:
            repeated = one[[0] * len(prices)]
            at = repeated.with_columns(pl.Series("_p", prices))
            return model.predict(
                features(at, base, vocabulary, pl.col("_p")).select(FEATURES).to_numpy()
            )

        rec = recommend_price(units, ctx, rails)
        recommended.append(rec.decision.price)
        low, high, _ = feasible_range(rails, ctx)
        lows.append(low)
        highs.append(high)
        broken += bool(violations(rails, ctx, rec.decision.price))
        for b in rec.decision.bound_by:
            bound[b["rule"]] = bound.get(b["rule"], 0) + 1
    optimize_seconds = time.perf_counter() - started
    policies = {
        "list price": sample["list_price"].to_numpy(),
        "price charged": sample["unit_price"].to_numpy(),
        "recommended": np.array(recommended),
        "true optimum inside the guardrails": truth.optimum(
            sample, np.array(lows), np.array(highs)
        ),
    }
    table = compare(sample, policies, truth)
    overall = table.filter(pl.col("category") == "all")
    print(
        f"\n{sample.height:,} held-out regular-price days priced in {optimize_seconds:.1f} s "
        f"({len(grid(1.0))} grid prices each); guardrail violations of the recommended "
        f"prices: {broken}; rules that bound them: {bound}"
    )
    print("\n| policy | true units | true revenue | true margin |")
    print("| --- | ---: | ---: | ---: |")
    for row in overall.iter_rows(named=True):
        print(
            f"| {row['policy']} | {row['units']:,.0f} | {row['revenue']:,.0f} | "
            f"{row['margin']:,.0f} |"
        )
    captured = uplift_captured(
        table, "recommended", "list price", "true optimum inside the guardrails"
    )
    print(f"share of the achievable margin uplift over list prices captured: {captured:.1%}")
    by_category = table.pivot(on="policy", index="category", values="margin").filter(
        pl.col("category") != "all"
    )
    change = by_category.with_columns(
        ((pl.col("recommended") / pl.col("list price")) - 1).alias("margin_change_vs_list")
    ).sort("margin_change_vs_list")
    worst = change.row(0, named=True)
    losing = change.filter(pl.col("margin_change_vs_list") < 0)
    print(
        f"categories losing margin vs list prices: {losing.height} of {change.height} "
        f"(worst {worst['category']} {worst['margin_change_vs_list']:+.1%})"
    )


if __name__ == "__main__":
    main()
