"""The feed contracts (`retail_assets/sources/contracts.py`) are the single source of truth for
the raw feeds; the dbt sources (`dbt_project/models/staging/_sources.yml`) must say the same
thing: every contract feed is a dbt source with exactly the contract's columns, in order, with
the DuckDB type the raw `matches_contract` check enforces, `not_null` on every required column,
uniqueness on the contract key and an `at_least_one_not_null` test for each of the contract's
`at_least_one_of` groups. Drift between the two fails here, naming every difference."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from retail_assets.raw.checks import duckdb_type
from retail_assets.settings import DBT_PROJECT_DIR
from retail_assets.sources.contracts import FEEDS, FeedContract

SOURCES_YML = Path(DBT_PROJECT_DIR) / "models" / "staging" / "_sources.yml"


@pytest.fixture(scope="module")
def raw_source() -> dict[str, Any]:
    document = yaml.safe_load(SOURCES_YML.read_text())
    sources = [s for s in document["sources"] if s["name"] == "raw"]
    assert len(sources) == 1, f"{SOURCES_YML} must declare exactly one source named 'raw'"
    return sources[0]


@pytest.fixture(scope="module")
def tables(raw_source) -> dict[str, dict[str, Any]]:
    return {table["name"]: table for table in raw_source["tables"]}


def _test_names(tests: list[Any] | None) -> list[str]:
    """Names of the dbt tests in a `data_tests` list (`not_null` or `{unique_combination: ...}`)."""
    return [t if isinstance(t, str) else next(iter(t)) for t in tests or []]


def _unique_combinations(table: dict[str, Any]) -> list[list[str]]:
    return _table_tests(table, "unique_combination")


def _table_tests(table: dict[str, Any], name: str) -> list[list[str]]:
    """The `columns` argument of each table-level test called `name`."""
    return [
        list(t[name]["arguments"]["columns"])
        for t in table.get("data_tests") or []
        if isinstance(t, dict) and name in t
    ]


def _feeds() -> list[FeedContract]:
    return list(FEEDS.values())


def test_every_feed_contract_is_a_raw_dbt_source_and_nothing_else_is(raw_source, tables):
    """The `raw` source reads schema `raw`, and its tables are exactly the contract feeds, each
    mapped to its raw Dagster asset so lineage runs raw -> staging -> marts."""
    assert raw_source.get("schema") == "raw"
    assert sorted(tables) == sorted(FEEDS)
    for name, table in tables.items():
        assert table["meta"]["dagster"]["asset_key"] == ["raw", name], name


@pytest.mark.parametrize("contract", _feeds(), ids=lambda c: c.name)
def test_a_dbt_source_has_exactly_the_contract_columns_types_and_descriptions(contract, tables):
    """Same column names in the same order, `data_type` = the DuckDB type the raw load
    produces (and `matches_contract` checks), and the contract's descriptions."""
    table = tables[contract.name]
    columns = table.get("columns") or []
    assert [c["name"] for c in columns] == contract.column_names
    problems = [
        f"{contract.name}.{column.name}: {field} is {declared.get(field)!r}, contract says {want!r}"
        for column, declared in zip(contract.columns, columns, strict=True)
        for field, want in (
            ("data_type", duckdb_type(column.dtype)),
            ("description", column.description),
        )
        if declared.get(field) != want
    ]
    key = ", ".join(contract.key)
    if table.get("description") != f"{contract.description} Contract key: {key}.":
        problems.append(f"{contract.name}: table description differs from the contract's")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("contract", _feeds(), ids=lambda c: c.name)
def test_required_contract_columns_and_only_those_are_not_null_tested(contract, tables):
    """`not_null` on every column the contract requires; a nullable column has none (it would
    fail the build on data the contract allows)."""
    declared = {
        c["name"]: _test_names(c.get("data_tests")) for c in tables[contract.name]["columns"]
    }
    tested = {name for name, tests in declared.items() if "not_null" in tests}
    assert sorted(tested) == sorted(contract.required_columns)


@pytest.mark.parametrize("contract", _feeds(), ids=lambda c: c.name)
def test_the_contract_key_is_unique_in_the_dbt_source(contract, tables):
    """A one-column key carries `unique`; a compound key a table-level `unique_combination` over
    exactly the key columns. No other column claims uniqueness."""
    table = tables[contract.name]
    unique_columns = [
        c["name"] for c in table["columns"] if "unique" in _test_names(c.get("data_tests"))
    ]
    combinations = _unique_combinations(table)
    if len(contract.key) == 1:
        assert unique_columns == list(contract.key) and combinations == []
    else:
        assert unique_columns == [] and combinations == [list(contract.key)]


@pytest.mark.parametrize("contract", _feeds(), ids=lambda c: c.name)
def test_at_least_one_of_groups_are_tested_in_the_dbt_source(contract, tables):
    """Each `at_least_one_of` group of the contract (e.g. sales: units_sold or sales_value) is
    one table-level `at_least_one_not_null` test over exactly its columns, and no other."""
    declared = _table_tests(tables[contract.name], "at_least_one_not_null")
    assert declared == [list(group) for group in contract.at_least_one_of]


def test_sales_rows_report_units_or_value():
    """A real retailer may report units, sales value or both: both are nullable in the sales
    contract, and the contract states that every row has at least one of them."""
    sales = FEEDS["sales"]
    nullable = {c.name for c in sales.columns if c.nullable}
    assert {"units_sold", "sales_value"} <= nullable
    assert ("units_sold", "sales_value") in sales.at_least_one_of


def test_at_least_one_of_rejects_required_or_unknown_columns():
    """The rule is for nullable columns of the feed: naming a required or unknown column, or a
    one-column group, is a contract error."""
    import polars as pl

    from retail_assets.sources.contracts import Column

    columns = (Column("a", pl.Int32), Column("b", pl.Int32, nullable=True))
    for group in (("a", "b"), ("b", "zzz"), ("b",)):
        with pytest.raises(ValueError, match="at_least_one_of"):
            FeedContract("x", "x", columns, ("a",), at_least_one_of=(group,))
