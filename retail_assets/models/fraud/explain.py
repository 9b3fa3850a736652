"""Why a payment was flagged: per-feature contributions (TreeSHAP via LightGBM `pred_contrib`)
and reason codes, the top positively contributing features of each scored transaction.

Contributions are in raw-score (log-odds) units: for every row, the contributions plus the
bias term sum exactly to the booster's raw score, and sigmoid(raw score) is the probability.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl

from retail_assets.models.lifecycle.spec import TrainedModel


def feature_matrix(frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    """Model input in signature order, float64 with NaN for missing (as `TrainingSet.features`)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing feature column(s) {', '.join(missing)}")
    return frame.select([pl.col(c).cast(pl.Float64) for c in columns]).to_numpy().astype(np.float64)


def feature_contributions(booster: lgb.Booster, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(contributions [n, n_features], bias [n]) in raw-score units."""
    if len(x) == 0:
        return np.zeros((0, booster.num_feature())), np.zeros(0)
    raw = np.asarray(booster.predict(x, pred_contrib=True), dtype=np.float64)
    return raw[:, :-1], raw[:, -1]


def reason_codes_from_contributions(
    contributions: np.ndarray, x: np.ndarray, feature_names: list[str], k: int = 3
) -> list[list[dict[str, Any]]]:
    """Per row, up to k features with the largest POSITIVE contribution (pushing towards fraud),
    largest first; rows with fewer positive contributions get fewer codes."""
    codes: list[list[dict[str, Any]]] = []
    for row_contrib, row_x in zip(contributions, x, strict=True):
        order = np.argsort(-row_contrib, kind="mergesort")[:k]
        codes.append(
            [
                {
                    "feature": feature_names[j],
                    "value": None if np.isnan(row_x[j]) else float(row_x[j]),
                    "contribution": float(row_contrib[j]),
                }
                for j in order
                if row_contrib[j] > 0
            ]
        )
    return codes


def reason_codes(
    model: TrainedModel, frame: pl.DataFrame, k: int = 3
) -> list[list[dict[str, Any]]]:
    """Reason codes of every row of `frame` (which holds the model's feature columns): a list
    per row of `{"feature", "value", "contribution"}` for the top-k positive contributors."""
    x = feature_matrix(frame, model.feature_columns)
    contributions, _ = feature_contributions(model.boosters[model.primary_output], x)
    return reason_codes_from_contributions(contributions, x, model.feature_columns, k)
