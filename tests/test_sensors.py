"""Sensors turn newly landed feeds into runs, and only feeds nobody has loaded yet."""

import dagster as dg

from retail_assets.resources import LandingZoneResource
from retail_assets.sensors import landed_feeds_sensor


def test_landed_feeds_sensor_requests_a_run_only_for_unloaded_feeds(tiny_platform):
    """After the tiny platform run loaded every landed feed the sensor skips; once a feed lands
    again (new manifest) it requests one run, keyed by the landing so it is not repeated."""
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
        request = landed_feeds_sensor(context)
        assert isinstance(request, dg.RunRequest)
        assert request.tags["retail/new_feeds"] == "stores"
        assert request.run_key == f"landed-{zone.manifest()['landed_at']}"
    finally:
        zone.manifest_path.write_text(manifest_before)


def test_landed_feeds_sensor_skips_an_empty_landing_zone(tmp_path):
    """No manifest yet: nothing to do, and the reason says where it looked."""
    resource = LandingZoneResource(directory=str(tmp_path), scale="tiny")
    context = dg.build_sensor_context(
        instance=dg.DagsterInstance.ephemeral(), resources={"landing_zone": resource}
    )
    result = landed_feeds_sensor(context)
    assert isinstance(result, dg.SkipReason)
    assert str(tmp_path) in result.skip_message
