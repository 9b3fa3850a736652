"""Strict CSV reading shared by the real-data loaders.

The files are small (< 3 MB), so they are read with Python's ``csv`` module and every field is
validated explicitly: a malformed file fails with the file name, the physical line number and
the column, instead of a NaN or a silently mis-typed column somewhere downstream.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from retail_assets.settings import get_settings
from retail_assets.sources.real.errors import RealDataFormatError, RealDataMissingError

T = TypeVar("T")

# Plain decimal numbers as written by R, pandas and spreadsheets: no thousands separators, no
# `nan`/`inf`, no underscores (all of which Python's float() would otherwise accept).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")


def resolve_dataset_file(
    dataset: str, folder: str, file_name: str, path: Path | str | None = None
) -> Path:
    """Locate a dataset's CSV file.

    ``path`` may be the CSV itself or the dataset folder; by default the file is looked up as
    ``<settings.real_data_dir>/<folder>/<file_name>`` (``RETAIL_REAL_DATA_DIR``).
    """
    if path is None:
        candidate = get_settings().real_data_dir / folder / file_name
    else:
        given = Path(path).expanduser()
        is_folder = given.is_dir() or (not given.exists() and given.suffix.lower() != ".csv")
        candidate = given / file_name if is_folder else given
    if not candidate.is_file():
        raise RealDataMissingError(dataset, candidate)
    return candidate


@dataclass(frozen=True)
class CsvRecord:
    """One data record with the helpers to parse its fields or report what is wrong with it."""

    path: Path
    line: int
    fields: Mapping[str, str]

    def error(self, column: str | None, message: str) -> RealDataFormatError:
        return RealDataFormatError(self.path, self.line, column, message)

    def text(self, column: str, *, null_values: Sequence[str] = ("",)) -> str | None:
        """The raw text, or ``None`` when it is one of ``null_values``."""
        value = self.fields[column]
        return None if value in null_values else value

    def required(self, column: str, *, null_values: Sequence[str] = ("",)) -> str:
        """The raw text; a blank value or one of ``null_values`` is an error."""
        value = self.fields[column]
        if value in null_values or not value.strip():
            raise self.error(column, f"missing required value, got {value!r}")
        return value

    def number(self, column: str) -> float:
        value = self.required(column)
        if not _NUMBER.fullmatch(value):
            raise self.error(column, f"expected a number, got {value!r}")
        return float(value)

    def integer(self, column: str) -> int:
        value = self.required(column)
        if not _INTEGER.fullmatch(value):
            raise self.error(column, f"expected an integer, got {value!r}")
        return int(value)

    def choice(self, column: str, options: Mapping[str, T]) -> T:
        value = self.fields[column]
        if value not in options:
            expected = " or ".join(repr(o) for o in options)
            raise self.error(column, f"expected {expected}, got {value!r}")
        return options[value]

    def matching(self, column: str, pattern: re.Pattern[str], expected: str) -> str:
        value = self.required(column)
        if not pattern.fullmatch(value):
            raise self.error(column, f"expected {expected}, got {value!r}")
        return value

    def date(self, column: str, fmt: str, expected: str) -> date:
        return self.datetime(column, fmt, expected).date()

    def datetime(self, column: str, fmt: str, expected: str) -> datetime:
        value = self.required(column)
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            raise self.error(column, f"expected {expected}, got {value!r}") from None


def read_records(path: Path, header: Sequence[str]) -> Iterator[CsvRecord]:
    """Yield the data records of ``path`` after checking the header is exactly ``header``.

    Line numbers are physical lines (header = line 1). Blank lines, records with the wrong
    number of fields, CSV syntax errors and undecodable bytes are all reported as
    ``RealDataFormatError``.
    """
    width = len(header)
    reader = csv.reader(io.StringIO(_decode(path), newline=""), strict=True)
    records = _records_with_lines(path, reader)
    first = next(records, None)
    if first is None:
        raise RealDataFormatError(path, 1, None, f"file is empty, expected header {list(header)}")
    line, found = first
    if list(found) != list(header):
        raise RealDataFormatError(path, line, None, _header_problem(found, header))
    for line, values in records:
        if len(values) != width:
            got = "a blank line" if not values else f"{len(values)} fields"
            raise RealDataFormatError(
                path, line, None, f"expected {width} fields ({', '.join(header)}), got {got}"
            )
        yield CsvRecord(path, line, dict(zip(header, values, strict=True)))


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RealDataFormatError(path, line, None, f"not valid UTF-8: {exc.reason}") from None


def record_lines(path: Path) -> list[int]:
    """The physical line each data record of a CSV starts on (the header, line 1, excluded):
    index ``i`` is the line of data row ``i`` as a columnar reader (polars) numbers the rows,
    quoted fields spanning lines and blank lines included. Undecodable bytes, CSV syntax
    errors and records with more or fewer fields than the header raise
    ``RealDataFormatError``."""
    reader = csv.reader(io.StringIO(_decode(path), newline=""), strict=True)
    records = _records_with_lines(path, reader)
    first = next(records, None)
    if first is None:
        raise RealDataFormatError(path, 1, None, "file is empty, expected a header line")
    width = len(first[1])
    lines = []
    for line, values in records:
        if values and len(values) != width:
            raise RealDataFormatError(
                path, line, None, f"expected {width} fields like the header, got {len(values)}"
            )
        lines.append(line)
    return lines


def _records_with_lines(path: Path, reader) -> Iterator[tuple[int, list[str]]]:
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise RealDataFormatError(path, start, None, f"malformed CSV: {exc}") from None
        yield start, values


def _header_problem(found: Sequence[str], expected: Sequence[str]) -> str:
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s) {missing}")
        if extra:
            parts.append(f"unexpected column(s) {extra}")
        return f"unexpected header: {'; '.join(parts)}"
    return f"unexpected column order {list(found)}, expected {list(expected)}"
