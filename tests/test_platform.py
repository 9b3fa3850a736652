"""End-to-end: the whole platform materializes on tiny data through real Dagster runs, the
lineage is one graph, and corrupt feeds are stopped before anything downstream runs."""

from __future__ import annotations

import pytest

from retail_assets.sources.contracts import FEEDS

MARTS = (
    "fct_daily_sales",
    "dim_products",
    "dim_stores",
    "dim_customers",
    "demand_features",
    "customer_features",
    "item_popularity",
    "item_cooccurrence",
    "transaction_features",
)


def _warehouse(settings):
    from retail_assets.warehouse import WarehouseResource

    return WarehouseResource(path=str(settings.warehouse_path))


def test_full_materialization_builds_every_asset_and_passes_checks(tiny_platform):
    """Every asset in the code location materializes on tiny data and every check passes."""
    settings, summary = tiny_platform
    assert summary.not_materialized == []
    assert summary.failed_checks == []
    # All raw quality checks (5 per feed) and dbt tests ran.
    raw_checks = [c for c in summary.checks if c.asset.startswith("raw/")]
    assert len(raw_checks) == 5 * len(FEEDS)
    assert len(summary.checks) > len(raw_checks), "dbt tests should surface as asset checks"
    warehouse = _warehouse(settings)
    for mart in MARTS:
        rows = warehouse.query(f"select count(*) as n from marts.{mart}")["n"][0]
        assert rows > 0, f"marts.{mart} is empty"


def test_asset_graph_links_raw_staging_and_marts():
    """Lineage is one graph: raw/sales -> stg_sales -> fct_daily_sales -> demand_features."""
    import dagster as dg

    from retail_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    parents = {key: graph.get(key).parent_keys for key in graph.get_all_asset_keys()}
    raw_sales = dg.AssetKey(["raw", "sales"])
    stg_sales = dg.AssetKey(["staging", "stg_sales"])
    assert raw_sales in parents[stg_sales]
    fct_upstream = dg.AssetSelection.assets(["marts", "fct_daily_sales"]).upstream().resolve(graph)
    assert {raw_sales, stg_sales} <= fct_upstream
    upstream = dg.AssetSelection.assets(["marts", "demand_features"]).upstream().resolve(graph)
    assert {raw_sales, stg_sales, dg.AssetKey(["marts", "fct_daily_sales"])} <= upstream
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert {"raw", "staging", "marts"} <= groups


@pytest.mark.parametrize(
    "fault",
    ["nulls", "negative_quantities", "duplicated_days", "prices_in_cents", "renamed_column"],
)
def test_corrupted_sales_feed_is_blocked_before_marts(platform_copy, fault):
    """A corrupt sales feed fails a blocking raw check naming the problem; no staging model or
    mart is materialized in that run and the previous marts stay readable and unchanged; the
    landed file is quarantined with a report naming the failed checks."""
    from retail_assets.runner import materialize_platform
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    settings = platform_copy
    warehouse = _warehouse(settings)
    before = warehouse.query(
        "select count(*) as n, sum(units_sold) as u from marts.fct_daily_sales"
    )

    land_synthetic_feeds(
        LandingZone(settings.landing_dir),
        scale="tiny",
        seed=settings.seed,
        faults={"sales": [fault]},
        feeds=["sales"],
    )
    summary = materialize_platform(settings)

    assert not summary.success
    failed = [c for c in summary.failed_checks if c.asset == "raw/sales"]
    assert failed, f"no blocking check caught {fault}"
    assert all("sales" not in key or key == "raw/sales" for key in summary.materialized), (
        f"downstream of raw/sales materialized despite {fault}: {sorted(summary.materialized)}"
    )
    assert "staging/stg_sales" not in summary.materialized
    assert "marts/fct_daily_sales" not in summary.materialized
    assert "marts/demand_features" not in summary.materialized
    after = warehouse.query("select count(*) as n, sum(units_sold) as u from marts.fct_daily_sales")
    assert after.equals(before)
    # The failure says what is wrong and where.
    details = " ".join(c.description for c in failed)
    expected_words = {
        "nulls": "null",
        "negative_quantities": "negative quantity",
        "duplicated_days": "control total",
        "prices_in_cents": "list price",
        "renamed_column": "units_sold",
    }[fault]
    assert expected_words in details
    assert "feed row" in details or fault in ("renamed_column", "duplicated_days")
    zone = LandingZone(settings.landing_dir)
    (report,) = zone.quarantined("sales")
    assert report["faults_injected"] == [fault]
    assert {f["check"] for f in report["failed_checks"]} == {c.check for c in failed}
    landed = zone.feed_entry("sales")
    copy = next(zone.quarantine_dir.glob(f"sales/*/{landed['file']}"))
    assert copy.read_bytes() == zone.feed_path("sales").read_bytes()


def test_unreadable_feed_file_leaves_previous_raw_table_intact(platform_copy):
    """A load that fails (truncated Parquet file) errors naming the file and keeps the previous
    raw table readable with its previous rows."""
    from retail_assets.runner import materialize_platform
    from retail_assets.sources.landing_zone import LandingZone

    settings = platform_copy
    warehouse = _warehouse(settings)
    rows_before = warehouse.query("select count(*) as n from raw.sales")["n"][0]
    path = LandingZone(settings.landing_dir).feed_path("sales")
    path.write_bytes(path.read_bytes()[:1000])

    summary = materialize_platform(settings, selection="key:raw/sales")

    assert not summary.success
    assert any("sales.parquet" in failure for failure in summary.failures)
    assert warehouse.query("select count(*) as n from raw.sales")["n"][0] == rows_before


def test_data_from_the_future_is_judged_by_the_platform_clock(tiny_platform, monkeypatch):
    """The raw checks reject rows after `RETAIL_NOW` when it is set (a simulated night, which
    may lie after today's real date), else after the wall clock: the same payments pass
    today and fail against a clock set a day before their last timestamp."""
    from datetime import datetime, timedelta

    from retail_assets.raw.checks import evaluate_feed
    from retail_assets.warehouse import WarehouseResource

    settings, _ = tiny_platform
    warehouse = WarehouseResource(path=str(settings.warehouse_path))

    def plausible():
        results = evaluate_feed(warehouse, FEEDS["payments"], None)
        return next(r for r in results if r.check_name == "values_are_plausible")

    monkeypatch.delenv("RETAIL_NOW", raising=False)
    assert plausible().passed
    with warehouse.connect(read_only=True) as con:
        last: datetime = con.sql("select max(event_ts) from raw.payments").fetchall()[0][0]
    monkeypatch.setenv("RETAIL_NOW", (last - timedelta(days=1)).isoformat())
    result = plausible()
    assert not result.passed
    assert "timestamp in the future in 'event_ts'" in result.description
    monkeypatch.setenv("RETAIL_NOW", "yesterday")
    with pytest.raises(ValueError, match="RETAIL_NOW must be an ISO timestamp"):
        plausible()
