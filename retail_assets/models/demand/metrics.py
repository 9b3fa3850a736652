"""Forecast metrics, generic over arrays (used by the demand family and the Walmart benchmark).

All take actuals `y` and forecasts as float arrays of the same length; none of them drops rows.
"""

from __future__ import annotations

import numpy as np

HIGHER_IS_BETTER = {
    "wape": False,
    "wape_p50": False,
    "mase": False,
    "mae": False,
    "rmse": False,
    "bias": False,  # signed; the gate never uses it, |bias| closer to 0 is better
    "coverage_p10_p90": True,
    "coverage_error": False,
    "interval_width_p10_p90": False,
    "pinball_p10": False,
    "pinball_p50": False,
    "pinball_p90": False,
    "mean_pinball": False,
}


NOMINAL_COVERAGE = 0.8  # p10-p90


def wape(y: np.ndarray, forecast: np.ndarray) -> float:
    """Weighted absolute percentage error: sum |y - f| / sum y (pooled over all rows)."""
    total = float(np.sum(y))
    return float(np.sum(np.abs(y - forecast)) / total) if total > 0 else float("nan")


def mae(y: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.mean(np.abs(y - forecast))) if len(y) else float("nan")


def rmse(y: np.ndarray, forecast: np.ndarray) -> float:
    return float(np.sqrt(np.mean((y - forecast) ** 2))) if len(y) else float("nan")


def mase(y: np.ndarray, forecast: np.ndarray, scale: float | None) -> float:
    """MAE divided by a pooled in-sample seasonal-naive MAE (`scale`, computed on the training
    window by the caller); < 1 beats the in-sample seasonal naive forecast."""
    if not scale or not len(y):
        return float("nan")
    return mae(y, forecast) / scale


def bias(y: np.ndarray, forecast: np.ndarray) -> float:
    """sum(forecast) / sum(actual) - 1: positive = over-forecast."""
    total = float(np.sum(y))
    return float(np.sum(forecast) / total - 1.0) if total > 0 else float("nan")


def pinball(y: np.ndarray, quantile: np.ndarray, alpha: float) -> float:
    """Mean pinball (quantile) loss at level alpha."""
    if not len(y):
        return float("nan")
    diff = y - quantile
    return float(np.mean(np.maximum(alpha * diff, (alpha - 1.0) * diff)))


def coverage(y: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Share of actuals inside [lower, upper] (nominal 0.8 for p10-p90)."""
    return float(np.mean((y >= lower) & (y <= upper))) if len(y) else float("nan")


def point_metrics(y: np.ndarray, forecast: np.ndarray, mase_scale: float | None) -> dict:
    return {
        "wape": wape(y, forecast),
        "mase": mase(y, forecast, mase_scale),
        "bias": bias(y, forecast),
        "mae": mae(y, forecast),
        "rmse": rmse(y, forecast),
    }


def quantile_metrics(y: np.ndarray, outputs: dict[str, np.ndarray]) -> dict:
    """Interval and pinball metrics for whichever of p10/p50/p90 the outputs hold."""
    out: dict[str, float] = {}
    levels = {"p10": 0.1, "p50": 0.5, "p90": 0.9}
    present = {k: np.asarray(outputs[k], dtype=np.float64) for k in levels if k in outputs}
    for name, values in present.items():
        out[f"pinball_{name}"] = pinball(y, values, levels[name])
    if len(present) == 3:
        out["mean_pinball"] = float(np.mean([out[f"pinball_{k}"] for k in levels]))
    if "p50" in present:
        out["wape_p50"] = wape(y, present["p50"])
    if "p10" in present and "p90" in present:
        out["coverage_p10_p90"] = coverage(y, present["p10"], present["p90"])
        # Distance from the nominal 80 %: too narrow and too wide are both miscalibrated.
        out["coverage_error"] = abs(out["coverage_p10_p90"] - NOMINAL_COVERAGE)
        out["interval_width_p10_p90"] = float(np.mean(present["p90"] - present["p10"]))
    return out
