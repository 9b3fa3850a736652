"""Materialize assets in-process against the instance in ``RETAIL_HOME``, showing progress.

Used by ``retail materialize`` / ``retail up`` and by the end-to-end tests, so what the tests
prove is what users run.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.events import DagsterEventType
from dagster._core.utils import make_new_run_id

from retail_assets.settings import Settings

_WATCHED = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
}


@dataclass
class CheckOutcome:
    asset: str
    check: str
    passed: bool
    description: str


@dataclass
class RunSummary:
    run_id: str
    success: bool
    seconds: float
    planned: list[str]
    materialized: dict[str, int | None] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    log_path: Path | None = None

    @property
    def not_materialized(self) -> list[str]:
        return [key for key in self.planned if key not in self.materialized]

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [c for c in self.checks if not c.passed]


def instance_for(settings: Settings) -> dg.DagsterInstance:
    settings.ensure_dirs()
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return dg.DagsterInstance.get()


def _row_count(materialization: dg.AssetMaterialization) -> int | None:
    value = materialization.metadata.get("dagster/row_count")
    return int(value.value) if value is not None else None


def materialize_platform(
    settings: Settings,
    selection: str | None = None,
    on_event: Callable[[str], None] | None = None,
    log_level: str = "WARNING",
    run_config: dict | None = None,
) -> RunSummary:
    """Run the platform job (optionally a selection of it) and report what happened."""
    from retail_assets.transform.project import prepare_dbt_project

    prepare_dbt_project()  # before the definitions import: the dbt assets read the manifest
    from retail_assets.definitions import PLATFORM_JOB_NAME, build_defs

    instance = instance_for(settings)
    defs = build_defs(settings)
    job = defs.resolve_job_def(PLATFORM_JOB_NAME)
    asset_graph = defs.resolve_asset_graph()
    if selection:
        keys = sorted(dg.AssetSelection.from_string(selection).resolve(asset_graph))
        if not keys:
            raise ValueError(f"selection {selection!r} matches no asset")
    else:
        keys = sorted(asset_graph.get_all_asset_keys())
    summary = RunSummary(
        run_id=make_new_run_id(),
        success=False,
        seconds=0.0,
        planned=[k.to_user_string() for k in keys],
    )

    done = threading.Event()

    def watch() -> None:
        seen = 0
        while True:
            finished = done.is_set()
            records = instance.all_logs(summary.run_id, of_type=_WATCHED)
            for record in records[seen:]:
                _record(summary, record, on_event)
            seen = len(records)
            if finished:
                return
            time.sleep(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    started = time.perf_counter()
    watcher.start()
    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    summary.log_path = log_dir / f"run-{summary.run_id}.log"
    # Tools inside steps (dbt) write their own logs to stdout; keep them in a file so the
    # progress lines stay readable. The Dagster UI shows the same logs per step.
    try:
        with summary.log_path.open("w") as log, contextlib.redirect_stdout(log):
            result = job.execute_in_process(
                instance=instance,
                run_id=summary.run_id,
                asset_selection=keys,
                raise_on_error=False,
                # The progress lines replace Dagster's step-by-step console log.
                run_config={
                    **(run_config or {}),
                    "loggers": {"console": {"config": {"log_level": log_level}}},
                },
            )
    finally:
        done.set()
        watcher.join()
    summary.seconds = time.perf_counter() - started
    summary.success = result.success
    return summary


def _record(summary: RunSummary, record, on_event: Callable[[str], None] | None) -> None:
    event = record.dagster_event
    if event is None:
        return
    message = None
    if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
        materialization = event.event_specific_data.materialization
        key = materialization.asset_key.to_user_string()
        rows = _row_count(materialization)
        summary.materialized[key] = rows
        done = len(summary.materialized)
        rows_text = f"{rows:,} rows" if rows is not None else ""
        message = f"[{done:>3}/{len(summary.planned)}] materialized {key} {rows_text}"
    elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
        evaluation = event.event_specific_data
        outcome = CheckOutcome(
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            passed=evaluation.passed,
            description=evaluation.description or "",
        )
        summary.checks.append(outcome)
        if not outcome.passed:
            message = f"      check FAILED {outcome.asset}:{outcome.check}: {outcome.description}"
    elif event.event_type == DagsterEventType.STEP_FAILURE:
        error = event.event_specific_data.error
        text = f"step {event.step_key} failed: {_error_text(error)}"
        summary.failures.append(text)
        message = f"      {text}"
    elif event.event_type == DagsterEventType.STEP_SKIPPED:
        message = f"      skipped {event.step_key} (an upstream step or blocking check failed)"
    if message and on_event:
        on_event(message)


def _error_text(error) -> str:
    """The user's error, not Dagster's wrapper around it."""
    if error is None:
        return "unknown error"
    while (error.cls_name or "").startswith("Dagster") and (error.cause or error.context):
        error = error.cause or error.context
    return error.message.strip()
