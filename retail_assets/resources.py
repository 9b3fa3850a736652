"""Resources that are not the warehouse: the landing zone feeds arrive in."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from retail_assets.sources.landing_zone import LandingZone
from retail_assets.sources.synthetic_landing import land_synthetic_feeds


class LandingZoneResource(dg.ConfigurableResource):
    """Where feed files land. On an empty landing zone the synthetic generator fills it, so a
    fresh install can materialize everything from the UI without a separate step."""

    directory: str
    scale: str = "default"
    seed: int = 42

    @property
    def zone(self) -> LandingZone:
        return LandingZone(Path(self.directory))

    def ensure_landed(self, log: dg.DagsterLogManager | None = None) -> LandingZone:
        zone = self.zone
        if zone.manifest() is None:
            if log:
                log.info(
                    f"landing zone {zone.directory} is empty: generating synthetic feeds "
                    f"(scale={self.scale}, seed={self.seed})"
                )
            land_synthetic_feeds(zone, scale=self.scale, seed=self.seed)
        return zone
