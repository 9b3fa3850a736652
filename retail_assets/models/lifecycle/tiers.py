"""Tiered training: one model version whose rows are scored by per-tier part models.

Why: categories whose demand moves fast need a model that learned last week's level, while
stable categories gain nothing from weekly retrains but churn (forecasts that move for no
reason) and cost. A family that opts in (`tiering`) has its segments (e.g. categories) put in
tiers by a drift-velocity score; each tier's part model trains on that tier's rows on its own
cadence (its own Dagster asset and automation condition), and the family's model asset
composes the newest part of every tier into ONE routed model: one registered version, one
evaluation and gate, one ONNX graph, one serving slot, one canary. Nothing downstream of the
model asset knows it is tiered.

Routing: the rows of a segment value go to the most recently trained part that learned that
value (so a category that changed tier moves to its new tier's part when that tier next
trains, and is never scored by a part that never saw it while another did); a value no part
learned (a new category, code -1) goes to the part trained on the most rows. The ONNX graph
does the same with Gather/GatherElements on the routing feature's integer code, so serving
needs nothing new and the parity check covers the routing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import onnx
import polars as pl
from onnx import TensorProto, helper, numpy_helper
from onnx import compose as onnx_compose

from retail_assets.models.lifecycle.spec import TrainedModel, TrainingSet


@dataclass(frozen=True)
class Tier:
    """A retraining tier: its name, when it retrains (`cron`, the automation condition of
    its part-model asset), how old its part may get before the UI shows it late, and what it
    is for (shown in the UI)."""

    name: str
    cron: str
    cadence: str
    max_age_days: int
    description: str


@dataclass(frozen=True)
class Tiering:
    """How a family splits its training into tiers: the segment column that routes rows
    (`column`, with an integer-coded feature `<column>_code`), the tiers, the warehouse table
    and columns the assignment reads, and `assign(frame) -> [TierMembership per tier]`."""

    column: str
    tiers: tuple[Tier, ...]
    source: tuple[str, ...]
    source_columns: tuple[str, ...]
    assign: Callable[[pl.DataFrame], list[TierMembership]]
    description: str

    def tier(self, name: str) -> Tier:
        return next(t for t in self.tiers if t.name == name)


@dataclass
class TierMembership:
    """Which values of the routing segment (e.g. categories) a tier holds, with the evidence
    of each assignment, and the vocabularies of every categorical feature (their integer
    codes) when assigned."""

    tier: str
    column: str
    values: list[str]
    encodings: dict[str, list[str]]
    evidence: list[dict[str, Any]] = field(default_factory=list)
    parents: dict[str, dict[str, str]] = field(default_factory=dict)
    """Coarser segments over the routing values, e.g. `{"department": {category: department}}`:
    a drift reported for a department retrains the tiers holding its categories."""

    def codes_version(self) -> str:
        """Changes exactly when a categorical vocabulary changes (a new category, brand or
        store shifts the codes every part's trees split on): every part must retrain then.
        A value moving between tiers does not need it: the part that learned it keeps
        scoring it until the receiving tier's next retrain."""
        doc = json.dumps(self.encodings, sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()[:16]


@dataclass
class TierModel:
    """One tier's part model, trained on that tier's rows of the training set of its day.
    `model` is None when the tier held no values (nothing to train)."""

    tier: str
    column: str
    values: list[str]
    model: TrainedModel | None
    feature_columns: list[str]
    encodings: dict[str, list[str]]
    windows: dict[str, dict[str, str]]
    rows: int
    trained_at: str

    def summary(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "values": len(self.values),
            "rows": self.rows,
            "trained_at": self.trained_at,
            "train_window": self.windows.get("train", {}),
        }


def tier_training_set(training_set: TrainingSet, column: str, values: list[str]) -> TrainingSet:
    """The training set restricted to the rows whose `column` is one of `values`."""
    if column not in training_set.frame.columns:
        raise ValueError(f"training set has no column {column!r} to split tiers by")
    return TrainingSet(
        frame=training_set.frame.filter(pl.col(column).is_in(values)),
        feature_columns=training_set.feature_columns,
        target_column=training_set.target_column,
        entity_columns=training_set.entity_columns,
        segment_columns=training_set.segment_columns,
        windows=training_set.windows,
        encodings=training_set.encodings,
        info=training_set.info,
    )


def train_tier(
    membership: TierMembership, training_set: TrainingSet, train, shuffle_labels_seed=None
) -> TierModel:
    """Train one tier's part with the family's `train(training_set, shuffle_labels_seed)` on
    the tier's rows (None model when the tier is empty)."""
    subset = tier_training_set(training_set, membership.column, membership.values)
    model = None
    if membership.values and subset.split("train").height and subset.split("validation").height:
        model = train(subset, shuffle_labels_seed=shuffle_labels_seed)
    elif membership.values:
        raise ValueError(
            f"tier {membership.tier!r} ({', '.join(membership.values[:5])}) has no train or "
            "validation rows in the training set"
        )
    return TierModel(
        tier=membership.tier,
        column=membership.column,
        values=sorted(membership.values),
        model=model,
        feature_columns=list(training_set.feature_columns),
        encodings=training_set.encodings,
        windows=training_set.windows,
        rows=subset.split("train").height,
        trained_at=datetime.now(UTC).isoformat(),
    )


def compose(training_set: TrainingSet, parts: dict[str, TierModel], column: str) -> TrainedModel:
    """The routed model of the newest part of every tier, for this training set.

    Refuses (ValueError naming the tier) a part trained on other features, on other
    categorical vocabularies (its trees split on codes that now mean other values), or on
    data that reaches into this training set's test window (the evaluation would be
    leaked)."""
    vocabulary = list(training_set.encodings.get(column, []))
    feature = f"{column}_code"
    if feature not in training_set.feature_columns:
        raise ValueError(f"routing feature {feature!r} is not a model feature")
    test_start = training_set.windows["test"]["start"]
    usable = {name: part for name, part in parts.items() if part.model is not None}
    if not usable:
        raise ValueError("no tier has a trained part model: every tier was empty")
    for name, part in usable.items():
        if part.feature_columns != training_set.feature_columns:
            raise ValueError(
                f"tier {name!r} was trained on other features than the training set has; "
                f"retrain tier {name!r}"
            )
        changed = sorted(
            c for c in training_set.encodings if part.encodings.get(c) != training_set.encodings[c]
        )
        if changed:
            raise ValueError(
                f"tier {name!r} was trained when {', '.join(changed)} had other codes "
                f"(new or removed values); retrain tier {name!r}"
            )
        trained_to = max(part.windows["train"]["end"], part.windows["validation"]["end"])
        if trained_to >= test_start:
            raise ValueError(
                f"tier {name!r} learned from data up to {trained_to}, inside the test window "
                f"starting {test_start}: its evaluation would be leaked; retrain tier {name!r}"
            )
    names = sorted(usable, key=lambda n: usable[n].trained_at)  # oldest first
    fallback = max(names, key=lambda n: usable[n].rows)
    routing: dict[str, str] = {}
    for value in vocabulary:
        learned = [n for n in names if value in usable[n].values]
        routing[value] = learned[-1] if learned else fallback
    order = sorted(usable)
    table = [order.index(fallback)] + [order.index(routing[v]) for v in vocabulary]
    first = usable[order[0]].model
    return TrainedModel(
        boosters={},
        feature_columns=list(training_set.feature_columns),
        params={
            "family": first.params.get("family"),
            "routed_by": column,
            "tiers": {n: usable[n].summary() for n in order},
        },
        validation_metrics={
            f"{n}_{k}": v for n in order for k, v in usable[n].model.validation_metrics.items()
        },
        extras={
            "routing": routing,
            "fallback_tier": fallback,
            "tiers": {n: usable[n].summary() for n in order},
        },
        output_transforms=first.output_transforms,
        sorted_output_groups=first.sorted_output_groups,
        parts={n: usable[n].model for n in order},
        route={
            "column": feature,
            "feature_index": training_set.feature_columns.index(feature),
            "parts": order,
            "table": table,
        },
    )


def model_to_onnx(model: TrainedModel, doc_string: str = "") -> onnx.ModelProto:
    """The model's ONNX graph: its boosters' graph, or for a routed model every part's graph
    side by side and each output gathered from the part the row's code selects."""
    from retail_assets.models.lifecycle.onnx_export import (
        INPUT_NAME,
        assemble_model,
        boosters_to_onnx,
    )

    n_features = len(model.feature_columns)
    if model.route is None:
        return boosters_to_onnx(
            model.boosters,
            n_features,
            model.sorted_output_groups,
            doc_string=doc_string,
            calibration=model.interval_calibration,
            raw_offsets=model.raw_offsets,
        )
    route = model.route
    nodes: list[onnx.NodeProto] = []
    initializers = [
        numpy_helper.from_array(np.array([route["feature_index"]], dtype=np.int64), "route_col"),
        numpy_helper.from_array(np.array(-1.0, dtype=np.float64), "route_unknown"),
        numpy_helper.from_array(np.array(1, dtype=np.int64), "route_one"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "route_zero"),
        numpy_helper.from_array(np.array(len(route["table"]), dtype=np.int64), "route_size"),
        numpy_helper.from_array(np.asarray(route["table"], dtype=np.int64), "route_table"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "route_axis"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "route_flat"),
    ]
    nodes += [
        helper.make_node("Gather", [INPUT_NAME, "route_col"], ["route_code_f"], axis=1),
        helper.make_node("IsNaN", ["route_code_f"], ["route_nan"]),
        helper.make_node("Where", ["route_nan", "route_unknown", "route_code_f"], ["route_f"]),
        helper.make_node("Cast", ["route_f"], ["route_code"], to=TensorProto.INT64),
        helper.make_node("Add", ["route_code", "route_one"], ["route_raw"]),
        helper.make_node("GreaterOrEqual", ["route_raw", "route_zero"], ["route_ge"]),
        helper.make_node("Less", ["route_raw", "route_size"], ["route_lt"]),
        helper.make_node("And", ["route_ge", "route_lt"], ["route_ok"]),
        helper.make_node("Where", ["route_ok", "route_raw", "route_zero"], ["route_index"]),
        helper.make_node("Gather", ["route_table", "route_index"], ["route_part"], axis=0),
    ]
    for i, name in enumerate(route["parts"]):
        part = model.parts[name]
        graph = onnx_compose.add_prefix(
            model_to_onnx(part), f"part{i}_", rename_inputs=False, rename_outputs=True
        ).graph
        nodes += list(graph.node)
        initializers += list(graph.initializer)
    outputs = model.output_names
    for output in outputs:
        columns = []
        for i in range(len(route["parts"])):
            column = f"part{i}_{output}_col"
            nodes.append(
                helper.make_node("Unsqueeze", [f"part{i}_{output}", "route_axis"], [column])
            )
            columns.append(column)
        nodes += [
            helper.make_node("Concat", columns, [f"{output}_parts"], axis=1),
            helper.make_node(
                "GatherElements", [f"{output}_parts", "route_part"], [f"{output}_chosen"], axis=1
            ),
            helper.make_node("Reshape", [f"{output}_chosen", "route_flat"], [output]),
        ]
    return assemble_model(
        nodes, initializers, outputs, n_features, "retail_routed_model", doc_string
    )
