"""The LightGBM LambdaRank ranker over the candidate union.

Training examples come from weekly origins before the validation origin: at each origin, the
candidates and features of every customer who engaged in the following LABEL_DAYS, labelled
with the strongest engagement (purchase 3, cart 2, click 1, 0). Queries without any relevant
candidate carry no ranking signal and are dropped from training (they still count, as misses,
in the evaluation). Early stopping on NDCG@10 of the validation origin, whose label window
ends where the test window begins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import lightgbm as lgb
import numpy as np
import polars as pl

from retail_assets.models.recommend.features import FEATURES, add_features, candidate_table, labels

LABEL_DAYS = 7
TRAIN_ORIGINS = 12  # weekly: a quarter of behaviour


@dataclass(frozen=True)
class RankerConfig:
    num_boost_round: int = 500
    early_stopping_rounds: int = 40
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_data_in_leaf: int = 50
    seed: int = 0


def examples(
    events: pl.DataFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    at: datetime,
    days: int = LABEL_DAYS,
) -> pl.DataFrame:
    """Candidates with features and relevance for the customers who engaged in [at, at+days)."""
    who = (
        events.filter(
            pl.col("customer_id").is_not_null(),
            pl.col("ts") >= at,
            pl.col("ts") < at + timedelta(days=days),
        )
        .select("customer_id")
        .unique()
        .sort("customer_id")
    )
    table = candidate_table(events, customers, who, at)
    return labels(add_features(table, events, products, at), events, at, days).with_columns(
        pl.lit(at).alias("origin")
    )


def _with_signal(frame: pl.DataFrame) -> pl.DataFrame:
    keep = frame.group_by("origin", "customer_id").agg((pl.col("relevance") > 0).any().alias("k"))
    return (
        frame.join(keep.filter("k"), on=["origin", "customer_id"])
        .drop("k")
        .sort("origin", "customer_id")
    )


def _groups(frame: pl.DataFrame) -> np.ndarray:
    return frame.group_by("origin", "customer_id", maintain_order=True).len()["len"].to_numpy()


def train_ranker(
    events: pl.DataFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    test_at: datetime,
    config: RankerConfig | None = None,
) -> tuple[lgb.Booster, dict]:
    """The ranker for a test window starting at `test_at`, and what it was trained on."""
    config = config or RankerConfig()
    validation_at = test_at - timedelta(days=LABEL_DAYS)
    origins = [validation_at - timedelta(days=LABEL_DAYS * i) for i in range(1, TRAIN_ORIGINS + 1)]
    train = _with_signal(pl.concat([examples(events, customers, products, at) for at in origins]))
    valid = _with_signal(examples(events, customers, products, validation_at))
    if train.height == 0 or valid.height == 0:
        raise ValueError(
            f"no engagement to learn from: {train.height} training and {valid.height} "
            f"validation candidate rows with a relevant item before {test_at:%Y-%m-%d}"
        )
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": config.learning_rate,
        "num_leaves": config.num_leaves,
        "min_data_in_leaf": config.min_data_in_leaf,
        "seed": config.seed,
        "deterministic": True,
        "num_threads": 2,
        "verbose": -1,
    }
    train_set = lgb.Dataset(
        train.select(FEATURES).to_numpy(),
        label=train["relevance"].to_numpy(),
        group=_groups(train),
        feature_name=FEATURES,
    )
    valid_set = lgb.Dataset(
        valid.select(FEATURES).to_numpy(),
        label=valid["relevance"].to_numpy(),
        group=_groups(valid),
        reference=train_set,
    )
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.num_boost_round,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)],
    )
    return booster, {
        "origins": [str(o) for o in origins],
        "validation_origin": str(validation_at),
        "train_rows": train.height,
        "train_queries": len(_groups(train)),
        "validation_ndcg_at_10": float(booster.best_score["valid_0"]["ndcg@10"]),
        "best_iteration": int(booster.best_iteration),
    }


def rank(booster: lgb.Booster, frame: pl.DataFrame, k: int) -> pl.DataFrame:
    """customer_id, sku, source, rank: the top k of each customer's candidates by score."""
    scores = booster.predict(
        frame.select(FEATURES).to_numpy(), num_iteration=booster.best_iteration
    )
    return (
        frame.select("customer_id", "sku", "source")
        .with_columns(pl.Series("score", scores))
        .sort(["customer_id", "score", "sku"], descending=[False, True, False])
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1).over("customer_id").alias("rank"))
    )
