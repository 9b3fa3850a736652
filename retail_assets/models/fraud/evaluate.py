"""Fraud metrics on plain arrays (y, score, threshold, optional weights): overall, per segment,
false-positive-rate disparity and stratified bootstrap intervals.

Weights let a metric be read at another base rate: a sample that kept every fraud but only a
fraction of the legitimate payments is reweighted with `base_rate_weights` (see there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

METRICS_HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "recall_at_1pct_fpr": True,
    "precision_at_threshold": True,
    "recall_at_threshold": True,
    "f1_at_threshold": True,
    "alert_rate": False,
    "false_positive_rate": False,
    "fpr_gap_between_segments": False,
}
PRIMARY_METRIC = "roc_auc"
NAN = float("nan")
# Metrics are rounded to this many decimals: a perfect ranking can come out of the average-
# precision sum as 0.9999999999999999, and summation noise must not decide a gate comparison.
DECIMALS = 12


def _weights(y: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
    return np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)


def recall_at_fpr(
    y: np.ndarray,
    scores: np.ndarray,
    max_fpr: float = 0.01,
    sample_weight: np.ndarray | None = None,
) -> float:
    """The highest recall of any threshold whose false-positive rate is at most `max_fpr`."""
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return NAN
    fpr, tpr, _ = roc_curve(y, scores, sample_weight=sample_weight, drop_intermediate=False)
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def binary_metrics(
    y: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    sample_weight: np.ndarray | None = None,
    only: tuple[str, ...] | None = None,
) -> dict[str, float]:
    """Ranking metrics (ROC AUC, PR AUC = average precision, recall at 1% FPR) and operating
    metrics when flagging `score >= threshold`. Undefined values are NaN (e.g. AUC without
    both classes); precision with no alert is 0 (flagging nothing catches nothing).
    `only` restricts the (expensive) ranking metrics to those named."""
    y = np.asarray(y, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    w = _weights(y, sample_weight)
    both = y.any() and not y.all()
    flagged = scores >= threshold
    tp = float(w[flagged & y].sum())
    fp = float(w[flagged & ~y].sum())
    pos = float(w[y].sum())
    neg = float(w[~y].sum())
    precision = tp / (tp + fp) if tp + fp > 0 else 0.0
    recall = tp / pos if pos > 0 else NAN
    f1 = (
        2 * precision * recall / (precision + recall)
        if pos > 0 and precision + recall > 0
        else (0.0 if pos > 0 else NAN)
    )
    wanted = set(only) if only is not None else set(METRICS_HIGHER_IS_BETTER)
    values = {
        "roc_auc": float(roc_auc_score(y, scores, sample_weight=sample_weight))
        if both and "roc_auc" in wanted
        else NAN,
        "pr_auc": float(average_precision_score(y, scores, sample_weight=sample_weight))
        if y.any() and "pr_auc" in wanted
        else NAN,
        "recall_at_1pct_fpr": recall_at_fpr(y, scores, 0.01, sample_weight)
        if both and "recall_at_1pct_fpr" in wanted
        else NAN,
        "precision_at_threshold": precision,
        "recall_at_threshold": recall,
        "f1_at_threshold": f1,
        "alert_rate": (tp + fp) / (pos + neg) if pos + neg > 0 else NAN,
        "false_positive_rate": fp / neg if neg > 0 else NAN,
    }
    return {name: round(value, DECIMALS) for name, value in values.items()}


def segment_rows(
    column: str,
    values: np.ndarray,
    y: np.ndarray,
    predictors: Mapping[str, tuple[np.ndarray, float]],
) -> list[dict[str, Any]]:
    """One row per (segment value, predictor): n, support (= frauds) and `binary_metrics`."""
    rows = []
    values = np.asarray(values, dtype=object)
    y = np.asarray(y, dtype=bool)
    for segment in sorted({str(v) for v in values}):
        mask = values.astype(str) == segment
        for name, (scores, threshold) in predictors.items():
            rows.append(
                {
                    "column": column,
                    "segment": segment,
                    "predictor": name,
                    "n": int(mask.sum()),
                    "support": int(y[mask].sum()),
                    **binary_metrics(y[mask], np.asarray(scores)[mask], threshold),
                }
            )
    return rows


def fpr_disparity(
    y: np.ndarray, flagged: np.ndarray, groups: np.ndarray, min_negatives: int = 50
) -> dict[str, Any]:
    """False-positive rate per group at the operating threshold and the spread across groups
    with at least `min_negatives` legitimate payments: max/min ratio (None when the lowest FPR
    is 0), max - min difference, and the worst (highest-FPR) group."""
    y = np.asarray(y, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    groups = np.asarray(groups, dtype=object).astype(str)
    table = []
    for group in sorted({str(g) for g in groups}):
        mask = groups == group
        negatives = int((mask & ~y).sum())
        false_positives = int((mask & ~y & flagged).sum())
        table.append(
            {
                "segment": group,
                "n": int(mask.sum()),
                "negatives": negatives,
                "false_positives": false_positives,
                "false_positive_rate": false_positives / negatives if negatives else NAN,
                "audited": negatives >= min_negatives,
            }
        )
    audited = [row for row in table if row["audited"]]
    result: dict[str, Any] = {
        "groups": table,
        "min_negatives": min_negatives,
        "max_min_ratio": None,
        "max_minus_min": None,
        "worst_segment": None,
        "best_segment": None,
    }
    if len(audited) >= 2:
        worst = max(audited, key=lambda r: r["false_positive_rate"])
        best = min(audited, key=lambda r: r["false_positive_rate"])
        low, high = best["false_positive_rate"], worst["false_positive_rate"]
        result.update(
            {
                "max_min_ratio": high / low if low > 0 else (1.0 if high == 0 else None),
                "max_minus_min": high - low,
                "worst_segment": worst["segment"],
                "best_segment": best["segment"],
            }
        )
    return result


def base_rate_weights(y: np.ndarray, true_rate: float) -> np.ndarray:
    """Weights that make the weighted positive share of `y` equal to `true_rate`.

    Positives keep weight 1; negatives get w with  n_pos / (n_pos + w * n_neg) = true_rate,
    i.e.  w = (n_pos / n_neg) * (1 - true_rate) / true_rate
            = [pi_s / (1 - pi_s)] / [pi_t / (1 - pi_t)]     (pi_s = n_pos / n, pi_t = true_rate)
    the sample's fraud odds over the true odds. A legitimate payment then stands for w of them,
    so weighted precision TP / (TP + w FP) and weighted average precision are what a sample at
    the true base rate would show; recall and ROC AUC do not change (weights are per class)."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not 0 < true_rate < 1:
        raise ValueError(f"true_rate must be in (0, 1), got {true_rate}")
    if n_pos == 0 or n_neg == 0:
        raise ValueError("base-rate weights need both classes")
    w = (n_pos / n_neg) * (1 - true_rate) / true_rate
    return np.where(y, 1.0, w)


def bootstrap_intervals(
    y: np.ndarray,
    predictors: Mapping[str, tuple[np.ndarray, float]],
    n_resamples: int = 1000,
    seed: int = 0,
    stratified: bool = True,
    weight_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    level: float = 0.95,
    metrics: tuple[str, ...] = (
        "roc_auc",
        "pr_auc",
        "precision_at_threshold",
        "recall_at_threshold",
    ),
    pairs: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """Percentile bootstrap intervals of `binary_metrics` over the rows of one test set.

    Resamples are stratified (positives and negatives drawn separately, each with replacement)
    so every resample keeps the test set's class counts; all predictors are scored on the same
    resample, so `pairs` (a, b) also get intervals for the paired difference a - b.
    `weight_fn(y_resampled)` gives sample weights per resample (e.g. base-rate weights)."""
    y = np.asarray(y, dtype=bool)
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    draws: dict[str, dict[str, list[float]]] = {p: {m: [] for m in metrics} for p in predictors}
    for _ in range(n_resamples):
        if stratified:
            idx = np.concatenate(
                [
                    rng.choice(pos, size=len(pos), replace=True),
                    rng.choice(neg, size=len(neg), replace=True),
                ]
            )
        else:
            idx = rng.integers(0, len(y), size=len(y))
        yy = y[idx]
        w = weight_fn(yy) if weight_fn is not None else None
        for name, (scores, threshold) in predictors.items():
            values = binary_metrics(yy, np.asarray(scores)[idx], threshold, w, only=metrics)
            for m in metrics:
                draws[name][m].append(values[m])

    result: dict[str, Any] = {
        "n_resamples": n_resamples,
        "level": level,
        "stratified": stratified,
        "intervals": {
            name: {m: percentile_interval(np.asarray(v), level) for m, v in per_metric.items()}
            for name, per_metric in draws.items()
        },
        "differences": {},
    }
    for a, b in pairs:
        result["differences"][f"{a} - {b}"] = {
            m: percentile_interval(np.asarray(draws[a][m]) - np.asarray(draws[b][m]), level)
            for m in metrics
        }
    return result


def fpr_gap_interval(
    y: np.ndarray,
    flagged: np.ndarray,
    groups_by_column: Mapping[str, np.ndarray],
    min_negatives: int = 50,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile bootstrap interval of the largest false-positive-rate gap (max - min over the
    groups of any column with >= `min_negatives` legitimate payments, as `fpr_disparity`),
    resampling the legitimate payments (the only ones an FPR counts). The gap is a max of
    differences, so its bootstrap leans high: a lower bound above a limit is a real breach."""
    y = np.asarray(y, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    codes = {
        column: np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)[1]
        for column, groups in groups_by_column.items()
    }
    rng = np.random.default_rng(seed)
    neg = np.flatnonzero(~y)
    gaps = []
    for _ in range(n_resamples):
        # Only legitimate payments enter an FPR, so only they are resampled.
        idx = rng.choice(neg, size=len(neg), replace=True)
        false_alert = flagged[idx]
        gap = None
        for code in codes.values():
            c = code[idx]
            negatives = np.bincount(c)
            alerts = np.bincount(c[false_alert], minlength=len(negatives))
            audited = negatives >= min_negatives
            if audited.sum() >= 2:
                rates = alerts[audited] / negatives[audited]
                spread = float(rates.max() - rates.min())
                gap = spread if gap is None else max(gap, spread)
        if gap is not None:
            gaps.append(gap)
    return percentile_interval(np.asarray(gaps, dtype=np.float64), level)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """The central `level` percentile interval of bootstrap draws (NaN draws dropped; NaN
    bounds when none is left)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {"low": NAN, "high": NAN}
    alpha = (1 - level) / 2
    return {
        "low": float(np.quantile(values, alpha)),
        "high": float(np.quantile(values, 1 - alpha)),
    }
