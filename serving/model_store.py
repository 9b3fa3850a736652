"""Loaded model bundles with atomic hot swap.

Each model has a slot holding the champion (and, if published, the challenger) as immutable
`LoadedModel` objects. A request takes a reference to the current object once and uses it to
the end, so swapping the slot's reference is atomic for requests: in-flight requests finish on
the old version, new ones get the new one. A bundle is loaded and self-tested *before* it is
swapped in; if that fails, the slot keeps serving what it had and reports itself degraded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from retail_assets.models.lifecycle.bundle import (
    BundleStore,
    LoadedBundle,
    check_name,
    load_checked_bundle,
)
from serving.features import Encoder


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    bundle: LoadedBundle
    loaded_at: str

    @cached_property
    def encoder(self) -> Encoder:
        """Raw request fields -> this model's input row (built once per loaded version)."""
        return Encoder(self.bundle.signature)

    @property
    def threshold(self) -> float | None:
        return self.bundle.signature.get("decision_threshold")


@dataclass
class ModelSlot:
    name: str
    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None
    degraded: list[str] = field(default_factory=list)


class ModelStore:
    def __init__(self, bundle_root: Path, models: tuple[str, ...]):
        self.bundles = BundleStore(bundle_root)
        self.slots = {name: ModelSlot(check_name(name)) for name in models}
        self._lock = threading.Lock()

    def slot(self, name: str) -> ModelSlot:
        return self.slots[name]

    def _load(self, name: str, version: str) -> LoadedModel:
        bundle, problems = load_checked_bundle(self.bundles.version_dir(name, version))
        if bundle is None:
            raise ValueError("; ".join(problems))
        return LoadedModel(name, version, bundle, datetime.now(UTC).isoformat())

    def refresh(self) -> list[str]:
        """Load whatever the pipeline has published since the last look; returns what changed."""
        changes: list[str] = []
        with self._lock:
            for name, slot in self.slots.items():
                problems: list[str] = []
                for role, version in (
                    ("champion", self.bundles.champion(name)),
                    ("challenger", self.bundles.challenger(name)),
                ):
                    current = getattr(slot, role)
                    if version is None:
                        if role == "challenger" and current is not None:
                            slot.challenger = None
                            changes.append(f"{name}: challenger v{current.version} retired")
                        elif role == "champion":
                            problems.append("no champion published yet")
                        continue
                    if current is not None and current.version == version:
                        continue
                    try:
                        loaded = self._load(name, version)
                    except Exception as exc:  # any load failure keeps the previous model
                        keeping = f"; still serving v{current.version}" if current else ""
                        problems.append(f"{role} v{version} refused: {exc}{keeping}")
                        continue
                    setattr(slot, role, loaded)
                    changes.append(
                        f"{name}: {role} v{current.version if current else '-'} -> v{version}"
                    )
                slot.degraded = problems
        return changes
