"""The fraud canary while its labels are still arriving, and the schedule that waits for it.

A fraud is reported days to weeks after the payment. The canary's loss weights each reported
fraud by how much of its label has had time to arrive, so that an arm flagging frauds nobody has
reported yet is not punished for it; the weekly retrain waits while a canary is undecided."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import canary_running

from retail_assets.core.decisions import DecisionLog
from retail_assets.core.sequential import MAX_WAITING_LOOKS, ROLLBACK, Look
from retail_assets.core.store import ArtifactStore, Rollout
from retail_assets.monitoring.canary import (
    LABEL_MATURITY_DAYS,
    MIN_REPORTED_SHARE,
    ReportingDelay,
    delay_weighted_log_loss,
    fraud_losses,
    looks_taken,
)

NOW = datetime(2026, 11, 30)


def _payments(rng, n: int, max_age_days: float, fraud_rate: float = 0.03) -> pl.DataFrame:
    """Payments of ages up to `max_age_days` before NOW; frauds reported after a log-normal
    delay (median 15 days, capped at the dispute window), as their label would land."""
    age = rng.uniform(0, max_age_days, n)
    fraud = rng.random(n) < fraud_rate
    delay = np.clip(np.exp(rng.normal(np.log(15), 0.6, n)), 1, LABEL_MATURITY_DAYS)
    ts = [NOW - timedelta(days=float(a)) for a in age]
    return pl.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "transaction_ts": ts,
            "is_fraud": fraud,
            "label_available_at": [
                t + timedelta(days=float(d)) for t, d in zip(ts, delay, strict=True)
            ],
        }
    )


def test_reporting_delay_is_measured_on_matured_frauds_and_sets_when_a_payment_counts():
    rng = np.random.default_rng(1)
    history = _payments(rng, 40_000, 240)
    delay = ReportingDelay.measure(history, NOW)
    assert delay.measured
    assert 13 < np.median(delay.delays) < 17  # the generating median: 15 days
    assert delay.reported_share(np.array([delay.min_age_days()]))[0] >= MIN_REPORTED_SHARE
    assert delay.reported_share(np.array([LABEL_MATURITY_DAYS + 1.0]))[0] == 1.0
    assert delay.summary()["counted_from_age_days"] == pytest.approx(15, abs=2)


def test_without_matured_frauds_only_payments_past_the_dispute_window_count():
    """A platform younger than the dispute window has no delay curve to trust."""
    rng = np.random.default_rng(2)
    young = _payments(rng, 5000, 50)
    delay = ReportingDelay.measure(young, NOW)
    assert not delay.measured and delay.min_age_days() == LABEL_MATURITY_DAYS
    _, counted = delay_weighted_log_loss(
        np.full(3, 0.1), np.zeros(3, bool), np.array([10.0, 59.0, 61.0]), delay
    )
    assert counted.tolist() == [False, False, True]


def test_the_weighted_loss_estimates_the_eventual_log_loss_where_known_labels_mislead():
    """Two arms on the same payments: one flags the frauds (p = 0.5 on them, 0.03 on genuine
    ones), one misses them (0.005 everywhere). On the labels known now, two weeks of payments
    make the arm that misses look better (most of its misses are not reported yet), as the
    canary judged before. The weighted loss of the payments old enough to count is within
    15 % of each arm's log loss against the eventual labels, and ranks the arms as the truth
    does."""
    rng = np.random.default_rng(3)
    history = _payments(rng, 60_000, 240)
    delay = ReportingDelay.measure(history, NOW)
    fraud = history["is_fraud"].to_numpy()
    reported = (history["is_fraud"] & (history["label_available_at"] <= NOW)).to_numpy()
    age = ((NOW - history["transaction_ts"]).dt.total_seconds() / 86400).to_numpy()
    two_weeks, five_weeks = age < 14, age < 35

    def log_loss(p, y):
        return -np.where(y, np.log(p), np.log(1 - p))

    arms = {"flags": np.where(fraud, 0.5, 0.03), "misses": np.full(fraud.size, 0.005)}
    estimate, known, truth = {}, {}, {}
    for name, p in arms.items():
        loss, counted = delay_weighted_log_loss(p, reported, age, delay)
        judged = counted & five_weeks
        estimate[name] = loss[judged].mean()
        truth[name] = log_loss(p, fraud)[judged].mean()
        known[name] = log_loss(p, reported)[two_weeks].mean()
    assert known["misses"] < known["flags"], "known labels favour the arm that misses"
    assert truth["flags"] < truth["misses"]
    assert estimate["flags"] < estimate["misses"]
    for name in arms:
        assert estimate[name] == pytest.approx(truth[name], rel=0.15)


def test_fraud_losses_leave_out_payments_too_young_to_judge():
    rng = np.random.default_rng(4)
    history = _payments(rng, 20_000, 240)
    recent = history.filter(pl.col("transaction_ts") > NOW - timedelta(days=30))
    rows = recent.select(
        pl.col("transaction_id").alias("entity_id"),
        pl.lit("champion").alias("arm"),
        pl.lit('{"probability": 0.05}').alias("output"),
    )
    losses = fraud_losses(rows, history, NOW)
    old_enough = ReportingDelay.measure(history, NOW).min_age_days()
    expected = recent.filter(pl.col("transaction_ts") <= NOW - timedelta(days=old_enough)).height
    assert losses.height == pytest.approx(expected, abs=5) and 0 < losses.height < rows.height


def _store(tmp_path) -> ArtifactStore:
    store = ArtifactStore(
        tmp_path / "fraud", "model/fraud", DecisionLog(tmp_path / "decisions.jsonl"), lambda _: []
    )
    for version in ("1", "2"):
        store.write(version, {"model.onnx": b"x"})
    store.promote("1", reason="first", actor="gate")
    store.offer(
        "2", reason="passed", actor="gate", rollout=Rollout("canary", 0.2), action="canary_started"
    )
    return store


def _look(tested: bool) -> dict:
    return {"alpha_this_look": 0.001 if tested else 0.0, "n_champion": 60, "n_challenger": 60}


def test_looks_waiting_for_labels_use_none_of_the_tests_looks(tmp_path):
    """Only looks that tested count towards the sequential test's K; a canary that waited
    MAX_WAITING_LOOKS without enough data is rolled back with the reason."""
    from retail_assets.monitoring.canary import _next_look

    store = _store(tmp_path)
    for tested in (False, False, True, False):
        store.record("canary_look", "2", reason="look", actor="canary_test",
                     evidence={"test": _look(tested)})  # fmt: skip
    taken = looks_taken(store, "2")
    assert (taken.tested, taken.waiting) == (1, 3)

    def empty(k: int) -> Look:
        return Look("extend", k, 14, 0, 0, 0.0, 0.0, None, None, None, None, "no data")

    assert _next_look(taken, empty).action == "extend"
    tired = type(taken)(tested=1, waiting=MAX_WAITING_LOOKS - 1)
    ended = _next_look(tired, empty)
    assert ended.action == ROLLBACK and "looks without enough data" in ended.reason


def test_the_weekly_retrain_waits_while_its_canary_is_undecided(tmp_path):
    """A scheduled retrain would replace the running canary before its test decides: the
    schedule skips with the reason, and runs again once the canary has ended."""
    from retail_assets.automation import retrain_schedule
    from retail_assets.resources import ArtifactsResource

    store = _store(tmp_path)
    resource = ArtifactsResource(
        bundles_dir=str(tmp_path),
        online_features_dir=str(tmp_path / "online"),
        search_dir=str(tmp_path / "search"),
        assistant_dir=str(tmp_path / "assistant"),
        decision_log=str(tmp_path / "decisions.jsonl"),
    )
    schedule = retrain_schedule("fraud", "0 3 * * 1")
    with dg.build_schedule_context(resources={"artifacts": resource}) as context:
        skipped = schedule.evaluate_tick(context)
    assert not skipped.run_requests
    assert "canary of v2" in skipped.skip_message and "has not been decided" in skipped.skip_message

    store.retire_challenger(reason="rolled back", actor="canary_test", action="canary_rolled_back")
    with dg.build_schedule_context(resources={"artifacts": resource}) as context:
        assert len(schedule.evaluate_tick(context).run_requests) == 1


def test_monitoring_asks_for_no_retrain_while_the_models_canary_is_undecided(tmp_path):
    """A drift report calls for a retrain while a canary started by the weekly schedule runs
    (no retrain request to answer): the monitoring sensor waits, naming the canary, and asks
    once the canary has ended."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.monitoring.assets import monitoring_retrain_sensor, publish_report
    from retail_assets.monitoring.drift import LevelChange
    from retail_assets.monitoring.monitors import ModelReport
    from retail_assets.resources import ArtifactsResource
    from retail_assets.runner import instance_for
    from retail_assets.settings import settings_for_home

    settings = settings_for_home(tmp_path, "tiny")
    instance = instance_for(settings)
    artifacts = Artifacts.from_settings(settings)
    store = canary_running(artifacts, "fraud")
    report = ModelReport("fraud", "1", "2026-11-02", {})
    report.level_drift = [LevelChange("overall", 10, 0.6, 1e-6, True, what="known fraud rate")]
    publish_report(artifacts, report)
    resource = ArtifactsResource.from_settings(settings)

    def tick():
        with dg.build_sensor_context(instance=instance, resources={"artifacts": resource}) as c:
            return monitoring_retrain_sensor(c)

    waiting = tick()
    assert isinstance(waiting, dg.SkipReason) and "the canary of v2" in waiting.skip_message
    store.retire_challenger(reason="rolled back", actor="canary_test", action="canary_rolled_back")
    assert len(tick()) == 1


def test_the_champion_counts_as_degraded_only_by_its_own_newest_report(tmp_path):
    from retail_assets.artifacts import Artifacts
    from retail_assets.monitoring.assets import champion_degraded, publish_report
    from retail_assets.monitoring.monitors import ModelReport
    from retail_assets.settings import settings_for_home

    artifacts = Artifacts.from_settings(settings_for_home(tmp_path, "tiny"))
    monitoring = artifacts.monitoring("fraud")
    assert not champion_degraded(monitoring, "1")
    report = ModelReport("fraud", "1", "2026-11-02", {})
    report.degraded, report.degradation = True, "recall fell"
    publish_report(artifacts, report)
    assert champion_degraded(monitoring, "1") and not champion_degraded(monitoring, "2")
    publish_report(artifacts, ModelReport("fraud", "1", "2026-11-03", {}))
    assert not champion_degraded(monitoring, "1")
