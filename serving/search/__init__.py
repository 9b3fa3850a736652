"""Semantic product search in the serving app: `GET /v1/search` over the live HNSW index (and
the candidate, for the canary share), with query embedding by the ONNX encoder in-process.

Register it by adding "serving.search" to `serving.extensions.EXTENSION_MODULES`.
"""

from __future__ import annotations

from serving.config import ServingConfig
from serving.search.runtime import SearchRuntime


def extension(config: ServingConfig) -> SearchRuntime:
    return SearchRuntime.from_config(config)


__all__ = ["SearchRuntime", "extension"]
