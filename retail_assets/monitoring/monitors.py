"""Per-model monitoring: drift of what the champion sees and how well it does since it was
trained, and the verdict that drives retraining. Plain functions (no Dagster): the monitoring
assets call them, tests call them directly.

* Demand: the seasonally adjusted level of sales per SKU (overall, per department and
  category) and the model's features against the same weeks a year earlier and the weeks just
  before (`drift.py`); live WAPE of the champion on target days after its test window, with
  a bootstrap interval, against its own offline test WAPE.
* Fraud: the features of recent payments (replayed through `FraudFeatureState`, the code
  serving computes them with) against the same weeks a year earlier and the weeks before; live
  ROC AUC, PR AUC, precision and recall at the bundle's threshold on payments after its test
  window whose labels have arrived, and a one-sided Fisher exact test of live recall against
  the offline test recall (labels arrive 2-60 days late; recall among the frauds known so far
  does not depend on how many are still to come).

"Live" is the champion scored on data it never saw, exactly as serving would (same bundle,
same feature code). Where serving's prediction log holds those predictions they are the same
numbers; the log is the source once serving has scored a full window.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from retail_assets.monitoring.drift import (
    MIN_LIVE_POSITIVES,
    MIN_LIVE_ROWS,
    RECENT_FRAUD_DAYS,
    WINDOW_DAYS,
    FeatureDrift,
    LevelChange,
    Windows,
    fraud_rate_change,
    level_change,
    seasonal_feature_drift,
)

# The level is tested per SKU, summed over stores. The store x SKU series of one SKU share its
# price, promotions and competitor, so they move together: tested as independent series they
# pseudo-replicate (3-8 SKUs behind 24-56 series per category at small), and the stationary
# small world showed category level drift on 20 of 21 days checked. Per SKU, none on the same
# days or through the holidays, and a department shift is still found (benchmarks/
# bench_monitoring.py).
LEVEL_SERIES = ["sku"]
# Live WAPE may exceed the champion's offline test WAPE by this much (relative) before the
# model counts as degraded: across retrains on the tiny and small data the test WAPE of
# successive champions moves by about 5-10 %, so 20 % is well outside that noise.
WAPE_MARGIN = 0.20
# Live recall at the threshold may fall this far (absolute) below offline before the model
# counts as degraded, and the drop must also be significant (one-sided Fisher exact test).
RECALL_DROP = 0.10
LIVE_P_VALUE = 0.05
# Bootstrap resamples held in memory at once (each as long as the live rows).
BOOTSTRAP_BATCH = 50
# The previous champion replaces the current one when, scored on the same live payments, its
# per-payment log loss is lower (one-sided Wilcoxon signed-rank, paired) at this level and by
# at least this much on average: strict, because a rollback undoes a gated decision.
ROLLBACK_P_VALUE = 0.001
ROLLBACK_MIN_GAIN = 0.05


@dataclass
class ModelReport:
    """One model's monitoring result: what drifted, how the champion does live, and whether
    that calls for a retrain (`actions`), with the reasons."""

    model: str
    version: str | None
    as_of: str
    windows: dict[str, str]
    feature_drift: list[FeatureDrift] = field(default_factory=list)
    level_drift: list[LevelChange] = field(default_factory=list)
    live: dict[str, Any] = field(default_factory=dict)
    offline: dict[str, Any] = field(default_factory=dict)
    degraded: bool = False
    degradation: str = ""
    notes: list[str] = field(default_factory=list)
    skew: list[dict[str, Any]] = field(default_factory=list)
    """Per feature: served vs recomputed offline (fraud; see `skew.py`)."""
    rollback_to: str | None = None
    """The previous champion, when it does significantly better than this one on the same live
    data: the monitoring asset rolls back to it."""

    @property
    def drifted_features(self) -> list[FeatureDrift]:
        return [d for d in self.feature_drift if d.drifted and d.segment == "overall"]

    @property
    def drifted_levels(self) -> list[LevelChange]:
        return [d for d in self.level_drift if d.drifted]

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_features or self.drifted_levels)

    @property
    def actions(self) -> list[str]:
        return (["rollback"] if self.rollback_to else []) + (
            ["retrain"] if self.drifted or self.degraded else []
        )

    def reasons(self) -> list[str]:
        out = []
        for d in self.drifted_levels:
            out.append(
                f"{d.what} drift in {d.segment}: {d.change:+.0%} against the season "
                f"({d.test} p={d.p_value:.2g}, n={d.series}){'; ' + d.note if d.note else ''}"
            )
        for d in self.drifted_features:
            out.append(
                f"feature {d.feature} drifted: PSI {d.psi:.2f} against the same weeks a year "
                f"earlier ({d.test} p={d.p_value:.2g}); {d.note}"
            )
        if self.degraded:
            out.append(self.degradation)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "as_of": self.as_of,
            "windows": self.windows,
            "drifted": self.drifted,
            "degraded": self.degraded,
            "actions": self.actions,
            "rollback_to": self.rollback_to,
            "reasons": self.reasons(),
            "live": self.live,
            "offline": self.offline,
            "feature_drift": [d.as_dict() for d in self.feature_drift],
            "level_drift": [d.as_dict() for d in self.level_drift],
            "skew": self.skew,
            "notes": self.notes,
        }


def _bundle(bundle_dir: Path | None):
    if bundle_dir is None:
        return None, {}, {}
    from retail_assets.models.lifecycle.bundle import LoadedBundle

    bundle = LoadedBundle(bundle_dir)
    metrics = json.loads((bundle_dir / "metrics.json").read_text())
    return bundle, bundle.signature, metrics.get("evaluation", {})


# -- demand ---------------------------------------------------------------------------------


def monitor_demand(
    daily: pl.DataFrame,
    frame: pl.DataFrame,
    feature_columns: list[str],
    bundle_dir: Path | None,
    version: str | None,
) -> ModelReport:
    """`daily`: the whole sales history per series and period (date, store_id, sku,
    demand_quantity, department, category), for the level; `frame`: the demand training set's
    rows (one per series and target date: target_date, features, units_sold), for feature
    drift and live accuracy; `bundle_dir`: the champion's bundle (None: drift only)."""
    from retail_assets.models.demand.training_set import DRIFT_MONITORED_DEMAND

    end: date = daily["date"].max()
    windows = Windows.ending(end)
    report = ModelReport("demand", version, end.isoformat(), windows.as_dict())
    report.level_drift = level_change(
        daily,
        "date",
        "demand_quantity",
        LEVEL_SERIES,
        end,
        segment_columns=tuple(c for c in ("department", "category") if c in daily.columns),
    )
    report.feature_drift = seasonal_feature_drift(
        frame,
        "target_date",
        [f for f in feature_columns if f in DRIFT_MONITORED_DEMAND],
        [],
        windows,
        segment_column="department" if "department" in frame.columns else None,
    )
    bundle, signature, evaluation = _bundle(bundle_dir)
    if bundle is None:
        report.notes.append("no champion yet: drift only")
        return report
    offline_wape = evaluation.get("overall", {}).get("challenger", {}).get("wape")
    report.offline = {"wape": offline_wape, "test_window": evaluation.get("test_window")}
    test_end = date.fromisoformat(signature["training_windows"]["test"]["end"])
    live = frame.filter(pl.col("target_date") > test_end)
    if live.height < MIN_LIVE_ROWS:
        report.live = {"rows": live.height, "since": str(test_end + timedelta(days=1))}
        report.notes.append(
            f"{live.height} forecast rows after the champion's test window (ends {test_end}): "
            f"live WAPE needs {MIN_LIVE_ROWS}"
        )
        return report
    predicted = bundle.predict_frame(live)[
        "p50" if "p50" in bundle.output_names else bundle.output_names[0]
    ]
    actual = live["units_sold"].cast(pl.Float64).to_numpy()
    errors = np.abs(predicted - actual)
    wape = float(errors.sum() / max(actual.sum(), 1e-9))
    # Percentile interval, resamples in batches: scipy's default (BCa) jackknifes every row,
    # an n x (n - 1) array that grows with the days since the test window. In `retail
    # simulate` at small it reached 21 GB after three weeks and the kernel killed the run
    # (5,000 live rows: 1.3 GB; percentile: 0.2 GB, and the same interval to 0.002).
    interval = stats.bootstrap(
        (errors, actual),
        lambda e, a, axis=-1: e.sum(axis=axis) / np.maximum(a.sum(axis=axis), 1e-9),
        paired=True,
        vectorized=True,
        method="percentile",
        batch=BOOTSTRAP_BATCH,
        n_resamples=400,
        confidence_level=0.95,
        random_state=0,
    ).confidence_interval
    report.live = {
        "rows": live.height,
        "since": str(test_end + timedelta(days=1)),
        "wape": wape,
        "wape_ci95": [float(interval.low), float(interval.high)],
    }
    if offline_wape is not None and interval.low > offline_wape * (1 + WAPE_MARGIN):
        report.degraded = True
        report.degradation = (
            f"live WAPE {wape:.3f} (95 % CI {interval.low:.3f}-{interval.high:.3f}) exceeds the "
            f"champion's offline {offline_wape:.3f} by more than {WAPE_MARGIN:.0%}"
        )
    return report


# -- fraud ----------------------------------------------------------------------------------


def fraud_monitoring_frame(
    transactions: pl.DataFrame,
    customers: pl.DataFrame,
    since: datetime,
    features: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Payments from `since` on with every model input, computed by replaying the whole
    history through the online feature state (as serving computes them); `features`: that
    replay done already (`skew.replay`, shared with the skew check)."""
    from retail_assets.models.fraud.online import replay_features
    from retail_assets.models.fraud.training_set import join_customers

    score = transactions["transaction_ts"] >= since
    if features is None:
        features = replay_features(transactions, customers, score=score)
    frame = transactions.filter(score).join(
        features, on="transaction_id", how="left", maintain_order="left"
    )
    return join_customers(frame, customers)


def monitoring_since(transactions: pl.DataFrame) -> datetime:
    """The first payment time fraud monitoring needs features for: the start of the seasonal
    reference window (a year before the current window)."""
    end = transactions["transaction_ts"].max().date()
    return datetime.combine(Windows.ending(end).season[0], datetime.min.time())


def monitor_fraud(
    transactions: pl.DataFrame,
    customers: pl.DataFrame,
    bundle_dir: Path | None,
    version: str | None,
    previous: tuple[str, Path] | None = None,
    features: pl.DataFrame | None = None,
) -> ModelReport:
    """`previous`: (version, bundle) of the champion the current one replaced, compared with it
    on the same live payments (see `ROLLBACK_P_VALUE`); `features`: the replayed features of
    the payments since `monitoring_since(transactions)` (replayed here when not given)."""
    from retail_assets.models.fraud.training_set import (
        CATEGORICAL_FEATURES,
        DRIFT_MONITORED_NUMERIC,
        prepare_features,
    )

    now: datetime = transactions["transaction_ts"].max()
    end = now.date()
    windows = Windows.ending(end)
    bundle, signature, evaluation = _bundle(bundle_dir)
    test_end = (
        datetime.fromisoformat(signature["training_windows"]["test"]["end"]) if signature else None
    )
    earliest = monitoring_since(transactions)
    frame = fraud_monitoring_frame(transactions, customers, earliest, features)
    report = ModelReport("fraud", version, now.isoformat(), windows.as_dict())
    report.feature_drift = seasonal_feature_drift(
        frame.with_columns(pl.col("transaction_ts").dt.date().alias("_day")),
        "_day",
        DRIFT_MONITORED_NUMERIC,
        [c for c in CATEGORICAL_FEATURES.values()],
        windows,
        segment_column="channel",
    )
    if bundle is None:
        report.notes.append("no champion yet: drift only")
        return report
    report.level_drift = fraud_rate_changes(transactions, test_end, now)
    offline = evaluation.get("overall", {}).get("challenger", {})
    report.offline = {
        k: offline.get(k)
        for k in ("roc_auc", "pr_auc", "precision_at_threshold", "recall_at_threshold", "support")
    } | {"test_window": evaluation.get("test_window")}
    # Known now: a fraud from its chargeback or investigation on, a genuine payment only once
    # its dispute window closed. Payments with no label yet count as genuine (provisional), so
    # live precision is a lower bound; recall among the frauds known so far is not biased.
    known = pl.col("label_available_at") <= now
    live_frame = frame.filter(pl.col("transaction_ts") >= test_end).with_columns(
        (pl.col("is_fraud").fill_null(False) & known).alias("is_fraud"),
        known.fill_null(False).alias("_final"),
    )
    report.live = _fraud_live(live_frame, bundle, signature, prepare_features, test_end)
    if previous is not None and live_frame.height >= MIN_LIVE_ROWS:
        _compare_previous(report, live_frame, bundle, previous, prepare_features)
    positives = report.live.get("positives", 0)
    if positives < MIN_LIVE_POSITIVES:
        report.notes.append(
            f"{positives} labelled frauds after the champion's test window: live metrics need "
            f"{MIN_LIVE_POSITIVES} to judge"
        )
        return report
    offline_recall, offline_support = offline.get("recall_at_threshold"), offline.get("support")
    if offline_recall is None or not offline_support:
        return report
    caught_offline = round(offline_recall * offline_support)
    table = [
        [caught_offline, int(offline_support) - caught_offline],
        [report.live["caught"], positives - report.live["caught"]],
    ]
    p_value = float(stats.fisher_exact(table, alternative="greater").pvalue)
    drop = offline_recall - report.live["recall_at_threshold"]
    report.live["recall_drop_p_value"] = p_value
    if drop >= RECALL_DROP and p_value < LIVE_P_VALUE:
        report.degraded = True
        report.degradation = (
            f"live recall at threshold {report.live['recall_at_threshold']:.2f} on "
            f"{positives} labelled frauds since {test_end:%Y-%m-%d} is {drop:.2f} below the "
            f"offline {offline_recall:.2f} (one-sided Fisher exact p={p_value:.2g})"
        )
    return report


def bundle_encodings(signature: dict[str, Any]) -> dict[str, list[str]]:
    """The fraud model's category vocabularies as its bundle stores them; a categorical input
    that had no category in training (e.g. customer segments without a customer feed) has an
    empty vocabulary, so every value encodes as unknown (-1), as in training."""
    from retail_assets.models.fraud.training_set import CATEGORICAL_FEATURES

    stored = {f["name"]: f.get("categories") for f in signature["features"]}
    return {feature: stored.get(feature) or [] for feature in CATEGORICAL_FEATURES}


def _log_loss(frame: pl.DataFrame, bundle, prepare_features) -> np.ndarray:
    encodings = bundle_encodings(bundle.signature)
    p = np.clip(
        bundle.predict_frame(prepare_features(frame, encodings))["probability"], 1e-6, 1 - 1e-6
    )
    y = frame["is_fraud"].cast(pl.Float64).to_numpy()
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _compare_previous(report: ModelReport, live: pl.DataFrame, bundle, previous, prepare_features):
    """Score the previous champion on the same live payments; advise a rollback when it is
    significantly better (paired, per payment)."""
    from retail_assets.models.lifecycle.bundle import LoadedBundle

    version, folder = previous
    current = _log_loss(live, bundle, prepare_features)
    before = _log_loss(live, LoadedBundle(folder), prepare_features)
    difference = before - current
    if np.allclose(difference, 0):
        return
    p_value = float(stats.wilcoxon(before, current, alternative="less").pvalue)
    gain = 1 - before.mean() / current.mean()
    report.live["previous_champion"] = {
        "version": version,
        "mean_log_loss": float(before.mean()),
        "mean_log_loss_current": float(current.mean()),
        "wilcoxon_p_value": p_value,
    }
    if p_value < ROLLBACK_P_VALUE and gain >= ROLLBACK_MIN_GAIN:
        report.rollback_to = version
        report.degraded = True
        report.degradation = (
            f"the previous champion v{version} does better on the same {live.height} live "
            f"payments: mean log loss {before.mean():.4f} vs {current.mean():.4f} "
            f"({gain:.0%} lower; one-sided Wilcoxon signed-rank p={p_value:.2g})"
        )


def fraud_rate_changes(
    transactions: pl.DataFrame, since: datetime, now: datetime
) -> list[LevelChange]:
    """The known fraud rate since `since` (the champion's test window), two-sided, and the
    share of paying cards with a known fraud over the last `RECENT_FRAUD_DAYS`, a rise only;
    each against the same weeks a year earlier (`fraud_rate_change`)."""
    recent = max(since, now - timedelta(days=RECENT_FRAUD_DAYS))
    return [
        fraud_rate_change(transactions, since, now, "since the champion's test window"),
        fraud_rate_change(
            transactions, recent, now, f"last {RECENT_FRAUD_DAYS} days", recent_rise=True
        ),
    ]


def _fraud_live(
    frame: pl.DataFrame, bundle, signature: dict[str, Any], prepare_features, since: datetime
) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    if frame.height == 0:
        return {"rows": 0, "positives": 0, "since": since.isoformat()}
    prepared = prepare_features(frame, bundle_encodings(signature))
    probability = bundle.predict_frame(prepared)["probability"]
    labels = frame["is_fraud"].cast(pl.Int8).to_numpy()
    threshold = signature.get("decision_threshold", 0.5)
    flagged = probability >= threshold
    positives = int(labels.sum())
    caught = int((flagged & (labels == 1)).sum())
    live: dict[str, Any] = {
        "rows": frame.height,
        "labels_final_share": float(frame["_final"].mean()),
        "positives": positives,
        "caught": caught,
        "since": since.isoformat(),
        "threshold": threshold,
        "recall_at_threshold": caught / positives if positives else None,
        "precision_at_threshold": caught / int(flagged.sum()) if flagged.any() else None,
    }
    if 0 < positives < frame.height:
        live["roc_auc"] = float(roc_auc_score(labels, probability))
        live["pr_auc"] = float(average_precision_score(labels, probability))
    by_type = (
        frame.with_columns(pl.Series("_flagged", flagged))
        .filter(pl.col("is_fraud"))
        .group_by(pl.col("fraud_type").fill_null("unknown"))
        .agg(pl.len().alias("frauds"), pl.col("_flagged").mean().alias("recall"))
        .sort("frauds", descending=True)
    )
    live["recall_by_fraud_type"] = by_type.to_dicts()
    live["note"] = (
        "payments without a label yet count as genuine: precision and AUCs are lower bounds "
        "until every dispute window has closed; recall is over the frauds known so far"
    )
    return live


__all__ = ["WINDOW_DAYS", "ModelReport", "monitor_demand", "monitor_fraud"]
