"""The search store on the filesystem (under `settings.search_dir`):

    encoder/<version>/...                      the ONNX text encoder (see encoder.py)
    quantization/<encoder version>.json        fp32 vs int8 measurement and decision
    eval/<version>.json                        search eval sets (queries + graded relevance)
    embeddings/<encoder key>/<catalog hash>/   vectors.npy + products.parquet + manifest.json
    embeddings/<encoder key>/CURRENT
    indexes/versions/<version>/                index.usearch, vectors.npy, products.parquet,
                                               manifest.json, checks.json, evaluation.json,
                                               decision.json
    indexes/LIVE, indexes/CANDIDATE            pointers (JSON: version, since, reason)
    indexes/rollout.json                       canary share and minimum canary time
    indexes/decisions.jsonl                    every promotion, canary start, refusal, rollback

An index version is `<encoder version>-<fp32|int8>-<catalog hash>`; everything is written
under a temporary name and renamed into place, and pointers are replaced atomically, so serving
never reads a half-written version. Pointer transitions take an exclusive lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retail_assets.atomic_files import atomic_write, write_json_atomic
from retail_assets.models.lifecycle.bundle import check_name
from retail_assets.models.lifecycle.promotion_log import PromotionLog

KEEP_VERSIONS = 4
KEEP_SNAPSHOTS = 2
DEFAULT_CANARY_SHARE = 0.1
DEFAULT_MIN_CANARY_SECONDS = 600.0


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number; got {value!r}") from None


@dataclass(frozen=True)
class SearchRollout:
    """How a candidate index is rolled out: the share of search traffic (sticky by session,
    user or query) it gets, and how long it must have served before a promotion run makes it
    live."""

    canary_share: float = DEFAULT_CANARY_SHARE
    min_canary_seconds: float = DEFAULT_MIN_CANARY_SECONDS

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary_share <= 1.0:
            raise ValueError(f"canary_share must be between 0 and 1; got {self.canary_share}")
        if self.min_canary_seconds < 0:
            raise ValueError(f"min_canary_seconds must be >= 0; got {self.min_canary_seconds}")

    @classmethod
    def from_env(cls) -> SearchRollout:
        return cls(
            canary_share=_env_float("RETAIL_SEARCH_CANARY_SHARE", DEFAULT_CANARY_SHARE),
            min_canary_seconds=_env_float(
                "RETAIL_SEARCH_CANARY_MIN_SECONDS", DEFAULT_MIN_CANARY_SECONDS
            ),
        )


class SearchStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        # Every refuse / canary / promote / rollback, append-only like the models' log.
        self._decisions = PromotionLog(self.indexes / "decisions.jsonl")

    # -- layout -----------------------------------------------------------------------------

    @property
    def encoder_root(self) -> Path:
        return self.root / "encoder"

    @property
    def indexes(self) -> Path:
        return self.root / "indexes"

    @property
    def versions_dir(self) -> Path:
        return self.indexes / "versions"

    def version_dir(self, version: str) -> Path:
        return self.versions_dir / check_name(version, "index version")

    def quantization_path(self, encoder_version: str) -> Path:
        return self.root / "quantization" / f"{check_name(encoder_version, 'encoder version')}.json"

    def eval_set_path(self, version: str) -> Path:
        return self.root / "eval" / f"{check_name(version, 'eval set version')}.json"

    def embeddings_dir(self, encoder_key: str) -> Path:
        return self.root / "embeddings" / check_name(encoder_key, "encoder key")

    def manifest(self, version: str) -> dict[str, Any]:
        return json.loads((self.version_dir(version) / "manifest.json").read_text())

    # -- embeddings snapshots -----------------------------------------------------------------

    def current_snapshot(self, encoder_key: str) -> Path | None:
        pointer = self.embeddings_dir(encoder_key) / "CURRENT"
        if not pointer.exists():
            return None
        folder = self.embeddings_dir(encoder_key) / pointer.read_text().strip()
        return folder if folder.exists() else None

    def publish_snapshot(self, encoder_key: str, name: str, staging: Path) -> Path:
        base = self.embeddings_dir(encoder_key)
        target = base / check_name(name, "snapshot")
        if target.exists():
            shutil.rmtree(staging)
        else:
            os.replace(staging, target)
        atomic_write(base / "CURRENT", name.encode())
        snapshots = sorted(
            (p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        for old in snapshots[:-KEEP_SNAPSHOTS]:
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
        return target

    def staging_dir(self, parent: Path) -> Path:
        parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=parent, prefix=".incoming-"))

    # -- index versions -----------------------------------------------------------------------

    def install_version(self, version: str, staging: Path) -> Path:
        """Move a fully written version into place (replacing a previous build of it)."""
        target = self.version_dir(version)
        if target.exists():
            retired = target.with_name(f".retired-{version}-{os.getpid()}")
            os.replace(target, retired)
            os.replace(staging, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, target)
        return target

    def record(self, version: str, name: str, document: dict[str, Any]) -> None:
        """Write checks.json / evaluation.json / decision.json beside a version."""
        write_json_atomic(self.version_dir(version) / f"{name}.json", document)

    def read_record(self, version: str, name: str) -> dict[str, Any] | None:
        return read_json(self.version_dir(version) / f"{name}.json")

    # -- pointers -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.indexes.mkdir(parents=True, exist_ok=True)
        with (self.indexes / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def pointer(self, role: str) -> dict[str, Any] | None:
        """{'version', 'since', 'reason'} for LIVE or CANDIDATE, or None."""
        document = read_json(self.indexes / role)
        return document if isinstance(document, dict) and document.get("version") else None

    def live(self) -> str | None:
        pointer = self.pointer("LIVE")
        return pointer["version"] if pointer else None

    def candidate(self) -> str | None:
        pointer = self.pointer("CANDIDATE")
        return pointer["version"] if pointer else None

    def _set_pointer(self, role: str, version: str | None, reason: str) -> None:
        path = self.indexes / role
        if version is None:
            path.unlink(missing_ok=True)
            return
        if not self.version_dir(version).exists():
            raise FileNotFoundError(f"index version {version} does not exist")
        write_json_atomic(path, {"version": version, "since": now_iso(), "reason": reason})

    def log(self, action: str, version: str | None, reason: str, **extra: Any) -> dict[str, Any]:
        return self._decisions.append(
            {
                "action": action,
                "version": version,
                "live_before": self.live(),
                "candidate_before": self.candidate(),
                "reason": reason,
                **extra,
            }
        )

    def decisions(self) -> list[dict[str, Any]]:
        return self._decisions.entries()

    def make_live(self, version: str, reason: str, actor: str = "pipeline") -> dict[str, Any]:
        """`version` serves all traffic; any candidate is retired (it was either this version
        or built from an older catalog)."""
        with self.locked():
            entry = self.log("promote", version, reason, actor=actor)
            candidate = self.candidate()
            if candidate is not None and candidate != version:
                self.log("retire_candidate", candidate, f"superseded by {version}", actor=actor)
            self._set_pointer("LIVE", version, reason)
            self._set_pointer("CANDIDATE", None, reason)
            self.record(version, "decision", {**entry, "status": "live"})
        self.prune()
        return entry

    def start_canary(self, version: str, reason: str, actor: str = "pipeline") -> dict[str, Any]:
        with self.locked():
            previous = self.candidate()
            entry = self.log("canary", version, reason, actor=actor)
            if previous and previous != version:
                self.log("retire_candidate", previous, f"superseded by {version}", actor=actor)
            self._set_pointer("CANDIDATE", version, reason)
            self.record(version, "decision", {**entry, "status": "canary"})
        self.prune()
        return entry

    def refuse(self, version: str, reason: str, actor: str = "pipeline", **extra: Any) -> dict:
        with self.locked():
            entry = self.log("refuse", version, reason, actor=actor, **extra)
            self.record(version, "decision", {**entry, "status": "refused"})
        return entry

    def rollback(self, reason: str, actor: str = "admin") -> dict[str, Any]:
        """Make the version that was live before the current one live again."""
        live = self.live()
        previous = None
        for entry in reversed(self.decisions()):
            if (
                entry["action"] in ("promote", "rollback")
                and entry["version"] == live
                and entry.get("live_before")
            ):
                previous = entry["live_before"]
                break
        if previous is None or not self.version_dir(previous).exists():
            raise LookupError(f"no earlier live index to roll back to from {live}")
        with self.locked():
            entry = self.log("rollback", previous, reason, actor=actor, replaced=live)
            self._set_pointer("LIVE", previous, reason)
            self.record(previous, "decision", {**entry, "status": "live"})
        return entry

    def prune(self) -> None:
        """Keep the live and candidate versions, the ones live before them, and the newest few."""
        if not self.versions_dir.exists():
            return
        protected = {self.live(), self.candidate()}
        protected |= {e.get("live_before") for e in self.decisions()[-20:]}
        versions = sorted(
            (p for p in self.versions_dir.iterdir() if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        for old in versions[:-KEEP_VERSIONS]:
            if old.name not in protected:
                shutil.rmtree(old, ignore_errors=True)

    # -- rollout ------------------------------------------------------------------------------

    @property
    def rollout_path(self) -> Path:
        return self.indexes / "rollout.json"

    def rollout(self) -> SearchRollout:
        """The rollout file if an admin wrote one, else RETAIL_SEARCH_CANARY_SHARE (0.1) and
        RETAIL_SEARCH_CANARY_MIN_SECONDS (600)."""
        document = read_json(self.rollout_path)
        defaults = SearchRollout.from_env()
        if not isinstance(document, dict):
            return defaults
        return SearchRollout(**{**asdict(defaults), **document})

    def set_rollout(self, rollout: SearchRollout) -> None:
        write_json_atomic(self.rollout_path, asdict(rollout))
