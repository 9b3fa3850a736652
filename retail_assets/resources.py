"""Resources that are not the warehouse: the landing zone feeds arrive in, and the artifact
stores (model bundles, online feature tables, indices, prompts) with their decision log."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from retail_assets.artifacts import Artifacts
from retail_assets.settings import Settings
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


class ArtifactsResource(dg.ConfigurableResource):
    """Where every versioned artifact lives and the decision log they share (see
    `retail_assets/artifacts.py`; serving builds the same stores from the same settings)."""

    bundles_dir: str
    online_features_dir: str
    search_dir: str
    assistant_dir: str
    decision_log: str
    monitoring_dir: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> ArtifactsResource:
        return cls(
            bundles_dir=str(settings.bundles_dir),
            online_features_dir=str(settings.online_features_dir),
            search_dir=str(settings.search_dir),
            assistant_dir=str(settings.assistant_dir),
            decision_log=str(settings.decision_log_path),
            monitoring_dir=str(settings.monitoring_dir),
        )

    @property
    def artifacts(self) -> Artifacts:
        return Artifacts(
            bundles_dir=Path(self.bundles_dir),
            online_features_dir=Path(self.online_features_dir),
            search_dir=Path(self.search_dir),
            assistant_dir=Path(self.assistant_dir),
            decision_log_path=Path(self.decision_log),
            monitoring_dir=Path(self.monitoring_dir) if self.monitoring_dir else None,
        )
