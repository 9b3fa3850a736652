"""DuckDB warehouse access shared by assets, checks and the CLI.

DuckDB allows one writer per file, so connections are opened per operation and closed at once:
nothing holds the file while dbt runs in its own process.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from retail_assets.warehouse.lock import warehouse_lock

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote(identifier: str) -> str:
    if not _IDENTIFIER.match(identifier):
        raise ValueError(f"not a safe SQL identifier: {identifier!r}")
    return f'"{identifier}"'


def table_for_asset_key(asset_key: dg.AssetKey) -> tuple[str, str]:
    """raw/sales -> ("raw", "sales"); a single-part key lands in schema "main"."""
    path = asset_key.path
    if len(path) == 1:
        return "main", path[0]
    return path[-2], path[-1]


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file every raw table, dbt model and feature mart lives in."""

    path: str

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if read_only and not Path(self.path).exists():
            raise FileNotFoundError(
                f"warehouse {self.path} does not exist yet; materialize the raw assets first"
            )
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Parallel steps wait for each other instead of failing on DuckDB's file lock.
        with warehouse_lock(self.path, exclusive=not read_only):
            con = duckdb.connect(self.path, read_only=read_only)
            try:
                yield con
            finally:
                con.close()

    def query(self, sql: str, params: Sequence[object] | None = None) -> pl.DataFrame:
        with self.connect(read_only=True) as con:
            return con.sql(sql, params=params).pl()

    def table_exists(self, schema: str, table: str) -> bool:
        if not Path(self.path).exists():
            return False
        with self.connect(read_only=True) as con:
            found = con.sql(
                "select count(*) from information_schema.tables "
                "where table_schema = ? and table_name = ?",
                params=[schema, table],
            ).fetchall()
        return bool(found[0][0])

    def read_table(
        self, schema: str, table: str, columns: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """The table, or only `columns` of it (a narrow read of a wide mart)."""
        selected = ", ".join(_quote(c) for c in columns) if columns else "*"
        return self.query(f"select {selected} from {_quote(schema)}.{_quote(table)}")

    def write_table(self, schema: str, table: str, frame: pl.DataFrame) -> int:
        """Replace schema.table with frame atomically; returns the row count written.

        The frame is first loaded into a side table; only when that load has fully succeeded is
        it swapped in within one transaction, so a failed load leaves the previous table intact.
        """
        target = f"{_quote(schema)}.{_quote(table)}"
        incoming_name = f"{table}__incoming"
        incoming = f"{_quote(schema)}.{_quote(incoming_name)}"
        with self.connect() as con:
            con.execute(f"create schema if not exists {_quote(schema)}")
            swapping = False
            try:
                con.register("incoming_frame", frame.to_arrow())
                con.execute(f"create or replace table {incoming} as select * from incoming_frame")
                con.unregister("incoming_frame")
                con.execute("begin transaction")
                swapping = True
                con.execute(f"drop table if exists {target}")
                con.execute(f"alter table {incoming} rename to {_quote(table)}")
                con.execute("commit")
            except Exception:
                if swapping:
                    con.execute("rollback")
                con.execute(f"drop table if exists {incoming}")
                raise
            count = con.sql(f"select count(*) from {target}").fetchall()
        return int(count[0][0])


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Stores polars frames returned by assets as DuckDB tables named after the asset key."""

    path: str

    @property
    def _warehouse(self) -> WarehouseResource:
        return WarehouseResource(path=self.path)

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | None) -> None:
        if obj is None:
            # The step wrote the table itself (dbt models): nothing to store, only to load.
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                "the warehouse IO manager stores polars DataFrames"
            )
        schema, table = table_for_asset_key(context.asset_key)
        rows = self._warehouse.write_table(schema, table, obj)
        context.add_output_metadata(
            {
                "table": f"{schema}.{table}",
                "dagster/row_count": rows,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, str(dtype)) for name, dtype in obj.schema.items()]
                ),
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        """The upstream table; an input whose `AssetIn` metadata names `columns` reads only
        those."""
        schema, table = table_for_asset_key(context.asset_key)
        columns = (context.definition_metadata or {}).get("columns")
        return self._warehouse.read_table(schema, table, columns)
