"""Blocking quality checks on raw feeds, for what dbt tests cannot see.

They run as SQL against ``raw.<feed>`` right after the load and block every downstream asset
(dbt staging, marts, training sets) when they fail, so a corrupt feed never reaches a model:
- the landed columns still match the feed contract (schema drift, e.g. a renamed column),
- the row count matches the producer's control total (duplicated or lost rows),
- required fields are present, the contract key is unique,
- values are plausible (no negative quantities, prices that are not suddenly in cents, no
  future dates).
Every failure names the column, and for row-level problems the first offending rows by their
position in the landed file. A feed that fails is quarantined: a copy of the landed file and a
`report.json` of the failed checks go to `<landing>/quarantine/<feed>/<landed_at>/`.

An optional feed that did not land (no enabled domain needs it, `retail_assets/domains.py`) is
loaded as an empty table; its checks pass with that reason instead of failing "feed is empty".
"""

from dataclasses import dataclass

import dagster as dg
import polars as pl

from retail_assets.core.clock import now_naive
from retail_assets.raw.assets import FEED_ROW_COLUMN, OPTIONAL_FEED_METADATA
from retail_assets.resources import LandingZoneResource
from retail_assets.sources.contracts import FEEDS, FeedContract
from retail_assets.warehouse import WarehouseResource

EXAMPLE_ROWS = 5

_DUCKDB_TYPES = {
    "String": "VARCHAR",
    "Float64": "DOUBLE",
    "Int64": "BIGINT",
    "Int32": "INTEGER",
    "Int16": "SMALLINT",
    "Int8": "TINYINT",
    "Boolean": "BOOLEAN",
    "Date": "DATE",
    "Datetime(time_unit='us', time_zone=None)": "TIMESTAMP",
}


def duckdb_type(dtype: pl.DataType) -> str:
    return _DUCKDB_TYPES[str(dtype)] if str(dtype) in _DUCKDB_TYPES else str(dtype).upper()


@dataclass(frozen=True)
class ValueRule:
    """Rows matching `violation` (a SQL predicate over the feed aliased `f`) are implausible.
    `{now}` and `{today}` in it stand for the platform's clock (`core/clock.py`)."""

    column: str
    violation: str
    meaning: str
    joins: str = ""
    needs_tables: tuple[str, ...] = ()


VALUE_RULES: dict[str, tuple[ValueRule, ...]] = {
    "sales": (
        ValueRule("units_sold", "f.units_sold < 0", "negative quantity"),
        ValueRule(
            "unit_price", "f.unit_price <= 0 or f.unit_price > 100000", "price not in (0, 100000]"
        ),
        ValueRule(
            "unit_price",
            "f.unit_price > 3 * p.list_price",
            "selling price above 3x the product's list price (prices in cents?)",
            joins="join raw.products p on p.sku = f.sku",
            needs_tables=("products",),
        ),
        ValueRule("date", "f.date > {today}", "date in the future"),
    ),
    "inventory": (
        ValueRule("on_hand_units", "f.on_hand_units < 0", "negative stock on hand"),
        ValueRule("on_order_units", "f.on_order_units < 0", "negative stock on order"),
    ),
    "competitor_prices": (
        ValueRule(
            "competitor_price",
            "f.competitor_price <= 0 or f.competitor_price > 100000",
            "price not in (0, 100000]",
        ),
    ),
    "products": (
        ValueRule(
            "list_price", "f.list_price <= 0 or f.list_price > 100000", "price not in (0, 100000]"
        ),
    ),
    "payments": (
        ValueRule("amount", "f.amount <= 0 or f.amount > 100000", "amount not in (0, 100000]"),
        ValueRule("event_ts", "f.event_ts > {now}", "timestamp in the future"),
    ),
    "clickstream": (ValueRule("event_ts", "f.event_ts > {now}", "timestamp in the future"),),
}

CHECK_NAMES = (
    "matches_contract",
    "row_count_matches_control_total",
    "required_fields_present",
    "key_is_unique",
    "values_are_plausible",
)


def _check_result(
    contract: FeedContract, name: str, problems: list[str], metadata: dict | None = None
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=dg.AssetKey(["raw", contract.name]),
        check_name=name,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(problems) if problems else "ok",
        metadata={
            "problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
            **(metadata or {}),
        },
    )


def _describe_rows(frame: pl.DataFrame, key: tuple[str, ...], column: str | None) -> str:
    parts = []
    for row in frame.iter_rows(named=True):
        ident = ", ".join(f"{k}={row.get(k)}" for k in key if k in row)
        value = f": {column} = {row.get(column)}" if column and column in row else ""
        parts.append(f"feed row {row[FEED_ROW_COLUMN]} ({ident}){value}")
    return "; ".join(parts)


def evaluate_feed(
    warehouse: WarehouseResource, contract: FeedContract, control_total: int | None
) -> list[dg.AssetCheckResult]:
    """Run every raw check for one feed; pure SQL so it is cheap at any scale."""
    table = f"raw.{contract.name}"
    with warehouse.connect(read_only=True) as con:
        landed = dict(
            con.execute(f"select column_name, column_type from (describe {table})").fetchall()
        )
        existing_tables = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = 'raw'"
            ).fetchall()
        }

        def rows(sql: str) -> pl.DataFrame:
            return con.sql(sql).pl()

        # Schema drift.
        contract_problems = []
        for column in contract.columns:
            if column.name not in landed:
                contract_problems.append(f"column '{column.name}' is missing")
            elif landed[column.name] != duckdb_type(column.dtype):
                contract_problems.append(
                    f"column '{column.name}' has type {landed[column.name]}, "
                    f"contract says {duckdb_type(column.dtype)}"
                )
        unexpected = sorted(set(landed) - set(contract.column_names) - {FEED_ROW_COLUMN})
        contract_problems += [f"unexpected column '{name}'" for name in unexpected]
        present = [c for c in contract.columns if c.name in landed]
        present_names = {c.name for c in present}

        # Control totals.
        landed_rows = con.sql(f"select count(*) from {table}").fetchall()[0][0]
        count_problems = []
        if control_total is None:
            count_problems.append("no control total recorded for this load")
        elif landed_rows != control_total:
            count_problems.append(
                f"{landed_rows} rows landed but the producer's control total is {control_total} "
                f"({landed_rows - control_total:+d})"
            )
        if landed_rows == 0:
            count_problems.append("feed is empty")

        # Required fields.
        null_problems = []
        for column in present:
            if column.nullable:
                continue
            bad = rows(
                f'select * from {table} where "{column.name}" is null order by {FEED_ROW_COLUMN}'
            )
            if bad.height:
                null_problems.append(
                    f"{bad.height} row(s) with null '{column.name}', e.g. "
                    + _describe_rows(bad.head(EXAMPLE_ROWS), contract.key, None)
                )

        # Key uniqueness.
        key_problems = []
        if all(k in present_names for k in contract.key):
            key_cols = ", ".join(f'"{k}"' for k in contract.key)
            dups = rows(
                f"select * from (select *, count(*) over (partition by {key_cols}) as _copies "
                f"from {table}) where _copies > 1 order by {FEED_ROW_COLUMN}"
            )
            if dups.height:
                key_problems.append(
                    f"{dups.height} row(s) share a key ({', '.join(contract.key)}), e.g. "
                    + _describe_rows(dups.head(EXAMPLE_ROWS), contract.key, None)
                )
        else:
            key_problems.append("key column(s) missing, see matches_contract")

        # Plausible values.
        value_problems = []
        now = now_naive()
        clock = {"now": f"timestamp '{now.isoformat(sep=' ')}'", "today": f"date '{now.date()}'"}
        for rule in VALUE_RULES.get(contract.name, ()):
            if rule.column not in present_names or not set(rule.needs_tables) <= existing_tables:
                continue
            bad = rows(
                f"select f.* from {table} f {rule.joins} where {rule.violation.format(**clock)} "
                f"order by f.{FEED_ROW_COLUMN}"
            )
            if bad.height:
                value_problems.append(
                    f"{bad.height} row(s) with {rule.meaning} in '{rule.column}', e.g. "
                    + _describe_rows(bad.head(EXAMPLE_ROWS), contract.key, rule.column)
                )

    return [
        _check_result(contract, "matches_contract", contract_problems),
        _check_result(
            contract,
            "row_count_matches_control_total",
            count_problems,
            {"landed_rows": landed_rows, "control_total": control_total or 0},
        ),
        _check_result(contract, "required_fields_present", null_problems),
        _check_result(contract, "key_is_unique", key_problems),
        _check_result(contract, "values_are_plausible", value_problems),
    ]


def optional_feed_results(contract: FeedContract, reason: str) -> list[dg.AssetCheckResult]:
    """An optional feed that did not land was loaded as an empty table of the contract's
    schema: nothing to judge, every check passes and says why."""
    return [
        dg.AssetCheckResult(
            asset_key=dg.AssetKey(["raw", contract.name]),
            check_name=name,
            passed=True,
            severity=dg.AssetCheckSeverity.ERROR,
            description=reason,
            metadata={OPTIONAL_FEED_METADATA: reason},
        )
        for name in CHECK_NAMES
    ]


def build_raw_feed_checks(contract: FeedContract) -> dg.AssetChecksDefinition:
    asset_key = dg.AssetKey(["raw", contract.name])
    descriptions = {
        "matches_contract": "Columns and types match the feed contract (catches schema drift).",
        "row_count_matches_control_total": "Rows loaded equal the producer's control total.",
        "required_fields_present": "No nulls in columns the contract marks required.",
        "key_is_unique": f"One row per {', '.join(contract.key)}.",
        "values_are_plausible": "No negative quantities, implausible prices or future dates.",
    }

    @dg.multi_asset_check(
        name=f"raw_{contract.name}_quality",
        specs=[
            dg.AssetCheckSpec(name, asset=asset_key, blocking=True, description=descriptions[name])
            for name in CHECK_NAMES
        ],
    )
    def raw_feed_quality(
        context: dg.AssetCheckExecutionContext,
        warehouse: WarehouseResource,
        landing_zone: LandingZoneResource,
    ):
        event = context.instance.get_latest_materialization_event(asset_key)
        control_total, optional = None, None
        if event is not None and event.asset_materialization is not None:
            metadata = event.asset_materialization.metadata
            value = metadata.get("control_total")
            control_total = int(value.value) if value is not None else None
            reason = metadata.get(OPTIONAL_FEED_METADATA)
            optional = str(reason.value) if reason is not None else None
        if optional is not None:
            yield from optional_feed_results(contract, optional)
            return
        results = list(evaluate_feed(warehouse, contract, control_total))
        failed = [r for r in results if not r.passed]
        if failed:
            folder = landing_zone.zone.quarantine(
                contract.name,
                [{"check": r.check_name, "description": r.description} for r in failed],
            )
            if folder is not None:
                context.log.error(
                    f"{contract.name}: failed its blocking checks; quarantined in {folder}"
                )
        yield from results

    return raw_feed_quality


raw_feed_checks = [build_raw_feed_checks(contract) for contract in FEEDS.values()]
