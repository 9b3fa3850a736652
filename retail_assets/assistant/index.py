"""The RAG index: a llama-index `VectorStoreIndex` (simple in-memory vector store, persisted as
JSON) whose embeddings come from the platform's ONNX MiniLM encoder through `EncoderEmbedding`.
No LLM is configured (`Settings.llm = None`) and nothing is downloaded: llama-index is used for
nodes, storage and retrieval only.

The index is a core artifact (`Artifacts.rag_index()`, `assistant/rag_index`):

    <assistant_dir>/index/versions/<version>/   llama-index storage (docstore, vector store,
                                                index store), products.parquet (the indexed
                                                SKUs and prices) and manifest.json
    <assistant_dir>/index/ROLES.json            champion = the index serving answers from

A version is `<encoder version>-<content hash>`: the same catalog, documents and encoder
always give the same version, and publishing it again only re-confirms the champion. A version
is staged, renamed into place and only then made champion, so serving never loads a
half-written index.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from retail_assets.assistant.documents import DOCUMENT, PRODUCT, NodeSpec, content_hash
from retail_assets.core.store import ArtifactStore
from retail_assets.search.encoder import EMBEDDING_DIM, TextEncoder
from retail_assets.search.encoder_store import load_encoder

MANIFEST = "manifest.json"
PRODUCTS_FILE = "products.parquet"
STORAGE_DIR = "storage"
_LLAMA_LOCK = threading.Lock()


_LLM_DISABLED = False


def _llama_index():
    """Import llama-index with the LLM switched off (it must never reach for OpenAI)."""
    global _LLM_DISABLED
    with _LLAMA_LOCK:
        import llama_index.core as core

        if not _LLM_DISABLED:
            import contextlib
            import io

            # Settings.llm = None prints "LLM is explicitly disabled. Using MockLLM."
            with contextlib.redirect_stdout(io.StringIO()):
                core.Settings.llm = None
            _LLM_DISABLED = True
        return core


def encoder_embedding(encoder: TextEncoder):
    """A llama-index `BaseEmbedding` over the ONNX `TextEncoder` (defined lazily: importing
    llama-index costs ~2 s, which the Dagster code location should not pay at load)."""
    _llama_index()
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class EncoderEmbedding(BaseEmbedding):
        """all-MiniLM-L6-v2 through onnxruntime: L2-normalised 384-d vectors."""

        _encoder: Any = PrivateAttr()

        def __init__(self, encoder: TextEncoder, **kwargs: Any):
            super().__init__(model_name=f"minilm-onnx-{encoder.version}", **kwargs)
            self._encoder = encoder

        @classmethod
        def class_name(cls) -> str:
            return "EncoderEmbedding"

        def _get_query_embedding(self, query: str) -> list[float]:
            return self._encoder.encode([query])[0].tolist()

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._encoder.encode([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return self._encoder.encode(list(texts)).tolist()

    return EncoderEmbedding(encoder, embed_batch_size=64)


def _text_nodes(nodes: list[NodeSpec], vectors: np.ndarray):
    from llama_index.core.schema import TextNode

    out = []
    for spec, vector in zip(nodes, vectors, strict=True):
        keys = list(spec.metadata)
        out.append(
            TextNode(
                id_=spec.node_id,
                text=spec.text,
                metadata=spec.metadata,
                embedding=vector.tolist(),
                excluded_embed_metadata_keys=keys,
                excluded_llm_metadata_keys=keys,
            )
        )
    return out


@dataclass
class Hit:
    node_id: str
    text: str
    metadata: dict[str, Any]
    score: float

    @property
    def kind(self) -> str:
        return self.metadata.get("kind", "")


class RagIndex:
    """A loaded index version: retrieval by kind, lookup by node id, the indexed catalog."""

    def __init__(self, folder: Path, encoder: TextEncoder, index, manifest: dict[str, Any]):
        self.folder = folder
        self.encoder = encoder
        self.index = index
        self.manifest = manifest
        self.version: str = manifest["version"]
        self.products = pl.read_parquet(folder / PRODUCTS_FILE)
        self._extra: dict[str, NodeSpec] = {}
        self._passage_vectors: dict[str, np.ndarray] = {}

    def passage_vectors(self, texts: list[str]) -> np.ndarray:
        """Embeddings of passages cut from this version's documents, each encoded once: the
        documents are fixed per version, so the set is bounded and requests reuse them."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._passage_vectors]
        if missing:
            self._passage_vectors.update(zip(missing, self.encoder.encode(missing), strict=True))
        return np.stack([self._passage_vectors[t] for t in texts])

    @classmethod
    def load(cls, folder: Path, encoders: ArtifactStore, threads: int = 1) -> RagIndex:
        """A published version with the encoder it was built with (from the encoder store)."""
        core = _llama_index()
        manifest = json.loads((folder / MANIFEST).read_text())
        encoder_dir = encoders.version_dir(manifest["encoder"]["folder"])
        if not encoder_dir.exists():
            raise FileNotFoundError(
                f"index {manifest['version']} needs text encoder {manifest['encoder']['folder']}, "
                f"which is not published under {encoders.root}"
            )
        encoder = TextEncoder(encoder_dir, manifest["encoder"]["file"], threads=threads)
        if encoder.version != manifest["encoder"]["model_hash"]:
            raise ValueError(
                f"encoder {encoder_dir} has hash {encoder.version}, index was built with "
                f"{manifest['encoder']['model_hash']}"
            )
        storage = core.StorageContext.from_defaults(persist_dir=str(folder / STORAGE_DIR))
        index = core.load_index_from_storage(storage, embed_model=encoder_embedding(encoder))
        loaded = cls(folder, encoder, index, manifest)
        if len(loaded.index.docstore.docs) != manifest["nodes"]:
            raise ValueError(
                f"index {manifest['version']} holds {len(loaded.index.docstore.docs)} nodes, "
                f"manifest says {manifest['nodes']}"
            )
        return loaded

    def embed(self, text: str) -> np.ndarray:
        return self.encoder.encode([text])[0]

    def retrieve(
        self, query: str, kind: str, k: int, embedding: np.ndarray | None = None
    ) -> list[Hit]:
        from llama_index.core.schema import QueryBundle
        from llama_index.core.vector_stores import ExactMatchFilter, MetadataFilters

        vector = self.embed(query) if embedding is None else embedding
        retriever = self.index.as_retriever(
            similarity_top_k=k,
            filters=MetadataFilters(filters=[ExactMatchFilter(key="kind", value=kind)]),
        )
        results = retriever.retrieve(QueryBundle(query_str=query, embedding=vector.tolist()))
        return [
            Hit(r.node.node_id, r.node.get_content(), dict(r.node.metadata), float(r.score or 0))
            for r in results
        ]

    def get(self, node_id: str) -> Hit | None:
        node = self.index.docstore.get_node(node_id, raise_error=False)
        if node is None:
            return None
        return Hit(node.node_id, node.get_content(), dict(node.metadata), 1.0)

    def nodes(self, kind: str | None = None) -> list[Hit]:
        out = []
        for node in self.index.docstore.docs.values():
            if kind is None or node.metadata.get("kind") == kind:
                out.append(Hit(node.node_id, node.get_content(), dict(node.metadata), 0.0))
        return sorted(out, key=lambda h: h.node_id)

    def insert(self, nodes: list[NodeSpec]) -> None:
        """Add nodes to this loaded copy only (never persisted): the eval suite uses it for
        test-only products, e.g. one whose description carries a prompt injection."""
        vectors = self.encoder.encode([n.text for n in nodes])
        self.index.insert_nodes(_text_nodes(nodes, vectors))
        extra = pl.DataFrame(
            [
                {
                    "sku": n.metadata["sku"],
                    "title": n.metadata["title"],
                    "list_price": n.metadata["list_price"],
                }
                for n in nodes
                if n.metadata.get("kind") == PRODUCT
            ],
            schema=self.products.select("sku", "title", "list_price").schema,
        )
        if extra.height:
            self.products = pl.concat([self.products, extra], how="diagonal_relaxed")


def validate_rag_index(folder: Path) -> list[str]:
    """A version is complete when its manifest, storage and indexed-products table exist
    (loading it, which checks the node count and the encoder hash, is serving's self-test)."""
    problems = []
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return [f"unreadable {MANIFEST}: {exc}"]
    for key in ("version", "encoder", "nodes"):
        if key not in manifest:
            problems.append(f"{MANIFEST} lacks {key!r}")
    if not (folder / STORAGE_DIR).is_dir():
        problems.append(f"{STORAGE_DIR}/ missing")
    if not (folder / PRODUCTS_FILE).is_file():
        problems.append(f"{PRODUCTS_FILE} missing")
    return problems


def read_manifest(store: ArtifactStore, version: str | None = None) -> dict[str, Any]:
    version = version or store.champion()
    if version is None:
        raise FileNotFoundError(f"no RAG index published under {store.root}")
    return json.loads((store.version_dir(version) / MANIFEST).read_text())


def load_champion(store: ArtifactStore, encoders: ArtifactStore, threads: int = 1) -> RagIndex:
    """The index serving answers from (a fresh copy: the eval suite inserts test products)."""
    version = store.champion()
    if version is None:
        raise FileNotFoundError(f"no RAG index published under {store.root}")
    return RagIndex.load(store.version_dir(version), encoders, threads=threads)


def publish_rag_index(
    store: ArtifactStore,
    encoders: ArtifactStore,
    nodes: list[NodeSpec],
    products: pl.DataFrame,
    actor: str = "pipeline",
) -> tuple[dict[str, Any], bool]:
    """Build (or reuse) the version for these nodes and make it the champion. Returns the
    manifest and whether a new version was built."""
    encoder = load_encoder(encoders, threads=2)
    digest = content_hash(nodes)
    version = f"{encoder.folder.name}-{encoder.version}-{digest[:12]}"
    built = False
    if not store.has(version):
        with store.staging() as staged:
            _build(staged, version, nodes, products, encoder, digest)
            store.publish(version, staged)
        built = True
    if store.champion() != version:
        store.promote(
            version,
            action="publish",
            reason=f"{len(nodes)} nodes ({'built' if built else 'reused'})",
            actor=actor,
        )
    store.prune()
    return read_manifest(store, version), built


def _build(
    staged: Path,
    version: str,
    nodes: list[NodeSpec],
    products: pl.DataFrame,
    encoder: TextEncoder,
    digest: str,
) -> None:
    core = _llama_index()
    vectors = encoder.encode([n.text for n in nodes])
    assert vectors.shape == (len(nodes), EMBEDDING_DIM)
    index = core.VectorStoreIndex(
        _text_nodes(nodes, vectors), embed_model=encoder_embedding(encoder)
    )
    index.storage_context.persist(persist_dir=str(staged / STORAGE_DIR))
    products.write_parquet(staged / PRODUCTS_FILE)
    kinds = [n.metadata["kind"] for n in nodes]
    manifest = {
        "version": version,
        "built_at": datetime.now(UTC).isoformat(),
        "content_hash": digest,
        "encoder": {
            "folder": encoder.folder.name,
            "file": encoder.filename,
            "model_hash": encoder.version,
        },
        "nodes": len(nodes),
        "products": kinds.count(PRODUCT),
        "document_sections": kinds.count(DOCUMENT),
        "documents": sorted(
            {n.metadata["doc_id"] for n in nodes if n.metadata["kind"] == DOCUMENT}
        ),
        "flagged_nodes": {n.node_id: n.flags for n in nodes if n.flags},
    }
    (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
