"""Versioned usearch HNSW indices (cosine) over product embeddings: full and incremental
builds, loading with a self-test, and filtered search.

A version folder holds `index.usearch` (the HNSW graph with its vectors), `vectors.npy` (the
embeddings, row-aligned with `products.parquet`; exact search and the recall check use them)
and `manifest.json`. An incremental build starts from a copy of an earlier version's graph and
only removes the keys of products that left the catalog or whose text changed and adds the
new and changed ones; every other vector is reused as it is.
"""

from __future__ import annotations

# onnxruntime must be imported before usearch in every process: the other order segfaults
# with some usearch wheels (see pyproject.toml).
import onnxruntime  # noqa: F401  isort: skip

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from usearch.index import Index

from retail_assets.search.catalog import PRODUCT_COLUMNS
from retail_assets.search.encoder import EMBEDDING_DIM

INDEX_FILE = "index.usearch"
VECTORS_FILE = "vectors.npy"
PRODUCTS_FILE = "products.parquet"
MANIFEST_FILE = "manifest.json"

# Catalogs are clusters of near-identical variants (colour, brand, edition), which HNSW finds
# hard: on 100k synthesized variants M=16/ef=96 reached recall@10 0.81 against exact search,
# M=32/ef_construction=256/ef=512 0.96-0.98 (benchmarks/bench_search.py). The graph stores
# half-precision vectors: at 100k the same recall (0.965 vs 0.966 in f32) at 0.69 instead of
# 0.97 ms a query and half the memory; int8 lost too much (0.79) (`bench_search.py
# --graph-precision`). Exact search and the recall check use the float32 embeddings.
HNSW_PARAMS: dict[str, Any] = {
    "connectivity": 32,
    "expansion_add": 256,
    "expansion_search": 512,
    "dtype": "f16",
}
# The graph's copy of an embedding differs from the float32 one by f16 rounding (< 5e-4 for
# unit vectors); anything further off is a different vector.
STORED_VECTOR_TOLERANCE = 2e-3
# Full builds insert in this seeded order: inserting clustered SKUs in catalog order gave a
# worse graph (recall 0.94 vs 0.96 at 20k products).
INSERT_SEED = 0
# Graphs up to this many products are built on one thread. usearch's concurrent inserts make
# the graph depend on thread timing; on a 28-product catalog 5% of two-thread builds left a
# product that its own embedding could not reach (the self-test failed at random), while
# single-thread builds are reproducible: the same version always gives the same graph. Below
# this size one thread costs under a few seconds; above it the parallel build's time matters
# (100k: 14 s on two threads) and the self-test and recall check still guard every version.
SINGLE_THREAD_BUILD_MAX = 20_000
# A graph with more than this share of deleted slots is rebuilt instead of patched.
MAX_TOMBSTONE_SHARE = 0.25
# Filtered searches whose filter leaves at most this many products are answered exactly.
EXACT_MAX_ROWS = 4096
DRILLS = ("shuffled_embeddings", "misassigned_keys")
SELF_TEST_ROWS = 10
SELF_TEST_MIN_SCORE = 0.98


def validate_index_version(folder: Path) -> list[str]:
    """Whether a built version may be pointed at: complete files, the blocking ANN recall
    check passed, and not refused by the gate. (Loading the graph and its self-test happen in
    the serving slot and the blocking check.)"""
    problems = [
        f"{name} missing"
        for name in (INDEX_FILE, VECTORS_FILE, PRODUCTS_FILE, MANIFEST_FILE)
        if not (folder / name).is_file()
    ]
    if problems:
        return problems
    checks = _record(folder, "checks")
    if not checks or not checks.get("passed"):
        problems.append("it has not passed the blocking ANN recall check")
    decision = _record(folder, "decision")
    if decision and decision.get("status") == "refused":
        problems.append(f"the promotion gate refused it: {decision.get('reason')}")
    return problems


def _record(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def new_index() -> Index:
    return Index(ndim=EMBEDDING_DIM, metric="cos", **HNSW_PARAMS)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, best first (ties in position order)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return top[np.argsort(-scores[top], kind="stable")]


def _keys(frame: pl.DataFrame) -> np.ndarray:
    return frame["key"].to_numpy().astype(np.uint64)


@dataclass
class BuildStats:
    mode: str
    """'full' or 'incremental'."""
    reason: str
    base_version: str | None
    reused: int
    added: int
    replaced: int
    removed: int
    seconds: float


def plan_delta(base: pl.DataFrame, new: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Products to remove, replace (text changed), add and reuse going from `base` to `new`."""
    joined = new.select("sku", "key", "content_hash").join(
        base.select("sku", pl.col("content_hash").alias("base_hash")),
        on="sku",
        how="full",
        coalesce=True,
    )
    return {
        "removed": base.join(new.select("sku"), on="sku", how="anti"),
        "added": joined.filter(pl.col("base_hash").is_null()),
        "replaced": joined.filter(
            pl.col("base_hash").is_not_null()
            & pl.col("content_hash").is_not_null()
            & (pl.col("content_hash") != pl.col("base_hash"))
        ),
        "reused": joined.filter(pl.col("content_hash") == pl.col("base_hash")),
    }


def build_index_files(
    target: Path,
    products: pl.DataFrame,
    vectors: np.ndarray,
    base_folder: Path | None = None,
    threads: int = 2,
    drill: str | None = None,
) -> BuildStats:
    """Write index.usearch, vectors.npy and products.parquet for `products` (row-aligned with
    `vectors`) into `target`, patching `base_folder`'s graph when there is one."""
    started = time.perf_counter()
    products = products.select(PRODUCT_COLUMNS)
    if len(products) != len(vectors):
        raise ValueError(f"{len(products)} products but {len(vectors)} vectors")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    index_vectors = vectors
    if len(products) <= SINGLE_THREAD_BUILD_MAX:
        threads = 1
    if drill is not None:
        if drill not in DRILLS:
            raise ValueError(f"unknown drill {drill!r}; known: {', '.join(DRILLS)}")
        # Drills build deliberately broken versions to prove the gates stop them.
        rolled = np.roll(vectors, 1, axis=0)
        if drill == "shuffled_embeddings":
            vectors = index_vectors = rolled  # every product gets its neighbour's embedding
        else:
            index_vectors = rolled  # the graph disagrees with the embeddings
        base_folder = None

    stats = BuildStats("full", "no earlier version to start from", None, 0, 0, 0, 0, 0.0)
    index = None
    if base_folder is not None:
        base_products = pl.read_parquet(base_folder / PRODUCTS_FILE)
        delta = plan_delta(base_products, products)
        tombstones = Index.metadata(str(base_folder / INDEX_FILE))["count_deleted"]
        churn = len(delta["removed"]) + len(delta["replaced"]) + tombstones
        base_manifest = base_folder / MANIFEST_FILE
        base_hnsw = (
            json.loads(base_manifest.read_text()).get("hnsw") if base_manifest.exists() else None
        )
        if base_hnsw is not None and any(
            base_hnsw.get(name) != HNSW_PARAMS[name]
            for name in ("connectivity", "expansion_add", "dtype")
        ):
            stats.reason = f"HNSW parameters changed since {base_folder.name}: rebuilt"
        elif churn > MAX_TOMBSTONE_SHARE * max(len(products), 1):
            stats.reason = (
                f"{churn} removed/replaced/deleted slots exceed {MAX_TOMBSTONE_SHARE:.0%} of "
                f"{len(products)} products: rebuilt to keep the graph healthy"
            )
        else:
            index = Index.restore(str(base_folder / INDEX_FILE))
            # The file keeps the graph, not the traversal depths: restore them for inserts.
            index.expansion_add = HNSW_PARAMS["expansion_add"]
            index.expansion_search = HNSW_PARAMS["expansion_search"]
            gone = np.concatenate([_keys(delta["removed"]), _keys(delta["replaced"])])
            if len(gone):
                index.remove(gone)
            fresh = pl.concat([delta["added"], delta["replaced"]]).select("key")
            if len(fresh):
                rows = (
                    products.with_row_index("row")
                    .join(fresh, on="key", how="semi")
                    .sort("row")["row"]
                    .to_numpy()
                )
                index.add(_keys(products[rows]), index_vectors[rows], threads=threads)
            stats = BuildStats(
                mode="incremental",
                reason="patched the earlier version's graph",
                base_version=base_folder.name,
                reused=len(delta["reused"]),
                added=len(delta["added"]),
                replaced=len(delta["replaced"]),
                removed=len(delta["removed"]),
                seconds=0.0,
            )
    if index is None:
        index = new_index()
        if len(products):
            order = np.random.default_rng(INSERT_SEED).permutation(len(products))
            index.add(_keys(products)[order], index_vectors[order], threads=threads)
        stats.added = len(products)
    target.mkdir(parents=True, exist_ok=True)
    index.save(str(target / INDEX_FILE))
    np.save(target / VECTORS_FILE, vectors)
    products.write_parquet(target / PRODUCTS_FILE)
    stats.seconds = time.perf_counter() - started
    if len(index) != len(products):
        raise RuntimeError(f"index holds {len(index)} vectors for {len(products)} products")
    return stats


@dataclass(frozen=True)
class Filters:
    department: str | None = None
    category: str | None = None
    subcategory: str | None = None
    brand: str | None = None
    color: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    waterproof: bool | None = None

    @property
    def empty(self) -> bool:
        return all(v is None for v in self.__dict__.values())

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


_TEXT_FILTERS = ("department", "category", "subcategory", "brand", "color")


class LoadedIndex:
    """One index version in memory, read-only: safe to search from many threads."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.manifest: dict[str, Any] = json.loads((self.folder / MANIFEST_FILE).read_text())
        self.version: str = self.manifest["version"]
        products = pl.read_parquet(self.folder / PRODUCTS_FILE)
        self.vectors = np.load(self.folder / VECTORS_FILE)
        self.index = Index.restore(str(self.folder / INDEX_FILE))
        if self.index is None:
            raise ValueError(f"{self.folder / INDEX_FILE} is not a usearch index")
        self.index.expansion_search = int(
            self.manifest.get("hnsw", {}).get("expansion_search", HNSW_PARAMS["expansion_search"])
        )
        n = len(products)
        if not (len(self.index) == n == len(self.vectors)):
            raise ValueError(
                f"index holds {len(self.index)} vectors, vectors.npy {len(self.vectors)}, "
                f"products {n}"
            )
        self.size = n
        self.sku = products["sku"].to_list()
        self.title = products["title"].to_list()
        self.price = products["list_price"].fill_null(float("nan")).to_numpy()
        self.keys = _keys(products)
        self._key_order = np.argsort(self.keys)
        self._sorted_keys = self.keys[self._key_order]
        self.columns = {name: products[name].fill_null("").to_list() for name in _TEXT_FILTERS}
        self._lowered = {
            name: np.array([v.lower() for v in self.columns[name]], dtype=object)
            for name in _TEXT_FILTERS
        }
        waterproof = products["is_waterproof"].to_list()
        self._waterproof = {
            flag: np.array([w is flag for w in waterproof], dtype=bool) for flag in (True, False)
        }
        self._masks: OrderedDict[Filters, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # -- checks ------------------------------------------------------------------------------

    def self_test(self) -> list[str]:
        """Integrity of a loaded version: for a spread of products the graph holds exactly the
        embedding stored for that SKU, and searching with it finds a (near-)identical vector.
        (Not "finds that very SKU first": near-duplicate variants tie, and HNSW is approximate;
        retrieval quality is what the blocking recall check measures.)"""
        problems = []
        rows = np.unique(np.linspace(0, self.size - 1, min(SELF_TEST_ROWS, self.size)).astype(int))
        for row in rows if self.size else []:
            stored = self.index.get(int(self.keys[row]))
            if stored is None or not np.allclose(
                stored, self.vectors[row], atol=STORED_VECTOR_TOLERANCE
            ):
                problems.append(
                    f"self-test: the graph's vector for {self.sku[row]} is not its embedding"
                )
                continue
            _, scores = self.search(self.vectors[row], 1)
            if len(scores) == 0 or scores[0] < SELF_TEST_MIN_SCORE:
                problems.append(f"self-test: {self.sku[row]}'s embedding finds nothing similar")
        return problems

    # -- search ------------------------------------------------------------------------------

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.uint64)
        return self._key_order[np.searchsorted(self._sorted_keys, keys)]

    def mask(self, filters: Filters | None) -> np.ndarray | None:
        if filters is None or filters.empty:
            return None
        with self._lock:
            cached = self._masks.get(filters)
            if cached is not None:
                self._masks.move_to_end(filters)
                return cached
        mask = np.ones(self.size, dtype=bool)
        for name in _TEXT_FILTERS:
            value = getattr(filters, name)
            if value is not None:
                mask &= self._lowered[name] == value.lower()
        if filters.min_price is not None:
            mask &= self.price >= filters.min_price
        if filters.max_price is not None:
            mask &= self.price <= filters.max_price
        if filters.waterproof is not None:
            mask &= self._waterproof[filters.waterproof]
        with self._lock:
            self._masks[filters] = mask
            while len(self._masks) > 256:
                self._masks.popitem(last=False)
        return mask

    def exact(
        self, vector: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force top k by cosine (vectors are unit length), optionally within `mask`."""
        if mask is None:
            scores = self.vectors @ vector
            rows = np.arange(self.size)
        else:
            rows = np.flatnonzero(mask)
            scores = self.vectors[rows] @ vector
        top = top_k(scores, k)
        return rows[top], scores[top]

    def search(
        self, vector: np.ndarray, k: int, filters: Filters | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top k rows and cosine scores. Unfiltered: HNSW. Filtered: exact over the matching
        products when there are few of them, else HNSW oversampled by the filter's
        selectivity and filtered afterwards (exact if that leaves fewer than k)."""
        k = min(k, self.size)
        if k <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        mask = self.mask(filters)
        if mask is None:
            matches = self.index.search(vector, k, threads=1)
            return self.rows_of(matches.keys), 1.0 - matches.distances
        allowed = int(mask.sum())
        if allowed == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        if allowed <= EXACT_MAX_ROWS:
            return self.exact(vector, k, mask)
        count = min(self.size, int(2 * k * self.size / allowed) + k)
        matches = self.index.search(vector, count, threads=1)
        rows = self.rows_of(matches.keys)
        keep = mask[rows]
        if keep.sum() < min(k, allowed):
            return self.exact(vector, k, mask)
        return rows[keep][:k], (1.0 - matches.distances)[keep][:k]

    def search_batch(self, vectors: np.ndarray, k: int) -> list[np.ndarray]:
        """HNSW top-k rows for many queries at once (evaluation)."""
        k = min(k, self.size)
        matches = self.index.search(np.asarray(vectors, dtype=np.float32), k, threads=1)
        return [self.rows_of(matches.keys[i][: matches.counts[i]]) for i in range(len(vectors))]

    def exact_batch(self, vectors: np.ndarray, k: int) -> list[np.ndarray]:
        scores = np.asarray(vectors, dtype=np.float32) @ self.vectors.T
        return [top_k(row, k) for row in scores]

    def result(self, row: int, score: float) -> dict[str, Any]:
        price = self.price[row]
        return {
            "sku": self.sku[row],
            "title": self.title[row],
            "price": None if np.isnan(price) else round(float(price), 2),
            "category": self.columns["category"][row] or None,
            "subcategory": self.columns["subcategory"][row] or None,
            "brand": self.columns["brand"][row] or None,
            "color": self.columns["color"][row] or None,
            "score": round(float(score), 6),
        }
