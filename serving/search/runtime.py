"""The search extension's state: the live and candidate index versions, their query encoders,
the canary share and a small LRU of query embeddings.

`refresh()` (the app's poll and admin reload) reads the LIVE and CANDIDATE pointers and the
rollout file the pipeline writes. A new version is loaded beside the old one and validated
(files consistent, the blocking ANN check passed, not refused by the gate, the graph holds
the stored embeddings) before one reference swap makes it visible; requests take that reference once, so
in-flight requests finish on the version they started with. A version that fails validation
is refused and the previous one keeps serving (reported by /health).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from retail_assets.search.catalog import PRODUCT_MAX_TOKENS
from retail_assets.search.encoder import TextEncoder
from retail_assets.search.index import Filters, LoadedIndex
from retail_assets.search.store import SearchRollout, SearchStore
from serving.config import ServingConfig
from serving.metrics import LATENCY_BUCKETS
from serving.rollout import bucket

log = logging.getLogger("retail.serving.search")

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


@dataclass(frozen=True)
class Active:
    """What requests see; replaced as a whole on every swap."""

    live: ServedIndex | None = None
    candidate: ServedIndex | None = None
    rollout: SearchRollout = field(default_factory=SearchRollout)


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

    def __init__(self, root: Path, cache_size: int = DEFAULT_CACHE_SIZE):
        from serving.search.controllers import SearchAdminController, SearchController

        self.controllers = [SearchController, SearchAdminController]
        self.store = SearchStore(root)
        self.cache = QueryCache(cache_size)
        self.active = Active(rollout=self._read_rollout([]))
        self._refused: dict[str, tuple[tuple[float, ...], str]] = {}
        self._problems: list[str] = []
        self._encoders: dict[str, TextEncoder] = {}
        self._lock = threading.Lock()
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
        return cls(config.search_dir, cache_size=cache_size)

    # -- extension protocol -----------------------------------------------------------------

    def refresh(self) -> list[str]:
        with self._lock:
            changes: list[str] = []
            problems: list[str] = []
            rollout = self._read_rollout(problems)
            live = self._resolve("live", self.store.live(), self.active.live, changes, problems)
            candidate = self._resolve(
                "candidate", self.store.candidate(), self.active.candidate, changes, problems
            )
            if live is None:
                problems.append("no live search index loaded (none published or all refused)")
            if rollout != self.active.rollout:
                changes.append(
                    f"search: canary share {self.active.rollout.canary_share} -> "
                    f"{rollout.canary_share}"
                )
            self.active = Active(live=live, candidate=candidate, rollout=rollout)
            used = {s.encoder_id for s in (live, candidate) if s is not None}
            self._encoders = {k: v for k, v in self._encoders.items() if k in used}
            self._problems = problems
            for metrics in self._metrics.values():
                metrics.canary_share.set(rollout.canary_share if candidate else 0.0)
            return changes

    def problems(self) -> list[str]:
        return list(self._problems)

    def ready(self) -> bool:
        return self.active.live is not None

    def close(self) -> None:
        with self._lock:
            self.active = Active(rollout=self.active.rollout)
            self._encoders = {}

    # -- loading ------------------------------------------------------------------------------

    def _read_rollout(self, problems: list[str]) -> SearchRollout:
        try:
            return self.store.rollout()
        except (ValueError, TypeError) as exc:
            problems.append(f"rollout settings ignored: {exc}")
            return SearchRollout()

    def _resolve(
        self,
        role: str,
        version: str | None,
        current: ServedIndex | None,
        changes: list[str],
        problems: list[str],
    ) -> ServedIndex | None:
        if version is None:
            if current is not None:
                changes.append(f"search: {role} {current.version} retired")
            return None
        if current is not None and current.version == version:
            return current
        fingerprint = self._fingerprint(version)
        refused = self._refused.get(version)
        if refused is not None and refused[0] == fingerprint:
            problems.append(self._refusal(role, version, current))
            return current if role == "live" else None
        try:
            served = self._load(version)
        except Exception as exc:  # any load failure keeps what was serving
            self._refused[version] = (fingerprint, str(exc))
            log.warning("search index %s refused: %s", version, exc)
            problems.append(self._refusal(role, version, current))
            return current if role == "live" else None
        changes.append(f"search: {role} {current.version if current else '-'} -> {version}")
        return served

    def _refusal(self, role: str, version: str, current: ServedIndex | None) -> str:
        keeping = f"; still serving {current.version}" if current and role == "live" else ""
        return f"{role} index {version} refused: {self._refused[version][1]}{keeping}"

    def _fingerprint(self, version: str) -> tuple[float, ...]:
        """Changes when the version is rebuilt or re-judged, so a refusal is retried then."""
        try:
            folder = self.store.version_dir(version)
        except ValueError:  # not a valid version name: refused by _load with the reason
            return ()
        return tuple(
            (folder / name).stat().st_mtime if (folder / name).exists() else 0.0
            for name in ("manifest.json", "checks.json", "decision.json")
        )

    def _load(self, version: str) -> ServedIndex:
        folder = self.store.version_dir(version)
        checks = self.store.read_record(version, "checks")
        if not checks or not checks.get("passed"):
            raise ValueError("it has not passed the blocking ANN recall check")
        decision = self.store.read_record(version, "decision")
        if decision and decision.get("status") == "refused":
            raise ValueError(f"the promotion gate refused it: {decision.get('reason')}")
        index = LoadedIndex(folder)
        problems = index.self_test()
        if problems:
            raise ValueError("; ".join(problems))
        encoder_info = index.manifest["encoder"]
        encoder_id = f"{encoder_info['version']}/{encoder_info['file']}"
        encoder = self._encoders.get(encoder_id)
        if encoder is None:
            encoder = TextEncoder(
                self.store.encoder_root / encoder_info["version"],
                encoder_info["file"],
                threads=1,
                max_tokens=PRODUCT_MAX_TOKENS,
            )
            encoder.encode(["warm-up query"])
            self._encoders[encoder_id] = encoder
        return ServedIndex(index, encoder, encoder_id, datetime.now(UTC).isoformat())

    # -- requests -----------------------------------------------------------------------------

    def metrics(self, registry) -> SearchMetrics:
        key = id(registry)
        metrics = self._metrics.get(key)
        if metrics is None:
            with self._metrics_lock:
                metrics = self._metrics.get(key)
                if metrics is None:
                    metrics = SearchMetrics(registry)
                    active = self.active
                    metrics.canary_share.set(
                        active.rollout.canary_share if active.candidate else 0.0
                    )
                    self._metrics[key] = metrics
        return metrics

    @staticmethod
    def arm(active: Active, routing_key: str) -> str:
        """Sticky: the same session (or user, or query) always lands in the same arm."""
        if active.candidate is not None and bucket(f"search:{routing_key}") < (
            active.rollout.canary_share
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
        if active.live is None:
            return None
        normalized = normalize_query(query)
        arm = self.arm(active, routing_key or normalized)
        served = active.candidate if arm == "candidate" else active.live
        vector, cached = self.embed(served, query, normalized)
        rows, scores = served.index.search(vector, k, filters)
        with self._count_lock:
            self.requests[arm] += 1
        return SearchOutcome(served, arm, rows, scores, cached, time.perf_counter() - started)

    def status(self) -> dict[str, Any]:
        active = self.active

        def describe(served: ServedIndex | None) -> dict[str, Any] | None:
            if served is None:
                return None
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
            "live": describe(active.live),
            "candidate": describe(active.candidate),
            "canary_share": active.rollout.canary_share,
            "min_canary_seconds": active.rollout.min_canary_seconds,
            "requests": dict(self.requests),
            "query_cache": {
                "size": self.cache.size,
                "entries": len(self.cache),
                "hits": self.cache.hits,
                "misses": self.cache.misses,
            },
            "problems": self.problems(),
        }
