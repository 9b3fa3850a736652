"""The prediction log's schema: the contract between serving (the writer) and the pipeline
(the reader). Runtime only (polars), so serving imports it without Dagster."""

import polars as pl

PREDICTION_LOG_SCHEMA = {
    "ts": pl.Datetime("us", "UTC"),
    "request_id": pl.String,
    "model": pl.String,
    "version": pl.String,
    "arm": pl.String,
    "entity_id": pl.String,
    "features": pl.String,
    "output": pl.String,
    "latency_ms": pl.Float64,
    "fallback": pl.String,
}
