"""Markdown for the Dagster UI and model cards: tables of metrics, windows and decisions."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from retail_assets.core.markdown import fmt, markdown_table
from retail_assets.models.lifecycle.spec import Evaluation, ModelVersionRef, TrainingSet


def metrics_table(evaluation: Evaluation) -> str:
    metrics = sorted({m for values in evaluation.overall.values() for m in values})
    rows = [{"predictor": name, **values} for name, values in evaluation.overall.items()]
    return markdown_table(rows, ["predictor", *metrics])


def segment_table(evaluation: Evaluation, predictor: str = "challenger") -> str:
    parts = []
    for column, rows in evaluation.by_segment.items():
        selected = [r for r in rows if r.get("predictor") == predictor]
        if selected:
            keys = [k for k in selected[0] if k not in ("predictor",)]
            parts.append(f"**by {column}**\n\n" + markdown_table(selected, keys))
    return "\n\n".join(parts) or "_no segments_"


def windows_table(training_set: TrainingSet) -> str:
    rows = []
    for split, window in training_set.windows.items():
        rows.append(
            {
                "split": split,
                **window,
                "rows": training_set.split(split).height
                if split in ("train", "validation", "test")
                else None,
            }
        )
    return markdown_table(rows)


def model_card(
    family: Any,
    ref: ModelVersionRef,
    training_set: TrainingSet,
    evaluation: Evaluation,
    parity: dict[str, float],
    latency: dict[str, float],
    lineage: list[str],
    extras: dict[str, Any],
) -> tuple[str, dict[str, Any]]:
    """The model card of one version, as markdown and as JSON."""
    card = {
        "model": ref.name,
        "version": ref.version,
        "mlflow_run_id": ref.run_id,
        "created_at": datetime.now(UTC).isoformat(),
        "description": getattr(family, "description", ""),
        "intended_use": getattr(family, "intended_use", ""),
        "limitations": getattr(family, "limitations", ""),
        "monitoring": getattr(family, "monitoring", ""),
        "data_windows": training_set.windows,
        "features": training_set.feature_columns,
        "target": training_set.target_column,
        "outputs": getattr(family, "output_meanings", {}),
        "metrics": evaluation.overall,
        "metrics_by_segment": evaluation.by_segment,
        "bias_audit": evaluation.bias_audit,
        "top_features": evaluation.feature_importance[:10],
        "onnx_parity_max_abs_diff": parity,
        "onnx_single_row_latency_us": latency,
        "lineage": lineage,
        "extras": extras,
        "notes": evaluation.notes,
    }
    md = [
        f"# Model card: {ref.name} v{ref.version}",
        "",
        getattr(family, "description", ""),
        "",
        f"- MLflow run: `{ref.run_id}`",
        f"- Created: {card['created_at']}",
        f"- Lineage: {' -> '.join(lineage)}",
        "",
        "## Intended use",
        getattr(family, "intended_use", "") or "_not stated_",
        "",
        "## Limitations",
        getattr(family, "limitations", "") or "_not stated_",
        "",
        "## Monitoring that guards it",
        getattr(family, "monitoring", "") or "_not stated_",
        "",
        "## Data windows",
        windows_table(training_set),
        "",
        f"## Features ({len(training_set.feature_columns)})",
        ", ".join(f"`{f}`" for f in training_set.feature_columns),
        "",
        "## Test-window metrics",
        metrics_table(evaluation),
        "",
        "## Per segment (challenger)",
        segment_table(evaluation),
        "",
        "## Bias audit",
        "```json\n" + json.dumps(evaluation.bias_audit, indent=2, default=str) + "\n```",
        "",
        "## Top features",
        markdown_table(evaluation.feature_importance[:10]),
        "",
        "## Export",
        f"ONNX max |diff| vs LightGBM: {fmt(max(parity.values()) if parity else None)}; "
        f"single-row latency p50 {fmt(latency.get('p50_us'))} µs, p99 {fmt(latency.get('p99_us'))} µs.",
    ]
    if evaluation.notes:
        md += ["", "## Notes", *[f"- {n}" for n in evaluation.notes]]
    return "\n".join(md) + "\n", json.loads(json.dumps(card, default=str))


def evaluation_as_dict(evaluation: Evaluation) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(evaluation), default=str))
