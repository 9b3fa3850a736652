"""Semantic product search in the serving app: `GET /v1/search` over the live HNSW index (and
the candidate, for the canary share), with query embedding by the ONNX encoder in-process.

`serving/app.py` pairs it with its controllers; `load_extensions` mounts it.
"""

from __future__ import annotations

from serving.config import ServingConfig
from serving.search.runtime import SearchRuntime


def extension(config: ServingConfig) -> SearchRuntime:
    return SearchRuntime.from_config(config)


__all__ = ["SearchRuntime", "extension"]
