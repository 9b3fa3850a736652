"""The Dagster code location: every domain's Definitions, merged once, with the resources of
this deployment chosen here (from the settings module) and nowhere else.

Each domain (raw feeds, dbt transforms, models, online features, monitoring, search, the
assistant and its eval gate) exports its own `defs`; this module only merges them and binds resources. Importing
it creates no directory, changes no environment variable and runs no dbt parse: entry points
prepare the dbt manifest (`retail_assets/transform/project.py`) and the state folders.
"""

from __future__ import annotations

import warnings

import dagster as dg
from dagster_dbt import DbtCliResource

# Domain modules, not their `defs` objects: Dagster loads the one Definitions at module scope.
from evals import assets as eval_domain
from retail_assets.assistant import assets as assistant_domain
from retail_assets.assistant.assets import AssistantResource
from retail_assets.automation import SCHEDULES, apply_policies, automation_sensor
from retail_assets.models import definitions as model_domain
from retail_assets.models.lifecycle.resource import LifecycleResource
from retail_assets.monitoring import assets as monitoring_domain
from retail_assets.monitoring import prediction_log as prediction_log_domain
from retail_assets.monitoring.prediction_log import PredictionLogResource
from retail_assets.online_features import assets as online_feature_domain
from retail_assets.raw import definitions as raw_domain
from retail_assets.resources import ArtifactsResource, LandingZoneResource
from retail_assets.search import assets as search_domain
from retail_assets.search.assets import SearchStoreResource
from retail_assets.sensors import PLATFORM_JOB_NAME
from retail_assets.settings import Settings, get_settings
from retail_assets.transform import dbt_assets as transform_domain
from retail_assets.transform.project import dbt_executable, dbt_project
from retail_assets.warehouse import WarehouseIOManager, WarehouseResource

DOMAINS = (
    raw_domain,
    transform_domain,
    model_domain,
    online_feature_domain,
    prediction_log_domain,
    monitoring_domain,
    search_domain,
    assistant_domain,
    eval_domain,
)

platform_job = dg.define_asset_job(
    PLATFORM_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description=(
        "Land feeds, load raw tables, build dbt marts, train, evaluate, export and gate every "
        "model, publish online features for serving and ingest serving's prediction log."
    ),
)


def resources_for(settings: Settings) -> dict:
    """Every resource of one deployment (one RETAIL_HOME)."""
    warehouse_path = str(settings.warehouse_path)
    artifacts = ArtifactsResource.from_settings(settings)
    return {
        "warehouse": WarehouseResource(path=warehouse_path),
        "warehouse_io_manager": WarehouseIOManager(path=warehouse_path),
        "landing_zone": LandingZoneResource(
            directory=str(settings.landing_dir), scale=settings.scale, seed=settings.seed
        ),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
        "artifact_io_manager": dg.FilesystemIOManager(base_dir=str(settings.asset_storage_dir)),
        "artifacts": artifacts,
        "lifecycle": LifecycleResource(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=str(settings.mlflow_artifacts_dir),
            artifacts=artifacts,
        ),
        "prediction_log_files": PredictionLogResource(directory=str(settings.prediction_log_dir)),
        "search_store": SearchStoreResource(artifacts=artifacts),
        "assistant": AssistantResource.from_settings(settings),
    }


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    """Steps one after another in the run's process (the default: no process start-up per
    step), or `RETAIL_PARALLEL_STEPS` of them at once in their own processes."""
    if settings.parallel_steps <= 1:
        return dg.in_process_executor
    # Each step's process forks from a server that has imported the platform once: spawned
    # afresh, every step paid about 3 s of imports (73 steps of a full run at tiny: 3.2x the
    # one-process run's wall time, `benchmarks/bench_pipeline_concurrency.py`).
    return dg.multiprocess_executor.configured(
        {
            "max_concurrent": settings.parallel_steps,
            "start_method": {"forkserver": {"preload_modules": [__name__]}},
        }
    )


def build_defs(settings: Settings) -> dg.Definitions:
    merged = dg.Definitions.merge(
        *(domain.defs for domain in DOMAINS),
        dg.Definitions(
            jobs=[platform_job, *(schedule.job for schedule in SCHEDULES)],
            schedules=SCHEDULES,
            sensors=[automation_sensor],
            resources=resources_for(settings),
            executor=executor_for(settings),
        ),
    )
    # Freshness and automation for every domain's assets, decided in one place.
    with warnings.catch_warnings():  # Dagster marks map_asset_specs as a preview API
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return merged.map_asset_specs(func=apply_policies)


defs = build_defs(get_settings())
