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

from retail_assets.models.recommend.evaluate import targets
from retail_assets.models.recommend.features import (
    FEATURES,
    candidate_features,
    labels,
)

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
    content: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Candidates with features and relevance for the customers who engaged in [at, at+days)
    (`content`: item neighbours by embedding over the whole catalog; cut to the catalog as of
    `at` here)."""
    who = targets(events, at, days).select("customer_id").unique().sort("customer_id")
    table = candidate_features(events, customers, products, who, at, content)
    return labels(table, events, at, days).with_columns(pl.lit(at).alias("origin"))


def _with_signal(frame: pl.DataFrame) -> pl.DataFrame:
    keep = frame.group_by("origin", "customer_id").agg((pl.col("relevance") > 0).any().alias("k"))
    return (
        frame.join(keep.filter("k"), on=["origin", "customer_id"])
        .drop("k")
        .sort("origin", "customer_id")
    )


def _groups(frame: pl.DataFrame) -> np.ndarray:
    return frame.group_by("origin", "customer_id", maintain_order=True).len()["len"].to_numpy()


def training_frames(
    events: pl.DataFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    test_at: datetime,
    content: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Train examples (TRAIN_ORIGINS weekly origins) and validation examples (the origin whose
    label window ends at `test_at`), each only with queries that hold a relevant candidate."""
    validation_at = test_at - timedelta(days=LABEL_DAYS)
    origins = [validation_at - timedelta(days=LABEL_DAYS * i) for i in range(1, TRAIN_ORIGINS + 1)]
    train = _with_signal(
        pl.concat(
            [examples(events, customers, products, at, content=content) for at in reversed(origins)]
        )
    )
    valid = _with_signal(examples(events, customers, products, validation_at, content=content))
    if train.height == 0 or valid.height == 0:
        raise ValueError(
            f"no engagement to learn from: {train.height} training and {valid.height} "
            f"validation candidate rows with a relevant item before {test_at:%Y-%m-%d}"
        )
    return train, valid


def fit_ranker(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    config: RankerConfig | None = None,
    shuffle_labels_seed: int | None = None,
) -> lgb.Booster:
    """LambdaRank on `train` (queries = origin x customer), early stopping on NDCG@10 of
    `valid`. `shuffle_labels_seed` permutes the training labels (the negative control)."""
    config = config or RankerConfig()
    train, valid = train.sort("origin", "customer_id"), valid.sort("origin", "customer_id")
    label = train["relevance"].to_numpy()
    if shuffle_labels_seed is not None:
        label = np.random.default_rng(shuffle_labels_seed).permutation(label)
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
        label=label,
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
    # Keep only the trees early stopping chose: the booster, its ONNX graph and every
    # prediction then agree without a num_iteration argument.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def train_ranker(
    events: pl.DataFrame,
    customers: pl.DataFrame,
    products: pl.DataFrame,
    test_at: datetime,
    config: RankerConfig | None = None,
    content: pl.DataFrame | None = None,
) -> tuple[lgb.Booster, dict]:
    """The ranker for a test window starting at `test_at`, and what it was trained on."""
    train, valid = training_frames(events, customers, products, test_at, content)
    booster = fit_ranker(train, valid, config)
    origins = sorted({str(o) for o in train["origin"]})
    return booster, {
        "origins": origins,
        "validation_origin": str(valid["origin"][0]),
        "train_rows": train.height,
        "train_queries": len(_groups(train.sort("origin", "customer_id"))),
        "validation_ndcg_at_10": ndcg_at_10(booster, valid),
        "trees": booster.num_trees(),
    }


def ndcg_at_10(booster: lgb.Booster, frame: pl.DataFrame) -> float:
    """Mean NDCG@10 over the frame's queries (graded relevance, LightGBM's definition)."""
    scored = frame.with_columns(
        pl.Series("score", booster.predict(frame.select(FEATURES).to_numpy()))
    )
    ranked = scored.sort(
        ["origin", "customer_id", "score"], descending=[False, False, True]
    ).with_columns(
        pl.int_range(1, pl.len() + 1).over("origin", "customer_id").alias("rank"),
        pl.col("relevance").sort(descending=True).over("origin", "customer_id").alias("ideal"),
    )
    gain = lambda rel: (2.0**rel - 1) / (pl.col("rank") + 1).log(2)  # noqa: E731
    per_query = (
        ranked.filter(pl.col("rank") <= 10)
        .group_by("origin", "customer_id")
        .agg(
            gain(pl.col("relevance")).sum().alias("dcg"), gain(pl.col("ideal")).sum().alias("idcg")
        )
    )
    return float((per_query["dcg"] / per_query["idcg"]).fill_nan(0.0).mean())


def rank(booster: lgb.Booster, frame: pl.DataFrame, k: int) -> pl.DataFrame:
    """customer_id, sku, source, rank: the top k of each customer's candidates by score."""
    scores = booster.predict(frame.select(FEATURES).to_numpy())
    return (
        frame.select("customer_id", "sku", "source")
        .with_columns(pl.Series("score", scores))
        .sort(["customer_id", "score", "sku"], descending=[False, True, False])
        .group_by("customer_id", maintain_order=True)
        .head(k)
        .with_columns(pl.int_range(1, pl.len() + 1).over("customer_id").alias("rank"))
    )
