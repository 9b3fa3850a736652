"""The serving slot: how a running process follows an artifact store without ever serving a
broken or half-loaded version.

`refresh()` (called by the app's poller and by an admin reload) reads the store's roles. A
version it does not hold yet is loaded *beside* the one in service by the slot's `load`
function, which validates and self-tests it (and raises with the reason if it must not serve);
only then does one reference assignment make it visible. Requests take `slot.active` once and
use it to the end, so a swap never splits a request across two versions. A version that fails
to load is refused: the slot keeps what it had, reports itself degraded with the reason, and
does not retry that version until its files change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from retail_assets.core.store import CHALLENGER, CHAMPION, ArtifactStore, Rollout

log = logging.getLogger("retail.serving")

T = TypeVar("T")
Loader = Callable[[Path, str], T]


@dataclass(frozen=True)
class Loaded(Generic[T]):
    version: str
    value: T
    loaded_at: str


@dataclass(frozen=True)
class Active(Generic[T]):
    """What requests see; replaced as a whole on every swap."""

    champion: Loaded[T] | None = None
    challenger: Loaded[T] | None = None
    rollout: Rollout = field(default_factory=Rollout)


def _fingerprint(folder: Path) -> tuple:
    """Changes when a version's files are rewritten, so a refusal is retried then."""
    try:
        return tuple(
            sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in folder.iterdir())
        )
    except OSError:
        return ()


class Slot(Generic[T]):
    """One artifact in a serving process: its champion and, if `with_challenger`, its
    challenger and rollout."""

    def __init__(
        self,
        name: str,
        store: ArtifactStore,
        load: Loader[T],
        *,
        with_challenger: bool = False,
        required: bool = True,
    ):
        self.name = name
        self.store = store
        self.load = load
        self.with_challenger = with_challenger
        self.required = required
        self.active: Active[T] = Active()
        self.problems: list[str] = []
        self._refused: dict[str, tuple[tuple, str]] = {}
        self._lock = threading.Lock()

    @property
    def champion(self) -> Loaded[T] | None:
        return self.active.champion

    @property
    def challenger(self) -> Loaded[T] | None:
        return self.active.challenger

    @property
    def ready(self) -> bool:
        return self.active.champion is not None

    def refresh(self) -> list[str]:
        """Load what the store names now; returns what changed (for logs and metrics)."""
        with self._lock:
            changes: list[str] = []
            problems: list[str] = []
            try:
                roles = self.store.roles()
            except (OSError, ValueError) as exc:
                self.problems = [f"unreadable roles: {exc}"]
                return []
            current = self.active
            champion = self._resolve(
                CHAMPION, roles.version(CHAMPION), current.champion, changes, problems
            )
            challenger = (
                self._resolve(
                    CHALLENGER, roles.version(CHALLENGER), current.challenger, changes, problems
                )
                if self.with_challenger
                else None
            )
            if champion is None and self.required:
                problems.append("nothing published yet" if not problems else "no champion loaded")
            if self.with_challenger and roles.rollout != current.rollout:
                changes.append(
                    f"{self.name}: rollout {current.rollout.mode}/{current.rollout.share} -> "
                    f"{roles.rollout.mode}/{roles.rollout.share}"
                )
            self.active = Active(champion, challenger, roles.rollout)
            self.problems = problems
            return changes

    def _resolve(
        self,
        role: str,
        version: str | None,
        current: Loaded[T] | None,
        changes: list[str],
        problems: list[str],
    ) -> Loaded[T] | None:
        if version is None:
            if current is not None:
                changes.append(f"{self.name}: {role} v{current.version} retired")
            return None
        if current is not None and current.version == version:
            return current
        keeping = (
            f"; still serving v{current.version}"
            if current is not None and role == CHAMPION
            else ""
        )
        folder = self.store.version_dir(version)
        fingerprint = _fingerprint(folder)
        refused = self._refused.get(version)
        if refused is not None and refused[0] == fingerprint:
            problems.append(f"{role} v{version} refused: {refused[1]}{keeping}")
            return current if role == CHAMPION else None
        try:
            value = self.load(folder, version)
        except Exception as exc:  # any load failure keeps the previous version in service
            reason = str(exc) or type(exc).__name__
            self._refused[version] = (fingerprint, reason)
            log.warning("%s: %s v%s refused: %s", self.name, role, version, reason)
            problems.append(f"{role} v{version} refused: {reason}{keeping}")
            return current if role == CHAMPION else None
        self._refused.pop(version, None)
        changes.append(f"{self.name}: {role} v{current.version if current else '-'} -> v{version}")
        return Loaded(version, value, datetime.now(UTC).isoformat())

    def describe(self) -> dict[str, Any]:
        active = self.active
        return {
            "champion": active.champion.version if active.champion else None,
            "challenger": active.challenger.version if active.challenger else None,
            "rollout": {"mode": active.rollout.mode, "share": active.rollout.share},
            "problems": list(self.problems),
        }
