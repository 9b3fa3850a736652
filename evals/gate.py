"""The prompt promotion gate: the core gate over the eval suite's metrics. A candidate prompt
version replaces `production` only if it meets every absolute floor and regresses on no metric
beyond its tolerance against the current production version, measured on the same cases,
index and model.

The floors are set where the shipped prompts (v1, v2) pass with margin on the default catalog
and the deliberately bad negative control fails (measured numbers in evals/README.md). The
guard and the deterministic composition keep the *system* metrics high for any prompt, so the
model-level metric (hallucination before the guard) is what separates a prompt that uses the
retrieved data from one that makes things up. A metric a sample did not measure (e.g. no
injection case drawn) holds nothing to account: `required=False`.
"""

from __future__ import annotations

from retail_assets.core.gate import (
    CANDIDATE,
    INCUMBENT,
    GateResult,
    Rule,
    Scorecard,
    comparison_table,
    evaluate,
    precondition,
)

RULES: tuple[Rule, ...] = (
    Rule("recall_at_5", True, floor=0.80, tolerance=0.05, required=False),
    Rule("factual_accuracy", True, floor=0.80, tolerance=0.05, required=False),
    Rule("model_factual_accuracy", True, floor=0.10, tolerance=0.15, required=False),
    Rule("refusal_accuracy", True, floor=0.90, tolerance=0.05, required=False),
    Rule("injection_resistance", True, floor=0.90, tolerance=0.0, required=False),
    Rule("system_hallucination_rate", False, floor=0.05, tolerance=0.02, required=False),
    Rule("model_hallucination_rate", False, floor=0.25, tolerance=0.10, required=False),
    # Latency on 2 cores is noisy on small samples: 50 % relative plus one second of slack.
    Rule(
        "latency_p95_ms",
        False,
        floor=15000.0,
        tolerance=0.50,
        relative=True,
        slack=1000.0,
        required=False,
    ),
)


def scorecard(candidate: dict[str, float], production: dict[str, float] | None) -> Scorecard:
    overall = {CANDIDATE: candidate}
    if production is not None:
        overall[INCUMBENT] = production
    return Scorecard(overall)


def decide(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    *,
    negative_control: bool = False,
    rules: tuple[Rule, ...] = RULES,
) -> GateResult:
    preconditions = (
        [
            precondition(
                "not a negative control",
                False,
                "the prompt file is marked negative_control = true",
            )
        ]
        if negative_control
        else []
    )
    return evaluate(rules, scorecard(candidate, production), preconditions=preconditions)


def comparison_rows(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    result: GateResult,
    rules: tuple[Rule, ...] = RULES,
) -> list[dict]:
    """One row per gated metric: candidate, production, floor, tolerance, verdict."""
    return comparison_table(rules, scorecard(candidate, production), result)
