"""The Dagster resource of the model lifecycle: the MLflow registry plus the artifact stores."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from retail_assets.models.lifecycle.operations import Lifecycle
from retail_assets.models.lifecycle.registry import ModelRegistry
from retail_assets.resources import ArtifactsResource


class LifecycleResource(dg.ConfigurableResource):
    """Where models are tracked (MLflow) and bundled for serving (the artifact stores, whose
    decision log records every promotion)."""

    tracking_uri: str
    artifact_root: str
    artifacts: ArtifactsResource

    def lifecycle(self) -> Lifecycle:
        return Lifecycle(
            registry=ModelRegistry(self.tracking_uri, Path(self.artifact_root)),
            artifacts=self.artifacts.artifacts,
        )
