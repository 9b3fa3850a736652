"""The all-MiniLM-L6-v2 BERT encoder as an ONNX graph, built straight from its weights.

Reads `config.json` and `model.safetensors` with numpy only (`safetensors.numpy`) and writes,
with `onnx.helper`, the computation of transformers' `BertModel` up to `last_hidden_state`:
inputs `input_ids` and `attention_mask` (int64 [batch, seq]), output `last_hidden_state`
(float32 [batch, seq, hidden]). Standard ONNX ops only (opset 17), no custom domains, so no
torch / transformers is needed to produce it and any onnxruntime can run it.

    x = LayerNorm(word[input_ids] + position[0..seq) + token_type[0])
    per layer (post-LayerNorm BERT, as transformers' `BertLayer`):
        q, k, v = x Wq + bq, x Wk + bk, x Wv + bv, each split into heads
        a = softmax(q kᵀ / sqrt(head_dim) + mask) v         mask: 0 or MASK_VALUE per key
        x = LayerNorm(a Wo + bo + x)
        x = LayerNorm(gelu(x Wi + bi) W2 + b2 + x)          gelu(y) = y/2 (1 + erf(y/√2))

Every token has type 0 (sentence-transformers passes no token_type_ids), so token_type[0] is
folded into the position table, which is sliced rather than gathered: with `quantize_dynamic`
it stays float32 (only the word table, a Gather on an initializer, becomes int8).

Shaped for onnxruntime (measured with onnxruntime 1.32 on an AVX2 CPU, one thread):
linear layers are MatMul on a [in, out] initializer then Add of the bias, which
`quantize_dynamic` quantizes and onnxruntime fuses into MatMulIntegerToFloat /
DynamicQuantizeMatMul; gelu is the Div/Erf/Add/Mul/Mul pattern it fuses into (Bias)Gelu; the
scale after q·kᵀ folds into FusedMatMul; the padding mask is one broadcast Add (the torch
export spent ~9% of its time in Where/IsNaN around Softmax). The two dense + bias + residual
sums before each LayerNormalization are a single Sum node rather than two Adds: onnxruntime
would fuse Add + LayerNormalization into SkipLayerNormalization, whose CPU kernel took about
three times as long as Sum + LayerNormalization (7% against 2% of the fp32 run). It does
that whenever the graph carries shapes, which `quantize_dynamic` writes into the int8 graph.
Whether this equals the original is checked against sentence-transformers embeddings (see
`encoder.py` and tests/test_encoder_export.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

OPSET = 17  # the first opset with LayerNormalization
# Added to the attention scores of padding keys. Finite, so a row can never become NaN the way
# an all -inf row does, and so negative that exp() of it is exactly 0.0 in float32: the same
# attention weights as transformers' -inf / finfo.min masks.
MASK_VALUE = float(np.finfo(np.float32).min)


def load_bert(model_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(config.json, weights by name) of a BERT checkpoint, read without torch."""
    from safetensors.numpy import load_file

    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    weights = load_file(str(model_dir / "model.safetensors"))
    # BertForX checkpoints prefix every name with "bert."; BertModel ones (MiniLM) do not.
    return config, {k.removeprefix("bert."): v for k, v in weights.items()}


def _check_config(config: dict) -> None:
    required = {"model_type": "bert", "hidden_act": "gelu", "position_embedding_type": "absolute"}
    for key, value in required.items():
        if config.get(key, value) != value:
            raise ValueError(f"unsupported BERT config {key}={config.get(key)!r}, need {value!r}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ValueError("hidden_size is not a multiple of num_attention_heads")


class _Graph:
    """Nodes and initializers under unique, readable names (a node's name is its output's)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"duplicate graph name {name!r}")
        self._names.add(name)
        return name

    def constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        array = np.ascontiguousarray(value)
        self.initializers.append(numpy_helper.from_array(array, self._claim(name)))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attributes) -> str:
        from onnx import helper

        self._claim(name)
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name


def build_bert_graph(config: dict, weights: dict[str, np.ndarray]):
    """The `onnx.ModelProto` of BertModel's forward pass returning last_hidden_state."""
    from onnx import TensorProto, helper

    _check_config(config)
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    layers = int(config["num_hidden_layers"])

    def weight(name: str) -> np.ndarray:
        return np.asarray(weights[name], dtype=np.float32)

    g = _Graph()
    one = g.constant("one", np.array(1.0, np.float32))
    split_heads = g.constant("split_heads_shape", np.array([0, 0, heads, head_dim], np.int64))
    merge_heads = g.constant("merge_heads_shape", np.array([0, 0, hidden], np.int64))
    scale = g.constant("attention_scale", np.array(1.0 / np.sqrt(head_dim), np.float32))
    sqrt2 = g.constant("gelu_sqrt2", np.array(np.sqrt(2.0), np.float32))
    half = g.constant("gelu_half", np.array(0.5, np.float32))

    def linear(x: str, source: str, name: str) -> str:
        w = g.constant(f"{name}.weight", weight(f"{source}.weight").T)  # torch stores [out, in]
        b = g.constant(f"{name}.bias", weight(f"{source}.bias"))
        return g.op("Add", [g.op("MatMul", [x, w], f"{name}.matmul"), b], name)

    def dense_plus(x: str, source: str, residual: str, name: str) -> str:
        """x W + b + residual in one Sum (see the module docstring for why not two Adds)."""
        w = g.constant(f"{name}.weight", weight(f"{source}.weight").T)
        b = g.constant(f"{name}.bias", weight(f"{source}.bias"))
        return g.op("Sum", [g.op("MatMul", [x, w], f"{name}.matmul"), b, residual], name)

    def layer_norm(x: str, source: str, name: str) -> str:
        gamma = g.constant(f"{name}.weight", weight(f"{source}.weight"))
        beta = g.constant(f"{name}.bias", weight(f"{source}.bias"))
        return g.op("LayerNormalization", [x, gamma, beta], name, axis=-1, epsilon=eps)

    # Embeddings.
    word = g.constant("embeddings.word", weight("embeddings.word_embeddings.weight"))
    positions = g.constant(
        "embeddings.position_plus_type0",
        weight("embeddings.position_embeddings.weight")
        + weight("embeddings.token_type_embeddings.weight")[0],
    )
    zero = g.constant("zero_i64", np.array([0], np.int64))
    seq_len = g.op("Shape", ["input_ids"], "seq_len", start=1, end=2)
    x = g.op(
        "Add",
        [
            g.op("Gather", [word, "input_ids"], "embeddings.word_vectors"),
            g.op("Slice", [positions, zero, seq_len, zero], "embeddings.position_vectors"),
        ],
        "embeddings.sum",
    )
    x = layer_norm(x, "embeddings.LayerNorm", "embeddings")

    # Additive attention mask [batch, 1, 1, seq]: 0 for tokens, MASK_VALUE for padding.
    mask = g.op("Cast", ["attention_mask"], "mask.float", to=TensorProto.FLOAT)
    mask = g.op("Sub", [one, mask], "mask.padding")
    mask = g.op(
        "Mul", [mask, g.constant("mask_value", np.array(MASK_VALUE, np.float32))], "mask.additive"
    )
    mask = g.op(
        "Unsqueeze",
        [mask, g.constant("mask_axes", np.array([1, 2], np.int64))],
        "mask.broadcast",
    )

    for i in range(layers):
        source, name = f"encoder.layer.{i}", f"layer{i}"
        heads_of = {}
        # q and v as [batch, heads, seq, head_dim], k already transposed: [batch, heads, hd, seq]
        for part, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            y = linear(x, f"{source}.attention.self.{part}", f"{name}.{part}")
            y = g.op("Reshape", [y, split_heads], f"{name}.{part}.heads")
            heads_of[part] = g.op("Transpose", [y], f"{name}.{part}.transposed", perm=perm)
        scores = g.op("MatMul", [heads_of["query"], heads_of["key"]], f"{name}.scores")
        scores = g.op("Mul", [scores, scale], f"{name}.scores.scaled")
        scores = g.op("Add", [scores, mask], f"{name}.scores.masked")
        probs = g.op("Softmax", [scores], f"{name}.probs", axis=-1)
        context = g.op("MatMul", [probs, heads_of["value"]], f"{name}.context.heads")
        context = g.op("Transpose", [context], f"{name}.context.transposed", perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads], f"{name}.context")
        y = dense_plus(context, f"{source}.attention.output.dense", x, f"{name}.attention.output")
        x = layer_norm(y, f"{source}.attention.output.LayerNorm", f"{name}.attention.norm")

        y = linear(x, f"{source}.intermediate.dense", f"{name}.intermediate")
        erf = g.op("Erf", [g.op("Div", [y, sqrt2], f"{name}.gelu.scaled")], f"{name}.gelu.erf")
        erf = g.op("Add", [erf, one], f"{name}.gelu.erf_plus_one")
        y = g.op("Mul", [g.op("Mul", [y, erf], f"{name}.gelu.product"), half], f"{name}.gelu")
        y = dense_plus(y, f"{source}.output.dense", x, f"{name}.output")
        last = i == layers - 1
        x = layer_norm(
            y, f"{source}.output.LayerNorm", "last_hidden_state" if last else f"{name}.output.norm"
        )

    graph = helper.make_graph(
        g.nodes,
        "bert_last_hidden_state",
        inputs=[
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        outputs=[
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden]
            )
        ],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="retail_assets.search.minilm_onnx",
    )
    # IR 8 is what opset 17 came with; newer onnx stamps a newer IR that older onnxruntime
    # releases refuse to load, for no gain here.
    model.ir_version = 8
    return model


def export_bert_onnx(model_dir: Path, target: Path) -> Path:
    """Build the graph from `model_dir`'s weights, validate it, write it to `target`."""
    import onnx

    model = build_bert_graph(*load_bert(model_dir))
    onnx.checker.check_model(model, full_check=True)
    target = Path(target)
    onnx.save_model(model, str(target))
    return target
