"""Promotion, rollback and status: the operations the promotion asset, the `retail models`
commands and serving's admin endpoints share, so every path records the same audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg

from retail_assets.models.lifecycle.bundle import (
    BundleInvalidError,
    BundleStore,
    check_name,
    validate_bundle,
)
from retail_assets.models.lifecycle.promotion_log import PromotionLog
from retail_assets.models.lifecycle.registry import CHALLENGER, CHAMPION, ModelRegistry
from retail_assets.settings import Settings


class LifecycleError(RuntimeError):
    """An operation that cannot be carried out (says why)."""


@dataclass
class Lifecycle:
    registry: ModelRegistry
    bundles: BundleStore
    log: PromotionLog

    def champion(self, name: str) -> str | None:
        return self.registry.alias_version(check_name(name), CHAMPION)

    def install_champion(
        self,
        name: str,
        version: str,
        *,
        action: str,
        reason: str,
        actor: str,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Make `version` the champion: validate its bundle, move the MLflow alias, then the
        serving pointer, then record it. A bundle that fails validation changes nothing."""
        check_name(name)
        version = str(version)
        problems = validate_bundle(self.bundles.version_dir(name, version))
        if problems:
            raise BundleInvalidError(name, version, problems)
        before = self.champion(name)
        self.registry.set_alias(name, CHAMPION, version)
        self.bundles.publish_champion(name, version)
        if self.registry.alias_version(name, CHALLENGER) == version:
            self.registry.delete_alias(name, CHALLENGER)
        if self.bundles.challenger(name) == version:
            self.bundles.clear_challenger(name)
        return self.log.append(
            {
                "model": name,
                "action": action,
                "version": version,
                "champion_before": before,
                "champion_after": version,
                "reason": reason,
                "actor": actor,
                **(details or {}),
            }
        )

    def record_refusal(
        self, name: str, version: str, reasons: list[str], details: dict[str, Any]
    ) -> dict[str, Any]:
        """Log the refusal; a refused but servable bundle is offered to serving as the
        challenger (for shadow or canary traffic, which an operator switches on)."""
        champion = self.champion(name)
        if not validate_bundle(self.bundles.version_dir(name, version)):
            self.bundles.publish_challenger(name, version)
        return self.log.append(
            {
                "model": name,
                "action": "refuse",
                "version": str(version),
                "champion_before": champion,
                "champion_after": champion,
                "reason": "; ".join(reasons),
                "actor": "promotion_gate",
                **details,
            }
        )

    def manual_promote(
        self, name: str, version: str, reason: str, actor: str = "cli"
    ) -> dict[str, Any]:
        known = {v["version"] for v in self.registry.versions(name)}
        if str(version) not in known:
            raise LifecycleError(
                f"{name} has no registered version {version}; known: {sorted(known, key=int)}"
            )
        if self.champion(name) == str(version):
            raise LifecycleError(f"{name} v{version} is already the champion")
        return self.install_champion(
            name, version, action="manual_promote", reason=reason, actor=actor
        )

    def rollback(self, name: str, reason: str, actor: str = "cli") -> dict[str, Any]:
        current = self.champion(name)
        if current is None:
            raise LifecycleError(f"{name} has no champion to roll back")
        target = self.log.rollback_target(name, current)
        if target is None:
            raise LifecycleError(
                f"{name} v{current} replaced no earlier champion; nothing to roll back to"
            )
        return self.install_champion(
            name,
            target,
            action="rollback",
            reason=reason,
            actor=actor,
            details={"rolled_back_from": current},
        )

    def status(self, name: str) -> dict[str, Any]:
        versions = self.registry.versions(name)
        for entry in versions:
            folder = self.bundles.version_dir(name, entry["version"])
            entry["bundle"] = (
                "valid"
                if folder.exists() and not validate_bundle(folder)
                else ("invalid" if folder.exists() else "none")
            )
        return {
            "model": name,
            "champion": self.champion(name),
            "challenger": self.registry.alias_version(name, CHALLENGER),
            "serving_pointer": self.bundles.champion(name),
            "versions": versions,
        }


def lifecycle_for(settings: Settings) -> Lifecycle:
    """The lifecycle on the deployment's registry, bundle store and promotion log, built from
    settings alone (no Dagster definitions, so no dbt executable is needed)."""
    return Lifecycle(
        registry=ModelRegistry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir),
        bundles=BundleStore(settings.bundles_dir),
        log=PromotionLog(settings.promotion_log_path),
    )


class LifecycleResource(dg.ConfigurableResource):
    """Where models are tracked (MLflow), bundled (for serving) and their promotions logged."""

    tracking_uri: str
    artifact_root: str
    bundle_root: str
    promotion_log: str

    def lifecycle(self) -> Lifecycle:
        return Lifecycle(
            registry=ModelRegistry(self.tracking_uri, Path(self.artifact_root)),
            bundles=BundleStore(self.bundle_root),
            log=PromotionLog(self.promotion_log),
        )
