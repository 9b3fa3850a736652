"""LightGBM vs logistic regression on the REAL ULB / Worldline card-fraud sample, with the
fraud family's own training, threshold and metric functions, reported at the true base rate.

    uv run python benchmarks/bench_creditcard.py [--resamples 1000] [--seed 0] [--json out.json]

Data: `retail_assets.sources.real.creditcard.load_creditcard_fraud()` (5,412 real transactions
over two days: all 492 frauds of the full data + 4,920 random legitimate ones). Split by time
(`time_s`): the first 60 % of the timeline's rows train, the next 20 % validate (early stopping,
threshold), the last 20 % test. Rows sharing a `time_s` never straddle a boundary.

Base rate. The sample holds 9.09 % fraud; the full data 0.172 % (`CREDITCARD_TRUE_FRAUD_RATE`).
Recall and ROC AUC do not depend on the class mix, but precision, PR AUC and alert rate do, so
they are also reported REWEIGHTED: positives weigh 1 and every negative weighs

    w = [pi_s / (1 - pi_s)] / [pi_t / (1 - pi_t)]     (pi_s: fraud share of the evaluated rows,
                                                        pi_t: true rate)

which solves n_pos / (n_pos + w * n_neg) = pi_t: the weighted fraud share equals the true rate
(w is the inverse of the odds ratio pi_t-odds / pi_s-odds). Precision becomes TP / (TP + w FP).
The threshold is chosen on validation at a target precision *at the true base rate* (the same
weights on the validation rows), because a threshold tuned to 50 % precision at a 9 % base rate
would give a small fraction of that in production.

Intervals: 95 % percentile bootstrap over the test rows, stratified (frauds and legitimate rows
resampled separately, so every resample keeps the test class counts and hence the same w), both
models scored on the same resamples, so the LightGBM - logistic difference gets a paired interval.
Numbers go to stdout; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl

from retail_assets.models.fraud.evaluate import (
    base_rate_weights,
    binary_metrics,
    bootstrap_intervals,
)
from retail_assets.models.fraud.train import (
    fit_lightgbm_binary,
    fit_logistic_baseline,
    select_threshold,
)
from retail_assets.sources.real.creditcard import (
    CREDITCARD_TRUE_FRAUD_RATE,
    PCA_COLUMNS,
    load_creditcard_fraud,
)

FEATURES = [*(c.lower() for c in PCA_COLUMNS), "amount"]
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
# Negatives were drawn uniformly from the full data: 4,920 of 284,315. The design weight of a
# sampled legitimate transaction is the inverse sampling fraction.
FULL_DATA_LEGIT = 284_807 - 492
SAMPLE_LEGIT = 4_920


def time_split(
    time_s: np.ndarray, fractions: tuple[float, float, float] = SPLIT_FRACTIONS
) -> np.ndarray:
    """'train' / 'validation' / 'test' by position in time; equal times stay in one split."""
    if abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    order = np.sort(time_s)
    n = len(order)
    cut_1 = order[round(fractions[0] * n)]
    cut_2 = order[round((fractions[0] + fractions[1]) * n)]
    return np.where(time_s < cut_1, "train", np.where(time_s < cut_2, "validation", "test"))


def _fmt(value: float, interval: dict[str, float] | None = None, digits: int = 4) -> str:
    text = f"{value:.{digits}f}"
    if interval is not None:
        text += f" [{interval['low']:.{digits}f}, {interval['high']:.{digits}f}]"
    return text


def run(resamples: int, seed: int, target_precision: float) -> dict:
    started = time.perf_counter()
    data = load_creditcard_fraud()
    split = time_split(data["time_s"].to_numpy())
    data = data.with_columns(pl.Series("split", split))
    parts = {name: data.filter(pl.col("split") == name) for name in ("train", "validation", "test")}
    x = {k: v.select(FEATURES).to_numpy().astype(np.float64) for k, v in parts.items()}
    y = {k: v["is_fraud"].to_numpy().astype(bool) for k, v in parts.items()}
    true_rate = CREDITCARD_TRUE_FRAUD_RATE

    fit_started = time.perf_counter()
    lgb_fit = fit_lightgbm_binary(
        x["train"], y["train"], x["validation"], y["validation"], FEATURES
    )
    lgb_seconds = time.perf_counter() - fit_started
    fit_started = time.perf_counter()
    logistic = fit_logistic_baseline(x["train"], y["train"], log_scale=[FEATURES.index("amount")])
    lr_seconds = time.perf_counter() - fit_started

    scorers = {
        "lightgbm": lgb_fit.booster.predict,
        "logistic_regression": lambda m: logistic.predict_proba(m)[:, 1],
    }
    w_valid = base_rate_weights(y["validation"], true_rate)
    predictors = {}
    thresholds = {}
    for name, score in scorers.items():
        choice = select_threshold(
            y["validation"], score(x["validation"]), target_precision, sample_weight=w_valid
        )
        thresholds[name] = choice
        predictors[name] = (score(x["test"]), choice.threshold)

    w_test = base_rate_weights(y["test"], true_rate)
    w_design = np.where(y["test"], 1.0, FULL_DATA_LEGIT / SAMPLE_LEGIT)
    design_pr_auc = {
        name: binary_metrics(y["test"], scores, threshold, w_design)["pr_auc"]
        for name, (scores, threshold) in predictors.items()
    }
    point = {
        name: {
            "sample": binary_metrics(y["test"], scores, threshold),
            "reweighted": binary_metrics(y["test"], scores, threshold, w_test),
        }
        for name, (scores, threshold) in predictors.items()
    }
    pair = (("lightgbm", "logistic_regression"),)
    boot_sample = bootstrap_intervals(
        y["test"], predictors, resamples, seed, metrics=("roc_auc", "pr_auc"), pairs=pair
    )
    boot_weighted = bootstrap_intervals(
        y["test"],
        predictors,
        resamples,
        seed,
        weight_fn=lambda yy: base_rate_weights(yy, true_rate),
        metrics=("pr_auc", "precision_at_threshold", "recall_at_threshold", "alert_rate"),
        pairs=pair,
    )
    return {
        "rows": data.height,
        "frauds": int(data["is_fraud"].sum()),
        "true_rate": true_rate,
        "splits": {
            name: {
                "rows": part.height,
                "frauds": int(part["is_fraud"].sum()),
                "time_s": [float(part["time_s"].min()), float(part["time_s"].max())],
            }
            for name, part in parts.items()
        },
        "negative_weight_test": float(w_test[~y["test"]][0]),
        "design_weight": FULL_DATA_LEGIT / SAMPLE_LEGIT,
        "design_weight_test_fraud_share": float(
            y["test"].sum()
            / (y["test"].sum() + (FULL_DATA_LEGIT / SAMPLE_LEGIT) * (~y["test"]).sum())
        ),
        "design_weight_pr_auc": design_pr_auc,
        "lightgbm_best_iteration": lgb_fit.best_iteration,
        "fit_seconds": {"lightgbm": lgb_seconds, "logistic_regression": lr_seconds},
        "thresholds": {name: c.as_dict() for name, c in thresholds.items()},
        "point": point,
        "bootstrap_sample": boot_sample,
        "bootstrap_reweighted": boot_weighted,
        "seconds": time.perf_counter() - started,
    }


def print_report(result: dict) -> None:
    rows, frauds, true_rate = result["rows"], result["frauds"], result["true_rate"]
    print(
        f"ULB card-fraud sample: {rows:,} real transactions, {frauds} frauds "
        f"({frauds / rows:.2%}); true base rate {true_rate:.4%}"
    )
    print("\nsplit        rows  frauds  fraud share  time_s")
    for name, s in result["splits"].items():
        print(
            f"{name:<10} {s['rows']:>6} {s['frauds']:>7} {s['frauds'] / s['rows']:>11.2%}  "
            f"{s['time_s'][0]:,.0f} - {s['time_s'][1]:,.0f}"
        )
    test = result["splits"]["test"]
    print(
        f"\nnegative weight on test w = {result['negative_weight_test']:.2f}: weighted fraud share "
        f"of the test rows = {true_rate:.4%}"
    )
    design = result["design_weight_pr_auc"]
    print(
        f"(the sampling-design weight 284,315 / 4,920 = {result['design_weight']:.2f} would instead "
        f"keep this window's own estimated rate, {result['design_weight_test_fraud_share']:.4%}; "
        f"PR AUC with it: LightGBM {design['lightgbm']:.4f}, logistic "
        f"{design['logistic_regression']:.4f})"
    )
    for name, t in result["thresholds"].items():
        print(
            f"threshold {name}: {t['threshold']:.4g} ({t['threshold_rule']}, validation precision "
            f"at true rate {t['threshold_precision_validation']:.3f}, recall "
            f"{t['threshold_recall_validation']:.3f})"
        )
    bs, bw = result["bootstrap_sample"], result["bootstrap_reweighted"]
    lines = [
        ("ROC AUC", "sample", "roc_auc", bs),
        (f"PR AUC (test mix, {test['frauds'] / test['rows']:.1%} fraud)", "sample", "pr_auc", bs),
        (f"PR AUC (reweighted, {true_rate:.3%})", "reweighted", "pr_auc", bw),
        ("precision @ threshold (reweighted)", "reweighted", "precision_at_threshold", bw),
        ("recall @ threshold", "reweighted", "recall_at_threshold", bw),
        ("alert rate (reweighted)", "reweighted", "alert_rate", bw),
    ]
    n_test = result["splits"]["test"]["rows"]
    print(
        f"\ntest set: {n_test} rows; 95% stratified bootstrap intervals, "
        f"{bs['n_resamples']} resamples (paired for the difference)\n"
    )
    header = (
        f"{'metric':<36} {'LightGBM':<26} {'logistic regression':<26} {'LightGBM - logistic':<26}"
    )
    print(header)
    print("-" * len(header))
    for label, view, metric, boot in lines:
        digits = 5 if metric == "alert_rate" else 4
        lgb_value = result["point"]["lightgbm"][view][metric]
        lr_value = result["point"]["logistic_regression"][view][metric]
        cells = [
            _fmt(lgb_value, boot["intervals"]["lightgbm"][metric], digits),
            _fmt(lr_value, boot["intervals"]["logistic_regression"][metric], digits),
            _fmt(
                lgb_value - lr_value,
                boot["differences"]["lightgbm - logistic_regression"][metric],
                digits,
            ),
        ]
        print(f"{label:<36} {cells[0]:<26} {cells[1]:<26} {cells[2]:<26}")
    fit = result["fit_seconds"]
    print(
        f"\nfit: LightGBM {fit['lightgbm']:.2f} s ({result['lightgbm_best_iteration']} trees, "
        f"early-stopped on validation log-loss), logistic {fit['logistic_regression']:.2f} s; "
        f"total {result['seconds']:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target-precision", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    result = run(args.resamples, args.seed, args.target_precision)
    print_report(result)
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
