"""Ingest serving's prediction log (date-partitioned Parquet) into the warehouse.

Serving appends every prediction off its request path to
`<prediction_log_dir>/date=YYYY-MM-DD/part-*.parquet` (complete files only: parts are written
under a temporary name and renamed). This asset reloads them all into
`serving.prediction_log`, where monitoring joins labels to predictions.
"""

from pathlib import Path

import dagster as dg
import polars as pl

from retail_assets.monitoring.schema import PREDICTION_LOG_SCHEMA


class PredictionLogResource(dg.ConfigurableResource):
    """Where serving writes its prediction log."""

    directory: str

    def parts(self) -> list[Path]:
        return sorted(Path(self.directory).glob("date=*/part-*.parquet"))

    def read(self) -> pl.DataFrame:
        parts = self.parts()
        if not parts:
            return pl.DataFrame(schema=PREDICTION_LOG_SCHEMA)
        frame = pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed")
        return frame.select(
            [
                pl.col(c).cast(t) if c in frame.columns else pl.lit(None, t).alias(c)
                for c, t in PREDICTION_LOG_SCHEMA.items()
            ]
        ).sort("ts")


@dg.asset(
    key=["serving", "prediction_log"],
    group_name="serving",
    io_manager_key="warehouse_io_manager",
    kinds={"duckdb", "parquet"},
)
def prediction_log(
    context: dg.AssetExecutionContext, prediction_log_files: PredictionLogResource
) -> pl.DataFrame:
    """Every prediction the serving app made: model, version, rollout arm (champion,
    challenger, shadow), the request's features after the online join, the output, latency
    and any cold-start fallback. Monitoring joins delayed labels to this table."""
    frame = prediction_log_files.read()
    summary = (
        frame.group_by("model", "version", "arm").len().sort("model", "version", "arm")
        if frame.height
        else None
    )
    context.add_output_metadata(
        {
            "files": len(prediction_log_files.parts()),
            "predictions_by_version": dg.MetadataValue.md(
                "| model | version | arm | predictions |\n|---|---|---|---|\n"
                + "\n".join(f"| {m} | {v} | {a} | {n} |" for m, v, a, n in summary.iter_rows())
                if summary is not None
                else "no predictions logged yet"
            ),
        }
    )
    return frame


defs = dg.Definitions(assets=[prediction_log])
