"""The demand training set: direct multi-horizon examples with time splits.

An example is (store, sku, origin o, horizon h, target day t = o + h), features from
`features.build_examples` (history known at the end of o, plan known in advance for t).
With E the last data day:

* test: targets in (E-28, E], all forecast from origin E-28 (h = 1..28);
* validation: targets in (E-56, E-28], all from origin E-56 (used for early stopping only);
* train: targets in (E-56-train_days, E-56]; each target row gets ONE horizon drawn
  deterministically from 1..28 (a hash of store, sku, target day and the seed, so the draw
  does not depend on row order or on other rows), origin o = t - h. One example per
  store-SKU-day keeps the training set the size of the window while covering every horizon.

No training target lies after the validation origin and no validation target after the test
origin, so early stopping sees nothing after E-28 and the test window is untouched.
"""

from __future__ import annotations

import zlib
from datetime import timedelta
from typing import Any

import numpy as np
import polars as pl

from retail_assets.models.demand import features as F
from retail_assets.models.lifecycle.spec import TrainingSet

TARGET = "units_sold"
ENTITY_COLUMNS = ["store_id", "sku", "origin_date", "target_date"]
MIN_TRAIN_DAYS = 28

ASSUMPTIONS = [
    "History features use only days <= origin (lags and rolling windows end at the origin day).",
    "Planned price, promotion and calendar of the target day are known in advance (the "
    "realised price of the target day stands in for the plan, assumed fixed >= 28 days ahead).",
    "Competitor price: last value known on the origin day (observed on or before origin - 1).",
    "units_lag_364 / same-week-last-year end at t-361 <= origin because h <= 28.",
]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def draw_horizons(frame: pl.DataFrame, seed: int, max_horizon: int = F.MAX_HORIZON) -> pl.Series:
    """A horizon in 1..max_horizon per (store_id, sku, target_date) row: a stable hash (crc32 of
    the series key, the day number and the seed), independent of row order and other rows."""
    keys = frame.select(pl.concat_str("store_id", pl.lit("|"), "sku").alias("k"))["k"]
    crc = {k: zlib.crc32(k.encode()) for k in keys.unique().to_list()}
    series_hash = keys.replace_strict(crc, return_dtype=pl.UInt64).to_numpy()
    day = frame["target_date"].cast(pl.Int32).to_numpy().astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = _splitmix64(
            _splitmix64(series_hash ^ np.uint64(seed)) ^ (day * np.uint64(0x2545F4914F6CDD1D))
        )
    return pl.Series("horizon", (mixed % np.uint64(max_horizon)).astype(np.int32) + 1)


def mase_scales(
    state: pl.DataFrame,
    attributes: pl.DataFrame,
    start_exclusive,
    end_inclusive,
    season: int = F.WEEK,
) -> dict[str, Any]:
    """Pooled in-sample scale for MASE: mean |y(d) - y(d - season)| over every store-SKU day d
    in the train target window where both days are observed; overall and per segment value."""
    lagged = state.select(
        "store_id",
        "sku",
        (pl.col("date") + pl.duration(days=season)).alias("date"),
        pl.col("units_sold").alias("_prev"),
    )
    diffs = (
        state.filter((pl.col("date") > start_exclusive) & (pl.col("date") <= end_inclusive))
        .select("store_id", "sku", "date", "units_sold")
        .join(lagged, on=["store_id", "sku", "date"], how="inner")
        .filter(pl.col("units_sold").is_not_null() & pl.col("_prev").is_not_null())
        .with_columns((pl.col("units_sold") - pl.col("_prev")).abs().alias("_d"))
        .join(attributes, on=["store_id", "sku"], how="left")
    )
    out: dict[str, Any] = {
        "season": season,
        "n_pairs": diffs.height,
        "overall": float(diffs["_d"].mean()) if diffs.height else None,
    }
    for column in F.SEGMENT_COLUMNS:
        grouped = diffs.group_by(column).agg(pl.col("_d").mean()).sort(column)
        out[column] = {str(k): float(v) for k, v in grouped.iter_rows()}
    return out


def build_demand_training_set(
    mart: pl.DataFrame,
    *,
    train_days: int = 365,
    horizon_seed: int = 0,
    max_horizon: int = F.MAX_HORIZON,
) -> TrainingSet:
    if mart.height == 0:
        raise ValueError("marts.demand_features is empty: nothing to train on")
    missing = {"store_id", "sku", "date", TARGET, "stockout", *F.NUMERIC_PLAN_COLUMNS}
    missing -= set(mart.columns)
    if missing:
        raise ValueError(f"marts.demand_features lacks column(s): {', '.join(sorted(missing))}")
    data_start, data_end = mart["date"].min(), mart["date"].max()
    test_origin = data_end - timedelta(days=max_horizon)
    val_origin = test_origin - timedelta(days=max_horizon)
    available = (val_origin - data_start).days
    effective_days = min(train_days, available)
    if effective_days < MIN_TRAIN_DAYS:
        raise ValueError(
            f"marts.demand_features spans {data_start}..{data_end}: after holding out "
            f"2 x {max_horizon} days only {available} training day(s) remain "
            f"(need >= {MIN_TRAIN_DAYS})"
        )
    train_start = val_origin - timedelta(days=effective_days)  # exclusive

    targets = mart.select("store_id", "sku", pl.col("date").alias("target_date"))
    train_targets = targets.filter(
        (pl.col("target_date") > train_start) & (pl.col("target_date") <= val_origin)
    )
    train_origins = train_targets.with_columns(
        draw_horizons(train_targets, horizon_seed, max_horizon)
    ).with_columns(
        (pl.col("target_date") - pl.duration(days=pl.col("horizon"))).alias("origin_date"),
        pl.lit("train").alias("split"),
    )

    def fixed_origin(origin, split: str) -> pl.DataFrame:
        window = targets.filter(
            (pl.col("target_date") > origin)
            & (pl.col("target_date") <= origin + timedelta(days=max_horizon))
        )
        return window.with_columns(
            pl.lit(origin).alias("origin_date"),
            ((pl.col("target_date") - pl.lit(origin)).dt.total_days())
            .cast(pl.Int32)
            .alias("horizon"),
            pl.lit(split).alias("split"),
        )

    origins = pl.concat(
        [
            train_origins.select("store_id", "sku", "origin_date", "horizon", "split"),
            fixed_origin(val_origin, "validation").select(
                "store_id", "sku", "origin_date", "horizon", "split"
            ),
            fixed_origin(test_origin, "test").select(
                "store_id", "sku", "origin_date", "horizon", "split"
            ),
        ]
    )
    encodings = F.build_encodings(mart)
    state = F.history_state(mart)
    examples = F.build_examples(mart, origins, encodings, state)
    feature_cols = F.feature_columns(mart)
    split_order = pl.col("split").replace_strict(
        {"train": 0, "validation": 1, "test": 2}, return_dtype=pl.Int8
    )
    frame = examples.sort(split_order, "store_id", "sku", "target_date").select(
        *ENTITY_COLUMNS,
        "split",
        *feature_cols,
        TARGET,
        "stockout",
        *[c for c in F.CATEGORICAL_COLUMNS if c != "store_id"],
    )
    attributes = mart.select("store_id", "sku", *F.SEGMENT_COLUMNS).unique(
        subset=["store_id", "sku"], keep="last"
    )
    counts = dict(frame.group_by("split").len().iter_rows())
    windows = {
        "train": {
            "start": (train_start + timedelta(days=1)).isoformat(),
            "end": val_origin.isoformat(),
            "origin_start": (train_start + timedelta(days=1 - max_horizon)).isoformat(),
            "origin_end": (val_origin - timedelta(days=1)).isoformat(),
        },
        "validation": {
            "start": (val_origin + timedelta(days=1)).isoformat(),
            "end": test_origin.isoformat(),
            "origin": val_origin.isoformat(),
        },
        "test": {
            "start": (test_origin + timedelta(days=1)).isoformat(),
            "end": data_end.isoformat(),
            "origin": test_origin.isoformat(),
        },
    }
    train_rows = frame.filter(pl.col("split") == "train")
    info = {
        "data_start": data_start.isoformat(),
        "data_end": data_end.isoformat(),
        "origins": {
            "test": test_origin.isoformat(),
            "validation": val_origin.isoformat(),
            "train_min": train_rows["origin_date"].min().isoformat() if train_rows.height else None,
            "train_max": train_rows["origin_date"].max().isoformat() if train_rows.height else None,
        },
        "max_horizon": max_horizon,
        "train_days_requested": train_days,
        "train_days": effective_days,
        "horizon_seed": horizon_seed,
        "rows": {s: int(counts.get(s, 0)) for s in ("train", "validation", "test")},
        "mart_rows": mart.height,
        "mase_scale": mase_scales(state, attributes, train_start, val_origin),
        "assumptions": ASSUMPTIONS,
    }
    return TrainingSet(
        frame=frame,
        feature_columns=feature_cols,
        target_column=TARGET,
        entity_columns=list(ENTITY_COLUMNS),
        segment_columns=list(F.SEGMENT_COLUMNS),
        windows=windows,
        encodings=encodings,
        info=info,
    )
