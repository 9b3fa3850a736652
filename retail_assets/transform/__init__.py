"""dbt-duckdb models (staging -> intermediate -> marts) as Dagster assets."""
