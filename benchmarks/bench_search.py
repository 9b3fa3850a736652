"""Semantic product search benchmark: embedding throughput, index builds, ingest-to-searchable
and HTTP search latency/throughput at the default catalog and at 100k synthesized products.

    uv run python benchmarks/bench_search.py [--home /tmp/retail-bench-search]
                                             [--duration 15] [--large 100000] [--skip-large]

In one run:
1. default catalog (`default` scale, 500 SKUs): lands the feeds and materializes the raw,
   dbt and `search` groups at --home if no live index exists there yet (models are not
   trained: search does not need them);
2. embedding throughput of catalog texts with the fp32 and int8 ONNX encoders (texts/s,
   batches of 8, 1 and 2 threads), full HNSW build time, incremental update time;
3. ingest-to-searchable: with `retail serve`'s app (search extension) running, lands a
   products feed with a new SKU and runs the ingestion selection (raw/products -> dbt
   stg_products, dim_products -> search assets); times until the new SKU is returned over
   HTTP, first to a canary session, then (after the promotion run) to everyone;
4. wrk against the app in a subprocess (uvicorn, one worker, query cache disabled and every
   request's query different, so each request embeds its query): p50/p99 at 1 connection and
   requests/s at 8 connections, unfiltered and with a category + price filter;
5. 100k products (--large) synthesized deterministically from the catalog (brand x colour x
   edition variants of every real product, texts rewritten to match), all encoded with the
   chosen encoder (timed; vectors cached in --home for re-runs), full HNSW build, ANN recall
   against exact search, an incremental update of 300 products, publish-to-searchable over
   HTTP, and the same wrk runs against the 100k index.
Needs `wrk`. Targets (issue): default catalog p99 < 10 ms at 1 connection and >= 300 req/s
at 8 connections on 2 cores, query encoding included.
"""

from __future__ import annotations

# onnxruntime before usearch, in every process.
import onnxruntime  # noqa: F401  isort: skip

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from harness import free_port, run_wrk, start, stop

VENV_BIN = Path(sys.executable).parent
ADMIN_TOKEN = "bench-admin-token"
INGEST_SELECTION = " or ".join(
    f"key:{key}"
    for key in (
        "raw/products",
        "staging/stg_products",
        "marts/dim_products",
        "search_eval_set",
        "product_embeddings",
        "product_search_index",
        "search_index_evaluation",
        "search_index_promotion",
    )
)
NEW_TITLE = "Lumen Avalanche Transceiver - Yellow"
NEW_TEXT = f"{NEW_TITLE}. Avalanche transceiver beacon with three antennas for backcountry skiing."
NEW_QUERY = "avalanche beacon"
EDITIONS = ("", "Pro", "Lite", "Plus", "Max", "Sport", "Classic", "Eco", "Travel", "Studio")


# -- helpers ------------------------------------------------------------------------------------


def search_stores(settings):
    from retail_assets.artifacts import Artifacts
    from retail_assets.search.store import SearchStores

    return SearchStores.of(Artifacts.from_settings(settings))


def ensure_platform(home: Path):
    from retail_assets.settings import settings_for_home

    settings = settings_for_home(home, "default")
    if search_stores(settings).live() is None:
        from retail_assets.runner import materialize_platform
        from retail_assets.sources.landing_zone import LandingZone
        from retail_assets.sources.synthetic_landing import land_synthetic_feeds

        print(f"materializing raw feeds, dbt marts and the search group in {home} ...", flush=True)
        land_synthetic_feeds(LandingZone(settings.landing_dir), scale="default", seed=settings.seed)
        started = time.perf_counter()
        summary = materialize_platform(
            settings,
            selection="group:raw or group:staging or group:intermediate or group:marts "
            "or group:search",
        )
        assert summary.success, (summary.failures, summary.failed_checks)
        print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    return settings


def start_server(home: Path, search_dir: Path | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "RETAIL_HOME": str(home),
        "RETAIL_ADMIN_TOKEN": ADMIN_TOKEN,
        "RETAIL_SERVING_POLL_SECONDS": "0.5",
        "RETAIL_SEARCH_QUERY_CACHE_SIZE": "0",
    }
    if search_dir is not None:
        env["RETAIL_SEARCH_DIR"] = str(search_dir)
    log = (home / "logs").joinpath(f"bench-search-serve-{port}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    process = start([sys.executable, __file__, "--serve", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/search/status", timeout=2).json().get("live"):
                return process, url
        except (httpx.TransportError, ValueError):
            pass
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {log}")
        time.sleep(0.5)
    stop(process)
    raise RuntimeError(f"server did not load a live index; see {log}")


def serve(port: int) -> None:
    """The serving app with the search extension (what `retail serve` runs once
    `serving.search` is in EXTENSION_MODULES), one worker."""
    import uvicorn

    import serving.search
    from serving.app import create_app
    from serving.config import ServingConfig

    config = ServingConfig.from_settings()
    app = create_app(config, extensions=[serving.search.extension(config)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def query_corpus(products: pl.DataFrame, n: int = 20000) -> list[str]:
    """Distinct shopper-like queries from catalog words (colour, material, subcategory,
    gender, adjectives from titles); deterministic."""
    rng = np.random.default_rng(7)
    subs = sorted({s.lower() for s in products["subcategory"].drop_nulls()})
    colors = sorted({c.lower() for c in products["color"].drop_nulls()})
    materials = sorted({m.lower() for m in products["material"].drop_nulls()})
    words = sorted(
        {w.lower() for t in products["title"] for w in t.split() if w.isalpha() and len(w) > 3}
    )
    extras = ["for men", "for women", "for kids", "under 50", "waterproof", "lightweight", "gift"]
    out: set[str] = set()
    while len(out) < n:
        parts = [str(rng.choice(subs))]
        if rng.random() < 0.6:
            parts.insert(0, str(rng.choice(colors)))
        if rng.random() < 0.3:
            parts.insert(0, str(rng.choice(materials)))
        if rng.random() < 0.5:
            parts.insert(0, str(rng.choice(words)))
        if rng.random() < 0.4:
            parts.append(str(rng.choice(extras)))
        out.add(" ".join(parts))
    return sorted(out, key=lambda q: hashlib.blake2b(q.encode(), digest_size=8).digest())[:n]


def wrk_script(paths: list[str]) -> str:
    table = ",\n".join(json.dumps(p) for p in paths)
    return (
        "local paths = {\n" + table + "\n}\n"
        "local counter = 0\nlocal thread_id = 0\nlocal threads = 0\n"
        "setup = function(thread)\n  thread:set('thread_id', threads)\n  threads = threads + 1\nend\n"
        "request = function()\n  counter = counter + 1\n"
        "  local i = (counter * 2 + thread_id) % #paths + 1\n"
        "  return wrk.format('GET', paths[i])\nend\n"
    )


def bench_http(url: str, products: pl.DataFrame, duration: int) -> dict[str, dict]:
    queries = query_corpus(products)
    plain = [f"/v1/search?{urllib.parse.urlencode({'q': q, 'k': 10})}" for q in queries]
    categories = sorted(products["category"].drop_nulls().unique().to_list())
    filtered = [
        "/v1/search?"
        + urllib.parse.urlencode(
            {"q": q, "k": 10, "category": categories[i % len(categories)], "max_price": 150}
        )
        for i, q in enumerate(queries)
    ]
    check = httpx.get(url + plain[0])
    assert check.status_code == 200 and check.json()["cached_query"] is False, check.text
    run_wrk(url, wrk_script(plain[-200:]), 3, 2, 1)  # warm-up
    return {
        "1 connection": run_wrk(url, wrk_script(plain), duration, 1, 1),
        "8 connections": run_wrk(url, wrk_script(plain[::-1]), duration, 8, 2),
        "8 connections, category+price filter": run_wrk(url, wrk_script(filtered), duration, 8, 2),
    }


def print_http(label: str, results: dict[str, dict]) -> None:
    print(f"\nHTTP search, {label} (wrk; query cache off, every query distinct)")
    print(f"{'load':40} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for name, r in results.items():
        print(
            f"{name:40} {r['rps']:>8,.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['non_2xx']:>8}"
        )


def wait_for_sku(url: str, query: str, sku: str, session: str, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/v1/search", params={"q": query, "k": 5, "session_id": session})
        if response.status_code == 200 and sku in [r["sku"] for r in response.json()["results"]]:
            return time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"{sku} not searchable within {timeout} s")


# -- default catalog ----------------------------------------------------------------------------


def embedding_throughput(settings, texts: list[str]) -> dict[str, float]:
    from retail_assets.search.catalog import PRODUCT_MAX_TOKENS
    from retail_assets.search.encoder import FP32_FILE, INT8_FILE, TextEncoder

    encoders = search_stores(settings).encoders
    folder = encoders.version_dir(encoders.champion())
    out = {}
    for label, filename in (("fp32", FP32_FILE), ("int8", INT8_FILE)):
        for threads in (1, 2):
            encoder = TextEncoder(folder, filename, threads=threads, max_tokens=PRODUCT_MAX_TOKENS)
            encoder.encode(texts[:16], batch_size=8)
            started = time.perf_counter()
            encoder.encode(texts, batch_size=8)
            out[f"{label}, {threads} thread(s)"] = len(texts) / (time.perf_counter() - started)
    return out


def index_builds(settings) -> dict[str, float]:
    """Full build of the live version's vectors, and an incremental update that replaces 5,
    adds 5 and removes 5 products (vectors perturbed), both into a scratch folder."""
    from retail_assets.search.index import PRODUCTS_FILE, VECTORS_FILE, build_index_files

    store = search_stores(settings)
    live = store.indexes.version_dir(store.live())
    products = pl.read_parquet(live / PRODUCTS_FILE)
    vectors = np.load(live / VECTORS_FILE)
    scratch = Path(tempfile.mkdtemp(prefix="bench-index-"))
    try:
        full = build_index_files(scratch / "full", products, vectors, threads=2)
        rng = np.random.default_rng(3)
        changed = products.head(10)["sku"].to_list()
        new_products = products.with_columns(
            content_hash=pl.when(pl.col("sku").is_in(changed[:5]))
            .then(pl.col("content_hash") + "x")
            .otherwise(pl.col("content_hash"))
        ).filter(~pl.col("sku").is_in(changed[5:]))
        keep = ~products["sku"].is_in(changed[5:]).to_numpy()
        new_vectors = vectors[keep].copy()
        new_vectors[:5] += rng.normal(0, 0.01, new_vectors[:5].shape).astype(np.float32)
        extra = products.tail(5).with_columns(
            sku=pl.Series([f"SKU-B{i:04d}" for i in range(5)]),
        )
        from retail_assets.search.catalog import sku_key

        extra = extra.with_columns(
            key=pl.Series([sku_key(s) for s in extra["sku"]], dtype=pl.Int64)
        )
        new_products = pl.concat([new_products, extra])
        new_vectors = np.concatenate([new_vectors, vectors[-5:]])
        incremental = build_index_files(
            scratch / "incremental", new_products, new_vectors, base_folder=scratch / "full"
        )
        assert incremental.mode == "incremental", incremental
        return {
            "products": len(products),
            "full_s": full.seconds,
            "incremental_s": incremental.seconds,
            "incremental": f"reused {incremental.reused}, replaced {incremental.replaced}, "
            f"added {incremental.added}, removed {incremental.removed}",
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def land_new_product(settings, sku: str, title: str, description: str) -> None:
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.warehouse import WarehouseResource

    as_of = WarehouseResource(path=str(settings.warehouse_path)).query(
        "select max(as_of_date) as d from marts.dim_products"
    )["d"][0]
    zone = LandingZone(settings.landing_dir)
    feed = zone.read("products").filter(~pl.col("sku").str.starts_with("SKU-9"))
    base = feed.filter(pl.col("discontinued_date").is_null()).sort("sku").head(1)
    new = base.with_columns(
        sku=pl.lit(sku),
        title=pl.lit(title),
        description=pl.lit(description),
        launch_date=pl.lit(as_of - timedelta(days=1)),
    )
    zone.write({"products": pl.concat([feed, new])}, source=zone.manifest()["source"])


def ingest_to_searchable(settings, url: str) -> dict[str, float]:
    """Land a feed with a new SKU, run the ingestion selection and time until the SKU is
    returned over HTTP: to a canary session (candidate at share 0.5), then to everyone after
    the promotion run (minimum canary time 0)."""
    from retail_assets.core.store import Rollout, bucket
    from retail_assets.runner import materialize_platform

    store = search_stores(settings).indexes
    store.set_rollout(Rollout("canary", 0.5, 3600), reason="benchmark", actor="bench_search")
    canary_session = next(f"s{i}" for i in range(1000) if bucket(f"search:s{i}") < 0.5)
    live_session = next(f"s{i}" for i in range(1000) if bucket(f"search:s{i}") >= 0.5)
    stamp = int(time.time())
    sku = f"SKU-9{stamp % 10000:04d}"
    title = "Aurora Heated Ski Gloves - Red"
    query = "heated ski gloves"
    started = time.monotonic()
    land_new_product(settings, sku, title, "Battery-heated ski gloves with three warmth settings.")
    summary = materialize_platform(settings, selection=INGEST_SELECTION, log_level="ERROR")
    assert summary.success, (summary.failures, summary.failed_checks)
    pipeline_s = time.monotonic() - started
    from retail_assets.runner import instance_for

    steps = {
        stat.step_key: stat.end_time - stat.start_time
        for stat in instance_for(settings).get_run_step_stats(summary.run_id)
        if stat.start_time and stat.end_time
    }
    canary_s = wait_for_sku(url, query, sku, canary_session) - started
    store.set_rollout(Rollout("canary", 0.5, 0), reason="benchmark", actor="bench_search")
    promote_started = time.monotonic()
    summary = materialize_platform(
        settings, selection="key:search_index_promotion", log_level="ERROR"
    )
    assert summary.success, summary.failures
    live_s = wait_for_sku(url, query, sku, live_session) - started
    return {
        "pipeline_s": pipeline_s,
        "to_canary_s": canary_s,
        "promotion_run_s": time.monotonic() - promote_started,
        "to_everyone_s": live_s,
        "build": search_stores(settings).manifest(store.champion())["build"],
        "steps": steps,
    }


# -- 100k ---------------------------------------------------------------------------------------


def synthesize(products: pl.DataFrame, n: int) -> pl.DataFrame:
    """`n` products from the searchable catalog: variant v of base product b takes the v-th
    (brand, colour, edition) combination of b's department brands and subcategory colours,
    with the title and text rewritten to match. Deterministic."""
    from retail_assets.search.catalog import content_hash, sku_key

    brands = products.group_by("department").agg(pl.col("brand").unique().sort())
    brands = dict(zip(brands["department"], brands["brand"], strict=True))
    colors = products.group_by("subcategory").agg(pl.col("color").drop_nulls().unique().sort())
    colors = dict(zip(colors["subcategory"], colors["color"], strict=True))
    base = products.to_dicts()
    rows = []
    for i in range(n):
        p = base[i % len(base)]
        v = i // len(base)
        b_list = list(brands[p["department"]])
        c_list = list(colors[p["subcategory"]]) or [p["color"]]
        brand = b_list[v % len(b_list)]
        color = c_list[(v // len(b_list)) % len(c_list)]
        edition = EDITIONS[(v // (len(b_list) * len(c_list))) % len(EDITIONS)]
        series = v // (len(b_list) * len(c_list) * len(EDITIONS))
        title = p["title"].replace(p["brand"], brand, 1)
        if p["color"] and color:
            title = title.replace(p["color"], color)
        words = title.split(" - ")
        suffix = " ".join(x for x in (edition, f"S{series}" if series else "") if x)
        if suffix:
            words[0] = f"{words[0]} {suffix}"
        title = " - ".join(words)
        text = p["text"].replace(p["title"], title).replace(p["brand"], brand)
        if p["color"] and color:
            text = text.replace(p["color"], color)
        sku = f"SKU-L{i:06d}"
        rows.append(
            {
                **p,
                "sku": sku,
                "key": sku_key(sku),
                "title": title,
                "brand": brand,
                "color": color,
                "list_price": round(p["list_price"] * (0.85 + 0.3 * ((i * 7919) % 100) / 100), 2),
                "text": text,
                "content_hash": content_hash(text),
            }
        )
    return pl.DataFrame(rows, schema=products.schema)


def large_catalog(settings, n: int):
    """`n` synthesized products and their embeddings (cached per encoder and catalog):
    (store, live manifest, real base products, products, encoder, vectors)."""
    from retail_assets.search.catalog import PRODUCT_MAX_TOKENS, catalog_hash
    from retail_assets.search.encoder import TextEncoder

    store = search_stores(settings)
    live = store.manifest(store.live())
    snapshot = Path(live["embeddings_snapshot"])
    # The real catalog only: not the products earlier ingest-to-searchable runs added.
    base = pl.read_parquet(snapshot / "products.parquet").filter(
        ~pl.col("sku").str.starts_with("SKU-9")
    )
    products = synthesize(base, n)
    encoder = TextEncoder(
        store.encoders.version_dir(live["encoder"]["version"]),
        live["encoder"]["file"],
        threads=2,
        max_tokens=PRODUCT_MAX_TOKENS,
    )
    large_dir = settings.home / f"search-large-{n}"
    cache = large_dir / f"vectors-{live['encoder']['key']}-{catalog_hash(products)}.npy"
    print(f"\n{n:,} synthesized products from {len(base)} real ones ({live['encoder']['file']})")
    if cache.exists():
        vectors = np.load(cache)
        info = json.loads(cache.with_suffix(".json").read_text())
        print(
            f"  encoding (cached from an earlier run): {info['seconds']:.0f} s, "
            f"{info['texts_per_s']:.1f} texts/s with 2 threads"
        )
    else:
        large_dir.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        vectors = encoder.encode(products["text"].to_list(), batch_size=8)
        seconds = time.perf_counter() - started
        np.save(cache, vectors)
        info = {"seconds": seconds, "texts_per_s": n / seconds}
        cache.with_suffix(".json").write_text(json.dumps(info))
        print(f"  encoding: {seconds:.0f} s, {n / seconds:.1f} texts/s with 2 threads")
    return store, live, base, products, encoder, vectors


def bench_graph_precision(settings, n: int) -> None:
    """The HNSW graph's vector precision (f32 / f16 / i8) against recall and search time, on
    the `n`-product catalog: same M and ef_construction, insert order and queries as served."""
    from usearch.index import Index

    from retail_assets.search.encoder import EMBEDDING_DIM
    from retail_assets.search.index import HNSW_PARAMS, INSERT_SEED, top_k

    _, _, base, _, encoder, vectors = large_catalog(settings, n)
    queries = encoder.encode(query_corpus(base, 300), batch_size=32)
    exact = [set(top_k(row, 10).tolist()) for row in queries @ vectors.T]
    keys = np.arange(len(vectors), dtype=np.uint64)
    order = np.random.default_rng(INSERT_SEED).permutation(len(vectors))
    print(
        f"\ngraph precision, {n:,} products, M={HNSW_PARAMS['connectivity']}, "
        f"ef_construction={HNSW_PARAMS['expansion_add']}, 300 queries, one thread "
        f"(in use: {HNSW_PARAMS['dtype']})"
    )
    print(f"{'graph':6} {'build s':>8} {'ef':>5} {'recall@10':>10} {'ms/query':>9}")
    for dtype in ("f32", "f16", "i8"):
        graph = Index(
            ndim=EMBEDDING_DIM,
            metric="cos",
            dtype=dtype,
            connectivity=HNSW_PARAMS["connectivity"],
            expansion_add=HNSW_PARAMS["expansion_add"],
        )
        started = time.perf_counter()
        graph.add(keys[order], vectors[order], threads=2)
        build_s = time.perf_counter() - started
        for ef in (384, 512):
            graph.expansion_search = ef
            started = time.perf_counter()
            found = [graph.search(q, 10, threads=1).keys for q in queries]
            per_query_ms = (time.perf_counter() - started) / len(queries) * 1000
            recall = np.mean(
                [len(set(f.tolist()) & e) / 10 for f, e in zip(found, exact, strict=True)]
            )
            print(f"{dtype:6} {build_s:8.1f} {ef:5d} {recall:10.4f} {per_query_ms:9.3f}")


def bench_large(settings, n: int, duration: int) -> None:
    from retail_assets.atomic_files import write_json_atomic
    from retail_assets.core.clock import now_iso
    from retail_assets.core.decisions import DecisionLog
    from retail_assets.core.store import ArtifactStore
    from retail_assets.search.catalog import catalog_hash
    from retail_assets.search.evaluation import recall_vs_exact
    from retail_assets.search.index import (
        HNSW_PARAMS,
        MANIFEST_FILE,
        LoadedIndex,
        build_index_files,
        validate_index_version,
    )

    store, live, base, products, encoder, vectors = large_catalog(settings, n)
    large_dir = settings.home / f"search-large-{n}"
    large_search = large_dir / "search"
    if large_search.exists():
        shutil.rmtree(large_search)
    shutil.copytree(store.encoders.root, large_search / "encoder")
    large_store = ArtifactStore(
        large_search / "indexes",
        "search/index",
        DecisionLog(large_dir / "decisions.jsonl"),
        validate_index_version,
    )

    def publish(version: str, frame: pl.DataFrame, matrix: np.ndarray, base_version=None):
        with large_store.staging() as staged:
            stats = build_index_files(
                staged,
                frame,
                matrix,
                base_folder=large_store.version_dir(base_version) if base_version else None,
                threads=2,
            )
            manifest = {
                "version": version,
                "built_at": now_iso(),
                "encoder": live["encoder"],
                "catalog_hash": catalog_hash(frame),
                "products": len(frame),
                "hnsw": HNSW_PARAMS,
                "build": stats.__dict__,
            }
            write_json_atomic(staged / MANIFEST_FILE, manifest)
            large_store.publish(version, staged, replace=True)
        loaded = LoadedIndex(large_store.version_dir(version))
        queries = encoder.encode(query_corpus(base, 300), batch_size=32)
        recall = recall_vs_exact(loaded, queries)
        large_store.write_record(
            version, "checks", {"passed": recall["recall@10"] >= 0.95, "recall": recall}
        )
        return stats, recall

    stats, recall = publish("large-v1", products, vectors)
    large_store.promote("large-v1", reason="benchmark", actor="bench_search")
    print(
        f"  full HNSW build: {stats.seconds:.1f} s; ANN recall@10 vs exact "
        f"{recall['recall@10']:.4f} over {recall['queries']} queries"
    )

    process, url = start_server(settings.home, large_search)
    try:
        results = bench_http(url, base, duration)
        # Incremental: 100 products change text, 100 are new, 100 leave the catalog.
        started = time.monotonic()
        changed = products.head(100).with_columns(
            title=pl.col("title") + " Gen 2", text=pl.col("text") + " Second generation."
        )
        is_new = pl.col("sku") == f"SKU-L{n:06d}"
        new = synthesize(base, n + 100).tail(100)
        new = new.with_columns(
            title=pl.when(is_new).then(pl.lit(NEW_TITLE)).otherwise(pl.col("title")),
            text=pl.when(is_new).then(pl.lit(NEW_TEXT)).otherwise(pl.col("text")),
        )
        fresh = pl.concat([changed, new])
        from retail_assets.search.catalog import content_hash

        fresh = fresh.with_columns(content_hash=pl.Series([content_hash(t) for t in fresh["text"]]))
        encode_started = time.perf_counter()
        fresh_vectors = encoder.encode(fresh["text"].to_list(), batch_size=8)
        encode_s = time.perf_counter() - encode_started
        updated = pl.concat([fresh.head(100), products[100 : n - 100], fresh.tail(100)])
        updated_vectors = np.concatenate(
            [fresh_vectors[:100], vectors[100 : n - 100], fresh_vectors[100:]]
        )
        stats2, recall2 = publish("large-v2", updated, updated_vectors, base_version="large-v1")
        large_store.promote("large-v2", reason="benchmark incremental", actor="bench_search")
        searchable = wait_for_sku(url, NEW_QUERY, f"SKU-L{n:06d}", "anyone") - started
    finally:
        stop(process)
    print(
        f"  incremental update ({stats2.mode}: reused {stats2.reused}, replaced "
        f"{stats2.replaced}, added {stats2.added}, removed {stats2.removed}): encode "
        f"{encode_s:.1f} s + index {stats2.seconds:.2f} s; ANN recall@10 after "
        f"{recall2['recall@10']:.4f}"
    )
    print(
        f"  publish-to-searchable over HTTP (encode, patch graph, recall check, LIVE, serving "
        f"poll 0.5 s + load): {searchable:.1f} s"
    )
    print_http(f"{n:,} products", results)


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--home", type=Path, default=Path(tempfile.gettempdir()) / "retail-bench-search"
    )
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--only-large", action="store_true", help="skip the default-catalog part")
    parser.add_argument(
        "--graph-precision",
        action="store_true",
        help="only compare f32/f16/i8 HNSW graphs on the --large catalog",
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install wrk)")
    with open("/proc/loadavg") as handle:
        load = handle.read().split()[:3]
    print(f"home={args.home} cores={os.cpu_count()} load average at start {' '.join(load)}")
    settings = ensure_platform(args.home)
    if args.graph_precision:
        bench_graph_precision(settings, args.large)
        return
    if args.only_large:
        bench_large(settings, args.large, args.duration)
        return
    store = search_stores(settings)
    live = store.manifest(store.live())
    products = pl.read_parquet(Path(live["embeddings_snapshot"]) / "products.parquet")
    print(f"default catalog: {len(products)} searchable products, index {store.live()}")
    quantization = store.quantization(live["encoder"]["version"])
    print(f"quantization decision: {quantization['quantization']} - {quantization['reason']}")

    throughput = embedding_throughput(settings, products["text"].to_list())
    print("\nembedding throughput (catalog texts, <= 128 tokens, batches of 8)")
    for label, value in throughput.items():
        print(f"  {label:22} {value:8.1f} texts/s")
    builds = index_builds(settings)
    print(
        f"\nindex build ({builds['products']} products): full {builds['full_s'] * 1000:.1f} ms, "
        f"incremental {builds['incremental_s'] * 1000:.1f} ms ({builds['incremental']})"
    )

    process, url = start_server(settings.home)
    try:
        results = bench_http(url, products, args.duration)
        ingest = ingest_to_searchable(settings, url)
    finally:
        stop(process)
    print(
        f"\ningest-to-searchable (new SKU landed -> returned by GET /v1/search): pipeline run "
        f"{ingest['pipeline_s']:.1f} s (raw load + dbt stg_products/dim_products + search "
        f"assets; index {ingest['build']['mode']}, {ingest['build']['seconds'] * 1000:.1f} ms); "
        f"searchable for a canary session after {ingest['to_canary_s']:.1f} s; promotion run "
        f"{ingest['promotion_run_s']:.1f} s; searchable for everyone after "
        f"{ingest['to_everyone_s']:.1f} s"
    )
    print(
        "  steps of the ingestion run: "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in ingest["steps"].items())
    )
    print_http(f"default catalog ({len(products)} products)", results)
    one, eight = results["1 connection"], results["8 connections"]
    print(
        f"\ntargets: p99 at 1 connection {one['p99_ms']:.2f} ms (< 10 ms: "
        f"{'PASS' if one['p99_ms'] < 10 else 'FAIL'}); 8 connections {eight['rps']:.0f} req/s "
        f"(>= 300: {'PASS' if eight['rps'] >= 300 else 'FAIL'})"
    )
    if not args.skip_large:
        bench_large(settings, args.large, args.duration)
    with open("/proc/loadavg") as handle:
        print(f"\nload average at end {' '.join(handle.read().split()[:3])}")


if __name__ == "__main__":
    main()
