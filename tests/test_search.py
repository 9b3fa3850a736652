"""Semantic product search end to end on the tiny platform: Dagster materializations of the
`search` group (encoder, eval set, quantization decision, embeddings, versioned usearch index
with its blocking recall check, offline evaluation, canary/promotion gate) and the serving
extension over real HTTP (`GET /v1/search`, status and admin endpoints)."""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import threading
import time
from collections import Counter
from datetime import timedelta

import httpx
import polars as pl
import pytest
from conftest import settings_for_home

ADMIN = {"authorization": "Bearer search-admin-token"}
INGEST_SELECTION = " or ".join(
    f"key:{key}"
    for key in (
        "raw/products",
        "staging/stg_products",
        "marts/dim_products",
        "search_eval_set",
        "product_embeddings",
        "product_search_index",
        "search_index_evaluation",
        "search_index_promotion",
    )
)
INDEX_SELECTION = (
    "key:product_search_index or key:search_index_evaluation or key:search_index_promotion"
)
NEW_SKU = "SKU-90001"
NEW_TITLE = "Aurora Heated Ski Gloves - Red"
CHANGED_TITLE = "Hearthline Thermal Camping Hammock - Olive"


class SearchServer:
    """The serving app with the search extension under uvicorn in a thread (real HTTP)."""

    def __init__(self, settings, poll_seconds: float = 0.3):
        import uvicorn

        import serving.search
        from serving.app import create_app
        from serving.config import ServingConfig

        config = dataclasses.replace(
            ServingConfig.from_settings(settings),
            admin_token=ADMIN["authorization"].split()[1],
            poll_seconds=poll_seconds,
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.extension = serving.search.extension(config)
        self.app = create_app(config, extensions=[self.extension])
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def __enter__(self) -> SearchServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.client.get("/v1/search/status").json().get("live"):
                    return self
            except (httpx.TransportError, ValueError):
                pass
            time.sleep(0.1)
        raise RuntimeError("search serving did not load a live index within 60 s")

    def __exit__(self, *exc) -> None:
        self.client.close()
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def search(self, **params) -> dict:
        response = self.client.get("/v1/search", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for(self, predicate, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        status = {}
        while time.monotonic() < deadline:
            status = self.client.get("/v1/search/status").json()
            if predicate(status):
                return status
            time.sleep(0.1)
        raise AssertionError(f"condition not met within {timeout} s; status {status}")


class _Search:
    """The deployment's search stores, plus what a test needs to break them on purpose."""

    def __init__(self, settings):
        from retail_assets.artifacts import Artifacts
        from retail_assets.search.store import SearchStores

        self.stores = SearchStores.of(Artifacts.from_settings(settings))
        self.indexes, self.encoders = self.stores.indexes, self.stores.encoders

    def __getattr__(self, name):
        return getattr(self.stores, name)

    def version_dir(self, version):
        return self.indexes.version_dir(version)

    def read_record(self, version, name):
        return self.indexes.read_record(version, name)

    def encoder_version(self) -> str:
        return self.encoders.champion()

    def set_rollout(self, share: float, min_seconds: float) -> None:
        from retail_assets.core.store import Rollout

        self.indexes.set_rollout(Rollout("canary", share, min_seconds), reason="test", actor="t")

    def point_candidate_at(self, version: str) -> None:
        """Bypass every gate: write the roles file by hand (as a broken deploy script might)."""
        roles = json.loads(self.indexes.roles_path.read_text())
        roles["challenger"] = {"version": version, "since": "2026-01-01T00:00:00+00:00"}
        self.indexes.roles_path.write_text(json.dumps(roles))


def _store(settings) -> _Search:
    return _Search(settings)


def _live_products(settings) -> pl.DataFrame:
    store = _store(settings)
    return pl.read_parquet(store.version_dir(store.live()) / "products.parquet")


def _eval_set(settings):
    from retail_assets.search.catalog import catalog_hash, searchable_products
    from retail_assets.search.evalset import build_eval_set
    from retail_assets.warehouse import WarehouseResource

    dim = WarehouseResource(path=str(settings.warehouse_path)).query(
        "select * from marts.dim_products"
    )
    products = searchable_products(dim)
    return build_eval_set(products, catalog_hash(products))


def _metadata(settings, asset: str) -> dict:
    import dagster as dg

    from retail_assets.runner import instance_for

    event = instance_for(settings).get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None, f"{asset} was never materialized"
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


@pytest.fixture(scope="module")
def server(tiny_platform):
    """One search server over the session's tiny platform (read-only use)."""
    settings, _ = tiny_platform
    with SearchServer(settings) as running:
        yield running


# -- pipeline ------------------------------------------------------------------------------------


def test_pipeline_builds_checks_evaluates_and_publishes_the_first_index(tiny_platform):
    """The full platform run materialized every search asset, the blocking ANN recall check
    passed, the first version went live with its version = encoder version + catalog hash, and
    the metrics are in the assets' metadata as markdown tables."""
    settings, summary = tiny_platform
    for asset in (
        "product_text_encoder",
        "search_eval_set",
        "encoder_quantization",
        "product_embeddings",
        "product_search_index",
        "search_index_evaluation",
        "search_index_promotion",
    ):
        assert asset in summary.materialized, asset
    checks = [c for c in summary.checks if c.check == "ann_recall_at_10_vs_exact"]
    assert checks and all(c.passed for c in checks), checks
    store = _store(settings)
    live = store.live()
    manifest = store.manifest(live)
    encoder_version = store.encoder_version()
    assert (
        live
        == f"{encoder_version}-{manifest['encoder']['quantization']}-{manifest['catalog_hash']}"
    )
    assert store.read_record(live, "checks")["ann_recall_at_10_vs_exact"]["recall@10"] >= 0.95
    assert store.decisions()[0]["action"] == "promote"
    evaluation = _metadata(settings, "search_index_evaluation")
    assert "| metric | live | candidate | delta |" in evaluation["comparison"]
    assert evaluation["ndcg@10"] >= 0.5


def test_int8_is_used_only_after_measuring_its_quality_cost(tiny_platform):
    """encoder_quantization compares int8 and fp32 on the eval set (recall@10, NDCG@10,
    throughput, latency), records the decision by the stated rule, and the index manifest and
    serving use exactly the chosen file; the encoder manifest other users read is untouched."""
    settings, _ = tiny_platform
    store = _store(settings)
    encoder_version = store.encoder_version()
    decision = store.quantization(encoder_version)
    for label in ("fp32", "int8"):
        assert 0 < decision[label]["ndcg@10"] <= 1
        assert decision[label]["texts_per_s"] > 0
    ok = decision["ndcg_drop"] <= 0.01 and decision["recall_drop"] <= 0.01
    assert decision["quantization"] == ("int8" if ok else "fp32")
    assert 0.98 < decision["int8_fp32_cosine_mean"] <= 1.0
    assert store.manifest(store.live())["encoder"]["file"] == decision["serving_file"]
    encoder_manifest = json.loads(
        (store.encoders.version_dir(encoder_version) / "manifest.json").read_text()
    )
    assert encoder_manifest["serving_file"] == "encoder.fp32.onnx"
    metadata = _metadata(settings, "encoder_quantization")
    assert metadata["decision"] == decision["quantization"]
    assert "| encoder | recall@10 | ndcg@10 |" in metadata["comparison"]


def test_eval_set_is_built_deterministically_from_catalog_facts(tiny_platform):
    """The eval set is a pure function of the catalog (same version twice, equal to the
    stored one), and every grade-3 product matches everything its query names."""
    settings, _ = tiny_platform
    first, second = _eval_set(settings), _eval_set(settings)
    assert first.version == second.version
    from retail_assets.search.store import eval_set_path

    stored = json.loads(eval_set_path(settings.search_dir, first.version).read_text())
    assert [q["text"] for q in stored["queries"]] == first.texts
    assert set(first.families()) >= {"title", "color", "brand", "subcategory"}
    products = {row["sku"]: row for row in _live_products(settings).iter_rows(named=True)}
    for query in first.queries:
        column, value = query.facts["type"]
        for sku, grade in query.relevance.items():
            assert products[sku][column] == value
            if grade == 3:
                for name, expected in query.facts["modifiers"].items():
                    if name != "name":
                        assert products[sku][name] == expected, (query.text, sku, name)


# -- serving -------------------------------------------------------------------------------------


def test_search_finds_the_product_a_catalog_query_describes(tiny_platform, server):
    """Over HTTP, title paraphrases from the eval set (brand dropped, gender and colour in
    words) put a product matching everything they say first for nearly every query; the
    answer names the live index version, the arm and the encoder, and results are ranked."""
    settings, _ = tiny_platform
    live = _store(settings).live()
    queries = [q for q in _eval_set(settings).queries if q.family == "title"]
    top_hits = 0
    for query in queries:
        body = server.search(q=query.text, k=5)
        assert body["index_version"] == live
        assert body["arm"] == "live"
        assert body["encoder"].endswith(".onnx")
        scores = [r["score"] for r in body["results"]]
        assert scores == sorted(scores, reverse=True)
        assert set(body["results"][0]) >= {"sku", "title", "price", "category", "score"}
        top_hits += query.relevance.get(body["results"][0]["sku"], 0) == 3
    assert top_hits >= 0.9 * len(queries), f"{top_hits}/{len(queries)}"
    # A whole title finds its product.
    product = _live_products(settings).row(0, named=True)
    body = server.search(q=product["title"], k=3)
    assert body["results"][0]["sku"] == product["sku"]


def test_filters_restrict_results(tiny_platform, server):
    """category, brand, colour (case-insensitive), price range and waterproof filters only
    return matching products, and an unsatisfiable filter returns an empty list (200)."""
    products = _live_products(tiny_platform[0])
    product = products.filter(pl.col("color").is_not_null()).row(0, named=True)
    body = server.search(q="something nice", category=product["category"].upper(), k=50)
    assert body["results"] and {r["category"] for r in body["results"]} == {product["category"]}
    assert body["filters"] == {"category": product["category"].upper()}
    body = server.search(q="gift", brand=product["brand"], color=product["color"], k=50)
    assert product["sku"] in {r["sku"] for r in body["results"]}
    assert all(
        r["brand"] == product["brand"] and r["color"] == product["color"] for r in body["results"]
    )
    prices = sorted(products["list_price"].to_list())
    low, high = prices[len(prices) // 4], prices[3 * len(prices) // 4]
    body = server.search(q="gift", min_price=low, max_price=high, k=50)
    inside = products.filter(pl.col("list_price").is_between(low, high)).height
    assert len(body["results"]) == inside
    assert all(low <= r["price"] <= high for r in body["results"])
    waterproof = set(products.filter(pl.col("is_waterproof"))["sku"].to_list())
    body = server.search(q="outdoor gear", waterproof="true", k=50)
    assert {r["sku"] for r in body["results"]} == waterproof
    body = server.search(q="anything", max_price=0.5)
    assert body["results"] == []


def test_an_empty_price_range_matches_nothing_rather_than_erroring(server):
    """min_price above max_price is a valid request (the schema cannot relate two
    parameters) whose answer is that no product costs that: 200 with no results."""
    response = server.client.get(
        "/v1/search", params={"q": "boots", "min_price": "50", "max_price": "10"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({}, {"$.q"}),
        ({"q": "   "}, {"$.q"}),
        ({"q": "x" * 300}, {"$.q"}),
        ({"q": "boots", "k": "0"}, {"$.k"}),
        ({"q": "boots", "k": "101"}, {"$.k"}),
        ({"q": "boots", "k": "ten"}, {"$.k"}),
        ({"q": "boots", "min_price": "-1"}, {"$.min_price"}),
        ({"q": "boots", "max_price": "nan"}, {"$.max_price"}),
        ({"q": "boots", "max_price": "inf"}, {"$.max_price"}),
        ({"q": "boots", "waterproof": "maybe"}, {"$.waterproof"}),
        ({"q": "boots", "session_id": "has spaces"}, {"$.session_id"}),
        ({"q": "boots", "catgory": "Boots"}, {"$.catgory"}),
    ],
)
def test_invalid_parameters_are_422_naming_the_field(server, params, fields):
    """Every invalid query parameter is a 422 whose field list names it (never a 500)."""
    response = server.client.get("/v1/search", params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert {f["field"] for f in body["fields"]} == fields, body


def test_admin_endpoints_need_the_token(server):
    """Search admin endpoints answer 401 without credentials and 403 with a wrong token."""
    assert (
        server.client.post("/v1/admin/search/promote", json={"reason": "x" * 5}).status_code == 401
    )
    wrong = {"authorization": "Bearer nope"}
    response = server.client.put(
        "/v1/admin/search/rollout", json={"canary_share": 1.0}, headers=wrong
    )
    assert response.status_code == 403


# -- catalog change: incremental build, canary, promotion ------------------------------------------


def _land_catalog_change(settings) -> dict[str, str]:
    """Land a products feed where one product's text changed, one was discontinued and one is
    new, the way a source system would (new file + manifest)."""
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.warehouse import WarehouseResource

    as_of = WarehouseResource(path=str(settings.warehouse_path)).query(
        "select max(as_of_date) as d from marts.dim_products"
    )["d"][0]
    zone = LandingZone(settings.landing_dir)
    feed = zone.read("products")
    established = feed.filter(
        pl.col("discontinued_date").is_null() & (pl.col("launch_date") < as_of - timedelta(days=60))
    ).sort("sku")
    changed, gone = established["sku"][0], established["sku"][1]
    new = feed.filter(pl.col("sku") == changed).with_columns(
        sku=pl.lit(NEW_SKU),
        title=pl.lit(NEW_TITLE),
        description=pl.lit("Battery-heated ski gloves with three warmth settings for cold lifts."),
        launch_date=pl.lit(as_of - timedelta(days=1)),
    )
    is_changed, is_gone = pl.col("sku") == changed, pl.col("sku") == gone
    feed = feed.with_columns(
        title=pl.when(is_changed).then(pl.lit(CHANGED_TITLE)).otherwise(pl.col("title")),
        description=pl.when(is_changed)
        .then(pl.lit("A double camping hammock with tree straps and a bug net."))
        .otherwise(pl.col("description")),
        discontinued_date=pl.when(is_gone)
        .then(pl.lit(as_of - timedelta(days=7)))
        .otherwise(pl.col("discontinued_date")),
    )
    zone.write({"products": pl.concat([feed, new])}, source=zone.manifest()["source"])
    return {"changed": changed, "gone": gone, "new": NEW_SKU}


@pytest.fixture(scope="module")
def changed_catalog(tiny_platform, tmp_path_factory):
    """A private copy of the tiny platform after a catalog change went through the ingestion
    selection (raw products -> dbt -> search assets), with a canary of share 0.5 that must
    serve for an hour before a promotion run may make it live."""
    from retail_assets.runner import materialize_platform

    original, _ = tiny_platform
    home = tmp_path_factory.mktemp("search_change") / "home"
    shutil.copytree(original.home, home)
    settings = settings_for_home(home)
    store = _store(settings)
    store.set_rollout(0.5, 3600)
    before = {"live": store.live(), "products": _live_products(settings)}
    skus = _land_catalog_change(settings)
    started = time.perf_counter()
    summary = materialize_platform(settings, selection=INGEST_SELECTION)
    assert summary.success, (summary.failures, summary.failed_checks)
    yield {
        "settings": settings,
        "summary": summary,
        "before": before,
        "skus": skus,
        "seconds": time.perf_counter() - started,
    }
    settings_for_home(original.home)


def test_changed_catalog_reaches_the_index_incrementally(changed_catalog):
    """After ingesting a catalog change, only the changed and the new product are encoded,
    the new version patches the live graph (every other vector reused, the discontinued one
    removed) instead of rebuilding, and it waits as the canary candidate beside the live one."""
    settings, before, skus = (changed_catalog[k] for k in ("settings", "before", "skus"))
    n_before = before["products"].height
    embeddings = _metadata(settings, "product_embeddings")
    assert embeddings["encoded"] == 2
    assert embeddings["reused_by_content_hash"] == n_before - 2  # all but changed and gone
    index = _metadata(settings, "product_search_index")
    assert index["build_mode"] == "incremental"
    assert index["base_version"] == before["live"]
    assert (index["reused_vectors"], index["added"], index["replaced"], index["removed"]) == (
        n_before - 2,
        1,
        1,
        1,
    )
    store = _store(settings)
    assert store.live() == before["live"]
    candidate = store.candidate()
    assert candidate == index["version"] != before["live"]
    products = pl.read_parquet(store.version_dir(candidate) / "products.parquet")
    assert skus["new"] in products["sku"].to_list()
    assert skus["gone"] not in products["sku"].to_list()
    assert products.filter(pl.col("sku") == skus["changed"])["title"][0] == CHANGED_TITLE
    assert store.decisions()[-1]["action"] == "canary"


def test_canary_share_routes_sessions_stickily(changed_catalog):
    """With a candidate at share 0.5, each session id always lands in the same arm (the one
    its stable hash picks), about half the sessions get the candidate, only the candidate
    knows the new product, and share 0 sends everyone to the live index."""
    from retail_assets.core.store import bucket

    settings, before = changed_catalog["settings"], changed_catalog["before"]
    store = _store(settings)
    with SearchServer(settings) as server:
        arms: Counter = Counter()
        for i in range(60):
            session = f"session-{i}"
            expected = "candidate" if bucket(f"search:{session}") < 0.5 else "live"
            for _ in range(2):
                body = server.search(q="heated ski gloves", session_id=session, k=3)
                assert body["arm"] == expected
                version = store.candidate() if expected == "candidate" else before["live"]
                assert body["index_version"] == version
                found = body["results"][0]["sku"] == NEW_SKU
                assert found == (expected == "candidate"), body
            arms[expected] += 1
        assert 15 <= arms["candidate"] <= 45, arms
        # Without a session id the query itself is the routing key.
        first = server.search(q="heated ski gloves")["arm"]
        assert all(server.search(q="heated ski gloves")["arm"] == first for _ in range(5))
        response = server.client.put(
            "/v1/admin/search/rollout", json={"canary_share": 0.0}, headers=ADMIN
        )
        assert response.status_code == 200 and response.json()["canary_share"] == 0.0
        assert {server.search(q="gloves", session_id=f"s{i}")["arm"] for i in range(30)} == {"live"}
        metrics = server.client.get("/metrics").text.splitlines()
        assert any(
            line.startswith("retail_search_requests_total") and 'arm="candidate"' in line
            for line in metrics
        )


def _clicks(sessions: list[tuple[str, str, list[str]]], clicking_arm: str) -> pl.DataFrame:
    """Clickstream rows as the shop would send them: sessions of `clicking_arm` click the top
    result of their search three times in five, the other arm's one time in five."""
    from datetime import UTC, datetime

    rows = []
    for i, (session, arm, skus) in enumerate(sessions):
        if i % 5 < (3 if arm == clicking_arm else 1):
            rows.append(
                {
                    "event_id": f"test-click-{i}",
                    "event_ts": datetime.now(UTC).replace(tzinfo=None),
                    "session_id": session,
                    "customer_id": None,
                    "sku": skus[0],
                    "event_type": "click",
                    "page": "search",
                    "position": 1,
                    "channel": "web",
                }
            )
    return pl.DataFrame(rows)


@pytest.mark.parametrize("clicked_more", ["candidate", "live"])
def test_the_search_canary_is_decided_by_click_through(changed_catalog, tmp_path, clicked_more):
    """Real searches through serving (each logged with its session, arm and results), then a
    clickstream landing whose sessions click one arm's results more: search_monitoring's
    sequential test promotes a candidate that is clicked more and rolls back one clicked
    less, and records the look with its test and data."""
    from retail_assets.runner import materialize_platform
    from retail_assets.sources.landing_zone import LandingZone

    home = tmp_path / "home"
    shutil.copytree(changed_catalog["settings"].home, home)
    settings = settings_for_home(home)
    try:
        store = _store(settings)
        live, candidate = store.live(), store.candidate()
        assert candidate is not None
        store.set_rollout(0.5, 0.5)
        sessions = []
        with SearchServer(settings) as server:
            for i in range(240):
                body = server.search(q="warm gloves", session_id=f"ctr-{i}", k=5)
                sessions.append((f"ctr-{i}", body["arm"], [r["sku"] for r in body["results"]]))
        assert {arm for _, arm, _ in sessions} == {"live", "candidate"}
        zone = LandingZone(settings.landing_dir)
        clicks = _clicks(sessions, clicked_more).with_columns(
            pl.col("position").cast(pl.Int16), pl.col("customer_id").cast(pl.String)
        )
        feed = zone.read("clickstream")
        zone.write(
            {"clickstream": pl.concat([feed, clicks.select(feed.columns)])}, source={"kind": "test"}
        )
        summary = materialize_platform(
            settings,
            selection='key:"raw/clickstream" or key:"staging/stg_clickstream" or '
            'key:"serving/prediction_log" or key:"search_monitoring"',
        )
        assert summary.success, (summary.failures, summary.failed_checks)
        decisions = [d for d in store.decisions() if d.get("version") == candidate]
        look = next(d for d in reversed(decisions) if d["action"] == "canary_look")
        assert "two-proportion" in look["evidence"]["test"]["test"]
        # this test's 240 and those the earlier tests of this module logged
        assert look["evidence"]["data"]["searches_with_session"] >= 240
        if clicked_more == "candidate":
            assert (store.live(), store.candidate()) == (candidate, None)
            assert decisions[-1]["action"] == "promote"
        else:
            assert (store.live(), store.candidate()) == (live, None)
            assert decisions[-1]["action"] == "canary_rolled_back"
        assert decisions[-1]["actor"] == "canary_test"
        table = _metadata(settings, "search_monitoring")["click_through"]
        assert candidate in table and live in table, table
    finally:
        settings_for_home(changed_catalog["settings"].home)


def test_promotion_swaps_the_index_without_interrupting_search(changed_catalog):
    """Once the canary has served long enough (minimum set to 0 here), the next promotion run
    makes the candidate live; the server picks it up by polling while a client keeps
    searching: no request fails, answers move from the old to the new version, and the new
    product is then found for everyone. A rollback through the admin API restores the old
    version the same way."""
    from retail_assets.runner import materialize_platform

    settings, before = changed_catalog["settings"], changed_catalog["before"]
    store = _store(settings)
    candidate = store.candidate()
    store.set_rollout(0.5, 0)
    with SearchServer(settings) as server:
        seen: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                i = 0
                while not stop.is_set():
                    response = client.get(
                        "/v1/search", params={"q": f"gloves {i % 7}", "user_id": f"u{i}"}
                    )
                    body = response.json() if response.status_code == 200 else {}
                    seen.append((response.status_code, body.get("index_version")))
                    i += 1

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            summary = materialize_platform(settings, selection="key:search_index_promotion")
            assert summary.success, summary.failures
            assert store.live() == candidate and store.candidate() is None
            server.wait_for(lambda s: s["live"]["version"] == candidate and s["candidate"] is None)
            time.sleep(0.3)
        finally:
            stop.set()
            thread.join()
        assert seen and all(status == 200 for status, _ in seen), Counter(s for s, _ in seen)
        assert seen[-1][1] == candidate
        assert {v for _, v in seen} <= {before["live"], candidate}
        body = server.search(q="heated ski gloves", session_id="anyone")
        assert (body["arm"], body["results"][0]["sku"]) == ("live", NEW_SKU)
        assert store.decisions()[-1]["action"] == "promote"

        response = server.client.post(
            "/v1/admin/search/rollback", json={"reason": "drill: roll back"}, headers=ADMIN
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"]["live"]["version"] == before["live"]
        assert server.search(q="heated ski gloves")["index_version"] == before["live"]


# -- gates --------------------------------------------------------------------------------------


def test_worse_index_is_refused_and_never_served(platform_copy):
    """A candidate built from shuffled embeddings passes the ANN check (its graph agrees with
    its own vectors) but the offline evaluation shows it is worse than live, so the gate
    refuses it with the reason recorded; it never becomes candidate or live, and serving
    keeps answering from the live version. A graph that disagrees with the embeddings fails
    the blocking recall check, so its evaluation and promotion never run."""
    from retail_assets.runner import materialize_platform

    settings = platform_copy
    store = _store(settings)
    live = store.live()
    with SearchServer(settings) as server:
        summary = materialize_platform(
            settings,
            selection=INDEX_SELECTION,
            run_config={
                "ops": {"product_search_index": {"config": {"drill": "shuffled_embeddings"}}}
            },
        )
        assert summary.success, summary.failures
        drill = _metadata(settings, "product_search_index")["version"]
        assert drill.endswith("-drill-shuffled-embeddings")
        promotion = _metadata(settings, "search_index_promotion")
        assert promotion["decision"] == "refused"
        assert "ndcg@10 no worse than the incumbent" in promotion["reason"]
        refusal = store.decisions()[-1]
        assert (refusal["action"], refusal["version"]) == ("refuse", drill)
        assert store.read_record(drill, "decision")["status"] == "refused"
        evaluation = store.read_record(drill, "evaluation")
        assert evaluation["candidate"]["ndcg@10"] < evaluation["live"]["ndcg@10"] - 0.02
        assert (store.live(), store.candidate()) == (live, None)

        summary = materialize_platform(
            settings,
            selection=INDEX_SELECTION,
            run_config={"ops": {"product_search_index": {"config": {"drill": "misassigned_keys"}}}},
        )
        failed = [c for c in summary.failed_checks if c.check == "ann_recall_at_10_vs_exact"]
        assert failed and "misassigned-keys" in failed[0].description
        assert "search_index_evaluation" not in summary.materialized
        assert "search_index_promotion" not in summary.materialized
        assert (store.live(), store.candidate()) == (live, None)

        # Even pointed at directly, serving refuses both drills and keeps the live version.
        for version in (drill, failed[0].description.split(":")[0]):
            store.point_candidate_at(version)
            status = server.wait_for(lambda s, v=version: any(v in p for p in s["problems"]))
            assert status["candidate"] is None and status["live"]["version"] == live
        for i in range(20):
            assert server.search(q="boots", session_id=f"s{i}")["index_version"] == live


def test_an_index_that_only_adds_products_to_the_live_one_goes_live_without_a_canary():
    """New products must be searchable the day they land: a version built by adding them to
    the live graph (nothing removed or replaced) goes live once it passed the gate; any other
    change still starts as a canary, and a refused one is still refused."""
    from datetime import UTC, datetime

    from retail_assets.core.gate import GateResult
    from retail_assets.core.store import Pointer, Roles, Rollout
    from retail_assets.search.evaluation import rollout_step

    roles = Roles(champion=Pointer("enc-int8-aaa", "2026-11-01T00:00:00+00:00"))
    policy = Rollout("canary", 0.1, 600)
    now = datetime.now(UTC)
    added = {"mode": "incremental", "base_version": "enc-int8-aaa", "added": 6, "removed": 0,
             "replaced": 0}  # fmt: skip
    step = rollout_step("enc-int8-bbb", GateResult(True, []), roles, policy, now, "ok", added)
    assert step.action == "live" and "only new products" in step.reason
    changed = {**added, "replaced": 1}
    step = rollout_step("enc-int8-bbb", GateResult(True, []), roles, policy, now, "ok", changed)
    assert step.action == "canary"
    other_base = {**added, "base_version": "enc-int8-old"}
    step = rollout_step("enc-int8-bbb", GateResult(True, []), roles, policy, now, "ok", other_base)
    assert step.action == "canary"
    assert (
        rollout_step("v", GateResult(False, []), roles, policy, now, "", added).action == "refuse"
    )
