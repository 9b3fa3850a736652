"""What a model family provides to the shared lifecycle, and what flows between the assets.

A family (demand forecasting, payment fraud, ...) implements `ModelFamily`; the lifecycle turns
it into the asset chain `<name>_training_set -> <name>_model -> <name>_evaluation ->
<name>_onnx -> <name>_promotion`, registers versions in MLflow and publishes bundles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import lightgbm as lgb
import numpy as np
import onnx
import polars as pl

SPLITS = ("train", "validation", "test")


@dataclass
class TrainingSet:
    """Examples with a `split` column (train | validation | test), built point-in-time correct.

    `feature_columns` are numeric and ordered: that order is the ONNX input order and the
    bundle signature. Categorical inputs are integer codes; `encodings[column]` lists the
    categories so that code = index (unknown categories get -1).
    """

    frame: pl.DataFrame
    feature_columns: list[str]
    target_column: str
    entity_columns: list[str]
    segment_columns: list[str]
    windows: dict[str, dict[str, str]]
    encodings: dict[str, list[str]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def split(self, name: str) -> pl.DataFrame:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        return self.frame.filter(pl.col("split") == name)

    def features(self, frame: pl.DataFrame) -> np.ndarray:
        """The model input matrix (float64, NaN for missing) in signature order."""
        return (
            frame.select([pl.col(c).cast(pl.Float64) for c in self.feature_columns])
            .to_numpy()
            .astype(np.float64)
        )


@dataclass
class TrainedModel:
    """One or more boosters producing named outputs from the same feature vector."""

    boosters: dict[str, lgb.Booster]
    feature_columns: list[str]
    params: dict[str, Any]
    validation_metrics: dict[str, float]
    extras: dict[str, Any] = field(default_factory=dict)
    output_transforms: dict[str, str] = field(default_factory=dict)
    sorted_output_groups: list[list[str]] = field(default_factory=list)
    interval_calibration: dict[str, Any] | None = None
    """Conformal shift of an output interval, applied after sorting (see
    `onnx_export.calibrate_interval`); part of the exported graph."""

    raw_offsets: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per output, a per-group linear term added to its booster's raw score before the link
    (`onnx_export.raw_offset_values`): the trees were fit on top of it (LightGBM
    `init_score`), e.g. the pricing model's estimated price elasticity per category."""

    parts: dict[str, TrainedModel] = field(default_factory=dict)
    """A routed model (tiered training): each row is scored by one of these part models,
    chosen by the integer code of one categorical feature (`route`); `boosters` is then
    empty. See `lifecycle/tiers.py`."""
    route: dict[str, Any] | None = None
    """`{"column": feature, "feature_index": i, "parts": [part names], "table": [part index
    for code -1 (unknown), 0, 1, ...]}`."""

    @property
    def output_names(self) -> list[str]:
        if self.parts:
            return next(iter(self.parts.values())).output_names
        return list(self.boosters)

    @property
    def primary_output(self) -> str:
        return self.output_names[0]

    def leaves(self) -> list[TrainedModel]:
        """The single (unrouted) models this model consists of."""
        return [leaf for part in self.parts.values() for leaf in part.leaves()] or [self]

    def part_index(self, x: np.ndarray) -> np.ndarray:
        """Per row, the index (into `route["parts"]`) of the part that scores it; all zeros for
        an unrouted model."""
        if self.route is None:
            return np.zeros(len(x), dtype=np.int64)
        return route_rows(self.route, x)

    def outputs(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """What the exported graph must reproduce: the boosters' outputs (sorted groups,
        interval calibration), or for a routed model each row's part's outputs."""
        if self.route is not None:
            part_of_row = route_rows(self.route, x)
            result = {name: np.zeros(len(x), dtype=np.float64) for name in self.output_names}
            for i, name in enumerate(self.route["parts"]):
                rows = part_of_row == i
                if rows.any():
                    for output, values in self.parts[name].outputs(x[rows]).items():
                        result[output][rows] = values
            return result
        from retail_assets.models.lifecycle.onnx_export import lightgbm_outputs

        return lightgbm_outputs(
            self.boosters, x, self.sorted_output_groups, self.interval_calibration, self.raw_offsets
        )


def route_rows(route: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Per row, the part index its routing code selects (the numpy twin of the graph)."""
    codes = x[:, route["feature_index"]]
    index = np.where(np.isnan(codes), -1.0, codes).astype(np.int64) + 1
    table = np.asarray(route["table"], dtype=np.int64)
    index = np.where((index >= 0) & (index < len(table)), index, 0)
    return table[index]


@dataclass
class ModelVersionRef:
    """Where a trained model lives in the MLflow registry."""

    name: str
    version: str
    run_id: str
    artifact_uri: str


@dataclass
class Evaluation:
    """Held-out test results for the challenger, its baselines and the current champion.

    `overall[predictor][metric]` and `by_segment[segment_column]` rows
    `{"segment", "predictor", "n", "support", <metric>: value, ...}` are what the promotion
    gate reads; predictors are "challenger", "champion" (if any) and baseline names.
    """

    primary_metric: str
    higher_is_better: dict[str, bool]
    overall: dict[str, dict[str, float]]
    by_segment: dict[str, list[dict[str, Any]]]
    bias_audit: dict[str, Any]
    feature_importance: list[dict[str, Any]]
    explanations: list[dict[str, Any]]
    test_window: dict[str, str]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MetricRule:
    """One promotion rule on one metric.

    - `absolute`: challenger overall (and per segment if `per_segment`) must be at least (higher
      is better) / at most (lower is better) this value.
    - `beat_baseline`: challenger must beat this baseline predictor (or the best of several),
      by `baseline_margin` (relative: 0.15 = 15 % better); overall, and in every segment with
      enough support too if `beat_baseline_per_segment`.
    - `champion_tolerance`: challenger may be worse than the champion by at most this much
      (`tolerance_kind` "absolute" or "relative"), overall and, if `per_segment`, per segment.
    Segments with `support` below `min_segment_support` are reported but not gated.
    """

    metric: str
    higher_is_better: bool
    absolute: float | None = None
    beat_baseline: str | tuple[str, ...] | None = None
    baseline_margin: float = 0.0
    beat_baseline_per_segment: bool = False
    champion_tolerance: float | None = None
    tolerance_kind: str = "absolute"
    per_segment: bool = True
    min_segment_support: int = 30
    required: bool = True
    """False: a challenger without this metric passes the rule as "not measured" (e.g. the
    pricing policy's true uplift, known only where the data's ground truth is)."""
    noise_aware: bool = False
    """Decide floors and the champion tolerance on the evaluation's 95 % intervals when it
    reports them (see `retail_assets.core.gate`): fail only when the breach is significant."""


class ModelFamily(Protocol):
    """What each model family implements; see demand/ and fraud/ for the two families."""

    name: str
    description: str
    source_assets: tuple[tuple[str, ...], ...]
    gate_rules: tuple[MetricRule, ...]
    output_meanings: dict[str, str]

    def build_training_set(self, sources: dict[str, pl.DataFrame]) -> TrainingSet: ...

    def train(
        self, training_set: TrainingSet, shuffle_labels_seed: int | None = None
    ) -> TrainedModel:
        """Fit on train (early stopping on validation). `shuffle_labels_seed` permutes the
        training labels: a negative control the promotion gate must refuse."""
        ...

    def predict(self, model: TrainedModel, frame: pl.DataFrame) -> dict[str, np.ndarray]: ...

    def evaluate(
        self,
        training_set: TrainingSet,
        predictions: dict[str, dict[str, np.ndarray]],
        model: TrainedModel,
    ) -> Evaluation:
        """Score every predictor's test-window outputs (`predictions[predictor][output]`,
        including "challenger" and, if present, "champion") plus the family's own baselines,
        overall and per segment, with bias audit, importance and explanations."""
        ...

    def to_onnx(self, model: TrainedModel) -> onnx.ModelProto: ...

    def explainer_to_onnx(self, model: TrainedModel) -> onnx.ModelProto | None:
        """Optional second graph for the bundle (`explain.onnx`): per-feature contributions to
        the primary output's raw score, which serving turns into reason codes. None = none."""
        ...
