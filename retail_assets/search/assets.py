"""Search assets (group `search`): encoder, eval set, quantization decision, product
embeddings, versioned HNSW index with a blocking recall check, offline evaluation against the
live index, and the canary/promotion gate.

    product_text_encoder ─┐
    marts/dim_products ─> search_eval_set ─> encoder_quantization ─> product_embeddings
        ─> product_search_index [blocking: ann_recall_at_10_vs_exact]
        ─> search_index_evaluation ─> search_index_promotion
"""

import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from retail_assets.atomic_files import write_json_atomic
from retail_assets.core import clock
from retail_assets.core.clock import now_iso
from retail_assets.core.markdown import markdown_table
from retail_assets.core.store import ArtifactStore
from retail_assets.resources import ArtifactsResource
from retail_assets.search.catalog import (
    PRODUCT_COLUMNS,
    PRODUCT_MAX_TOKENS,
    catalog_hash,
    searchable_products,
)
from retail_assets.search.encoder import EMBEDDING_DIM, FP32_FILE, INT8_FILE, TextEncoder
from retail_assets.search.encoder_store import QUANTIZATION, publish_encoder
from retail_assets.search.evalset import EvalSet, K, build_eval_set
from retail_assets.search.evaluation import (
    MIN_RECALL_VS_EXACT,
    encode_timed,
    evaluate_index,
    gate,
    measure_quantization,
    recall_vs_exact,
    rollout_step,
)
from retail_assets.search.index import (
    DRILLS,
    HNSW_PARAMS,
    MANIFEST_FILE,
    PRODUCTS_FILE,
    VECTORS_FILE,
    LoadedIndex,
    build_index_files,
    plan_delta,
)
from retail_assets.search.store import (
    SearchStores,
    canary_policy,
    current_snapshot,
    eval_set_path,
    publish_snapshot,
)
from retail_assets.summary import headline

DIM_PRODUCTS = dg.AssetIn(key=["marts", "dim_products"])
ARTIFACTS = "artifact_io_manager"
OFFLINE_THREADS = 2


class SearchStoreResource(dg.ConfigurableResource):
    """Search's artifact stores (encoder, embeddings, index versions) and its eval sets."""

    artifacts: ArtifactsResource

    @property
    def stores(self) -> SearchStores:
        return SearchStores.of(self.artifacts.artifacts)

    @property
    def search_dir(self) -> Path:
        return self.stores.search_dir

    def encoders(self) -> ArtifactStore:
        return self.stores.encoders

    def indexes(self) -> ArtifactStore:
        return self.stores.indexes

    def embeddings(self, encoder_key: str) -> ArtifactStore:
        return self.stores.embeddings(encoder_key)


def _encoder(encoders: ArtifactStore, encoder_version: str, filename: str) -> TextEncoder:
    return TextEncoder(
        encoders.version_dir(encoder_version),
        filename,
        threads=OFFLINE_THREADS,
        max_tokens=PRODUCT_MAX_TOKENS,
    )


def _manifest(store: ArtifactStore, version: str) -> dict[str, Any]:
    return json.loads((store.version_dir(version) / MANIFEST_FILE).read_text())


def _r(value: Any, digits: int = 4) -> Any:
    return round(value, digits) if isinstance(value, float) else value


@dg.asset(group_name="search", kinds={"onnx"})
def product_text_encoder(
    context: dg.AssetExecutionContext, search_store: SearchStoreResource
) -> dg.MaterializeResult:
    """all-MiniLM-L6-v2 as ONNX (fp32 and int8 per-channel) with its tokenizer, so serving
    embeds queries with onnxruntime alone. Versioned by the hash of the fp32 graph."""
    manifest = publish_encoder(search_store.encoders())
    context.log.info(f"published text encoder {manifest['version']}")
    return dg.MaterializeResult(
        metadata={
            "version": manifest["version"],
            "serving_file": manifest["serving_file"],
            **{k: round(v, 6) for k, v in manifest["agreement"].items()},
            "files": f"{FP32_FILE}, {INT8_FILE}, tokenizer.json",
        }
    )


@dg.asset(
    group_name="search",
    io_manager_key=ARTIFACTS,
    ins={"dim_products": DIM_PRODUCTS},
    kinds={"polars"},
)
def search_eval_set(
    context: dg.AssetExecutionContext, search_store: SearchStoreResource, dim_products: pl.DataFrame
) -> dg.Output[EvalSet]:
    """Search eval set written from catalog facts, never from an index or an embedding model.

    Every searchable product anchors queries of eight families: its subcategory, its category,
    colour + subcategory, brand + subcategory, material + subcategory, 'waterproof' +
    subcategory, gender + subcategory, and a paraphrase of its title (brand dropped, gender
    and colour put into words: `packable rain jacket for women in charcoal`). Each query names
    a product type and modifiers; a product's grade is 0 if its type differs, else
    1 + 2 x (share of modifiers it matches), rounded, so 3 = matches everything the query says.
    recall@10 counts grade-3 products; NDCG@10 uses gains 2^grade - 1. Queries are
    deduplicated and at most 50 per family are kept (deterministic by a hash of the text).
    Also written to `search/eval/<version>.json`."""
    products = searchable_products(dim_products)
    eval_set = build_eval_set(products, catalog_hash(products))
    path = eval_set_path(search_store.search_dir, eval_set.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(eval_set.to_json())
    examples = [
        {
            "family": q.family,
            "query": q.text,
            "grade 3": sum(g == 3 for g in q.relevance.values()),
            "grade 1-2": sum(g < 3 for g in q.relevance.values()),
        }
        for q in eval_set.queries[:: max(1, len(eval_set.queries) // 12)]
    ]
    context.log.info(f"search eval set {eval_set.version}: {len(eval_set.queries)} queries")
    return dg.Output(
        eval_set,
        metadata={
            "version": eval_set.version,
            "queries": len(eval_set.queries),
            "searchable_products": eval_set.n_products,
            "catalog_hash": eval_set.catalog_hash,
            "queries_by_family": dg.MetadataValue.md(
                markdown_table(
                    [{"family": f, "queries": n} for f, n in eval_set.families().items()]
                )
            ),
            "examples": dg.MetadataValue.md(markdown_table(examples)),
            "path": str(path),
        },
    )


@dg.asset(
    group_name="search",
    io_manager_key=ARTIFACTS,
    deps=[product_text_encoder],
    ins={"dim_products": DIM_PRODUCTS, "search_eval_set": dg.AssetIn()},
    kinds={"onnx"},
)
def encoder_quantization(
    context: dg.AssetExecutionContext,
    search_store: SearchStoreResource,
    dim_products: pl.DataFrame,
    search_eval_set: EvalSet,
) -> dg.Output[dict[str, Any]]:
    """Whether search embeds with the int8 or the fp32 encoder, decided by measurement.

    Embeds the searchable catalog and the eval queries with each file (products and queries
    with the same file, as served), ranks exactly, and compares recall@10 and NDCG@10 on the
    search eval set. int8 is chosen only if it loses at most 0.01 of either against fp32.
    Also records embedding throughput, single-query encoding latency, int8/fp32 cosine and
    top-10 overlap (measured again only for a new encoder or catalog: the eval set's version).
    The decision is recorded beside the encoder version (`quantization.json`)
    and carried into every embeddings snapshot and index manifest (the encoder manifest's own
    `serving_file`, which other users of the encoder read, is left as it is)."""
    store = search_store.encoders()
    version = store.champion()
    if version is None:
        raise dg.Failure("no text encoder is published: materialize product_text_encoder first")
    folder = store.version_dir(version)
    earlier = store.read_record(version, QUANTIZATION)
    if (
        earlier
        and earlier.get("eval_set_version") == search_eval_set.version
        and earlier.get("max_tokens") == PRODUCT_MAX_TOKENS
    ):
        # Same encoder, same catalog (the eval set is versioned by it): the measurement would
        # only repeat itself (a day of new sales rebuilds dim_products, not the catalog text).
        measured, decision = earlier, earlier
        context.log.info(f"reused the decision measured at {earlier['measured_at']}")
    else:
        products = searchable_products(dim_products)
        encoders = {
            "fp32": _encoder(store, version, FP32_FILE),
            "int8": _encoder(store, version, INT8_FILE),
        }
        measured = measure_quantization(products, search_eval_set, encoders)
        decision = {
            **measured,
            "encoder_version": folder.name,
            "max_tokens": PRODUCT_MAX_TOKENS,
            "eval_set_version": search_eval_set.version,
            "measured_at": now_iso(),
        }
        store.write_record(version, QUANTIZATION, decision)
        context.log.info(decision["reason"])
    rows = [
        {
            "encoder": label,
            f"recall@{K}": measured[label][f"recall@{K}"],
            f"ndcg@{K}": measured[label][f"ndcg@{K}"],
            "texts/s (2 threads)": measured[label]["texts_per_s"],
            "query p50 ms (1 thread)": measured[label]["query_p50_ms"],
            "query p99 ms (1 thread)": measured[label]["query_p99_ms"],
        }
        for label in ("fp32", "int8")
    ]
    return dg.Output(
        decision,
        metadata={
            "decision": decision["quantization"],
            "serving_file": decision["serving_file"],
            "reason": decision["reason"],
            "encoder_version": folder.name,
            "comparison": dg.MetadataValue.md(markdown_table(rows)),
            f"int8_overlap_with_fp32@{K}": _r(measured[f"int8_overlap_with_fp32@{K}"]),
            "int8_fp32_cosine_mean": _r(measured["int8_fp32_cosine_mean"]),
            "int8_fp32_cosine_min": _r(measured["int8_fp32_cosine_min"]),
            "eval_set_version": search_eval_set.version,
            "measured_at": decision["measured_at"],
            "queries": measured["queries"],
            "products": measured["products"],
        },
    )


@dg.asset(
    group_name="search",
    io_manager_key=ARTIFACTS,
    ins={"dim_products": DIM_PRODUCTS, "encoder_quantization": dg.AssetIn()},
    kinds={"onnx", "numpy"},
)
def product_embeddings(
    context: dg.AssetExecutionContext,
    search_store: SearchStoreResource,
    dim_products: pl.DataFrame,
    encoder_quantization: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    """One embedding per searchable product (on sale: launched, not discontinued), from its
    title, taxonomy, brand, attributes and description (first 128 tokens), with the encoder
    file `encoder_quantization` chose. Only products whose text changed are encoded: every
    other vector is reused from the previous snapshot by the SHA-256 of the text. Written to
    `search/embeddings/<encoder version>-<fp32|int8>/versions/<catalog hash>/`."""
    encoders = search_store.encoders()
    started = time.perf_counter()
    folder = encoders.version_dir(encoders.champion())
    if encoder_quantization.get("encoder_version") == folder.name:
        filename, quantization = (
            encoder_quantization["serving_file"],
            encoder_quantization["quantization"],
        )
    else:
        context.log.warning(
            f"no quantization measurement for encoder {folder.name}: embedding with fp32"
        )
        filename, quantization = FP32_FILE, "fp32"
    encoder_key = f"{folder.name}-{quantization}"
    products = searchable_products(dim_products)
    snapshot_hash = catalog_hash(products)

    store = search_store.embeddings(encoder_key)
    previous = current_snapshot(store)
    reuse: dict[str, np.ndarray] = {}
    previous_skus: set[str] = set()
    if previous is not None:
        old = pl.read_parquet(previous / PRODUCTS_FILE)
        old_vectors = np.load(previous / VECTORS_FILE)
        reuse = {h: old_vectors[i] for i, h in enumerate(old["content_hash"].to_list())}
        previous_skus = set(old["sku"].to_list())

    hashes = products["content_hash"].to_list()
    missing = [i for i, h in enumerate(hashes) if h not in reuse]
    vectors = np.empty((len(products), EMBEDDING_DIM), dtype=np.float32)
    for i, h in enumerate(hashes):
        if h in reuse:
            vectors[i] = reuse[h]
    texts_per_s = float("nan")
    if missing:
        encoder = _encoder(encoders, folder.name, filename)
        encoded, texts_per_s = encode_timed(encoder, [products["text"][i] for i in missing])
        vectors[missing] = encoded

    current_skus = set(products["sku"].to_list())
    info = {
        "encoder_version": folder.name,
        "encoder_file": filename,
        "quantization": quantization,
        "encoder_key": encoder_key,
        "max_tokens": PRODUCT_MAX_TOKENS,
        "catalog_hash": snapshot_hash,
        "products": len(products),
        "reused": len(products) - len(missing),
        "encoded": len(missing),
        "new_skus": len(current_skus - previous_skus),
        "dropped_skus": len(previous_skus - current_skus),
        "previous_snapshot": previous.name if previous else None,
        "texts_per_s": texts_per_s,
        "created_at": now_iso(),
    }
    with store.staging() as staged:
        np.save(staged / VECTORS_FILE, vectors)
        products.write_parquet(staged / PRODUCTS_FILE)
        write_json_atomic(staged / MANIFEST_FILE, info)
        path = publish_snapshot(store, snapshot_hash, staged)
    info["snapshot"] = str(path)
    info["seconds"] = time.perf_counter() - started
    context.log.info(
        f"embeddings {encoder_key}/{snapshot_hash}: {info['encoded']} encoded, "
        f"{info['reused']} reused"
    )
    return dg.Output(
        info,
        metadata={
            "dagster/row_count": len(products),
            "snapshot": str(path),
            "encoder": f"{folder.name}/{filename}",
            "quantization": quantization,
            "catalog_hash": snapshot_hash,
            "encoded": info["encoded"],
            "reused_by_content_hash": info["reused"],
            "new_skus": info["new_skus"],
            "dropped_skus": info["dropped_skus"],
            "texts_per_s": _r(texts_per_s, 1),
            "seconds": _r(info["seconds"], 2),
        },
    )


class IndexBuildConfig(dg.Config):
    full_rebuild: bool = False
    """Build the graph from scratch even if an earlier version could be patched."""
    drill: str | None = None
    """Rollout drill: build a deliberately broken version to prove the gates stop it.
    'shuffled_embeddings' gives every product its neighbour's embedding (passes the ANN check,
    must be refused by the offline evaluation); 'misassigned_keys' makes the graph disagree
    with the embeddings (must fail the blocking ANN recall check)."""


def _base_version(store: ArtifactStore, products: pl.DataFrame, encoder_key: str) -> str | None:
    """The served version (candidate or live) with the same encoder that needs the fewest
    changes to become `products`."""
    best, best_churn = None, None
    for version in dict.fromkeys([store.challenger(), store.champion()]):
        if version is None or not (store.version_dir(version) / MANIFEST_FILE).exists():
            continue
        if _manifest(store, version).get("encoder", {}).get("key") != encoder_key:
            continue
        base = pl.read_parquet(store.version_dir(version) / PRODUCTS_FILE)
        delta = plan_delta(base, products)
        churn = sum(len(delta[k]) for k in ("removed", "added", "replaced"))
        if best_churn is None or churn < best_churn:
            best, best_churn = version, churn
    return best


@dg.asset(
    group_name="search",
    io_manager_key=ARTIFACTS,
    ins={"product_embeddings": dg.AssetIn()},
    kinds={"numpy"},
)
def product_search_index(
    context: dg.AssetExecutionContext,
    config: IndexBuildConfig,
    search_store: SearchStoreResource,
    product_embeddings: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    """A usearch HNSW index (cosine, f16 graph, M=32, ef_construction=256, ef_search=512) over the
    product embeddings, built beside the live one as version
    `<encoder version>-<fp32|int8>-<catalog hash>` under `search/indexes/versions/`.

    Incremental by default: the graph of the served version (candidate or live, same encoder)
    closest to the catalog is copied, products that left the catalog or whose text changed
    are removed, new and changed ones added; all other vectors are reused. Rebuilt from
    scratch when nothing can be patched, when removals would leave more than 25 % deleted
    slots, or with `full_rebuild`. Building does not serve anything: the blocking check
    `ann_recall_at_10_vs_exact`, the evaluation and the promotion gate decide that."""
    store = search_store.indexes()
    if config.drill is not None and config.drill not in DRILLS:
        raise ValueError(f"unknown drill {config.drill!r}; known drills: {', '.join(DRILLS)}")
    snapshot = Path(product_embeddings["snapshot"])
    products = pl.read_parquet(snapshot / PRODUCTS_FILE).select(PRODUCT_COLUMNS)
    encoder_key = product_embeddings["encoder_key"]
    version = f"{encoder_key}-{product_embeddings['catalog_hash']}"
    if config.drill:
        version += f"-drill-{config.drill.replace('_', '-')}"
    target = store.version_dir(version)
    checks = store.read_record(version, "checks") if target.exists() else None
    if (
        target.exists()
        and not config.full_rebuild
        and not config.drill
        and checks is not None
        and checks.get("passed")
    ):
        manifest = _manifest(store, version)
        context.log.info(f"index {version} already built and checked: reusing it")
        build = {**manifest["build"], "mode": "unchanged", "reason": "version already built"}
    else:
        base = (
            None
            if (config.full_rebuild or config.drill)
            else _base_version(store, products, encoder_key)
        )
        with store.staging() as staged:  # a failed build leaves no half-written version
            stats = build_index_files(
                staged,
                products,
                np.load(snapshot / VECTORS_FILE),
                base_folder=store.version_dir(base) if base else None,
                threads=OFFLINE_THREADS,
                drill=config.drill,
            )
            if config.full_rebuild and stats.mode == "full":
                stats.reason = "full rebuild requested"
            manifest = {
                "version": version,
                "built_at": now_iso(),
                "encoder": {
                    "version": product_embeddings["encoder_version"],
                    "file": product_embeddings["encoder_file"],
                    "quantization": product_embeddings["quantization"],
                    "key": encoder_key,
                    "max_tokens": product_embeddings["max_tokens"],
                },
                "catalog_hash": product_embeddings["catalog_hash"],
                "embeddings_snapshot": str(snapshot),
                "products": len(products),
                "metric": "cos",
                "hnsw": HNSW_PARAMS,
                "build": stats.__dict__,
                "drill": config.drill,
            }
            write_json_atomic(staged / MANIFEST_FILE, manifest)
            store.publish(version, staged, replace=True)
        build = stats.__dict__
    info = {
        "version": version,
        "folder": str(store.version_dir(version)),
        "products": len(products),
        "encoder_key": encoder_key,
        "drill": config.drill,
        "build": build,
    }
    return dg.Output(
        info,
        metadata={
            "version": version,
            "products": len(products),
            "build_mode": build["mode"],
            "build_reason": build["reason"],
            "base_version": build.get("base_version") or "-",
            "reused_vectors": build.get("reused", 0),
            "added": build.get("added", 0),
            "replaced": build.get("replaced", 0),
            "removed": build.get("removed", 0),
            "build_seconds": _r(build.get("seconds", 0.0), 3),
            "encoder": f"{product_embeddings['encoder_version']}/{product_embeddings['encoder_file']}",
            "drill": config.drill or "-",
            "path": str(store.version_dir(version)),
        },
    )


def _encoder_id(manifest: dict[str, Any]) -> tuple[str, str]:
    return manifest["encoder"]["version"], manifest["encoder"]["file"]


def _query_vectors(
    encoders: ArtifactStore, manifest: dict[str, Any], eval_set: EvalSet
) -> np.ndarray:
    encoder = _encoder(encoders, manifest["encoder"]["version"], manifest["encoder"]["file"])
    return encoder.encode(eval_set.texts, batch_size=32)


@dg.asset_check(
    asset=product_search_index,
    blocking=True,
    additional_ins={"search_eval_set": dg.AssetIn()},
    description=(
        f"HNSW recall@{K} against exact (brute-force) search over the same version's "
        f"embeddings, on the eval queries, must be >= {MIN_RECALL_VS_EXACT}, and the graph must "
        "hold each sampled SKU's own embedding (self-test). Blocking: a version that fails is "
        "never evaluated, promoted or served."
    ),
)
def ann_recall_at_10_vs_exact(
    search_store: SearchStoreResource,
    product_search_index: dict[str, Any],
    search_eval_set: EvalSet,
) -> dg.AssetCheckResult:
    store = search_store.indexes()
    version = product_search_index["version"]
    loaded = LoadedIndex(store.version_dir(version))
    recall = recall_vs_exact(
        loaded, _query_vectors(search_store.encoders(), loaded.manifest, search_eval_set)
    )
    self_test = loaded.self_test()
    value = recall[f"recall@{K}"]
    passed = bool(value >= MIN_RECALL_VS_EXACT) and not self_test
    store.write_record(
        version,
        "checks",
        {
            "passed": passed,
            "ann_recall_at_10_vs_exact": recall,
            "self_test_problems": self_test,
            "threshold": MIN_RECALL_VS_EXACT,
            "checked_at": now_iso(),
        },
    )
    description = (
        f"{version}: ANN recall@{K} vs exact {value:.4f} over {recall['queries']} eval queries "
        f"(worst query {recall['worst_query_recall']:.2f}; threshold {MIN_RECALL_VS_EXACT})"
    )
    if self_test:
        description += "; " + "; ".join(self_test[:3])
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            f"recall@{K}_vs_exact": _r(value),
            "worst_query_recall": _r(recall["worst_query_recall"]),
            "queries": recall["queries"],
            "self_test_failures": len(self_test),
            "version": version,
        },
    )


def _comparison_rows(candidate: dict[str, Any], live: dict[str, Any] | None) -> list[dict]:
    rows = []
    for metric in (f"recall@{K}", f"ndcg@{K}", "search_p50_ms", "search_p99_ms"):
        c = candidate[metric]
        lv = live[metric] if live else None
        rows.append(
            {
                "metric": metric,
                "live": _r(lv) if lv is not None else "-",
                "candidate": _r(c),
                "delta": _r(c - lv) if lv is not None else "-",
            }
        )
    rows.append(
        {
            "metric": f"ANN recall@{K} vs exact",
            "live": _r(live["ann_vs_exact"][f"recall@{K}"]) if live else "-",
            "candidate": _r(candidate["ann_vs_exact"][f"recall@{K}"]),
            "delta": "-",
        }
    )
    return rows


@dg.asset(
    group_name="search",
    io_manager_key=ARTIFACTS,
    ins={"product_search_index": dg.AssetIn(), "search_eval_set": dg.AssetIn()},
    kinds={"numpy"},
)
def search_index_evaluation(
    context: dg.AssetExecutionContext,
    search_store: SearchStoreResource,
    product_search_index: dict[str, Any],
    search_eval_set: EvalSet,
) -> dg.Output[dict[str, Any]]:
    """Offline evaluation of the new index version against the live one on the search eval
    set: recall@10 (grade-3 products in the top 10) and NDCG@10, overall and per query family,
    as served (HNSW, each version queried through its own encoder), plus ANN recall against
    exact search and search latency. Written beside the version as `evaluation.json`."""
    store, encoders = search_store.indexes(), search_store.encoders()
    version = product_search_index["version"]
    candidate_index = LoadedIndex(store.version_dir(version))
    candidate_queries = _query_vectors(encoders, candidate_index.manifest, search_eval_set)
    candidate = evaluate_index(candidate_index, search_eval_set, candidate_queries)
    live_version = store.champion()
    live = None
    if live_version == version:
        live = candidate
    elif live_version is not None:
        live_index = LoadedIndex(store.version_dir(live_version))
        same_encoder = _encoder_id(live_index.manifest) == _encoder_id(candidate_index.manifest)
        live = evaluate_index(
            live_index,
            search_eval_set,
            candidate_queries
            if same_encoder
            else _query_vectors(encoders, live_index.manifest, search_eval_set),
        )
    evaluation = {
        "version": version,
        "drill": product_search_index.get("drill"),
        "live_version": live_version,
        "eval_set_version": search_eval_set.version,
        "candidate": candidate,
        "live": live,
        "evaluated_at": now_iso(),
    }
    store.write_record(version, "evaluation", evaluation)
    families = [
        {
            "family": family,
            "queries": values["queries"],
            f"candidate recall@{K}": _r(values[f"recall@{K}"]),
            f"candidate ndcg@{K}": _r(values[f"ndcg@{K}"]),
            f"live ndcg@{K}": _r(live["families"].get(family, {}).get(f"ndcg@{K}"))
            if live
            else "-",
        }
        for family, values in candidate["families"].items()
    ]
    return dg.Output(
        evaluation,
        metadata={
            "version": version,
            "live_version": live_version or "-",
            "eval_set_version": search_eval_set.version,
            "queries": candidate["queries"],
            f"recall@{K}": _r(candidate[f"recall@{K}"]),
            f"ndcg@{K}": _r(candidate[f"ndcg@{K}"]),
            "comparison": dg.MetadataValue.md(markdown_table(_comparison_rows(candidate, live))),
            "by_family": dg.MetadataValue.md(markdown_table(families)),
        },
    )


@dg.asset(
    group_name="search",
    io_manager_key=ARTIFACTS,
    ins={"search_index_evaluation": dg.AssetIn()},
    kinds={"json"},
)
def search_index_promotion(
    context: dg.AssetExecutionContext,
    search_store: SearchStoreResource,
    search_index_evaluation: dict[str, Any],
) -> dg.Output[dict[str, Any]]:
    """The rollout gate for a new index version (the core gate plus progressive delivery).

    Refused (never served, reason recorded) if the ANN check did not pass, NDCG@10 < 0.5 or
    recall@10 < 0.4, or either drops more than 0.02 against the live version. Otherwise:
    the first version ever goes live; a new version becomes the challenger and gets the
    canary share of search traffic (set by `PUT /v1/admin/search/rollout`, else
    RETAIL_SEARCH_CANARY_SHARE, default 0.1; sticky by session, user or query). The canary is
    not ended by a timer: `search_monitoring` decides it by click-through from the
    clickstream (a sequential test, once it has served RETAIL_SEARCH_CANARY_MIN_SECONDS,
    default 600; 0 disables the canary), or an operator with `POST /v1/admin/search/promote`.
    Serving follows the store's roles without a restart.
    Every decision goes to the decision log with the gate's table."""
    store = search_store.indexes()
    evaluation = search_index_evaluation
    version = evaluation["version"]
    roles = store.roles()
    live = roles.version("champion")
    checks = store.read_record(version, "checks")
    result = gate(
        evaluation["candidate"],
        evaluation["live"] if live != version else None,
        checks_passed=bool(checks and checks.get("passed")),
    )
    summary = _summary(evaluation, live)
    policy = canary_policy(store)
    build = (_manifest(store, version) or {}).get("build")
    step = rollout_step(version, result, roles, policy, clock.now(), summary, build)
    evidence = {
        "gate": result.table(),
        "headline": headline(
            f"ndcg@{K}",
            evaluation["candidate"][f"ndcg@{K}"],
            f"live {evaluation['live_version']}"
            if evaluation["live"] and live != version
            else None,
            evaluation["live"][f"ndcg@{K}"] if evaluation["live"] and live != version else None,
        ),
    }
    _apply_step(store, version, step, evidence)
    if step.action == "refuse":
        context.log.warning(f"index {version} refused: {step.reason}")
    roles = store.roles()
    decision = {"live": "live", "canary": "canary", "continue": "canary"}.get(
        step.action, "refused" if step.action == "refuse" else "already_live"
    )
    output = {
        "version": version,
        "decision": decision,
        "reason": step.reason,
        "refusal_reasons": result.reasons,
        "live": roles.version("champion"),
        "candidate": roles.version("challenger"),
        "canary_share": policy.share,
        "min_canary_seconds": policy.min_seconds,
        "decided_at": now_iso(),
    }
    return dg.Output(
        output,
        metadata={
            "decision": decision,
            "reason": step.reason,
            "version": version,
            "live": output["live"] or "-",
            "candidate": output["candidate"] or "-",
            "canary_share": policy.share,
            "min_canary_seconds": policy.min_seconds,
            "gate": dg.MetadataValue.md(result.markdown()),
        },
    )


def _summary(evaluation: dict[str, Any], live: str | None) -> str:
    candidate = evaluation["candidate"]
    text = f"NDCG@{K} {candidate[f'ndcg@{K}']:.4f}, recall@{K} {candidate[f'recall@{K}']:.4f}"
    if evaluation["live"] is not None and live != evaluation["version"]:
        text += (
            f" vs live {evaluation['live_version']} NDCG@{K} "
            f"{evaluation['live'][f'ndcg@{K}']:.4f}, recall@{K} "
            f"{evaluation['live'][f'recall@{K}']:.4f}"
        )
    return text


def _apply_step(store: ArtifactStore, version: str, step, evidence: dict[str, Any]) -> None:
    """Carry out a rollout step on the index store (pointer + decision log + record)."""
    actor = "search_gate"
    if step.action == "refuse":
        entry = store.record("refuse", version, reason=step.reason, actor=actor, evidence=evidence)
        store.write_record(version, "decision", {**entry, "status": "refused"})
        return
    if step.action == "live":
        challenger = store.challenger()
        if challenger is not None and challenger != version:
            store.retire_challenger(reason=f"superseded by {version}", actor=actor)
        entry = store.promote(version, reason=step.reason, actor=actor, evidence=evidence)
        store.write_record(version, "decision", {**entry, "status": "live"})
    elif step.action == "canary":
        entry = store.offer(
            version,
            reason=step.reason,
            actor=actor,
            rollout=step.rollout,
            action="canary",
            evidence=evidence,
        )
        store.write_record(version, "decision", {**entry, "status": "canary"})
    store.prune()


assets = [
    product_text_encoder,
    search_eval_set,
    encoder_quantization,
    product_embeddings,
    product_search_index,
    search_index_evaluation,
    search_index_promotion,
]
asset_checks = [ann_recall_at_10_vs_exact]


defs = dg.Definitions(assets=assets, asset_checks=asset_checks)
