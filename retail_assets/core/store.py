"""The versioned artifact store: one layout, one publish protocol and one pointer format for
everything that is versioned (model bundles, online feature tables, the search index, its
encoder and embeddings, the RAG index, prompt versions, ...).

    <root>/versions/<version>/      one complete version: files written by the producer
    <root>/versions/.incoming-*     a version being staged (never read)
    <root>/ROLES.json               {"champion": {...}, "challenger": {...}, "rollout": {...}}

* Stage -> validate -> publish: a producer writes a version into `staging()`, which renames it
  into place whole, so readers only ever see complete directories; a failure removes the
  staging folder. `assign` validates a version (the store's validator: files, schema, load,
  self-test) before any pointer names it, so a broken artifact never replaces a good one.
* Roles: `champion` is what serves; `challenger` is a candidate that may see shadow or canary
  traffic, as the `rollout` says (mode off / shadow / canary, share, minimum canary time).
  All three live in one JSON file replaced atomically under an exclusive lock, so pointer and
  rollout always change together and two writers never lose each other's change.
* Every pointer or rollout change is appended to the `DecisionLog` with who, why and evidence.
* `prune` keeps the roles, the versions they replaced (rollback targets) and the newest few.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from retail_assets.atomic_files import write_json_atomic
from retail_assets.core.clock import now_iso
from retail_assets.core.decisions import DecisionLog

CHAMPION = "champion"
CHALLENGER = "challenger"
ROLES = (CHAMPION, CHALLENGER)
MODES = ("off", "shadow", "canary")
ROLES_FILE = "ROLES.json"
VERSIONS = "versions"
# Versions kept besides the roles and their rollback targets: serving may still be reading the
# previous champion while it loads the new one, and an operator may want the one before.
DEFAULT_KEEP = 3
_SAFE_NAME = set("abcdefghijklmnopqrstuvwxyz0123456789_-.")

Validator = Callable[[Path], list[str]]


def check_name(value: str, what: str = "name") -> str:
    """Names become path components: refuse anything that could escape the store root."""
    if (
        not value
        or not set(str(value).lower()) <= _SAFE_NAME
        or value.startswith(("-", "."))
        or ".." in value
    ):
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '_', '-' or '.'")
    return value


class ArtifactInvalidError(ValueError):
    """A version that failed validation; `problems` says why."""

    def __init__(self, artifact: str, version: str, problems: list[str]):
        self.artifact = artifact
        self.version = version
        self.problems = problems
        super().__init__(f"{artifact} v{version} is invalid: " + "; ".join(problems))


class RoleError(RuntimeError):
    """A pointer change that cannot be made (says why)."""


@dataclass(frozen=True)
class Rollout:
    """How the challenger sees traffic: not at all, in the shadow of the champion (scored
    after the response, never returned), or as a sticky canary share. `min_seconds` is how long
    a canary must have served before an automatic promotion may decide on it."""

    mode: str = "off"
    share: float = 0.0
    min_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"rollout mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"canary share must be between 0 and 1; got {self.share}")
        if self.min_seconds < 0:
            raise ValueError(f"min_seconds must be >= 0; got {self.min_seconds}")

    def stopped(self) -> Rollout:
        """Mode off, keeping the configured share and minimum time for the next challenger."""
        return Rollout("off", self.share, self.min_seconds)

    def routes_to_challenger(self, entity_id: str) -> bool:
        """Canary routing: a sticky `share` of entities (by a stable hash of the id)."""
        return self.mode == "canary" and bucket(entity_id) < self.share


def bucket(entity_id: str) -> float:
    """A stable position in [0, 1) for an entity: the same id always lands in the same arm."""
    digest = hashlib.blake2b(entity_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


@dataclass(frozen=True)
class Pointer:
    version: str
    since: str
    reason: str = ""
    actor: str = ""


@dataclass(frozen=True)
class Roles:
    champion: Pointer | None = None
    challenger: Pointer | None = None
    rollout: Rollout = field(default_factory=Rollout)

    def version(self, role: str) -> str | None:
        pointer = getattr(self, role)
        return pointer.version if pointer else None

    def to_json(self) -> dict[str, Any]:
        return {
            CHAMPION: asdict(self.champion) if self.champion else None,
            CHALLENGER: asdict(self.challenger) if self.challenger else None,
            "rollout": asdict(self.rollout),
        }

    @classmethod
    def from_json(cls, document: Any) -> Roles:
        if not isinstance(document, dict):
            return cls()

        def pointer(value: Any) -> Pointer | None:
            if not isinstance(value, dict) or not value.get("version"):
                return None
            return Pointer(
                str(value["version"]),
                str(value.get("since", "")),
                str(value.get("reason", "")),
                str(value.get("actor", "")),
            )

        rollout = document.get("rollout") or {}
        return cls(
            champion=pointer(document.get(CHAMPION)),
            challenger=pointer(document.get(CHALLENGER)),
            rollout=Rollout(**{k: v for k, v in rollout.items() if k in Rollout.__annotations__}),
        )


class ArtifactStore:
    """One versioned artifact under `root`, named `artifact` in the decision log."""

    def __init__(
        self,
        root: Path | str,
        artifact: str,
        log: DecisionLog | None = None,
        validator: Validator | None = None,
        keep: int = DEFAULT_KEEP,
    ):
        self.root = Path(root)
        self.artifact = artifact
        self.log = log
        self.validator = validator
        self.keep = keep

    # -- versions ------------------------------------------------------------------------------

    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS

    def version_dir(self, version: str) -> Path:
        return self.versions_dir / check_name(str(version), "version")

    def has(self, version: str) -> bool:
        return self.version_dir(version).is_dir()

    def versions(self) -> list[str]:
        """Published versions, oldest first (by publication time)."""
        if not self.versions_dir.exists():
            return []
        folders = [p for p in self.versions_dir.iterdir() if p.is_dir() and p.name[0] != "."]
        return [p.name for p in sorted(folders, key=lambda p: (p.stat().st_mtime, p.name))]

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder to write a new version into; removed if the block fails and
        whatever `publish` did not take is removed at the end."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.versions_dir, prefix=".incoming-"))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def publish(self, version: str, staged: Path, *, replace: bool = False) -> Path:
        """Move a fully written staging folder into place as `version`. An existing version is
        kept as it is (content-addressed versions are identical) unless `replace`."""
        target = self.version_dir(version)
        if target.exists():
            if not replace:
                return target
            retired = target.with_name(f".retired-{target.name}-{os.getpid()}")
            shutil.rmtree(retired, ignore_errors=True)
            os.replace(target, retired)
            os.replace(staged, target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staged, target)
        return target

    def write(self, version: str, files: dict[str, bytes], *, replace: bool = True) -> Path:
        """Write a complete version from in-memory files (stage + publish)."""
        with self.staging() as staged:
            for name, data in files.items():
                path = staged / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            return self.publish(version, staged, replace=replace)

    def problems(self, version: str) -> list[str]:
        """Every reason `version` must not serve (empty = valid)."""
        folder = self.version_dir(version)
        if not folder.is_dir():
            return [f"{self.artifact} has no version {version}"]
        return self.validator(folder) if self.validator else []

    def write_record(self, version: str, name: str, document: Any) -> None:
        """A JSON record beside a version (checks, evaluation, decision)."""
        write_json_atomic(self.version_dir(version) / f"{check_name(name)}.json", document)

    def read_record(self, version: str, name: str) -> Any:
        path = self.version_dir(version) / f"{check_name(name)}.json"
        return json.loads(path.read_text()) if path.exists() else None

    # -- roles ---------------------------------------------------------------------------------

    @property
    def roles_path(self) -> Path:
        return self.root / ROLES_FILE

    def roles(self) -> Roles:
        try:
            return Roles.from_json(json.loads(self.roles_path.read_text()))
        except FileNotFoundError:
            return Roles()

    def champion(self) -> str | None:
        return self.roles().version(CHAMPION)

    def challenger(self) -> str | None:
        return self.roles().version(CHALLENGER)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _decide(
        self,
        action: str,
        version: str | None,
        change: Callable[[Roles], Roles],
        *,
        reason: str,
        actor: str,
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with self._locked():
            before = self.roles()
            after = change(before)
            if after != before:
                write_json_atomic(self.roles_path, after.to_json())
            entry = {
                "artifact": self.artifact,
                "action": action,
                "version": version,
                "champion_before": before.version(CHAMPION),
                "champion_after": after.version(CHAMPION),
                "challenger_before": before.version(CHALLENGER),
                "challenger_after": after.version(CHALLENGER),
                "rollout": asdict(after.rollout),
                "reason": reason,
                "actor": actor,
                **({"evidence": evidence} if evidence else {}),
            }
            record = self.log.append(entry) if self.log else {"at": now_iso(), **entry}
        return record

    def _validated(self, version: str) -> str:
        version = str(version)
        if not self.has(version):
            known = ", ".join(self.versions()) or "none"
            raise RoleError(f"{self.artifact} has no version {version} (published: {known})")
        problems = self.problems(version)
        if problems:
            raise ArtifactInvalidError(self.artifact, version, problems)
        return version

    def promote(
        self,
        version: str,
        *,
        reason: str,
        actor: str,
        action: str = "promote",
        evidence: dict[str, Any] | None = None,
        require_change: bool = False,
    ) -> dict[str, Any]:
        """Make `version` the champion (validated first). A challenger that is this version
        is retired, and the rollout returns to off (its share and minimum time are kept). `require_change`: refuse when `version`
        already is the champion (a manual promotion that would change nothing)."""
        version = self._validated(version)
        if require_change and self.champion() == version:
            raise RoleError(f"{self.artifact} v{version} is already the champion")

        def change(roles: Roles) -> Roles:
            challenger = roles.challenger
            if challenger is not None and challenger.version == version:
                challenger = None
            return Roles(
                champion=Pointer(version, now_iso(), reason, actor),
                challenger=challenger,
                rollout=roles.rollout if challenger is not None else roles.rollout.stopped(),
            )

        return self._decide(action, version, change, reason=reason, actor=actor, evidence=evidence)

    def offer(
        self,
        version: str,
        *,
        reason: str,
        actor: str,
        rollout: Rollout | None = None,
        action: str = "challenger",
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Make `version` the challenger (validated first), optionally with a rollout."""
        version = self._validated(version)

        def change(roles: Roles) -> Roles:
            return Roles(
                champion=roles.champion,
                challenger=Pointer(version, now_iso(), reason, actor),
                rollout=rollout if rollout is not None else roles.rollout,
            )

        return self._decide(action, version, change, reason=reason, actor=actor, evidence=evidence)

    def retire_challenger(
        self,
        *,
        reason: str,
        actor: str,
        action: str = "retire_challenger",
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        def change(roles: Roles) -> Roles:
            return Roles(champion=roles.champion, challenger=None, rollout=roles.rollout.stopped())

        return self._decide(
            action, self.challenger(), change, reason=reason, actor=actor, evidence=evidence
        )

    def set_rollout(self, rollout: Rollout, *, reason: str, actor: str) -> dict[str, Any]:
        def change(roles: Roles) -> Roles:
            return Roles(champion=roles.champion, challenger=roles.challenger, rollout=rollout)

        return self._decide("rollout", self.challenger(), change, reason=reason, actor=actor)

    def record(
        self,
        action: str,
        version: str | None,
        *,
        reason: str,
        actor: str,
        evidence: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Log a decision that moves no pointer (a refusal, a canary that continues)."""
        return self._decide(
            action, version, lambda roles: roles, reason=reason, actor=actor, evidence=evidence
        )

    def rollback_target(self) -> str | None:
        champion = self.champion()
        if champion is None or self.log is None:
            return None
        return self.log.replaced_by(self.artifact, champion)

    def rollback(self, *, reason: str, actor: str) -> dict[str, Any]:
        """Reinstate the champion the current one replaced (validated first)."""
        current = self.champion()
        if current is None:
            raise RoleError(f"{self.artifact} has no champion to roll back")
        target = self.rollback_target()
        if target is None:
            raise RoleError(
                f"{self.artifact} v{current} replaced no earlier champion; nothing to roll back to"
            )
        version = self._validated(target)

        def change(roles: Roles) -> Roles:
            return Roles(
                champion=Pointer(version, now_iso(), reason, actor),
                challenger=roles.challenger,
                rollout=roles.rollout,
            )

        entry = self._decide(
            "rollback",
            version,
            change,
            reason=reason,
            actor=actor,
            evidence={"rolled_back_from": current},
        )
        entry["rolled_back_from"] = current
        return entry

    # -- housekeeping --------------------------------------------------------------------------

    def prune(self) -> list[str]:
        """Remove old versions: keeps the roles, the champion's rollback target and the newest
        `keep`. Returns what was removed."""
        roles = self.roles()
        protected = {roles.version(CHAMPION), roles.version(CHALLENGER), self.rollback_target()}
        versions = self.versions()
        removed = []
        for version in versions[: max(len(versions) - self.keep, 0)]:
            if version not in protected:
                shutil.rmtree(self.version_dir(version), ignore_errors=True)
                removed.append(version)
        return removed
