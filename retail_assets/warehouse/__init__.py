"""The embedded DuckDB warehouse: a resource for SQL and an IO manager for polars frames."""

from retail_assets.warehouse.duckdb_warehouse import (
    WarehouseIOManager,
    WarehouseResource,
    table_for_asset_key,
)

__all__ = ["WarehouseIOManager", "WarehouseResource", "table_for_asset_key"]
