"""Model benchmarks: training time, LightGBM vs ONNX latency, and test-window quality against
the baselines, on synthetic data at the given scale.

    uv run python benchmarks/bench_models.py --scale default [--home /tmp/retail-bench-default]

The warehouse at --home is built first if it has no marts (generate + raw + dbt, ~2 min at
default). Targets (issue 3): demand WAPE at least 15 % below seasonal naive on the synthetic
test window. Real-data benchmarks: benchmarks/bench_walmart.py and bench_creditcard.py.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def ensure_warehouse(home: Path, scale: str) -> Path:
    os.environ["RETAIL_HOME"] = str(home)
    os.environ["RETAIL_SCALE"] = scale
    os.environ.pop("DAGSTER_HOME", None)
    from retail_assets.settings import get_settings
    from retail_assets.warehouse import WarehouseResource

    settings = get_settings()
    warehouse = WarehouseResource(path=str(settings.warehouse_path))
    if not warehouse.table_exists("marts", "demand_features"):
        from retail_assets.runner import materialize_platform
        from retail_assets.sources.landing_zone import LandingZone
        from retail_assets.sources.synthetic_landing import land_synthetic_feeds

        settings.ensure_dirs()
        land_synthetic_feeds(LandingZone(settings.landing_dir), scale=scale, seed=settings.seed)
        summary = materialize_platform(
            settings, selection="group:raw or group:staging or group:intermediate or group:marts"
        )
        assert summary.success, summary.failures
    return settings.warehouse_path


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


def latency(fn, repeats: int) -> tuple[float, float]:
    for _ in range(min(20, repeats)):
        fn()
    samples = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        fn()
        samples[i] = time.perf_counter() - started
    return float(np.percentile(samples, 50) * 1e6), float(np.percentile(samples, 99) * 1e6)


def bench_family(family, sources: dict) -> dict:
    from retail_assets.models.lifecycle.onnx_export import INPUT_NAME, parity, session

    training_set, build_s = timed(family.build_training_set, sources)
    model, train_s = timed(family.train, training_set)
    test = training_set.split("test")
    predictions = {"challenger": family.predict(model, test)}
    evaluation, eval_s = timed(family.evaluate, training_set, predictions, model)
    onnx_model, export_s = timed(family.to_onnx, model)
    features = training_set.features(test)
    diffs = parity(
        onnx_model,
        model.boosters,
        features,
        model.sorted_output_groups,
        getattr(model, "interval_calibration", None),
    )
    sess = session(onnx_model)
    one = features[:1]
    batch = (
        features[:1000] if len(features) >= 1000 else np.resize(features, (1000, features.shape[1]))
    )
    boosters = list(model.boosters.values())
    results = {
        "rows": {s: training_set.split(s).height for s in ("train", "validation", "test")},
        "seconds": {"build": build_s, "train": train_s, "evaluate": eval_s, "export": export_s},
        "parity": max(diffs.values()),
        "latency_us": {
            "lightgbm_1": latency(lambda: [b.predict(one) for b in boosters], 300),
            "onnx_1": latency(lambda: sess.run(None, {INPUT_NAME: one}), 3000),
            "lightgbm_1000": latency(lambda: [b.predict(batch) for b in boosters], 30),
            "onnx_1000": latency(lambda: sess.run(None, {INPUT_NAME: batch}), 100),
        },
        "overall": evaluation.overall,
        "outputs": len(boosters),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="default")
    parser.add_argument(
        "--home", default=None, help="RETAIL_HOME to (re)use; a temp dir by default"
    )
    args = parser.parse_args()
    home = Path(args.home or tempfile.mkdtemp(prefix=f"retail-bench-{args.scale}-"))
    path = ensure_warehouse(home, args.scale)

    from retail_assets.models.demand import demand_family
    from retail_assets.models.fraud import fraud_family
    from retail_assets.warehouse import WarehouseResource

    warehouse = WarehouseResource(path=str(path))
    print(f"scale={args.scale} warehouse={path}")
    for family in (demand_family, fraud_family):
        sources = {"/".join(k): warehouse.read_table(*k) for k in family.source_assets}
        r = bench_family(family, sources)
        print(f"\n== {family.name} ({r['outputs']} booster(s)); rows {r['rows']}")
        s = r["seconds"]
        print(
            f"time: training set {s['build']:.1f}s, train {s['train']:.1f}s, "
            f"evaluate {s['evaluate']:.1f}s, ONNX export {s['export']:.2f}s; parity max|diff| {r['parity']:.2e}"
        )
        lat = r["latency_us"]
        print(f"{'latency (µs)':<28}{'p50':>12}{'p99':>12}")
        for key, label in (
            ("lightgbm_1", "LightGBM, 1 row"),
            ("onnx_1", "ONNX Runtime, 1 row"),
            ("lightgbm_1000", "LightGBM, 1000 rows"),
            ("onnx_1000", "ONNX Runtime, 1000 rows"),
        ):
            print(f"{label:<28}{lat[key][0]:>12,.1f}{lat[key][1]:>12,.1f}")
        print(
            f"single-row speed-up ONNX vs LightGBM: {lat['lightgbm_1'][0] / lat['onnx_1'][0]:.0f}x; "
            f"1000-row: {lat['lightgbm_1000'][0] / lat['onnx_1000'][0]:.1f}x"
        )
        metrics = sorted({m for v in r["overall"].values() for m in v if m not in ("n", "support")})
        shown = [
            m
            for m in metrics
            if m
            in {
                "wape",
                "mase",
                "bias",
                "coverage_p10_p90",
                "roc_auc",
                "pr_auc",
                "recall_at_1pct_fpr",
                "precision_at_threshold",
                "recall_at_threshold",
            }
        ]
        print(f"{'predictor':<22}" + "".join(f"{m:>24}" for m in shown))
        for predictor, values in r["overall"].items():
            print(
                f"{predictor:<22}" + "".join(f"{values.get(m, float('nan')):>24.4f}" for m in shown)
            )
        if family.name == "demand":
            challenger = r["overall"]["challenger"]["wape"]
            naive = r["overall"]["seasonal_naive"]["wape"]
            gain = 1 - challenger / naive
            verdict = "PASS" if gain >= 0.15 else "FAIL"
            print(f"WAPE vs seasonal naive: {gain:.1%} lower ({verdict}, target >= 15%)")


if __name__ == "__main__":
    main()
