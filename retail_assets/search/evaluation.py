"""Offline measurements of search: int8 vs fp32 encoder quality, ANN recall against exact
search, and a candidate index against the live one on the eval set; the index gate (the core
gate with search's rules) and the rollout decision (canary, promote, refuse) as plain
functions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from retail_assets.core.gate import (
    CANDIDATE,
    INCUMBENT,
    GateResult,
    Rule,
    Scorecard,
    evaluate,
    precondition,
)
from retail_assets.core.store import Roles, Rollout
from retail_assets.search.encoder import FP32_FILE, INT8_FILE, TextEncoder
from retail_assets.search.evalset import EvalSet, K, overlap_at_k, score_rankings
from retail_assets.search.index import LoadedIndex, top_k

# int8 is used only if it costs at most this much NDCG@10 / recall@10 against fp32.
QUANTIZATION_MAX_DROP = 0.01
# ANN recall@10 against exact search on the eval queries (the blocking check): below 0.95 the
# approximate graph visibly drops products exact search ranks in the top 10.
MIN_RECALL_VS_EXACT = 0.95
# A candidate may lose at most this much against the live index: 0.02 NDCG@10 is about one
# grade-3 product falling out of the top 10 for one query in eight on the default eval set.
MAX_NDCG_DROP = 0.02
MAX_RECALL_DROP = 0.02
# Floors any index must clear; a shuffled-embeddings drill scores ~0.05, the shipped index
# ~0.9 NDCG@10.
MIN_NDCG = 0.5
MIN_RECALL = 0.4
ENCODE_BATCH = 8


def encode_timed(encoder: TextEncoder, texts: list[str]) -> tuple[np.ndarray, float]:
    """Embeddings and texts per second."""
    started = time.perf_counter()
    vectors = encoder.encode(texts, batch_size=ENCODE_BATCH)
    seconds = time.perf_counter() - started
    return vectors, (len(texts) / seconds if seconds > 0 else float("nan"))


def single_query_latency_ms(encoder: TextEncoder, texts: list[str]) -> dict[str, float]:
    """p50/p99 of encoding one query at a time (what serving does), over distinct texts."""
    encoder.encode(texts[:2])  # warm-up
    timings = []
    for text in texts:
        started = time.perf_counter()
        encoder.encode([text])
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": float(np.percentile(timings, 50)),
        "p99_ms": float(np.percentile(timings, 99)),
    }


def exact_rankings(
    product_vectors: np.ndarray, skus: list[str], query_vectors: np.ndarray, k: int = K
) -> list[list[str]]:
    scores = query_vectors @ product_vectors.T
    return [[skus[i] for i in top_k(row, k)] for row in scores]


def measure_quantization(
    products: pl.DataFrame, eval_set: EvalSet, encoders: dict[str, TextEncoder]
) -> dict[str, Any]:
    """Embed the catalog and the eval queries with each encoder file, rank exactly, score.

    Both products and queries use the same file, as they would in serving. Returns per-file
    metrics, int8's agreement with fp32 and the decision."""
    texts = products["text"].to_list()
    skus = products["sku"].to_list()
    results: dict[str, Any] = {}
    rankings: dict[str, list[list[str]]] = {}
    vectors: dict[str, np.ndarray] = {}
    for label, encoder in encoders.items():
        product_vectors, texts_per_s = encode_timed(encoder, texts)
        query_vectors = encoder.encode(eval_set.texts, batch_size=32)
        rankings[label] = exact_rankings(product_vectors, skus, query_vectors)
        vectors[label] = product_vectors
        scored = score_rankings(eval_set, rankings[label])
        results[label] = {
            "file": encoder.filename,
            f"recall@{K}": scored[f"recall@{K}"],
            f"ndcg@{K}": scored[f"ndcg@{K}"],
            "texts_per_s": texts_per_s,
            **{
                f"query_{k}": v
                for k, v in single_query_latency_ms(encoder, eval_set.texts[:100]).items()
            },
        }
    fp32, int8 = results["fp32"], results["int8"]
    agreement = float(
        np.mean(
            [overlap_at_k(a, b) for a, b in zip(rankings["int8"], rankings["fp32"], strict=True)]
        )
    )
    cosine = (vectors["int8"] * vectors["fp32"]).sum(axis=1)
    ndcg_drop = fp32[f"ndcg@{K}"] - int8[f"ndcg@{K}"]
    recall_drop = fp32[f"recall@{K}"] - int8[f"recall@{K}"]
    use_int8 = ndcg_drop <= QUANTIZATION_MAX_DROP and recall_drop <= QUANTIZATION_MAX_DROP
    reason = (
        f"int8 NDCG@{K} {int8[f'ndcg@{K}']:.4f} vs fp32 {fp32[f'ndcg@{K}']:.4f} "
        f"(drop {ndcg_drop:+.4f}), recall@{K} {int8[f'recall@{K}']:.4f} vs "
        f"{fp32[f'recall@{K}']:.4f} (drop {recall_drop:+.4f}); limit {QUANTIZATION_MAX_DROP} "
        f"-> {'int8' if use_int8 else 'fp32'}"
    )
    return {
        "serving_file": INT8_FILE if use_int8 else FP32_FILE,
        "quantization": "int8" if use_int8 else "fp32",
        "reason": reason,
        "fp32": fp32,
        "int8": int8,
        f"int8_overlap_with_fp32@{K}": agreement,
        "int8_fp32_cosine_min": float(cosine.min()),
        "int8_fp32_cosine_mean": float(cosine.mean()),
        "ndcg_drop": ndcg_drop,
        "recall_drop": recall_drop,
        "max_drop": QUANTIZATION_MAX_DROP,
        "products": len(texts),
        "queries": len(eval_set.queries),
        "eval_set_version": eval_set.version,
    }


def recall_vs_exact(
    index: LoadedIndex,
    query_vectors: np.ndarray,
    k: int = K,
    approximate: list[np.ndarray] | None = None,
) -> dict[str, Any]:
    """The ANN's recall@k against exact search over the same version's vectors
    (`approximate`: the HNSW rows for these queries, if already searched)."""
    if approximate is None:
        approximate = index.search_batch(query_vectors, k)
    exact = index.exact_batch(query_vectors, k)
    recalls = [overlap_at_k(list(a), list(b), k) for a, b in zip(approximate, exact, strict=True)]
    return {
        f"recall@{k}": float(np.mean(recalls)) if recalls else float("nan"),
        "worst_query_recall": float(np.min(recalls)) if recalls else float("nan"),
        "queries": len(recalls),
    }


def evaluate_index(
    index: LoadedIndex, eval_set: EvalSet, query_vectors: np.ndarray, k: int = K
) -> dict[str, Any]:
    """Eval-set metrics of an index version as served (HNSW, unfiltered), plus latency."""
    started = time.perf_counter()
    approximate = index.search_batch(query_vectors, k)
    rankings = [[index.sku[r] for r in rows] for rows in approximate]
    seconds = time.perf_counter() - started
    timings = []
    for vector in query_vectors[:200]:
        t = time.perf_counter()
        index.search(vector, k)
        timings.append((time.perf_counter() - t) * 1000)
    scored = score_rankings(eval_set, rankings, k)
    return {
        "version": index.version,
        **scored,
        "ann_vs_exact": recall_vs_exact(index, query_vectors, k, approximate),
        "search_p50_ms": float(np.percentile(timings, 50)) if timings else float("nan"),
        "search_p99_ms": float(np.percentile(timings, 99)) if timings else float("nan"),
        "batch_seconds": seconds,
        "products": index.size,
    }


ANN_VS_EXACT = f"ann_recall@{K}_vs_exact"
RULES: tuple[Rule, ...] = (
    Rule(f"ndcg@{K}", True, floor=MIN_NDCG, tolerance=MAX_NDCG_DROP),
    Rule(f"recall@{K}", True, floor=MIN_RECALL, tolerance=MAX_RECALL_DROP),
    Rule(ANN_VS_EXACT, True, floor=MIN_RECALL_VS_EXACT),
)


def _gated(metrics: dict[str, Any]) -> dict[str, Any]:
    return {
        f"ndcg@{K}": metrics[f"ndcg@{K}"],
        f"recall@{K}": metrics[f"recall@{K}"],
        ANN_VS_EXACT: metrics["ann_vs_exact"][f"recall@{K}"],
    }


def gate(
    candidate: dict[str, Any], live: dict[str, Any] | None, *, checks_passed: bool
) -> GateResult:
    """The core gate over the eval-set metrics: floors, no drop beyond tolerance against the
    live index, and the blocking ANN check as a precondition."""
    overall = {CANDIDATE: _gated(candidate)}
    if live is not None:
        overall[INCUMBENT] = _gated(live)
    return evaluate(
        RULES,
        Scorecard(overall),
        preconditions=[
            precondition(
                "ann_recall_at_10_vs_exact check passed",
                checks_passed,
                "the blocking ANN recall check passed for this version"
                if checks_passed
                else "the blocking ANN recall check has not passed for this version",
            )
        ],
    )


@dataclass(frozen=True)
class RolloutStep:
    """What the promotion does with a gated version: `refuse`, `live` (make it the
    champion), `canary` (offer it as the challenger with `rollout`), `continue` (the canary
    keeps running) or `nothing` (already live)."""

    action: str
    reason: str
    rollout: Rollout | None = None


def only_adds_to(build: dict[str, Any] | None, live: str | None) -> bool:
    """The build patched the live version with new products only."""
    return bool(
        build
        and live is not None
        and build.get("mode") == "incremental"
        and build.get("base_version") == live
        and build.get("added", 0) > 0
        and build.get("removed", 0) == 0
        and build.get("replaced", 0) == 0
    )


def rollout_step(
    version: str,
    result: GateResult,
    roles: Roles,
    policy: Rollout,
    now: datetime,
    summary: str,
    build: dict[str, Any] | None = None,
) -> RolloutStep:
    """The search index's progressive delivery, without Dagster: refuse a version the gate
    refused; the first version goes live; a new version becomes the canary at the policy's
    share (min_seconds 0 disables the canary: straight live). A running canary is not made
    live by time: `search_monitoring` decides it on click-through (sequential test).

    A version that only adds products to the live one (`build`: the index build's stats, its
    base the live version, nothing removed or replaced) goes live once it passed the gate:
    the live products rank as before among themselves, and a canary would keep new products
    out of most searches for its whole length (found by `retail simulate`'s
    new_product_wave: launched SKUs missing from 90 % of searches on their first day)."""
    if not result.passed:
        return RolloutStep("refuse", "; ".join(result.reasons))
    live, candidate = roles.version("champion"), roles.version("challenger")
    if live == version:
        return RolloutStep("nothing", "this version is already live")
    if live is None:
        return RolloutStep("live", f"first index version ({summary})")
    if candidate == version and roles.challenger is not None:
        if policy.min_seconds == 0:
            return RolloutStep("live", f"canary disabled (min_canary_seconds = 0); {summary}")
        age = (now - datetime.fromisoformat(roles.challenger.since)).total_seconds()
        return RolloutStep(
            "continue",
            f"canary continues at share {policy.share} ({age:.0f} s so far): the click-through "
            f"test in search_monitoring decides, after at least {policy.min_seconds:.0f} s",
        )
    if policy.min_seconds == 0:
        return RolloutStep("live", f"canary disabled (min_canary_seconds = 0); {summary}")
    if only_adds_to(build, live):
        return RolloutStep(
            "live",
            f"only new products added to the live index ({build['added']}; same encoder, every "
            f"live product unchanged): live at once, so they are searchable the day they land; "
            f"{summary}",
        )
    return RolloutStep(
        "canary",
        f"passed the offline gate ({summary}); canary at share {policy.share}",
        Rollout("canary", policy.share, policy.min_seconds),
    )
