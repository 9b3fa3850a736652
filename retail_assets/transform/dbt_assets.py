"""The dbt project as Dagster assets.

dbt sources declare ``meta.dagster.asset_key`` pointing at the raw assets, so raw feeds,
staging models and feature marts form one lineage graph. ``dbt build`` runs models and their
tests together: an error-severity test failure makes dbt skip everything downstream of it and
fails the step, so no Dagster asset downstream of the marts runs on bad data either.
"""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from retail_assets.transform.project import WAREHOUSE_ENV_VAR, dbt_project
from retail_assets.warehouse import WarehouseResource, table_for_asset_key
from retail_assets.warehouse.lock import warehouse_lock

# Marts feed models and serving; if the nightly build has not refreshed them in two days the
# models downstream are training on stale features.
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=48), warn_window=timedelta(hours=30)
)


@contextmanager
def warehouse_env(warehouse_path: str) -> Iterator[None]:
    """dbt's profile reads the warehouse path from the environment of the process it runs in."""
    previous = os.environ.get(WAREHOUSE_ENV_VAR)
    os.environ[WAREHOUSE_ENV_VAR] = warehouse_path
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(WAREHOUSE_ENV_VAR, None)
        else:
            os.environ[WAREHOUSE_ENV_VAR] = previous


class RetailDbtTranslator(DagsterDbtTranslator):
    """Groups dbt models by layer (their folder) and gives marts a freshness policy."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn", [])
        layer = fqn[1] if len(fqn) > 2 else None
        return layer if layer in {"staging", "intermediate", "marts"} else "transform"

    def get_asset_spec(self, manifest, unique_id, project):  # type: ignore[override]
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.group_name == "marts":
            spec = spec.replace_attributes(freshness_policy=MART_FRESHNESS)
        return spec


@dbt_assets(
    # Prepared by the entry points (see transform/project.py), never parsed on import.
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=RetailDbtTranslator(),
    # dbt writes the tables; downstream Python assets read them through the warehouse.
    io_manager_key="warehouse_io_manager",
)
def retail_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource
):
    """Runs `dbt build` (models and their tests) for the selected models."""
    target = dbt_target_path(warehouse.path)
    # A stale run_results.json must never stand for this build's (dbt rewrites it at the end).
    (target / "run_results.json").unlink(missing_ok=True)
    # dbt opens the file itself: the whole build holds the warehouse's write lock
    # (`warehouse/lock.py`), so that no parallel step opens it meanwhile.
    with warehouse_lock(warehouse.path, exclusive=True):
        with warehouse_env(warehouse.path):
            mode = indirect_selection(warehouse)
            invocation = dbt.cli(
                ["build", "--indirect-selection", mode], context=context, target_path=target
            )
        # dbt holds DuckDB's single write lock until it exits, so row counts are read after.
        events, failure = [], None
        try:
            events.extend(invocation.stream())
        except Exception as exc:  # dbt build failed: report what did build, then fail the step
            failure = exc
        results = list(_with_row_counts(context, events, warehouse))
    yield from results
    if failure is not None:
        raise failure


def dbt_target_path(warehouse_path: str) -> Path:
    """dbt's artifacts (manifest, run results, compiled SQL, log) for builds of this warehouse:
    one folder beside it, reused by every build.

    dagster-dbt's default is a new folder per invocation inside the dbt project, which kept
    about 10 MB per run for ever (3.7 GB after a few hundred runs here) and never reused
    dbt's partial parse: the profile names the warehouse path, so the project's prepared
    `partial_parse.msgpack` never matched it and dbt re-parsed all 335 nodes on every build
    (2.3 s at `tiny`). Builds of one warehouse cannot overlap (DuckDB has one writer), so
    one folder per warehouse is safe; dbt rotates its log file.
    """
    warehouse = Path(warehouse_path).resolve()
    return warehouse.with_name(f"{warehouse.stem}.dbt-target")


def _models(manifest_path) -> set[tuple[str, str]]:
    import json

    manifest = json.loads(manifest_path.read_text())
    return {
        (node["schema"], node.get("alias") or node["name"])
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


def indirect_selection(warehouse: WarehouseResource) -> str:
    """Which tests run with the selected models.

    * `cautious` (a test runs only when every model it references is selected) on a warehouse
      that lacks some model: with dbt's default (eager), `--select '+key:demand_promotion'` on
      a fresh warehouse ran relationship tests against unselected models that did not exist
      yet, failed, and skipped every asset downstream.
    * `eager` (every test touching a selected model) once every model exists. Cautious there
      leaves a relationship test between a rebuilt model and an unchanged one (sales -> the
      catalog, on a day the catalog did not change) unrun; its blocking check then has no
      result, and automation never runs what is downstream of the rebuilt model again (found
      by `retail simulate`: the marts stopped at the first day after a full build).
    """
    if not os.path.exists(warehouse.path):
        return "cautious"
    with warehouse.connect(read_only=True) as con:
        built = set(
            con.sql("select table_schema, table_name from information_schema.tables").fetchall()
        )
    return "eager" if _models(dbt_project.manifest_path) <= built else "cautious"


def _with_row_counts(
    context: dg.AssetExecutionContext, events: list, warehouse: WarehouseResource
) -> Iterator:
    with warehouse.connect(read_only=True) as con:
        for event in events:
            if isinstance(event, dg.Output | dg.AssetMaterialization):
                if isinstance(event, dg.Output):
                    key = context.asset_key_for_output(event.output_name)
                else:
                    key = event.asset_key
                schema, table = table_for_asset_key(key)
                count = con.sql(f'select count(*) from "{schema}"."{table}"').fetchall()[0][0]
                event = event.with_metadata({**event.metadata, "dagster/row_count": int(count)})
            yield event


defs = dg.Definitions(assets=[retail_dbt_models])
