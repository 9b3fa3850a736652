"""The model promotion gate: the core gate applied to a model family's evaluation.

A family states its rules as `MetricRule`s (absolute floors, a baseline to beat by a margin,
a tolerance against the champion, per segment with minimum support). Here they become core
`Rule`s, the evaluation becomes a core `Scorecard` (challenger -> candidate, champion ->
incumbent), and ONNX parity and bundle validity are preconditions. The first model of a family
has no champion: it is promoted if it passes its absolute rules and beats its baseline.
"""

from __future__ import annotations

from retail_assets.core.gate import (
    CANDIDATE,
    INCUMBENT,
    GateResult,
    Rule,
    Scorecard,
    evaluate,
    precondition,
)
from retail_assets.models.lifecycle.spec import Evaluation, MetricRule

_ROLE = {"challenger": CANDIDATE, "champion": INCUMBENT}


def core_rule(rule: MetricRule) -> Rule:
    return Rule(
        metric=rule.metric,
        higher_is_better=rule.higher_is_better,
        floor=rule.absolute,
        beat=(
            (rule.beat_baseline,)
            if isinstance(rule.beat_baseline, str)
            else tuple(rule.beat_baseline or ())
        ),
        margin=rule.baseline_margin,
        beat_per_segment=rule.beat_baseline_per_segment,
        tolerance=rule.champion_tolerance,
        relative=rule.tolerance_kind == "relative",
        per_segment=rule.per_segment,
        min_support=rule.min_segment_support,
        required=rule.required,
        noise_aware=rule.noise_aware,
    )


def scorecard(evaluation: Evaluation, has_champion: bool) -> Scorecard:
    """The evaluation in the gate's terms; without a champion the champion's numbers (if any
    were computed) are left out."""
    overall = {
        _ROLE.get(predictor, predictor): metrics
        for predictor, metrics in evaluation.overall.items()
        if has_champion or predictor != "champion"
    }
    segments = {
        column: [
            {**row, "predictor": _ROLE.get(row["predictor"], row["predictor"])}
            for row in rows
            if has_champion or row["predictor"] != "champion"
        ]
        for column, rows in evaluation.by_segment.items()
    }
    return Scorecard(overall, segments)


def decide(
    evaluation: Evaluation,
    rules: tuple[MetricRule, ...] | list[MetricRule],
    *,
    parity_passed: bool,
    bundle_problems: list[str],
    has_champion: bool,
) -> GateResult:
    return evaluate(
        [core_rule(r) for r in rules],
        scorecard(evaluation, has_champion),
        preconditions=[
            precondition("onnx_parity", parity_passed, "ONNX matches LightGBM within 1e-5"),
            precondition(
                "bundle_complete",
                not bundle_problems,
                "; ".join(bundle_problems) or "all files present, loads, self-test passes",
            ),
        ],
        expect_incumbent=has_champion,
    )


def headline(evaluation: Evaluation) -> dict:
    """The challenger's primary metric against the best baseline, for the run summary."""
    from retail_assets.summary import headline as make

    metric = evaluation.primary_metric
    higher = evaluation.higher_is_better.get(metric, True)
    value = evaluation.overall.get("challenger", {}).get(metric)
    baselines = {
        name: metrics.get(metric)
        for name, metrics in evaluation.overall.items()
        if name not in ("challenger", "champion") and metrics.get(metric) is not None
    }
    if not baselines:
        return make(metric, value, None, None, higher)
    best = (max if higher else min)(baselines, key=baselines.get)
    return make(metric, value, best, baselines[best], higher)
