"""Assets that publish online feature tables for serving (group `serving`).

Each table is computed by the same code the training set uses, from the same marts, so what
serving joins into a request is what the model was trained on.
"""

import dagster as dg
import polars as pl

from retail_assets.models.demand import demand_family
from retail_assets.models.demand.online import forecast_feature_table
from retail_assets.models.demand.training_set import fallback_shares
from retail_assets.models.fraud.online import FraudFeatureState
from retail_assets.online_features import DEMAND_FEATURE_SET, FRAUD_FEATURE_SET
from retail_assets.online_features.store import publish_feature_set
from retail_assets.resources import ArtifactsResource


@dg.asset(
    group_name="serving",
    kinds={"polars", "parquet"},
    ins={
        "demand_features": dg.AssetIn(key=["marts", "demand_features"]),
        "dim_dates": dg.AssetIn(key=["marts", "dim_dates"]),
        "dim_store_dates": dg.AssetIn(key=["marts", "dim_store_dates"]),
        "demand_plan": dg.AssetIn(key=["marts", "demand_plan"]),
        "dim_products": dg.AssetIn(key=["marts", "dim_products"]),
    },
)
def demand_online_features(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    demand_features: pl.DataFrame,
    dim_dates: pl.DataFrame,
    dim_store_dates: pl.DataFrame,
    demand_plan: pl.DataFrame,
    dim_products: pl.DataFrame,
) -> dg.MaterializeResult:
    """Model inputs for every store x SKU series for the forecast horizon (28 days, or 8
    weeks on the weekly grain) as of the last sales period, plus cold-start rows keyed `*`
    (unknown SKU of a known category, unknown store, ...) and the catalog's SKU -> category
    map, so a SKU launched after the last sales day gets its category's cold-start features.
    Serving looks a forecast request up here instead of recomputing history features.
    Target periods beyond the data use the chain and store calendars and the landed promotion
    plan (regular price where nothing is planned); a caller may pass their own plan."""
    grain = demand_family.grain
    table = forecast_feature_table(
        demand_features, dim_dates, grain=grain, plan=demand_plan, store_days=dim_store_dates
    )
    origin = table["origin_date"].max()
    version = publish_feature_set(
        artifacts.artifacts.features(DEMAND_FEATURE_SET),
        {
            "forecast_features": table,
            "sku_categories": dim_products.select("sku", pl.col("category").cast(pl.String)),
        },
        {"origin_date": origin},
    )
    fallback_counts = table.group_by("fallback").len().sort("fallback", nulls_last=False)
    real = table.filter(pl.col("fallback").is_null())
    history = fallback_shares(real, grain)
    plan_sources = dict(real.group_by("plan_source").len().iter_rows())
    context.log.info(f"published {DEMAND_FEATURE_SET} v{version}: {table.height} rows")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "origin_date": str(origin),
            "series": table.filter(pl.col("fallback").is_null())
            .select("store_id", "sku")
            .unique()
            .height,
            "dagster/row_count": table.height,
            "grain": grain.name,
            "history_fallbacks": dg.MetadataValue.json(history),
            "plan_sources": dg.MetadataValue.json(plan_sources),
            "rows_by_fallback": dg.MetadataValue.md(
                "| fallback | rows |\n|---|---|\n"
                + "\n".join(
                    f"| {fallback or 'none (real series)'} | {n} |"
                    for fallback, n in fallback_counts.iter_rows()
                )
            ),
        }
    )


@dg.asset(
    group_name="serving",
    kinds={"polars", "parquet"},
    ins={
        "transaction_features": dg.AssetIn(key=["marts", "transaction_features"]),
        "dim_customers": dg.AssetIn(key=["marts", "dim_customers"]),
    },
)
def fraud_online_features(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    transaction_features: pl.DataFrame,
    dim_customers: pl.DataFrame,
) -> dg.MaterializeResult:
    """The state fraud scoring starts from: the last 7 days of payments per card, customer,
    device and shipping address, each customer's payment history and devices. Serving folds
    in every payment it scores, so velocity features stay live between publications."""
    state = FraudFeatureState.from_history(transaction_features, dim_customers)
    tables = state.to_frames()
    version = publish_feature_set(
        artifacts.artifacts.features(FRAUD_FEATURE_SET), tables, {"as_of": state.as_of}
    )
    context.log.info(f"published {FRAUD_FEATURE_SET} v{version}")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "as_of": str(state.as_of),
            **{f"rows_{name}": frame.height for name, frame in tables.items()},
        }
    )


defs = dg.Definitions(assets=[demand_online_features, fraud_online_features])
