"""Errors raised by the real-data loaders.

Two failure modes matter to whoever runs the loaders: the dataset is not where the settings
say it is (``RealDataMissingError``), or the file is there but does not look like the
documented format (``RealDataFormatError``, which points at the file, the physical line and
the column so the bad value can be found with ``sed -n '<line>p' <file>``).
"""

from __future__ import annotations

from pathlib import Path

REAL_DATA_ENV_VAR = "RETAIL_REAL_DATA_DIR"


class RealDataFormatError(ValueError):
    """A real dataset file does not match its documented format.

    ``line`` is the 1-based physical line in the file (the header is line 1; a quoted field
    spanning several lines is reported at the line where its record starts). ``column`` is the
    header name of the offending field, or ``None`` when the problem is the whole record
    (wrong number of fields, duplicate key). Files without lines (Parquet) report ``unit="row"``
    (the 1-based data row); ``line=None`` for a problem of a whole column (a wrong type).
    """

    def __init__(
        self,
        path: Path | str,
        line: int | None,
        column: str | None,
        message: str,
        unit: str = "line",
    ):
        self.path = Path(path)
        self.line = line
        self.column = column
        self.message = message
        self.unit = unit
        where = self.path.name
        if line is not None:
            where += f" {unit} {line}"
        if column is not None:
            where += f"{',' if line is not None else ''} column {column!r}"
        super().__init__(f"{where}: {message}")

    def __reduce__(self):
        return (type(self), (self.path, self.line, self.column, self.message, self.unit))


class RealDataMissingError(FileNotFoundError):
    """A real dataset is not present at the configured location."""

    def __init__(self, dataset: str, path: Path | str):
        self.dataset = dataset
        self.path = Path(path)
        message = (
            f"real dataset '{dataset}' not found at {self.path}; put the dataset there or set "
            f"{REAL_DATA_ENV_VAR} to the directory that holds the real dataset folders"
        )
        super().__init__(message)
        self.filename = str(self.path)

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):
        return (type(self), (self.dataset, self.path))
