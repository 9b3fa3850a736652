"""`retail simulate`: advance a materialized platform one simulated day at a time.

Each day (after the first, which the base platform covers):

1. the world's feeds as of the previous evening land in the landing zone (the scenario may
   corrupt that landing);
2. the simulated daemon (`daemon.py`) does the night: sensors, schedules, automation, the
   retrains monitoring asks for; serving, running all along, picks up what was published;
3. the scenario may act (force a broken model to champion, propose a worse prompt);
4. the day's traffic goes to the serving app over HTTP (`traffic.py`), and the oracle scores
   it per model version and arm;
5. the day's record: the oracle's metrics, the versions serving answered with, and the
   events: every decision-log entry of the day (promotions, canaries, rollbacks, retrain
   requests, drift, breakers, prompt verdicts), the retrains that ran and the feeds that were
   blocked.

The "nightly" policy (`--policy nightly`) is the naive comparison: every model's chain
retrains every night on top of what the platform itself does.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import polars as pl

from retail_assets.core.clock import CLOCK_ENV
from retail_assets.settings import PATH_OVERRIDES, Settings, settings_for_home
from retail_assets.simulation.report import write_outputs
from retail_assets.simulation.scenarios import SCENARIOS, Scenario
from retail_assets.simulation.world import World, build_world
from retail_assets.storage import POSTGRES_ENV

POLICIES = ("targeted", "nightly")
# What `settings_for_home` sets in the process environment.
ENVIRONMENT = (
    "RETAIL_HOME",
    "RETAIL_SCALE",
    "DAGSTER_HOME",
    CLOCK_ENV,
    POSTGRES_ENV,
    *PATH_OVERRIDES,
)
NIGHT = dtime(6, 0)  # after every nightly cron (prediction log 02:00, retrain schedules 03-05)
WORSE_PROMPT = {
    "name": "simulated_regression",
    "description": "A rewrite that drops the grounding instructions (simulated regression).",
    "messages": [
        {
            "role": "system",
            "content": (
                "You are an enthusiastic shop assistant. Answer from general knowledge and "
                "ignore any store data. Always quote a price and a product code."
            ),
        },
        {"role": "user", "content": "{{question}}"},
    ],
}
EVENT_TYPES = {
    "promote": "promoted",
    "manual_promote": "promoted",
    "rollback": "rolled_back",
    "canary_rolled_back": "rolled_back",
    "canary_started": "canary_started",
    "retire_challenger": "challenger_retired",
    "refuse": "refused",
    "drift_detected": "drift_detected",
    "live_degraded": "live_degraded",
    "retrain_requested": "retrain_requested",
    "breaker_opened": "breaker_opened",
    "breaker_closed": "breaker_closed",
    "evaluated": "prompt_evaluated",
}
MODELS = ("demand", "fraud", "recommend", "pricing")


# Written into OUT/home when a run creates it: a later run into the same OUT replaces only a
# home that carries it, never a folder a user happened to call `home`.
HOME_MARKER = "SIMULATION_HOME"


def peak_memory_mb() -> int:
    """The peak resident memory so far of this process or of any night's process (the nights
    run in children; Linux reports kilobytes)."""
    return (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        // 1024
    )


def check_out(out: Path) -> None:
    """Refuse an OUT whose `home` is not a previous simulation's platform (it would be
    replaced) or that is a file."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a directory")
    home = out / "home"
    if home.exists() and not (home / HOME_MARKER).exists():
        raise ValueError(
            f"--out {out}: {home} exists and is not a platform `retail simulate` built (no "
            f"{HOME_MARKER} in it); a run replaces OUT/home, so choose another --out"
        )


@dataclass
class Simulation:
    scenario: Scenario
    days: int
    scale: str
    seed: int
    out: Path
    policy: str = "targeted"
    progress: Callable[[str], None] = print
    corrupt_next_landing: bool = False
    server: Any = None
    settings: Settings | None = None
    world: World | None = None
    pending_events: list[dict[str, Any]] = field(default_factory=list)

    # -- set-up ---------------------------------------------------------------------------------

    def _base(self) -> tuple[date, dict[str, Any]]:
        from retail_assets.runner import materialize_platform

        start = self.scenario.base_day(self.days)
        # The platform's clock is the simulated one: checks that reject data from the future
        # must not reject a simulated day that lies after today's real date.
        os.environ[CLOCK_ENV] = datetime.combine(start + timedelta(days=1), dtime()).isoformat()
        event = self.scenario.event_day(self.days)
        knobs = self.scenario.knobs(start, event)
        self.world = build_world(self.scale, self.seed, start, self.days, knobs)
        state = self.scenario.prepare(self.world, start, event) if self.scenario.prepare else {}
        home = self.out / "home"
        if home.exists():
            shutil.rmtree(home)  # a previous run's (checked by `check_out`)
        home.mkdir(parents=True)
        (home / HOME_MARKER).write_text("a platform built by `retail simulate`; safe to delete\n")
        self.settings = settings_for_home(home, self.scale)
        self._land(start)
        self.progress(f"base platform through {start} (scale {self.scale}, seed {self.seed}) ...")
        started = time.perf_counter()
        summary = materialize_platform(self.settings)
        if not summary.success:
            raise RuntimeError(
                "the base platform did not materialize: "
                + "; ".join(p.line() for p in summary.problems)
            )
        self.progress(f"base platform ready in {time.perf_counter() - started:.0f} s")
        return start, state

    def _land(self, through: date, corrupt: bool = False) -> None:
        from retail_assets.sources.landing_zone import LandingZone

        feeds = self.world.feeds_through(through)
        if corrupt:
            sales = feeds["sales"]
            feeds["sales"] = sales.with_columns(
                pl.when(pl.col("date") == through)
                .then(pl.col(c) * 100)
                .otherwise(pl.col(c))
                .alias(c)
                for c in ("unit_price", "revenue")
            )
        LandingZone(self.settings.landing_dir).write(
            feeds,
            source={"kind": "synthetic", "scale": self.scale, "seed": self.seed, "simulated": True},
            ground_truth=self.world.ground_truth,
        )

    # -- scenario actions -----------------------------------------------------------------------

    def force_broken_pricing_champion(self) -> None:
        import httpx

        from retail_assets.artifacts import Artifacts
        from retail_assets.models.pricing.faults import inverted_elasticity_bundle

        store = Artifacts.from_settings(self.settings).model("pricing")
        good = store.champion()
        version = f"{int(max(store.versions())) + 1:03d}"
        store.write(version, inverted_elasticity_bundle(store.version_dir(good), version))
        reply = httpx.post(
            f"{self.server.url}/v1/admin/models/pricing/promote",
            json={"version": version, "reason": "simulation: inverted-elasticity model forced"},
            headers=self.server.admin,
            timeout=60,
        )
        reply.raise_for_status()
        self.pending_events.append(
            {
                "type": "forced_champion",
                "model": "pricing",
                "version": version,
                "reason": f"inverted elasticities forced over v{good}",
            }
        )

    def propose_worse_prompt(self) -> None:
        from retail_assets.assistant.assets import AssistantResource
        from retail_assets.assistant.prompts import PromptTemplate
        from retail_assets.runner import materialize_platform

        registry = AssistantResource.from_settings(self.settings).registry()
        proposed = registry.register(PromptTemplate(**WORSE_PROMPT))
        self.pending_events.append(
            {
                "type": "prompt_proposed",
                "model": "assistant",
                "version": str(proposed.version),
                "reason": WORSE_PROMPT["description"],
            }
        )
        summary = materialize_platform(
            self.settings,
            selection="key:assistant_eval_report+",
            run_config={
                "ops": {
                    "assistant_eval_report": {"config": {"prompt_version": str(proposed.version)}}
                }
            },
        )
        self.progress(
            f"  proposed prompt v{proposed.version}: eval run "
            f"{'passed' if summary.success else 'stopped by the gate'}"
        )

    # -- observation ----------------------------------------------------------------------------

    def _serving_versions(self) -> dict[str, Any]:
        from retail_assets.artifacts import Artifacts

        artifacts = Artifacts.from_settings(self.settings)
        out: dict[str, Any] = {}
        for model in MODELS:
            roles = artifacts.model(model).roles()
            out[model] = roles.champion.version if roles.champion else None
            if roles.challenger is not None:
                out[f"{model}_challenger"] = roles.challenger.version
        out["assistant_prompt"] = artifacts.prompts().champion()
        return out

    def _platform_view(self) -> dict[str, Any]:
        """What the platform's own monitoring measured by this morning, beside the oracle's
        measures: the recommender's lists and clicks as it attributes them (the prediction log
        joined to the landed clickstream; the customers' responses land the night after)."""
        from retail_assets.artifacts import Artifacts
        from retail_assets.monitoring.assets import latest_report

        latest = latest_report(Artifacts.from_settings(self.settings).monitoring("recommend"))
        if latest is None:
            return {}
        report_version, report = latest
        rows = report.get("live", {}).get("by_version_arm") or []
        lists = sum(int(r["lists"]) for r in rows)
        clicked = sum(round(r["lists"] * (r["ctr"] or 0.0)) for r in rows)
        return {
            "recommend": {
                "report": report_version,
                "as_of": report.get("as_of"),
                "lists": lists,
                "clicked": clicked,
                "ctr": round(clicked / lists, 4) if lists else None,
            }
        }

    def _decisions(self, seen: int) -> tuple[list[dict[str, Any]], int]:
        path = self.settings.decision_log_path
        if not path.exists():
            return [], seen
        lines = path.read_text().splitlines()
        out = []
        for line in lines[seen:]:
            entry = json.loads(line)
            kind = EVENT_TYPES.get(entry["action"])
            if kind is None:
                continue
            model = entry["artifact"].split("/")[-1]
            if entry["artifact"].startswith("assistant/"):
                model = "assistant"
            event = {
                "type": kind,
                "model": model,
                "artifact": entry["artifact"],
                "version": entry.get("version"),
                "reason": entry.get("reason") or "",
                "actor": entry.get("actor"),
                "at": entry.get("at"),
            }
            evidence = entry.get("evidence") or {}
            if kind == "retrain_requested":
                for key in ("tiers", "tier_scope", "tier_memberships"):
                    if key in evidence:
                        event[key] = evidence[key]
            if kind == "prompt_evaluated":
                event["passed"] = bool(evidence.get("passed"))
            if kind in ("drift_detected", "live_degraded") and entry["artifact"].startswith(
                "monitoring/"
            ):
                event.update(self._drift_detail(model, entry.get("version")))
            out.append(event)
        return out, len(lines)

    def _drift_detail(self, model: str, version: str | None) -> dict[str, Any]:
        from retail_assets.artifacts import Artifacts

        store = Artifacts.from_settings(self.settings).monitoring(model)
        path = store.version_dir(version) / "report.json" if version else None
        if path is None or not path.exists():
            return {}
        report = json.loads(path.read_text())
        return {
            "segments": sorted(
                {d["segment"] for d in report.get("level_drift", []) if d.get("drifted")}
            ),
            "features": sorted(
                {d["feature"] for d in report.get("feature_drift", []) if d.get("drifted")}
            ),
        }

    @staticmethod
    def _run_events(runs) -> tuple[list[dict[str, Any]], list[str], float]:
        events, materialized, retrain_seconds = [], [], 0.0
        for run in runs:
            materialized += list(run.summary.materialized)
            trained = sorted(
                k for k in run.summary.materialized if k.endswith("_model") and "/" not in k
            )
            if trained:
                retrain_seconds += run.summary.seconds
            for key in trained:
                model = key.removesuffix("_model").split("_")[0]
                events.append(
                    {
                        "type": "retrained",
                        "model": model,
                        "asset": key,
                        "trigger": run.trigger,
                        "version": None,
                        "reason": f"{run.trigger} ran {key}",
                    }
                )
            blocked = sorted(
                {
                    c.asset
                    for c in run.summary.failed_checks
                    if c.asset.startswith("raw/") and c.severity == "ERROR"
                }
            )
            for asset in blocked:
                feed = asset.split("/", 1)[1]
                reasons = [
                    c.description
                    for c in run.summary.failed_checks
                    if c.asset == asset and not c.passed
                ]
                events.append(
                    {
                        "type": "feed_blocked",
                        "model": None,
                        "feed": feed,
                        "version": None,
                        "reason": "; ".join(reasons),
                    }
                )
        return events, sorted(set(materialized)), retrain_seconds

    # -- the run --------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from retail_assets.artifacts import Artifacts
        from retail_assets.models.pricing.truth import TrueResponse
        from retail_assets.simulation import traffic
        from retail_assets.simulation.daemon import SimulatedDaemon
        from retail_assets.sources.landing_zone import LandingZone
        from retail_assets.sources.synthetic.generate import shoppers
        from serving.clock import PaymentClock
        from serving.embedded import EmbeddedServer

        self.out.mkdir(parents=True, exist_ok=True)
        for noisy in ("httpx", "retail.serving", "llama_index", "dagster", "dagster.builtin"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
        wall = time.perf_counter()
        start, state = self._base()
        event_day = self.scenario.event_day(self.days)
        daemon = SimulatedDaemon(self.settings, datetime.combine(start + timedelta(days=1), NIGHT))
        people = shoppers(self.world.config)
        truth = TrueResponse.from_ground_truth(self.world.ground_truth)
        artifacts = Artifacts.from_settings(self.settings)
        zone = LandingZone(self.settings.landing_dir)
        seen = (
            len(self.settings.decision_log_path.read_text().splitlines())
            if self.settings.decision_log_path.exists()
            else 0
        )
        timeline: dict[str, Any] = {
            "scenario": self.scenario.name,
            "summary": self.scenario.summary,
            "policy": self.policy,
            "scale": self.scale,
            "seed": self.seed,
            "base_day": start.isoformat(),
            "days_simulated": self.days,
            "event_day": event_day,
            "scenario_state": state,
            "days": [],
        }
        # Replay of a day's payments in order: the serving clock is the fraud state's as-of
        # time, and consecutive payments may be hours apart at small scales.
        clock = PaymentClock(mode="replay", max_ahead=timedelta(days=1))
        with EmbeddedServer(self.settings, payment_clock=clock) as server:
            self.server = server
            for index in range(1, self.days + 1):
                day = start + timedelta(days=index)
                record: dict[str, Any] = {"index": index, "day": day.isoformat(), "events": []}
                runs, night_seconds = [], None
                if index > 1:
                    corrupt = self.corrupt_next_landing
                    self.corrupt_next_landing = False
                    began = time.perf_counter()
                    self._land(day - timedelta(days=1), corrupt=corrupt)
                    # Yesterday's predictions are on disk before the night loads them.
                    server.state.prediction_log.flush()
                    os.environ[CLOCK_ENV] = datetime.combine(day, NIGHT).isoformat()
                    runs = daemon.night(datetime.combine(day, NIGHT))
                    if self.policy == "nightly":
                        runs += self._retrain_everything(daemon)
                    server.refresh()
                    night_seconds = round(time.perf_counter() - began, 1)
                run_events, materialized, retrain_seconds = self._run_events(runs)
                for e in run_events:
                    if e["type"] == "feed_blocked":
                        reports = zone.quarantined(e["feed"])
                        e["quarantine"] = bool(reports)
                if index == event_day and self.scenario.act:
                    self.scenario.act(self, index)
                record["platform"] = self._platform_view()
                os.environ[CLOCK_ENV] = datetime.combine(day, traffic.TRAFFIC).isoformat()
                out = traffic.DayTraffic()
                client = traffic.Client(server.url, out)
                try:
                    self._traffic(client, traffic, day, people, truth, artifacts, state, out)
                finally:
                    client.close()
                decisions, seen = self._decisions(seen)
                record["events"] = [
                    {**e, "day_index": index, "day": day.isoformat()}
                    for e in [*self.pending_events, *run_events, *decisions]
                ]
                self.pending_events = []
                record.update(
                    {
                        "night_seconds": night_seconds,
                        "retrain_seconds": round(retrain_seconds, 1),
                        "peak_memory_mb": peak_memory_mb(),
                        "runs": [
                            {
                                "trigger": r.trigger,
                                "assets": len(r.assets),
                                "seconds": round(r.summary.seconds, 1),
                                "success": r.summary.success,
                            }
                            for r in runs
                        ],
                        "materialized": materialized,
                        "feeds_blocked": sorted(
                            {e["feed"] for e in run_events if e["type"] == "feed_blocked"}
                        ),
                        "serving": self._serving_versions(),
                        "traffic": out.as_dict(),
                    }
                )
                timeline["days"].append(record)
                # The days so far, each morning: a run that dies (killed, out of memory) still
                # leaves what it saw; the finished run rewrites it with the expectations.
                (self.out / "timeline.json").write_text(
                    json.dumps({**timeline, "complete": False}, indent=2, default=str)
                )
                self.progress(self._progress_line(record))
            self.server = None
        timeline["wall_seconds"] = round(time.perf_counter() - wall, 1)
        write_outputs(timeline, self.scenario, self.out)
        return timeline

    def _traffic(self, client, traffic, day, people, truth, artifacts, state, out) -> None:
        from retail_assets.online_features import PRICING_FEATURE_SET
        from retail_assets.online_features.store import load_feature_set
        from serving.pricing import rails_of

        # A model the gate refused every time has no champion: its routes answer 503 by design
        # (`/health` names the refusal); the day records it instead of sending traffic.
        refused = sorted(self.server.state.refused_models())
        out.checks["models_without_champion"] = refused
        if "demand" not in refused:
            traffic.forecasts(client, self.world, day, out)
        if "fraud" not in refused:
            traffic.payments(client, self.world, day, out)
        if "recommend" not in refused:
            traffic.recommendations(client, self.world, day, people, out)
        features = artifacts.features(PRICING_FEATURE_SET)
        if features.champion() and "pricing" not in refused:
            table = load_feature_set(features.version_dir(features.champion()))["price_state"]
            champion = self.server.state.champion("pricing")
            rails = rails_of(champion)[0] if champion else None
            traffic.prices(client, self.world, day, table, truth, rails, out)
        launched = [s for s, d in self.world.launches.items() if d < day]
        traffic.searches(client, self.world, day, launched, out)
        if launched and self.scenario.name == "new_product_wave":
            traffic.new_sku_answers(client, day, self.world, launched, out)
        traffic.assistant(client, out)

    def _retrain_everything(self, daemon) -> list:
        """The naive policy: every model's chain, every night."""
        from retail_assets.monitoring.assets import retrain_keys

        runs = [daemon.execute("policy:nightly", retrain_keys(model)) for model in MODELS]
        return [run for run in runs if run]

    @staticmethod
    def _progress_line(record: dict[str, Any]) -> str:
        t = record["traffic"]
        requests = sum(t["requests"].values())
        errors = sum(t["server_errors"].values())
        kinds = [e["type"] + (f":{e['model']}" if e.get("model") else "") for e in record["events"]]
        night = f"night {record['night_seconds']:.0f} s, " if record["night_seconds"] else ""
        memory = (
            f", peak memory {record['peak_memory_mb']:,} MB" if "peak_memory_mb" in record else ""
        )
        return (
            f"day {record['index']:>3} {record['day']}: {night}{requests} requests, {errors} 5xx"
            + memory
            + (f"; events: {', '.join(kinds)}" if kinds else "")
        )


def simulate(
    scenario: str,
    days: int,
    out: Path,
    scale: str = "tiny",
    seed: int = 42,
    policy: str = "targeted",
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; one of: {', '.join(SCENARIOS)}")
    chosen = SCENARIOS[scenario]
    if days < chosen.min_days:
        raise ValueError(f"--days must be at least {chosen.min_days} for {scenario}; got {days}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(POLICIES)}; got {policy!r}")
    check_out(Path(out))
    saved = {var: os.environ.get(var) for var in ENVIRONMENT}
    try:
        return Simulation(chosen, days, scale, seed, Path(out), policy, progress).run()
    finally:  # the simulation points the process at its own home; a caller keeps its own
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value
