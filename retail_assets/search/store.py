"""Search's artifacts on the core store (see `retail_assets/artifacts.py`):

    <search_dir>/encoder/...                    the ONNX text encoder (encoder_store.py)
    <search_dir>/embeddings/<encoder key>/...   embedding snapshots by catalog hash;
                                                champion = the newest
    <search_dir>/indexes/versions/<version>/    index.usearch, vectors.npy, products.parquet,
                                                manifest.json + records checks.json,
                                                evaluation.json, decision.json
    <search_dir>/indexes/ROLES.json             champion = live, challenger = canary
                                                candidate, rollout = canary share and the
                                                minimum canary time
    <search_dir>/eval/<version>.json            search eval sets (deterministic from the catalog)

Every promotion, canary start, refusal and rollback goes to the one decision log.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retail_assets.artifacts import Artifacts
from retail_assets.core.store import ArtifactStore, Rollout, check_name

# Canary policy while no operator has set one (PUT /v1/admin/search/rollout): a tenth of the
# search sessions see a new index, for at least ten minutes before the click-through test
# (search_monitoring) may decide it: a few minutes of clicks say more about the hour than
# about the index.
DEFAULT_CANARY_SHARE = 0.1
DEFAULT_MIN_CANARY_SECONDS = 600.0
KEEP_SNAPSHOTS = 2


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number; got {value!r}") from None


def canary_policy(store: ArtifactStore) -> Rollout:
    """The canary share and the minimum canary time (before the click-through test may
    decide; 0 disables the canary) for a new index: what an operator set on the
    store's rollout, else RETAIL_SEARCH_CANARY_SHARE (0.1) and RETAIL_SEARCH_CANARY_MIN_SECONDS
    (600)."""
    configured = store.roles().rollout
    if configured != Rollout():
        return Rollout("canary", configured.share, configured.min_seconds)
    return Rollout(
        "canary",
        _env_float("RETAIL_SEARCH_CANARY_SHARE", DEFAULT_CANARY_SHARE),
        _env_float("RETAIL_SEARCH_CANARY_MIN_SECONDS", DEFAULT_MIN_CANARY_SECONDS),
    )


def eval_set_path(search_dir: Path, version: str) -> Path:
    return Path(search_dir) / "eval" / f"{check_name(version, 'eval set version')}.json"


def publish_snapshot(store: ArtifactStore, snapshot: str, staged: Path) -> Path:
    """Publish an embeddings snapshot (reused if that catalog hash exists) as the champion."""
    store.keep = KEEP_SNAPSHOTS
    path = store.publish(snapshot, staged)
    if store.champion() != snapshot:
        store.promote(snapshot, action="publish", reason="embeddings snapshot", actor="pipeline")
    store.prune()
    return path


def current_snapshot(store: ArtifactStore) -> Path | None:
    version = store.champion()
    return store.version_dir(version) if version and store.has(version) else None


@dataclass(frozen=True)
class SearchStores:
    """Search's stores of one deployment, in search's words: the live index is the index
    store's champion, the canary candidate its challenger."""

    indexes: ArtifactStore
    encoders: ArtifactStore
    artifacts: Artifacts

    @classmethod
    def of(cls, artifacts: Artifacts) -> SearchStores:
        return cls(artifacts.search_index(), artifacts.search_encoder(), artifacts)

    @property
    def search_dir(self) -> Path:
        return Path(self.artifacts.search_dir)

    def embeddings(self, encoder_key: str) -> ArtifactStore:
        return self.artifacts.search_embeddings(encoder_key)

    def live(self) -> str | None:
        return self.indexes.champion()

    def candidate(self) -> str | None:
        return self.indexes.challenger()

    def manifest(self, version: str) -> dict[str, Any]:
        return json.loads((self.indexes.version_dir(version) / "manifest.json").read_text())

    def decisions(self) -> list[dict[str, Any]]:
        return self.artifacts.log.entries(self.indexes.artifact)

    def quantization(self, encoder_version: str) -> dict[str, Any] | None:
        return self.encoders.read_record(encoder_version, "quantization")
