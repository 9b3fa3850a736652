"""Domains beyond the tabular models (search, the assistant) plug into the app as extensions.

An extension module exposes `extension(config: ServingConfig) -> ServingExtension`; the app
registers its controllers, injects the extension object under `dependency_name`, refreshes it
with the models (poll and admin reload) and reports its problems in /health.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from serving.config import ServingConfig

EXTENSION_MODULES: tuple[str, ...] = ("serving.search", "serving.assistant")


class ServingExtension(Protocol):
    name: str
    dependency_name: str
    controllers: list[type]

    def refresh(self) -> list[str]:
        """Load newly published artefacts; return what changed."""
        ...

    def problems(self) -> list[str]:
        """What is wrong right now (refused artefacts, nothing published yet)."""
        ...

    def ready(self) -> bool: ...

    def close(self) -> None: ...


def load_extensions(
    config: ServingConfig, modules: tuple[str, ...] = EXTENSION_MODULES
) -> list[ServingExtension]:
    return [importlib.import_module(name).extension(config) for name in modules]
