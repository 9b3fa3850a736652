"""A demand baseline as a servable model: when no trained model beats the best simple
forecast, that forecast is what the retailer should get, through the same bundle, gate, slot
and API as any model.

The baseline's point forecast is one of the model's own input columns (its fallback chain
ends at the 28-day mean, then 0), so the ONNX graph only selects columns: Gather, IsNaN and
Where (and 0 where the store is planned closed, as for every model), then multiplies the point
by two interval multipliers, split conformal on the
validation split (quantiles of actual / point), so about 80 % of validation actuals fall
inside [p10, p90].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from retail_assets.models.demand.evaluate import (
    BASELINES,
    baseline_sources,
    rescore_challenger,
    training_grain,
)
from retail_assets.models.demand.features import closed_to_zero
from retail_assets.models.lifecycle.onnx_export import INPUT_NAME, assemble_model
from retail_assets.models.lifecycle.spec import Evaluation, TrainingSet

TAIL = 0.1


@dataclass
class BaselineChampion:
    name: str
    onnx_model: onnx.ModelProto
    predict: Callable[[np.ndarray], dict[str, np.ndarray]]
    params: dict[str, Any]
    evaluation: Evaluation = field(repr=False)


def point_forecast(x: np.ndarray, columns: list[int]) -> np.ndarray:
    """First non-missing of the columns per row, else 0."""
    out = np.full(len(x), np.nan)
    for j in columns:
        fill = np.isnan(out)
        out[fill] = x[fill, j]
    out[np.isnan(out)] = 0.0
    return out


def interval_multipliers(y: np.ndarray, point: np.ndarray, tail: float = TAIL) -> tuple:
    """p10 and p90 multipliers of the point forecast: the lower one leaves at most `tail` of
    the actuals below it; the upper one leaves 2 x tail minus what the lower side misses
    above it (zero sales can never fall below a bound of 0, see train.conformal_calibration)."""
    positive = point > 0
    if positive.sum() < 10:
        return 1.0, 1.0
    ratios = y[positive] / point[positive]
    low = float(np.quantile(ratios, tail))
    lower_miss = float(np.mean(y < point * low))
    high = float(np.quantile(ratios, min(1.0, 1 - max(2 * tail - lower_miss, 0.0))))
    return low, high


def _graph(
    columns: list[int], n_features: int, low: float, high: float, open_column: int | None = None
) -> onnx.ModelProto:
    initializers = [
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float64), "zero"),
        numpy_helper.from_array(np.array(low, dtype=np.float64), "low"),
        numpy_helper.from_array(np.array(high, dtype=np.float64), "high"),
    ]
    nodes = []
    current = "zero_fill"
    nodes.append(helper.make_node("Identity", ["zero"], [current]))
    for i, j in enumerate(reversed(columns)):  # build the chain from the last fallback up
        index = f"col_{i}_index"
        initializers.append(numpy_helper.from_array(np.array([j], dtype=np.int64), index))
        column, missing, chosen = f"col_{i}", f"col_{i}_missing", f"chain_{i}"
        nodes += [
            helper.make_node("Gather", [INPUT_NAME, index], [column], axis=1),
            helper.make_node("IsNaN", [column], [missing]),
            helper.make_node("Where", [missing, current, column], [chosen]),
        ]
        current = chosen
    if open_column is not None:
        # A store planned closed sells nothing (`closed_to_zero`): is_open == 0 -> 0, NaN
        # (unknown) stays open.
        initializers.append(
            numpy_helper.from_array(np.array([open_column], dtype=np.int64), "open_index")
        )
        nodes += [
            helper.make_node("Gather", [INPUT_NAME, "open_index"], ["is_open"], axis=1),
            helper.make_node("Equal", ["is_open", "zero"], ["closed"]),
            helper.make_node("Where", ["closed", "zero", current], ["open_only"]),
        ]
        current = "open_only"
    nodes += [
        helper.make_node("Reshape", [current, "flat_shape"], ["mean"]),
        helper.make_node("Identity", ["mean"], ["p50"]),
        helper.make_node("Mul", ["mean", "low"], ["p10"]),
        helper.make_node("Mul", ["mean", "high"], ["p90"]),
    ]
    return assemble_model(
        nodes, initializers, ("mean", "p10", "p50", "p90"), n_features, "retail_baseline"
    )


def build_baseline_champion(
    training_set: TrainingSet, evaluation: Evaluation, target: str
) -> BaselineChampion:
    """The best baseline on the test window (lowest WAPE) as a servable model."""
    sources = baseline_sources(training_grain(training_set))
    scores = {name: evaluation.overall.get(name, {}).get("wape", np.inf) for name in BASELINES}
    name = min(scores, key=lambda n: (np.nan_to_num(scores[n], nan=np.inf), n))
    features = list(training_set.feature_columns)
    columns = [features.index(c) for c in sources[name]]
    valid = training_set.split("validation")
    low, high = interval_multipliers(
        valid[target].cast(float).to_numpy(),
        point_forecast(training_set.features(valid), columns),
    )

    open_column = features.index("is_open") if "is_open" in features else None

    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        x = np.asarray(x, dtype=np.float64)
        point = point_forecast(x, columns)
        outputs = {"mean": point, "p10": point * low, "p50": point.copy(), "p90": point * high}
        return closed_to_zero(outputs, None if open_column is None else x[:, open_column])

    test = training_set.split("test")
    return BaselineChampion(
        name=name,
        onnx_model=_graph(columns, len(features), low, high, open_column),
        predict=predict,
        params={
            "sources": list(sources[name]),
            "p10_multiplier": low,
            "p90_multiplier": high,
            "test_wape": scores[name],
        },
        evaluation=rescore_challenger(
            training_set, evaluation, predict(training_set.features(test))
        ),
    )
