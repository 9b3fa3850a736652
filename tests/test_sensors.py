"""Sensors turn landed feeds into runs exactly once per landing."""

from __future__ import annotations

import dagster as dg

from retail_assets.resources import LandingZoneResource
from retail_assets.sensors import landed_feeds_sensor
from retail_assets.sources.landing_zone import LandingZone


def test_landed_feeds_sensor_requests_one_run_per_manifest(tmp_path):
    """No manifest -> skip; a new manifest -> one run request; the same manifest -> skip."""
    import polars as pl

    resource = LandingZoneResource(directory=str(tmp_path), scale="tiny", seed=1)
    context = dg.build_sensor_context(resources={"landing_zone": resource})
    assert isinstance(landed_feeds_sensor(context), dg.SkipReason)

    LandingZone(tmp_path).write(
        {"stores": pl.DataFrame({"store_id": ["S001"]})}, source={"kind": "test"}
    )
    request = landed_feeds_sensor(context)
    assert isinstance(request, dg.RunRequest)
    context = dg.build_sensor_context(resources={"landing_zone": resource}, cursor=context.cursor)
    assert isinstance(landed_feeds_sensor(context), dg.SkipReason)
