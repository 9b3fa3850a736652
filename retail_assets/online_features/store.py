"""Versioned online feature tables on the filesystem (the embedded default).

    <root>/<name>/versions/<version>/<table>.parquet + manifest.json
    <root>/<name>/CURRENT            the published version (replaced atomically)

A version is written completely under a temporary folder, renamed into place, and only then
named in CURRENT, so serving never reads a half-written table. Serving polls CURRENT and
loads a new version beside the old one before swapping.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from retail_assets.atomic_files import atomic_write
from retail_assets.models.lifecycle.bundle import check_name

KEEP_VERSIONS = 3


class OnlineFeatureStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def current(self, name: str) -> str | None:
        pointer = self.root / check_name(name, "feature set") / "CURRENT"
        return pointer.read_text().strip() if pointer.exists() else None

    def version_dir(self, name: str, version: str) -> Path:
        return (
            self.root
            / check_name(name, "feature set")
            / "versions"
            / check_name(version, "version")
        )

    def publish(self, name: str, tables: dict[str, pl.DataFrame], manifest: dict[str, Any]) -> str:
        """Write `tables` as a new version and make it current; returns the version."""
        version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        versions = self.root / check_name(name, "feature set") / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=versions, prefix=".incoming-"))
        try:
            for table, frame in tables.items():
                frame.write_parquet(staging / f"{check_name(table, 'table')}.parquet")
            document = {
                **manifest,
                "name": name,
                "version": version,
                "published_at": datetime.now(UTC).isoformat(),
                "tables": {table: frame.height for table, frame in tables.items()},
            }
            (staging / "manifest.json").write_text(json.dumps(document, indent=2, default=str))
            os.replace(staging, versions / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        atomic_write(versions.parent / "CURRENT", version.encode())
        self._prune(versions, keep={version})
        return version

    def _prune(self, versions: Path, keep: set[str]) -> None:
        """Keep the newest few versions: serving may still be reading the previous one."""
        published = sorted(p for p in versions.iterdir() if not p.name.startswith("."))
        for old in published[:-KEEP_VERSIONS]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)

    def manifest(self, name: str, version: str) -> dict[str, Any]:
        return json.loads((self.version_dir(name, version) / "manifest.json").read_text())

    def load(self, name: str, version: str | None = None) -> tuple[str, dict[str, pl.DataFrame]]:
        version = version or self.current(name)
        if version is None:
            raise FileNotFoundError(f"no online feature set {name!r} published under {self.root}")
        folder = self.version_dir(name, version)
        tables = {path.stem: pl.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}
        return version, tables


class OnlineFeaturesResource(dg.ConfigurableResource):
    """Where online feature tables are published for serving."""

    root: str

    @property
    def store(self) -> OnlineFeatureStore:
        return OnlineFeatureStore(self.root)
