"""Assets that publish online feature tables for serving (group `serving`).

Each table is computed by the same code the training set uses, from the same marts, so what
serving joins into a request is what the model was trained on.
"""

from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from retail_assets.models.demand import demand_family
from retail_assets.models.demand.online import forecast_feature_table
from retail_assets.models.demand.training_set import fallback_shares
from retail_assets.models.fraud.online import FraudFeatureState
from retail_assets.models.pricing.online import price_state
from retail_assets.models.recommend import candidates as recommend_candidates
from retail_assets.models.recommend.features import source_tables
from retail_assets.models.recommend.rules import stock_on
from retail_assets.online_features import (
    DEMAND_FEATURE_SET,
    FRAUD_FEATURE_SET,
    PRICING_FEATURE_SET,
    RECOMMEND_FEATURE_SET,
)
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


@dg.asset(
    group_name="serving",
    kinds={"polars", "parquet"},
    ins={
        "clickstream": dg.AssetIn(key=["raw", "clickstream"]),
        "dim_products": dg.AssetIn(key=["marts", "dim_products"]),
        "dim_customers": dg.AssetIn(key=["marts", "dim_customers"]),
        "inventory": dg.AssetIn(key=["raw", "inventory"]),
        "product_search_index": dg.AssetIn(),
    },
)
def recommend_online_features(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    clickstream: pl.DataFrame,
    dim_products: pl.DataFrame,
    dim_customers: pl.DataFrame,
    inventory: pl.DataFrame,
    product_search_index: dict,
) -> dg.MaterializeResult:
    """What a recommendation request is answered from, as of the latest engagement: each
    customer's decayed history, popularity per segment x region, co-occurrence and content
    neighbours per item (the newest search index that passed its recall check, so a SKU landed
    with the catalog is a candidate as soon as this table is published, without retraining
    the ranker), item and user aggregates, and stock at the latest inventory snapshot. The
    same `source_tables` the ranker's training set is built from; serving runs the same
    per-query candidate and feature code (`models/recommend/online.py`)."""
    from retail_assets.search.index import LoadedIndex

    events = recommend_candidates.engagements(clickstream)
    if events.height == 0:
        raise ValueError("raw.clickstream has no clicks, adds to cart or purchases")
    # Just after the latest engagement: every event so far is history.
    at = events["ts"].max() + timedelta(microseconds=1)
    content = recommend_candidates.content_neighbours(
        LoadedIndex(Path(product_search_index["folder"]))
    )
    # Every item of the catalog is "launched" for serving: a SKU landed today is recommendable.
    tables = source_tables(events, dim_customers, dim_products, at, content, launched_only=False)
    stock = stock_on(inventory, at.date())
    if stock is not None:
        tables["stock"] = stock
    version = publish_feature_set(
        artifacts.artifacts.features(RECOMMEND_FEATURE_SET),
        tables,
        {
            "as_of": at,
            "stock_as_of": str(inventory["snapshot_date"].max()) if stock is not None else None,
        },
    )
    context.log.info(f"published {RECOMMEND_FEATURE_SET} v{version}")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "as_of": str(at),
            "catalog": tables["items"].height,
            "customers_with_history": tables["history"]["customer_id"].n_unique(),
            "content_pairs": tables["content"].height,
            "stock": "latest inventory snapshot" if stock is not None else "no inventory feed",
            **{f"rows_{name}": frame.height for name, frame in tables.items()},
        }
    )


@dg.asset(
    group_name="serving",
    kinds={"polars", "parquet"},
    ins={
        "fct_daily_sales": dg.AssetIn(key=["marts", "fct_daily_sales"]),
        "dim_products": dg.AssetIn(key=["marts", "dim_products"]),
    },
)
def pricing_online_features(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    fct_daily_sales: pl.DataFrame,
    dim_products: pl.DataFrame,
) -> dg.MaterializeResult:
    """What a price request is answered from, as of the latest sales day: per store x SKU the
    regular shelf price, the price a week before (the weekly change limit), cost, list price,
    the latest competitor price and the shrunk sales baseline, computed by the pricing
    training set's own functions (`models/pricing/online.py`)."""
    table = price_state(fct_daily_sales, dim_products)
    as_of = table["as_of"].max()
    version = publish_feature_set(
        artifacts.artifacts.features(PRICING_FEATURE_SET), {"price_state": table}, {"as_of": as_of}
    )
    context.log.info(f"published {PRICING_FEATURE_SET} v{version}: {table.height} store x SKUs")
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "as_of": str(as_of),
            "dagster/row_count": table.height,
            "with_competitor_price": table["competitor_min_price"].is_not_null().sum(),
            "without_cost": table.filter(pl.col("unit_cost").fill_null(0) <= 0).height,
        }
    )


defs = dg.Definitions(
    assets=[
        demand_online_features,
        fraud_online_features,
        recommend_online_features,
        pricing_online_features,
    ]
)
