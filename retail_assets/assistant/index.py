"""The RAG index: a llama-index `VectorStoreIndex` (simple in-memory vector store, persisted as
JSON) whose embeddings come from the platform's ONNX MiniLM encoder through `EncoderEmbedding`.
No LLM is configured (`Settings.llm = None`) and nothing is downloaded: llama-index is used for
nodes, storage and retrieval only.

    <root>/versions/<version>/   llama-index storage (docstore, vector store, index store),
                                 products.parquet (the indexed SKUs and prices) and
                                 manifest.json
    <root>/CURRENT               the published version (replaced atomically)

A version is `<encoder version>-<content hash>`: the same catalog, documents and encoder
always give the same version, and publishing it again only moves CURRENT. A version is built
under a temporary folder, renamed into place and only then named in CURRENT, so serving never
loads a half-written index.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from retail_assets.assistant.documents import DOCUMENT, PRODUCT, NodeSpec, content_hash
from retail_assets.atomic_files import atomic_write
from retail_assets.search.encoder import EMBEDDING_DIM, TextEncoder, load_encoder

KEEP_VERSIONS = 3
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
    def load(cls, folder: Path, search_root: Path, threads: int = 1) -> RagIndex:
        core = _llama_index()
        manifest = json.loads((folder / MANIFEST).read_text())
        encoder_dir = Path(search_root) / "encoder" / manifest["encoder"]["folder"]
        if not encoder_dir.exists():
            raise FileNotFoundError(
                f"index {manifest['version']} needs text encoder {manifest['encoder']['folder']}, "
                f"which is not published under {Path(search_root) / 'encoder'}"
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


class RagIndexStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.versions = self.root / "versions"

    def current(self) -> str | None:
        pointer = self.root / "CURRENT"
        return pointer.read_text().strip() if pointer.exists() else None

    def version_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise ValueError(f"invalid index version {version!r}")
        return self.versions / version

    def manifest(self, version: str | None = None) -> dict[str, Any]:
        version = version or self.current()
        if version is None:
            raise FileNotFoundError(f"no RAG index published under {self.root}")
        return json.loads((self.version_dir(version) / MANIFEST).read_text())

    def load(self, search_root: Path, version: str | None = None, threads: int = 1) -> RagIndex:
        version = version or self.current()
        if version is None:
            raise FileNotFoundError(f"no RAG index published under {self.root}")
        return RagIndex.load(self.version_dir(version), search_root, threads=threads)

    def publish(
        self,
        nodes: list[NodeSpec],
        products: pl.DataFrame,
        search_root: Path,
    ) -> tuple[dict[str, Any], bool]:
        """Build (or reuse) the version for these nodes and make it current. Returns the
        manifest and whether a new version was built."""
        encoder = load_encoder(Path(search_root) / "encoder", threads=2)
        encoder_dir = encoder.folder
        digest = content_hash(nodes)
        version = f"{encoder_dir.name}-{encoder.version}-{digest[:12]}"
        target = self.version_dir(version)
        built = False
        if not (target / MANIFEST).exists():
            self._build(target, version, nodes, products, encoder, encoder_dir, digest)
            built = True
        atomic_write(self.root / "CURRENT", version.encode())
        self._prune(keep={version})
        return self.manifest(version), built

    def _build(
        self,
        target: Path,
        version: str,
        nodes: list[NodeSpec],
        products: pl.DataFrame,
        encoder: TextEncoder,
        encoder_dir: Path,
        digest: str,
    ) -> None:
        core = _llama_index()
        self.versions.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.versions, prefix=".incoming-"))
        try:
            vectors = encoder.encode([n.text for n in nodes])
            assert vectors.shape == (len(nodes), EMBEDDING_DIM)
            index = core.VectorStoreIndex(
                _text_nodes(nodes, vectors), embed_model=encoder_embedding(encoder)
            )
            index.storage_context.persist(persist_dir=str(staging / STORAGE_DIR))
            products.write_parquet(staging / PRODUCTS_FILE)
            kinds = [n.metadata["kind"] for n in nodes]
            manifest = {
                "version": version,
                "built_at": datetime.now(UTC).isoformat(),
                "content_hash": digest,
                "encoder": {
                    "folder": encoder_dir.name,
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
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _prune(self, keep: set[str]) -> None:
        """Keep the newest few versions: serving may still be answering from the previous."""
        published = sorted(
            (p for p in self.versions.iterdir() if not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
        )
        for old in published[:-KEEP_VERSIONS]:
            if old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
