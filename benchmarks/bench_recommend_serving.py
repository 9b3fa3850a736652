"""Recommendation serving benchmark: POST /v1/recommendations under load, against `mlflow models
serve` on the same registered ranker, and the cold start of a new SKU.

    uv run python benchmarks/bench_recommend_serving.py --home <a materialized home>
                                                        [--duration 20] [--connections 8]

In one run:
1. materializes the recommendation chain and its online tables at --home if it has no
   recommend champion yet (the rest of the platform must be there: e.g. the default home of
   bench_pipeline.py);
2. `mlflow models serve -m models:/recommend/<champion> --env-manager local` loaded with wrk,
   each request one query's candidate feature rows (ranking only: MLflow cannot generate
   candidates);
3. `retail serve` loaded with wrk: POST /v1/recommendations with k=20 for rotating customers
   (nine in ten with history, one in ten unknown with a current SKU), candidate generation,
   features, the ONNX ranker, the business rules and the prediction log included, no cache;
4. the cold start of a new SKU: a copy of an existing product under a new id is landed with
   `retail land products FILE`, the pipeline path that serves it is materialized (catalog
   mart, embeddings, search index, recommendation tables: no ranker retraining) while the app
   runs, and the time from landing until the app recommends the new SKU to a shopper viewing
   its twin is measured (landed with stock: the inventory feed gets its twin's units at the
   latest snapshot, since a SKU without stock is never recommended).
Targets (issue 13): p99 under 15 ms at 8 connections with k=20.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import polars as pl
from bench_serving import serve_mlflow, wait_http
from harness import free_port, run_wrk, start, stop

VENV_BIN = Path(sys.executable).parent
CHAIN = (
    'key:"recommend_training_set" or key:"recommend_model" or key:"recommend_evaluation" or '
    'key:"recommend_onnx" or key:"recommend_promotion" or key:"recommend_online_features"'
)
COLD_START_PATH = (
    'key:"raw/inventory" or key:"raw/products" or key:"staging/stg_products" or key:"marts/dim_products" or '
    'key:"product_embeddings" or key:"product_search_index" or key:"recommend_online_features"'
)


def lua(customers: list[str], skus: list[str]) -> str:
    ids = ",".join(f'"{c}"' for c in customers)
    items = ",".join(f'"{s}"' for s in skus)
    return (
        r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local customers = {"""
        + ids
        + r"""}
local skus = {"""
        + items
        + r"""}
local counter = 0
request = function()
  counter = counter + 1
  local body
  if counter % 10 == 0 then
    body = string.format('{"customer_id": "NEW-%d", "current_sku": "%s", "k": 20}',
      counter, skus[(counter % #skus) + 1])
  else
    body = string.format('{"customer_id": "%s", "session_id": "B-%d", "k": 20}',
      customers[(counter % #customers) + 1], counter)
  end
  return wrk.format(nil, nil, nil, body)
end
"""
    )


def ensure_chain(settings) -> None:
    from retail_assets.artifacts import Artifacts
    from retail_assets.online_features import RECOMMEND_FEATURE_SET
    from retail_assets.runner import materialize_platform

    artifacts = Artifacts.from_settings(settings)
    if (
        artifacts.model("recommend").champion() is None
        or artifacts.features(RECOMMEND_FEATURE_SET).champion() is None
    ):
        print("materializing the recommendation chain ...", flush=True)
        started = time.perf_counter()
        summary = materialize_platform(settings, selection=CHAIN)
        assert summary.success, (summary.failures, summary.failed_checks)
        print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)


def query_rows(settings, customer: str) -> tuple[str, int]:
    """One customer's candidate feature rows as MLflow's dataframe_split body, from the
    published tables as serving loads them."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.models.recommend.online import FEATURES
    from retail_assets.online_features import RECOMMEND_FEATURE_SET
    from serving.features import RecommendFeatures

    store = Artifacts.from_settings(settings).features(RECOMMEND_FEATURE_SET)
    version = store.champion()
    query = RecommendFeatures(version, store.version_dir(version)).candidates.query(customer)
    rows = [[None if v != v else float(v) for v in row] for row in query.features.tolist()]
    return json.dumps({"dataframe_split": {"columns": FEATURES, "data": rows}}), len(rows)


def new_sku_file(settings, folder: Path) -> tuple[Path, str, str]:
    """The landed catalog plus a copy of one product under a new id (its twin)."""
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.warehouse import WarehouseResource

    products = LandingZone(settings.landing_dir).read("products")
    twin = products.sort("sku")["sku"][len(products) // 2]
    new = f"SKU-NEW-{int(time.time())}"
    # On sale from the catalog's as-of day (the data's last day): a SKU launching later is
    # not on sale yet, so neither searchable nor recommendable.
    as_of = (
        WarehouseResource(path=str(settings.warehouse_path))
        .read_table("marts", "dim_products")["as_of_date"]
        .max()
    )
    row = products.filter(pl.col("sku") == twin).with_columns(
        pl.lit(new).alias("sku"),
        (pl.col("title") + pl.lit(" (new edition)")).alias("title"),
        pl.lit(as_of).cast(products["launch_date"].dtype).alias("launch_date"),
    )
    path = folder / "products_with_new_sku.parquet"
    pl.concat([products, row]).write_parquet(path)
    return path, new, twin


def stocked_file(settings, folder: Path, new: str, twin: str) -> Path:
    """The landed inventory plus the new SKU at the latest snapshot, stocked like its twin
    (a SKU without stock is rightly never recommended: the out_of_stock rule)."""
    from retail_assets.sources.landing_zone import LandingZone

    inventory = LandingZone(settings.landing_dir).read("inventory")
    latest = inventory.filter(pl.col("snapshot_date") == pl.col("snapshot_date").max())
    rows = latest.filter(pl.col("sku") == twin).with_columns(pl.lit(new).alias("sku"))
    path = folder / "inventory_with_new_sku.parquet"
    pl.concat([inventory, rows]).write_parquet(path)
    return path


def cold_start(settings, port: int, env: dict) -> dict:
    from retail_assets.runner import materialize_platform

    work = settings.home / "bench-cold-start"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    path, new, twin = new_sku_file(settings, work)
    stock = stocked_file(settings, work, new, twin)
    body = {"current_sku": twin, "k": 100, "max_per_category": 100}
    url = f"http://127.0.0.1:{port}/v1/recommendations"
    before = httpx.post(url, json=body, timeout=30).json()
    assert new not in [i["sku"] for i in before["items"]]
    started = time.perf_counter()
    for feed, file in (("products", path), ("inventory", stock)):
        subprocess.run(
            [str(VENV_BIN / "retail"), "land", feed, str(file)],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    landed = time.perf_counter()
    summary = materialize_platform(settings, selection=COLD_START_PATH)
    assert summary.success, (summary.failures, summary.failed_checks)
    published = time.perf_counter()
    removed_by = None
    while True:
        answer = httpx.post(url, json=body, timeout=30).json()
        hit = next((i for i in answer["items"] if i["sku"] == new), None)
        removed_by = next((r["rule"] for r in answer["rules_applied"] if r["sku"] == new), None)
        if hit is not None or time.perf_counter() - published > 120:
            break
        time.sleep(0.2)
    served = time.perf_counter()
    return {
        "new_sku": new,
        "twin": twin,
        "land_s": landed - started,
        "pipeline_s": published - landed,
        "serving_pickup_s": served - published,
        "total_s": served - started,
        "recommended": hit is not None,
        "rank": hit["rank"] if hit else None,
        "source": hit["source"] if hit else None,
        "removed_by": removed_by,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--skip-cold-start", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    os.environ["RETAIL_HOME"] = str(args.home)
    from retail_assets.models.recommend import candidates as C
    from retail_assets.settings import get_settings
    from retail_assets.warehouse import WarehouseResource

    settings = get_settings()
    ensure_chain(settings)
    warehouse = WarehouseResource(path=str(settings.warehouse_path))
    events = C.engagements(warehouse.read_table("raw", "clickstream"))
    customers = events.drop_nulls("customer_id")["customer_id"].unique().sort().to_list()
    skus = warehouse.read_table("marts", "dim_products")["sku"].sort().to_list()
    busiest = (
        events.drop_nulls("customer_id").group_by("customer_id").len().sort("len")["customer_id"]
    )
    body, rows = query_rows(settings, busiest[len(busiest) * 9 // 10])
    print(
        f"home {args.home}: {len(customers):,} customers with history, {len(skus):,} SKUs; "
        f"wrk -t2 -c{args.connections} -d{args.duration}s",
        flush=True,
    )
    results = {}
    from retail_assets.artifacts import Artifacts

    ranker = Artifacts.from_settings(settings).model("recommend").champion()
    results[f"mlflow models serve (ranking {rows} given candidate rows)"] = serve_mlflow(
        settings, "recommend", ranker, body, args.duration, args.connections
    )
    port = free_port()
    env = dict(os.environ)  # serving polls at its default interval (5 s)
    process = start(
        [str(VENV_BIN / "retail"), "serve", "--port", str(port), "--log-level", "warning"],
        env,
        settings.home / "logs" / "bench-recommend-serve.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready")
        url = f"http://127.0.0.1:{port}/v1/recommendations"
        probe = httpx.post(url, json={"customer_id": customers[0], "k": 20}).json()
        print(f"probe: {len(probe['items'])} items from {probe['candidates']} candidates")
        results["retail serve POST /v1/recommendations (k=20, candidates included)"] = run_wrk(
            url, lua(customers[:5000], skus), args.duration, args.connections
        )
        cold = None if args.skip_cold_start else cold_start(settings, port, env)
    finally:
        stop(process)
    print(f"\n| {'server':<72} | req/s | p50 ms | p99 ms | non-2xx |")
    print(f"| {'-' * 72} | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(
            f"| {name:<72} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['non_2xx']} |"
        )
    ours = results["retail serve POST /v1/recommendations (k=20, candidates included)"]
    print(f"\np99 target < 15 ms at {args.connections} connections: {ours['p99_ms']:.2f} ms")
    if cold:
        print(
            f"cold start of {cold['new_sku']} (twin {cold['twin']}): landed in "
            f"{cold['land_s']:.1f} s, catalog mart + embeddings + index + recommendation tables "
            f"in {cold['pipeline_s']:.1f} s, picked up by serving in "
            f"{cold['serving_pickup_s']:.1f} s: recommendable {cold['total_s']:.1f} s after "
            f"landing (rank {cold['rank']} for a shopper viewing its twin, source "
            f"{cold['source']}; no ranker retraining; removed by rule: {cold['removed_by']})"
        )


if __name__ == "__main__":
    main()
