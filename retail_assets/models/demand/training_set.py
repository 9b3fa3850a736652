"""The demand training set: direct multi-horizon examples with time splits.

An example is (store, sku, origin o, horizon h, target period t = o + h), features from
`features.build_examples` (history known at the end of o, plan known in advance for t).
With E the last data period and H the grain's longest horizon (28 days, 8 weeks):

* test: targets in (E-H, E], all forecast from origin E-H (h = 1..H);
* validation: targets in (E-2H, E-H], all from origin E-2H (early stopping and interval
  calibration only);
* train: targets in (E-2H-train_days, E-2H]; on the daily grain each target row gets ONE
  horizon drawn deterministically from 1..H (a hash of store, sku, target day and the seed, so
  the draw does not depend on row order or on other rows), origin o = t - h: one example per
  store-SKU-period keeps the training set the size of the window while covering every
  horizon. The weekly grain, a seventh of the rows, takes every horizon of every target
  (`Grain.every_horizon`).

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
from retail_assets.models.demand.grain import DAILY, Grain
from retail_assets.models.lifecycle.spec import TrainingSet

TARGET = "units_sold"
ENTITY_COLUMNS = ["store_id", "sku", "origin_date", "target_date"]
MIN_TRAIN_DAYS = 28
# The history state is dense (every series x every period since its start, about 40 float
# columns): built for the whole mart at once it was the training set's peak, 9.5 GiB at
# `default` (10,000 series x 730 days), and it grows with series x history, ten times that at
# `large` (`benchmarks/bench_data_scaling.py`). Built this many series at a time, the state of
# one chunk is held at once (2,000 series x 730 days: about 1.5M rows).
SERIES_PER_CHUNK = 2_000
# Training examples beyond this many are sampled: each train row is kept with the same
# probability, drawn by a stable hash of (store, SKU, target day), so every series, day and
# horizon stays represented in proportion. `default` (3.2M train rows) is below it and
# unchanged; `large` (36.5M) keeps about one in nine, which bounds the step's memory on a
# 24 GiB machine (the whole frame and its copies were several times the rows' size).
# Validation and test rows are never sampled: they are the gate's evidence.
MAX_TRAIN_ROWS = 4_000_000
_SAMPLE_SALT = 0x5A3B1E
# Demand features drift monitoring compares across windows: those that describe the target
# day itself (price, promotion, competitor). The history features (lags, rolling means) are
# measured from each row's forecast origin, and the training set's windows mix horizons
# differently (the test window is one origin with horizons 1..28, training rows sample a
# horizon per day), so their distributions differ by construction; the level test on the
# sales they are computed from covers them. Calendar features are the same every year.
DRIFT_MONITORED_DEMAND = frozenset(
    {
        "unit_price",
        "list_price",
        "price_ratio",
        "on_promotion",
        "promo_discount_pct",
        "competitor_min_price",
        "price_to_competitor_ratio",
    }
)
# Year-ago features are masked on at least this share of training rows (and on the share of
# test rows that lack them, when larger): a series that starts, or comes back after a gap,
# after training still gets a model that has learnt to forecast without last year.
MIN_YEAR_AGO_MASK = 0.05
_MASK_SALT = 0x5EED_0F_1A5

ASSUMPTIONS = [
    "History features use only periods <= origin (lags and rolling windows end at the origin).",
    "Planned price, promotion and calendar (chain and store) of the target period are known in "
    "advance: the realised price and promotion stand in for the plan on past periods (the "
    "plan was executed), the landed promotion plan supplies them on future periods.",
    "Competitor price: last value known on the origin day (observed on or before origin - 1).",
    "Year-ago history of the target ends at or before the origin because the longest horizon "
    "is shorter than a year.",
    "Days the store was planned closed are missing history, not zero demand; forecasts for "
    "planned closed days are 0.",
    "Training rows have their year-ago features masked at the rate test rows lack them (at "
    "least 5 %), so gaps at forecast time are a pattern the model has seen.",
]


def _row_draw(frame: pl.DataFrame, seed: int) -> np.ndarray:
    """A uniform number in [0, 1) per (store_id, sku, target_date) row, stable across runs."""
    keys = frame.select(pl.concat_str("store_id", pl.lit("|"), "sku").alias("k"))["k"]
    crc = {k: zlib.crc32(k.encode()) for k in keys.unique().to_list()}
    series_hash = keys.replace_strict(crc, return_dtype=pl.UInt64).to_numpy()
    day = frame["target_date"].cast(pl.Int32).to_numpy().astype(np.uint64)
    with np.errstate(over="ignore"):
        mixed = _splitmix64(_splitmix64(series_hash ^ np.uint64(seed)) ^ day)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def mask_year_ago(
    frame: pl.DataFrame, rate: float, seed: int, grain: Grain = DAILY
) -> pl.DataFrame:
    """Null the year-ago columns (and the baseline built from them) on train rows drawn at
    `rate`; other splits are left as they are."""
    drawn = pl.Series("_masked", _row_draw(frame, seed ^ _MASK_SALT) < rate)
    masked = (pl.col("split") == "train") & pl.col("_masked")
    return (
        frame.with_columns(drawn)
        .with_columns(
            [
                pl.when(masked).then(None).otherwise(pl.col(c)).alias(c)
                for c in grain.year_ago_columns()
                if c in frame.columns
            ]
        )
        .drop("_masked")
    )


def fallback_shares(rows: pl.DataFrame, grain: Grain = DAILY) -> dict[str, Any]:
    """How honest the history is on these rows: the profile baseline's source and the share
    with year-ago history."""
    n = rows.height or 1
    sources = dict(rows.group_by("profile_source").len().iter_rows())
    names = F.profile_source_names(grain)
    return {
        "rows": rows.height,
        "profile_source_share": {names[k]: round(v / n, 4) for k, v in sorted(sources.items())},
        "year_ago_available_share": round(
            rows["units_mean_same_week_last_year"].is_not_null().sum() / n, 4
        ),
    }


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def draw_horizons(frame: pl.DataFrame, seed: int, max_horizon: int) -> pl.Series:
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
    grain: Grain = DAILY,
) -> dict[str, Any]:
    """Pooled in-sample scale for MASE: mean |y(d) - y(d - lag)| over every store-SKU period d
    in the train target window where both periods are observed (lag = one season, or one
    period without a within-year season); overall and per segment value."""
    season = grain.scale_lag
    lagged = state.select(
        "store_id",
        "sku",
        (pl.col("date") + pl.duration(days=season * grain.days)).alias("date"),
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


def _examples_by_series_chunk(
    mart: pl.DataFrame,
    origins: pl.DataFrame,
    encodings: dict[str, list[str]],
    grain: Grain,
    series_per_chunk: int,
    keep_state_after,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`features.build_examples` for `series_per_chunk` series at a time: every feature is
    computed within its own series (the encodings and the last period are the whole mart's),
    so the chunks' examples are exactly the whole mart's. Also returns the state's observed
    sales (store_id, sku, date, units_sold) after `keep_state_after`."""
    series = mart.select(F.KEYS).unique().sort(F.KEYS)
    last = mart["date"].max()
    parts, kept = [], []
    for start in range(0, series.height, series_per_chunk):
        keys = series.slice(start, series_per_chunk)
        part = mart.join(keys, on=F.KEYS, how="semi")
        state = F.history_state(part, grain, last=last)
        part_origins = origins.join(keys, on=F.KEYS, how="semi")
        parts.append(F.build_examples(part, part_origins, encodings, state, grain))
        kept.append(
            state.filter(pl.col("date") > keep_state_after).select(*F.KEYS, "date", "units_sold")
        )
    return pl.concat(parts, how="vertical_relaxed"), pl.concat(kept, how="vertical_relaxed")


def build_demand_training_set(
    mart: pl.DataFrame,
    *,
    train_days: int = 365,
    horizon_seed: int = 0,
    grain: Grain = DAILY,
    series_per_chunk: int = SERIES_PER_CHUNK,
    max_train_rows: int = MAX_TRAIN_ROWS,
) -> TrainingSet:
    if mart.height == 0:
        raise ValueError("marts.demand_features is empty: nothing to train on")
    missing = {"store_id", "sku", "date", TARGET, "stockout", *F.NUMERIC_PLAN_COLUMNS}
    missing -= set(mart.columns)
    if missing:
        raise ValueError(f"marts.demand_features lacks column(s): {', '.join(sorted(missing))}")
    F.check_grain(mart, grain)
    max_horizon, d = grain.max_horizon, grain.days
    data_start, data_end = mart["date"].min(), mart["date"].max()
    test_origin = data_end - timedelta(days=max_horizon * d)
    val_origin = test_origin - timedelta(days=max_horizon * d)
    available = (val_origin - data_start).days
    # Whole periods: the training window starts on the grid of the data's dates.
    effective_days = min(train_days, available) // d * d
    if effective_days < MIN_TRAIN_DAYS:
        raise ValueError(
            f"marts.demand_features spans {data_start}..{data_end}: after holding out "
            f"2 x {grain.periods(max_horizon)} only {available} training day(s) remain "
            f"(need >= {MIN_TRAIN_DAYS})"
        )
    train_start = val_origin - timedelta(days=effective_days)  # exclusive

    targets = mart.select("store_id", "sku", pl.col("date").alias("target_date"))
    train_targets = targets.filter(
        (pl.col("target_date") > train_start) & (pl.col("target_date") <= val_origin)
    )
    if grain.every_horizon:
        horizons = pl.DataFrame(
            {"horizon": list(range(1, max_horizon + 1))}, schema={"horizon": pl.Int32}
        )
        with_horizons = train_targets.join(horizons, how="cross")
    else:
        with_horizons = train_targets.with_columns(
            draw_horizons(train_targets, horizon_seed, max_horizon)
        )
    sampled_share = 1.0
    if with_horizons.height > max_train_rows:
        sampled_share = max_train_rows / with_horizons.height
        keep = _row_draw(with_horizons, horizon_seed ^ _SAMPLE_SALT) < sampled_share
        with_horizons = with_horizons.filter(pl.Series(keep))
    train_origins = with_horizons.with_columns(
        (pl.col("target_date") - pl.duration(days=pl.col("horizon") * d)).alias("origin_date"),
        pl.lit("train").alias("split"),
    )

    def fixed_origin(origin, split: str) -> pl.DataFrame:
        window = targets.filter(
            (pl.col("target_date") > origin)
            & (pl.col("target_date") <= origin + timedelta(days=max_horizon * d))
        )
        return window.with_columns(
            pl.lit(origin).alias("origin_date"),
            ((pl.col("target_date") - pl.lit(origin)).dt.total_days() // d)
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
    # The MASE scale reads the observed sales of the train window and one season before it.
    scale_since = train_start - timedelta(days=grain.scale_lag * d)
    examples, state = _examples_by_series_chunk(
        mart, origins, encodings, grain, series_per_chunk, keep_state_after=scale_since
    )
    feature_cols = F.feature_columns(mart, grain)
    split_order = pl.col("split").replace_strict(
        {"train": 0, "validation": 1, "test": 2}, return_dtype=pl.Int8
    )
    frame = examples.sort(split_order, "store_id", "sku", "target_date").select(
        *ENTITY_COLUMNS,
        "split",
        *feature_cols,
        TARGET,
        "stockout",
        "profile_source",
        *[c for c in F.CATEGORICAL_COLUMNS if c != "store_id"],
    )
    test_rows = frame.filter(pl.col("split") == "test")
    test_missing = 1.0 - fallback_shares(test_rows, grain)["year_ago_available_share"]
    mask_rate = max(MIN_YEAR_AGO_MASK, test_missing if test_rows.height else 0.0)
    frame = mask_year_ago(frame, mask_rate, horizon_seed, grain)
    attributes = mart.select("store_id", "sku", *F.SEGMENT_COLUMNS).unique(
        subset=["store_id", "sku"], keep="last"
    )
    counts = dict(frame.group_by("split").len().iter_rows())
    windows = {
        "train": {
            "start": (train_start + timedelta(days=1)).isoformat(),
            "end": val_origin.isoformat(),
            "origin_start": (train_start + timedelta(days=1 - max_horizon * d)).isoformat(),
            "origin_end": (val_origin - timedelta(days=d)).isoformat(),
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
        "grain": grain.name,
        "max_horizon": max_horizon,
        "train_days_requested": train_days,
        "train_days": effective_days,
        "horizon_seed": horizon_seed,
        "rows": {s: int(counts.get(s, 0)) for s in ("train", "validation", "test")},
        "mart_rows": mart.height,
        "train_rows_sampled_share": round(sampled_share, 4),
        "mase_scale": mase_scales(state, attributes, train_start, val_origin, grain),
        "year_ago_mask_rate": round(mask_rate, 4),
        "fallbacks_test": fallback_shares(test_rows, grain),
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
