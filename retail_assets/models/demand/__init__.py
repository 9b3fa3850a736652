"""Demand forecasting: daily units per store and SKU, 1..28 days ahead.

- `features.py`: history known at the forecast origin + plan known in advance
  (`origin_features`, the one code path for training and the online feature table);
- `training_set.py`: direct multi-horizon examples and the train / validation / test splits;
- `train.py`: LightGBM Tweedie mean and p10/p50/p90 quantile boosters;
- `baselines.py`, `metrics.py`, `evaluate.py`: naive forecasts, metrics, the evaluation;
- `family.py`: `DemandForecastFamily`, the `ModelFamily` the lifecycle turns into assets.

Names are imported on first use (PEP 562), so importing a feature module does not load the
training stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DemandForecastFamily": "family",
    "demand_family": "family",
    "assemble_features": "features",
    "origin_features": "features",
    "plan_features": "features",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
