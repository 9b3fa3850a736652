"""Online feature tables as core artifacts.

    <online_features_dir>/<name>/versions/<version>/<table>.parquet + manifest.json
    <online_features_dir>/<name>/ROLES.json      champion = the table serving joins

A version is staged, renamed into place whole and only then made champion (logged as a
`publish` decision), so serving never reads a half-written table; serving's slot loads a new
version beside the old one before swapping. Runtime only (polars): serving imports it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from retail_assets.core.store import ArtifactStore, check_name

MANIFEST = "manifest.json"


def publish_feature_set(
    store: ArtifactStore,
    tables: dict[str, pl.DataFrame],
    manifest: dict[str, Any],
    actor: str = "pipeline",
) -> str:
    """Write `tables` as a new version, make it the champion, prune; returns the version."""
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    with store.staging() as staged:
        for table, frame in tables.items():
            frame.write_parquet(staged / f"{check_name(table, 'table')}.parquet")
        document = {
            **manifest,
            "name": store.artifact,
            "version": version,
            "published_at": datetime.now(UTC).isoformat(),
            "tables": {table: frame.height for table, frame in tables.items()},
        }
        (staged / MANIFEST).write_text(json.dumps(document, indent=2, default=str))
        store.publish(version, staged)
    store.promote(
        version,
        action="publish",
        reason=f"tables {', '.join(f'{t}={f.height}' for t, f in tables.items())}",
        actor=actor,
    )
    store.prune()
    return version


def validate_feature_set(folder: Path) -> list[str]:
    """A version is servable when its manifest lists tables whose files are all present."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return [f"unreadable {MANIFEST}: {exc}"]
    missing = [t for t in manifest.get("tables", {}) if not (folder / f"{t}.parquet").is_file()]
    return [f"table file missing: {t}.parquet" for t in missing]


def load_feature_set(folder: Path) -> dict[str, pl.DataFrame]:
    """Every table of a published version (raises with the reason if it is not servable)."""
    problems = validate_feature_set(folder)
    if problems:
        raise ValueError("; ".join(problems))
    return {path.stem: pl.read_parquet(path) for path in sorted(folder.glob("*.parquet"))}


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST).read_text())
