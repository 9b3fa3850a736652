"""The assistant's serving runtime: the current RAG index and production prompt, hot-swapped.

`refresh()` (called by the app's poller and by /v1/admin/reload) looks at the index pointer
(`$RETAIL_ASSISTANT_DIR/index/CURRENT`) and the prompt pointer
(`$RETAIL_ASSISTANT_DIR/prompts/PRODUCTION.json`, written when the MLflow alias `production`
moves). A new version is loaded beside the one in service and swapped in by replacing one
reference; requests in flight finish on the snapshot they started with. A version that fails to
load is refused: the previous one stays in service and /health reports the problem.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from retail_assets.assistant.assistant import ShoppingAssistant
from retail_assets.assistant.index import RagIndexStore
from retail_assets.assistant.llm import LLMBackend, backend_from_env
from retail_assets.assistant.prompts import POINTER_FILE, PromptTemplate, read_pointer
from serving.config import ServingConfig

log = logging.getLogger("retail.serving")


@dataclass(frozen=True)
class AssistantSnapshot:
    assistant: ShoppingAssistant
    index_version: str
    prompt_version: str
    prompt_sha: str
    loaded_at: str


class AssistantExtension:
    name = "assistant"
    dependency_name = "assistant"

    def __init__(self, config: ServingConfig, backend: LLMBackend | None = None):
        from serving.assistant.controller import AssistantController

        self.controllers = [AssistantController]
        self.config = config
        self.store = RagIndexStore(Path(config.assistant_dir) / "index")
        self.prompt_dir = Path(config.assistant_dir) / "prompts"
        self._backend = backend
        self._backend_error: str | None = None
        self._lock = threading.Lock()
        self._problems: dict[str, str] = {}
        self.current: AssistantSnapshot | None = None

    @property
    def backend(self) -> LLMBackend | None:
        if self._backend is None and self._backend_error is None:
            try:
                self._backend = backend_from_env()
            except Exception as exc:  # a misconfigured endpoint must not take the app down
                self._backend_error = f"LLM backend: {exc}"
        return self._backend

    def refresh(self) -> list[str]:
        with self._lock:  # the poller and an admin reload may race
            return self._refresh()

    def _refresh(self) -> list[str]:
        version = self.store.current()
        prompt = self._read_prompt()
        if version is None:
            self._problems["index"] = f"no RAG index published under {self.store.root}"
            return []
        if prompt is None:
            self._problems["prompt"] = (
                f"no production prompt published ({self.prompt_dir / POINTER_FILE})"
            )
            return []
        self._problems.pop("prompt", None)
        current = self.current
        if (
            current is not None
            and current.index_version == version
            and current.prompt_version == prompt.version
            and current.prompt_sha == prompt.sha
        ):
            return []
        backend = self.backend
        if backend is None:
            self._problems["backend"] = self._backend_error or "no LLM backend"
            return []
        try:
            if current is not None and current.index_version == version:
                index = current.assistant.index  # only the prompt changed
            else:
                index = self.store.load(self.config.search_dir, version)
            assistant = ShoppingAssistant(index, prompt, backend)
        except Exception as exc:
            self._problems["index"] = f"refused RAG index {version}: {exc}"
            log.warning("assistant: refused index %s: %s", version, exc)
            return []
        self._problems.pop("index", None)
        self.current = AssistantSnapshot(
            assistant=assistant,
            index_version=version,
            prompt_version=str(prompt.version),
            prompt_sha=prompt.sha,
            loaded_at=datetime.now(UTC).isoformat(),
        )
        changes = []
        if current is None or current.index_version != version:
            changes.append(f"assistant index {version}")
        if (
            current is None
            or current.prompt_version != prompt.version
            or current.prompt_sha != prompt.sha
        ):
            changes.append(f"assistant prompt v{prompt.version} ({prompt.name})")
        return changes

    def _read_prompt(self) -> PromptTemplate | None:
        try:
            return read_pointer(self.prompt_dir)
        except (OSError, ValueError, KeyError) as exc:
            self._problems["prompt"] = f"unreadable prompt pointer: {exc}"
            return None

    def problems(self) -> list[str]:
        return list(self._problems.values())

    def ready(self) -> bool:
        return self.current is not None

    def close(self) -> None:
        self.current = None
