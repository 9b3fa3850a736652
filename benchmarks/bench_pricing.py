"""Dynamic pricing against the generator's truth: the response model's elasticities and the
margin its recommended prices would earn on the held-out period, through the pricing
family's own code (`models/pricing/family.py`: the training set, training and evaluation the
`pricing_*` assets run).

    uv run python benchmarks/bench_pricing.py --home <a synthetic home> [--policy-rows 5000]

Reads `marts.fct_daily_sales` and `marts.dim_products` of a home materialized from the
generator, and its ground truth (`landing/ground_truth.json`). Prints:
- training set size and windows, training time, held-out units WAPE vs the recent profile;
- estimated vs true elasticity per category (for a regular-price move: own slope minus the
  competitor slope; the truth is e - cross elasticity), mean absolute error, correlation;
- the uplift table: true margin and revenue of the recommended prices, today's prices, list
  prices, the simple policies (every price up as far as the guardrails allow, matched to the
  competitor) and the true optimum inside the same guardrails, overall; the share of the
  achievable uplift captured; per category margin change vs today's prices; guardrail
  violations; and the gate's verdict.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from retail_assets.models.lifecycle.gate import decide
from retail_assets.models.pricing import family as pricing
from retail_assets.models.pricing.family import PricingFamily, elasticity_table
from retail_assets.models.pricing.truth import TrueResponse, compare
from retail_assets.warehouse import WarehouseResource


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--policy-rows", type=int, default=pricing.POLICY_ROWS)
    args = parser.parse_args()
    pricing.POLICY_ROWS = args.policy_rows
    warehouse = WarehouseResource(path=str(args.home / "warehouse.duckdb"))
    truth_doc = json.loads((args.home / "landing" / "ground_truth.json").read_text())
    family = PricingFamily(truth=lambda: truth_doc)
    started = time.perf_counter()
    training_set = family.build_training_set(
        {
            "marts/fct_daily_sales": warehouse.read_table("marts", "fct_daily_sales"),
            "marts/dim_products": warehouse.read_table("marts", "dim_products"),
        }
    )
    built = time.perf_counter() - started
    sizes = {s: training_set.split(s).height for s in ("train", "validation", "test")}
    print(f"home {args.home}: training set {sizes} built in {built:.1f} s; {training_set.windows}")
    started = time.perf_counter()
    model = family.train(training_set)
    trained = time.perf_counter() - started
    test = training_set.split("test")
    started = time.perf_counter()
    evaluation = family.evaluate(training_set, {"challenger": family.predict(model, test)}, model)
    evaluated = time.perf_counter() - started
    overall = evaluation.overall
    mine = overall["challenger"]
    print(
        f"trained in {trained:.1f} s ({model.boosters['units'].num_trees()} trees on the "
        f"elasticity offset); evaluated in {evaluated:.1f} s; held-out units WAPE "
        f"{mine['wape']:.3f} vs recent profile {overall['recent_profile']['wape']:.3f}"
    )

    truth = TrueResponse.from_ground_truth(truth_doc)
    table = pl.DataFrame(elasticity_table(model, truth))
    error = (table["estimated"] - table["true"]).abs()
    print("\n| category | estimated | true | rows |\n| --- | ---: | ---: | ---: |")
    for row in table.iter_rows(named=True):
        print(
            f"| {row['category']} | {row['estimated']:.2f} | {row['true']:.2f} | {row['rows']:,} |"
        )
    print(
        f"elasticity mean absolute error {error.mean():.2f}, correlation "
        f"{np.corrcoef(table['estimated'], table['true'])[0, 1]:.2f} ({table.height} categories)"
    )

    # The uplift table: every policy's true units, revenue and margin on the same rows.
    sample = pricing.policy_rows(test, pricing.POLICY_ROWS, sold_only=True)
    recs = family.price(model.outputs, sample)
    ctxs = pricing.contexts(sample)
    from retail_assets.models.pricing.guardrails import decide as rule
    from retail_assets.models.pricing.guardrails import feasible_range

    ranges = [feasible_range(family.rails, c) for c in ctxs]
    rows = sample.with_columns(pl.col("regular_price").alias("unit_price"))
    policies = {
        "today's prices": rows["regular_price"].to_numpy(),
        "list prices": rows["list_price"].to_numpy(),
        "every price up to its guardrail": np.array(
            [rule(family.rails, c, c.current_price * 10).price for c in ctxs]
        ),
        "matched to the competitor": np.array(
            [rule(family.rails, c, c.competitor_price or c.current_price).price for c in ctxs]
        ),
        "recommended": np.array([r.decision.price for r in recs]),
        "true optimum inside the guardrails": truth.optimum(
            rows, np.array([r[0] for r in ranges]), np.array([r[1] for r in ranges])
        ),
    }
    result = compare(rows, policies, truth)
    everything = result.filter(pl.col("category") == "all")
    base = everything.filter(pl.col("policy") == "today's prices")["margin"][0]
    print(
        f"\n{sample.height:,} held-out regular-price days that sold "
        f"({int(sample['units'].sum()):,} units), priced under {family.rails}"
    )
    print("\n| policy | true units | true revenue | true margin | margin vs today |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in everything.iter_rows(named=True):
        print(
            f"| {row['policy']} | {row['units']:,.0f} | {row['revenue']:,.0f} | "
            f"{row['margin']:,.0f} | {row['margin'] / base - 1:+.2%} |"
        )
    print(
        f"share of the achievable uplift over today's prices captured: "
        f"{mine['uplift_captured']:.1%}; guardrail violations: {mine['guardrail_violations']:.0f}"
        f"; prices bound by a rule: {mine['share_bound_by_a_rule']:.1%}"
    )
    changes = sorted(
        (r for r in evaluation.by_segment["category"] if "margin_change" in r),
        key=lambda r: r["margin_change"],
    )
    print(
        "\n| category | units sold | margin vs today | margin vs list |\n| --- | ---: | ---: | ---: |"
    )
    for r in changes:
        print(
            f"| {r['segment']} | {r['support']:,} | {r['margin_change']:+.2%} | "
            f"{r['margin_change_vs_list']:+.2%} |"
        )
    verdict = decide(
        evaluation, family.gate_rules, parity_passed=True, bundle_problems=[], has_champion=False
    )
    print(f"\ngate: {'passed' if verdict.passed else 'refused'} {verdict.reasons}")


if __name__ == "__main__":
    main()
