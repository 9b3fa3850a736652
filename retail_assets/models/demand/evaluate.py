"""Evaluation of demand forecasts on the test window (targets in (E-H, E], origin E-H, H the
grain's longest horizon).

Predictors: "challenger", "champion" (when given) and four baselines computed here from data
known at the test origin only (their inputs are history features of the test rows):

* "seasonal_naive": daily, y(t - 7 * ceil(h / 7)), the same weekday of the last week observed
  at the origin; weekly, the last observed week;
* "last_year": the same period a year earlier (daily: y(t - 364), the same weekday 52 weeks
  earlier; weekly: y(t - 52 weeks));
* "profile": the store-SKU's mean at the target's point of the season (daily: its weekday)
  over the last 8 weeks, among periods with the target's planned promotion status (a store x
  weekday x promotion profile; `features.py`);
* "last_year_scaled": the same week last year scaled by the year-on-year level.

The last two are the strongest simple forecasts on daily retail data with weekly patterns and
promotions; the gate requires beating the best of the four. A baseline value is missing when
its data is not there (new SKU, gap); it then falls back (the profile's own chain: any
promotion status, the 28-day mean; last-year baselines: the profile) and to 0 when the series
has no history at all. The counts are reported in the notes.

Metrics (`metrics.py`): WAPE (primary, pooled sum|e| / sum y, point forecast = the "mean"
output), MASE (MAE / pooled in-sample mean |y(d) - y(d-7)| over the training window; per
segment with that segment's own pooled scale), bias (sum f / sum y - 1), and for predictors
with quantiles p10-p90 coverage, interval width and pinball losses.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from retail_assets.models.demand import metrics as M
from retail_assets.models.demand.baselines import with_fallback
from retail_assets.models.demand.features import closed_to_zero
from retail_assets.models.demand.grain import DAILY, Grain, grain_named
from retail_assets.models.lifecycle.spec import Evaluation, TrainedModel, TrainingSet

BASELINES = ("seasonal_naive", "last_year", "profile", "last_year_scaled")
PRIMARY_METRIC = "wape"


def baseline_sources(grain: Grain = DAILY) -> dict[str, tuple[str, ...]]:
    """The feature columns each baseline reads, in fallback order (the served baseline model,
    `baseline_model.py`, reads the very same columns)."""
    medium = grain.medium_mean
    return {
        "seasonal_naive": (grain.seasonal_naive_column, medium),
        "last_year": (grain.year_lag, medium),
        "profile": ("baseline_profile", medium),
        "last_year_scaled": ("baseline_last_year_scaled", "baseline_profile", medium),
    }


def baseline_forecasts(
    frame: pl.DataFrame, grain: Grain = DAILY
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Baseline point forecasts for the rows of `frame` and notes on their fallbacks."""

    def col(name: str) -> np.ndarray:
        return frame[name].cast(pl.Float64).fill_null(np.nan).to_numpy()

    is_open = col("is_open") if "is_open" in frame.columns else None
    out, notes = {}, []
    for name, (source, *fallbacks) in baseline_sources(grain).items():
        labels = tuple(f"{c} at origin" if c == grain.medium_mean else c for c in fallbacks)
        values, counts = with_fallback(
            col(source), *(col(c) for c in fallbacks), names=(source, *labels)
        )
        out[name] = closed_to_zero({"mean": values}, is_open)["mean"]
        missing = frame.height - counts[source]
        if missing:
            used = ", ".join(f"{counts[label]} use {label}" for label in labels)
            notes.append(
                f"baseline {name}: {missing} of {frame.height} test rows lack {source} "
                f"({used}, {counts['zero']} have no history and forecast 0)"
            )
    return out, notes


def training_grain(training_set: TrainingSet) -> Grain:
    return grain_named(training_set.info.get("grain", DAILY.name))


def _point(outputs: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(outputs["mean"] if "mean" in outputs else outputs["p50"], dtype=np.float64)


def _metrics(y: np.ndarray, outputs: dict[str, np.ndarray], scale: float | None) -> dict:
    values = {**M.point_metrics(y, _point(outputs), scale), **M.quantile_metrics(y, outputs)}
    return {k: float(v) for k, v in values.items()}


def _disparity(rows: list[dict[str, Any]], predictor: str, min_support: float) -> dict[str, Any]:
    gated = [
        r
        for r in rows
        if r["predictor"] == predictor and r["support"] >= min_support and np.isfinite(r["wape"])
    ]
    if not gated:
        return {"segments_compared": 0}
    worst = max(gated, key=lambda r: r["wape"])
    best = min(gated, key=lambda r: r["wape"])
    return {
        "segments_compared": len(gated),
        "wape_max_min_ratio": worst["wape"] / best["wape"] if best["wape"] > 0 else float("inf"),
        "worst_segment": worst["segment"],
        "worst_wape": worst["wape"],
        "best_segment": best["segment"],
        "best_wape": best["wape"],
    }


def feature_importance(model: TrainedModel) -> list[dict[str, Any]]:
    """Gain and split importance of the mean booster (and gain share), sorted by gain."""
    boosters = [leaf.boosters["mean"] for leaf in model.leaves()]  # a routed model: summed
    gain = sum(b.feature_importance("gain") for b in boosters)
    split = sum(b.feature_importance("split") for b in boosters)
    total = float(gain.sum()) or 1.0
    rows = [
        {"feature": f, "gain": float(g), "split": int(s), "gain_share": float(g) / total}
        for f, g, s in zip(model.feature_columns, gain, split, strict=True)
    ]
    return sorted(rows, key=lambda r: -r["gain"])


def explanations(
    model: TrainedModel,
    frame: pl.DataFrame,
    x: np.ndarray,
    prediction: np.ndarray,
    n: int = 20,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """SHAP-style contributions (LightGBM pred_contrib) of the mean booster for a fixed sample
    of test rows: top 3 features by |contribution|, in log space (the Tweedie link), so
    exp(base + sum of contributions) is the forecast."""
    if frame.height == 0:
        return []
    rows = np.sort(np.random.default_rng(seed).choice(frame.height, min(n, frame.height), False))
    contrib = np.zeros((len(rows), x.shape[1] + 1))
    part_of_row = model.part_index(x[rows])  # a routed model: each row's own part explains it
    for i, part in enumerate(model.leaves()):
        mine = part_of_row == i
        if mine.any():
            booster: lgb.Booster = part.boosters["mean"]
            contrib[mine] = booster.predict(x[rows][mine], pred_contrib=True)
    out = []
    for i, row in enumerate(rows):
        values = contrib[i, :-1]
        top = np.argsort(-np.abs(values), kind="stable")[:3]
        record = frame.row(int(row), named=True)
        out.append(
            {
                "store_id": record["store_id"],
                "sku": record["sku"],
                "origin_date": str(record["origin_date"]),
                "target_date": str(record["target_date"]),
                "horizon": int(record["horizon"]),
                "prediction": float(prediction[row]),
                "actual": float(record["units_sold"]),
                "base_value_log": float(contrib[i, -1]),
                "top_features": [
                    {
                        "feature": model.feature_columns[j],
                        "value": None if np.isnan(x[row, j]) else float(x[row, j]),
                        "contribution_log": float(values[j]),
                    }
                    for j in top
                ],
            }
        )
    return out


def evaluate_demand(
    training_set: TrainingSet,
    predictions: dict[str, dict[str, np.ndarray]],
    model: TrainedModel,
    *,
    min_segment_support: float = 200,
    n_explanations: int = 20,
) -> Evaluation:
    test = training_set.split("test")
    if "challenger" not in predictions:
        raise ValueError("predictions must include 'challenger'")
    for predictor, outputs in predictions.items():
        if predictor in BASELINES:
            raise ValueError(f"predictor name {predictor!r} is reserved for a baseline")
        for output, values in outputs.items():
            if len(values) != test.height:
                raise ValueError(
                    f"predictions[{predictor!r}][{output!r}] has {len(values)} rows, the test "
                    f"split has {test.height}"
                )
    y = test[training_set.target_column].cast(pl.Float64).to_numpy()
    grain = training_grain(training_set)
    baselines, notes = baseline_forecasts(test, grain)
    predictors: dict[str, dict[str, np.ndarray]] = {
        name: {k: np.asarray(v, dtype=np.float64) for k, v in outputs.items()}
        for name, outputs in predictions.items()
    }
    predictors.update({name: {"mean": values} for name, values in baselines.items()})

    scales = training_set.info["mase_scale"]
    overall = {
        name: _metrics(y, outputs, scales["overall"]) for name, outputs in predictors.items()
    }
    for name in overall:
        overall[name]["n"] = float(test.height)
        overall[name]["support"] = float(y.sum())

    by_segment: dict[str, list[dict[str, Any]]] = {}
    for column in training_set.segment_columns:
        labels = test[column].cast(pl.String).fill_null("(unknown)").to_numpy()
        rows = []
        for segment in sorted(set(labels.tolist())):
            mask = labels == segment
            scale = scales.get(column, {}).get(segment)
            for name, outputs in predictors.items():
                sliced = {k: v[mask] for k, v in outputs.items()}
                rows.append(
                    {
                        "segment": segment,
                        "predictor": name,
                        "n": int(mask.sum()),
                        "support": float(y[mask].sum()),
                        **_metrics(y[mask], sliced, scale),
                    }
                )
        by_segment[column] = rows

    horizon = test["horizon"].to_numpy()
    size = grain.horizon_bucket
    bucket = (horizon - 1) // size + 1

    def label(b: int) -> str:
        first, last = size * (b - 1) + 1, size * b
        return f"h{first}" if first == last else f"h{first}-{last}"

    by_week = {
        name: {
            label(b): M.wape(y[bucket == b], _point(outputs)[bucket == b])
            for b in sorted(set(bucket.tolist()))
        }
        for name, outputs in predictors.items()
    }
    bias_audit: dict[str, Any] = {
        "metric": "wape",
        "min_segment_support": min_segment_support,
        **{
            column: {
                name: _disparity(rows, name, min_segment_support)
                for name in ("challenger", "champion", "seasonal_naive")
                if name in predictors
            }
            for column, rows in by_segment.items()
        },
        "overall_bias": {name: overall[name]["bias"] for name in predictors},
        "wape_by_horizon_week": by_week,
    }

    x = training_set.features(test)
    stockouts = int(test["stockout"].fill_null(False).sum())
    notes += [
        "WAPE uses the 'mean' output as the point forecast; wape_p50 scores the p50 output.",
        f"MASE scale: pooled in-sample mean |y(t) - y(t-{grain.scale_lag})| ({grain.name}s) "
        f"over the training target window "
        f"({training_set.windows['train']['start']}..{training_set.windows['train']['end']}): "
        f"{scales['overall']:.4g} units overall; per segment the segment's own pooled scale.",
        f"{stockouts} of {test.height} test rows had a stockout: their actual is censored demand.",
        "Explanations are LightGBM pred_contrib of the mean booster in log space.",
    ]
    return Evaluation(
        primary_metric=PRIMARY_METRIC,
        higher_is_better={
            k: v for k, v in M.HIGHER_IS_BETTER.items() if any(k in m for m in overall.values())
        },
        overall=overall,
        by_segment=by_segment,
        bias_audit=bias_audit,
        feature_importance=feature_importance(model),
        explanations=explanations(
            model, test, x, _point(predictors["challenger"]), n=n_explanations
        ),
        test_window={
            "origin": training_set.windows["test"]["origin"],
            "start": training_set.windows["test"]["start"],
            "end": training_set.windows["test"]["end"],
        },
        notes=notes,
    )


def rescore_challenger(
    training_set: TrainingSet, evaluation: Evaluation, outputs: dict[str, np.ndarray]
) -> Evaluation:
    """The same evaluation with the challenger's metrics recomputed for other test-window
    outputs (e.g. a baseline about to be served as the champion); every other predictor's
    metrics, the notes and the window stay as they were."""
    import copy

    test = training_set.split("test")
    y = test[training_set.target_column].cast(pl.Float64).to_numpy()
    scales = training_set.info["mase_scale"]
    rescored = copy.deepcopy(evaluation)
    rescored.overall["challenger"] = {
        **_metrics(y, outputs, scales["overall"]),
        "n": float(test.height),
        "support": float(y.sum()),
    }
    for column, rows in rescored.by_segment.items():
        labels = test[column].cast(pl.String).fill_null("(unknown)").to_numpy()
        for row in rows:
            if row["predictor"] != "challenger":
                continue
            mask = labels == row["segment"]
            sliced = {k: v[mask] for k, v in outputs.items()}
            row.update(_metrics(y[mask], sliced, scales.get(column, {}).get(row["segment"])))
    rescored.feature_importance = []
    rescored.explanations = []
    return rescored
