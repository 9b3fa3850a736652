"""Append-only log of every promotion decision, manual promotion and rollback.

One JSON object per line in RETAIL_HOME/promotion_log.jsonl; entries are only ever appended
(and fsynced), so the log is the audit trail of what served when and why.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class PromotionLog:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        record = {"at": datetime.now(UTC).isoformat(), **entry}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, default=str, sort_keys=True) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def entries(self, model: str | None = None) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        records = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return [r for r in records if model is None or r.get("model") == model]

    def rollback_target(self, model: str, current: str) -> str | None:
        """The champion that the promotion installing `current` replaced."""
        for entry in reversed(self.entries(model)):
            if (
                entry.get("action") in {"promote", "manual_promote"}
                and entry.get("champion_after") == current
                and entry.get("champion_before") != current
            ):
                return entry.get("champion_before")
        return None
