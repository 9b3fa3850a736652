"""Recommendations on a held-out later window: the LambdaRank ranker against its baselines.

    uv run python benchmarks/bench_recommend.py --home /tmp/retail-bench-default

`--home` is a platform home materialized at some scale (its warehouse is read: the raw
clickstream, products and customers). The split is EVAL_DAYS before the last clickstream
event: candidates come from engagements before it, relevance from each known customer's
clicks, adds to cart and purchases after it (recommend/evaluate.py). Printed for the ranker
(trained on weekly origins before the split, recommend/train.py) and the baselines
(popularity in the customer's segment x region; co-occurrence with the customer's history
alone; content similarity of the product embeddings (the champion search index) alone; the
customer's own history, then segment popularity): NDCG@10, recall@20, MRR, coverage, new-item share, overall, per segment and for
returning vs new customers, with the seconds each took, and the ranker's training time; then
the ranker's lists after the business rules (discontinued, out of stock at the latest
inventory snapshot, at most MAX_PER_CATEGORY per category) and how often a rule changed a
list. On a synthetic home, each recommender's top 10 is also scored against the generator's
truth: the click model's expected clicks per test customer (`Shoppers.expected_clicks`).
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from retail_assets.artifacts import Artifacts
from retail_assets.models.recommend import candidates as C
from retail_assets.models.recommend.evaluate import EVAL_DAYS, METRICS, evaluate, targets
from retail_assets.models.recommend.features import candidate_features, content_as_of
from retail_assets.models.recommend.rules import MAX_PER_CATEGORY, apply_rules
from retail_assets.models.recommend.train import rank, train_ranker
from retail_assets.search.index import LoadedIndex
from retail_assets.sources.synthetic.config import GeneratorConfig
from retail_assets.sources.synthetic.generate import shoppers
from retail_assets.warehouse import WarehouseResource

K = 20


def generator_shoppers(home: Path):
    """The generator's shoppers of a synthetic home (None for landed real data): the ground
    truth of what each test customer would click in a list (`Shoppers.expected_clicks`)."""
    truth = home / "landing" / "ground_truth.json"
    if not truth.exists():
        return None
    config = json.loads(truth.read_text())["config"]
    return shoppers(
        GeneratorConfig(
            scale=config["scale"],
            seed=config["seed"],
            end_date=date.fromisoformat(config["end_date"]),
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    warehouse = WarehouseResource(path=str(args.home / "warehouse.duckdb"))
    clicks = warehouse.read_table("raw", "clickstream")
    products = warehouse.read_table("marts", "dim_products")
    customers = warehouse.read_table("marts", "dim_customers")
    index = Artifacts(
        bundles_dir=args.home / "bundles",
        online_features_dir=args.home / "online_features",
        search_dir=args.home / "search",
        assistant_dir=args.home / "assistant",
        decision_log_path=args.home / "decisions.jsonl",
    ).search_index()
    started = time.perf_counter()
    content = C.content_neighbours(LoadedIndex(index.version_dir(index.champion())))
    content_seconds = time.perf_counter() - started
    events = C.engagements(clicks)
    at = events["ts"].max() - timedelta(days=EVAL_DAYS)
    relevant = targets(events, at)
    who = relevant.select("customer_id").unique()
    returning = set(events.filter(pl.col("ts") < at)["customer_id"].drop_nulls().unique().to_list())
    print(
        f"home {args.home}: {events.height:,} engagements, split {at:%Y-%m-%d %H:%M}, "
        f"{who.height:,} customers with engagements in the next {EVAL_DAYS} days "
        f"({len(returning & set(who['customer_id'].to_list())):,} returning), "
        f"catalog {products.height:,}"
    )
    results = {}
    started = time.perf_counter()
    popular = C.popularity(events, customers, at)
    results["popularity (segment x region)"] = (
        C.recommend_popular(popular, customers, who, K),
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    pairs = C.cooccurrence(events, at)
    seen = C.history(events, at)
    results["co-occurrence alone"] = (
        C.recommend_related(pairs, seen, who, K),
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    neighbours = content_as_of(content, products, at)
    results["content similarity alone"] = (
        C.recommend_related(neighbours, seen, who, K),
        time.perf_counter() - started + content_seconds,
    )
    started = time.perf_counter()
    results["history, then segment popularity"] = (
        C.recommend_history_then_popular(seen, popular, customers, who, K),
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    booster, info = train_ranker(events, customers, products, at, content=content)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    frame = candidate_features(events, customers, products, who, at, content)
    ceiling = frame.join(relevant, on=["customer_id", "sku"]).height / max(relevant.height, 1)
    results["LambdaRank over the candidate union"] = (
        rank(booster, frame, K),
        time.perf_counter() - started,
    )
    started = time.perf_counter()
    inventory = warehouse.read_table("raw", "inventory")
    shown, removed = apply_rules(
        rank(booster, frame, 10_000).select("customer_id", "sku", "rank"),
        products,
        at.date(),
        K,
        inventory=inventory,
    )
    results[f"LambdaRank + business rules (<= {MAX_PER_CATEGORY} per category)"] = (
        shown,
        time.perf_counter() - started,
    )
    changed = removed["customer_id"].n_unique() / max(who.height, 1)
    by_rule = {rule: n for rule, n in removed.group_by("rule").len().iter_rows()}
    print(
        f"business rules changed {changed:.1%} of the lists (items removed from above the last "
        f"one shown: {by_rule}); inventory snapshots: {inventory.height:,} rows"
    )
    print(
        f"ranker: trained in {train_seconds:.1f} s on {info['train_rows']:,} candidate rows "
        f"({info['train_queries']:,} queries, {len(info['origins'])} weekly origins), "
        f"validation NDCG@10 {info['validation_ndcg_at_10']:.4f} with "
        f"{info['trees']} trees; the candidate union holds {ceiling:.1%} of the test "
        f"window's relevant items (the ceiling of recall)"
    )
    people = generator_shoppers(args.home)
    header = (
        "| recommender | " + " | ".join(METRICS) + " | coverage | new-item share | "
        "true expected clicks in top 10 | seconds |"
    )
    print("\n" + header + "\n" + "| --- " * (len(METRICS) + 5) + "|")
    reports = {}
    for name, (recommended, seconds) in results.items():
        report = evaluate(recommended, relevant, customers, returning, products, at)
        reports[name] = report
        values = " | ".join(f"{report['overall'][m]:.4f}" for m in METRICS)
        truth = "-"
        if people is not None:
            lists = (
                recommended.join(who, on="customer_id")
                .filter(pl.col("rank") <= 10)
                .sort("customer_id", "rank")
                .group_by("customer_id", maintain_order=True)
                .agg(pl.col("sku").alias("skus"))
            )
            truth = f"{people.expected_clicks(lists)['expected_clicks'].sum() / who.height:.4f}"
        print(
            f"| {name} | {values} | {report['coverage']:.3f} | "
            f"{report['new_item_share']:.3f} | {truth} | {seconds:.1f} |"
        )
    for name, report in reports.items():
        print(f"\n{name}:")
        groups = {
            **{f"segment {s}": v for s, v in report["by_segment"].items()},
            "returning": report["returning"],
            "new customers": report["new_customers"],
        }
        for group, summary in groups.items():
            values = ", ".join(f"{m} {summary[m]:.4f}" for m in METRICS if summary[m] is not None)
            print(f"  {group} ({summary['queries']} queries): {values}")


if __name__ == "__main__":
    main()
