"""Payment fraud: training set, training, evaluation, explanations and export in one folder.

`fraud_family` is the `ModelFamily` the lifecycle turns into the `fraud_*` asset chain. The pure
functions (training on a matrix, threshold choice, metrics, bootstrap) are reused by
`benchmarks/bench_creditcard.py` on the real ULB card data.
"""

from retail_assets.models.fraud.evaluate import (
    base_rate_weights,
    binary_metrics,
    bootstrap_intervals,
    fpr_disparity,
)
from retail_assets.models.fraud.explain import feature_contributions, reason_codes
from retail_assets.models.fraud.family import PaymentFraudFamily, fraud_family
from retail_assets.models.fraud.train import (
    fit_lightgbm_binary,
    fit_logistic_baseline,
    select_threshold,
)
from retail_assets.models.fraud.training_set import (
    WindowConfig,
    build_fraud_training_set,
    scoring_frame,
)

__all__ = [
    "PaymentFraudFamily",
    "WindowConfig",
    "base_rate_weights",
    "binary_metrics",
    "bootstrap_intervals",
    "build_fraud_training_set",
    "feature_contributions",
    "fit_lightgbm_binary",
    "fit_logistic_baseline",
    "fpr_disparity",
    "fraud_family",
    "reason_codes",
    "scoring_frame",
    "select_threshold",
]
