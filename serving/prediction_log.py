"""Every prediction, appended off the request path to date-partitioned Parquet.

Requests put a small dict on an in-memory buffer (no I/O); a background thread flushes the
buffer every `flush_seconds` (or when it reaches `max_rows`) to
`<root>/date=YYYY-MM-DD/part-<time>-<pid>-<n>.parquet`, written under a temporary name and
renamed, so readers never see half a file. `close()` flushes what is left, so a clean
shutdown loses nothing; a crash loses at most one flush interval.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

LOG_SCHEMA = {
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


def _json_default(value: Any) -> Any:
    """Serialise what the request path handed over as-is (arrays, lazy feature rows)."""
    if hasattr(value, "__json__"):
        return _nan_to_none(value.__json__())
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _nan_to_none(value.tolist())
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _dumps(value: Any) -> str:
    """JSON for one record's features or output; NaN (a missing feature) becomes null. A value
    that cannot be serialised is replaced by an explanation rather than blocking the flush."""
    try:
        return json.dumps(_nan_to_none(value), default=_json_default, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return json.dumps({"unserialisable": str(exc)})


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    return value


class PredictionLogger:
    def __init__(self, root: Path, flush_seconds: float = 2.0, max_rows: int = 5000):
        self.root = Path(root)
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sequence = 0
        self.rows_written = 0
        self.flush_errors = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def log(
        self,
        *,
        model: str,
        version: str,
        arm: str,
        entity_id: str,
        features: dict[str, Any],
        output: dict[str, Any],
        latency_ms: float,
        request_id: str,
        fallback: str | None = None,
    ) -> None:
        record = {
            "ts": datetime.now(UTC),
            "request_id": request_id,
            "model": model,
            "version": version,
            "arm": arm,
            "entity_id": entity_id,
            "features": features,
            "output": output,
            "latency_ms": latency_ms,
            "fallback": fallback,
        }
        with self._lock:
            self._buffer.append(record)
            full = len(self._buffer) >= self.max_rows
        if full:
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        with self._lock:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for record in batch:
                by_day[record["ts"].date().isoformat()].append(record)
            for day, records in by_day.items():
                self._write(day, records)
        except Exception:
            # Keep the rows for the next attempt rather than lose them.
            self.flush_errors += 1
            with self._lock:
                self._buffer[:0] = batch
            return 0
        self.rows_written += len(batch)
        return len(batch)

    def _write(self, day: str, records: list[dict[str, Any]]) -> None:
        folder = self.root / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        frame = pl.DataFrame(
            {
                "ts": [r["ts"] for r in records],
                "request_id": [r["request_id"] for r in records],
                "model": [r["model"] for r in records],
                "version": [r["version"] for r in records],
                "arm": [r["arm"] for r in records],
                "entity_id": [r["entity_id"] for r in records],
                "features": [_dumps(r["features"]) for r in records],
                "output": [_dumps(r["output"]) for r in records],
                "latency_ms": [r["latency_ms"] for r in records],
                "fallback": [r["fallback"] for r in records],
            },
            schema=LOG_SCHEMA,
        )
        self._sequence += 1
        name = f"part-{time.time_ns()}-{os.getpid()}-{self._sequence}.parquet"
        tmp = folder / f".{name}.tmp"
        frame.write_parquet(tmp)
        os.replace(tmp, folder / name)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._buffer)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.flush()
