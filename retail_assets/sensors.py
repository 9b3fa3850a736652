"""Sensors that turn events outside Dagster into runs."""

import dagster as dg

from retail_assets.resources import LandingZoneResource

PLATFORM_JOB_NAME = "retail_platform"


def _loaded_landing_time(instance: dg.DagsterInstance, feed: str) -> str | None:
    """The `landed_at` of the feed version the raw asset last loaded, if any."""
    event = instance.get_latest_materialization_event(dg.AssetKey(["raw", feed]))
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("landed_at")
    return str(value.value) if value is not None else None


@dg.sensor(
    target=dg.AssetSelection.groups("raw"),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Loads the raw tables of feeds that landed and have not been loaded yet (compares the "
        "landing manifest with each raw asset's last materialization); what depends on them "
        "follows by declarative automation."
    ),
)
def landed_feeds_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource):
    manifest = landing_zone.zone.manifest()
    if manifest is None:
        return dg.SkipReason(f"landing zone {landing_zone.directory} has no manifest yet")
    unloaded = sorted(
        feed
        for feed, entry in manifest["feeds"].items()
        if _loaded_landing_time(context.instance, feed) != entry["landed_at"]
    )
    if not unloaded:
        return dg.SkipReason("every landed feed has already been loaded")
    landed_at = manifest["landed_at"]
    return dg.RunRequest(
        run_key=f"landed-{landed_at}",
        asset_selection=[dg.AssetKey(["raw", feed]) for feed in unloaded],
        tags={"retail/landed_at": landed_at, "retail/new_feeds": ",".join(unloaded)},
    )
