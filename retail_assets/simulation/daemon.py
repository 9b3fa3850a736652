"""What the Dagster daemon does in one night, on a simulated clock, in a fresh process per night.

The daemon evaluates sensors, schedules and declarative automation against wall time. A
simulation that advances a day per step cannot wait for wall-clock crons, so this class
evaluates the same definitions (`build_defs`, the code location users run) at a simulated
time and executes what they request through `runner.materialize_platform` (the path
`retail materialize` takes):

1. every sensor except the automation sensor (`landed_feeds_sensor` first: it loads the raw
   tables of what landed), each request once per run key, as the daemon dedups them;
2. the schedules whose cron ticked since the previous night;
3. automation ticks (`dg.evaluate_automation_conditions` at the simulated time, cursor kept
   between nights) until a tick requests nothing; eager assets follow the new data, on-cron
   conditions (the prediction log load, the demand tiers' retrain crons) see simulated
   crons pass;
4. sensors again: monitoring ran in step 3 and may now ask for a retrain
   (`monitoring_retrain_sensor`), and then one more round of automation.

Each night runs in a spawned process, as the daemon launches every run in its own process,
so what a run leaves behind does not accumulate over a long simulation. (The memory growth
that first pointed here, 0.3-2 GB per night at `small`, was mostly demand monitoring's
bootstrap, fixed in `monitoring/monitors.py`; docs/simulation.md.)

Nothing here decides anything the platform would not: it only stands in for the daemon's
clock.
"""

from __future__ import annotations

import logging
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import dagster as dg
from dagster._utils.schedules import cron_string_iterator

from retail_assets.runner import RunSummary, instance_for, materialize_platform
from retail_assets.settings import Settings

MAX_TICKS = 6  # eager requests a whole downstream closure per tick; more means a loop
AUTOMATION_SENSOR = "default_automation_condition_sensor"


@dataclass
class Run:
    """One run the simulated daemon launched: why, what, and how it went."""

    trigger: str  # "sensor:<name>", "schedule:<name>", "automation"
    assets: list[str]
    summary: RunSummary
    tags: dict[str, str] = field(default_factory=dict)


def _selection(keys) -> str:
    return " or ".join(f'key:"{dg.AssetKey.from_coercible(k).to_user_string()}"' for k in keys)


class SimulatedDaemon:
    """The daemon's night at a simulated time. Each night (and each `execute`) runs in a fresh
    process, as the daemon launches every run in its own process. What carries over
    from night to night (the automation cursor, the run keys already requested, the last
    night's time) goes to the child and comes back."""

    def __init__(self, settings: Settings, now: datetime):
        self._setup(settings)
        self.run_keys: set[str] = set()
        self.last = now
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # The base platform is materialized: seed the cursor so the first night requests
            # only what new data causes.
            self.cursor = dg.evaluate_automation_conditions(
                defs=self.defs, instance=self.instance, evaluation_time=now
            ).cursor

    def _setup(self, settings: Settings) -> None:
        from retail_assets.definitions import build_defs
        from retail_assets.transform.project import prepare_dbt_project

        logging.getLogger("dagster.automation_condition_tester").setLevel(logging.WARNING)
        prepare_dbt_project()
        self.settings = settings
        self.defs = build_defs(settings)
        self.instance = instance_for(settings)
        self.graph = self.defs.resolve_asset_graph()

    def _state(self) -> tuple:
        return self.cursor, set(self.run_keys), self.last

    def _in_child(self, method: str, *args):
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            result, state = pool.submit(_call, self.settings, self._state(), method, args).result()
        self.cursor, self.run_keys, self.last = state
        return result

    def night(self, now: datetime) -> list[Run]:
        """Everything the daemon would have launched between the previous night and `now`."""
        return self._in_child("_night", now)

    def execute(self, trigger: str, keys, tags=None) -> Run | None:
        """One run of `keys`, launched by `trigger`, in its own process."""
        return self._in_child("_execute", trigger, keys, tags)

    def _execute(self, trigger: str, keys, tags=None) -> Run | None:
        keys = [dg.AssetKey.from_coercible(k) for k in keys]
        if not keys:
            return None
        summary = materialize_platform(self.settings, selection=_selection(keys))
        return Run(trigger, [k.to_user_string() for k in keys], summary, dict(tags or {}))

    def _sensors(self, now: datetime) -> list[Run]:
        runs = []
        sensors = sorted(
            (s for s in self.defs.sensors or [] if s.name != AUTOMATION_SENSOR),
            key=lambda s: s.name != "landed_feeds_sensor",
        )
        for sensor in sensors:
            with dg.build_sensor_context(
                instance=self.instance, definitions=self.defs, resources=self.defs.resources
            ) as context:
                data = sensor.evaluate_tick(context)
            for request in data.run_requests or []:
                if request.run_key and request.run_key in self.run_keys:
                    continue
                if request.run_key:
                    self.run_keys.add(request.run_key)
                keys = request.asset_selection or []
                run = self._execute(f"sensor:{sensor.name}", keys, request.tags)
                if run:
                    runs.append(run)
        return runs

    def _schedules(self, now: datetime) -> list[Run]:
        runs = []
        for schedule in self.defs.schedules or []:
            ticks = cron_string_iterator(self.last.timestamp(), schedule.cron_schedule, "UTC")
            tick = next(ticks)
            if tick.timestamp() > now.timestamp():
                continue
            # The schedule's own evaluation decides, as the daemon's tick would: it may skip
            # (a retrain waits while its model's canary is undecided).
            with dg.build_schedule_context(
                instance=self.instance,
                scheduled_execution_time=tick,
                resources=self.defs.resources,
            ) as context:
                data = schedule.evaluate_tick(context)
            if not data.run_requests:
                continue
            job = self.defs.resolve_job_def(schedule.job_name)
            keys = sorted(job.asset_layer.executable_asset_keys if job.asset_layer else [])
            keys = [k for k in keys if k in self.graph.get_all_asset_keys()]
            run = self._execute(f"schedule:{schedule.name}", keys)
            if run:
                runs.append(run)
        return runs

    def _automation(self, now: datetime) -> list[Run]:
        runs = []
        for _ in range(MAX_TICKS):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = dg.evaluate_automation_conditions(
                    defs=self.defs, instance=self.instance, cursor=self.cursor, evaluation_time=now
                )
            self.cursor = result.cursor
            keys = [k for k in self.graph.get_all_asset_keys() if result.get_num_requested(k)]
            if not keys:
                break
            run = self._execute("automation", keys)
            runs.append(run)
            if not run.summary.success:
                break
        return runs

    def _night(self, now: datetime) -> list[Run]:
        runs = self._sensors(now)
        runs += self._schedules(now)
        runs += self._automation(now)
        follow_up = self._sensors(now)
        runs += follow_up
        if follow_up:
            runs += self._automation(now)
        self.last = now
        return runs


def _call(settings: Settings, state: tuple, method: str, args: tuple):
    """In the child: the daemon with the parent's state, one method, the result and the state
    after it."""
    daemon = SimulatedDaemon.__new__(SimulatedDaemon)
    daemon._setup(settings)
    daemon.cursor, daemon.run_keys, daemon.last = state
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = getattr(daemon, method)(*args)
    return result, daemon._state()
