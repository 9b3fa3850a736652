"""Model bundles in serving: each model is a core `Slot` over its artifact store, holding the
champion and (if published) the challenger as immutable `ServedModel`s.

A bundle is loaded and self-tested (`load_checked_bundle`) *before* it is swapped in; if that
fails the slot keeps serving what it had and reports itself degraded. A request takes the
slot's `active` reference once, so in-flight requests finish on the version they started with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from retail_assets.artifacts import Artifacts
from retail_assets.core.slot import Slot
from retail_assets.models.lifecycle.bundle import LoadedBundle, load_checked_bundle
from serving.encoding import Encoder


@dataclass(frozen=True)
class ServedModel:
    name: str
    version: str
    bundle: LoadedBundle
    loaded_at: str

    @cached_property
    def encoder(self) -> Encoder:
        """Raw request fields -> this model's input row (built once per loaded version)."""
        return Encoder(self.bundle.signature)

    @property
    def signature(self) -> dict:
        return self.bundle.signature

    @property
    def threshold(self) -> float | None:
        return self.bundle.signature.get("decision_threshold")


def model_slot(artifacts: Artifacts, name: str) -> Slot[ServedModel]:
    def load(folder: Path, version: str) -> ServedModel:
        bundle, problems = load_checked_bundle(folder)
        if bundle is None:
            raise ValueError("; ".join(problems))
        return ServedModel(name, version, bundle, datetime.now(UTC).isoformat())

    return Slot(name, artifacts.model(name), load, with_challenger=True)
