"""Monitoring: drift that knows the season, live performance from late labels, and retraining
of exactly the model whose monitoring calls for it.

The statistics are tested on the generator's own knobs (a Black Friday to Christmas surge, a
demand shift, a new fraud pattern), the assets and the sensor through real Dagster runs on a
copy of the tiny platform."""

from __future__ import annotations

import json
from datetime import date

import dagster as dg
import numpy as np
import polars as pl
import pytest

from retail_assets.monitoring.drift import (
    Windows,
    categorical_drift,
    level_change,
    numeric_drift,
    seasonal_feature_drift,
)
from retail_assets.sources.synthetic import GeneratorConfig, Knobs, generate
from retail_assets.sources.synthetic.config import DemandShift, FraudPatternChange


def _sales(knobs: Knobs, end: date) -> pl.DataFrame:
    feeds = generate(GeneratorConfig(scale="tiny", seed=42, knobs=knobs, end_date=end)).feeds
    return feeds["sales"].join(feeds["products"].select("sku", "department"), on="sku")


def _levels(sales: pl.DataFrame, end: date) -> dict[str, object]:
    return {
        c.segment: c
        for c in level_change(
            sales, "date", "units_sold", ["store_id", "sku"], end, ("department",)
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
    cap part of the shift), significant over the tiny platform's 75 comparable series."""
    end = date(2026, 10, 31)
    levels = _levels(_sales(Knobs(demand_shift=DemandShift(date(2026, 10, 1), 1.8)), end), end)
    overall = levels["overall"]
    assert overall.drifted and overall.change > 0.4 and overall.p_value < 1e-6


def test_a_shift_in_one_department_is_reported_there_and_nowhere_else():
    end = date(2026, 10, 31)
    shift = DemandShift(date(2026, 10, 1), 0.5, ("Electronics",))
    levels = _levels(_sales(Knobs(demand_shift=shift), end), end)
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
    the level drift with its size and test, and the sensor requests the demand chain only."""
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
    assert keys == {"demand_model", "demand_evaluation", "demand_onnx", "demand_promotion"}
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
