"""The text encoder as a core artifact (`Artifacts.search_encoder()`, `search/encoder`):

    <search_dir>/encoder/versions/<version>/   encoder.fp32.onnx, encoder.int8.onnx,
                                               tokenizer.json, manifest.json,
                                               quantization.json (the measured int8/fp32
                                               decision, written by `encoder_quantization`)
    <search_dir>/encoder/ROLES.json            champion = the encoder in use

A version is the hash of the exported fp32 graph, so re-exporting the same weights reuses it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from retail_assets.core.store import ArtifactStore
from retail_assets.search.encoder import (
    EMBEDDING_DIM,
    FP32_FILE,
    INT8_FILE,
    MAX_TOKENS,
    MODEL_NAME,
    TOKENIZER_FILE,
    TextEncoder,
    export_encoder,
)

MANIFEST = "manifest.json"
QUANTIZATION = "quantization"


def publish_encoder(store: ArtifactStore, actor: str = "pipeline") -> dict[str, Any]:
    """Export the encoder, publish it as a version (reused when the graph is unchanged) and
    make it the champion; returns its manifest."""
    with store.staging() as staged:
        agreement = export_encoder(staged)
        version = hashlib.sha256((staged / FP32_FILE).read_bytes()).hexdigest()[:12]
        manifest = {
            "model": MODEL_NAME,
            "version": version,
            "dimension": EMBEDDING_DIM,
            "max_tokens": MAX_TOKENS,
            # What other users of the encoder (the RAG index) load; product search uses the
            # file `encoder_quantization` measured to be good enough (quantization.json).
            "serving_file": FP32_FILE,
            "agreement": agreement,
        }
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2))
        store.publish(version, staged)
    if store.champion() != version:
        store.promote(version, action="publish", reason=f"exported {MODEL_NAME}", actor=actor)
    store.prune()
    return encoder_manifest(store, version)


def validate_encoder(folder: Path) -> list[str]:
    missing = [
        name
        for name in (MANIFEST, FP32_FILE, INT8_FILE, TOKENIZER_FILE)
        if not (folder / name).is_file()
    ]
    return [f"{name} missing" for name in missing]


def encoder_manifest(store: ArtifactStore, version: str | None = None) -> dict[str, Any]:
    version = version or store.champion()
    if version is None:
        raise FileNotFoundError(f"no text encoder published under {store.root}")
    return json.loads((store.version_dir(version) / MANIFEST).read_text())


def load_encoder(
    store: ArtifactStore,
    filename: str | None = None,
    threads: int = 1,
    max_tokens: int = MAX_TOKENS,
    version: str | None = None,
) -> TextEncoder:
    """The champion (or `version`) encoder; `filename` overrides the manifest's choice."""
    manifest = encoder_manifest(store, version)
    return TextEncoder(
        store.version_dir(manifest["version"]),
        filename or manifest["serving_file"],
        threads=threads,
        max_tokens=max_tokens,
    )
