"""Sensors that turn events outside Dagster into runs."""

import dagster as dg

from retail_assets.resources import LandingZoneResource

PLATFORM_JOB_NAME = "retail_platform"


@dg.sensor(
    job_name=PLATFORM_JOB_NAME,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts a platform run whenever a new manifest lands in the landing zone.",
)
def landed_feeds_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZoneResource):
    manifest = landing_zone.zone.manifest()
    if manifest is None:
        return dg.SkipReason(f"landing zone {landing_zone.directory} has no manifest yet")
    landed_at = manifest["landed_at"]
    if context.cursor == landed_at:
        return dg.SkipReason(f"feeds landed at {landed_at} were already processed")
    context.update_cursor(landed_at)
    return dg.RunRequest(run_key=f"landed-{landed_at}", tags={"retail/landed_at": landed_at})
