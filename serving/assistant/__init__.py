"""The shopping assistant as a serving extension: `POST /v1/assistant/chat` and
`GET /v1/assistant/status`, over the current RAG index and the production prompt version,
hot-swapped in the app's refresh loop (see runtime.py)."""

from __future__ import annotations

from serving.config import ServingConfig


def extension(config: ServingConfig):
    from serving.assistant.runtime import AssistantExtension

    return AssistantExtension(config)
