"""Materialize assets in-process against the instance in ``RETAIL_HOME``, showing progress.

Used by ``retail materialize`` / ``retail up`` and by the end-to-end tests, so what the tests
prove is what users run.

Without a selection a run materializes the enabled domains (`retail_assets/domains.py`): their
own assets, everything upstream of them, and every raw feed and dbt model (shared; feeds no
enabled domain needs load as empty tables). dbt tests that check references *into* a feed that
did not land (e.g. payments.customer_id -> customers for a retailer without a customers feed)
have nothing to check and are left out of `dbt build`; the summary lists them.

Each failure becomes one `Problem` line (what failed and what to do); tracebacks, Dagster's own
log and the tools' output (dbt) go to the run log `$RETAIL_HOME/logs/run-<id>.log`, never to
the terminal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster import _record as dg_record
from dagster._core.events import DagsterEventType
from dagster._core.utils import make_new_run_id
from dagster_dbt import DbtCliResource

from retail_assets import domains as domain_catalog
from retail_assets.domains import Resolution
from retail_assets.raw.assets import OPTIONAL_FEED_METADATA
from retail_assets.settings import Settings, get_settings

_WATCHED = {
    DagsterEventType.ASSET_MATERIALIZATION,
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.STEP_FAILURE,
}


@dataclass
class CheckOutcome:
    asset: str
    check: str
    passed: bool
    description: str
    severity: str = "ERROR"
    """ERROR: a failure stops or fails something; WARN: a signal to read (drift, live
    performance), which monitoring acts on itself."""


# Shared by every domain: raw feeds and the dbt layers (dbt groups models by folder; anything
# outside the three layers is "transform").
SHARED_GROUPS = ("raw", "staging", "intermediate", "marts", "transform")


@dataclass
class Problem:
    """One failure, for one line: the asset (or asset:check), what failed, what to do, and
    for a failed step the run log that holds its full trace."""

    subject: str
    what: str
    todo: str
    trace: Path | None = None

    def line(self, width: int = 240) -> str:
        what = " ".join(self.what.split())
        if len(what) > width:
            what = what[: width - 3] + "..."
        where = f" (full trace: {self.trace})" if self.trace else ""
        return f"{self.subject}: {what} - {self.todo}{where}"


@dataclass
class RunSummary:
    run_id: str
    success: bool
    seconds: float
    planned: list[str]
    materialized: dict[str, int | None] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    log_path: Path | None = None
    domains: Resolution | None = None
    optional_feeds: dict[str, str] = field(default_factory=dict)
    """Raw feeds loaded empty because no enabled domain needs them, with the reason."""
    excluded_tests: list[str] = field(default_factory=list)
    """dbt tests left out because they reference a feed that did not land."""

    @property
    def not_materialized(self) -> list[str]:
        return [key for key in self.planned if key not in self.materialized]

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        """Every check that did not pass, warnings included."""
        return [c for c in self.checks if not c.passed]

    @property
    def warnings(self) -> list[CheckOutcome]:
        return [c for c in self.failed_checks if c.severity == "WARN"]


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
    from retail_assets.definitions import PLATFORM_JOB_NAME

    instance = instance_for(settings)
    resolution = domain_catalog.resolve_for(settings)
    domain_catalog.write_record(settings, resolution)
    excluded_tests = tests_on_feeds_not_landed(settings, resolution)
    defs = _platform_defs(settings, excluded_tests)
    job = defs.resolve_job_def(PLATFORM_JOB_NAME)
    asset_graph = defs.resolve_asset_graph()
    if selection:
        with warnings.catch_warnings():  # Dagster flags parts of its selection syntax as beta
            warnings.simplefilter("ignore")
            try:
                keys = sorted(dg.AssetSelection.from_string(selection).resolve(asset_graph))
            except dg.DagsterError as exc:  # the selection string does not parse
                raise ValueError(
                    f"selection {selection!r} is not Dagster selection syntax ({exc}); e.g. "
                    "'key:pricing_*', 'group:models' or 'key:a or key:b'"
                ) from None
        if not keys:
            raise ValueError(f"selection {selection!r} matches no asset")
    else:
        keys = sorted(domain_selection(resolution.enabled).resolve(asset_graph))
    summary = RunSummary(
        run_id=make_new_run_id(),
        success=False,
        seconds=0.0,
        planned=[k.to_user_string() for k in keys],
        domains=resolution,
        excluded_tests=excluded_tests,
    )

    done = threading.Event()

    def run_id() -> str | None:
        if settings.parallel_steps <= 1:
            return summary.run_id
        tagged = instance.get_run_records(
            filters=dg.RunsFilter(tags={SUMMARY_TAG: summary.run_id}), limit=1
        )
        return tagged[0].dagster_run.run_id if tagged else None

    def watch() -> None:
        seen = 0
        while True:
            finished = done.is_set()
            current = run_id()
            records = instance.all_logs(current, of_type=_WATCHED) if current else []
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
    # Tools inside steps (dbt) write their own logs to stdout, and Dagster's console logger
    # writes step failures with their tracebacks to stderr: both go to the run log, so the
    # terminal shows the progress lines and one line per failure naming this file. The Dagster
    # UI shows the same logs per step.
    log = None
    try:
        with (
            summary.log_path.open("w") as log,
            contextlib.redirect_stdout(log),
            contextlib.redirect_stderr(log),
        ):
            # The progress lines replace Dagster's step-by-step console log.
            config = {
                **(run_config or {}),
                "loggers": {"console": {"config": {"log_level": log_level}}},
            }
            if settings.parallel_steps > 1:
                with _process_output_to(log):
                    result = _execute_parallel(instance, summary, keys, config, excluded_tests)
            else:
                result = job.execute_in_process(
                    instance=instance,
                    run_id=summary.run_id,
                    asset_selection=keys,
                    raise_on_error=False,
                    run_config=config,
                )
    finally:
        done.set()
        watcher.join()
        if log is not None:
            _drop_handlers_on(log)
    summary.seconds = time.perf_counter() - started
    summary.success = result.success
    # A parallel run's id is Dagster's own (`execute_job` chooses it): the summary reports it,
    # so the run is found in the UI by the id printed; the run log keeps the name it was
    # opened under, which the progress lines already named.
    summary.run_id = result.run_id
    if not result.success and not summary.problems:
        summary.problems.append(
            Problem(
                f"run {summary.run_id[:8]}", "the run failed", "see the run log", summary.log_path
            )
        )
    return summary


def _platform_defs(settings: Settings, excluded_tests: list[str]):
    """The platform's definitions for `settings`, with dbt told which tests to leave out."""
    from retail_assets.definitions import build_defs

    defs = build_defs(settings)
    if excluded_tests:
        from retail_assets.transform.project import dbt_executable, dbt_project

        dbt = _DbtExcludingTests(
            project_dir=dbt_project, dbt_executable=dbt_executable(), exclude_tests=excluded_tests
        )
        defs = dg_record.replace(defs, resources={**(defs.resources or {}), "dbt": dbt})
    return defs


# The run tag that names the summary a parallel run reports to (its run id is Dagster's own).
SUMMARY_TAG = "retail/summary"


def platform_job_from_environment(excluded_tests: list[str] | None = None):
    """The platform job rebuilt from the environment: what each step process of a parallel
    run loads (`dg.reconstructable` needs a module-level function)."""
    from retail_assets.definitions import PLATFORM_JOB_NAME
    from retail_assets.transform.project import prepare_dbt_project

    prepare_dbt_project()
    settings = get_settings()
    return _platform_defs(settings, list(excluded_tests or [])).resolve_job_def(PLATFORM_JOB_NAME)


def _execute_parallel(instance, summary: RunSummary, keys, config: dict, excluded_tests):
    """A run whose steps execute RETAIL_PARALLEL_STEPS at once, each in its own process (the
    multiprocess executor needs a job it can rebuild, and a persistent instance)."""
    job = dg.build_reconstructable_job(
        __name__,
        platform_job_from_environment.__name__,
        reconstructable_kwargs={"excluded_tests": list(excluded_tests)},
    )
    try:
        return dg.execute_job(
            job,
            instance=instance,
            asset_selection=keys,
            raise_on_error=False,
            run_config=config,
            tags={SUMMARY_TAG: summary.run_id},
        )
    finally:
        _stop_forkserver()


def _stop_forkserver() -> None:
    """Step processes fork from the forkserver, which keeps the descriptors and environment
    it started with (the first parallel run's log, `RETAIL_HOME` and `RETAIL_NOW`): stop it
    after each run, so the next one starts a server of its own (found in review: a second
    parallel run in one process wrote its step output to the first run's log)."""
    from multiprocessing import forkserver

    server = getattr(forkserver, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is not None:
        stop()


@contextlib.contextmanager
def _process_output_to(log):
    """The step processes of a parallel run write to the file descriptors they inherit, not to
    this process's redirected `sys.stdout`: point descriptors 1 and 2 at the run log while they
    run (found by trying `RETAIL_PARALLEL_STEPS=2 retail materialize`: 105 lines of Dagster's
    step log reached the terminal), and restore them after."""
    try:
        targets = [sys.__stdout__.fileno(), sys.__stderr__.fileno()]
        for stream in (sys.__stdout__, sys.__stderr__, log):
            stream.flush()
        saved = [os.dup(fd) for fd in targets]
    except (AttributeError, OSError, ValueError):  # no real descriptors (an embedding host)
        yield
        return
    try:
        for fd in targets:
            os.dup2(log.fileno(), fd)
        yield
    finally:
        log.flush()
        for fd, copy in zip(targets, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def _drop_handlers_on(stream) -> None:
    """Loggers first used during the run (Dagster creates its own lazily) bound their stream
    handlers to the redirected, now closed, run log: unbind them, or the next log line in this
    process (an automation evaluation, the next run) fails with 'I/O operation on closed file'."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in list(getattr(logger, "handlers", [])):
            if getattr(handler, "stream", None) is stream:
                handler.stream = sys.stderr  # setStream would flush the closed file


class _DbtExcludingTests(DbtCliResource):
    """The deployment's dbt, with `--exclude` for tests that cannot apply to this landing."""

    exclude_tests: list[str]

    def cli(self, args, **kwargs):  # type: ignore[override]
        # One space-separated value: dagster-dbt folds it into the selection it builds.
        return super().cli([*args, "--exclude", " ".join(self.exclude_tests)], **kwargs)


def tests_on_feeds_not_landed(settings: Settings, resolution: Resolution) -> list[str]:
    """dbt tests that reference a model built only from feeds that did not land (a
    relationships test from payments to customers when no customers feed landed): the
    referenced model is empty by construction, so the test could only fail."""
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.transform.project import dbt_project

    manifest = LandingZone(settings.landing_dir).manifest()
    if manifest is None:
        return []  # the synthetic generator lands every feed
    rows = domain_catalog.landed_rows(manifest)
    absent = {
        feed for feed in _feeds() if rows.get(feed, 0) <= 0 and not resolution.needed_by(feed)
    }
    if not absent:
        return []
    dbt_manifest = json.loads(Path(dbt_project.manifest_path).read_text())
    nodes, sources = dbt_manifest["nodes"], dbt_manifest["sources"]
    feeds_above: dict[str, frozenset[str]] = {}

    def feeds_of(unique_id: str) -> frozenset[str]:
        if unique_id in sources:
            return frozenset({sources[unique_id]["name"]})
        if unique_id not in feeds_above:
            parents = (nodes.get(unique_id) or {}).get("depends_on", {}).get("nodes", [])
            feeds_above[unique_id] = frozenset().union(*(feeds_of(p) for p in parents))
        return feeds_above[unique_id]

    # A key column identifies the feed its rows come from (customer_id -> customers).
    keyed_by = {
        contract.key[0]: name for name, contract in _feeds().items() if len(contract.key) == 1
    }

    def empty_by_construction(unique_id: str) -> bool:
        feeds = feeds_of(unique_id)
        return bool(feeds) and feeds <= absent

    def cannot_apply(node: dict) -> bool:
        # Only references between models can fail because a feed did not land: a singular test
        # (the point-in-time check) or a test on one model judges what did land, and runs.
        metadata = node.get("test_metadata") or {}
        if metadata.get("name") != "relationships":
            return False
        attached = node.get("attached_node")
        if attached and empty_by_construction(attached):
            return False  # nothing to check on an empty model: the test passes, keep it
        referenced = [
            parent
            for parent in node.get("depends_on", {}).get("nodes", [])
            if parent != attached and parent.startswith("model.")
        ]
        # Every feed the referenced model is built from did not land.
        if any(empty_by_construction(parent) for parent in referenced):
            return True
        # Into the key of a feed that did not land (payments.customer_id ->
        # dim_customers.customer_id without a customers feed).
        feed = keyed_by.get((metadata.get("kwargs") or {}).get("field"))
        return feed in absent and any(feed in feeds_of(parent) for parent in referenced)

    return sorted(
        node["name"]
        for node in nodes.values()
        if node.get("resource_type") == "test" and cannot_apply(node)
    )


def _feeds() -> dict:
    from retail_assets.sources.contracts import FEEDS

    return FEEDS


def domain_selection(domains) -> dg.AssetSelection:
    """The enabled domains' own assets and everything upstream of them, plus every raw feed and
    dbt model (shared by all domains)."""
    own = dg.AssetSelection.assets(
        *(dg.AssetKey.from_user_string(key) for key in sorted(domain_catalog.asset_keys(domains)))
    ) | dg.AssetSelection.groups(*sorted(domain_catalog.asset_groups(domains)))
    return own.upstream() | dg.AssetSelection.groups(*SHARED_GROUPS)


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
        optional = materialization.metadata.get(OPTIONAL_FEED_METADATA)
        if optional is not None:
            summary.optional_feeds[key] = str(optional.value)
            rows_text = f"(empty: {optional.value})"
        message = f"[{done:>3}/{len(summary.planned)}] materialized {key} {rows_text}"
    elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
        evaluation = event.event_specific_data
        outcome = CheckOutcome(
            asset=evaluation.asset_key.to_user_string(),
            check=evaluation.check_name,
            passed=evaluation.passed,
            description=evaluation.description or "",
            severity=getattr(evaluation.severity, "value", str(evaluation.severity)),
        )
        summary.checks.append(outcome)
        if not outcome.passed and outcome.severity == "WARN":
            message = f"      WARNING {outcome.asset}:{outcome.check}: {outcome.description}"
        elif not outcome.passed:
            problem = Problem(
                f"{outcome.asset}:{outcome.check}",
                f"check failed: {outcome.description}",
                _check_todo(outcome.asset, summary.log_path),
            )
            summary.problems.append(problem)
            message = f"      FAILED {problem.line()}"
    elif event.event_type == DagsterEventType.STEP_FAILURE:
        error = _user_error(event.event_specific_data.error)
        text = f"step {event.step_key} failed: {_message(error)}"
        summary.failures.append(text)
        problem = _step_problem(event.step_key, error, summary.log_path)
        summary.problems.append(problem)
        message = f"      FAILED {problem.line()}"
    # Skipped steps are not listed one by one: the summary counts what did not materialize.
    if message and on_event:
        on_event(message)


def _subject(step_key: str) -> str:
    """`raw__sales` -> `raw/sales` (single-asset steps are named after their key)."""
    return step_key.replace("__", "/")


def _check_todo(asset: str, log_path: Path | None) -> str:
    if asset.startswith("raw/"):
        feed = asset.removeprefix("raw/")
        return f"fix the file and land it again with `{domain_catalog.land_command(feed)}`"
    return f"see {log_path}"


_LAND_IT = re.compile(r"[:;,]\s*(land it with `retail land .*)$")


def _step_problem(step_key: str, error, log_path: Path | None) -> Problem:
    message = _message(error)
    first = message.splitlines()[0] if message else "unknown error"
    todo = _LAND_IT.search(first)
    if todo:
        # The error names the command itself (a feed an enabled domain needs is missing).
        return Problem(_subject(step_key), first[: todo.start()], todo.group(1), log_path)
    return Problem(_subject(step_key), first, "see the run log", log_path)


def _user_error(error):
    """The user's error, not Dagster's wrapper around it."""
    while (
        error is not None
        and (error.cls_name or "").startswith("Dagster")
        and (error.cause or error.context)
    ):
        error = error.cause or error.context
    return error


def _message(error) -> str:
    if error is None:
        return "unknown error"
    # SerializableErrorInfo.message is "ClassName: text" (or "module.ClassName: text"); the
    # class adds nothing for a user.
    text = error.message.strip()
    if error.cls_name:
        head, sep, rest = text.partition(": ")
        if sep and head.rsplit(".", 1)[-1] == error.cls_name:
            return rest
    return text


def _error_text(error) -> str:
    return _message(_user_error(error))
