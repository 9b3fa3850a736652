"""`retail land FEED FILE [--map mapping.yaml]`: a retailer's own file into the landing zone.

The file (CSV or Parquet) is read, mapped onto the feed's contract (`contracts.FEEDS`) and
validated completely *before* anything is written; every problem is one line naming the file,
the row (the 1-based physical line for CSV, the 1-based data row for Parquet) and the column,
so the file can be fixed. Only a clean file is landed, with `LandingZone.write` (control total =
rows read), and the manifest records where it came from::

    {"kind": "file", "path": "/data/sales.csv", "mapping": "/data/sales.yaml",
     "landed_by": "retail land"}

The mapping (YAML, every key optional)::

    rename:            # contract column: source column
      store_id: store
      units_sold: qty
    constants:         # contract column: one value for every row
      on_promotion: false
    values:            # contract column: {source value: contract value}
      format: {DRG: drugstore, HM: hypermarket}
    date_format: "%d/%m/%Y"   # strptime format of string dates; or {column: format}
    measure: units     # sales: the file's measure is units (units_sold) or value (sales_value)

A contract column the file does not have (under its own name or a `rename`) is null when the
contract allows it; a missing required column is an error listing the closest source columns.
Source columns the contract does not know are ignored (and reported). Values are parsed
strictly: integers, plain decimal numbers (no `nan`, `inf` or thousands separators), booleans
as true/false, yes/no, y/n, t/f or 1/0, dates as ISO `2024-01-31` unless `date_format` says
otherwise, timestamps in ISO form (an offset is converted to UTC). An empty field is null.

The logic is generic over `FEEDS`: a new feed or column needs no change here.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from retail_assets.sources.contracts import FEEDS, Column, FeedContract
from retail_assets.sources.landing_zone import SYNTHETIC_KIND, LandingZone
from retail_assets.sources.real._csv import _NUMBER, record_lines
from retail_assets.sources.real.errors import RealDataFormatError

MAPPING_KEYS = ("rename", "constants", "values", "date_format", "measure")
MEASURES = ("units", "value")
UNITS_COLUMN = "units_sold"
CSV_SUFFIXES = (".csv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
LANDED_BY = "retail land"

_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_INT_RANGES = {
    pl.Int8: (-(2**7), 2**7 - 1),
    pl.Int16: (-(2**15), 2**15 - 1),
    pl.Int32: (-(2**31), 2**31 - 1),
    pl.Int64: (-(2**63), 2**63 - 1),
}
_ROW = "__land_row__"


class LandError(ValueError):
    """The file (or its mapping) cannot be landed; `problems` has one line per problem."""

    def __init__(self, path: Path, problems: list[str]):
        self.path = Path(path)
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in {self.path.name}; nothing was landed:\n"
            + "\n".join(self.problems)
        )


@dataclass(frozen=True)
class FeedMapping:
    rename: dict[str, str] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    values: dict[str, dict[str, str | None]] = field(default_factory=dict)
    date_formats: dict[str, str] = field(default_factory=dict)
    default_date_format: str | None = None
    measure: str | None = None
    path: Path | None = None

    def date_format(self, column: str) -> str | None:
        return self.date_formats.get(column, self.default_date_format)


@dataclass(frozen=True)
class LandResult:
    feed: str
    rows: int
    source: Path
    mapping: Path | None
    landed_path: Path
    null_columns: list[str]
    """Nullable contract columns the file does not have (landed as null)."""
    ignored_columns: list[str]
    """Source columns the contract does not use."""
    other_synthetic_feeds: list[str]
    """Feeds still in the landing zone from the synthetic generator."""


def value_column(contract: FeedContract) -> str | None:
    """The contract's sales value column (`measure: value`), if it has one: a numeric column,
    other than units, named for a value."""
    for column in contract.columns:
        if (
            column.name != UNITS_COLUMN
            and "value" in column.name
            and column.dtype in (pl.Float64, pl.Float32)
        ):
            return column.name
    return None


def _text(value: Any) -> str | None:
    """A YAML scalar as the text a file would hold."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _closest(name: str, candidates: list[str], n: int = 3) -> list[str]:
    lowered = {c.lower(): c for c in candidates}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[c] for c in close]


def _suggest(name: str, candidates: list[str]) -> str:
    close = _closest(name, candidates)
    if close:
        return "closest: " + ", ".join(repr(c) for c in close)
    return "available: " + (", ".join(repr(c) for c in candidates[:12]) or "none")


def load_mapping(path: Path | None, contract: FeedContract) -> FeedMapping:
    """Read and check a mapping file against the contract (every problem at once)."""
    if path is None:
        return FeedMapping()
    import yaml

    path = Path(path)
    where = path.name
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise LandError(
            path, [f"{where}: not readable YAML: {' '.join(str(exc).split())}"]
        ) from None
    if not isinstance(document, dict):
        raise LandError(path, [f"{where}: expected a mapping with keys {', '.join(MAPPING_KEYS)}"])
    problems: list[str] = []
    names = contract.column_names

    def section(key: str) -> dict:
        value = document.get(key) or {}
        if not isinstance(value, dict):
            problems.append(f"{where}: '{key}' must be a mapping of contract column to value")
            return {}
        for column in value:
            if column not in names:
                problems.append(
                    f"{where}: {key}: {column!r} is not a column of the {contract.name} "
                    f"contract; {_suggest(str(column), names)}"
                )
        return {str(k): v for k, v in value.items() if k in names}

    unknown = [key for key in document if key not in MAPPING_KEYS]
    for key in unknown:
        problems.append(f"{where}: unknown key {key!r}; a mapping has {', '.join(MAPPING_KEYS)}")
    rename = {k: str(v) for k, v in section("rename").items()}
    constants = section("constants")
    values: dict[str, dict[str, str | None]] = {}
    for column, table in section("values").items():
        if not isinstance(table, dict):
            problems.append(f"{where}: values: {column}: expected {{source value: contract value}}")
            continue
        values[column] = {_text(k) or "": _text(v) for k, v in table.items()}
    formats: dict[str, str] = {}
    default_format = None
    raw_format = document.get("date_format")
    if isinstance(raw_format, str):
        default_format = raw_format
    elif isinstance(raw_format, dict):
        formats = {str(k): str(v) for k, v in section("date_format").items()}
    elif raw_format is not None:
        problems.append(f"{where}: date_format must be a strptime format or {{column: format}}")
    measure = document.get("measure")
    if measure is not None:
        measure = str(measure)
        if measure not in MEASURES:
            problems.append(
                f"{where}: measure must be one of {', '.join(MEASURES)}, got {measure!r}"
            )
        elif UNITS_COLUMN not in names:
            problems.append(
                f"{where}: measure applies to feeds with {UNITS_COLUMN} (sales); the "
                f"{contract.name} contract has none"
            )
        elif measure == "value" and value_column(contract) is None:
            problems.append(
                f"{where}: measure: value, but the {contract.name} contract has no sales value "
                f"column (columns: {', '.join(names)}); land units (measure: units) instead"
            )
    for column in set(constants) & set(rename):
        problems.append(f"{where}: {column} is both renamed and a constant; keep one")
    if problems:
        raise LandError(path, problems)
    return FeedMapping(
        rename=rename,
        constants=constants,
        values=values,
        date_formats=formats,
        default_date_format=default_format,
        measure=measure,
        path=path,
    )


class _Source:
    """The file as read, with the row labels its messages use."""

    def __init__(self, path: Path):
        self.path = path
        suffix = path.suffix.lower()
        self.is_csv = suffix in CSV_SUFFIXES
        if not self.is_csv and suffix not in PARQUET_SUFFIXES:
            raise LandError(
                path,
                [
                    f"{path.name}: expected a CSV ({', '.join(CSV_SUFFIXES)}) or Parquet "
                    f"({', '.join(PARQUET_SUFFIXES)}) file"
                ],
            )
        self._lines: list[int] | None = None
        self.frame = self._read()

    def _read(self) -> pl.DataFrame:
        try:
            if self.is_csv:
                # Every field as text: this module parses and reports each value itself.
                return pl.read_csv(self.path, infer_schema=False, encoding="utf8")
            return pl.read_parquet(self.path)
        except Exception as exc:  # polars raises several error types for malformed files
            if self.is_csv:
                try:
                    record_lines(self.path)  # names the line of a structural problem
                except RealDataFormatError as located:
                    raise LandError(self.path, [str(located)]) from None
            detail = " ".join(str(exc).split())[:300]
            raise LandError(self.path, [f"{self.path.name}: cannot be read: {detail}"]) from None

    @property
    def unit(self) -> str:
        return "line" if self.is_csv else "row"

    def label(self, index: int) -> int:
        """The line (CSV) or 1-based row (Parquet) of data row `index`."""
        if not self.is_csv:
            return index + 1
        if self._lines is None:
            try:
                self._lines = record_lines(self.path)
            except RealDataFormatError:
                self._lines = []
        return self._lines[index] if index < len(self._lines) else index + 2

    def error(self, index: int | None, column: str | None, message: str) -> str:
        line = None if index is None else self.label(index)
        if line is None and self.is_csv and column is not None:
            line = 1  # a column-level problem of a CSV is on its header
        return str(RealDataFormatError(self.path, line, column, message, unit=self.unit))


def _expected(column: Column, fmt: str | None) -> str:
    dtype = column.dtype
    if dtype == pl.Boolean:
        return "true/false (or yes/no, y/n, t/f, 1/0)"
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        return f"an integer in [{low}, {high}]" if dtype != pl.Int64 else "an integer"
    if dtype.is_float():
        return "a number"
    if dtype == pl.Date:
        return (
            f"a date in format {fmt!r}"
            if fmt
            else "a date like 2024-01-31 (set date_format in the mapping for another format)"
        )
    if isinstance(dtype, pl.Datetime):
        return (
            f"a timestamp in format {fmt!r}"
            if fmt
            else "a timestamp like 2024-01-31 13:45:00 (set date_format for another format)"
        )
    return str(dtype)


def _parse_text(text: pl.Series, column: Column, fmt: str | None) -> pl.Series:
    """Text (blank = null) to the column's type; unparseable values become null."""
    dtype = column.dtype
    v = pl.col("v")
    stripped = v.str.strip_chars()
    if dtype == pl.String:
        expr = v
    elif dtype == pl.Boolean:
        lowered = stripped.str.to_lowercase()
        expr = (
            pl.when(lowered.is_in(_TRUE))
            .then(True)
            .when(lowered.is_in(_FALSE))
            .then(False)
            .otherwise(None)
        )
    elif dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        integral = stripped.str.contains(r"^[+-]?\d+(\.0*)?$")
        number = stripped.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)
        expr = (pl.when(integral & number.is_between(low, high)).then(number).otherwise(None)).cast(
            dtype
        )
    elif dtype.is_float():
        valid = stripped.str.contains(f"^(?:{_NUMBER.pattern})$")
        expr = pl.when(valid).then(stripped.cast(pl.Float64, strict=False)).otherwise(None)
    elif dtype == pl.Date:
        expr = stripped.str.strptime(pl.Date, fmt or "%Y-%m-%d", strict=False)
    elif isinstance(dtype, pl.Datetime):
        expr = _timestamp(stripped, fmt)
    else:
        expr = v.cast(dtype, strict=False)
    out = pl.DataFrame({"v": text}).select(expr.alias("v")).to_series()
    if isinstance(out.dtype, pl.Datetime) and out.dtype.time_zone is not None:
        out = out.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return out.cast(dtype)


# ISO 8601 timestamps: with an offset (or Z) they are converted to UTC; without one they are
# taken as UTC already. A bare date is midnight.
_ISO_WITH_OFFSET = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z")
_ISO_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M")


def _timestamp(text: pl.Expr, fmt: str | None) -> pl.Expr:
    """Text to a naive UTC timestamp (null when it does not parse). Polars' own format
    inference sees tz-naive forms only inside an expression, so the ISO forms are explicit."""

    def utc(parsed: pl.Expr) -> pl.Expr:
        return parsed.dt.replace_time_zone(None)

    if fmt is not None:
        if "%z" in fmt or "%Z" in fmt:
            return utc(text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False))
        return text.str.to_datetime(fmt, time_unit="us", strict=False)
    offset = text.str.replace(r"(?i)z$", "+00:00")
    return pl.coalesce(
        *(
            utc(offset.str.to_datetime(f, time_unit="us", time_zone="UTC", strict=False))
            for f in _ISO_WITH_OFFSET
        ),
        *(text.str.to_datetime(f, time_unit="us", strict=False) for f in _ISO_NAIVE),
        text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")),
    )


def _blank_to_null(text: pl.Series) -> pl.Series:
    return (
        pl.DataFrame({"v": text})
        .select(pl.when(pl.col("v").str.strip_chars() == "").then(None).otherwise(pl.col("v")))
        .to_series()
    )


def _convert(series: pl.Series, column: Column, fmt: str | None) -> pl.Series:
    """A source column (any type) to the contract column's type; bad values become null."""
    dtype = column.dtype
    source = series.dtype
    if source == dtype:
        return series
    if source.is_numeric() and dtype.is_numeric():
        if dtype.is_integer() and source.is_float():
            integral = series.is_null() | (series == series.floor())
            series = (
                pl.DataFrame({"v": series, "ok": integral})
                .select(pl.when(pl.col("ok")).then(pl.col("v")).otherwise(None))
                .to_series()
            )
        return series.cast(dtype, strict=False)
    if source == pl.Datetime or isinstance(source, pl.Datetime):
        if dtype == pl.Date:
            return series.dt.date()
        if isinstance(dtype, pl.Datetime):
            if source.time_zone is not None:
                series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            return series.cast(dtype)
    if source == pl.Date and isinstance(dtype, pl.Datetime):
        return series.cast(dtype)
    text = series.cast(pl.String) if source != pl.String else series
    return _parse_text(_blank_to_null(text), column, fmt)


@dataclass
class _Build:
    source: _Source
    contract: FeedContract
    mapping: FeedMapping
    problems: list[str] = field(default_factory=list)
    columns: dict[str, pl.Series] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    """Contract column -> the name to report it by (the source column, or the mapping key)."""
    null_columns: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)


def _source_names(contract: FeedContract, mapping: FeedMapping) -> dict[str, str | None]:
    """Contract column -> source column (None: the file does not provide it)."""
    names: dict[str, str | None] = {
        c: mapping.rename.get(c, c) for c in contract.column_names if c not in mapping.constants
    }
    value = value_column(contract)
    if mapping.measure == "value" and value is not None:
        measure_source = mapping.rename.get(value) or mapping.rename.get(UNITS_COLUMN) or value
        names[value] = measure_source
        if UNITS_COLUMN not in mapping.rename or mapping.rename[UNITS_COLUMN] == measure_source:
            names[UNITS_COLUMN] = None  # the file reports value, not units
    elif mapping.measure == "units" and value is not None and value not in mapping.rename:
        names[value] = None  # the file reports units, not value
    return names


def _column(build: _Build, column: Column, source_name: str | None) -> None:
    source, mapping, frame = build.source, build.mapping, build.source.frame
    height = frame.height
    fmt = mapping.date_format(column.name)
    if column.name in mapping.constants:
        raw = mapping.constants[column.name]
        label = f"constants.{column.name}"
        build.labels[column.name] = label
        if raw is None:
            series = pl.repeat(None, height, dtype=column.dtype, eager=True)
        else:
            typed_yaml = isinstance(raw, date | bool | int | float)
            parsed = _parse_text(
                pl.Series("v", [_text(raw)], dtype=pl.String), column, None if typed_yaml else fmt
            )
            if parsed.null_count():
                build.problems.append(
                    f"{mapping.path.name if mapping.path else 'mapping'}: {label}: expected "
                    f"{_expected(column, fmt)}, got {raw!r}"
                )
                return
            series = pl.repeat(parsed[0], height, dtype=column.dtype, eager=True)
        build.columns[column.name] = series
        return
    present = source_name is not None and source_name in frame.columns
    if not present:
        explicit = column.name in mapping.rename and source_name is not None
        if explicit:
            build.problems.append(
                source.error(
                    None,
                    source_name,
                    f"not in the file (the mapping renames it to {column.name}); "
                    f"{_suggest(source_name, frame.columns)}",
                )
            )
        elif not column.nullable:
            hint = f"map one with `rename: {{{column.name}: <source column>}}`" + (
                " or `constants`" if column.name not in (build.contract.key or ()) else ""
            )
            build.problems.append(
                source.error(
                    None,
                    column.name,
                    f"required column missing; {_suggest(column.name, frame.columns)}; {hint}",
                )
            )
        else:
            build.null_columns.append(column.name)
            build.columns[column.name] = pl.repeat(None, height, dtype=column.dtype, eager=True)
        return
    build.used.add(source_name)
    build.labels[column.name] = source_name
    series = frame[source_name]
    if source.is_csv:
        series = _blank_to_null(series)
    table = mapping.values.get(column.name)
    if table:
        text = series.cast(pl.String) if series.dtype != pl.String else series
        series = (
            pl.DataFrame({"v": text})
            .select(
                pl.col("v").replace_strict(
                    list(table), list(table.values()), default=pl.col("v"), return_dtype=pl.String
                )
            )
            .to_series()
        )
    parsed = _convert(series, column, fmt)
    bad = (series.is_not_null() & parsed.is_null()).arg_true()
    if len(bad):
        first = int(bad[0])
        got = series[first]
        what = f" for {column.name}" if source_name != column.name else ""
        typed = f" (the column has type {series.dtype})" if series.dtype != pl.String else ""
        more = f" ({len(bad)} rows like this, the first is shown)" if len(bad) > 1 else ""
        build.problems.append(
            source.error(
                first,
                source_name,
                f"expected {_expected(column, fmt)}{what}, got {got!r}{typed}{more}",
            )
        )
        return
    build.columns[column.name] = parsed


def _row_checks(build: _Build) -> None:
    contract, source = build.contract, build.source
    columns = build.columns
    for column in contract.columns:
        if column.nullable or column.name not in columns:
            continue
        nulls = columns[column.name].is_null().arg_true()
        if len(nulls):
            more = f" ({len(nulls)} rows, the first is shown)" if len(nulls) > 1 else ""
            label = build.labels.get(column.name, column.name)
            what = f" {column.name}" if label != column.name else ""
            build.problems.append(
                source.error(int(nulls[0]), label, f"empty value in required column{what}{more}")
            )
    for group in getattr(contract, "at_least_one_of", ()):
        if not all(name in columns for name in group):
            continue
        if all(name in build.null_columns for name in group):
            hint = " (or `measure: units|value`)" if UNITS_COLUMN in group else ""
            build.problems.append(
                source.error(
                    None,
                    group[0],
                    f"the file has none of {', '.join(group)} and every row needs one; map "
                    f"a source column with `rename`{hint}; "
                    f"{_suggest(group[0], source.frame.columns)}",
                )
            )
            continue
        empty = (
            pl.DataFrame({name: columns[name] for name in group})
            .select(pl.all_horizontal(pl.all().is_null()))
            .to_series()
            .arg_true()
        )
        if len(empty):
            labels = " / ".join(build.labels.get(name, name) for name in group)
            more = f" ({len(empty)} rows, the first is shown)" if len(empty) > 1 else ""
            build.problems.append(
                source.error(
                    int(empty[0]),
                    labels,
                    f"every row needs at least one of {', '.join(group)}; this one has none{more}",
                )
            )
    key = list(contract.key)
    if key and all(name in columns for name in key):
        keys = pl.DataFrame({name: columns[name] for name in key})
        duplicated = keys.is_duplicated().arg_true()
        if len(duplicated):
            first = int(duplicated[0])
            row = keys.row(first, named=True)
            same = (
                keys.with_row_index(_ROW)
                .filter(pl.all_horizontal(pl.col(k) == row[k] for k in key))[_ROW]
                .to_list()
            )
            others = ", ".join(str(source.label(i)) for i in same[1:3] if i != first)
            labels = ", ".join(repr(build.labels.get(k, k)) for k in key)
            value = ", ".join(f"{k}={row[k]}" for k in key)
            build.problems.append(
                source.error(
                    first,
                    None,
                    f"duplicate key ({value}) in column(s) {labels}, also on {source.unit} "
                    f"{others}; the key must be unique ({len(duplicated)} rows share a key)",
                )
            )


def read_feed_file(
    feed: str, path: Path, mapping_path: Path | None = None
) -> tuple[pl.DataFrame, FeedMapping, _Build]:
    """The file mapped onto the feed's contract, or `LandError` with every problem."""
    if feed not in FEEDS:
        raise LandError(Path(path), [f"unknown feed {feed!r}; feeds: {', '.join(FEEDS)}"])
    contract = FEEDS[feed]
    path = Path(path)
    if not path.is_file():
        raise LandError(path, [f"{path}: no such file"])
    mapping = load_mapping(mapping_path, contract)
    source = _Source(path)
    build = _Build(source, contract, mapping)
    names = _source_names(contract, mapping)
    blank = source.frame.select(pl.all_horizontal(pl.all().is_null())).to_series().arg_true()
    if source.is_csv and source.frame.width and len(blank):
        build.problems.append(
            source.error(int(blank[0]), None, f"blank line ({len(blank)} in the file); remove it")
        )
    for column in contract.columns:
        _column(build, column, names.get(column.name))
    if not len(blank):
        # On the columns that parsed (a column with a bad value is reported once, above).
        _row_checks(build)
    if build.problems:
        raise LandError(path, build.problems)
    frame = contract.conform(
        pl.DataFrame([build.columns[c].alias(c) for c in contract.column_names])
    )
    return frame, mapping, build


def land_file(
    zone: LandingZone, feed: str, path: Path, mapping_path: Path | None = None
) -> LandResult:
    """Validate the file and land it (nothing is written when it has a problem)."""
    path = Path(path)
    frame, _mapping, build = read_feed_file(feed, path, mapping_path)
    source = {
        "kind": "file",
        "path": str(path.resolve()),
        "mapping": str(Path(mapping_path).resolve()) if mapping_path else None,
        "landed_by": LANDED_BY,
    }
    zone.write({feed: frame}, source=source)
    synthetic = sorted(
        name
        for name, origin in zone.feed_sources().items()
        if origin.get("kind") == SYNTHETIC_KIND and name != feed
    )
    return LandResult(
        feed=feed,
        rows=frame.height,
        source=path,
        mapping=Path(mapping_path) if mapping_path else None,
        landed_path=zone.feed_path(feed),
        null_columns=build.null_columns,
        ignored_columns=[c for c in build.source.frame.columns if c not in build.used],
        other_synthetic_feeds=synthetic,
    )
