"""The scenarios: what happens to the world (and to the platform) on which day, and what the
platform is expected to do about it.

Each scenario names its base day (the last day the base platform is materialized through),
the drift knobs of its world, an optional change to the world (`prepare`), an optional action
on a day (`act`: land a corrupt feed, force a bad model to champion, propose a worse prompt)
and its expectations, judged on the finished timeline (`expect`: each a name, passed, and
the evidence). The tests run every scenario at `tiny` and assert its expectations.

`event_day(days)` puts the scenario's event early enough that the rest of the run shows the
platform's answer: day 2 of a short run, later in a long one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl

from retail_assets.sources.synthetic.config import (
    DEFAULT_END_DATE,
    DemandShift,
    FraudPatternChange,
    Knobs,
)

BLACK_FRIDAY_2026 = date(2026, 11, 27)
# The department with the most SKUs. The level test runs over SKUs and needs at least 11 with
# two years of history to reach p < 0.001 (Wilcoxon, exact): `small` has them, `tiny` (5 in
# Electronics) cannot show a department's shift at all, so run this scenario at `small`.
SHOCKED_DEPARTMENT = "Electronics"
# A jump this large moves the department's 28-day level past the monitor's 25 % bar within two
# weeks at small (benchmarks/bench_monitoring.py), as a competitor's stock-out or a viral
# product does.
SHOCK_FACTOR = 4.0
# Competitors cut prices on the shocked department by this much the same day.
COMPETITOR_CUT = 0.85
# At tiny scale ~120 payments a day, ~1 % of them fraud: a new pattern at 10 % of traffic (an
# attack, ~12 frauds a day) is what label-based monitoring can show at that volume within two
# weeks: only a tenth of these frauds is investigated (labels in ~4 days), the rest wait for
# chargebacks (median 18 days). benchmarks/bench_monitoring.py measures 5 % at 15-18 days.
NEW_FRAUD_RATE = 0.10
# Live recall over the last week may end this far (absolute) below its level before the
# change and count as recovered: at tiny a week holds a few dozen frauds, so one more or less
# caught moves recall by a few points.
RECALL_TOLERANCE = 0.10
LAUNCH_SHARE = 0.2  # a fifth of the catalog launches at once
CORRUPT_DAY_PRICE_FACTOR = 100  # the POS sends cents


@dataclass(frozen=True)
class Expectation:
    name: str
    passed: bool
    evidence: str


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    base_day: Callable[[int], date] = lambda days: DEFAULT_END_DATE
    knobs: Callable[[date, int], Knobs] = lambda start, event: Knobs()
    prepare: Callable[[Any, date, int], dict[str, Any]] | None = None
    act: Callable[[Any, int], None] | None = None
    expect: Callable[[dict[str, Any]], list[Expectation]] = lambda timeline: []
    default_days: int = 14
    min_days: int = 2
    detected_by: tuple[str, ...] = ()
    """Events ("type" or "type:model") that count as the platform noticing the event."""
    recovered_by: tuple[str, ...] = ()
    """Events that count as the platform having answered it."""
    recovery: Callable[[dict[str, Any]], int | None] | None = None
    """The first day index the platform counts as recovered, from the live metrics, when an
    event is not evidence enough (a retrain may not restore quality); with `recovery_means`
    saying what it measures. Overrides `recovered_by`."""
    recovery_means: str = ""

    def event_day(self, days: int) -> int:
        return max(2, min(10, days // 4))


# -- helpers over the timeline -------------------------------------------------------------------


def events(timeline: dict, kind: str | None = None, model: str | None = None) -> list[dict]:
    return [
        e
        for day in timeline["days"]
        for e in day["events"]
        if (kind is None or e["type"] == kind) and (model is None or e.get("model") == model)
    ]


def metric_rows(timeline: dict, model: str) -> list[dict]:
    return [
        {**row, "day": day["day"]}
        for day in timeline["days"]
        for row in day["traffic"]["metrics"].get(model, [])
    ]


def zero_5xx(timeline: dict) -> Expectation:
    errors = sum(sum(d["traffic"]["server_errors"].values()) for d in timeline["days"])
    served = sum(sum(d["traffic"]["requests"].values()) for d in timeline["days"])
    return Expectation("zero 5xx", errors == 0, f"{errors} of {served} requests answered 5xx")


def guardrails_held(timeline: dict) -> Expectation:
    broken = sum(
        d["traffic"]["checks"].get("prices_outside_guardrails", 0) for d in timeline["days"]
    )
    served = sum(d["traffic"]["checks"].get("prices_served", 0) for d in timeline["days"])
    return Expectation(
        "every served price inside its guardrails",
        broken == 0 and served > 0,
        f"{broken} of {served} prices outside the guardrails",
    )


# -- the scenarios ---------------------------------------------------------------------------------


# Features a seasonal surge moves: the demand history (lags, rolling means) and the level.
SEASONAL_FEATURE_WORDS = ("lag", "roll", "units", "demand", "sales", "mean")


def _seasonal(event: dict) -> bool:
    """A drift event a surge of sales would cause: a level drift, or drift of a feature built
    from the sales history (not, e.g., competitor prices, which the season does not move)."""
    features = event.get("features", [])
    return bool(event.get("segments")) or any(
        word in feature for feature in features for word in SEASONAL_FEATURE_WORDS
    )


def _holiday_expect(timeline: dict) -> list[Expectation]:
    drift = events(timeline, "drift_detected", "demand")
    seasonal = [e for e in drift if _seasonal(e)]
    other = sorted({f for e in drift if not _seasonal(e) for f in e.get("features", [])})
    retrains = [
        e for e in events(timeline, "retrain_requested", "demand")
        if any(_seasonal(d) for d in drift if d["version"] == e["version"])
    ]  # fmt: skip
    rows = metric_rows(timeline, "demand")

    def pooled(selected: list[dict]) -> float | None:
        actual = sum(r["actual_sum"] for r in selected)
        return round(sum(r["error_sum"] for r in selected) / actual, 4) if actual else None

    model = pooled([r for r in rows if r["arm"] != "baseline"])
    baselines = {
        name: pooled([r for r in rows if r["arm"] == "baseline" and r["version"] == name])
        for name in sorted({r["version"] for r in rows if r["arm"] == "baseline"})
    }
    best = min((v for v in baselines.values() if v is not None), default=None)
    return [
        Expectation(
            "no drift-triggered demand retrain from the expected season",
            not seasonal and not retrains,
            f"{len(seasonal)} seasonal drift events (level or sales-history features), "
            f"{len(retrains)} retrains requested for them"
            + (
                f"; drift outside the season (not judged here): {', '.join(other)}" if other else ""
            ),
        ),
        Expectation(
            "forecast error within the season's norm: no worse than the best simple forecast "
            "on the same days",
            model is not None and best is not None and model <= best,
            f"live WAPE over the surge {model} (every version and arm) against "
            + ", ".join(f"{name} {value}" for name, value in baselines.items()),
        ),
        zero_5xx(timeline),
    ]


def _shock_world(world, start: date, event: int) -> dict[str, Any]:
    day = start + timedelta(days=event)
    products = world.feeds["products"]
    hit = products.filter(pl.col("department") == SHOCKED_DEPARTMENT)["sku"].to_list()
    prices = world.feeds["competitor_prices"]
    world.feeds["competitor_prices"] = prices.with_columns(
        pl.when(pl.col("sku").is_in(hit) & (pl.col("date") >= day))
        .then((pl.col("competitor_price") * COMPETITOR_CUT).round(2))
        .otherwise(pl.col("competitor_price"))
        .alias("competitor_price")
    )
    categories = sorted(
        products.filter(pl.col("department") == SHOCKED_DEPARTMENT)["category"].unique()
    )
    return {"department": SHOCKED_DEPARTMENT, "categories": categories, "skus": hit}


def _shock_expect(timeline: dict) -> list[Expectation]:
    affected = timeline["scenario_state"]
    allowed = {f"department={affected['department']}"} | {
        f"category={c}" for c in affected["categories"]
    }
    level = [e for e in events(timeline, "drift_detected", "demand") if e.get("segments")]
    drifted = {s for e in level for s in e["segments"]}
    answered = {e["version"] for e in level}
    # The retrains monitoring asked for because of the level drift (a drift of other features,
    # present before the shock, asks for its own retrain and is not this scenario's), and the
    # tiers that held the affected categories when each was asked (tiers are re-scored
    # nightly, so the base day's memberships may be out of date by then).
    asked = [e for e in events(timeline, "retrain_requested", "demand") if e["version"] in answered]
    tiers = {t for e in asked for t in e.get("tiers", [])}
    holding = {
        t
        for e in asked
        for t, held in (e.get("tier_memberships") or {}).items()
        if set(held) & set(affected["categories"])
    }
    scopes = sorted({e.get("tier_scope", "") for e in asked} - {""})
    return [
        Expectation(
            "drift detected in the affected categories only",
            bool(drifted) and drifted <= allowed,
            f"level drift in {sorted(drifted)}; affected {sorted(allowed)}",
        ),
        Expectation(
            "only the affected tier retrains",
            bool(tiers) and bool(holding) and tiers <= holding,
            f"tiers retrained for the level drift {sorted(tiers)} ({'; '.join(scopes)}); tiers "
            f"holding the affected categories when asked {sorted(holding)}",
        ),
        guardrails_held(timeline),
        zero_5xx(timeline),
    ]


def _fraud_expect(timeline: dict) -> list[Expectation]:
    change = timeline["event_day"]
    detected = [
        e
        for e in events(timeline, None, "fraud")
        if e["type"] in ("drift_detected", "live_degraded") and e["day_index"] >= change
    ]
    retrained = [
        e
        for e in events(timeline, "retrained", "fraud")
        if e["trigger"] == "sensor:monitoring_retrain_sensor" and e["day_index"] >= change
    ]
    first = detected[0]["day_index"] - change if detected else None
    retrain_delay = retrained[0]["day_index"] - change if retrained else None
    last = timeline["days"][-1]["index"]
    before, recent = _recall(timeline, 0, change - 1), _recall(timeline, last - 6, last)
    recovered = None not in (before, recent) and recent >= before - RECALL_TOLERANCE
    return [
        Expectation(
            "the new pattern is detected by monitoring",
            first is not None,
            f"detected {first} days after the change ({detected[0]['reason'][:160]})"
            if detected
            else "not detected",
        ),
        Expectation(
            "monitoring retrains fraud for it",
            retrain_delay is not None,
            f"first monitoring-triggered fraud retrain {retrain_delay} days after the change"
            if retrained
            else "no monitoring-triggered fraud retrain",
        ),
        Expectation(
            f"live recall recovers to within {RECALL_TOLERANCE:.2f} of its level before",
            recovered,
            f"the oracle's recall {_fmt(recent)} over the last 7 days against {_fmt(before)} "
            "before the change",
        ),
        zero_5xx(timeline),
    ]


def _fraud_recovery(timeline: dict) -> int | None:
    """The first day from the change on whose trailing 7-day live recall is back within
    `RECALL_TOLERANCE` of the recall before the change."""
    change = timeline["event_day"]
    before = _recall(timeline, 0, change - 1)
    if before is None:
        return None
    for day in timeline["days"]:
        index = day["index"]
        recent = _recall(timeline, index - 6, index) if index >= change + 6 else None
        if recent is not None and recent >= before - RECALL_TOLERANCE:
            return index
    return None


def _recall(timeline: dict, first: int, last: int) -> float | None:
    """The oracle's fraud recall over days first..last, every version and arm pooled."""
    rows = [
        r
        for d in timeline["days"]
        if first <= d["index"] <= last
        for r in d["traffic"]["metrics"].get("fraud", [])
    ]
    frauds = sum(r["frauds"] for r in rows)
    return sum(r["caught"] for r in rows) / frauds if frauds else None


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _corrupt_act(sim, day_index: int) -> None:
    sim.corrupt_next_landing = True


def _corrupt_expect(timeline: dict) -> list[Expectation]:
    blocked = events(timeline, "feed_blocked")
    corrupt_day = timeline["event_day"] + 1  # the corrupt day lands the next morning
    trained_on_it = [e for e in events(timeline, "retrained") if e["day_index"] == corrupt_day]
    promoted_that_day = [e for e in events(timeline, "promoted") if e["day_index"] == corrupt_day]
    later = [d for d in timeline["days"] if d["index"] > corrupt_day]
    flowed = any(
        not d["feeds_blocked"] and "marts/fct_daily_sales" in d["materialized"] for d in later
    )
    versions_kept = all(
        d["serving"] == timeline["days"][corrupt_day - 2]["serving"]
        for d in timeline["days"]
        if d["index"] == corrupt_day
    )
    return [
        Expectation(
            "the corrupt sales feed is blocked and quarantined with its report",
            any(e["feed"] == "sales" and e.get("quarantine") for e in blocked),
            f"{len(blocked)} feed_blocked events: "
            + "; ".join(f"{e['feed']} ({e['reason'][:120]})" for e in blocked),
        ),
        Expectation(
            "nothing trains on it and serving keeps the last good versions",
            not trained_on_it and not promoted_that_day and versions_kept,
            f"{len(trained_on_it)} retrains and {len(promoted_that_day)} promotions on the "
            "corrupt day; serving versions unchanged"
            if versions_kept
            else "serving versions changed",
        ),
        Expectation(
            "the next good day flows normally",
            flowed,
            "the marts were rebuilt on a later day" if flowed else "no later day rebuilt the marts",
        ),
        zero_5xx(timeline),
    ]


def _wave_world(world, start: date, event: int) -> dict[str, Any]:
    skus = world.launch_wave(start + timedelta(days=event), LAUNCH_SHARE)
    return {"skus": skus}


def _wave_expect(timeline: dict) -> list[Expectation]:
    launch = timeline["event_day"] + 1  # launched on the event day, landed the next morning
    day = next((d for d in timeline["days"] if d["index"] == launch), None)
    checks = day["traffic"]["checks"] if day else {}
    n = checks.get("new_skus", 0)
    return [
        Expectation(
            "new SKUs are searchable the day they land",
            n > 0
            and checks.get("new_skus_found_by_search", 0) == checks.get("new_skus_searched", -1),
            f"{checks.get('new_skus_found_by_search', 0)} of "
            f"{checks.get('new_skus_searched', 0)} new SKUs searched by title found in the top 5",
        ),
        Expectation(
            "new SKUs are forecastable (cold start) the day they land",
            n > 0 and checks.get("new_skus_forecastable", 0) == n,
            f"{checks.get('new_skus_forecastable', 0)} of {n} forecast",
        ),
        Expectation(
            "new SKUs are recommendable the day they land",
            n > 0
            and checks.get("new_skus_recommended", 0) > 0
            and checks.get("new_sku_pages_with_recommendations", 0) == n,
            f"{checks.get('new_skus_recommended', 0)} of {n} shown next to their closest "
            f"existing product; {checks.get('new_sku_pages_with_recommendations', 0)} of {n} "
            "product pages with a list",
        ),
        Expectation(
            "time from landing to serving is measured",
            day is not None and day.get("night_seconds") is not None,
            f"{day.get('night_seconds') if day else None} s from landing to the refreshed serving app",
        ),
        zero_5xx(timeline),
    ]


def _bad_model_act(sim, day_index: int) -> None:
    sim.force_broken_pricing_champion()


def _bad_model_expect(timeline: dict) -> list[Expectation]:
    forced = events(timeline, "forced_champion", "pricing")
    opened = events(timeline, "breaker_opened", "pricing")
    rolled = events(timeline, "rolled_back", "pricing")
    served_by_broken = sum(
        r["prices"] - r["fallbacks"]
        for r in metric_rows(timeline, "pricing")
        if forced and r["version"] == forced[0]["version"]
    )
    return [
        Expectation(
            "the broken champion is rolled back automatically",
            bool(forced) and bool(opened) and bool(rolled),
            f"breaker opened: {bool(opened)}; rolled back: {bool(rolled)}; prices the broken "
            f"model answered before the breaker: {served_by_broken}",
        ),
        guardrails_held(timeline),
        zero_5xx(timeline),
    ]


def _prompt_act(sim, day_index: int) -> None:
    sim.propose_worse_prompt()


def _prompt_expect(timeline: dict) -> list[Expectation]:
    proposed = events(timeline, "prompt_proposed")
    refused = [e for e in events(timeline, "prompt_evaluated") if not e.get("passed")]
    production = {d["serving"].get("assistant_prompt") for d in timeline["days"]}
    return [
        Expectation(
            "the eval gate refuses the worse prompt",
            bool(proposed) and any(e["version"] == proposed[0]["version"] for e in refused),
            "; ".join(f"v{e['version']}: {e['reason'][:160]}" for e in refused) or "no refusal",
        ),
        Expectation(
            "production keeps its prompt",
            len(production) == 1,
            f"production prompt versions over the run: {sorted(map(str, production))}",
        ),
        zero_5xx(timeline),
    ]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "holiday_season",
            "The Black Friday to Christmas surge: an expected seasonal pattern, not drift.",
            base_day=lambda days: BLACK_FRIDAY_2026 - timedelta(days=3),
            expect=_holiday_expect,
            default_days=35,
            min_days=4,
        ),
        Scenario(
            "supply_shock",
            f"Demand for {SHOCKED_DEPARTMENT} jumps {SHOCK_FACTOR:g}x and competitors cut its "
            f"prices by {1 - COMPETITOR_CUT:.0%}.",
            knobs=lambda start, event: Knobs(
                demand_shift=DemandShift(
                    start + timedelta(days=event), SHOCK_FACTOR, (SHOCKED_DEPARTMENT,)
                )
            ),
            prepare=_shock_world,
            expect=_shock_expect,
            default_days=21,
            min_days=10,
            detected_by=("drift_detected:demand",),
            recovered_by=("retrained:demand",),
        ),
        Scenario(
            "fraud_pattern_change",
            f"A new fraud pattern (digital goods from the victim's own device) at "
            f"{NEW_FRAUD_RATE:.0%} of payments.",
            knobs=lambda start, event: Knobs(
                fraud_pattern_change=FraudPatternChange(
                    start + timedelta(days=event), new_pattern_rate=NEW_FRAUD_RATE
                )
            ),
            expect=_fraud_expect,
            default_days=28,
            min_days=14,
            detected_by=("drift_detected:fraud", "live_degraded:fraud"),
            recovered_by=("retrained:fraud",),
            recovery=_fraud_recovery,
            recovery_means=(
                f"7-day live recall back within {RECALL_TOLERANCE:.2f} of its level before"
            ),
        ),
        Scenario(
            "corrupt_pos_feed",
            "One day of point-of-sale sales arrives in cents.",
            act=_corrupt_act,
            expect=_corrupt_expect,
            default_days=5,
            min_days=4,
            detected_by=("feed_blocked",),
            recovered_by=(),
        ),
        Scenario(
            "new_product_wave",
            f"A fifth of the catalog ({LAUNCH_SHARE:.0%}) launches on one day.",
            prepare=_wave_world,
            expect=_wave_expect,
            default_days=5,
            min_days=3,
        ),
        Scenario(
            "bad_model_promoted",
            "A pricing model with inverted elasticities is forced to champion.",
            act=_bad_model_act,
            expect=_bad_model_expect,
            default_days=4,
            min_days=2,
            detected_by=("breaker_opened:pricing",),
            recovered_by=("rolled_back:pricing",),
        ),
        Scenario(
            "prompt_regression",
            "A worse prompt version of the shopping assistant is proposed.",
            act=_prompt_act,
            expect=_prompt_expect,
            default_days=4,
            min_days=2,
            detected_by=("prompt_evaluated:assistant",),
            recovered_by=(),
        ),
    )
}
