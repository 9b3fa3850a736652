"""The promotion gate: a challenger becomes champion only if every rule holds.

Rules come from the model family (`MetricRule`s): absolute thresholds, beating an honest
baseline, and no regression against the current champion beyond a tolerance, overall and per
segment (per-segment SLOs, so an average improvement cannot hide a broken region or
category). ONNX parity and bundle completeness are preconditions. The first model of a family
has no champion: it is promoted if it passes its absolute rules and beats the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from retail_assets.models.lifecycle.spec import Evaluation, MetricRule


@dataclass
class GateCheck:
    rule: str
    scope: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str = ""


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    checks: list[GateCheck] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "reasons": self.reasons,
            "checks": [c.__dict__ for c in self.checks],
        }


def _worse_by(rule: MetricRule, challenger: float, reference: float) -> float:
    """How much worse the challenger is (positive = worse), in the rule's tolerance units."""
    delta = (reference - challenger) if rule.higher_is_better else (challenger - reference)
    if rule.tolerance_kind == "relative":
        return delta / abs(reference) if reference else (0.0 if delta <= 0 else float("inf"))
    return delta


def _beats(rule: MetricRule, value: float, threshold: float) -> bool:
    return value >= threshold if rule.higher_is_better else value <= threshold


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number  # NaN is "not measured"


def decide(
    evaluation: Evaluation,
    rules: tuple[MetricRule, ...] | list[MetricRule],
    *,
    parity_passed: bool,
    bundle_problems: list[str],
    has_champion: bool,
) -> Decision:
    checks: list[GateCheck] = []

    def check(rule: str, scope: str, value, threshold, passed: bool, detail: str = "") -> None:
        checks.append(GateCheck(rule, scope, value, threshold, passed, detail))

    check("onnx_parity", "overall", None, None, parity_passed, "ONNX matches LightGBM within 1e-5")
    check(
        "bundle_complete",
        "overall",
        None,
        None,
        not bundle_problems,
        "; ".join(bundle_problems) or "all files present, loads, self-test passes",
    )
    challenger = evaluation.overall.get("challenger", {})
    champion = evaluation.overall.get("champion") if has_champion else None
    if has_champion and not champion:
        check(
            "champion_comparison",
            "overall",
            None,
            None,
            False,
            "champion could not be scored on the test window",
        )

    for rule in rules:
        value = _num(challenger.get(rule.metric))
        if value is None:
            check(rule.metric, "overall", None, None, False, f"challenger has no '{rule.metric}'")
            continue
        better = ">=" if rule.higher_is_better else "<="
        if rule.absolute is not None:
            check(
                f"{rule.metric} {better} {rule.absolute}",
                "overall",
                value,
                rule.absolute,
                _beats(rule, value, rule.absolute),
            )
        if rule.beat_baseline:
            base = _num(evaluation.overall.get(rule.beat_baseline, {}).get(rule.metric))
            if base is None:
                check(
                    f"{rule.metric} beats {rule.beat_baseline}",
                    "overall",
                    value,
                    None,
                    False,
                    "baseline not measured",
                )
            else:
                target = (
                    base * (1 + rule.baseline_margin)
                    if rule.higher_is_better
                    else base * (1 - rule.baseline_margin)
                )
                check(
                    f"{rule.metric} beats {rule.beat_baseline} by {rule.baseline_margin:.0%}",
                    "overall",
                    value,
                    target,
                    value > target if rule.higher_is_better else value < target,
                )
        if rule.champion_tolerance is not None and champion:
            reference = _num(champion.get(rule.metric))
            if reference is not None:
                worse = _worse_by(rule, value, reference)
                check(
                    f"{rule.metric} within {rule.champion_tolerance:g} ({rule.tolerance_kind}) of champion",
                    "overall",
                    value,
                    reference,
                    worse <= rule.champion_tolerance,
                    f"champion {reference:.4g}",
                )
        if not rule.per_segment:
            continue
        for segment_column, rows in evaluation.by_segment.items():
            by_predictor: dict[str, dict[str, dict]] = {}
            for row in rows:
                by_predictor.setdefault(row["predictor"], {})[str(row["segment"])] = row
            for segment, row in sorted(by_predictor.get("challenger", {}).items()):
                if (
                    _num(row.get("support")) is not None
                    and row["support"] < rule.min_segment_support
                ):
                    continue
                seg_value = _num(row.get(rule.metric))
                if seg_value is None:
                    continue
                scope = f"{segment_column}={segment}"
                if rule.absolute is not None:
                    check(
                        f"{rule.metric} {better} {rule.absolute}",
                        scope,
                        seg_value,
                        rule.absolute,
                        _beats(rule, seg_value, rule.absolute),
                    )
                if rule.champion_tolerance is not None and champion:
                    ref_row = by_predictor.get("champion", {}).get(segment)
                    reference = _num(ref_row.get(rule.metric)) if ref_row else None
                    if reference is None:
                        continue
                    worse = _worse_by(rule, seg_value, reference)
                    check(
                        f"{rule.metric} within {rule.champion_tolerance:g} ({rule.tolerance_kind}) of champion",
                        scope,
                        seg_value,
                        reference,
                        worse <= rule.champion_tolerance,
                        f"champion {reference:.4g}",
                    )

    failed = [c for c in checks if not c.passed]
    reasons = [
        f"{c.rule} failed for {c.scope}: challenger {c.value:.4g} vs {c.threshold:.4g}"
        if c.value is not None and c.threshold is not None
        else f"{c.rule} failed for {c.scope}: {c.detail}"
        for c in failed
    ]
    return Decision(promote=not failed, reasons=reasons, checks=checks)
