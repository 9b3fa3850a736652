"""The raw domain: one asset per landed feed, with its blocking checks, and the sensor that
starts a run when new feeds land."""

import dagster as dg

from retail_assets.raw.assets import raw_feed_assets
from retail_assets.raw.checks import raw_feed_checks
from retail_assets.sensors import landed_feeds_sensor

defs = dg.Definitions(
    assets=raw_feed_assets, asset_checks=raw_feed_checks, sensors=[landed_feeds_sensor]
)
