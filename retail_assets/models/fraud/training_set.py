"""Point-in-time training set for payment fraud: windows that respect the label delay.

Labels arrive late. A fraud is known when its chargeback (about 2-60 days) or an investigation
lands; a legitimate payment is only *confirmed* when its 60-day dispute window closes. Filtering
a recent window on `label_available_at <= cutoff` therefore keeps its early-reported frauds but
drops most of its legitimate payments, and the class balance of that window is biased towards
fraud. The windows below only ever use *matured* windows, in which every payment's label had
arrived by the cutoff that applies to it, so the class balance is the real one:

    E   = the latest transaction in the data ("now", the evaluation date; the label cutoff
          for validation and test)
    A   = E floored to midnight (window edges are whole days)
    test        [A - M - T,      A - M)        labels known at E  (M = label maturity, 60 d)
    validation  [Tv = A - M - T - V, A - M - T)  labels known at E
    train       [Tv - M - W*k,   Tv - M)       labels known at Tv (W = 30 d; k = 1, 2, ...)
    fresh       [max(A - F, A - M), E]       frauds known at E only (F = 28 d), into train

The model is thus trained as if at time Tv (only labels known then), validated and tested on
the windows that followed, scored with labels known at E.

The fresh window is why a retrain can answer a new fraud pattern. Matured windows end about
five months before E, so a pattern that began days ago is in none of them, and a retrain
monitoring asks for would learn nothing new. The frauds already known in the last F days
(investigations in days, early chargebacks) are certain labels, and go into train; the
window's other payments are not taken as legitimate (they may still be charged back) and are
left out, so the legitimate side is learnt from the matured windows alone. The fresh window
lies after the test window (F <= M), so no test row is trained on; but validation and test
cannot show what it adds (the new pattern is not in them): `bench_fraud_recovery.py`
measures that, on the weeks after each retrain. `k` grows in W-day steps until the
train window holds `min_train_positives` frauds (small merchants, tiny data) or the history
runs out; `info["train_window_extensions"]` records how far it went.

Every label filter is applied explicitly, not assumed from the delay distribution: a train row
whose label arrived after Tv (e.g. a chargeback beyond the usual window) is left out and
counted, and so is a validation/test row whose label was not known at E.

Features. `marts/transaction_features` holds the payments and their labels, not features: the
behavioural features (velocity, devices, cards per address, the customer's prior spend,
tenure, time and geography flags) are defined once, in `online.FraudFeatureState`, which
serving runs per request. `online.replay_features` replays the whole payment history through
it, so every example's features come from strictly earlier payments by the very code that will
score live payments. Only the examples that end up in a split are scored; every payment is
history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl

from retail_assets.models.fraud.online import FEATURES as STATE_FEATURES
from retail_assets.models.fraud.online import REPLAY_COLUMNS, VELOCITY_FEATURES, replay_features
from retail_assets.models.lifecycle.spec import TrainingSet
from retail_assets.monitoring.drift import RECENT_FRAUD_DAYS, fraud_rate_change

TRANSACTIONS = "marts/transaction_features"
CUSTOMERS = "marts/dim_customers"

TARGET = "is_fraud"
ENTITY_COLUMNS = ["transaction_id", "transaction_ts"]
SEGMENT_COLUMNS = ["channel", "customer_segment", "customer_region"]
LABEL_COLUMNS = ("is_fraud", "fraud_type", "label_source", "label_available_at")
# True on the train rows that come from the fresh window (known frauds of the last weeks).
FRESH_COLUMN = "fresh_label"
UNKNOWN_SEGMENT = "unknown"

# Raw payment fields the model reads as they are, then every feature the online state computes.
RAW_NUMERIC_FEATURES = ["amount", "n_items"]
NUMERIC_FEATURES = [*RAW_NUMERIC_FEATURES, *STATE_FEATURES]
# feature column -> the string column it encodes (customer_* come from dim_customers)
CATEGORICAL_FEATURES = {
    "channel_code": "channel",
    "payment_method_code": "payment_method",
    "top_department_code": "top_department",
    "customer_segment_code": "customer_segment",
    "customer_region_code": "customer_region",
}
FEATURE_COLUMNS = [*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]
# Drift monitoring compares these numeric features across windows; not the ones that grow
# with time by construction (a customer's tenure and prior payments always differ from a year
# ago, and that is not drift) nor the clock's (hour, weekday: the same every year).
NOT_DRIFT_MONITORED = frozenset(
    {"customer_tenure_days", "customer_prior_txn_count", "hour_of_day", "day_of_week"}
)
DRIFT_MONITORED_NUMERIC = [f for f in NUMERIC_FEATURES if f not in NOT_DRIFT_MONITORED]
# Mart columns the training set reads besides the replay's inputs.
PAYMENT_COLUMNS = [
    *ENTITY_COLUMNS,
    "customer_id",
    *RAW_NUMERIC_FEATURES,
    *(c for c in CATEGORICAL_FEATURES.values() if not c.startswith("customer_")),
]
# Non-negative, heavy-tailed inputs: the logistic baseline sees them on a log scale.
LOG_SCALE_FEATURES = [
    "amount",
    *VELOCITY_FEATURES,
    "ship_address_distinct_cards_7d",
    "customer_prior_txn_count",
    "customer_prior_avg_amount",
    "amount_to_customer_avg_ratio",
    "customer_tenure_days",
]

assert not set(FEATURE_COLUMNS) & set(LABEL_COLUMNS), "label columns must never be features"


@dataclass(frozen=True)
class WindowConfig:
    """Window lengths in days (see the module docstring)."""

    label_maturity_days: int = 60
    test_days: int = 14
    validation_days: int = 14
    train_days: int = 30
    train_step_days: int = 30
    min_train_positives: int = 100
    min_eval_positives: int = 25
    fresh_fraud_days: int = 28
    # "rise": only when the recent known-fraud test finds a rise (a new pattern);
    # "always": on every build (ordinary times pay for it: see the module docstring).
    fresh_when: str = "rise"

    def __post_init__(self) -> None:
        for name in (
            "label_maturity_days",
            "test_days",
            "validation_days",
            "train_days",
            "train_step_days",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"WindowConfig.{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.fresh_fraud_days <= self.label_maturity_days:
            raise ValueError(
                f"WindowConfig.fresh_fraud_days must be in [0, label_maturity_days "
                f"{self.label_maturity_days}] (the fresh window must not reach back into the "
                f"test window), got {self.fresh_fraud_days}"
            )
        if self.fresh_when not in ("rise", "always"):
            raise ValueError(
                f"WindowConfig.fresh_when must be 'rise' or 'always', got {self.fresh_when!r}"
            )
        if self.min_train_positives < 1 or self.min_eval_positives < 0:
            raise ValueError(
                "WindowConfig.min_train_positives must be >= 1, min_eval_positives >= 0"
            )


def _iso(value: datetime) -> str:
    return value.isoformat()


def _require_columns(
    frame: pl.DataFrame, columns: list[str] | tuple[str, ...], source: str
) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} is missing column(s) {', '.join(missing)}")


def encode_categories(frame: pl.DataFrame, vocabularies: dict[str, list[str]]) -> pl.DataFrame:
    """Add `<feature>` integer codes: index in the vocabulary, -1 for unknown or missing."""
    exprs = []
    for feature, source in CATEGORICAL_FEATURES.items():
        vocabulary = vocabularies[feature]
        mapping = {value: code for code, value in enumerate(vocabulary)}
        exprs.append(
            pl.col(source)
            .replace_strict(mapping, default=-1, return_dtype=pl.Int32)
            .fill_null(-1)
            .alias(feature)
        )
    return frame.with_columns(exprs)


def join_customers(transactions: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """Customer segment and region from dim_customers (missing customer -> "unknown")."""
    _require_columns(customers, ["customer_id", "segment", "region"], CUSTOMERS)
    dims = customers.select(
        "customer_id",
        pl.col("segment").alias("customer_segment"),
        pl.col("region").alias("customer_region"),
    ).unique("customer_id", keep="first")
    return transactions.join(dims, on="customer_id", how="left")


def prepare_features(frame: pl.DataFrame, encodings: dict[str, list[str]]) -> pl.DataFrame:
    """Model inputs from mart columns joined with the customer dimension: categorical codes,
    numeric features as Float64 (booleans 0/1, NULL kept as missing), segments filled."""
    return encode_categories(frame, encodings).with_columns(
        [pl.col(c).cast(pl.Float64) for c in NUMERIC_FEATURES]
        + [pl.col(c).fill_null(UNKNOWN_SEGMENT) for c in SEGMENT_COLUMNS]
    )


def scoring_frame(
    transactions: pl.DataFrame,
    customers: pl.DataFrame,
    encodings: dict[str, list[str]],
    score: pl.Series | None = None,
) -> pl.DataFrame:
    """Payments of `marts.transaction_features` ready for `predict`, by the same code that built
    the training set: features replayed from the payments before each one (every row of
    `transactions` is history), encoded with `encodings`. `score` (a boolean per row, default
    all) picks the rows returned, in the order of `transactions`."""
    _require_columns(transactions, [*PAYMENT_COLUMNS, *REPLAY_COLUMNS], TRANSACTIONS)
    features = replay_features(transactions, customers, score)
    frame = features.join(
        transactions.select(list(dict.fromkeys([*PAYMENT_COLUMNS, *REPLAY_COLUMNS]))),
        on="transaction_id",
        how="left",
        maintain_order="left",
    )
    return prepare_features(join_customers(frame, customers), encodings)


def compute_windows(
    transaction_ts: pl.Series,
    is_fraud: pl.Series,
    label_available_at: pl.Series,
    config: WindowConfig,
) -> dict[str, Any]:
    """The split boundaries for data ending at max(transaction_ts) (see module docstring)."""
    if transaction_ts.len() == 0:
        raise ValueError("marts/transaction_features is empty: nothing to train on")
    data_start: datetime = transaction_ts.min()
    data_end: datetime = transaction_ts.max()
    anchor = data_end.replace(hour=0, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    ts = transaction_ts.to_numpy()
    fraud = is_fraud.fill_null(False).to_numpy().astype(bool)
    label_ts = label_available_at.to_numpy()
    has_label = ~np.isnat(label_ts)

    def frauds_in(start: datetime, end: datetime, label_cutoff: datetime) -> int:
        rows = (ts >= np.datetime64(start)) & (ts < np.datetime64(end))
        known = has_label & (label_ts <= np.datetime64(label_cutoff))
        return int((rows & known & fraud).sum())

    def extend_back(
        end: datetime, days: int, step: int, minimum: int, cutoff: datetime, floor: datetime
    ):
        """Grow [end - days - k*step, end) until it holds `minimum` frauds or reaches `floor`."""
        k = 0
        while True:
            start = end - (days + k * step) * day
            positives = frauds_in(start, end, cutoff)
            if positives >= minimum or start <= floor:
                return start, k, positives
            k += 1

    test_end = anchor - config.label_maturity_days * day
    # Each evaluation window may grow to at most a quarter of the history before test_end, so
    # that training keeps at least half of it.
    max_eval_span = (test_end - data_start) / 4
    test_start, test_ext, test_pos = extend_back(
        test_end,
        config.test_days,
        config.test_days,
        config.min_eval_positives,
        data_end,
        test_end - max_eval_span,
    )
    validation_start, val_ext, val_pos = extend_back(
        test_start,
        config.validation_days,
        config.validation_days,
        config.min_eval_positives,
        data_end,
        test_start - max_eval_span,
    )
    train_end = validation_start - config.label_maturity_days * day
    if train_end <= data_start:
        span = (data_end - data_start).days
        needed = 2 * config.label_maturity_days + config.test_days + config.validation_days + 1
        raise ValueError(
            f"marts/transaction_features spans {span} days ({data_start} .. {data_end}); the fraud "
            f"windows need more than {needed} days (two label-maturity gaps of "
            f"{config.label_maturity_days} d, test {config.test_days} d, validation "
            f"{config.validation_days} d, and some training history)"
        )
    train_start, extensions, positives = extend_back(
        train_end,
        config.train_days,
        config.train_step_days,
        config.min_train_positives,
        validation_start,
        data_start,
    )
    # Fresh frauds: the last `fresh_fraud_days`, after the test window, labels known at E.
    fresh_start = max(test_end, anchor - config.fresh_fraud_days * day)
    fresh = (fresh_start, anchor + day, data_end) if config.fresh_fraud_days else None
    return {
        "data_start": data_start,
        "data_end": data_end,
        "fresh": fresh,
        "train": (train_start, train_end, validation_start),
        "validation": (validation_start, test_start, data_end),
        "test": (test_start, test_end, data_end),
        "train_window_extensions": extensions,
        "train_positives": positives,
        "min_train_positives_met": positives >= config.min_train_positives,
        "test_window_extensions": test_ext,
        "validation_window_extensions": val_ext,
        "test_positives": test_pos,
        "validation_positives": val_pos,
    }


def fresh_decision(
    transactions: pl.DataFrame, windows: dict[str, Any], config: WindowConfig
) -> str:
    """Whether the fresh window goes into train (`windows["fresh"]` is set to None when not),
    and why, in words. With `fresh_when="rise"`: when the share of paying cards with a known
    fraud over the last `RECENT_FRAUD_DAYS` rose against the same weeks a year earlier (labels
    known the same time after), the test fraud monitoring runs."""
    if windows["fresh"] is None:
        return "fresh window off (fresh_fraud_days = 0)"
    if config.fresh_when == "always":
        return "fresh window on every build (fresh_when = always)"
    now = windows["data_end"]
    rise = fraud_rate_change(
        transactions,
        now - timedelta(days=RECENT_FRAUD_DAYS),
        now,
        f"last {RECENT_FRAUD_DAYS} days",
        recent_rise=True,
    )
    if not rise.drifted:
        windows["fresh"] = None
        return f"fresh window not used: no rise in known frauds ({rise.note})"
    return f"fresh window used: known frauds rose ({rise.note}, p = {rise.p_value:.2g})"


def build_fraud_training_set(
    sources: dict[str, pl.DataFrame], config: WindowConfig | None = None
) -> TrainingSet:
    """Train / validation / test frames from the marts, label delay respected."""
    config = config or WindowConfig()
    if TRANSACTIONS not in sources or CUSTOMERS not in sources:
        raise ValueError(
            f"fraud training set needs sources {TRANSACTIONS!r} and {CUSTOMERS!r}, got {sorted(sources)}"
        )
    transactions = sources[TRANSACTIONS]
    base_columns = [*PAYMENT_COLUMNS, *LABEL_COLUMNS]
    _require_columns(transactions, [*base_columns, *REPLAY_COLUMNS], TRANSACTIONS)
    duplicated = transactions["transaction_id"].is_duplicated()
    if duplicated.any():
        example = transactions.filter(duplicated)["transaction_id"][0]
        raise ValueError(f"{TRANSACTIONS} has duplicate transaction_id (e.g. {example!r})")

    windows = compute_windows(
        transactions["transaction_ts"],
        transactions["is_fraud"],
        transactions["label_available_at"],
        config,
    )
    fresh_why = fresh_decision(transactions, windows, config)
    frame = transactions.select(base_columns)

    ts = pl.col("transaction_ts")
    split_expr = pl.lit(None, dtype=pl.String)
    for name in ("train", "validation", "test"):
        start, end, _ = windows[name]
        split_expr = pl.when((ts >= start) & (ts < end)).then(pl.lit(name)).otherwise(split_expr)
    label_cutoff_expr = pl.lit(None, dtype=pl.Datetime("us"))
    for name in ("train", "validation", "test"):
        _, _, cutoff = windows[name]
        label_cutoff_expr = (
            pl.when(pl.col("split") == name).then(pl.lit(cutoff)).otherwise(label_cutoff_expr)
        )
    if windows["fresh"] is not None:
        fresh_start, fresh_end, _ = windows["fresh"]
        in_fresh = (ts >= fresh_start) & (ts < fresh_end)
    else:
        in_fresh = pl.lit(False)
    frame = (
        frame.with_columns(split_expr.alias("split"), in_fresh.alias(FRESH_COLUMN))
        .with_columns(
            pl.when(pl.col(FRESH_COLUMN))
            .then(pl.lit("train"))
            .otherwise(pl.col("split"))
            .alias("split")
        )
        .filter(pl.col("split").is_not_null())
        .with_columns(
            pl.when(pl.col(FRESH_COLUMN))
            .then(pl.lit(windows["data_end"]))
            .otherwise(label_cutoff_expr)
            .alias("label_cutoff")
        )
    )
    labelled = (
        pl.col("is_fraud").is_not_null()
        & pl.col("label_available_at").is_not_null()
        & (pl.col("label_available_at") <= pl.col("label_cutoff"))
    )
    # Only the number of rows is recorded: what those labels say is not known at the cutoff.
    excluded = (
        frame.filter(~labelled & ~pl.col(FRESH_COLUMN)).group_by("split").agg(pl.len().alias("n"))
    )
    excluded_by_split = dict(excluded.iter_rows())
    # From the fresh window only the frauds already known: a payment without a fraud label
    # there may still be charged back, so it is no evidence of a legitimate payment.
    fresh_payments = frame.filter(pl.col(FRESH_COLUMN)).height
    frame = frame.filter(labelled & (~pl.col(FRESH_COLUMN) | pl.col("is_fraud")))
    # The features of the kept examples, replayed from every payment before each of them.
    features = replay_features(
        transactions,
        sources[CUSTOMERS],
        score=transactions["transaction_id"].is_in(frame["transaction_id"].implode()),
    )
    frame = join_customers(
        frame.join(features, on="transaction_id", how="left", maintain_order="left"),
        sources[CUSTOMERS],
    )

    train_rows = frame.filter(pl.col("split") == "train")
    encodings = {
        feature: sorted(v for v in train_rows[source].unique().to_list() if v is not None)
        for feature, source in CATEGORICAL_FEATURES.items()
    }
    frame = prepare_features(frame, encodings).with_columns(pl.col(TARGET).cast(pl.Int8))
    split_order = pl.col("split").replace_strict({"train": 0, "validation": 1, "test": 2})
    frame = frame.sort([split_order, "transaction_ts", "transaction_id"]).select(
        *ENTITY_COLUMNS,
        "split",
        *FEATURE_COLUMNS,
        TARGET,
        *SEGMENT_COLUMNS,
        "customer_id",
        "payment_method",
        "top_department",
        "fraud_type",
        "label_source",
        "label_available_at",
        "label_cutoff",
        FRESH_COLUMN,
    )

    counts = {
        row["split"]: {"rows": row["rows"], "frauds": row["frauds"]}
        for row in frame.group_by("split")
        .agg(pl.len().alias("rows"), pl.col(TARGET).sum().cast(pl.Int64).alias("frauds"))
        .iter_rows(named=True)
    }
    for name in ("train", "validation", "test"):
        if counts.get(name, {}).get("rows", 0) == 0:
            raise ValueError(
                f"fraud training set: the {name} window {windows[name][:2]} holds no labelled payments"
            )
    if counts["train"]["frauds"] == 0:
        raise ValueError("fraud training set: no labelled fraud in the whole training history")

    window_dict = {
        name: {
            "start": _iso(windows[name][0]),
            "end": _iso(windows[name][1]),
            "label_cutoff": _iso(windows[name][2]),
        }
        for name in ("train", "validation", "test", "fresh")
        if windows[name] is not None
    }
    fresh_frauds = int(frame[FRESH_COLUMN].sum())
    notes = [
        "train uses only labels known at the train label cutoff (the validation start); its "
        f"transactions end {config.label_maturity_days} days earlier, so every label had matured",
        "validation and test use the labels known at the evaluation date (the data end); their "
        f"windows end {config.label_maturity_days} days before it, so those labels had matured "
        "too, but they were NOT known when the model was (notionally) trained",
        "customer segment/region come from dim_customers as of the data end",
    ]
    notes.append(fresh_why)
    if windows["fresh"] is not None:
        notes.append(
            f"train also holds the {fresh_frauds} frauds known at the data end among the "
            f"{fresh_payments} payments of the last {config.fresh_fraud_days} days (the fresh "
            "window, after the test window): a new pattern is learnt weeks before its labels "
            "mature. Its payments without a fraud label are left out, not taken as legitimate: "
            "they may still be charged back"
        )
    if windows["train_window_extensions"]:
        notes.append(
            f"train window extended {windows['train_window_extensions']} x {config.train_step_days} d "
            f"to reach {config.min_train_positives} frauds (found {windows['train_positives']})"
        )
    for name in ("test", "validation"):
        if windows[f"{name}_window_extensions"]:
            length = config.test_days if name == "test" else config.validation_days
            notes.append(
                f"{name} window extended back {windows[f'{name}_window_extensions']} x {length} d to "
                f"hold {config.min_eval_positives} frauds (found {windows[f'{name}_positives']})"
            )
    if not windows["min_train_positives_met"]:
        notes.append(
            f"the whole history holds only {windows['train_positives']} labelled frauds "
            f"(< min_train_positives {config.min_train_positives})"
        )
    info: dict[str, Any] = {
        "data_start": _iso(windows["data_start"]),
        "data_end": _iso(windows["data_end"]),
        "evaluation_label_cutoff": _iso(windows["data_end"]),
        "train_label_cutoff": _iso(windows["train"][2]),
        "window_config": {
            "label_maturity_days": config.label_maturity_days,
            "test_days": config.test_days,
            "validation_days": config.validation_days,
            "train_days": config.train_days,
            "train_step_days": config.train_step_days,
            "min_train_positives": config.min_train_positives,
            "min_eval_positives": config.min_eval_positives,
            "fresh_fraud_days": config.fresh_fraud_days,
            "fresh_when": config.fresh_when,
        },
        "fresh_window": fresh_why,
        "fresh_frauds": fresh_frauds,
        "fresh_payments": fresh_payments,
        "test_window_days": (windows["test"][1] - windows["test"][0]).days,
        "validation_window_days": (windows["validation"][1] - windows["validation"][0]).days,
        "test_window_extensions": windows["test_window_extensions"],
        "validation_window_extensions": windows["validation_window_extensions"],
        "train_window_days": (windows["train"][1] - windows["train"][0]).days,
        "train_window_extensions": windows["train_window_extensions"],
        "min_train_positives_met": windows["min_train_positives_met"],
        "rows": {name: counts[name]["rows"] for name in ("train", "validation", "test")},
        "frauds": {name: counts[name]["frauds"] for name in ("train", "validation", "test")},
        "excluded_label_not_known_at_cutoff": {
            name: int(excluded_by_split.get(name, 0)) for name in ("train", "validation", "test")
        },
        "categorical_sources": dict(CATEGORICAL_FEATURES),
        "log_scale_features": list(LOG_SCALE_FEATURES),
        "notes": notes,
    }
    return TrainingSet(
        frame=frame,
        feature_columns=list(FEATURE_COLUMNS),
        target_column=TARGET,
        entity_columns=list(ENTITY_COLUMNS),
        segment_columns=list(SEGMENT_COLUMNS),
        windows=window_dict,
        encodings=encodings,
        info=info,
    )
