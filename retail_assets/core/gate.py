"""The gate: a candidate replaces the incumbent only if every rule holds.

One rule is about one metric and may say three things:

* an absolute floor (ceiling for lower-is-better metrics) the candidate must meet;
* baselines to beat: the candidate must beat the best of them by a relative margin (the
  strongest simple alternative, not the weakest);
* a tolerance: how much worse than the incumbent (the current champion / production version)
  the candidate may be, absolute or relative (plus an absolute slack for noisy metrics).

Rules apply overall and, when `per_segment`, per segment too (a category, a region, a case
kind), skipping segments with less support than `min_support`, so an average improvement
cannot hide a broken segment. Preconditions (ONNX parity, a complete bundle, "not a negative
control") are checks the caller adds.

A test window is a sample. When a rule is `noise_aware` and the scorecard row carries a 95 %
interval (`<metric>_ci_low/_ci_high` for the value, `<metric>_minus_incumbent_ci_low/_high` for
the paired difference to the incumbent), a floor or a tolerance fails only when the whole
interval lies beyond it: the window shows the breach, not a point estimate within its noise. A
few dozen frauds per segment make per-segment point estimates move by more than a fixed
tolerance from one window to the next; with ten times the data the interval is about a third as
wide and the rule tightens by itself.

`evaluate` returns one `GateResult`: the verdict and one row per check (rule, scope, value,
threshold, passed, detail). That table is what the Dagster UI shows as metadata, what
`retail` prints and what the admin API returns: one format for models, search indices and
prompts alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from retail_assets.core.markdown import markdown_table

CANDIDATE = "candidate"
INCUMBENT = "incumbent"
COLUMNS = ("rule", "scope", "value", "threshold", "passed", "detail")
CI_LOW, CI_HIGH = "_ci_low", "_ci_high"
"""Suffixes of a metric's 95 % interval in a scorecard row (`roc_auc_ci_low`)."""
DIFF = "_minus_incumbent"
"""Infix of the paired difference candidate - incumbent (`roc_auc_minus_incumbent_ci_low`)."""


def number(value: Any) -> float | None:
    """A float, or None for anything not measured (missing, non-numeric, NaN)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


@dataclass(frozen=True)
class Rule:
    metric: str
    higher_is_better: bool
    floor: float | None = None
    """Absolute: candidate >= floor (higher is better) or <= floor (lower is better)."""
    beat: tuple[str, ...] = ()
    """Baselines (predictor names): the candidate must beat the best of them..."""
    margin: float = 0.0
    """...by this relative margin (0.05 = 5 % better than the best baseline)..."""
    beat_per_segment: bool = False
    """...in every segment with enough support too (each segment's own best baseline)."""
    tolerance: float | None = None
    """Largest allowed regression against the incumbent."""
    relative: bool = False
    """Tolerance relative to the incumbent's value (0.5 = 50 % worse) instead of absolute."""
    slack: float = 0.0
    """Absolute allowance added to a relative tolerance (latency noise on small samples)."""
    per_segment: bool = False
    min_support: int = 30
    """Segments with less support are reported but not gated (too noisy to decide on)."""
    required: bool = True
    """A candidate without this metric fails the rule; otherwise "not measured" passes."""
    noise_aware: bool = False
    """Floors and tolerances fail only when the row's 95 % interval lies wholly beyond them
    (when the row has one; without an interval the point estimate decides)."""

    @property
    def sign(self) -> str:
        return ">=" if self.higher_is_better else "<="

    def meets(self, value: float, bound: float) -> bool:
        return value >= bound if self.higher_is_better else value <= bound

    def tolerance_text(self) -> str:
        if self.tolerance is None:
            return "-"
        if self.relative:
            return f"{self.tolerance:.0%}" + (f" + {self.slack:g}" if self.slack else "")
        return f"{self.tolerance:g}"

    def limit_vs(self, reference: float) -> float:
        """The worst value the candidate may have, given the incumbent's `reference`."""
        assert self.tolerance is not None
        step = abs(reference) * self.tolerance + self.slack if self.relative else self.tolerance
        return reference - step if self.higher_is_better else reference + step

    def beaten_target(self, best_baseline: float) -> float:
        scale = 1 + self.margin if self.higher_is_better else 1 - self.margin
        return best_baseline * scale


def interval(row: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    """The 95 % interval `key`_ci_low .. `key`_ci_high of a scorecard row, if it has one."""
    low, high = number(row.get(key + CI_LOW)), number(row.get(key + CI_HIGH))
    return None if low is None or high is None else (low, high)


@dataclass
class Check:
    rule: str
    scope: str
    value: float | None
    threshold: float | None
    passed: bool
    detail: str = ""
    metric: str = ""


def precondition(rule: str, passed: bool, detail: str) -> Check:
    """A yes/no requirement checked outside the metrics (parity, bundle, negative control)."""
    return Check(rule, "overall", None, None, passed, detail)


@dataclass
class Scorecard:
    """What the gate reads. `overall[predictor][metric]`; predictors are `candidate`,
    `incumbent` (when there is one) and baseline names. `segments[column]` holds rows
    `{"segment", "predictor", "support", <metric>: value}`."""

    overall: dict[str, dict[str, Any]]
    segments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def value(self, predictor: str, metric: str) -> float | None:
        return number(self.overall.get(predictor, {}).get(metric))


@dataclass
class GateResult:
    passed: bool
    checks: list[Check]

    @property
    def reasons(self) -> list[str]:
        out = []
        for c in self.checks:
            if c.passed:
                continue
            if c.value is not None and c.threshold is not None:
                out.append(f"{c.rule} failed for {c.scope}: {c.value:.4g} vs {c.threshold:.4g}")
            else:
                out.append(f"{c.rule} failed for {c.scope}: {c.detail}")
        return out

    def table(self) -> list[dict[str, Any]]:
        """One row per check: the format the UI, the CLI and the admin API all show."""
        return [{k: v for k, v in asdict(c).items() if k in COLUMNS} for c in self.checks]

    def markdown(self) -> str:
        return markdown_table(self.table(), list(COLUMNS))

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "reasons": self.reasons, "checks": self.table()}


def evaluate(
    rules: Iterable[Rule],
    scorecard: Scorecard,
    *,
    preconditions: Iterable[Check] = (),
    expect_incumbent: bool = False,
) -> GateResult:
    """Every check of every rule; passed only if all pass. `expect_incumbent`: an incumbent
    exists, so a scorecard without its metrics is a failure (it could not be compared)."""
    checks = list(preconditions)
    has_incumbent = bool(scorecard.overall.get(INCUMBENT))
    if expect_incumbent and not has_incumbent:
        checks.append(
            precondition(
                "incumbent_comparison", False, "the incumbent could not be scored on this data"
            )
        )
    for rule in rules:
        checks += _overall(rule, scorecard)
        if rule.per_segment or (rule.beat and rule.beat_per_segment):
            checks += _segments(rule, scorecard)
    return GateResult(all(c.passed for c in checks), checks)


def _overall(rule: Rule, card: Scorecard) -> list[Check]:
    value = card.value(CANDIDATE, rule.metric)
    if value is None:
        return [
            Check(
                rule.metric,
                "overall",
                None,
                None,
                not rule.required,
                "not measured" if not rule.required else f"candidate has no '{rule.metric}'",
                rule.metric,
            )
        ]
    row = card.overall.get(CANDIDATE, {})
    out = []
    if rule.floor is not None:
        out.append(_floor(rule, "overall", value, row))
    if rule.beat:
        out.append(_beat(rule, card, value))
    if rule.tolerance is not None:
        reference = card.value(INCUMBENT, rule.metric)
        if reference is not None:
            out.append(_versus(rule, "overall", value, reference, row))
    return out


def _floor(rule: Rule, scope: str, value: float, row: Mapping[str, Any]) -> Check:
    passed = rule.meets(value, rule.floor)
    detail = ""
    ci = interval(row, rule.metric) if rule.noise_aware else None
    if ci is not None:
        # The interval's edge nearest to the good side: is even that beyond the floor?
        edge = ci[1] if rule.higher_is_better else ci[0]
        detail = f"95% interval [{ci[0]:.4g}, {ci[1]:.4g}]"
        if not passed and rule.meets(edge, rule.floor):
            passed, detail = True, detail + ": the breach is within the window's noise"
    return Check(
        f"{rule.metric} {rule.sign} {rule.floor:g}",
        scope,
        value,
        rule.floor,
        passed,
        detail,
        rule.metric,
    )


def _beat(rule: Rule, card: Scorecard, value: float) -> Check:
    return _beat_values(rule, "overall", value, {b: card.value(b, rule.metric) for b in rule.beat})


def _beat_values(rule: Rule, scope: str, value: float, baselines: dict) -> Check:
    measured = {b: v for b, v in baselines.items() if v is not None}
    others = ", ".join(rule.beat)
    name = (
        f"{rule.metric} beats the best of {others} by {rule.margin:.0%}"
        if rule.margin >= 0
        else f"{rule.metric} within {-rule.margin:.0%} of the best of {others}"
    )
    if not measured:
        return Check(name, scope, value, None, False, "no baseline was measured", rule.metric)
    best_name, best = (
        max(measured.items(), key=lambda kv: kv[1])
        if rule.higher_is_better
        else min(measured.items(), key=lambda kv: kv[1])
    )
    target = rule.beaten_target(best)
    strictly = value > target if rule.higher_is_better else value < target
    detail = f"best baseline {best_name} {best:.4g}"
    return Check(name, scope, value, target, strictly, detail, rule.metric)


def _versus(
    rule: Rule, scope: str, value: float, reference: float, row: Mapping[str, Any]
) -> Check:
    limit = rule.limit_vs(reference)
    passed = rule.meets(value, limit)
    detail = f"incumbent {reference:.4g}"
    ci = interval(row, rule.metric + DIFF) if rule.noise_aware else None
    if ci is not None:
        # Paired difference candidate - incumbent on the same rows; the largest regression
        # allowed is limit - reference. Fail only when the whole interval is beyond it.
        edge = ci[1] if rule.higher_is_better else ci[0]
        detail += f"; paired difference 95% interval [{ci[0]:+.4g}, {ci[1]:+.4g}]"
        if not passed and rule.meets(edge, limit - reference):
            passed, detail = True, detail + ": the regression is within the window's noise"
    return Check(
        f"{rule.metric} no worse than the incumbent by more than {rule.tolerance_text()}",
        scope,
        value,
        round(limit, 6),
        passed,
        detail,
        rule.metric,
    )


def _segments(rule: Rule, card: Scorecard) -> list[Check]:
    out = []
    for column, rows in card.segments.items():
        by_predictor: dict[str, dict[str, Mapping[str, Any]]] = {}
        for row in rows:
            by_predictor.setdefault(str(row["predictor"]), {})[str(row["segment"])] = row
        for segment, row in sorted(by_predictor.get(CANDIDATE, {}).items()):
            support = number(row.get("support"))
            if support is not None and support < rule.min_support:
                continue
            value = number(row.get(rule.metric))
            if value is None:
                continue
            scope = f"{column}={segment}"
            if rule.floor is not None and rule.per_segment:
                out.append(_floor(rule, scope, value, row))
            if rule.beat and rule.beat_per_segment:
                baselines = {
                    b: number(by_predictor.get(b, {}).get(segment, {}).get(rule.metric))
                    for b in rule.beat
                }
                out.append(_beat_values(rule, scope, value, baselines))
            if rule.tolerance is not None and rule.per_segment:
                incumbent = by_predictor.get(INCUMBENT, {}).get(segment)
                reference = number(incumbent.get(rule.metric)) if incumbent else None
                if reference is not None:
                    out.append(_versus(rule, scope, value, reference, row))
    return out


def comparison_table(rules: Iterable[Rule], scorecard: Scorecard, result: GateResult) -> list:
    """Per rule: candidate, incumbent, floor, tolerance and verdict (the overall view)."""
    rows = []
    for rule in rules:
        checks = [c for c in result.checks if c.metric == rule.metric]
        rows.append(
            {
                "metric": rule.metric,
                "candidate": scorecard.value(CANDIDATE, rule.metric),
                "incumbent": scorecard.value(INCUMBENT, rule.metric),
                "floor": f"{rule.sign} {rule.floor:g}" if rule.floor is not None else "-",
                "tolerance": rule.tolerance_text(),
                "passed": all(c.passed for c in checks),
            }
        )
    return rows
