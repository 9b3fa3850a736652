"""The models domain: every model family's lifecycle chain (training set -> model ->
evaluation -> ONNX bundle -> promotion), built by the shared lifecycle, and the sensor that
keeps MLflow's aliases on the serving pointers."""

import dagster as dg

from retail_assets.models.demand import demand_family
from retail_assets.models.fraud import fraud_family
from retail_assets.models.lifecycle.assets import build_lifecycle_assets
from retail_assets.models.lifecycle.resource import LifecycleResource
from retail_assets.models.pricing.family import pricing_family
from retail_assets.models.recommend.family import recommend_family

MODEL_FAMILIES = (demand_family, fraud_family, recommend_family, pricing_family)


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "The serving pointers (artifact store roles) are the truth; MLflow's `champion` and "
        "`challenger` aliases mirror them. A change made where MLflow is not loaded (the "
        "serving admin API) is mirrored here within a minute."
    ),
)
def registry_alias_sync(context: dg.SensorEvaluationContext, lifecycle: LifecycleResource):
    services = lifecycle.lifecycle()
    moved = [
        change for name in services.artifacts.models() for change in services.sync_aliases(name)
    ]
    for change in moved:
        context.log.info(change)
    return dg.SkipReason("; ".join(moved) if moved else "MLflow aliases match the serving pointers")


defs = dg.Definitions(
    assets=[asset for family in MODEL_FAMILIES for asset in build_lifecycle_assets(family)[0]],
    sensors=[registry_alias_sync],
)
