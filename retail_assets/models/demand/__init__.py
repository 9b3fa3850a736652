"""Demand forecasting: daily units per store and SKU, 1..28 days ahead.

- `features.py`: history known at the forecast origin + plan known in advance
  (`origin_features`, the one code path for training and the online feature table);
- `training_set.py`: direct multi-horizon examples and the train / validation / test splits;
- `train.py`: LightGBM Tweedie mean and p10/p50/p90 quantile boosters;
- `baselines.py`, `metrics.py`, `evaluate.py`: naive forecasts, metrics, the evaluation;
- `family.py`: `DemandForecastFamily`, the `ModelFamily` the lifecycle turns into assets.
"""

from retail_assets.models.demand.family import DemandForecastFamily, demand_family
from retail_assets.models.demand.features import (
    assemble_features,
    origin_features,
    plan_features,
)

__all__ = [
    "DemandForecastFamily",
    "assemble_features",
    "demand_family",
    "origin_features",
    "plan_features",
]
