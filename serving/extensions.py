"""Domains beyond the tabular models (search, the assistant) plug into the app as extensions.

An extension module exposes `extension(config: ServingConfig) -> ServingExtension`. The app
(`serving/app.py`, the one place that pairs runtimes with controllers) registers the
extension's controllers, injects the extension object under `dependency_name`, refreshes its
`slots` in the app's one refresh loop (poll and admin reload) with every other slot, calls
`after_refresh` with what changed, and reports its slots' and its own problems in /health.
"""

from __future__ import annotations

from typing import Protocol

from retail_assets.core.slot import Slot
from serving.config import ServingConfig


class ServingExtension(Protocol):
    name: str
    dependency_name: str
    slots: list[Slot]
    """Artifacts this extension serves; the app refreshes them with all the others."""

    def after_refresh(self, changes: list[str]) -> None:
        """Rebuild derived state after the slots refreshed (e.g. drop caches)."""
        ...

    def problems(self) -> list[str]:
        """What is wrong beyond the slots' own problems (e.g. the LLM backend)."""
        ...

    def ready(self) -> bool: ...

    def close(self) -> None: ...


def load_extensions(config: ServingConfig) -> list[ServingExtension]:
    """The extensions of the enabled domains (`config.domains`); a disabled domain's extension
    is not built, so its runtime is never imported and its routes do not exist."""
    from retail_assets.domains import DOMAINS

    wanted = {name for domain in config.domains for name in DOMAINS[domain].extensions}
    extensions: list[ServingExtension] = []
    # Imported here, not at module level: each extension imports its runtime (usearch,
    # llama-cpp) only when the app actually assembles it.
    if "search" in wanted:
        from serving.search import extension as search

        extensions.append(search(config))
    if "assistant" in wanted:
        from serving.assistant import extension as assistant

        extensions.append(assistant(config))
    return extensions
