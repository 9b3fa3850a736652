"""The assistant's serving runtime: the RAG index and the production prompt as two core slots
(refreshed in the app's one loop), combined into one snapshot that requests take whole.

A new index or prompt version is loaded beside the one in service (the slot validates it: the
index's node count and encoder hash, the prompt's template) and the snapshot is rebuilt and
swapped by one reference, so requests in flight finish on the snapshot they started with. A
version that fails to load is refused by its slot: the previous one stays in service and
/health reports the problem.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from retail_assets.assistant.assistant import ShoppingAssistant
from retail_assets.assistant.index import RagIndex
from retail_assets.assistant.llm import LLMBackend, backend_from_env
from retail_assets.assistant.prompts import PromptTemplate, load_prompt_version
from retail_assets.core.slot import Slot
from serving.config import ServingConfig


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
        artifacts = config.artifacts
        encoders = artifacts.search_encoder()
        self.index = Slot(
            "assistant_index",
            artifacts.rag_index(),
            lambda folder, version: RagIndex.load(folder, encoders),
        )
        self.prompt = Slot("assistant_prompt", artifacts.prompts(), _load_prompt)
        self.slots = [self.index, self.prompt]
        self._backend = backend
        self._backend_error: str | None = None
        self._lock = threading.Lock()
        self.current: AssistantSnapshot | None = None

    @property
    def backend(self) -> LLMBackend | None:
        if self._backend is None and self._backend_error is None:
            try:
                self._backend = backend_from_env()
            except Exception as exc:  # a misconfigured endpoint must not take the app down
                self._backend_error = f"LLM backend: {exc}"
        return self._backend

    def after_refresh(self, changes: list[str]) -> None:
        """Rebuild the snapshot when the index or the prompt in service changed."""
        with self._lock:
            index, prompt = self.index.champion, self.prompt.champion
            backend = self.backend
            if index is None or prompt is None or backend is None:
                return
            current = self.current
            if (
                current is not None
                and current.index_version == index.version
                and current.prompt_version == prompt.version
                and current.prompt_sha == prompt.value.sha
            ):
                return
            self.current = AssistantSnapshot(
                assistant=ShoppingAssistant(index.value, prompt.value, backend),
                index_version=index.version,
                prompt_version=prompt.version,
                prompt_sha=prompt.value.sha,
                loaded_at=datetime.now(UTC).isoformat(),
            )

    def problems(self) -> list[str]:
        return [self._backend_error] if self._backend_error else []

    def ready(self) -> bool:
        return self.current is not None

    def close(self) -> None:
        self.current = None


def _load_prompt(folder: Path, version: str) -> PromptTemplate:
    template = load_prompt_version(folder)
    template.version = version
    return template
