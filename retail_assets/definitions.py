"""The Dagster code location: every asset, check, sensor and resource of the platform.

Resources are chosen here, per deployment, from the settings module; assets never open files
or connections on their own.
"""

from __future__ import annotations

import importlib

import dagster as dg
from dagster_dbt import DbtCliResource

from retail_assets.models.demand import demand_family
from retail_assets.models.fraud import fraud_family
from retail_assets.models.lifecycle.assets import build_lifecycle_assets
from retail_assets.models.lifecycle.operations import LifecycleResource
from retail_assets.monitoring.prediction_log import PredictionLogResource, prediction_log
from retail_assets.online_features import OnlineFeaturesResource
from retail_assets.online_features.assets import demand_online_features, fraud_online_features
from retail_assets.raw.assets import raw_feed_assets
from retail_assets.raw.checks import raw_feed_checks
from retail_assets.resources import LandingZoneResource
from retail_assets.sensors import PLATFORM_JOB_NAME, landed_feeds_sensor
from retail_assets.settings import Settings, get_settings
from retail_assets.transform.dbt_assets import dbt_project, retail_dbt_models
from retail_assets.warehouse import WarehouseIOManager, WarehouseResource

MODEL_FAMILIES = (demand_family, fraud_family)

# Domains that bring their own assets, checks and resources: each module exposes `assets`,
# `asset_checks` and `resources(settings) -> dict`.
DOMAIN_MODULES = ("retail_assets.search.assets", "retail_assets.assistant.assets")
model_assets = [asset for family in MODEL_FAMILIES for asset in build_lifecycle_assets(family)[0]]

platform_job = dg.define_asset_job(
    PLATFORM_JOB_NAME,
    selection=dg.AssetSelection.all(),
    description=(
        "Land feeds, load raw tables, build dbt marts, train, evaluate, export and gate every "
        "model, publish online features for serving and ingest serving's prediction log."
    ),
)


def lifecycle_resource(settings: Settings) -> LifecycleResource:
    return LifecycleResource(
        tracking_uri=settings.mlflow_tracking_uri,
        artifact_root=str(settings.mlflow_artifacts_dir),
        bundle_root=str(settings.bundles_dir),
        promotion_log=str(settings.promotion_log_path),
    )


def build_defs(settings: Settings) -> dg.Definitions:
    settings.ensure_dirs()
    warehouse_path = str(settings.warehouse_path)
    domains = [importlib.import_module(name) for name in DOMAIN_MODULES]
    return dg.Definitions(
        assets=[
            *raw_feed_assets,
            retail_dbt_models,
            *model_assets,
            demand_online_features,
            fraud_online_features,
            prediction_log,
            *(asset for domain in domains for asset in domain.assets),
        ],
        asset_checks=[*raw_feed_checks, *(c for domain in domains for c in domain.asset_checks)],
        jobs=[platform_job],
        sensors=[landed_feeds_sensor],
        resources={
            "warehouse": WarehouseResource(path=warehouse_path),
            "warehouse_io_manager": WarehouseIOManager(path=warehouse_path),
            "landing_zone": LandingZoneResource(
                directory=str(settings.landing_dir), scale=settings.scale, seed=settings.seed
            ),
            "dbt": DbtCliResource(project_dir=dbt_project),
            "artifact_io_manager": dg.FilesystemIOManager(base_dir=str(settings.asset_storage_dir)),
            "lifecycle": lifecycle_resource(settings),
            "online_features": OnlineFeaturesResource(root=str(settings.online_features_dir)),
            "prediction_log_files": PredictionLogResource(
                directory=str(settings.prediction_log_dir)
            ),
            **{k: v for domain in domains for k, v in domain.resources(settings).items()},
        },
        # DuckDB allows one writer per file: steps run one after another in the run process.
        executor=dg.in_process_executor,
    )


defs = build_defs(get_settings())
