"""Tiered demand retraining: categories whose seasonally adjusted level moves fast retrain
weekly, stable ones monthly, each tier's part model on its own rows, composed into one routed
model that serves through the one demand slot.

The velocity score and the routing are tested on constructed data (where the truth is known),
the tier assets, the routed bundle and the per-tier automation conditions through real
Dagster runs on the tiny platform."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import numpy as np
import onnxruntime as ort
import polars as pl
import pytest

from retail_assets.models.demand.tiers import FAST, STABLE, assign_demand_tiers, category_velocity
from retail_assets.models.lifecycle.spec import TrainedModel, TrainingSet, route_rows
from retail_assets.models.lifecycle.tiers import TierModel, compose
from retail_assets.monitoring.assets import tier_scope, tiers_to_retrain

END = date(2026, 10, 31)


def _daily(effects: dict[str, object], series: int = 6, days: int = 560) -> pl.DataFrame:
    """Poisson daily sales per category (`series` store-SKUs each), the rate multiplied by
    `effects[category](day)`."""
    rng = np.random.default_rng(7)
    dates = [END - timedelta(days=i) for i in range(days - 1, -1, -1)]
    frames = []
    for category, effect in effects.items():
        factor = np.array([effect(d) for d in dates])
        for s in range(series):
            base = rng.uniform(4, 8)
            frames.append(
                pl.DataFrame(
                    {
                        "date": dates,
                        "store_id": f"S{s % 3}",
                        "sku": f"{category}-{s}",
                        "units_sold": rng.poisson(base * factor).astype(float),
                        "department": "Dept",
                        "category": category,
                        "subcategory": category,
                        "brand": "Brand",
                        "store_region": "North",
                        "store_format": "Mall",
                    }
                )
            )
    return pl.concat(frames)


def _october_event(day: date) -> float:
    return 2.5 if day.month == 10 and day.day >= 10 else 1.0


def test_a_category_whose_level_moved_this_month_is_fast_and_a_seasonal_surge_is_not():
    """Three weeks ago one category's demand rose by 40 %: it is fast. Another surges every
    October 10-31 (last year too): against the season that is no move, so it stays stable, like
    the flat one. A category launched five months ago cannot be measured: stable, saying so."""
    moved_on = END - timedelta(days=20)
    frame = _daily(
        {
            "Flat": lambda d: 1.0,
            "Seasonal": _october_event,
            "Moved": lambda d: 1.4 if d >= moved_on else 1.0,
            "New": lambda d: 1.0 if d >= END - timedelta(days=150) else 0.0,
        }
    )
    rows = {r["category"]: r for r in category_velocity(frame)}
    assert rows["Moved"]["tier"] == FAST.name
    assert rows["Moved"]["change"] > 0.2 and rows["Moved"]["p_value"] < 0.01
    assert rows["Seasonal"]["tier"] == STABLE.name
    assert abs(rows["Seasonal"]["change"]) < 0.1
    assert rows["Flat"]["tier"] == STABLE.name
    assert rows["New"]["tier"] == STABLE.name and "too little history" in rows["New"]["why"]

    fast, stable = assign_demand_tiers(frame)
    assert (fast.tier, fast.values) == (FAST.name, ["Moved"])
    assert sorted(stable.values) == ["Flat", "New", "Seasonal"]
    assert fast.encodings["category"] == ["Flat", "Moved", "New", "Seasonal"]
    assert fast.parents["department"]["Moved"] == "Dept"
    # The data version that retrains every part changes with the codes, not with membership.
    moved_back = assign_demand_tiers(_daily({"Flat": lambda d: 1.0, "Seasonal": _october_event,
                                             "Moved": lambda d: 1.0, "New": lambda d: 1.0}))  # fmt: skip
    assert moved_back[0].values == [] and moved_back[0].codes_version() == fast.codes_version()
    renamed = assign_demand_tiers(_daily({"Flat": lambda d: 1.0, "Other": lambda d: 1.0}))
    assert renamed[0].codes_version() != fast.codes_version()


def _training_set(encodings: dict[str, list[str]], test_start: str = "2026-10-04") -> TrainingSet:
    return TrainingSet(
        frame=pl.DataFrame({"category_code": [0.0], "split": ["test"]}),
        feature_columns=["horizon", "category_code"],
        target_column="units_sold",
        entity_columns=[],
        segment_columns=["category"],
        windows={
            "train": {"start": "2025-09-06", "end": "2026-09-05"},
            "validation": {"start": "2026-09-06", "end": "2026-10-03"},
            "test": {"start": test_start, "end": "2026-10-31"},
        },
        encodings=encodings,
    )


def _part(tier, values, trained_at, rows=100, encodings=None, train_end="2026-09-05"):
    model = TrainedModel(
        boosters={}, feature_columns=["horizon", "category_code"], params={},
        validation_metrics={"wape": 0.5},
    )  # fmt: skip
    return TierModel(
        tier=tier,
        column="category",
        values=values,
        model=model,
        feature_columns=["horizon", "category_code"],
        encodings=encodings or {"category": ["A", "B", "C"]},
        windows={
            "train": {"start": "2025-09-06", "end": train_end},
            "validation": {"start": "2026-09-06", "end": "2026-10-03"},
        },
        rows=rows,
        trained_at=trained_at,
    )


def test_rows_go_to_the_newest_part_that_learned_their_category_and_unknowns_to_the_largest():
    """A moved to the fast tier last week (the stable part, older, learned it too): the fast
    part scores it. B only the stable part knows. C no part learned, and unknown or missing
    codes: the part trained on the most rows."""
    training_set = _training_set({"category": ["A", "B", "C"]})
    parts = {
        "stable": _part("stable", ["A", "B"], "2026-10-01T04:00:00", rows=900),
        "fast": _part("fast", ["A"], "2026-10-26T04:00:00", rows=100),
    }
    model = compose(training_set, parts, "category")
    assert model.extras["routing"] == {"A": "fast", "B": "stable", "C": "stable"}
    order = model.route["parts"]
    codes = np.array([[1, 0], [1, 1], [1, 2], [1, -1], [1, np.nan], [1, 17]], dtype=float)
    chosen = [order[i] for i in route_rows(model.route, codes)]
    assert chosen == ["fast", "stable", "stable", "stable", "stable", "stable"]


def test_a_stale_part_is_refused_naming_its_tier():
    """New codes (a new category shifts them), or a part that learned from the days the
    evaluation will test on: composing refuses and names the tier to retrain."""
    training_set = _training_set({"category": ["A", "B", "C", "D"]})
    with pytest.raises(ValueError, match=r"tier 'stable'.*category had other codes"):
        compose(training_set, {"stable": _part("stable", ["A"], "2026-10-01")}, "category")
    leaked = _training_set({"category": ["A", "B", "C"]}, test_start="2026-09-20")
    with pytest.raises(ValueError, match="tier 'fast' learned from data up to 2026-10-03"):
        compose(leaked, {"fast": _part("fast", ["A"], "2026-10-01")}, "category")


def test_drift_in_one_category_retrains_only_its_tier_and_wider_drift_retrains_every_tier():
    """The decision log says why (`tier_scope`): the tiers and the segments they hold, or what
    made the retrain wider than a tier."""
    memberships = {"fast": ["Audio", "Phones"], "stable": ["Tops", "TV"]}
    parents = {"department": {"Audio": "Electronics", "TV": "Electronics", "Tops": "Apparel"}}

    def report(*segments, degraded=False, feature=False):
        return {
            "degraded": degraded,
            "level_drift": [{"segment": s, "drifted": True} for s in segments]
            + [{"segment": "category=Tops", "drifted": False}],
            "feature_drift": [{"feature": "price", "segment": "overall", "drifted": feature}],
        }

    assert tiers_to_retrain(report("category=Audio"), memberships, "category", parents) == ["fast"]
    assert tiers_to_retrain(report("department=Apparel"), memberships, "category", parents) == [
        "stable"
    ]
    electronics = report("department=Electronics")
    assert tiers_to_retrain(electronics, memberships, "category", parents) == ["fast", "stable"]
    assert tier_scope(electronics, memberships, "category", parents)[1] == (
        "the tiers holding the drifted segments (fast: department=Electronics; "
        "stable: department=Electronics)"
    )
    for wide, why in (
        (report("overall"), "level drift in overall, wider than a category"),
        (report("category=Audio", degraded=True), "live accuracy degraded"),
        (report("category=Audio", feature=True), "feature(s) drifted overall (price)"),
        (report("category=Unheard"), "category=Unheard drifted and no tier holds it"),
    ):
        assert tiers_to_retrain(wide, memberships, "category", parents) is None
        assert tier_scope(wide, memberships, "category", parents) == (None, f"every tier: {why}")


def _value(settings, key: str):
    with open(settings.asset_storage_dir / key, "rb") as handle:
        return pickle.load(handle)


def test_each_tier_trains_on_its_own_categories_and_the_bundle_routes_rows_to_their_part(
    tiny_platform,
):
    """The tiny run computed the tiers, trained each tier's part on its categories only, and
    the champion bundle's one ONNX graph gives every test row the forecast of its category's
    part."""
    from retail_assets.artifacts import Artifacts

    settings, summary = tiny_platform
    for key in ("demand_fast_tier", "demand_stable_tier", "demand_fast_tier_model",
                "demand_stable_tier_model"):  # fmt: skip
        assert key in summary.materialized
    training_set = _value(settings, "demand_training_set")
    fast, stable = (_value(settings, f"demand_{t}_tier") for t in ("fast", "stable"))
    assert not set(fast.values) & set(stable.values)
    assert set(fast.values) | set(stable.values) == set(training_set.encodings["category"])
    parts = {t: _value(settings, f"demand_{t}_tier_model") for t in ("fast", "stable")}
    train = training_set.split("train")
    for tier, membership in (("fast", fast), ("stable", stable)):
        assert parts[tier].values == sorted(membership.values)
        in_tier = train.filter(pl.col("category").is_in(membership.values)).height
        assert parts[tier].rows == in_tier

    model = _value(settings, "demand_model").model
    assert model.route is not None and model.route["column"] == "category_code"
    test = training_set.split("test")
    x = training_set.features(test)
    champion = Artifacts.from_settings(settings).model("demand").champion()
    folder = Artifacts.from_settings(settings).model("demand").version_dir(champion)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    served = dict(
        zip(
            [o.name for o in session.get_outputs()], session.run(None, {"features": x}), strict=True
        )
    )
    for part in parts.values():
        if part.model is None:
            continue
        rows = test["category"].is_in(part.values).to_numpy()
        if not rows.any():
            continue
        expected = part.model.outputs(x[rows])
        for output in ("mean", "p10", "p90"):
            np.testing.assert_allclose(served[output][rows], expected[output], atol=1e-9)
    card = json.loads((folder / "model_card.json").read_text())
    assert card  # the bundle is complete (validated at promotion); routing is in its extras
    signature = json.loads((folder / "signature.json").read_text())
    assert set(signature["extras"]["routing"]) == set(training_set.encodings["category"])


def _last_tick(cron: str, before: datetime) -> datetime:
    from dagster._utils.schedules import reverse_cron_string_iterator

    return next(reverse_cron_string_iterator(before.timestamp(), cron, "UTC"))


def test_a_tier_retrains_on_its_own_cron_and_the_demand_chain_follows(platform_copy):
    """Fast categories retrain weekly, stable ones monthly: after the newest tick of either
    cron, with the training set and tiers rebuilt since, automation requests the part of the
    tier whose cron ticked, and the demand chain after it; a change of the categorical codes
    retrains every part at once."""
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    from retail_assets.definitions import build_defs
    from retail_assets.runner import materialize_platform

    settings = platform_copy
    defs = build_defs(settings)
    instance = dg.DagsterInstance.get()
    now = datetime.now(UTC)
    ticks = {tier: _last_tick(tier.cron, now) for tier in (FAST, STABLE)}
    newest = max(ticks.values())
    expected = {f"demand_{t.name}_tier_model" for t, tick in ticks.items() if tick == newest}
    # The previous evaluation was just before the newest tick (and after the other tier's).
    cursor = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, evaluation_time=newest - timedelta(minutes=1)
    ).cursor
    rebuilt = materialize_platform(
        settings,
        selection="key:demand_training_set or key:demand_fast_tier or key:demand_stable_tier",
    )
    assert rebuilt.success, rebuilt.failures
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=cursor, evaluation_time=datetime.now(UTC)
    )
    requested = {
        k.to_user_string()
        for k in defs.resolve_asset_graph().get_all_asset_keys()
        if result.get_num_requested(k)
    }
    parts = {k for k in requested if k.endswith("_tier_model")}
    assert parts == expected, (ticks, sorted(requested))
    assert {"demand_model", "demand_evaluation", "demand_onnx", "demand_promotion"} <= requested
    fraud_chain = {f"fraud_{step}" for step in ("model", "evaluation", "onnx", "promotion")}
    assert not requested & fraud_chain

    # Requested once: the next tick requests no part again.
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=result.cursor, evaluation_time=datetime.now(UTC)
    )
    assert not any(
        result.get_num_requested(dg.AssetKey(f"demand_{t.name}_tier_model")) for t in (FAST, STABLE)
    )
    for tier in (FAST, STABLE):  # new codes: both memberships get a new data version
        instance.report_runless_asset_event(
            dg.AssetMaterialization(f"demand_{tier.name}_tier", tags={DATA_VERSION_TAG: "new"})
        )
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=result.cursor, evaluation_time=datetime.now(UTC)
    )
    for tier in (FAST, STABLE):
        assert result.get_num_requested(dg.AssetKey(f"demand_{tier.name}_tier_model")) == 1
