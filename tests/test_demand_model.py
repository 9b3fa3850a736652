"""Demand forecasting family on the tiny platform: point-in-time features, time splits,
accuracy against honest baselines, evaluation contents and ONNX parity."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from retail_assets.models.demand import demand_family, origin_features
from retail_assets.models.demand import features as F
from retail_assets.models.demand.evaluate import BASELINES
from retail_assets.models.demand.family import DemandForecastFamily
from retail_assets.models.demand.grain import DAILY, WEEKLY
from retail_assets.models.lifecycle.onnx_export import parity
from retail_assets.warehouse import WarehouseResource

SOURCE = "marts/demand_features"


def read_mart(settings) -> pl.DataFrame:
    return WarehouseResource(path=str(settings.warehouse_path)).read_table(
        "marts", "demand_features"
    )


@pytest.fixture(scope="module")
def tiny_mart(tiny_platform) -> pl.DataFrame:
    settings, _ = tiny_platform
    return read_mart(settings)


@pytest.fixture(scope="module")
def training_set(tiny_mart):
    return demand_family.build_training_set({SOURCE: tiny_mart})


@pytest.fixture(scope="module")
def model(training_set):
    return demand_family.train(training_set)


@pytest.fixture(scope="module")
def evaluation(training_set, model):
    test = training_set.split("test")
    return demand_family.evaluate(
        training_set, {"challenger": demand_family.predict(model, test)}, model
    )


def _same(a: pl.Series, b: pl.Series) -> np.ndarray:
    """Element-wise equality that treats two missing values as equal."""
    x = a.cast(pl.Float64).fill_null(np.nan).to_numpy()
    y = b.cast(pl.Float64).fill_null(np.nan).to_numpy()
    return (x == y) | (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) < 1e-9)


# Examples recounted per split: the recount is plain Python (~150 lookups per example), so a
# seeded sample keeps it to a few seconds while covering every split and thousands of series-days.
RECOUNT_SAMPLE = {"train": 3000, "validation": 500, "test": 500}


def _recount(mart: pl.DataFrame, examples: pl.DataFrame) -> pl.DataFrame:
    """The history features of `examples` recomputed from their definitions by DATE, with
    plain Python over {(store, sku, day): units}: a day the mart does not have, or a day the
    store was planned closed, is missing (a NULL lag, skipped by the means), never a
    neighbour's value and never a zero."""
    units = {
        (store, sku, day): float(y)
        for store, sku, day, y, is_open in mart.select(
            "store_id", "sku", "date", "units_sold", "is_open"
        ).iter_rows()
        if is_open
    }

    def window(store, sku, last, days):
        values = [units.get((store, sku, last - timedelta(days=k))) for k in range(days)]
        return [v for v in values if v is not None]

    def mean(values):
        return sum(values) / len(values) if values else None

    rows = []
    for store, sku, o, t in examples.select(
        "store_id", "sku", "origin_date", "target_date"
    ).iter_rows():
        last_28 = window(store, sku, o, 28)
        spread = (
            float(np.std(last_28, ddof=1)) if len(last_28) > 1 else None  # sample std
        )
        rows.append(
            {
                "units_lag_1": units.get((store, sku, o)),
                "units_lag_7": units.get((store, sku, o - timedelta(days=6))),
                "units_lag_14": units.get((store, sku, o - timedelta(days=13))),
                "units_lag_28": units.get((store, sku, o - timedelta(days=27))),
                "units_mean_7d": mean(window(store, sku, o, 7)),
                "units_mean_28d": mean(last_28),
                "units_mean_91d": mean(window(store, sku, o, 91)),
                "units_std_28d": spread,
                "zero_sale_share_28d": mean([float(v == 0) for v in last_28]),
                "units_lag_364": units.get((store, sku, t - timedelta(days=364))),
                "units_mean_same_week_last_year": mean(
                    window(store, sku, t - timedelta(days=361), 7)
                ),
            }
        )
    return pl.DataFrame(rows, schema={name: pl.Float64 for name in rows[0]})


def test_origin_history_equals_an_independent_recount_by_date(tiny_mart, training_set):
    """The demand history is defined once, in `origin_features`: the mart carries no lags or
    rolling statistics, and the history of every sampled example (each split) equals a plain
    recount of the mart's units by date, with windows ending at the origin (lags, means over
    the observed days, sample std, zero-sale share) and seasonal lags that end at t - 361 <= o.
    A missing day gives a missing lag. Tolerance 1e-9, except the std (1e-6: training computes
    it from running sums of squares, the recount in two passes). Year-ago columns are masked
    (missing) on a drawn share of training rows only, at about the recorded rate."""
    assert [c for c in tiny_mart.columns if c.startswith("units_")] == ["units_sold"]
    sample = pl.concat(
        [training_set.split(name).sample(n=n, seed=0) for name, n in RECOUNT_SAMPLE.items()]
    )
    expected = _recount(tiny_mart, sample)
    train = (sample["split"] == "train").to_numpy()
    rate = training_set.info["year_ago_mask_rate"]
    for column in expected.columns:
        tolerance = 1e-6 if column == "units_std_28d" else 1e-9
        got = sample[column].cast(pl.Float64).fill_null(np.nan).to_numpy()
        want = expected[column].fill_null(np.nan).to_numpy()
        same = (np.isnan(got) & np.isnan(want)) | np.isclose(
            got, want, rtol=tolerance, atol=tolerance
        )
        if column in DAILY.year_ago_columns():
            masked = train & np.isnan(got) & ~np.isnan(want)
            assert masked.sum() <= 2 * rate * train.sum() + 5, (column, masked.sum())
            same |= masked
        assert same.all(), f"{column}: {int((~same).sum())} of {len(same)} examples differ"
    assert sample["units_lag_364"].drop_nulls().len() > 0
    assert sample["units_lag_1"].null_count() > 0 or sample["units_lag_7"].null_count() > 0


def test_features_ignore_sales_after_the_origin(platform_copy):
    """Point-in-time correctness end to end: sales on every day from a cut-off day C on are
    changed in the landed feed and the platform is re-materialized. Every example whose origin
    is before C keeps identical features (only targets on or after C change), while a
    deliberately leaky variant - history read from the mart row of the target day, as a naive
    one-row-per-day join would - changes for those same examples, so this test would catch
    such a leak."""
    from retail_assets.runner import materialize_platform
    from retail_assets.sources.landing_zone import LandingZone

    settings = platform_copy
    before_mart = read_mart(settings)
    before = demand_family.build_training_set({SOURCE: before_mart})
    cutoff = before_mart["date"].max() - timedelta(days=120)  # inside the training window

    zone = LandingZone(settings.landing_dir)
    sales = zone.read("sales")
    changed = sales.with_columns(
        pl.when(pl.col("date") >= cutoff)
        .then(pl.col("units_sold") * 3 + 2)
        .otherwise(pl.col("units_sold"))
        .cast(pl.Int32)
        .alias("units_sold")
    ).with_columns((pl.col("units_sold") * pl.col("unit_price")).alias("revenue"))
    zone.write({"sales": changed}, source={"kind": "test", "change": f"units x3+2 from {cutoff}"})
    summary = materialize_platform(settings)
    assert summary.success, summary.failures
    after_mart = read_mart(settings)
    assert after_mart.filter(pl.col("date") >= cutoff)["units_sold"].sum() > (
        before_mart.filter(pl.col("date") >= cutoff)["units_sold"].sum()
    )
    after = demand_family.build_training_set({SOURCE: after_mart})

    keys = ["store_id", "sku", "origin_date", "target_date"]
    joined = before.frame.join(after.frame, on=keys, how="inner", suffix="_after")
    assert joined.height == before.frame.height == after.frame.height
    early = joined.filter(pl.col("origin_date") < cutoff)
    assert early.height > 1000
    for column in before.feature_columns:
        same = _same(early[column], early[f"{column}_after"])
        assert same.all(), f"{column} changed for {int((~same).sum())} examples with origin < C"
    # The targets did change for examples whose target is on or after C, and the history of
    # examples with a later origin did change: the change reached the features' inputs.
    crossing = early.filter(pl.col("target_date") >= cutoff)
    assert crossing.height > 0
    assert not _same(crossing["units_sold"], crossing["units_sold_after"]).all()
    late = joined.filter(pl.col("origin_date") >= cutoff)
    assert not _same(late["units_mean_28d"], late["units_mean_28d_after"]).all()

    def leaky(mart: pl.DataFrame) -> pl.DataFrame:
        """History as of the start of the target day (the end of t - 1), as a naive
        one-row-per-day history join would give: it includes days after the origin."""
        origins = crossing.select(
            "store_id",
            "sku",
            (pl.col("target_date") - timedelta(days=1)).alias("origin_date"),
            pl.lit(1).alias("horizon"),
        )
        return origin_features(mart, origins).select(
            "store_id", "sku", "target_date", "units_lag_1", "units_mean_7d"
        )

    leak = (
        crossing.select(keys)
        .join(leaky(before_mart).unique(), on=["store_id", "sku", "target_date"])
        .join(leaky(after_mart).unique(), on=["store_id", "sku", "target_date"], suffix="_after")
    )
    assert not _same(leak["units_mean_7d"], leak["units_mean_7d_after"]).all()


def test_splits_are_disjoint_in_time_and_windows_match_the_data(tiny_mart, training_set):
    """Train targets end at the validation origin, validation targets at the test origin, test
    targets at the last data day; every example's origin precedes its target by its horizon
    (1..28), validation and test are each forecast from one origin, train has one example per
    store-SKU-day, and the recorded windows / origins are the data's."""
    ts = training_set
    end = tiny_mart["date"].max()
    frame = ts.frame
    assert (frame["target_date"] - frame["origin_date"]).dt.total_days().to_list() == frame[
        "horizon"
    ].cast(pl.Int64).to_list()
    assert frame["horizon"].min() >= 1 and frame["horizon"].max() <= 28

    test, valid, train = ts.split("test"), ts.split("validation"), ts.split("train")
    test_origin, valid_origin = end - timedelta(days=28), end - timedelta(days=56)
    assert test["origin_date"].unique().to_list() == [test_origin]
    assert valid["origin_date"].unique().to_list() == [valid_origin]
    assert train["target_date"].max() <= valid_origin < valid["target_date"].min()
    assert valid["target_date"].max() <= test_origin < test["target_date"].min()
    assert test["target_date"].max() == end
    assert train.select("store_id", "sku", "target_date").is_unique().all()
    assert set(train["horizon"].unique().to_list()) == set(range(1, 29))
    # The test split is every mart row of the last 28 days.
    assert test.height == tiny_mart.filter(pl.col("date") > test_origin).height

    for name, split in (("train", train), ("validation", valid), ("test", test)):
        assert ts.windows[name]["start"] == split["target_date"].min().isoformat()
        assert ts.windows[name]["end"] == split["target_date"].max().isoformat()
    assert ts.windows["test"]["origin"] == test_origin.isoformat()
    assert ts.windows["validation"]["origin"] == valid_origin.isoformat()
    assert ts.info["origins"]["train_max"] == train["origin_date"].max().isoformat()
    assert ts.info["train_days"] == 365  # tiny has ~500 days: the default is not truncated
    assert ts.entity_columns == ["store_id", "sku", "origin_date", "target_date"]
    assert all(frame[c].dtype == pl.String for c in ts.segment_columns)
    assert ts.features(frame).dtype == np.float64
    for column in F.CATEGORICAL_COLUMNS:
        codes = frame[f"{column}_code"]
        vocab = ts.encodings[column]
        assert [vocab[c] for c in codes.head(50).to_list()] == frame[column].head(50).to_list()


def test_training_set_is_deterministic(tiny_mart, training_set):
    """Building twice gives the same frame: the train horizons are a stable hash, not a
    function of row order or of the random state."""
    again = demand_family.build_training_set({SOURCE: tiny_mart.sample(fraction=1.0, seed=3)})
    assert again.frame.equals(training_set.frame)


def test_online_features_at_the_last_data_day(tiny_mart, training_set):
    """`origin_features` works at the serving origin (the last data day, no later mart rows)
    for every series and horizon 1..28, and for the test origin it reproduces the training
    set's history features exactly: one code path for training and serving."""
    end = tiny_mart["date"].max()
    series = tiny_mart.select("store_id", "sku").unique().sort("store_id", "sku")
    online = origin_features(
        tiny_mart,
        series.join(pl.DataFrame({"horizon": list(range(1, 29))}), how="cross").with_columns(
            pl.lit(end).alias("origin_date")
        ),
    )
    assert online.height == series.height * 28
    assert (online["target_date"] > end).all()
    # Series still selling on the last day have yesterday's units; series that stopped earlier
    # keep their observed history but no lag for the missing day.
    on_sale = tiny_mart.filter(pl.col("date") == end).select("store_id", "sku")
    live = online.join(on_sale, on=["store_id", "sku"], how="semi")
    stopped = online.join(on_sale, on=["store_id", "sku"], how="anti")
    assert live.height > 0 and live["units_lag_1"].null_count() == 0
    assert stopped["units_lag_1"].null_count() == stopped.height
    assert (stopped["days_of_history"] > 0).all()

    test = training_set.split("test")
    recomputed = origin_features(
        tiny_mart, test.select("store_id", "sku", "origin_date", "horizon")
    )
    for column in DAILY.origin_history_columns() + DAILY.target_history_columns():
        assert _same(recomputed[column], test[column]).all(), column


def test_model_beats_the_strongest_baselines_and_shuffled_labels_do_not(
    training_set, model, evaluation
):
    """On the tiny test window (3 stores x 30 SKUs x 28 days) the model's WAPE is below the
    best of the four baselines (seasonal naive, last year, the store x weekday x promotion
    profile, the level-scaled last year) by the gate's margin, and its conformally calibrated
    p10-p90 interval covers 80 % +- 5 points of the held-out actuals; the negative control
    trained on permuted labels does not beat the profile, so the gate would refuse it."""
    overall = evaluation.overall
    best = min(overall[b]["wape"] for b in BASELINES)
    assert overall["challenger"]["wape"] < 0.98 * best
    assert overall["challenger"]["mase"] < overall["seasonal_naive"]["mase"]
    assert abs(overall["challenger"]["coverage_p10_p90"] - 0.8) <= 0.05
    assert abs(overall["challenger"]["bias"]) < 0.25
    assert model.interval_calibration["rows"] == training_set.split("validation").height

    shuffled = demand_family.train(training_set, shuffle_labels_seed=7)
    test = training_set.split("test")
    control = demand_family.evaluate(
        training_set, {"challenger": demand_family.predict(shuffled, test)}, shuffled
    )
    assert control.overall["challenger"]["wape"] > control.overall["profile"]["wape"]
    assert shuffled.params["shuffle_labels_seed"] == 7


def test_evaluation_reports_segments_audit_importance_and_explanations(
    training_set, model, evaluation
):
    """The evaluation carries what the gate and the model card read: every metric's direction,
    per-segment rows with n and support for each predictor, a WAPE disparity audit, gain and
    split importance for every feature, and 20 explained predictions with top-3 features."""
    test = training_set.split("test")
    assert evaluation.primary_metric == "wape"
    assert set(evaluation.overall) == {"challenger", *BASELINES}
    for metrics in evaluation.overall.values():
        for metric in metrics:
            assert metric in ("n", "support") or metric in evaluation.higher_is_better
    for column in ("category", "store_region"):
        rows = evaluation.by_segment[column]
        segments = set(test[column].unique().to_list())
        assert {r["segment"] for r in rows} == segments
        assert len(rows) == (1 + len(BASELINES)) * len(segments)
        assert sum(r["n"] for r in rows if r["predictor"] == "challenger") == test.height
        assert all("support" in r and "wape" in r for r in rows)
        audit = evaluation.bias_audit[column]["challenger"]
        assert audit["wape_max_min_ratio"] >= 1.0 and audit["worst_segment"] in segments
    assert evaluation.test_window["origin"] == training_set.windows["test"]["origin"]
    assert {r["feature"] for r in evaluation.feature_importance} == set(model.feature_columns)
    assert all({"gain", "split"} <= set(r) for r in evaluation.feature_importance)
    assert len(evaluation.explanations) == 20
    for explanation in evaluation.explanations:
        assert len(explanation["top_features"]) == 3
        assert {"feature", "value", "contribution_log"} <= set(explanation["top_features"][0])
    assert any("MASE scale" in note for note in evaluation.notes)


def test_gate_rules_and_outputs(model):
    """The gate rules are the documented ones (beat the best of the four baselines by 2 %
    overall and stay within 5 % of each supported segment's best baseline, <= 10 % relative
    WAPE regression vs the champion overall and per segment with >= 200 units, p10-p90
    coverage within 5 points of 80 %) and every output has a plain-language meaning."""
    rules = {
        (r.metric, r.beat_baseline, r.baseline_margin, r.champion_tolerance, r.absolute)
        for r in demand_family.gate_rules
    }
    assert ("wape", BASELINES, 0.02, None, None) in rules
    assert ("wape", BASELINES, -0.05, None, None) in rules
    assert ("wape", None, 0.0, 0.10, None) in rules
    assert ("coverage_error", None, 0.0, None, 0.05) in rules
    assert (
        set(demand_family.output_meanings) == set(model.boosters) == {"mean", "p10", "p50", "p90"}
    )
    assert model.sorted_output_groups == [["p10", "p50", "p90"]]


def test_onnx_export_matches_lightgbm_on_the_test_split(training_set, model):
    """The exported graph reproduces LightGBM's four outputs (including the per-row quantile
    sort) to < 1e-5 on every test row, and `predict` never returns crossing quantiles."""
    test = training_set.split("test")
    x = training_set.features(test)
    graph = demand_family.to_onnx(model)
    differences = parity(
        graph, model.boosters, x, model.sorted_output_groups, model.interval_calibration
    )
    assert set(differences) == {"mean", "p10", "p50", "p90"}
    assert max(differences.values()) < 1e-5, differences
    outputs = demand_family.predict(model, test)
    assert (outputs["p10"] <= outputs["p50"]).all() and (outputs["p50"] <= outputs["p90"]).all()
    closed = test["is_open"].cast(pl.Float64).to_numpy() == 0
    assert (outputs["mean"][~closed] > 0).all()
    # A planned closed day is forecast 0 by every model, as serving forecasts it.
    assert all((outputs[k][closed] == 0).all() for k in outputs)


def test_champion_is_scored_like_the_challenger(training_set, model):
    """A champion's outputs are scored with the same metrics, overall and per segment, so the
    gate's no-regression rule compares like with like (here the champion is the same model,
    so every metric must agree exactly); wrongly sized predictions are refused."""
    test = training_set.split("test")
    outputs = demand_family.predict(model, test)
    evaluation = demand_family.evaluate(
        training_set, {"challenger": outputs, "champion": dict(outputs)}, model
    )
    assert evaluation.overall["champion"] == evaluation.overall["challenger"]
    for rows in evaluation.by_segment.values():
        champion = {r["segment"]: r for r in rows if r["predictor"] == "champion"}
        for row in rows:
            if row["predictor"] == "challenger":
                assert champion[row["segment"]]["wape"] == row["wape"]
    with pytest.raises(ValueError, match="champion"):
        demand_family.evaluate(
            training_set,
            {"challenger": outputs, "champion": {"mean": outputs["mean"][:-1]}},
            model,
        )


def _weekly(mart: pl.DataFrame) -> pl.DataFrame:
    """The tiny daily mart as a retailer's weekly feed would give it: one row per store, SKU
    and week (Monday..Sunday) dated on the Sunday, units summed, the week promoted if any day
    was, prices averaged, the calendar flags of any day in the week."""
    weekly = mart.with_columns(
        (pl.col("date").dt.truncate("1w") + pl.duration(days=6)).alias("_week")
    )
    summed = {"units_sold"}
    anyday = {c for c, t in mart.schema.items() if t == pl.Boolean}
    averaged = {"unit_price", "list_price", "price_ratio", "promo_discount_pct"}
    aggregations = [
        pl.col("units_sold").sum(),
        *[pl.col(c).any() for c in anyday],
        *[pl.col(c).mean() for c in averaged],
        *[
            pl.col(c).last()
            for c in mart.columns
            if c not in summed | anyday | averaged | {"store_id", "sku", "date"}
        ],
    ]
    return (
        weekly.group_by("store_id", "sku", "_week")
        .agg(aggregations)
        .rename({"_week": "date"})
        .select(mart.columns)
        .sort("store_id", "sku", "date")
    )


def test_weekly_sales_go_through_the_same_family_with_weekly_seasons_and_horizons(tiny_mart):
    """A weekly feed (one row per store, SKU and week) trains, evaluates and exports through
    the one demand family with `grain=WEEKLY`: horizons 1..8 weeks from origins a whole
    number of weeks apart, history windows counted in weeks (a lag of 1 is the origin week's
    units, recounted by date), the weekly baselines (last week, the same week last year, the
    recent promotion profile, the level-scaled last year) scored beside the model, and horizon
    buckets per week. Daily rows handed to the weekly grain fail naming the weekdays found."""
    weekly = _weekly(tiny_mart)
    family = DemandForecastFamily(grain=WEEKLY)
    training_set = family.build_training_set({SOURCE: weekly})
    frame = training_set.frame
    assert training_set.info["grain"] == "week"
    assert frame["horizon"].min() == 1 and frame["horizon"].max() == WEEKLY.max_horizon
    gap = (frame["target_date"] - frame["origin_date"]).dt.total_days()
    assert (gap == 7 * frame["horizon"]).all()
    assert set(frame["target_date"].dt.weekday().unique()) == {7}  # Sundays, as landed
    assert {"units_lag_1", "units_mean_13w", "weeks_of_history", "units_lag_52"} <= set(
        training_set.feature_columns
    )
    assert "units_same_weekday_last" not in training_set.feature_columns

    units = {
        (s, k, d): float(y)
        for s, k, d, y, is_open in weekly.select(
            "store_id", "sku", "date", "units_sold", "is_open"
        ).iter_rows()
        if is_open
    }
    test = training_set.split("test")
    recount = [
        units.get((s, k, o))
        for s, k, o in test.select("store_id", "sku", "origin_date").iter_rows()
    ]
    assert _same(test["units_lag_1"], pl.Series(recount, dtype=pl.Float64)).all()

    model = family.train(training_set)
    evaluation = family.evaluate(training_set, {"challenger": family.predict(model, test)}, model)
    assert set(BASELINES) <= set(evaluation.overall)
    buckets = evaluation.bias_audit["wape_by_horizon_week"]["challenger"]
    assert list(buckets) == [f"h{h}" for h in range(1, 9)]
    assert np.isfinite(evaluation.overall["challenger"]["wape"])
    differences = parity(
        family.to_onnx(model),
        model.boosters,
        training_set.features(test),
        model.sorted_output_groups,
        model.interval_calibration,
    )
    assert max(differences.values()) < 1e-5, differences

    with pytest.raises(
        ValueError,
        match=r"one row per store, SKU and week, all dated on the same weekday; found .*Monday",
    ):
        family.build_training_set({SOURCE: tiny_mart})


def test_the_training_set_built_a_few_series_at_a_time_equals_the_one_built_at_once(tiny_mart):
    """The history state is built per chunk of series to bound memory (`SERIES_PER_CHUNK`):
    chunks of 7 series give exactly the frame, the splits and the MASE scale of one chunk."""
    from retail_assets.models.demand.training_set import build_demand_training_set

    whole = build_demand_training_set(tiny_mart, series_per_chunk=1_000_000)
    chunked = build_demand_training_set(tiny_mart, series_per_chunk=7)
    assert tiny_mart.select("store_id", "sku").unique().height > 7 * 3
    assert chunked.frame.equals(whole.frame)
    assert chunked.info["mase_scale"] == whole.info["mase_scale"]
    assert chunked.info["rows"] == whole.info["rows"]


def test_train_rows_beyond_the_cap_are_sampled_stably_and_the_held_out_windows_never(tiny_mart):
    """A cap below the train rows keeps about that many, the same ones on every build, from
    every series; validation and test rows are all kept."""
    from retail_assets.models.demand.training_set import build_demand_training_set

    whole = build_demand_training_set(tiny_mart)
    cap = whole.info["rows"]["train"] // 3
    sampled = build_demand_training_set(tiny_mart, max_train_rows=cap)
    again = build_demand_training_set(tiny_mart, max_train_rows=cap)
    assert sampled.frame.equals(again.frame)
    assert abs(sampled.info["rows"]["train"] - cap) < 0.1 * cap
    assert sampled.info["train_rows_sampled_share"] < 0.4
    for split in ("validation", "test"):
        assert sampled.split(split).equals(whole.split(split))
    series = whole.split("train").select("store_id", "sku").unique().height
    assert sampled.split("train").select("store_id", "sku").unique().height == series
