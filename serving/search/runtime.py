"""The search extension's state: the index store as a core slot (champion = live index,
challenger = canary candidate, with the rollout's canary share), each version with the query
encoder it was built with, and a small LRU of query embeddings.

The app's one refresh loop refreshes the slot: a new version is loaded beside the old one and
validated (the store's validator: files, the blocking ANN check passed, not refused by the
gate; then the graph's self-test) before one reference swap makes it visible; requests take
that reference once, so in-flight requests finish on the version they started with. A
version that fails is refused and the previous one keeps serving (reported by /health).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from retail_assets.core.slot import Active, Slot
from retail_assets.core.store import ArtifactStore
from retail_assets.search.catalog import PRODUCT_MAX_TOKENS
from retail_assets.search.encoder import TextEncoder
from retail_assets.search.index import Filters, LoadedIndex
from serving.config import ServingConfig
from serving.metrics import LATENCY_BUCKETS

DEFAULT_CACHE_SIZE = 4096


@dataclass(frozen=True)
class ServedIndex:
    """An index version with the encoder its queries must be embedded with."""

    index: LoadedIndex
    encoder: TextEncoder
    encoder_id: str
    loaded_at: str

    @property
    def version(self) -> str:
        return self.index.version


@dataclass
class SearchOutcome:
    served: ServedIndex
    arm: str
    rows: np.ndarray
    scores: np.ndarray
    cached_query: bool
    seconds: float


class QueryCache:
    """LRU of query embeddings per encoder (0 entries disables it)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        if self.size <= 0:
            return None
        with self._lock:
            vector = self._items.get(key)
            if vector is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return vector

    def put(self, key: tuple[str, str], vector: np.ndarray) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = vector
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def normalize_query(q: str) -> str:
    # The encoder's tokenizer is uncased and collapses whitespace, so these are the same query.
    return " ".join(q.lower().split())


class SearchMetrics:
    """Search series in the app's Prometheus registry."""

    def __init__(self, registry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.requests = Counter(
            "retail_search_requests",
            "Search requests by index version and rollout arm (live, candidate).",
            ["version", "arm"],
            registry=registry,
        )
        self.latency = Histogram(
            "retail_search_latency_seconds",
            "Query embedding + index search time per request, by arm.",
            ["arm"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.cache = Counter(
            "retail_search_query_cache",
            "Query embedding cache lookups by result (hit, miss).",
            ["result"],
            registry=registry,
        )
        self.canary_share = Gauge(
            "retail_search_canary_share",
            "Share of search sessions routed to the candidate index (0 without a candidate).",
            registry=registry,
        )


class SearchRuntime:
    """The serving extension for product search (see serving/extensions.py)."""

    name = "search"
    dependency_name = "search_service"

    def __init__(
        self, store: ArtifactStore, encoders: ArtifactStore, cache_size: int = DEFAULT_CACHE_SIZE
    ):
        self.store = store
        self.encoders = encoders
        self.cache = QueryCache(cache_size)
        self.slot: Slot[ServedIndex] = Slot("search", store, self._load, with_challenger=True)
        self.slots = [self.slot]
        self._encoder_cache: dict[str, TextEncoder] = {}
        self._metrics: dict[int, SearchMetrics] = {}
        self._metrics_lock = threading.Lock()
        self.requests = {"live": 0, "candidate": 0}
        self._count_lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ServingConfig) -> SearchRuntime:
        size = os.environ.get("RETAIL_SEARCH_QUERY_CACHE_SIZE", str(DEFAULT_CACHE_SIZE))
        try:
            cache_size = int(size)
        except ValueError:
            raise ValueError(
                f"RETAIL_SEARCH_QUERY_CACHE_SIZE must be an integer; got {size!r}"
            ) from None
        artifacts = config.artifacts
        return cls(artifacts.search_index(), artifacts.search_encoder(), cache_size=cache_size)

    # -- extension protocol -----------------------------------------------------------------

    @property
    def active(self) -> Active[ServedIndex]:
        return self.slot.active

    def after_refresh(self, changes: list[str]) -> None:
        active = self.active
        used = {
            loaded.value.encoder_id
            for loaded in (active.champion, active.challenger)
            if loaded is not None
        }
        self._encoder_cache = {k: v for k, v in self._encoder_cache.items() if k in used}
        share = self._canary_share(active)
        for metrics in self._metrics.values():
            metrics.canary_share.set(share)

    def problems(self) -> list[str]:
        return []

    def ready(self) -> bool:
        return self.slot.ready

    def close(self) -> None:
        self._encoder_cache = {}

    # -- loading ------------------------------------------------------------------------------

    def _load(self, folder: Path, version: str) -> ServedIndex:
        problems = self.store.problems(version)
        if problems:
            raise ValueError("; ".join(problems))
        index = LoadedIndex(folder)
        problems = index.self_test()
        if problems:
            raise ValueError("; ".join(problems))
        encoder_info = index.manifest["encoder"]
        encoder_id = f"{encoder_info['version']}/{encoder_info['file']}"
        encoder = self._encoder_cache.get(encoder_id)
        if encoder is None:
            encoder = TextEncoder(
                self.encoders.version_dir(encoder_info["version"]),
                encoder_info["file"],
                threads=1,
                max_tokens=PRODUCT_MAX_TOKENS,
            )
            encoder.encode(["warm-up query"])
            self._encoder_cache[encoder_id] = encoder
        return ServedIndex(index, encoder, encoder_id, datetime.now(UTC).isoformat())

    # -- requests -----------------------------------------------------------------------------

    @staticmethod
    def _canary_share(active: Active[ServedIndex]) -> float:
        canary = active.challenger is not None and active.rollout.mode == "canary"
        return active.rollout.share if canary else 0.0

    def metrics(self, registry) -> SearchMetrics:
        key = id(registry)
        metrics = self._metrics.get(key)
        if metrics is None:
            with self._metrics_lock:
                metrics = self._metrics.get(key)
                if metrics is None:
                    metrics = SearchMetrics(registry)
                    metrics.canary_share.set(self._canary_share(self.active))
                    self._metrics[key] = metrics
        return metrics

    @staticmethod
    def arm(active: Active[ServedIndex], routing_key: str) -> str:
        """Sticky: the same session (or user, or query) always lands in the same arm."""
        if active.challenger is not None and active.rollout.routes_to_challenger(
            f"search:{routing_key}"
        ):
            return "candidate"
        return "live"

    def embed(self, served: ServedIndex, query: str, normalized: str) -> tuple[np.ndarray, bool]:
        """The query's embedding; the cache is keyed by its normalized form."""
        key = (served.encoder_id, normalized)
        vector = self.cache.get(key)
        if vector is not None:
            return vector, True
        vector = served.encoder.encode([query])[0]
        self.cache.put(key, vector)
        return vector, False

    def search(
        self, query: str, k: int, filters: Filters, routing_key: str | None
    ) -> SearchOutcome | None:
        """None while no live index is loaded."""
        started = time.perf_counter()
        active = self.active
        if active.champion is None:
            return None
        normalized = normalize_query(query)
        arm = self.arm(active, routing_key or normalized)
        served = (active.challenger if arm == "candidate" else active.champion).value
        vector, cached = self.embed(served, query, normalized)
        rows, scores = served.index.search(vector, k, filters)
        with self._count_lock:
            self.requests[arm] += 1
        return SearchOutcome(served, arm, rows, scores, cached, time.perf_counter() - started)

    def status(self) -> dict[str, Any]:
        active = self.active

        def describe(loaded) -> dict[str, Any] | None:
            if loaded is None:
                return None
            served = loaded.value
            manifest = served.index.manifest
            return {
                "version": served.version,
                "products": served.index.size,
                "encoder": served.encoder_id,
                "built_at": manifest.get("built_at"),
                "build_mode": manifest.get("build", {}).get("mode"),
                "loaded_at": served.loaded_at,
            }

        return {
            "live": describe(active.champion),
            "candidate": describe(active.challenger),
            "canary_share": self._canary_share(active),
            "min_canary_seconds": active.rollout.min_seconds,
            "requests": dict(self.requests),
            "query_cache": {
                "size": self.cache.size,
                "entries": len(self.cache),
                "hits": self.cache.hits,
                "misses": self.cache.misses,
            },
            "problems": list(self.slot.problems),
        }
