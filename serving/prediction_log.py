"""Every prediction, appended off the request path to date-partitioned Parquet.

Requests put a small dict on an in-memory buffer (no I/O); a background thread flushes the
buffer every `flush_seconds` (or when it reaches `max_rows`) to
`<root>/date=YYYY-MM-DD/part-<time>-<pid>-<n>.parquet`, written under a temporary name and
renamed, so readers never see half a file. `close()` flushes what is left, so a clean
shutdown loses nothing; a crash loses at most one flush interval.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import polars as pl

from retail_assets.core import clock
from retail_assets.monitoring.schema import PREDICTION_LOG_SCHEMA

log = logging.getLogger("retail.serving")


def _encode_extra(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# msgspec writes NaN (a missing feature) as null and is ~10x faster than json.dumps: the
# record is encoded on the request path so the flush thread holds the GIL only briefly.
_encoder = msgspec.json.Encoder(enc_hook=_encode_extra)


def _encode(value: Any) -> str:
    try:
        return _encoder.encode(value).decode()
    except (TypeError, ValueError, OverflowError) as exc:
        return f'{{"unserialisable": {msgspec.json.encode(str(exc)).decode()}}}'


class PredictionLogger:
    def __init__(self, root: Path, flush_seconds: float = 2.0, max_rows: int = 5000):
        self.root = Path(root)
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self._buffer: list[tuple] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sequence = 0
        self.rows_written = 0
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
        record = (
            clock.timestamp(),
            request_id,
            model,
            version,
            arm,
            entity_id,
            _encode(features),
            _encode(output),
            latency_ms,
            fallback,
        )
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
            by_day: dict[str, list[tuple]] = defaultdict(list)
            for record in batch:
                by_day[time.strftime("%Y-%m-%d", time.gmtime(record[0]))].append(record)
            for day, records in by_day.items():
                self._write(day, records)
        except Exception:
            # Keep the rows for the next attempt rather than lose them.
            log.exception("prediction log flush failed; %d rows kept for the next try", len(batch))
            with self._lock:
                self._buffer[:0] = batch
            return 0
        self.rows_written += len(batch)
        return len(batch)

    def _write(self, day: str, records: list[dict[str, Any]]) -> None:
        folder = self.root / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        columns = list(zip(*records, strict=True))
        frame = pl.DataFrame(
            {
                name: list(values)
                for name, values in zip(PREDICTION_LOG_SCHEMA, columns, strict=True)
            },
            schema={**PREDICTION_LOG_SCHEMA, "ts": pl.Float64},
        ).with_columns(
            (pl.col("ts") * 1_000_000).cast(pl.Int64).cast(pl.Datetime("us", "UTC")).alias("ts")
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
