"""Sensors turn newly landed feeds into runs, and only feeds nobody has loaded yet."""

import dagster as dg

from retail_assets.resources import LandingZoneResource
from retail_assets.sensors import landed_feeds_sensor


def test_landed_feeds_sensor_requests_a_run_only_for_unloaded_feeds(tiny_platform):
    """After the tiny platform run loaded every landed feed the sensor skips; the same bytes
    landed again are nothing new; once a changed feed lands it requests one run of that
    feed's raw table only, keyed by the landing so it is not repeated."""
    from retail_assets.sources.landing_zone import LandingZone

    settings, _ = tiny_platform
    instance = dg.DagsterInstance.get()
    resource = LandingZoneResource(directory=str(settings.landing_dir), scale="tiny")

    context = dg.build_sensor_context(instance=instance, resources={"landing_zone": resource})
    assert isinstance(landed_feeds_sensor(context), dg.SkipReason)

    zone = LandingZone(settings.landing_dir)
    manifest_before = zone.manifest_path.read_text()
    try:
        zone.write({"stores": zone.read("stores")}, source={"kind": "test"})
        assert isinstance(landed_feeds_sensor(context), dg.SkipReason), "same bytes: not new"
        zone.write({"stores": _renamed_store(zone.read("stores"))}, source={"kind": "test"})
        request = landed_feeds_sensor(context)
        assert isinstance(request, dg.RunRequest)
        assert request.tags["retail/new_feeds"] == "stores"
        assert request.asset_selection == [dg.AssetKey(["raw", "stores"])]
        assert request.run_key == f"landed-{zone.manifest()['landed_at']}"
    finally:
        zone.manifest_path.write_text(manifest_before)


def _renamed_store(stores):
    import polars as pl

    first = pl.col("store_id") == stores["store_id"][0]
    return stores.with_columns(
        pl.when(first).then(pl.col("store_name") + " (renamed)").otherwise("store_name")
        .alias("store_name")
    )  # fmt: skip


def test_landed_feeds_sensor_skips_an_empty_landing_zone(tmp_path):
    """No manifest yet: nothing to do, and the reason says where it looked."""
    resource = LandingZoneResource(directory=str(tmp_path), scale="tiny")
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"landing_zone": resource}
    )
    result = landed_feeds_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert str(tmp_path) in result.skip_message


# -- declarative automation ---------------------------------------------------------------------


_CHAIN = {
    f"{model}_{step}"
    for model in ("demand", "fraud")
    for step in ("model", "evaluation", "onnx", "promotion")
}


def _requested_after(settings, feeds: list[str], faults=None) -> tuple[set[str], object]:
    """Land `feeds` again, load their raw tables (what landed_feeds_sensor requests), then
    evaluate every automation condition as the daemon's sensor would: what would run."""
    from retail_assets.definitions import build_defs
    from retail_assets.runner import materialize_platform
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    defs = build_defs(settings)
    instance = dg.DagsterInstance.get()
    baseline = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    zone = LandingZone(settings.landing_dir)
    if faults:
        land_synthetic_feeds(zone, scale="tiny", seed=settings.seed, faults=faults, feeds=feeds)
    else:  # a changed store (the same bytes again would be nothing new)
        assert feeds == ["stores"]
        zone.write({"stores": _renamed_store(zone.read("stores"))}, source={"kind": "test"})
    summary = materialize_platform(
        settings, selection=" or ".join(f'key:"raw/{feed}"' for feed in feeds)
    )
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=baseline.cursor)
    requested = {
        key.to_user_string()
        for key in defs.resolve_asset_graph().get_all_asset_keys()
        if result.get_num_requested(key)
    }
    return requested, summary


def test_a_stores_only_feed_runs_only_what_depends_on_stores(platform_copy):
    """A stores-only landing: automation requests assets downstream of raw/stores, never a
    model's training chain (that is for monitoring and the weekly schedule) and never the
    assistant's LLM evals."""
    from retail_assets.definitions import build_defs

    settings = platform_copy
    requested, summary = _requested_after(settings, ["stores"])
    assert summary.success, summary.failures
    graph = build_defs(settings).resolve_asset_graph()
    downstream = {
        k.to_user_string()
        for k in dg.AssetSelection.assets(dg.AssetKey(["raw", "stores"]))
        .downstream()
        .resolve(graph)
    }
    assert requested, "something depends on stores"
    assert requested <= downstream, sorted(requested - downstream)
    assert not requested & _CHAIN
    assert "assistant_eval_report" not in requested
    assert "staging/stg_stores" in requested


def test_a_corrupt_feed_triggers_nothing_downstream(platform_copy):
    """A sales feed with negative quantities fails raw/sales' blocking check: automation
    requests nothing that depends on sales."""
    settings = platform_copy
    requested, summary = _requested_after(
        settings, ["sales"], faults={"sales": ["negative_quantities"]}
    )
    assert any(c.asset == "raw/sales" for c in summary.failed_checks)
    assert not {k for k in requested if "sales" in k or k.startswith(("marts/", "demand_"))}, (
        sorted(requested)
    )


def test_the_llm_evals_rerun_for_a_new_index_version_not_for_a_rebuild_of_the_same(
    platform_copy,
):
    """Rebuilding the RAG index from unchanged content (a new day of sales) leaves its data
    version as it was: the eval suite is not requested. A new index version is."""
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    from retail_assets.definitions import build_defs
    from retail_assets.runner import materialize_platform

    settings = platform_copy
    defs = build_defs(settings)
    instance = dg.DagsterInstance.get()
    eval_report = dg.AssetKey("assistant_eval_report")
    cursor = dg.evaluate_automation_conditions(defs=defs, instance=instance).cursor

    rebuilt = materialize_platform(settings, selection='key:"assistant_rag_index"')
    assert rebuilt.success, rebuilt.failures
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    assert result.get_num_requested(eval_report) == 0

    instance.report_runless_asset_event(
        dg.AssetMaterialization("assistant_rag_index", tags={DATA_VERSION_TAG: "new-content"})
    )
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor)
    assert result.get_num_requested(eval_report) == 1
