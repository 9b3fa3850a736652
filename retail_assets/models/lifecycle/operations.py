"""Promotion, rollback and status of models: the operations the promotion asset and the
`retail models` commands share.

The serving pointer (the model's `ArtifactStore` roles) is the source of truth and every change
goes through the store, which validates the bundle first and appends the decision to the one
decision log. The MLflow registry aliases (`champion`, `challenger`) mirror the store: they are
moved right after the store here, and `sync_aliases` repairs them after a change made where
MLflow is not loaded (serving's admin API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retail_assets.artifacts import Artifacts
from retail_assets.core.store import CHALLENGER, CHAMPION, ArtifactStore, RoleError
from retail_assets.models.lifecycle.registry import ModelRegistry
from retail_assets.settings import Settings

# Kept as the lifecycle's error type for callers; pointer refusals come from the core store.
LifecycleError = RoleError


@dataclass
class Lifecycle:
    registry: ModelRegistry
    artifacts: Artifacts

    def store(self, name: str) -> ArtifactStore:
        return self.artifacts.model(name)

    def champion(self, name: str) -> str | None:
        return self.store(name).champion()

    def install_champion(
        self,
        name: str,
        version: str,
        *,
        action: str,
        reason: str,
        actor: str,
        evidence: dict[str, Any] | None = None,
        require_change: bool = False,
    ) -> dict[str, Any]:
        """Make `version` the champion: the store validates its bundle, moves the serving
        pointer and logs the decision; then the MLflow aliases follow."""
        entry = self.store(name).promote(
            str(version),
            reason=reason,
            actor=actor,
            action=action,
            evidence=evidence,
            require_change=require_change,
        )
        self.sync_aliases(name)
        return entry

    def record_refusal(
        self, name: str, version: str, reasons: list[str], evidence: dict[str, Any]
    ) -> dict[str, Any]:
        """Log the refusal; a refused but servable bundle is offered to serving as the
        challenger (for shadow or canary traffic, which an operator switches on)."""
        store = self.store(name)
        entry = store.record(
            "refuse",
            str(version),
            reason="; ".join(reasons),
            actor="promotion_gate",
            evidence=evidence,
        )
        if not store.problems(str(version)):
            store.offer(
                str(version), reason="refused by the gate; servable", actor="promotion_gate"
            )
        self.sync_aliases(name)
        return entry

    def manual_promote(
        self, name: str, version: str, reason: str, actor: str = "cli"
    ) -> dict[str, Any]:
        known = {v["version"] for v in self.registry.versions(name)}
        if str(version) not in known:
            raise LifecycleError(
                f"{name} has no registered version {version}; known: {sorted(known, key=int)}"
            )
        return self.install_champion(
            name, version, action="manual_promote", reason=reason, actor=actor, require_change=True
        )

    def rollback(self, name: str, reason: str, actor: str = "cli") -> dict[str, Any]:
        entry = self.store(name).rollback(reason=reason, actor=actor)
        self.sync_aliases(name)
        return entry

    def sync_aliases(self, name: str) -> list[str]:
        """Point the MLflow aliases at the store's champion and challenger; returns what moved."""
        roles = self.store(name).roles()
        moved = []
        for alias in (CHAMPION, CHALLENGER):
            wanted = roles.version(alias)
            current = self.registry.alias_version(name, alias)
            if wanted == current:
                continue
            if wanted is None:
                self.registry.delete_alias(name, alias)
            else:
                self.registry.set_alias(name, alias, wanted)
            moved.append(f"{name}: MLflow alias {alias} {current or '-'} -> {wanted or '-'}")
        return moved

    def status(self, name: str) -> dict[str, Any]:
        store = self.store(name)
        versions = self.registry.versions(name)
        for entry in versions:
            folder = store.version_dir(entry["version"])
            entry["bundle"] = (
                "valid"
                if folder.exists() and not store.problems(entry["version"])
                else ("invalid" if folder.exists() else "none")
            )
        roles = store.roles()
        return {
            "model": name,
            "champion": roles.version(CHAMPION),
            "challenger": roles.version(CHALLENGER),
            "rollout": roles.rollout,
            "mlflow_champion": self.registry.alias_version(name, CHAMPION),
            "versions": versions,
        }


def lifecycle_for(settings: Settings) -> Lifecycle:
    """The lifecycle on the deployment's registry and stores, from settings alone."""
    return Lifecycle(
        registry=ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir),
        artifacts=Artifacts.from_settings(settings),
    )
