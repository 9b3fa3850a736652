"""Recommendations served over HTTP (issue 13): the request answers from the published tables
through the code the ranker was trained with, names where each item came from, what the
request fell back to and which rule changed the list; bad input is a 422 naming the field;
logged lists are joined to the clicks the generator's shoppers make on them, and a CTR drop
is a verdict that retrains."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest
from conftest import ServingServer, settings_for_home

from retail_assets.models.recommend.online import SOURCES

URL = "/v1/recommendations"


def _post(server, json: dict):
    import httpx

    return httpx.post(server.url + URL, json=json, timeout=30)


def _warehouse(settings, schema: str, table: str) -> pl.DataFrame:
    from retail_assets.warehouse import WarehouseResource

    return WarehouseResource(path=str(settings.warehouse_path)).read_table(schema, table)


def _returning_customers(settings, n: int) -> list[str]:
    from retail_assets.models.recommend import candidates as C

    events = C.engagements(_warehouse(settings, "raw", "clickstream"))
    counts = events.drop_nulls("customer_id").group_by("customer_id").len()
    return (
        counts.sort(["len", "customer_id"], descending=[True, False])["customer_id"]
        .head(n)
        .to_list()
    )


@pytest.fixture(scope="module")
def server(tiny_platform):
    settings, _ = tiny_platform
    with ServingServer(settings) as running:
        yield running


def test_a_known_customer_gets_the_ranking_the_training_code_computes_from_the_published_tables(
    tiny_platform, server
):
    """The served list equals, item for item, what the ranker's training-set code
    (`candidate_features` over the pipeline's own tables at the published time) and the
    promoted ONNX bundle give, after the same business rules; every item names its source, and
    the answer names the champion version and arm."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.models.lifecycle.bundle import LoadedBundle
    from retail_assets.models.recommend import candidates as C
    from retail_assets.models.recommend.features import source_tables
    from retail_assets.models.recommend.online import Candidates
    from retail_assets.models.recommend.rules import RuleBook, Rules, stock_on
    from retail_assets.online_features import RECOMMEND_FEATURE_SET
    from retail_assets.online_features.store import read_manifest
    from retail_assets.search.index import LoadedIndex

    settings, _ = tiny_platform
    artifacts = Artifacts.from_settings(settings)
    store = artifacts.model("recommend")
    bundle = LoadedBundle(store.version_dir(store.champion()))
    features = artifacts.features(RECOMMEND_FEATURE_SET)
    at = datetime.fromisoformat(read_manifest(features.version_dir(features.champion()))["as_of"])
    index = artifacts.search_index()
    tables = source_tables(
        C.engagements(_warehouse(settings, "raw", "clickstream")),
        _warehouse(settings, "marts", "dim_customers"),
        _warehouse(settings, "marts", "dim_products"),
        at,
        C.content_neighbours(LoadedIndex(index.version_dir(index.champion()))),
        launched_only=False,
    )
    offline = Candidates(tables, at)
    inventory = _warehouse(settings, "raw", "inventory")
    rules = RuleBook.from_products(
        _warehouse(settings, "marts", "dim_products"), stock_on(inventory, at.date())
    )
    for customer in _returning_customers(settings, 3):
        response = _post(server, {"customer_id": customer, "k": 10})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["fallback"] is None and "history" in body["fallback_meaning"]
        assert body["model"] == {
            "name": "recommend",
            "version": store.champion(),
            "arm": "champion",
        }
        assert 1 <= len(body["items"]) <= 10
        assert [item["rank"] for item in body["items"]] == list(range(1, len(body["items"]) + 1))
        assert {item["source"] for item in body["items"]} <= set(SOURCES)
        scores = [item["score"] for item in body["items"]]
        assert scores == sorted(scores, reverse=True)

        query = offline.query(customer)
        assert body["candidates"] == len(query.items)
        score = bundle.predict_matrix(query.features)["score"].reshape(-1)
        ranked = query.items[np.lexsort((query.items, -score))]
        shown, removed = rules.apply(
            [rules.skus.index(offline.skus[i]) for i in ranked], 10, at.date(), Rules()
        )
        assert [item["sku"] for item in body["items"]] == [rules.skus[i] for i in shown]
        assert [(r["sku"], r["rule"]) for r in body["rules_applied"]] == [
            (rules.skus[i], rule) for i, rule in removed
        ]


def test_a_new_customer_gets_context_and_popularity_and_never_the_items_in_view(
    tiny_platform, server
):
    settings, _ = tiny_platform
    products = _warehouse(settings, "marts", "dim_products")
    current, in_cart = products["sku"][0], products["sku"][1]
    body = _post(
        server,
        {
            "customer_id": "NEVER-SEEN",
            "current_sku": current,
            "cart": [in_cart, "SKU-NOT-IN-TABLES"],
            "k": 8,
        },
    ).json()
    assert body["fallback"] == "context"
    shown = [item["sku"] for item in body["items"]]
    assert current not in shown and in_cart not in shown and len(shown) == len(set(shown))
    assert body["ignored_context"] == ["SKU-NOT-IN-TABLES"]
    # Related items of the context are candidates beside popularity.
    assert {item["source"] for item in body["items"]} & {"cooccurrence", "content"}
    anonymous = _post(server, {"k": 5}).json()
    assert anonymous["fallback"] == "popularity" and len(anonymous["items"]) == 5
    assert {item["source"] for item in anonymous["items"]} <= set(SOURCES)


def test_filters_and_the_diversity_cap_shape_the_list_and_say_so(tiny_platform, server):
    settings, _ = tiny_platform
    customer = _returning_customers(settings, 1)[0]
    products = _warehouse(settings, "marts", "dim_products")
    category = products["category"].value_counts(sort=True)["category"][0]
    body = _post(
        server, {"customer_id": customer, "k": 20, "filters": {"category": [category]}}
    ).json()
    assert body["items"] and {item["category"] for item in body["items"]} == {category}
    # One category only, so the cap (3 per category by default) ends the list at 3 ...
    assert len(body["items"]) <= 3
    assert {r["rule"] for r in body["rules_applied"]} <= {
        "diversity_cap", "discontinued", "out_of_stock"
    }  # fmt: skip
    # ... and a request may lift it.
    lifted = _post(
        server,
        {
            "customer_id": customer,
            "k": 20,
            "max_per_category": 20,
            "filters": {"category": [category]},
        },
    ).json()
    assert len(lifted["items"]) >= len(body["items"])
    assert "diversity_cap" not in {r["rule"] for r in lifted["rules_applied"]}
    prices = dict(products.select("sku", "list_price").iter_rows())
    low, high = sorted(prices.values())[len(prices) // 4], sorted(prices.values())[len(prices) // 2]
    priced = _post(
        server, {"k": 20, "filters": {"min_price": low, "max_price": high, "in_stock": True}}
    ).json()
    assert all(low <= prices[item["sku"]] <= high for item in priced["items"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": 0}, "$.k"),
        ({"k": 101}, "$.k"),
        ({"customer_id": ""}, "$.customer_id"),
        ({"cart": ["x"] * 101}, "$.cart"),
        ({"filters": {"category": ["No Such Category"]}}, "$.filters.category[0]"),
        ({"filters": {"min_price": 10, "max_price": 5}}, "$.filters.max_price"),
        ({"filters": {"min_price": -1}}, "$.filters.min_price"),
        ({"max_per_category": 0}, "$.max_per_category"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_requests_are_422_naming_the_field(server, body, field):
    response = _post(server, body)
    assert response.status_code == 422, response.text
    fields = [f["field"] for f in response.json()["fields"]]
    assert any(field in f for f in fields), fields


NOW = datetime(2026, 10, 31)


def _outcomes(recent_ctr: float, version: str = "3") -> pl.DataFrame:
    """Four weeks of the champion's lists: CTR 0.30, then `recent_ctr` in the last week."""
    from retail_assets.monitoring.feedback import MIN_LISTS

    rng = np.random.default_rng(0)
    n = 6 * MIN_LISTS
    ts = [NOW - timedelta(days=float(d)) for d in rng.uniform(0, 27, n)]
    recent = np.array([t >= NOW - timedelta(days=7) for t in ts])
    clicked = rng.random(n) < np.where(recent, recent_ctr, 0.30)
    return pl.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "ts": ts,
            "version": version,
            "arm": "champion",
            "clicked": clicked,
            "carted": clicked & (rng.random(n) < 0.3),
            "converted": np.zeros(n, dtype=bool),
        }
    )


def test_ctr_drop_of_the_champion_is_a_retrain_verdict_and_a_steady_ctr_is_not():
    from retail_assets.monitoring.feedback import MIN_LISTS, monitor_recommend

    now, outcomes = NOW, _outcomes
    steady = monitor_recommend(outcomes(0.30), "3", now, {})
    assert not steady.degraded and steady.actions == []
    assert steady.live["recent_lists"] >= MIN_LISTS and steady.live["reference_lists"] >= MIN_LISTS
    dropped = monitor_recommend(outcomes(0.12), "3", now, {})
    assert dropped.degraded and dropped.actions == ["retrain"]
    assert "CTR fell" in dropped.degradation and dropped.live["p_value"] < 0.01
    # Another version's lists are not the champion's evidence, nor anyone's without a champion.
    assert monitor_recommend(outcomes(0.12), "4", now, {}).notes
    unserved = monitor_recommend(outcomes(0.12), None, now, {})
    assert unserved.live["recent_lists"] == 0 and not unserved.degraded


def test_a_ctr_drop_report_makes_the_sensor_retrain_the_recommender_only(platform_copy):
    """The verdict goes the way of every model's: the report is published with a
    `live_degraded` decision, and monitoring_retrain_sensor requests exactly the recommend
    chain, once."""
    import dagster as dg

    from retail_assets.artifacts import Artifacts
    from retail_assets.monitoring.assets import monitoring_retrain_sensor, publish_report
    from retail_assets.monitoring.feedback import monitor_recommend
    from retail_assets.resources import ArtifactsResource

    artifacts = Artifacts.from_settings(platform_copy)
    champion = artifacts.model("recommend").champion()
    report = monitor_recommend(_outcomes(0.12, champion), champion, NOW, {})
    _, decision = publish_report(artifacts, report)
    assert decision["action"] == "live_degraded" and "CTR fell" in decision["reason"]

    def sensor():
        context = dg.build_sensor_context(
            instance=dg.DagsterInstance.get(),
            resources={"artifacts": ArtifactsResource.from_settings(platform_copy)},
        )
        return monitoring_retrain_sensor(context)

    requests = sensor()
    assert isinstance(requests, list) and len(requests) == 1
    keys = {key.to_user_string() for key in requests[0].asset_selection}
    assert keys == {
        "recommend_model",
        "recommend_evaluation",
        "recommend_onnx",
        "recommend_promotion",
    }
    assert requests[0].tags["retail/model"] == "recommend"
    assert isinstance(sensor(), dg.SkipReason)


def test_the_generators_shoppers_click_what_they_like_so_ctr_measures_the_recommender():
    from retail_assets.sources.synthetic.config import GeneratorConfig
    from retail_assets.sources.synthetic.generate import shoppers

    people = shoppers(GeneratorConfig(scale="tiny", seed=7))
    customers = people.ctx.customers.customer_ids[:300]
    skus = people.ctx.catalog.sku_ids
    rng = np.random.default_rng(1)

    def lists(pick) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "request_id": [f"q{i}" for i in range(len(customers))],
                "ts": [datetime(2026, 11, 1, 12)] * len(customers),
                "customer_id": customers,
                "session_id": [None] * len(customers),
                "skus": [pick(c) for c in customers],
            },
            schema_overrides={"session_id": pl.String},
        )

    best = lists(lambda c: sorted(skus, key=lambda s: -people.appeal(c, s))[:5])
    random = lists(lambda c: list(rng.choice(skus, 5, replace=False)))
    clicks = {}
    for name, served in (("best", best), ("random", random)):
        events = people.respond(served, salt=1)
        assert set(events["event_type"]) <= {"click", "add_to_cart", "purchase"}
        assert (events["event_ts"] >= datetime(2026, 11, 1, 12)).all()
        clicked = events.filter(pl.col("event_type") == "click")
        clicks[name] = clicked["customer_id"].n_unique() / len(customers)
        assert events.equals(people.respond(served, salt=1))  # deterministic
    assert clicks["best"] > 1.5 * clicks["random"] > 0, clicks


def test_logged_recommendations_meet_the_shoppers_clicks_in_recommend_monitoring(
    tiny_platform, tmp_path
):
    """Through the documented paths: lists served over HTTP are logged with customer and
    session; the generator's shoppers answer them; the clicks land as clickstream; a Dagster
    run of recommend_monitoring reports CTR, add-to-cart and conversion per version and arm."""
    from retail_assets.models.recommend import candidates as C
    from retail_assets.runner import materialize_platform
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic.config import GeneratorConfig
    from retail_assets.sources.synthetic.generate import shoppers

    home = tmp_path / "home"
    shutil.copytree(tiny_platform[0].home, home)
    settings = settings_for_home(home)
    # Only this test's lists: other tests of the session served this home's copy already.
    shutil.rmtree(settings.prediction_log_dir, ignore_errors=True)
    try:
        customers = (
            C.engagements(_warehouse(settings, "raw", "clickstream"))
            .drop_nulls("customer_id")["customer_id"]
            .unique()
            .sort()
            .head(250)
            .to_list()
        )
        with ServingServer(settings) as running:
            for i, customer in enumerate(customers):
                response = _post(
                    running, json={"customer_id": customer, "session_id": f"S-{i}", "k": 6}
                )
                assert response.status_code == 200, response.text
        log = pl.read_parquet(settings.prediction_log_dir / "**" / "*.parquet").filter(
            pl.col("model") == "recommend"
        )
        assert log.height == len(customers)
        served = log.select(
            "request_id",
            pl.col("ts").dt.replace_time_zone(None),
            pl.col("entity_id").alias("customer_id"),
            pl.col("features")
            .str.json_decode(pl.Struct({"session_id": pl.String}))
            .struct.field("session_id"),
            pl.col("output")
            .str.json_decode(pl.Struct({"skus": pl.List(pl.String)}))
            .struct.field("skus"),
        )
        answers = shoppers(GeneratorConfig(scale="tiny", seed=settings.seed)).respond(served)
        assert answers.height > 0
        # The shoppers answer within minutes of each list; landed right away, the later ones
        # would be "in the future" for the feed's checks: they happen by now, here.
        now = datetime.now(UTC).replace(tzinfo=None)
        answers = answers.with_columns(pl.min_horizontal("event_ts", pl.lit(now)))
        zone = LandingZone(settings.landing_dir)
        feed = zone.read("clickstream")
        zone.write(
            {"clickstream": pl.concat([feed, answers.select(feed.columns)])},
            source={"kind": "test"},
        )
        summary = materialize_platform(
            settings,
            selection='key:"raw/clickstream" or key:"staging/stg_clickstream" or '
            'key:"serving/prediction_log" or key:"recommend_monitoring"',
        )
        assert summary.success, (summary.failures, summary.failed_checks)
        from retail_assets.artifacts import Artifacts
        from retail_assets.monitoring.assets import latest_report

        _, report = latest_report(Artifacts.from_settings(settings).monitoring("recommend"))
        rows = {(r["version"], r["arm"]): r for r in report["live"]["by_version_arm"]}
        champion = Artifacts.from_settings(settings).model("recommend").champion()
        row = rows[(champion, "champion")]
        assert row["lists"] == len(customers)
        clicked_lists = answers.filter(pl.col("event_type") == "click")["session_id"].n_unique()
        assert row["ctr"] == pytest.approx(clicked_lists / len(customers))
        assert (
            0 < row["ctr"] < 1 and row["conversion_rate"] <= row["add_to_cart_rate"] <= row["ctr"]
        )
        assert report["live"]["recent_lists"] == len(customers)
    finally:
        settings_for_home(tiny_platform[0].home)
