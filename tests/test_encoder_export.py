"""The text encoder is built from MiniLM's weights with the onnx package alone: exporting
writes the fp32 and int8 graphs and the tokenizer, the fp32 graph reproduces the
sentence-transformers embeddings committed beside it, int8 stays close to them, and the
export never imports torch, transformers or sentence-transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retail_assets.search import encoder
from retail_assets.search.encoder import (
    EMBEDDING_DIM,
    FP32_FILE,
    INT8_FILE,
    PROBE_SENTENCES,
    TOKENIZER_FILE,
    TextEncoder,
    reference_embeddings,
)

REPO = Path(__file__).resolve().parents[1]
# The graph is the same computation as the original model, so fp32 differs from
# sentence-transformers only by float rounding (measured: 1 - cosine ~1e-12).
FP32_MIN_COSINE = 0.99999
# int8 per-channel dynamic quantization, measured on an AVX2 CPU: min cosine 0.9875 (mean
# 0.9931) on the probe sentences, where the torch-exported graph it replaced had 0.9846
# (0.9924); over 2000 product texts min 0.976, 1st percentile 0.985. 0.98 leaves room for
# int8 kernels that differ between CPUs and still fails a broken quantization (per-tensor
# int8 gives ~0.86).
INT8_MIN_COSINE = 0.98
HEAVY_MODULES = ("torch", "transformers", "sentence_transformers")

EXPORT_IN_FRESH_INTERPRETER = f"""
import json, sys
from pathlib import Path
from retail_assets.search.encoder import export_encoder
agreement = export_encoder(Path(sys.argv[1]))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY_MODULES!r})
print(json.dumps({{"agreement": agreement, "imported": heavy}}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, dict[str, float], list[str]]:
    """export_encoder run once in a fresh interpreter: (its folder, the agreement it
    returned, the torch/transformers/sentence-transformers modules it had imported)."""
    folder = tmp_path_factory.mktemp("encoder")
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_IN_FRESH_INTERPRETER, str(folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return folder, report["agreement"], report["imported"]


def _cosines(folder: Path, filename: str) -> np.ndarray:
    ours = TextEncoder(folder, filename).encode(PROBE_SENTENCES)
    return (ours * reference_embeddings()).sum(axis=1)


def test_export_writes_the_fp32_and_int8_graphs_and_the_tokenizer(exported):
    """The folder holds both graphs and tokenizer.json; the fp32 graph keeps the interface
    serving relies on (int64 input_ids/attention_mask of any batch and length in,
    last_hidden_state [batch, seq, 384] out) and uses only standard opset-17 ONNX ops."""
    import onnx

    folder, _, _ = exported
    for name in (FP32_FILE, INT8_FILE, TOKENIZER_FILE):
        assert (folder / name).stat().st_size > 0, name
    assert (folder / INT8_FILE).stat().st_size < 0.4 * (folder / FP32_FILE).stat().st_size

    model = onnx.load(str(folder / FP32_FILE))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert {node.domain for node in model.graph.node} == {""}

    def signature(values):
        return {
            v.name: (
                v.type.tensor_type.elem_type,
                [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim],
            )
            for v in values
        }

    int64, float32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT
    assert signature(model.graph.input) == {
        "input_ids": (int64, ["batch", "seq"]),
        "attention_mask": (int64, ["batch", "seq"]),
    }
    assert signature(model.graph.output) == {
        "last_hidden_state": (float32, ["batch", "seq", EMBEDDING_DIM])
    }


def test_fp32_encoder_reproduces_the_sentence_transformers_reference(exported):
    """The fp32 graph's pooled, normalised embeddings of the probe sentences equal the
    committed sentence-transformers embeddings (min cosine >= 0.99999), and the export
    reports that agreement under the keys the manifest has always used."""
    folder, agreement, _ = exported
    cosine = _cosines(folder, FP32_FILE)
    assert cosine.min() >= FP32_MIN_COSINE, cosine
    assert agreement["fp32_cosine_vs_sentence_transformers_min"] == pytest.approx(
        float(cosine.min()), abs=1e-6
    )
    assert agreement["fp32_cosine_vs_sentence_transformers_mean"] >= FP32_MIN_COSINE


def test_int8_encoder_stays_close_to_the_sentence_transformers_reference(exported):
    """The int8 graph keeps every probe sentence above INT8_MIN_COSINE of the reference, and
    the export reports the same numbers."""
    folder, agreement, _ = exported
    cosine = _cosines(folder, INT8_FILE)
    assert cosine.min() >= INT8_MIN_COSINE, cosine
    assert agreement["int8_cosine_vs_sentence_transformers_min"] == pytest.approx(
        float(cosine.min()), abs=1e-6
    )
    assert agreement["int8_cosine_vs_sentence_transformers_mean"] == pytest.approx(
        float(cosine.mean()), abs=1e-6
    )


def test_padding_in_a_batch_does_not_change_an_embedding(exported):
    """A sentence embedded in a batch padded to a 256-token neighbour gets the embedding it
    gets alone: the attention mask keeps padding out of every layer."""
    folder, _, _ = exported
    text_encoder = TextEncoder(folder, FP32_FILE)
    together = text_encoder.encode(PROBE_SENTENCES, batch_size=len(PROBE_SENTENCES))
    alone = np.vstack([text_encoder.encode([sentence]) for sentence in PROBE_SENTENCES])
    assert np.abs(together - alone).max() < 1e-5


def test_export_does_not_import_torch_transformers_or_sentence_transformers(exported):
    """A fresh interpreter that ran the whole export (graph, quantization, agreement) has not
    imported torch, transformers or sentence_transformers."""
    _, _, imported = exported
    assert imported == []


def test_the_fp32_graph_is_rebuilt_byte_for_byte(exported):
    """Building the graph again gives the same bytes, so the encoder version (a hash of the
    fp32 file) only changes when the weights or the builder do."""
    from retail_assets.search.minilm_onnx import build_bert_graph, load_bert

    folder, _, _ = exported
    rebuilt = build_bert_graph(*load_bert(encoder.minilm_dir())).SerializeToString()
    assert rebuilt == (folder / FP32_FILE).read_bytes()


def test_a_reference_file_for_other_probe_sentences_is_refused(monkeypatch):
    """Changing PROBE_SENTENCES without regenerating the reference embeddings is an error,
    not a silently wrong agreement."""
    monkeypatch.setattr(encoder, "PROBE_SENTENCES", [*PROBE_SENTENCES[:-1], "something else"])
    with pytest.raises(RuntimeError, match="other probe sentences"):
        reference_embeddings()
