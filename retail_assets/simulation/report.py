"""The simulation's outputs: `timeline.json` (one record per day), `timeline.png` (the live
metrics per model and arm over the days, events marked) and `report.md` (what happened and
how fast, the scenario's expectations, and the compute the retrains took)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from retail_assets.simulation.scenarios import Scenario, events

RECALL_DAYS = 7  # a few frauds a day at small scales: a day's recall is mostly noise
PANELS = (
    ("demand", "wape", "forecast WAPE (lower is better)"),
    ("fraud", "recall", f"fraud recall at the decision (payments of the last {RECALL_DAYS} days)"),
    ("pricing", "margin_vs_today", "true margin vs today's prices"),
    ("recommend", "ctr", "recommendation CTR"),
)
MARKED = {
    "drift_detected": ("#d62728", "drift"),
    "live_degraded": ("#ff7f0e", "degraded"),
    "retrained": ("#2ca02c", "retrained"),
    "promoted": ("#1f77b4", "promoted"),
    "rolled_back": ("#9467bd", "rolled back"),
    "breaker_opened": ("#8c564b", "breaker"),
    "feed_blocked": ("#e377c2", "feed blocked"),
    "canary_started": ("#17becf", "canary"),
    "prompt_evaluated": ("#7f7f7f", "prompt gate"),
}


def daily(
    timeline: dict[str, Any], model: str, metric: str
) -> dict[tuple[str, str], dict[int, float]]:
    series: dict[tuple[str, str], dict[int, float]] = {}
    for day in timeline["days"]:
        for row in day["traffic"]["metrics"].get(model, []):
            if row.get(metric) is not None:
                series.setdefault((row["version"], row["arm"]), {})[day["index"]] = row[metric]
    return series


def fraud_recall(timeline: dict[str, Any]) -> dict[tuple[str, str], dict[int, float]]:
    """Recall per version and arm over the payments of the trailing RECALL_DAYS days."""
    counts: dict[tuple[str, str], dict[int, tuple[int, int]]] = {}
    for day in timeline["days"]:
        for row in day["traffic"]["metrics"].get("fraud", []):
            counts.setdefault((row["version"], row["arm"]), {})[day["index"]] = (
                row["caught"],
                row["frauds"],
            )
    series: dict[tuple[str, str], dict[int, float]] = {}
    for key, by_day in counts.items():
        for index in by_day:
            window = [by_day[i] for i in range(index - RECALL_DAYS + 1, index + 1) if i in by_day]
            frauds = sum(f for _, f in window)
            if frauds:
                series.setdefault(key, {})[index] = sum(c for c, _ in window) / frauds
    return series


def plot(timeline: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(10, 2.3 * len(PANELS)), sharex=True)
    days = [d["index"] for d in timeline["days"]]
    for ax, (model, metric, title) in zip(axes, PANELS, strict=True):
        series = fraud_recall(timeline) if model == "fraud" else daily(timeline, model, metric)
        for (version, arm), points in sorted(series.items()):
            xs = sorted(points)
            baseline = arm == "baseline"
            ax.plot(
                xs,
                [points[x] for x in xs],
                marker="" if baseline else "o",
                ms=3,
                ls="--" if baseline else "-",
                label=version if baseline else f"v{version} {arm}",
            )
        for event in events(timeline):
            if event["type"] in MARKED and (event.get("model") in (model, None)):
                color, _ = MARKED[event["type"]]
                ax.axvline(event["day_index"], color=color, alpha=0.5, lw=1)
        ax.set_title(title, fontsize=9, loc="left")
        if series:
            ax.legend(fontsize=7, loc="best")
    handles = [plt.Line2D([], [], color=color, label=label) for color, label in MARKED.values()]
    fig.legend(handles=handles, loc="lower center", ncol=5, fontsize=7)
    axes[-1].set_xlabel(
        f"simulated day ({timeline['scenario']}, event on day {timeline['event_day']})"
    )
    axes[-1].set_xticks(days)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def pooled(timeline: dict[str, Any], first: int, last: int | None = None) -> dict[str, Any]:
    """The oracle's live quality over days `first`..`last`, pooled over every version and arm
    that answered: forecast WAPE, fraud recall, true margin of served prices vs today's."""
    days = [
        d for d in timeline["days"] if first <= d["index"] and (last is None or d["index"] <= last)
    ]
    demand = [
        r for d in days for r in d["traffic"]["metrics"].get("demand", []) if r["arm"] != "baseline"
    ]
    fraud = [r for d in days for r in d["traffic"]["metrics"].get("fraud", [])]
    pricing = [
        r
        for d in days
        for r in d["traffic"]["metrics"].get("pricing", [])
        if r["margin_vs_today"] is not None
    ]
    actual = sum(r["actual_sum"] for r in demand)
    frauds = sum(r["frauds"] for r in fraud)
    prices = sum(r["prices"] for r in pricing)
    return {
        "demand_wape": round(sum(r["error_sum"] for r in demand) / actual, 4) if actual else None,
        "fraud_recall": round(sum(r["caught"] for r in fraud) / frauds, 4) if frauds else None,
        "frauds": frauds,
        "pricing_margin_vs_today": round(
            sum(r["margin_vs_today"] * r["prices"] for r in pricing) / prices, 4
        )
        if prices
        else None,
    }


def _matching(timeline: dict[str, Any], kinds: tuple[str, ...], since: int) -> list[dict]:
    wanted = {tuple(k.split(":", 1)) if ":" in k else (k, None) for k in kinds}
    return [
        e
        for e in events(timeline)
        if e["day_index"] >= since
        and ((e["type"], e.get("model")) in wanted or (e["type"], None) in wanted)
    ]


def summary(timeline: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    """Detection delay, recovery, requests and 5xx, retrains against models left alone."""
    event_day = timeline["event_day"]
    detect = _matching(timeline, scenario.detected_by, event_day)
    if scenario.recovery is not None:
        recovered = scenario.recovery(timeline)
        recover = [] if recovered is None else [{"day_index": recovered}]
    else:
        recover = _matching(timeline, scenario.recovered_by, event_day)
    requests = sum(sum(d["traffic"]["requests"].values()) for d in timeline["days"])
    errors = sum(sum(d["traffic"]["server_errors"].values()) for d in timeline["days"])
    retrained = sorted({e["model"] for e in events(timeline, "retrained")})
    left_alone = sorted({"demand", "fraud", "recommend", "pricing"} - set(retrained))
    return {
        "detection_delay_days": detect[0]["day_index"] - event_day if detect else None,
        "recovery_days": recover[0]["day_index"] - event_day if recover else None,
        "requests": requests,
        "server_errors": errors,
        "retrain_runs": len(events(timeline, "retrained")),
        "models_retrained": retrained,
        "models_left_alone": left_alone,
        "retrain_seconds": round(sum(d["retrain_seconds"] for d in timeline["days"]), 1),
        "night_seconds": round(sum(d["night_seconds"] or 0 for d in timeline["days"]), 1),
        "quality_before_event": pooled(timeline, 1, event_day - 1),
        "quality_last_7_days": pooled(timeline, max(event_day, len(timeline["days"]) - 6)),
    }


def markdown(timeline: dict[str, Any], scenario: Scenario) -> str:
    facts = timeline["summary_numbers"]
    lines = [
        f"# Simulation: {timeline['scenario']}",
        "",
        f"{scenario.summary} Scale `{timeline['scale']}`, seed {timeline['seed']}, policy "
        f"`{timeline['policy']}`; base platform through {timeline['base_day']}, "
        f"{timeline['days_simulated']} days simulated, the event on day {timeline['event_day']}; "
        f"{timeline['wall_seconds']:.0f} s wall time.",
        "",
        "## Expectations",
        "",
        "| expectation | result | evidence |",
        "| --- | --- | --- |",
    ]
    for e in timeline["expectations"]:
        lines.append(f"| {e['name']} | {'pass' if e['passed'] else '**FAIL**'} | {e['evidence']} |")
    lines += [
        "",
        "## How fast",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| detection delay (days after the event; {', '.join(scenario.detected_by) or 'nothing to detect'}) "
        f"| {facts['detection_delay_days']} |",
        f"| recovery (days after the event; {scenario.recovery_means or ', '.join(scenario.recovered_by) or 'nothing to recover'}) "
        f"| {facts['recovery_days']} |",
        f"| requests served | {facts['requests']} |",
        f"| of them 5xx | {facts['server_errors']} |",
        f"| retrain runs | {facts['retrain_runs']} |",
        f"| models retrained | {', '.join(facts['models_retrained']) or 'none'} |",
        f"| models left alone | {', '.join(facts['models_left_alone']) or 'none'} |",
        f"| compute in retrain runs (s) | {facts['retrain_seconds']} |",
        f"| compute in nightly runs, all (s) | {facts['night_seconds']} |",
        "",
        "## Live quality (the oracle's, every version and arm pooled)",
        "",
        "| measure | before the event | last 7 days |",
        "| --- | ---: | ---: |",
        *(
            f"| {key} | {facts['quality_before_event'][key]} | {facts['quality_last_7_days'][key]} |"
            for key in facts["quality_before_event"]
        ),
        "",
        *_platform_lines(timeline),
        "## Events",
        "",
        "| day | event | model | version | reason |",
        "| ---: | --- | --- | --- | --- |",
    ]
    for e in events(timeline):
        reason = " ".join(str(e.get("reason", "")).split())[:160].replace("|", "/")
        lines.append(
            f"| {e['day_index']} | {e['type']} | {e.get('model') or e.get('feed') or ''} | "
            f"{e.get('version') or ''} | {reason} |"
        )
    lines += ["", "![timeline](timeline.png)", ""]
    return "\n".join(lines)


def _platform_lines(timeline: dict[str, Any]) -> list[str]:
    """The recommender's lists and clicks as the platform's own monitoring attributes them (the
    prediction log joined to the landed clickstream), beside the oracle's count."""
    seen = (
        (timeline["days"][-1].get("platform") or {}).get("recommend") if timeline["days"] else None
    )
    if not seen or not seen.get("lists"):
        return []
    since, through = recommend_window(seen)
    oracle = oracle_recommendations(timeline, since, through)
    hits = sum(round(m["lists"] * m["ctr"]) for m in oracle)
    return [
        f"Recommendations, as the platform measured them from {since} through {through} (its "
        f"newest monitoring report): {seen['lists']} lists logged, {seen['clicked']} clicked "
        f"(CTR {seen['ctr']}); the oracle served {sum(m['lists'] for m in oracle)} lists, "
        f"{hits} with a click from the customer they were shown to.",
        "",
    ]


def recommend_window(seen: dict[str, Any]) -> tuple[str, str]:
    """The days whose lists the recommender's monitoring report covers: its CTR by version
    and arm spans the reference and recent windows before its `as_of`, and each day's lists
    are logged at the traffic's time."""
    from datetime import datetime, timedelta

    from retail_assets.monitoring.feedback import RECENT_DAYS, REFERENCE_DAYS
    from retail_assets.simulation.traffic import TRAFFIC

    as_of = datetime.fromisoformat(str(seen["as_of"]))
    start = as_of - timedelta(days=RECENT_DAYS + REFERENCE_DAYS)
    first = start.date()
    if datetime.combine(first, TRAFFIC) < start:
        first += timedelta(days=1)
    last = as_of.date()
    if datetime.combine(last, TRAFFIC) > as_of:
        last -= timedelta(days=1)
    return first.isoformat(), last.isoformat()


def oracle_recommendations(timeline: dict[str, Any], since: str, through: str) -> list[dict]:
    """The oracle's recommendation metrics (lists, ctr per version and arm) of the days from
    `since` through `through`."""
    return [
        m
        for day in timeline["days"]
        if since <= day["day"] <= through
        for m in day["traffic"]["metrics"].get("recommend", [])
    ]


def write_outputs(timeline: dict[str, Any], scenario: Scenario, out: Path) -> None:
    from dataclasses import asdict

    timeline["complete"] = True
    timeline["expectations"] = [asdict(e) for e in scenario.expect(timeline)]
    timeline["summary_numbers"] = summary(timeline, scenario)
    (out / "timeline.json").write_text(json.dumps(timeline, indent=2, default=str))
    plot(timeline, out / "timeline.png")
    (out / "report.md").write_text(markdown(timeline, scenario))
