"""LightGBM boosters -> one ONNX graph, exact to double precision.

onnxmltools converts each booster (its LightGBM parser handles split directions, missing
values and categorical rules). Its `TreeEnsembleRegressor`/`Classifier` output is float32, so a
demand forecast of 200 units can only match LightGBM to about 5e-5 and thresholds/leaf values
are rounded to float32. We therefore rewrite each converted ensemble as an ONNX-ML opset 5
`TreeEnsemble` with float64 splits, leaf weights and output, taking the exact values from the
booster's own dump, and apply the objective's link (exp, sigmoid) in float64. The result
matches LightGBM to ~1e-12 and still runs in onnxruntime in tens of microseconds.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType
from onnxmltools.convert.lightgbm.operator_converters import LightGbm as onnxmltools_lightgbm

from retail_assets.models.lifecycle.bundle import session

INPUT_NAME = "features"
OPSET = 21
ML_OPSET = 5
_MODES = {
    "BRANCH_LEQ": 0,
    "BRANCH_LT": 1,
    "BRANCH_GTE": 2,
    "BRANCH_GT": 3,
    "BRANCH_EQ": 4,
    "BRANCH_NEQ": 5,
}


def objective_link(booster: lgb.Booster) -> tuple[str, float]:
    """The inverse link LightGBM applies to the raw score: ("exp"|"sigmoid"|"identity", scale)."""
    objective = booster.dump_model(num_iteration=1)["objective"]
    name = objective.split()[0]
    if name.startswith(("poisson", "tweedie", "gamma")):
        return "exp", 1.0
    if name.startswith(("binary", "cross_entropy")):
        match = re.search(r"sigmoid:([0-9.eE+-]+)", objective)
        return "sigmoid", float(match.group(1)) if match else 1.0
    # Ranking objectives output the raw score itself: only its order within a query matters.
    if name.startswith(
        ("regression", "quantile", "huber", "fair", "mape", "lambdarank", "rank_xendcg")
    ):
        return "identity", 1.0
    raise ValueError(f"cannot export LightGBM objective {objective!r} to ONNX")


def _exact_tree_values(booster: lgb.Booster) -> tuple[dict, dict]:
    """(tree, node) -> exact split threshold, (tree, node) -> exact leaf value, using
    onnxmltools' own traversal so node ids line up with its converted graph."""
    attrs: dict[str, list] = defaultdict(list)
    for tree_index, tree in enumerate(booster.dump_model()["tree_info"]):
        onnxmltools_lightgbm._parse_tree_structure(
            tree_index, 0, 1.0, tree["tree_structure"], attrs
        )
    splits = {
        (t, n): v
        for t, n, v in zip(
            attrs["nodes_treeids"], attrs["nodes_nodeids"], attrs["nodes_values"], strict=True
        )
    }
    leaves = {
        (t, n): v
        for t, n, v in zip(
            attrs["class_treeids"], attrs["class_nodeids"], attrs["class_weights"], strict=True
        )
    }
    return splits, leaves


def _converted_ensemble(booster: lgb.Booster, n_features: int) -> dict[str, list]:
    """The tree structure as onnxmltools converts it (its float32 values are replaced later)."""
    model = convert_lightgbm(
        booster,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=15,
        zipmap=False,
    )
    (node,) = [n for n in model.graph.node if n.op_type.startswith("TreeEnsemble")]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    prefix = "target" if node.op_type == "TreeEnsembleRegressor" else "class"
    return {
        "tree": list(attrs["nodes_treeids"]),
        "node": list(attrs["nodes_nodeids"]),
        "feature": list(attrs["nodes_featureids"]),
        "mode": [m.decode() if isinstance(m, bytes) else m for m in attrs["nodes_modes"]],
        "true": list(attrs["nodes_truenodeids"]),
        "false": list(attrs["nodes_falsenodeids"]),
        "missing_true": list(attrs["nodes_missing_value_tracks_true"]),
        "leaf_tree": list(attrs[f"{prefix}_treeids"]),
        "leaf_node": list(attrs[f"{prefix}_nodeids"]),
        "base_values": list(attrs.get("base_values", [])),
    }


def _tree_ensemble_node(booster: lgb.Booster, n_features: int, output: str) -> onnx.NodeProto:
    converted = _converted_ensemble(booster, n_features)
    if any(converted["base_values"]):
        raise ValueError("unexpected base_values in converted LightGBM ensemble")
    splits, leaf_values = _exact_tree_values(booster)

    leaf_index: dict[tuple[int, int], int] = {}
    leaf_weights: list[float] = []
    for tree, node in zip(converted["leaf_tree"], converted["leaf_node"], strict=True):
        leaf_index[(tree, node)] = len(leaf_weights)
        leaf_weights.append(leaf_values[(tree, node)])

    interior = [i for i, mode in enumerate(converted["mode"]) if mode != "LEAF"]
    interior_index = {
        (converted["tree"][i], converted["node"][i]): k for k, i in enumerate(interior)
    }

    def child(tree: int, node: int) -> tuple[int, int]:
        if (tree, node) in leaf_index:
            return leaf_index[(tree, node)], 1
        return interior_index[(tree, node)], 0

    features, modes, values, missing = [], [], [], []
    true_ids, true_leaf, false_ids, false_leaf = [], [], [], []
    for i in interior:
        tree = converted["tree"][i]
        features.append(converted["feature"][i])
        modes.append(_MODES[converted["mode"][i]])
        values.append(splits[(tree, converted["node"][i])])
        missing.append(converted["missing_true"][i])
        t_id, t_leaf = child(tree, converted["true"][i])
        f_id, f_leaf = child(tree, converted["false"][i])
        true_ids.append(t_id)
        true_leaf.append(t_leaf)
        false_ids.append(f_id)
        false_leaf.append(f_leaf)

    roots = []
    for tree in sorted(set(converted["tree"])):
        if (tree, 0) in interior_index:
            roots.append(interior_index[(tree, 0)])
            continue
        # A single-leaf tree: a split that sends every row to that leaf.
        roots.append(len(features))
        leaf = leaf_index[(tree, 0)]
        features.append(0)
        modes.append(_MODES["BRANCH_LEQ"])
        values.append(0.0)
        missing.append(1)
        true_ids.append(leaf)
        true_leaf.append(1)
        false_ids.append(leaf)
        false_leaf.append(1)

    return helper.make_node(
        "TreeEnsemble",
        [INPUT_NAME],
        [output],
        domain="ai.onnx.ml",
        name=f"{output}_trees",
        aggregate_function=1,  # SUM
        post_transform=0,  # NONE: links are applied in float64 below
        n_targets=1,
        tree_roots=roots,
        nodes_featureids=features,
        nodes_modes=numpy_helper.from_array(np.array(modes, dtype=np.uint8)),
        nodes_splits=numpy_helper.from_array(np.array(values, dtype=np.float64)),
        nodes_missing_value_tracks_true=missing,
        nodes_truenodeids=true_ids,
        nodes_trueleafs=true_leaf,
        nodes_falsenodeids=false_ids,
        nodes_falseleafs=false_leaf,
        leaf_targetids=[0] * len(leaf_weights),
        leaf_weights=numpy_helper.from_array(np.array(leaf_weights, dtype=np.float64)),
    )


def calibrate_interval(
    outputs: dict[str, np.ndarray], calibration: Mapping[str, Any] | None
) -> dict[str, np.ndarray]:
    """Conformal interval shift (numpy twin of the graph's nodes): with scale = max(scale
    output, floor), lower -= lower_shift * scale clipped to [0, center], upper += upper_shift *
    scale and never below center."""
    if not calibration:
        return outputs
    c = calibration
    scale = np.maximum(outputs[c["scale_output"]], c["scale_floor"])
    center = outputs[c["center"]]
    lower = np.maximum(np.minimum(outputs[c["lower"]] - c["lower_shift"] * scale, center), 0.0)
    upper = np.maximum(outputs[c["upper"]] + c["upper_shift"] * scale, center)
    return {**outputs, c["lower"]: lower, c["upper"]: upper}


def _calibration_nodes(
    final: dict[str, str], calibration: Mapping[str, Any], nodes: list, initializers: list
) -> None:
    c = calibration
    constants = {
        "cal_floor": c["scale_floor"],
        "cal_lower_shift": c["lower_shift"],
        "cal_upper_shift": c["upper_shift"],
        "cal_zero": 0.0,
    }
    for name, value in constants.items():
        initializers.append(numpy_helper.from_array(np.array(value, dtype=np.float64), name))
    lower, center, upper = final[c["lower"]], final[c["center"]], final[c["upper"]]
    nodes += [
        helper.make_node("Max", [final[c["scale_output"]], "cal_floor"], ["cal_scale"]),
        helper.make_node("Mul", ["cal_scale", "cal_lower_shift"], ["cal_lower_step"]),
        helper.make_node("Sub", [lower, "cal_lower_step"], ["cal_lower_raw"]),
        helper.make_node("Min", ["cal_lower_raw", center], ["cal_lower_capped"]),
        helper.make_node("Max", ["cal_lower_capped", "cal_zero"], ["cal_lower"]),
        helper.make_node("Mul", ["cal_scale", "cal_upper_shift"], ["cal_upper_step"]),
        helper.make_node("Add", [upper, "cal_upper_step"], ["cal_upper_raw"]),
        helper.make_node("Max", ["cal_upper_raw", center], ["cal_upper"]),
    ]
    final[c["lower"]], final[c["upper"]] = "cal_lower", "cal_upper"


def raw_offset_values(offset: Mapping[str, Any], features: np.ndarray) -> np.ndarray:
    """The numpy twin of `_offset_nodes`: per row, the sum over `offset["terms"]` (feature
    index -> one coefficient per group code + 1) of feature value x the coefficient of the
    row's group, where the group is the integer code in column `offset["group_feature"]`;
    code -1, NaN or out of range take entry 0 (the pooled coefficient)."""
    codes = features[:, offset["group_feature"]]
    result = np.zeros(len(features), dtype=np.float64)
    for feature, coefficients in offset["terms"].items():
        table = np.asarray(coefficients, dtype=np.float64)
        index = np.where(np.isnan(codes), -1.0, codes).astype(np.int64) + 1
        index = np.where((index >= 0) & (index < len(table)), index, 0)
        result += features[:, int(feature)] * table[index]
    return result


def _offset_nodes(
    raw: str, offset: Mapping[str, Any], n_features: int, nodes: list, initializers: list
) -> str:
    """Add `raw_offset_values` to the raw score tensor `raw` ([N, 1]); returns the sum's name."""
    prefix = f"{raw}_offset"
    init = lambda name, value: initializers.append(numpy_helper.from_array(value, name))  # noqa: E731
    init(f"{prefix}_group_col", np.array([offset["group_feature"]], dtype=np.int64))
    init(f"{prefix}_minus_one", np.array(-1.0, dtype=np.float64))
    init(f"{prefix}_one", np.array(1, dtype=np.int64))
    nodes += [
        helper.make_node("Gather", [INPUT_NAME, f"{prefix}_group_col"], [f"{prefix}_code"], axis=1),
        helper.make_node("IsNaN", [f"{prefix}_code"], [f"{prefix}_nan"]),
        helper.make_node(
            "Where",
            [f"{prefix}_nan", f"{prefix}_minus_one", f"{prefix}_code"],
            [f"{prefix}_code_filled"],
        ),
        helper.make_node("Cast", [f"{prefix}_code_filled"], [f"{prefix}_code_int"], to=7),
        helper.make_node("Add", [f"{prefix}_code_int", f"{prefix}_one"], [f"{prefix}_index_raw"]),
    ]
    total = raw
    for i, (feature, coefficients) in enumerate(offset["terms"].items()):
        table = np.asarray(coefficients, dtype=np.float64)
        term = f"{prefix}_{i}"
        init(f"{term}_table", table)
        init(f"{term}_col", np.array([int(feature)], dtype=np.int64))
        init(f"{term}_size", np.array(len(table), dtype=np.int64))
        init(f"{term}_zero", np.array(0, dtype=np.int64))
        nodes += [
            # Out-of-range codes take entry 0, as in the numpy twin.
            helper.make_node("Less", [f"{prefix}_index_raw", f"{term}_size"], [f"{term}_below"]),
            helper.make_node(
                "GreaterOrEqual", [f"{prefix}_index_raw", f"{term}_zero"], [f"{term}_above"]
            ),
            helper.make_node("And", [f"{term}_below", f"{term}_above"], [f"{term}_in"]),
            helper.make_node(
                "Where", [f"{term}_in", f"{prefix}_index_raw", f"{term}_zero"], [f"{term}_index"]
            ),
            helper.make_node("Gather", [f"{term}_table", f"{term}_index"], [f"{term}_coef"]),
            helper.make_node("Gather", [INPUT_NAME, f"{term}_col"], [f"{term}_x"], axis=1),
            helper.make_node("Mul", [f"{term}_x", f"{term}_coef"], [f"{term}_value"]),
            helper.make_node("Add", [total, f"{term}_value"], [f"{term}_sum"]),
        ]
        total = f"{term}_sum"
    return total


def boosters_to_onnx(
    boosters: Mapping[str, lgb.Booster],
    n_features: int,
    sorted_output_groups: Sequence[Sequence[str]] = (),
    doc_string: str = "",
    calibration: Mapping[str, Any] | None = None,
    raw_offsets: Mapping[str, Mapping[str, Any]] | None = None,
) -> onnx.ModelProto:
    """One graph: input `features` float64 [N, n_features]; one float64 [N] output per booster,
    named like the dict keys. Outputs in a sorted group (e.g. p10, p50, p90) are sorted per row
    so quantiles never cross; an interval `calibration` (see `calibrate_interval`) is applied
    after sorting. `raw_offsets[output]` adds a per-group linear term to that booster's raw
    score before its link (`raw_offset_values`): a slope the trees then refine."""
    nodes: list[onnx.NodeProto] = []
    initializers = [numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat_shape")]
    final: dict[str, str] = {}
    for name, booster in boosters.items():
        raw = f"{name}_raw"
        nodes.append(_tree_ensemble_node(booster, n_features, raw))
        if raw_offsets and name in raw_offsets:
            raw = _offset_nodes(raw, raw_offsets[name], n_features, nodes, initializers)
        link, scale = objective_link(booster)
        linked = f"{name}_linked"
        if link == "exp":
            nodes.append(helper.make_node("Exp", [raw], [linked], name=f"{name}_exp"))
        elif link == "sigmoid":
            scaled = raw
            if scale != 1.0:
                initializers.append(
                    numpy_helper.from_array(
                        np.array(scale, dtype=np.float64), f"{name}_sigmoid_scale"
                    )
                )
                scaled = f"{name}_scaled"
                nodes.append(helper.make_node("Mul", [raw, f"{name}_sigmoid_scale"], [scaled]))
            nodes.append(helper.make_node("Sigmoid", [scaled], [linked], name=f"{name}_sigmoid"))
        else:
            linked = raw
        final[name] = linked

    for group in sorted_output_groups:
        joined = "_".join(group)
        nodes.append(
            helper.make_node("Concat", [final[n] for n in group], [f"{joined}_cat"], axis=1)
        )
        initializers.append(
            numpy_helper.from_array(np.array([len(group)], dtype=np.int64), f"{joined}_k")
        )
        nodes.append(
            helper.make_node(
                "TopK",
                [f"{joined}_cat", f"{joined}_k"],
                [f"{joined}_sorted", f"{joined}_order"],
                axis=1,
                largest=0,
                sorted=1,
            )
        )
        split_outputs = [f"{n}_in_order" for n in group]
        nodes.append(
            helper.make_node(
                "Split", [f"{joined}_sorted"], split_outputs, axis=1, num_outputs=len(group)
            )
        )
        for name, out in zip(group, split_outputs, strict=True):
            final[name] = out

    if calibration:
        _calibration_nodes(final, calibration, nodes, initializers)

    for name, tensor in final.items():
        nodes.append(
            helper.make_node("Reshape", [tensor, "flat_shape"], [name], name=f"{name}_flat")
        )
    return assemble_model(nodes, initializers, list(final), n_features, "retail_model", doc_string)


def assemble_model(
    nodes: list,
    initializers: list,
    outputs: Sequence[str],
    n_features: int,
    graph_name: str,
    doc_string: str = "",
) -> onnx.ModelProto:
    """Every bundle's ONNX graph: one float64 matrix input (`INPUT_NAME`, n_features wide) and
    float64 vector outputs, at the opsets and IR version serving's onnxruntime runs; checked."""
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info(name, TensorProto.DOUBLE, [None]) for name in outputs],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        producer_name="retail-mlops",
        doc_string=doc_string,
    )
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def lightgbm_outputs(
    boosters: Mapping[str, lgb.Booster],
    features: np.ndarray,
    sorted_output_groups: Sequence[Sequence[str]] = (),
    calibration: Mapping[str, Any] | None = None,
    raw_offsets: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, np.ndarray]:
    """What the exported graph must reproduce, computed by LightGBM itself."""
    outputs = {}
    for name, booster in boosters.items():
        if raw_offsets and name in raw_offsets:
            raw = booster.predict(features, raw_score=True)
            raw = raw + raw_offset_values(raw_offsets[name], features)
            link, scale = objective_link(booster)
            outputs[name] = (
                np.exp(raw)
                if link == "exp"
                else 1 / (1 + np.exp(-scale * raw))
                if link == "sigmoid"
                else raw
            )
        else:
            outputs[name] = booster.predict(features)
    for group in sorted_output_groups:
        stacked = np.sort(np.column_stack([outputs[n] for n in group]), axis=1)
        for i, name in enumerate(group):
            outputs[name] = stacked[:, i]
    return calibrate_interval(outputs, calibration)


def parity(
    model: onnx.ModelProto,
    boosters: Mapping[str, lgb.Booster],
    features: np.ndarray,
    sorted_output_groups: Sequence[Sequence[str]] = (),
    calibration: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Max absolute difference per output between onnxruntime and LightGBM on `features`."""
    reference = lightgbm_outputs(boosters, features, sorted_output_groups, calibration)
    return parity_with(model, reference, features)


def parity_with(
    model: onnx.ModelProto, reference: Mapping[str, np.ndarray], features: np.ndarray
) -> dict[str, float]:
    """Max absolute difference per output between onnxruntime and `reference` outputs (what
    the trained model computes on `features`: `TrainedModel.outputs`)."""
    sess = session(model)
    onnx_out = dict(
        zip(
            [o.name for o in sess.get_outputs()],
            sess.run(None, {INPUT_NAME: features}),
            strict=True,
        )
    )
    return {
        name: float(np.max(np.abs(onnx_out[name] - reference[name]))) if len(features) else 0.0
        for name in reference
    }


def single_row_latency_us(
    model: onnx.ModelProto, row: np.ndarray, repeats: int = 2000
) -> dict[str, float]:
    """p50/p99 wall time of one-row inference in onnxruntime, in microseconds."""
    sess = session(model)
    feed = {INPUT_NAME: row.reshape(1, -1).astype(np.float64)}
    for _ in range(50):
        sess.run(None, feed)
    timings = np.empty(repeats)
    for i in range(repeats):
        started = time.perf_counter()
        sess.run(None, feed)
        timings[i] = time.perf_counter() - started
    return {
        "p50_us": float(np.percentile(timings, 50) * 1e6),
        "p99_us": float(np.percentile(timings, 99) * 1e6),
    }


def contributions_to_onnx(booster: lgb.Booster, n_features: int) -> onnx.ModelProto:
    """Per-feature contributions to the raw score, as an ONNX graph: output `contributions`
    float [N, n_features + 1] (last column = bias) summing to the raw score.

    Path attribution (Saabas): along a row's path through each tree, every split credits its
    feature with the change in the node's expected value; LightGBM's dump gives those values.
    It is what serving returns as reason codes (LightGBM's TreeSHAP `pred_contrib` needs the
    training library); evaluation reports TreeSHAP, and the two agree on the top features.
    Float32 is plenty for ranking reasons.
    """
    converted = _converted_ensemble(booster, n_features)
    children = {}
    for i, mode in enumerate(converted["mode"]):
        if mode != "LEAF":
            key = (converted["tree"][i], converted["node"][i])
            children[key] = (converted["true"][i], converted["false"][i], converted["feature"][i])
    target_tree, target_node, target_id, target_weight = [], [], [], []

    def walk(tree: int, node_id: int, node: dict, value_path: list[tuple[int, float]]) -> None:
        value = node["leaf_value"] if "leaf_index" in node else node["internal_value"]
        if "leaf_index" in node:
            contributions = defaultdict(float)
            for feature, delta in value_path:
                contributions[feature] += delta
            for feature, delta in contributions.items():
                target_tree.append(tree)
                target_node.append(node_id)
                target_id.append(feature)
                target_weight.append(delta)
            return
        true_id, false_id, feature = children[(tree, node_id)]
        for child_id, child in ((true_id, node["left_child"]), (false_id, node["right_child"])):
            child_value = child["leaf_value"] if "leaf_index" in child else child["internal_value"]
            walk(tree, child_id, child, [*value_path, (feature, child_value - value)])

    bias = 0.0
    for tree_index, tree in enumerate(booster.dump_model()["tree_info"]):
        root = tree["tree_structure"]
        root_value = root["leaf_value"] if "leaf_index" in root else root["internal_value"]
        bias += root_value
        walk(tree_index, 0, root, [])

    attrs = {
        "nodes_treeids": converted["tree"],
        "nodes_nodeids": converted["node"],
        "nodes_featureids": converted["feature"],
        "nodes_modes": converted["mode"],
        "nodes_values": [0.0] * len(converted["tree"]),
        "nodes_truenodeids": converted["true"],
        "nodes_falsenodeids": converted["false"],
        "nodes_missing_value_tracks_true": converted["missing_true"],
    }
    splits, _ = _exact_tree_values(booster)
    attrs["nodes_values"] = [
        float(splits.get((t, n), 0.0))
        for t, n in zip(converted["tree"], converted["node"], strict=True)
    ]
    # Leaves with no split on their path (single-leaf trees) still need a target entry.
    targeted = set(zip(target_tree, target_node, strict=True))
    for tree, node, mode in zip(
        converted["tree"], converted["node"], converted["mode"], strict=True
    ):
        if mode == "LEAF" and (tree, node) not in targeted:
            target_tree.append(tree)
            target_node.append(node)
            target_id.append(n_features)
            target_weight.append(0.0)
    node = helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT_NAME],
        ["contributions_raw"],
        domain="ai.onnx.ml",
        n_targets=n_features + 1,
        aggregate_function="SUM",
        post_transform="NONE",
        target_treeids=target_tree,
        target_nodeids=target_node,
        target_ids=target_id,
        target_weights=target_weight,
        **attrs,
    )
    # The bias goes in through an Add: onnxruntime ignores per-target base_values here.
    bias_row = helper.make_tensor(
        "bias_row", TensorProto.FLOAT, [1, n_features + 1], [0.0] * n_features + [bias]
    )
    graph = helper.make_graph(
        [node, helper.make_node("Add", ["contributions_raw", "bias_row"], ["contributions"])],
        "retail_contributions",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info("contributions", TensorProto.FLOAT, [None, n_features + 1])],
        initializer=[bias_row],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", 3)]
    )
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model
