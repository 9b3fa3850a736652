"""The demand forecasting model family: what the shared lifecycle needs from it."""

from __future__ import annotations

import numpy as np
import onnx
import polars as pl

from retail_assets.models.demand.evaluate import BASELINES, evaluate_demand
from retail_assets.models.demand.features import closed_to_zero, feature_matrix
from retail_assets.models.demand.grain import DAILY, Grain
from retail_assets.models.demand.tiers import DEMAND_TIERING
from retail_assets.models.demand.train import DemandTrainConfig, train_demand
from retail_assets.models.demand.training_set import build_demand_training_set
from retail_assets.models.lifecycle.spec import Evaluation, MetricRule, TrainedModel, TrainingSet
from retail_assets.models.lifecycle.tiers import model_to_onnx

SOURCE_KEY = "marts/demand_features"
# Segments compared with their own best baseline need this many units in the test window:
# with fewer, a 5 % WAPE difference between two forecasts is within sampling noise (a tiny
# synthetic category of ~300 units swung by 10 % between neighbouring windows).
BASELINE_SEGMENT_SUPPORT = 1000
OUTPUT_MEANINGS = {
    "mean": "Expected units sold by the store-SKU in the target {period} (Tweedie mean).",
    "p10": "Units sold will be at or below this in about 10 % of such {period}s (lower bound).",
    "p50": "Median units sold in the target {period}: as likely to be above as below.",
    "p90": "Units sold will be at or below this in about 90 % of such {period}s (e.g. a "
    "stock level covering demand 9 {period}s in 10).",
}


class DemandForecastFamily:
    """Store-SKU demand per period (`grain`: daily 1..28 days ahead, or weekly 1..8 weeks
    ahead), direct multi-horizon LightGBM.

    Gate thresholds (constructor parameters):

    - `baseline_margin` (0.02): the challenger's overall WAPE must be lower than the BEST of
      the baselines (seasonal naive, last year, the store x weekday x promotion profile of
      recent weeks, the level-scaled last year) by at least this relative margin: 2 % is
      about the spread of WAPE between neighbouring test windows of the same model, so a win
      smaller than that is noise. In every category / region segment with at least
      BASELINE_SEGMENT_SUPPORT units it may be at most `segment_slack` (5 %) worse than that
      segment's best baseline: picking the best of four baselines per small segment favours
      the baselines by chance (the minimum of four noisy scores), so an exact per-segment
      win would refuse good models on luck; a real loss shows up beyond 5 %.
    - `champion_tolerance` (0.10): WAPE may be at most 10 % (relative) worse than the
      champion's, overall and in every segment with enough support.
    - `coverage_tolerance` (0.05): the p10-p90 interval (nominal 80 %, conformally
      calibrated on validation) must cover 75-85 % of the held-out test actuals.

    When the challenger does not beat the best baseline overall, the lifecycle serves that
    baseline as the champion (`baseline_champion`), gated without the beat-the-baseline rules;
    a challenger that wins overall but loses a segment is refused and the champion stays.
    """

    name = "demand"
    source_assets = (("marts", "demand_features"),)
    # Categories retrain in tiers by drift velocity (weekly / monthly), composed into one
    # routed model (lifecycle/tiers.py).
    tiering = DEMAND_TIERING
    intended_use = (
        "Replenishment and allocation planning: units (or sales value) per store and SKU for "
        "each period of the horizon, with a calibrated p10-p90 range, served by POST "
        "/v1/forecast with the caller's price and promotion plan applied."
    )
    limitations = (
        "Learns from the store's own history: a SKU or store without history gets a category "
        "or chain fallback (named in the response). Demand that stock-outs censored is "
        "under-learned. Shifts the history never showed (a new competitor, a supply shock) "
        "degrade it until it is retrained; prices far outside the trained range extrapolate "
        "flat (trees). Not for financial reporting."
    )
    monitoring = (
        "`demand_monitoring`, after every new landing: seasonally adjusted sales level per "
        "series, department and category against the same weeks a year earlier (Wilcoxon; "
        "drift at 25 %), feature drift against last year and the weeks before (PSI >= 0.25 and "
        "KS p < 0.001), live WAPE after the test window against the offline WAPE (+20 %). A "
        "drift or degradation retrains this model only; a new version serves a 20 % canary "
        "until the sequential test promotes or rolls it back."
    )

    def __init__(
        self,
        *,
        train_days: int = 365,
        horizon_seed: int = 0,
        baseline_margin: float = 0.02,
        champion_tolerance: float = 0.10,
        min_segment_support: int = 200,
        coverage_tolerance: float = 0.05,
        segment_slack: float = 0.05,
        config: DemandTrainConfig | None = None,
        grain: Grain = DAILY,
    ):
        self.train_days = train_days
        self.horizon_seed = horizon_seed
        self.min_segment_support = min_segment_support
        self.config = config or DemandTrainConfig()
        self.grain = grain
        self.output_meanings = {k: v.format(period=grain.name) for k, v in OUTPUT_MEANINGS.items()}
        self.description = (
            f"Units per store and SKU and {grain.name} for the next "
            f"{grain.periods(grain.max_horizon)} (direct multi-horizon LightGBM: Tweedie mean "
            "plus p10/p50/p90 quantiles), from sales history known at the forecast origin and "
            f"the price, promotion and calendar plan of the target {grain.name}."
        )
        self.gate_rules = (
            MetricRule(
                metric="wape",
                higher_is_better=False,
                beat_baseline=BASELINES,
                baseline_margin=baseline_margin,
                per_segment=False,
            ),
            MetricRule(
                metric="wape",
                higher_is_better=False,
                beat_baseline=BASELINES,
                baseline_margin=-segment_slack,
                beat_baseline_per_segment=True,
                per_segment=False,
                min_segment_support=BASELINE_SEGMENT_SUPPORT,
            ),
            MetricRule(
                metric="wape",
                higher_is_better=False,
                champion_tolerance=champion_tolerance,
                tolerance_kind="relative",
                per_segment=True,
                min_segment_support=min_segment_support,
            ),
            MetricRule(
                metric="coverage_error",
                higher_is_better=False,
                absolute=coverage_tolerance,
                per_segment=False,
            ),
        )

    def build_training_set(self, sources: dict[str, pl.DataFrame]) -> TrainingSet:
        if SOURCE_KEY not in sources:
            raise ValueError(
                f"demand training set needs source {SOURCE_KEY!r}, got {sorted(sources)}"
            )
        return build_demand_training_set(
            sources[SOURCE_KEY],
            train_days=self.train_days,
            horizon_seed=self.horizon_seed,
            grain=self.grain,
        )

    def train(
        self, training_set: TrainingSet, shuffle_labels_seed: int | None = None
    ) -> TrainedModel:
        return train_demand(training_set, self.config, shuffle_labels_seed)

    def predict(self, model: TrainedModel, frame: pl.DataFrame) -> dict[str, np.ndarray]:
        """Outputs for the rows of `frame` (any frame with the feature columns); quantiles are
        sorted per row exactly as the ONNX graph sorts them; planned closed days are 0, as
        serving makes them (`features.closed_to_zero`)."""
        missing = [c for c in model.feature_columns if c not in frame.columns]
        if missing:
            raise ValueError(f"frame lacks feature column(s): {', '.join(missing)}")
        outputs = model.outputs(feature_matrix(frame, model.feature_columns))
        is_open = frame["is_open"].cast(float).to_numpy() if "is_open" in frame.columns else None
        return closed_to_zero(outputs, is_open)

    def evaluate(
        self,
        training_set: TrainingSet,
        predictions: dict[str, dict[str, np.ndarray]],
        model: TrainedModel,
    ) -> Evaluation:
        return evaluate_demand(
            training_set, predictions, model, min_segment_support=self.min_segment_support
        )

    def to_onnx(self, model: TrainedModel) -> onnx.ModelProto:
        return model_to_onnx(model, doc_string=f"{self.name}: {self.description}")

    def explainer_to_onnx(self, model: TrainedModel) -> None:
        return None

    def baseline_champion(self, training_set: TrainingSet, evaluation: Evaluation):
        """The best baseline as a servable model (when no trained model beats it)."""
        from retail_assets.models.demand.baseline_model import build_baseline_champion

        return build_baseline_champion(training_set, evaluation, training_set.target_column)


def _configured_grain() -> Grain:
    from retail_assets.models.demand.grain import grain_named
    from retail_assets.settings import get_settings

    return grain_named(get_settings().demand_grain)


# The deployment's family, at the grain `RETAIL_DEMAND_GRAIN` names (read once, at import).
demand_family = DemandForecastFamily(grain=_configured_grain())
