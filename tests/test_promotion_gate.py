"""The promotion gate's rules, on evaluations shaped exactly like the lifecycle produces.

End-to-end promotion and refusal run through Dagster in test_model_lifecycle.py; here the
per-segment rule gets a case that the average alone would let through."""

from retail_assets.models.lifecycle.gate import decide
from retail_assets.models.lifecycle.spec import Evaluation, MetricRule

WAPE_RULES = (
    MetricRule("wape", higher_is_better=False, beat_baseline="seasonal_naive"),
    MetricRule(
        "wape",
        higher_is_better=False,
        champion_tolerance=0.10,
        tolerance_kind="relative",
        min_segment_support=100,
    ),
)


def _evaluation(challenger_by_category: dict[str, float], challenger_overall: float) -> Evaluation:
    champion_by_category = {"Footwear": 0.40, "Outdoor": 0.35, "Electronics": 0.50}
    rows = []
    for predictor, values in (
        ("champion", champion_by_category),
        ("challenger", challenger_by_category),
    ):
        for category, wape in values.items():
            rows.append(
                {
                    "segment": category,
                    "predictor": predictor,
                    "n": 500,
                    "support": 1200,
                    "wape": wape,
                }
            )
    rows.append({"segment": "Tiny", "predictor": "challenger", "n": 5, "support": 12, "wape": 3.0})
    return Evaluation(
        primary_metric="wape",
        higher_is_better={"wape": False},
        overall={
            "challenger": {"wape": challenger_overall},
            "champion": {"wape": 0.42},
            "seasonal_naive": {"wape": 0.60},
        },
        by_segment={"category": rows},
        bias_audit={},
        feature_importance=[],
        explanations=[],
        test_window={"start": "2026-10-04", "end": "2026-10-31"},
    )


def test_better_average_with_one_broken_segment_is_refused_naming_the_segment():
    """Overall WAPE improves 0.42 -> 0.36, but Electronics regresses 0.50 -> 0.70 (+40 %, over
    the 10 % per-segment tolerance): refused, and the reason names metric and segment."""
    evaluation = _evaluation({"Footwear": 0.30, "Outdoor": 0.28, "Electronics": 0.70}, 0.36)
    decision = decide(
        evaluation, WAPE_RULES, parity_passed=True, bundle_problems=[], has_champion=True
    )
    assert not decision.passed
    assert any("wape" in r and "category=Electronics" in r for r in decision.reasons), (
        decision.reasons
    )
    assert not any("Footwear" in r or "Outdoor" in r for r in decision.reasons)


def test_uniform_improvement_is_promoted_and_small_segments_are_not_gated():
    """Every supported segment improves: promoted, even though a 12-unit segment looks awful
    (below min_segment_support, reported but not gated)."""
    evaluation = _evaluation({"Footwear": 0.35, "Outdoor": 0.33, "Electronics": 0.48}, 0.39)
    decision = decide(
        evaluation, WAPE_RULES, parity_passed=True, bundle_problems=[], has_champion=True
    )
    assert decision.passed, decision.reasons
    assert not any(c.scope == "category=Tiny" for c in decision.checks)


def test_parity_failure_or_incomplete_bundle_blocks_an_otherwise_better_model():
    """A better model is still refused when ONNX parity failed or the bundle is incomplete."""
    evaluation = _evaluation({"Footwear": 0.30, "Outdoor": 0.28, "Electronics": 0.45}, 0.35)
    refused = decide(
        evaluation,
        WAPE_RULES,
        parity_passed=False,
        bundle_problems=["model.onnx missing or empty"],
        has_champion=True,
    )
    assert not refused.passed
    assert any("onnx_parity" in r for r in refused.reasons)
    assert any("model.onnx missing" in r for r in refused.reasons)


def test_first_model_is_promoted_only_if_it_beats_the_baseline():
    """No champion yet: the baseline rule decides (champion tolerance does not apply)."""
    evaluation = _evaluation({"Footwear": 0.30, "Outdoor": 0.28, "Electronics": 0.45}, 0.35)
    evaluation.overall.pop("champion")
    assert decide(
        evaluation, WAPE_RULES, parity_passed=True, bundle_problems=[], has_champion=False
    ).passed
    evaluation.overall["challenger"]["wape"] = 0.65
    decision = decide(
        evaluation, WAPE_RULES, parity_passed=True, bundle_problems=[], has_champion=False
    )
    assert not decision.passed
    assert any("beats the best of seasonal_naive" in r for r in decision.reasons)
