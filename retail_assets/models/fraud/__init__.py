"""Payment fraud: training set, training, evaluation, explanations and export in one folder.

`fraud_family` is the `ModelFamily` the lifecycle turns into the `fraud_*` asset chain. The pure
functions (training on a matrix, threshold choice, metrics, bootstrap) are reused by
`benchmarks/bench_creditcard.py` on the real ULB card data.

Names are imported on first use (PEP 562): serving imports `online.py` (the feature state it
shares with training) without loading the training stack (LightGBM, scikit-learn).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PaymentFraudFamily": "family",
    "fraud_family": "family",
    "base_rate_weights": "evaluate",
    "binary_metrics": "evaluate",
    "bootstrap_intervals": "evaluate",
    "fpr_disparity": "evaluate",
    "feature_contributions": "explain",
    "reason_codes": "explain",
    "fit_lightgbm_binary": "train",
    "fit_logistic_baseline": "train",
    "select_threshold": "train",
    "WindowConfig": "training_set",
    "build_fraud_training_set": "training_set",
    "scoring_frame": "training_set",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
