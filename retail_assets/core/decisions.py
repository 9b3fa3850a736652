"""The decision log: one append-only JSON-lines file for every automatic or manual decision on
any versioned artifact (publish, promote, refuse, canary, rollback, rollout change, ...).

Each entry names the artifact (`model/fraud`, `search/index`, `assistant/prompt`, ...), the
action, the version, the champion before and after, who decided (a gate, an operator, the
admin API) and why, plus the evidence (the gate's result table, metrics). Entries are only ever
appended, under an exclusive lock and fsynced, so the file is the audit trail of what served
when and why, and two writers (a pipeline run and the admin API) never interleave lines.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retail_assets.core.clock import now_iso

# Actions that install a champion (and so define what a rollback returns to).
PROMOTING_ACTIONS = frozenset({"promote", "manual_promote", "publish"})


class DecisionLog:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        if "artifact" not in entry or "action" not in entry:
            raise ValueError("a decision needs an 'artifact' and an 'action'")
        record = {"at": now_iso(), **entry}
        line = json.dumps(record, default=str, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return record

    def _records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def entries(
        self, artifact: str | None = None, actions: set[str] | frozenset[str] | None = None
    ) -> list[dict[str, Any]]:
        """Entries oldest first, optionally for one artifact and some actions."""
        return [
            r
            for r in self._records()
            if (artifact is None or r.get("artifact") == artifact)
            and (actions is None or r.get("action") in actions)
        ]

    def last(self, artifact: str, actions: set[str] | None = None) -> dict[str, Any] | None:
        found = self.entries(artifact, actions)
        return found[-1] if found else None

    def replaced_by(self, artifact: str, champion: str) -> str | None:
        """The champion that the promotion installing `champion` replaced (the rollback
        target), or None when it replaced nothing."""
        for entry in reversed(self.entries(artifact, PROMOTING_ACTIONS)):
            if entry.get("champion_after") == champion and entry.get("champion_before") != champion:
                return entry.get("champion_before")
        return None
