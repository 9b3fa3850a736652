"""Monitoring: drift that knows the season, live performance from late labels, and retraining
of exactly the model whose monitoring calls for it.

The statistics are tested on the generator's own knobs (a Black Friday to Christmas surge, a
demand shift, a new fraud pattern), the assets and the sensor through real Dagster runs on a
copy of the tiny platform."""

from __future__ import annotations

import json
from datetime import date, datetime

import dagster as dg
import numpy as np
import polars as pl
import pytest
from conftest import canary_running

from retail_assets.monitoring.drift import (
    Windows,
    categorical_drift,
    level_change,
    numeric_drift,
    seasonal_feature_drift,
)
from retail_assets.monitoring.monitors import LEVEL_SERIES
from retail_assets.sources.synthetic import GeneratorConfig, Knobs, generate
from retail_assets.sources.synthetic.config import DemandShift, FraudPatternChange


def _sales(knobs: Knobs, end: date, scale: str = "tiny") -> pl.DataFrame:
    feeds = generate(GeneratorConfig(scale=scale, seed=42, knobs=knobs, end_date=end)).feeds
    return feeds["sales"].join(feeds["products"].select("sku", "department", "category"), on="sku")


def _levels(sales: pl.DataFrame, end: date) -> dict[str, object]:
    return {
        c.segment: c
        for c in level_change(
            sales, "date", "units_sold", LEVEL_SERIES, end, ("department", "category")
        )
    }


def test_the_black_friday_to_christmas_surge_is_not_level_drift():
    """December sells far more than November, as it did a year earlier: the seasonally
    adjusted level does not move, overall or in any department."""
    end = date(2026, 12, 31)
    sales = _sales(Knobs(), end)
    december = sales.filter(pl.col("date") > date(2026, 12, 3))["units_sold"].mean()
    october = sales.filter(pl.col("date").is_between(date(2026, 10, 1), date(2026, 10, 28)))[
        "units_sold"
    ].mean()
    assert december > 1.2 * october, "the generator's holiday surge is the premise of this test"
    levels = _levels(sales, end)
    assert not any(c.drifted for c in levels.values()), [
        c.as_dict() for c in levels.values() if c.drifted
    ]


def test_a_demand_shift_is_level_drift_overall():
    """`--demand-shift 2026-10-01:1.8`: the level rises ~+50 % against the season (stock-outs
    cap part of the shift), significant over the tiny platform's comparable SKUs."""
    end = date(2026, 10, 31)
    levels = _levels(_sales(Knobs(demand_shift=DemandShift(date(2026, 10, 1), 1.8)), end), end)
    overall = levels["overall"]
    assert overall.drifted and overall.change > 0.4 and overall.p_value < 1e-4


def test_a_shift_in_one_department_is_reported_there_and_nowhere_else():
    """At small (28 Electronics SKUs; tiny's 5 are too few to test a department): the shift
    is found in the department and in no other department or category, although the
    categories' store x SKU series would have looked drifted had they been tested as
    independent."""
    end = date(2026, 10, 31)
    shift = DemandShift(date(2026, 10, 1), 0.5, ("Electronics",))
    levels = _levels(_sales(Knobs(demand_shift=shift), end, "small"), end)
    drifted = sorted(s for s, c in levels.items() if c.drifted)
    assert drifted == ["department=Electronics"]
    assert levels["department=Electronics"].change < -0.35


def test_psi_and_ks_flag_a_moved_distribution_and_not_a_resample():
    rng = np.random.default_rng(0)
    reference = rng.lognormal(1.0, 0.5, 5000)
    same = numeric_drift("amount", reference, rng.lognormal(1.0, 0.5, 5000), "overall")
    moved = numeric_drift("amount", reference, rng.lognormal(1.6, 0.5, 5000), "overall")
    assert not same.drifted and same.psi < 0.05
    assert moved.drifted and moved.psi > 0.5 and moved.p_value < 1e-10 and moved.test == "ks"


def test_chi_square_flags_a_new_category_mix():
    reference = ["online"] * 700 + ["in_store"] * 300
    moved = categorical_drift("channel", reference, ["online"] * 300 + ["in_store"] * 700, "all")
    same = categorical_drift("channel", reference, ["online"] * 690 + ["in_store"] * 310, "all")
    assert moved.drifted and moved.test == "chi-square" and moved.p_value < 1e-10
    assert not same.drifted


def test_feature_drift_needs_both_the_season_and_the_recent_weeks_to_disagree():
    """A value that matches last year's same weeks (a surge) or last month (a change made long
    ago) is not drift; one that matches neither is."""
    days = pl.date_range(date(2025, 1, 1), date(2026, 3, 31), eager=True)
    rng = np.random.default_rng(1)
    rows = [(d, v) for d in days for v in rng.normal(10, 1, 40)]
    frame = pl.DataFrame(rows, schema=["day", "x"], orient="row")
    windows = Windows.ending(date(2026, 3, 31))
    in_current = pl.col("day").is_between(*windows.current)
    in_season = pl.col("day").is_between(*windows.season)
    surge = frame.with_columns(
        pl.when(in_current | in_season).then(pl.col("x") * 2).otherwise(pl.col("x")).alias("x")
    )
    shifted = frame.with_columns(
        pl.when(in_current).then(pl.col("x") * 2).otherwise(pl.col("x")).alias("x")
    )
    (seasonal,) = seasonal_feature_drift(surge, "day", ["x"], [], windows)
    (shift,) = seasonal_feature_drift(shifted, "day", ["x"], [], windows)
    assert not seasonal.drifted and seasonal.psi < 0.1
    assert shift.drifted and shift.psi > 1


# -- through Dagster -------------------------------------------------------------------------


def _land(settings, knobs: Knobs) -> None:
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    land_synthetic_feeds(LandingZone(settings.landing_dir), scale="tiny", seed=42, knobs=knobs)


def _sensor(settings):
    from retail_assets.monitoring.assets import monitoring_retrain_sensor
    from retail_assets.resources import ArtifactsResource

    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.get(),
        resources={"artifacts": ArtifactsResource.from_settings(settings)},
    )
    return monitoring_retrain_sensor(context)


def _failed(summary) -> set[str]:
    return {f"{c.asset}/{c.check}" for c in summary.failed_checks}


def _decisions(settings, artifact: str) -> list[dict]:
    from retail_assets.artifacts import Artifacts

    return Artifacts.from_settings(settings).log.entries(artifact)


def test_the_tiny_platform_run_monitors_both_models_and_asks_for_nothing(tiny_platform):
    """The stationary tiny world: both monitoring assets run in the platform run, their checks
    pass, and the sensor has nothing to request."""
    settings, summary = tiny_platform
    assert {"demand_monitoring", "fraud_monitoring"} <= set(summary.materialized)
    result = _sensor(settings)
    assert isinstance(result, dg.SkipReason), result


def _payments(knobs: Knobs, end: date) -> pl.DataFrame:
    feeds = generate(GeneratorConfig(scale="tiny", seed=42, knobs=knobs, end_date=end)).feeds
    return (
        feeds["payments"]
        .select("transaction_id", pl.col("event_ts").alias("transaction_ts"), "card_id")
        .join(feeds["fraud_labels"], on="transaction_id", how="left")
        .with_columns(pl.col("label_available_at").cast(pl.Datetime("us")))
    )


def test_a_fraud_pattern_two_weeks_old_is_found_in_the_recent_window_not_the_live_one():
    """Two weeks after a pattern at 10 % of payments began, with labels as known then (most
    chargebacks still to come), the champion's live window since its test window (two months
    before the change) dilutes it below significance; the last three weeks, counted in cards
    against the same weeks a year earlier, show it. The stationary world, whose frauds come in
    bursts, raises no alarm in either."""
    from retail_assets.monitoring.monitors import RECENT_FRAUD_DAYS, fraud_rate_changes

    change, end = date(2026, 8, 1), date(2026, 8, 15)
    now = datetime.combine(end, datetime.max.time())
    live_since = datetime(2026, 5, 29)  # the champion's test window ended 64 days before
    pattern = Knobs(fraud_pattern_change=FraudPatternChange(change, new_pattern_rate=0.1))

    live, recent = fraud_rate_changes(_payments(pattern, end), live_since, now)
    assert recent.segment == f"last {RECENT_FRAUD_DAYS} days" and "cards" in recent.test
    assert recent.drifted and recent.change > 1 and recent.p_value < 1e-4, recent.as_dict()
    assert not live.drifted, live.as_dict()

    stationary = fraud_rate_changes(_payments(Knobs(), end), live_since, now)
    assert not any(c.drifted for c in stationary), [c.as_dict() for c in stationary]


def test_a_new_fraud_pattern_is_detected_and_retrains_only_fraud(platform_copy):
    """From 2026-09-01 a digital-goods pattern the features do not anticipate runs at twice the
    usual fraud rate (the tiny platform sees ~120 payments a day; at the CLI's default rate
    the change needs more payments than tiny has to be significant). The frauds known so far
    since the champion's test window, against the same weeks a year earlier with labels known
    the same time after, rise significantly: the check fails, the decision is logged with its
    evidence (live recall per fraud type shows the new pattern missed), and the sensor requests
    one run of the fraud chain (never demand), once per report."""
    from retail_assets.runner import materialize_platform

    settings = platform_copy
    change = FraudPatternChange(start=date(2026, 9, 1), new_pattern_rate=0.02)
    _land(settings, Knobs(fraud_pattern_change=change))
    summary = materialize_platform(
        settings, selection="+key:fraud_training_set or key:fraud_monitoring"
    )
    assert summary.success, summary.failures
    assert "fraud_monitoring" in summary.materialized
    assert "fraud_monitoring/no_unexpected_drift" in _failed(summary)

    decision = _decisions(settings, "monitoring/fraud")[-1]
    assert decision["action"] == "drift_detected"
    assert "known fraud rate drift" in decision["reason"]
    by_type = {r["fraud_type"]: r for r in decision["evidence"]["live"]["recall_by_fraud_type"]}
    assert by_type["digital_goods"]["recall"] < 0.25 < by_type["account_takeover"]["recall"]

    requests = _sensor(settings)
    assert isinstance(requests, list) and len(requests) == 1
    keys = {key.to_user_string() for key in requests[0].asset_selection}
    assert keys == {"fraud_model", "fraud_evaluation", "fraud_onnx", "fraud_promotion"}
    assert _decisions(settings, "monitoring/fraud")[-1]["action"] == "retrain_requested"
    assert isinstance(_sensor(settings), dg.SkipReason), "the same report must not retrain twice"


def test_a_demand_shift_is_detected_and_retrains_only_demand(platform_copy):
    """`--demand-shift 2026-10-01:1.8` after the champion was trained: demand monitoring flags
    the level drift with its size and test, and the sensor requests the demand chain only;
    the overall level moved, so every tier's part retrains."""
    from retail_assets.runner import materialize_platform

    settings = platform_copy
    _land(settings, Knobs(demand_shift=DemandShift(date(2026, 10, 1), 1.8)))
    summary = materialize_platform(
        settings, selection="+key:demand_training_set or key:demand_monitoring"
    )
    assert summary.success, summary.failures
    assert "demand_monitoring/no_unexpected_drift" in _failed(summary)
    decision = _decisions(settings, "monitoring/demand")[-1]
    assert decision["action"] == "drift_detected"
    assert "demand level drift in overall" in decision["reason"]

    requests = _sensor(settings)
    assert isinstance(requests, list) and len(requests) == 1
    keys = {key.to_user_string() for key in requests[0].asset_selection}
    assert keys == {
        "demand_fast_tier_model",
        "demand_stable_tier_model",
        "demand_model",
        "demand_evaluation",
        "demand_onnx",
        "demand_promotion",
    }
    assert requests[0].tags["retail/model"] == "demand"


@pytest.mark.parametrize("model", ["demand", "fraud"])
def test_monitor_cli_prints_each_models_verdict(tiny_platform, model):
    from click.testing import CliRunner

    from retail_assets.cli import main as cli
    from retail_assets.settings import settings_for_home

    settings, _ = tiny_platform
    settings_for_home(settings.home, "tiny")
    result = CliRunner().invoke(cli, ["monitor", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    entry = document[model]
    assert entry["version"] is not None and entry["actions"] == []
    assert "live" in entry and "drift" in entry and "last_action" in entry


def test_monitor_cli_shows_the_search_index_its_canary_and_the_last_automatic_decision(
    tiny_platform,
):
    from click.testing import CliRunner

    from retail_assets.artifacts import Artifacts
    from retail_assets.cli import main as cli
    from retail_assets.settings import settings_for_home

    settings, _ = tiny_platform
    settings_for_home(settings.home, "tiny")
    result = CliRunner().invoke(cli, ["monitor", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    search = json.loads(result.output)["search"]
    assert search["version"] == Artifacts.from_settings(settings).search_index().champion()
    assert search["canary"] is None
    assert search["last_action"]["actor"] == "search_gate"
    assert search["last_action"]["action"] == "promote"
    text = CliRunner().invoke(cli, ["monitor"], catch_exceptions=False).output
    assert f"search index {search['version']}; no canary" in text


# -- progressive delivery ----------------------------------------------------------------------


def _retrain(settings, model: str, run_config: dict | None = None):
    from retail_assets.runner import materialize_platform

    steps = ("model", "evaluation", "onnx", "promotion")
    selection = " or ".join(f"key:{model}_{step}" for step in steps)
    return materialize_platform(settings, selection=selection, run_config=run_config)


def _serve_live_payments(settings) -> int:
    """Log, exactly as serving does, the fraud scores of the payments after the champion's
    test window: each payment answered by the arm the store's rollout routes its customer to
    (sticky hash), with the features the online state computes. Returns rows logged."""
    import duckdb

    from retail_assets.artifacts import Artifacts
    from retail_assets.models.fraud.training_set import prepare_features
    from retail_assets.models.lifecycle.bundle import LoadedBundle
    from retail_assets.monitoring.monitors import bundle_encodings, fraud_monitoring_frame
    from serving.prediction_log import PredictionLogger

    store = Artifacts.from_settings(settings).model("fraud")
    roles = store.roles()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        transactions = con.sql("select * from marts.transaction_features").pl()
        customers = con.sql("select * from marts.dim_customers").pl()
    champion = LoadedBundle(store.version_dir(roles.champion.version))
    since = champion.signature["training_windows"]["test"]["end"]
    frame = fraud_monitoring_frame(transactions, customers, datetime.fromisoformat(since))
    arms = {"champion": (roles.champion.version, champion)}
    arms["challenger"] = (
        roles.challenger.version,
        LoadedBundle(store.version_dir(roles.challenger.version)),
    )
    routed = frame.with_columns(
        pl.Series(
            "arm",
            [
                "challenger" if roles.rollout.routes_to_challenger(c or k) else "champion"
                for c, k in frame.select("customer_id", "card_id").iter_rows()
            ],
        )
    )
    logger = PredictionLogger(settings.prediction_log_dir)
    logged = 0
    for arm, (version, bundle) in arms.items():
        part = routed.filter(pl.col("arm") == arm)
        encodings = bundle_encodings(bundle.signature)
        probabilities = bundle.predict_frame(prepare_features(part, encodings))["probability"]
        for transaction_id, p in zip(part["transaction_id"], probabilities, strict=True):
            logger.log(
                model="fraud", version=version, arm=arm, entity_id=transaction_id,
                features={}, output={"probability": float(p)}, latency_ms=0.0,
                request_id=f"test-{transaction_id}",
            )  # fmt: skip
            logged += 1
    logger.close()
    return logged


def _monitor_fraud_with_log(settings):
    from retail_assets.runner import materialize_platform

    return materialize_platform(
        settings, selection="key:serving/prediction_log or key:fraud_monitoring"
    )


def test_a_better_challenger_goes_canary_and_is_judged_on_label_delay_weighted_losses(
    platform_copy,
):
    """An operator promoted a model trained on shuffled labels by hand (v2). The next retrain
    (v3) passes the offline gate against it and starts as a 20 % canary, not champion. The
    first look judges both arms on their label-delay weighted log loss (Welch t): payments
    younger than the measured reporting delay are left out, the challenger's mean loss is
    lower, and with a few dozen frauds in its arm the test asks for more data instead of
    deciding on how low each arm scores genuine payments. The look is recorded with the test,
    the data and the delay."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.models.lifecycle.operations import lifecycle_for

    settings = platform_copy
    shuffled = {"ops": {"fraud_model": {"config": {"shuffle_labels_seed": 3}}}}
    assert _retrain(settings, "fraud", shuffled).success
    lifecycle_for(settings).manual_promote("fraud", "2", reason="test: operator mistake")
    assert _retrain(settings, "fraud").success
    store = Artifacts.from_settings(settings).model("fraud")
    roles = store.roles()
    assert roles.champion.version == "2" and roles.challenger.version == "3"
    assert roles.rollout.mode == "canary" and roles.rollout.share == 0.2
    assert _decisions(settings, "model/fraud")[-1]["action"] == "canary_started"

    logged = _serve_live_payments(settings)
    assert logged > 1000
    assert _monitor_fraud_with_log(settings).success
    look = next(e for e in _decisions(settings, "model/fraud") if e["action"] == "canary_look")
    test, data = look["evidence"]["test"], look["evidence"]["data"]
    assert look["version"] == "3" and test["action"] == "extend"
    assert "Welch t" in test["test"] and test["alpha_this_look"] > 0
    assert test["mean_loss_challenger"] < test["mean_loss_champion"]
    assert data["label_delay"]["matured_frauds"] > 0
    assert 0 < data["losses"] < data["predictions_logged"] == logged
    assert test["n_challenger"] >= 50


def test_a_bad_canary_is_rolled_back_by_the_sequential_test(platform_copy):
    """A challenger trained on shuffled labels is refused by the gate; an operator canaries it
    anyway (20 %). Its live log losses are far worse than the champion's: the first look with
    enough data rolls it back, the champion never changes, and serving's roles drop it."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.core.store import Rollout

    settings = platform_copy
    shuffled = {"ops": {"fraud_model": {"config": {"shuffle_labels_seed": 3}}}}
    assert _retrain(settings, "fraud", shuffled).success
    store = Artifacts.from_settings(settings).model("fraud")
    assert store.champion() == "1" and store.challenger() == "2", store.roles()
    store.set_rollout(Rollout("canary", 0.2), reason="test: operator canary", actor="test")

    assert _serve_live_payments(settings) > 1000
    assert _monitor_fraud_with_log(settings).success
    assert store.champion() == "1" and store.challenger() is None
    assert store.roles().rollout.mode == "off"
    rolled_back = _decisions(settings, "model/fraud")[-1]
    assert rolled_back["action"] == "canary_rolled_back" and rolled_back["actor"] == "canary_test"
    test = rolled_back["evidence"]["test"]
    assert test["p_harm"] < test["alpha_this_look"]
    assert test["mean_loss_challenger"] > test["mean_loss_champion"]


def test_a_champion_worse_live_than_the_one_it_replaced_is_rolled_back_automatically(
    platform_copy,
):
    """An operator promoted a model trained on shuffled labels over v1. Monitoring scores both
    on the same live payments, finds v1 significantly better (paired Wilcoxon), rolls back to
    v1 (serving pointer and MLflow alias), and records why with the evidence."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.models.lifecycle.operations import lifecycle_for
    from retail_assets.runner import materialize_platform

    settings = platform_copy
    shuffled = {"ops": {"fraud_model": {"config": {"shuffle_labels_seed": 3}}}}
    assert _retrain(settings, "fraud", shuffled).success
    services = lifecycle_for(settings)
    services.manual_promote("fraud", "2", reason="test: operator mistake")

    assert materialize_platform(settings, selection="key:fraud_monitoring").success
    store = Artifacts.from_settings(settings).model("fraud")
    assert store.champion() == "1"
    assert services.registry.alias_version("fraud", "champion") == "1"
    rollback = _decisions(settings, "model/fraud")[-1]
    assert rollback["action"] == "rollback" and rollback["actor"] == "monitoring"
    assert rollback["evidence"]["rolled_back_from"] == "2"
    assert "Wilcoxon" in rollback["reason"] and "previous champion v1" in rollback["reason"]
    degraded = _decisions(settings, "monitoring/fraud")[-1]
    assert degraded["action"] == "live_degraded"
    assert degraded["evidence"]["live"]["previous_champion"]["version"] == "1"


# -- training-serving skew ---------------------------------------------------------------------

_PAYMENT_FIELDS = (
    "transaction_id", "transaction_ts", "card_id", "customer_id", "device_id",
    "shipping_address_id", "amount", "n_items", "channel", "payment_method", "top_department",
    "billing_country", "ip_country", "shipping_country",
)  # fmt: skip


@pytest.mark.parametrize("stale_devices", [False, True], ids=["consistent", "stale-device-state"])
def test_skew_check_compares_served_features_with_their_offline_recomputation(
    platform_copy, serving_server, stale_devices
):
    """Serving starts from a fraud state published as of the day before the last, and scores
    the last day's payments over HTTP in order. Monitoring replays the history plus the logged
    requests through the training code: every feature matches. When the published state lost
    its device history (a stale table), the check fails naming exactly the device features."""
    from datetime import timedelta

    from retail_assets.artifacts import Artifacts
    from retail_assets.models.fraud.online import FraudFeatureState
    from retail_assets.online_features import FRAUD_FEATURE_SET
    from retail_assets.online_features.store import publish_feature_set
    from retail_assets.runner import materialize_platform
    from retail_assets.warehouse import WarehouseResource
    from serving.clock import PaymentClock

    settings = platform_copy
    warehouse = WarehouseResource(path=str(settings.warehouse_path))
    transactions = warehouse.read_table("marts", "transaction_features")
    customers = warehouse.read_table("marts", "dim_customers")
    cutoff = datetime.combine(transactions["transaction_ts"].max().date(), datetime.min.time())
    history = transactions.filter(pl.col("transaction_ts") < cutoff)
    if stale_devices:
        history = history.with_columns(pl.lit(None, pl.String).alias("device_id"))
    state = FraudFeatureState.from_history(history, customers)
    publish_feature_set(
        Artifacts.from_settings(settings).features(FRAUD_FEATURE_SET),
        state.to_frames(),
        {"as_of": state.as_of},
        actor="test",
    )
    day = transactions.filter(pl.col("transaction_ts") >= cutoff).sort("transaction_ts")
    payments = [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
        for row in day.select(_PAYMENT_FIELDS).iter_rows(named=True)
    ]
    clock = PaymentClock(mode="replay", max_ahead=timedelta(days=1))
    with serving_server(settings, payment_clock=clock) as server:
        import httpx

        response = httpx.post(
            f"{server.url}/v1/fraud/score:batch", json={"payments": payments}, timeout=60
        )
        assert response.status_code == 200, response.text

    summary = materialize_platform(
        settings, selection="key:serving/prediction_log or key:fraud_monitoring"
    )
    assert summary.success, summary.failures
    check = next(
        c for c in summary.checks
        if c.asset == "fraud_monitoring" and c.check == "no_training_serving_skew"
    )  # fmt: skip
    if not stale_devices:
        assert check.passed, check.description
        compared = int(check.description.split(" logged payments")[0])
        assert compared >= len(payments) > 50
    else:
        assert not check.passed
        named = {
            part.split(" (")[0] for part in check.description.removeprefix("skew in ").split("; ")
        }
        assert "device_txn_count_7d" in named
        assert all(
            name.startswith("device_") or name == "is_first_device_use_for_customer"
            for name in named
        ), named


def test_report_versions_keep_increasing_after_old_reports_are_pruned(tmp_path):
    """Monitoring keeps its newest reports only; the next report still gets a new number, so
    the retrain sensor (one request per report version) keeps hearing new verdicts."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.monitoring.assets import latest_report, publish_report
    from retail_assets.monitoring.monitors import ModelReport
    from retail_assets.settings import settings_for_home

    artifacts = Artifacts.from_settings(settings_for_home(tmp_path, "tiny"))
    store = artifacts.monitoring("demand")
    numbers = []
    for day in range(store.keep + 5):
        report = ModelReport("demand", "1", f"2026-11-{day % 28 + 1:02d}", {})
        numbers.append(publish_report(artifacts, report)[0])
    assert numbers == sorted(set(numbers)), "a report number was reused"
    assert len(store.versions()) <= store.keep + 1
    assert latest_report(store)[0] == numbers[-1]


def test_a_drift_a_retrain_already_answered_does_not_ask_again_but_a_new_one_does(tmp_path):
    """Drifted data stays drifted: the report after a retrain repeats the drift, and asking
    again would retrain every night for nothing. A drift asks once per drift window; a new
    drifted segment, live degradation, or the same drift a window later ask again."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.monitoring.assets import publish_report
    from retail_assets.monitoring.drift import LevelChange
    from retail_assets.monitoring.monitors import ModelReport
    from retail_assets.runner import instance_for
    from retail_assets.settings import settings_for_home

    settings = settings_for_home(tmp_path, "tiny")
    instance_for(settings)
    artifacts = Artifacts.from_settings(settings)

    def report(segment: str, degraded: bool = False, as_of: str = "2026-11-02") -> ModelReport:
        out = ModelReport("fraud", "1", as_of, {})
        out.level_drift = [LevelChange(segment, 10, 0.6, 1e-6, True, what="known fraud rate")]
        out.degraded, out.degradation = degraded, "recall fell" if degraded else ""
        return out

    def requested() -> int:
        result = _sensor(settings)
        return 0 if isinstance(result, dg.SkipReason) else len(result)

    publish_report(artifacts, report("overall"))
    assert requested() == 1
    publish_report(artifacts, report("overall"))  # after the retrain: the same drift
    assert requested() == 0
    publish_report(artifacts, report("channel=online"))  # a different drift
    assert requested() == 1
    publish_report(artifacts, report("channel=online", degraded=True))  # live degradation
    assert requested() == 1
    publish_report(artifacts, report("overall", as_of="2026-11-10"))  # inside the window
    assert requested() == 0
    publish_report(artifacts, report("overall", as_of="2026-12-15"))  # a window later
    assert requested() == 1


def test_live_degradation_waits_for_the_canary_of_the_retrain_it_asked_for(tmp_path):
    """A degraded model asks for a retrain; while the challenger of that retrain is in canary,
    the next degraded reports wait for its verdict, a new drift included (a new challenger
    would replace the canary before its sequential test decides); once the canary ends, they
    ask again. Read from the model's role pointers, as serving routes traffic."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.core.store import ArtifactStore, Rollout
    from retail_assets.monitoring.assets import publish_report
    from retail_assets.monitoring.drift import LevelChange
    from retail_assets.monitoring.monitors import ModelReport
    from retail_assets.runner import instance_for
    from retail_assets.settings import settings_for_home

    settings = settings_for_home(tmp_path, "tiny")
    instance_for(settings)
    artifacts = Artifacts.from_settings(settings)
    model = artifacts.model("fraud")  # bundles are not what this test is about:
    store = ArtifactStore(model.root, model.artifact, model.log, lambda _: [])
    for version in ("1", "2", "3", "4", "5"):
        store.write(version, {"model.onnx": b"x"})
    store.promote("1", reason="first", actor="gate")

    def report(segment: str = "overall") -> ModelReport:
        out = ModelReport("fraud", "1", "2026-11-02", {})
        out.level_drift = [LevelChange(segment, 10, 0.6, 1e-6, True, what="known fraud rate")]
        out.degraded, out.degradation = True, "recall fell"
        return out

    def result():
        return _sensor(settings)

    def canary(version: str) -> None:
        store.offer(version, reason="passed", actor="gate", rollout=Rollout("canary", 0.2),
                    action="canary_started")  # fmt: skip

    def ended() -> None:
        store.retire_challenger(reason="no verdict", actor="canary_test")

    publish_report(artifacts, report())
    assert not isinstance(result(), dg.SkipReason)
    canary("2")
    publish_report(artifacts, report())
    waiting = result()
    assert isinstance(waiting, dg.SkipReason)
    assert "fraud: the canary of v2" in waiting.skip_message
    assert "has not been decided" in waiting.skip_message
    publish_report(artifacts, report("channel=online"))  # a new drift waits too
    assert "the canary of v2" in result().skip_message
    ended()  # the canary ended: the new drift asks
    assert not isinstance(result(), dg.SkipReason)
    canary("3")
    ended()  # the canary ended without promoting
    publish_report(artifacts, report("channel=online"))
    assert not isinstance(result(), dg.SkipReason)
    # A challenger the gate refused but that stays servable, offered while a canary runs,
    # takes the canary's share: the live data judge it, so wait too.
    canary("4")
    store.record("refuse", "5", reason="worse", actor="promotion_gate")
    store.offer("5", reason="refused by the gate; servable", actor="promotion_gate")
    publish_report(artifacts, report("channel=online"))
    assert "the canary of v5" in result().skip_message
    # Refused with no canary running, it is offered but gets no traffic: nothing judges it.
    ended()
    store.record("refuse", "4", reason="worse", actor="promotion_gate")
    store.offer("4", reason="refused by the gate; servable", actor="promotion_gate")
    publish_report(artifacts, report("channel=online"))
    assert not isinstance(result(), dg.SkipReason)


def test_a_new_demand_drift_replaces_a_canary_trained_before_it_and_degradation_waits(tmp_path):
    """Demand's running challenger came from its schedule, before a department's level drift:
    the drift retrains at once (its canary starts over on the next day's sales), while live
    degradation alone waits for the canary's verdict, and so does a later drift while the
    canary of the drift's own retrain runs. Fraud waits for all (its labels take weeks)."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.core.store import Rollout
    from retail_assets.monitoring.assets import publish_report
    from retail_assets.monitoring.drift import LevelChange
    from retail_assets.monitoring.monitors import ModelReport
    from retail_assets.runner import instance_for
    from retail_assets.settings import settings_for_home

    settings = settings_for_home(tmp_path, "tiny")
    instance_for(settings)
    artifacts = Artifacts.from_settings(settings)
    store = canary_running(artifacts, "demand")

    degraded = ModelReport("demand", "1", "2026-11-02", {})
    degraded.degraded, degraded.degradation = True, "WAPE rose"
    publish_report(artifacts, degraded)
    waiting = _sensor(settings)
    assert isinstance(waiting, dg.SkipReason) and "the canary of v2" in waiting.skip_message

    def drift(as_of: str, *departments: str) -> ModelReport:
        report = ModelReport("demand", "1", as_of, {})
        report.level_drift = [
            LevelChange(f"department={d}", 26, 0.32, 2e-4, True, what="units sold")
            for d in departments
        ]
        return report

    publish_report(artifacts, drift("2026-11-03", "Electronics"))
    asked = _sensor(settings)
    assert not isinstance(asked, dg.SkipReason) and len(asked) == 1
    assert asked[0].tags["retail/model"] == "demand"
    # Its retrain's challenger goes to canary; a drift in one more department waits for it.
    store.write("3", {"model.onnx": b"x"})
    store.offer("3", reason="passed", actor="gate", rollout=Rollout("canary", 0.2),
                action="canary_started")  # fmt: skip
    publish_report(artifacts, drift("2026-11-04", "Electronics", "Toys"))
    waiting = _sensor(settings)
    assert isinstance(waiting, dg.SkipReason) and "the canary of v3" in waiting.skip_message


def test_a_feature_drifting_in_one_more_segment_does_not_ask_again(tmp_path):
    """A feature that drifted overall asks for a retrain once per drift window; the same
    feature drifting the next day in one more department (segment drift is reported, not
    acted on) asks nothing; another feature drifting overall is a new question."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.monitoring.assets import publish_report
    from retail_assets.monitoring.drift import FeatureDrift
    from retail_assets.monitoring.monitors import ModelReport
    from retail_assets.runner import instance_for
    from retail_assets.settings import settings_for_home

    settings = settings_for_home(tmp_path, "tiny")
    instance_for(settings)
    artifacts = Artifacts.from_settings(settings)

    def report(as_of: str, *drifts: tuple[str, str]) -> ModelReport:
        out = ModelReport("demand", "1", as_of, {})
        out.feature_drift = [
            FeatureDrift(feature, "numeric", "ks", 0.4, 0.3, 1e-9, 500, 500, True, segment)
            for feature, segment in drifts
        ]
        return out

    def requested() -> int:
        result = _sensor(settings)
        return 0 if isinstance(result, dg.SkipReason) else len(result)

    price = "competitor_min_price"
    publish_report(artifacts, report("2026-11-01", (price, "overall"), (price, "department=Toys")))
    assert requested() == 1
    publish_report(artifacts, report("2026-11-02", (price, "overall"), (price, "department=Home")))
    assert requested() == 0
    publish_report(artifacts, report("2026-11-03", (price, "overall"), ("unit_price", "overall")))
    assert requested() == 1
