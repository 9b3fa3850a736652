"""The `retail` command line.

retail up                      generate data, materialize everything, summarise, open the UI
retail land FEED FILE          land a retailer's own CSV/Parquet file (mapped onto the contract)
retail generate                land synthetic feeds (with optional drift knobs and faults)
retail materialize             materialize assets in-process with a progress display
retail ui                      Dagster webserver + daemon on workspace.yaml

Neither `retail up` nor `retail generate` ever overwrites a feed landed from a retailer's own
file (manifest source kind other than "synthetic"): `up` then skips generation and says so,
`generate` refuses unless --force.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from retail_assets.settings import PROJECT_ROOT, SCALES, Settings, get_settings
from retail_assets.simulation.scenarios import SCENARIOS

console = Console(highlight=False)


def _settings_for(scale: str | None) -> Settings:
    if scale:
        os.environ["RETAIL_SCALE"] = scale
    try:
        settings = get_settings()
        settings.ensure_dirs()
    except ValueError as exc:  # a bad RETAIL_* variable: its message names it, no traceback
        raise click.ClickException(str(exc)) from exc
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return settings


def _parse_faults(values: tuple[str, ...]) -> dict[str, list[str]]:
    from retail_assets.sources.synthetic import FAULT_KINDS

    faults: dict[str, list[str]] = {}
    for value in values:
        feed, sep, kind = value.partition(":")
        if not sep or kind not in FAULT_KINDS:
            raise click.BadParameter(
                f"{value!r}: expected FEED:KIND with KIND one of {', '.join(FAULT_KINDS)}",
                param_hint="--fault",
            )
        faults.setdefault(feed, []).append(kind)
    return faults


def _land(
    settings: Settings,
    *,
    faults: dict[str, list[str]] | None = None,
    knobs=None,
    feeds: tuple[str, ...] = (),
) -> None:
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    with console.status(
        f"generating synthetic feeds (scale={settings.scale}, seed={settings.seed})"
    ):
        manifest = land_synthetic_feeds(
            LandingZone(settings.landing_dir),
            scale=settings.scale,
            seed=settings.seed,
            knobs=knobs,
            faults=faults,
            feeds=feeds or None,
        )
    total = sum(entry["control_total"] for entry in manifest["feeds"].values())
    console.print(
        f"landed {len(manifest['feeds'])} feeds, {total:,} rows, in {settings.landing_dir}"
    )


def _landed_scale(settings: Settings) -> str | None:
    """The scale of the synthetic feeds in the landing zone (None: none landed, or mixed)."""
    from retail_assets.sources.landing_zone import SYNTHETIC_KIND, LandingZone

    sources = LandingZone(settings.landing_dir).feed_sources().values()
    scales = {s.get("scale") for s in sources if s.get("kind") == SYNTHETIC_KIND}
    return scales.pop() if len(scales) == 1 else None


def _user_feeds(settings: Settings) -> list[str]:
    """Feeds landed from the retailer's own files (never overwritten by the generator)."""
    from retail_assets.sources.landing_zone import LandingZone

    return LandingZone(settings.landing_dir).user_feeds()


def _land_synthetic_unless_user_data(settings: Settings, reason: str | None = None) -> None:
    """`retail up` / `retail materialize --scale`: (re)generate synthetic feeds unless the
    landing zone holds the user's own, which are never overwritten."""
    users = _user_feeds(settings)
    if users:
        console.print(
            f"not generating synthetic feeds: the landing zone holds your own "
            f"({', '.join(users)}, landed from files); running on what landed",
            markup=False,
            soft_wrap=True,
        )
        return
    if _landed_scale(settings) != settings.scale:
        if reason:
            console.print(reason, markup=False, soft_wrap=True)
        _land(settings)


def _print_domains(resolution) -> None:
    console.print(f"domains ({resolution.how}):", markup=False, soft_wrap=True)
    for line in resolution.describe():
        console.print(f"  {line}", markup=False, soft_wrap=True)


def _print_summary(summary, settings: Settings) -> None:
    resolution = summary.domains
    if resolution is not None:
        on = ", ".join(resolution.enabled) or "none"
        explicit = resolution.how == "RETAIL_DOMAINS"
        off = "; ".join(
            f"{name} off"
            + (
                f" (needs {', '.join(resolution.missing[name])})"
                if resolution.missing.get(name) and not explicit
                else ""
            )
            for name in resolution.disabled
        )
        console.print(
            f"domains on: {on}" + (f"; {off}" if off else ""), markup=False, soft_wrap=True
        )
    table = Table(title=f"run {summary.run_id[:8]} in {summary.seconds:.1f}s", show_lines=False)
    table.add_column("asset")
    table.add_column("rows", justify="right")
    for key, rows in summary.materialized.items():
        if key in summary.optional_feeds:
            table.add_row(key, "empty (optional, not landed)")
        else:
            table.add_row(key, f"{rows:,}" if rows is not None else "")
    console.print(table)
    passed = sum(c.passed for c in summary.checks)
    warned = len(summary.warnings)
    failed = len(summary.failed_checks) - warned
    console.print(
        f"checks: {passed} passed, {failed} failed"
        + (f", {warned} warning(s) (see `retail monitor`)" if warned else "")
    )
    if summary.excluded_tests:
        console.print(
            f"{len(summary.excluded_tests)} dbt test(s) left out (they check references into "
            f"feeds that did not land): {', '.join(summary.excluded_tests[:4])}"
            + (" ..." if len(summary.excluded_tests) > 4 else ""),
            markup=False,
            soft_wrap=True,
        )
    if summary.not_materialized:
        console.print(
            f"{len(summary.not_materialized)} asset(s) not materialized (a step they need "
            "failed): "
            + ", ".join(summary.not_materialized[:10])
            + (" ..." if len(summary.not_materialized) > 10 else ""),
            markup=False,
            soft_wrap=True,
            style="yellow",
        )
    for problem in summary.problems:
        console.print(f"  FAILED {problem.line()}", markup=False, soft_wrap=True, style="red")
    _print_artifacts(settings, resolution.enabled if resolution is not None else None)
    status = "[green]succeeded[/green]" if summary.success else "[red]failed[/red]"
    console.print(f"platform run {status}; warehouse: {settings.warehouse_path}")
    if summary.log_path:
        console.print(
            f"run log (tracebacks, dbt output): {summary.log_path}", markup=False, soft_wrap=True
        )


def _print_artifacts(settings: Settings, domains=None) -> None:
    """What serves now and why: champion, last gated decision, headline metric (of the enabled
    domains only, when given)."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.domains import owns_artifact
    from retail_assets.summary import summarize

    rows = summarize(Artifacts.from_settings(settings))
    if domains is not None:
        rows = [row for row in rows if owns_artifact(domains, row.artifact)]
    if not rows:
        return
    table = Table(title="models, indices and prompts")
    for column in ("artifact", "serving", "last decision", "verdict", "headline metric"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.artifact,
            f"v{row.champion}" if row.champion else "-",
            row.decision,
            row.verdict,
            row.headline,
        )
    console.print(table)


def _own_stream(stream):
    """A stream on a copy of `stream`'s file descriptor (itself when it has none: a test's
    captured output), unaffected when the original descriptor is redirected."""
    try:
        return os.fdopen(os.dup(stream.fileno()), "w", buffering=1, closefd=True)
    except (AttributeError, OSError, ValueError):
        return stream


def _materialize(settings: Settings, selection: str | None):
    from retail_assets.domains import resolve_for
    from retail_assets.runner import materialize_platform

    if selection is None and not resolve_for(settings).enabled:
        resolution = resolve_for(settings)
        _print_domains(resolution)
        console.print(
            "[red]no domain is enabled[/red]: land the feeds a domain needs "
            "(`retail land FEED FILE`) or name the domains with RETAIL_DOMAINS"
        )
        sys.exit(1)
    # Runs send tool output (dbt) and Dagster's own log to a log file while they execute,
    # parallel runs at the file-descriptor level (their step processes inherit it); progress
    # lines go to the terminal we have now, through a descriptor of its own.
    progress = Console(highlight=False, file=_own_stream(sys.stdout))

    def on_event(message: str) -> None:
        progress.print(message, markup=False, soft_wrap=True)

    try:
        summary = materialize_platform(settings, selection=selection, on_event=on_event)
    finally:
        if progress.file is not sys.stdout:
            progress.file.close()
    _print_summary(summary, settings)
    return summary


@click.group()
def main() -> None:
    """Retail MLOps platform: data, feature marts and models as Dagster assets."""


scale_option = click.option(
    "--scale",
    type=click.Choice(SCALES),
    default=None,
    help="Data scale (default: RETAIL_SCALE or 'default').",
)


@main.command()
@click.argument("feed")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--map",
    "mapping",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML mapping: rename, constants, values, date_format, measure (see README).",
)
@click.option(
    "--drop-synthetic",
    is_flag=True,
    help="Also take out the feeds `retail generate` landed, so only your own data is used.",
)
def land(feed, file, mapping, drop_synthetic) -> None:
    """Land FILE (CSV or Parquet) as feed FEED, mapped onto the feed's contract.

    The whole file is checked first; any problem is printed (file, line or row, column) and
    nothing is written."""
    from retail_assets.domains import resolve_for, write_record
    from retail_assets.sources.land import LandError, land_file
    from retail_assets.sources.landing_zone import LandingZone

    settings = _settings_for(None)
    zone = LandingZone(settings.landing_dir)
    try:
        result = land_file(zone, feed, file, mapping)
    except LandError as exc:
        click.echo(f"nothing landed: {len(exc.problems)} problem(s) in {exc.path.name}", err=True)
        for problem in exc.problems:
            click.echo(f"  {problem}", err=True)
        sys.exit(1)
    via = f" with mapping {result.mapping.name}" if result.mapping else ""
    console.print(
        f"landed {result.feed}: {result.rows:,} rows from {result.source.name}{via} -> "
        f"{result.landed_path}",
        markup=False,
        soft_wrap=True,
    )
    if result.rows == 0:
        console.print(
            f"  the file has no rows: {result.feed} counts as not landed for the domains",
            markup=False,
            soft_wrap=True,
        )
    if result.null_columns:
        console.print(
            f"  null (not in the file): {', '.join(result.null_columns)}",
            markup=False,
            soft_wrap=True,
        )
    if result.ignored_columns:
        console.print(
            f"  ignored source columns: {', '.join(result.ignored_columns)}",
            markup=False,
            soft_wrap=True,
        )
    if result.other_synthetic_feeds:
        if drop_synthetic:
            zone.remove(result.other_synthetic_feeds)
            console.print(
                f"  removed synthetic feeds: {', '.join(result.other_synthetic_feeds)}",
                markup=False,
                soft_wrap=True,
            )
        else:
            console.print(
                "  the landing zone also holds synthetic feeds from `retail generate` "
                f"({', '.join(result.other_synthetic_feeds)}); they are used with yours "
                "(--drop-synthetic removes them)",
                markup=False,
                soft_wrap=True,
            )
    resolution = resolve_for(settings)
    write_record(settings, resolution)
    _print_domains(resolution)


@main.command()
@scale_option
@click.option("--seed", type=int, default=None, help="Generator seed (default: RETAIL_SEED or 42).")
@click.option(
    "--fault", "faults", multiple=True, help="Inject a fault, FEED:KIND, e.g. sales:nulls."
)
@click.option("--only", "feeds", multiple=True, help="Land only these feeds (repeatable).")
@click.option(
    "--demand-shift", help="DATE:FACTOR, e.g. 2026-09-01:1.8 multiplies demand from DATE."
)
@click.option(
    "--fraud-change", type=click.DateTime(["%Y-%m-%d"]), help="Date a new fraud pattern appears."
)
@click.option(
    "--force", is_flag=True, help="Overwrite feeds landed from your own files (`retail land`)."
)
def generate(scale, seed, faults, feeds, demand_shift, fraud_change, force) -> None:
    """Land synthetic feeds in the landing zone (deterministic for a seed).

    Refuses to overwrite a feed landed from your own file unless --force."""
    from retail_assets.sources.contracts import FEEDS
    from retail_assets.sources.synthetic import DemandShift, FraudPatternChange, Knobs

    if seed is not None:
        os.environ["RETAIL_SEED"] = str(seed)
    settings = _settings_for(scale)
    targets = set(feeds) if feeds else set(FEEDS)
    clobbered = [feed for feed in _user_feeds(settings) if feed in targets]
    if clobbered and not force:
        raise click.ClickException(
            f"refusing to overwrite feeds landed from your own files: {', '.join(clobbered)}; "
            "generate other feeds with --only FEED, or pass --force to replace them with "
            "synthetic data"
        )
    shift = None
    if demand_shift:
        day, _, factor = demand_shift.partition(":")
        try:
            shift = DemandShift(start=date.fromisoformat(day), factor=float(factor))
        except ValueError:
            raise click.BadParameter(
                f"{demand_shift!r}: expected DATE:FACTOR", param_hint="--demand-shift"
            ) from None
    change = FraudPatternChange(start=fraud_change.date()) if fraud_change else None
    _land(
        settings,
        faults=_parse_faults(faults),
        knobs=Knobs(demand_shift=shift, fraud_pattern_change=change),
        feeds=feeds,
    )
    from retail_assets.domains import resolve_for, write_record

    resolution = resolve_for(settings)
    write_record(settings, resolution)
    _print_domains(resolution)


@main.command()
@scale_option
@click.option(
    "--select",
    "selection",
    default=None,
    help="Dagster asset selection, e.g. 'group:raw' or 'key:marts/*'.",
)
def materialize(scale, selection) -> None:
    """Materialize assets in-process against the instance in RETAIL_HOME."""
    settings = _settings_for(scale)
    if scale and _landed_scale(settings) not in (None, scale):
        _land_synthetic_unless_user_data(
            settings, f"the landing zone holds another scale: generating scale {scale}"
        )
    try:
        summary = _materialize(settings, selection)
    except ValueError as exc:  # a selection that does not parse or matches nothing
        raise click.BadParameter(str(exc), param_hint="--select") from None
    sys.exit(0 if summary.success else 1)


def _run_ui(settings: Settings, host: str, port: int) -> int:
    from retail_assets.transform.project import prepare_dbt_project

    prepare_dbt_project()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(settings.dagster_home),
        # dagster dev re-parses the dbt project on every reload; the profile names the warehouse.
        "RETAIL_WAREHOUSE": str(settings.warehouse_path),
    }
    dagster = str(Path(sys.executable).with_name("dagster"))
    console.print(f"Dagster UI on http://{host}:{port} (Ctrl-C to stop)")
    try:
        return subprocess.call(
            [
                dagster,
                "dev",
                "-w",
                str(PROJECT_ROOT / "workspace.yaml"),
                "-h",
                host,
                "-p",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env=env,
        )
    except KeyboardInterrupt:
        return 0


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
def ui(host, port) -> None:
    """Start the Dagster webserver and daemon on workspace.yaml."""
    sys.exit(_run_ui(_settings_for(None), host, port))


def _check_workers(workers: int) -> None:
    if workers > 1 and not os.environ.get("RETAIL_REDIS_URL"):
        # Each worker would keep its own fraud velocity state and see only its own payments.
        raise click.ClickException(
            f"--workers {workers} needs RETAIL_REDIS_URL: the fraud velocity state must be "
            "shared by the workers (see README, Scaling out); without it serve one worker"
        )


def _serve(host: str, port: int, log_level: str = "warning", workers: int = 1) -> None:
    import uvicorn

    _check_workers(workers)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Every worker's metrics in files here, summed at GET /metrics (serving/metrics.py);
        # a fresh folder per start, as prometheus_client requires.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="retail-metrics-")
    # The app factory by import path: each worker process builds its own app (its own slots,
    # prediction log file and hot-swap poller); the online state is shared through Redis.
    uvicorn.run(
        "serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Serving processes; more than one needs RETAIL_REDIS_URL (the shared online state).",
)
def serve(host, port, log_level, workers) -> None:
    """Start the inference API alone (loads the champion bundles and online features)."""
    _settings_for(None)
    _check_workers(workers)
    console.print(
        f"serving on http://{host}:{port} with {workers} worker(s) "
        "(OpenAPI: /schema, Swagger UI: /schema/swagger)"
    )
    _serve(host, port, log_level, workers)


def _curl_example(port: int) -> str:
    return (
        f"curl -s -X POST http://127.0.0.1:{port}/v1/fraud/score "
        "-H 'content-type: application/json' "
        """-d '{"card_id": "K-1", "customer_id": "C000001", "amount": 420.0, "channel": "online"}'"""
    )


@main.command()
@scale_option
@click.option("--no-ui", is_flag=True, help="Stop after the summary instead of opening the UI.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3000, show_default=True, type=int)
@click.option("--serve-port", default=8000, show_default=True, type=int)
def up(scale, no_ui, host, port, serve_port) -> None:
    """The main job: generate data, materialize every asset, summarise, then start the
    serving API next to the Dagster UI."""
    settings = _settings_for(scale)
    _land_synthetic_unless_user_data(settings)
    summary = _materialize(settings, None)
    if not summary.success:
        console.print(
            "[red]the platform run failed; the UI shows the failing step and checks[/red]"
        )
    if no_ui:
        sys.exit(0 if summary.success else 1)
    server = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("retail")),
            "serve",
            "--host",
            host,
            "--port",
            str(serve_port),
            "--log-level",
            "warning",
        ],
        cwd=PROJECT_ROOT,
    )
    console.print(
        f"serving API on http://{host}:{serve_port} - try:\n  {_curl_example(serve_port)}"
    )
    try:
        code = _run_ui(settings, host, port)
    finally:
        server.terminate()
        server.wait(timeout=20)
    sys.exit(code)


# Who decides without a person: monitoring and its retrain sensor, the gates, the canary test.
AUTOMATIC_ACTORS = (
    "monitoring",
    "monitoring_retrain_sensor",
    "promotion_gate",
    "canary_test",
    "search_gate",
)


def _search_status(settings: Settings) -> dict | None:
    """The search index in use, its canary (decided by click-through) and the last automatic
    decision about it; None before the first index."""
    from retail_assets.artifacts import Artifacts

    artifacts = Artifacts.from_settings(settings)
    store = artifacts.search_index()
    roles = store.roles()
    if roles.champion is None:
        return None
    automatic = [
        e for e in artifacts.log.entries("search/index") if e.get("actor") in AUTOMATIC_ACTORS
    ]
    last = max(automatic, key=lambda e: e["at"], default=None)
    canary = roles.challenger is not None and roles.rollout.mode == "canary"
    return {
        "version": roles.champion.version,
        "canary": {
            "version": roles.challenger.version,
            "share": roles.rollout.share,
            "since": roles.challenger.since,
        }
        if canary
        else None,
        "last_action": None
        if last is None
        else {k: last.get(k) for k in ("at", "artifact", "action", "version", "reason", "actor")},
    }


def _monitoring_status(settings: Settings) -> dict[str, dict]:
    """Per monitored model: its newest report (drift, live vs offline, verdict) and the last
    automatic decision about it; and the search index (its canary is decided by
    click-through)."""
    from retail_assets.artifacts import Artifacts
    from retail_assets.monitoring.assets import MONITORED_MODELS, latest_report

    artifacts = Artifacts.from_settings(settings)
    out = {}
    for model in MONITORED_MODELS:
        latest = latest_report(artifacts.monitoring(model))
        if latest is None:
            continue
        version, report = latest
        automatic = [
            e
            for artifact in (f"monitoring/{model}", f"model/{model}")
            for e in artifacts.log.entries(artifact)
            if e.get("actor") in AUTOMATIC_ACTORS
        ]
        last = max(automatic, key=lambda e: e["at"], default=None)
        out[model] = {
            "report": version,
            "version": report["version"],
            "as_of": report["as_of"],
            "actions": report["actions"],
            "reasons": report["reasons"],
            "drift": [
                {k: d[k] for k in ("feature", "segment", "psi", "p_value", "test")}
                for d in report["feature_drift"]
                if d["drifted"]
            ]
            + [
                {
                    "feature": "level",
                    "segment": d["segment"],
                    "change": d["change"],
                    "p_value": d["p_value"],
                    "test": "wilcoxon",
                }
                for d in report["level_drift"]
                if d["drifted"]
            ],
            "live": report["live"],
            "offline": report["offline"],
            "notes": report["notes"],
            "last_action": None
            if last is None
            else {
                k: last.get(k) for k in ("at", "artifact", "action", "version", "reason", "actor")
            },
        }
    search = _search_status(settings)
    if search is not None:
        out["search"] = search
    return out


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def monitor(as_json) -> None:
    """Per model: drift (which features, how far), live metrics against the offline
    evaluation, and the last automatic action with its reason (from the newest monitoring
    report; `retail materialize` or the daemon produce them)."""
    settings = _settings_for(None)
    status = _monitoring_status(settings)
    if as_json:
        click.echo(json.dumps(status, indent=2, default=str))
        return
    if not status:
        console.print("no monitoring report yet: run `retail materialize` (or `retail up`)")
        return
    for model, entry in status.items():
        if model == "search":
            _print_search(entry)
            continue
        verdict = ", ".join(entry["actions"]) or "no action"
        console.print(
            f"[bold]{model}[/bold] champion v{entry['version'] or '-'}, report "
            f"{entry['report']} as of {entry['as_of']}: {verdict}"
        )
        for reason in entry["reasons"]:
            console.print(f"  - {reason}")
        live, offline = entry["live"], entry["offline"]
        keys = [k for k in ("wape", "recall_at_threshold", "precision_at_threshold", "pr_auc",
                            "roc_auc") if k in live or k in offline]  # fmt: skip
        table = Table(title=f"{model}: live (since {live.get('since', '-')}) vs offline test")
        for column in ("metric", "live", "offline"):
            table.add_column(column)
        for key in keys:
            table.add_row(key, _fmt(live.get(key)), _fmt(offline.get(key)))
        table.add_row("rows", str(live.get("rows", 0)), "")
        if "positives" in live:
            table.add_row("labelled frauds", str(live["positives"]), _fmt(offline.get("support")))
        console.print(table)
        for note in entry["notes"]:
            console.print(f"  note: {note}")
        last = entry["last_action"]
        if last:
            console.print(
                f"  last automatic action: {last['action']} {last['artifact']} "
                f"v{last['version']} at {last['at']} by {last['actor']}: {last['reason']}"
            )


def _print_search(entry: dict) -> None:
    canary = entry["canary"]
    console.print(
        f"[bold]search[/bold] index {entry['version']}"
        + (
            f"; canary {canary['version']} on {canary['share']:.0%} of sessions since "
            f"{canary['since']} (click-through decides)"
            if canary
            else "; no canary"
        )
    )
    last = entry["last_action"]
    if last:
        console.print(
            f"  last automatic action: {last['action']} {last['version']} at {last['at']} by "
            f"{last['actor']}: {last['reason']}"
        )


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _lifecycle(settings: Settings):
    from retail_assets.models.lifecycle.operations import lifecycle_for

    return lifecycle_for(settings)


@main.group()
def models() -> None:
    """List, promote and roll back model versions (MLflow aliases + serving bundles)."""


@models.command("list")
@click.argument("model", required=False)
def models_list(model) -> None:
    """Versions, serving roles, MLflow aliases, bundle state, the last gate decision and the
    recent decision log of each model."""
    settings = _settings_for(None)
    lifecycle = _lifecycle(settings)
    names = [model] if model else lifecycle.artifacts.models()
    for name in names:
        status = lifecycle.status(name)
        rollout = status["rollout"]
        table = Table(
            title=f"{name}: champion v{status['champion'] or '-'}, challenger "
            f"v{status['challenger'] or '-'} (rollout {rollout.mode}"
            f"{f' {rollout.share:.0%}' if rollout.mode == 'canary' else ''}); MLflow alias "
            f"champion v{status['mlflow_champion'] or '-'}"
        )
        for column in ("version", "aliases", "bundle", "mlflow run"):
            table.add_column(column)
        for v in status["versions"]:
            table.add_row(v["version"], ", ".join(v["aliases"]), v["bundle"], v["run_id"][:12])
        console.print(table)
        _print_gate(lifecycle.artifacts.log, f"model/{name}")
    artifacts = [f"model/{model}"] if model else None
    _print_decisions(lifecycle.artifacts.log, artifacts)


def _print_gate(log, artifact: str) -> None:
    """The gate table of the artifact's latest gated decision (promote or refuse)."""
    last = next(
        (e for e in reversed(log.entries(artifact)) if (e.get("evidence") or {}).get("gate")),
        None,
    )
    if last is None:
        return
    table = Table(title=f"{artifact}: last gate decision ({last['action']} v{last['version']})")
    for column in ("rule", "scope", "value", "threshold", "passed"):
        table.add_column(column)
    for row in last["evidence"]["gate"]:
        table.add_row(
            row["rule"],
            row["scope"],
            *(
                f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k] or "-")
                for k in ("value", "threshold")
            ),
            "yes" if row["passed"] else "[red]NO[/red]",
        )
    console.print(table)


def _print_decisions(log, artifacts: list[str] | None, limit: int = 8) -> None:
    entries = [e for e in log.entries() if artifacts is None or e["artifact"] in artifacts]
    if not entries:
        return
    recent = Table(title="recent decisions")
    for column in ("at", "artifact", "action", "version", "champion before -> after", "reason"):
        recent.add_column(column)
    for entry in entries[-limit:]:
        recent.add_row(
            entry["at"][:19],
            entry["artifact"],
            entry["action"],
            str(entry.get("version")),
            f"{entry.get('champion_before')} -> {entry.get('champion_after')}",
            (entry.get("reason") or "")[:80],
        )
    console.print(recent)


def _lifecycle_call(operation: str, *args) -> dict:
    from retail_assets.core.store import ArtifactInvalidError, RoleError

    lifecycle = _lifecycle(_settings_for(None))
    try:
        return getattr(lifecycle, operation)(*args)
    except (RoleError, ArtifactInvalidError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@models.command("promote")
@click.argument("model")
@click.argument("version")
@click.option("--reason", required=True, help="Why (recorded in the decision log).")
def models_promote(model, version, reason) -> None:
    """Make VERSION the champion by hand (its bundle must be complete and valid)."""
    record = _lifecycle_call("manual_promote", model, version, reason)
    console.print(f"{model}: champion v{record['champion_before']} -> v{record['champion_after']}")


@models.command("rollback")
@click.argument("model")
@click.option("--reason", required=True, help="Why (recorded in the decision log).")
def models_rollback(model, reason) -> None:
    """Move the champion back to the version the current champion replaced."""
    record = _lifecycle_call("rollback", model, reason)
    console.print(
        f"{model}: rolled back v{record['champion_before']} -> v{record['champion_after']}"
    )


# -- assistant evals ----------------------------------------------------------------------------


def _assistant(settings: Settings):
    from retail_assets.assistant.assets import AssistantResource

    return AssistantResource.from_settings(settings)


@main.group()
def evals() -> None:
    """The assistant eval suite: benchmark a prompt version and apply the promotion gate."""


@evals.command("run")
@click.option(
    "--prompt",
    "prompt",
    default=None,
    help="Candidate: a registered version number or a prompt file name in evals/prompts "
    "(registered if needed). Default: the newest registered version.",
)
@click.option(
    "--max-cases", type=int, default=None, help="Evaluate a stratified sample (default: all)."
)
@click.option("--promote", is_flag=True, help="Move the production alias if the gate passes.")
@click.option("--verbose", is_flag=True, help="Print every case as it is answered.")
def evals_run(prompt, max_cases, promote, verbose) -> None:
    """Evaluate a prompt version, compare it with production, exit non-zero if the gate fails."""
    from evals.prompt_files import prompt_templates
    from evals.runner import load_truth_frames
    from evals.session import evaluate_with_gate
    from retail_assets.warehouse import WarehouseResource

    settings = _settings_for(None)
    assistant = _assistant(settings)
    if assistant.index_store().champion() is None:
        raise click.ClickException(
            "no RAG index is published: run `retail materialize --select assistant_rag_index+`"
        )
    registry = assistant.registry()
    registry.sync(prompt_templates())
    warehouse = WarehouseResource(path=str(settings.warehouse_path))
    products, documents = load_truth_frames(warehouse)

    def on_case(result) -> None:
        mark = "[green]ok[/green]" if not result.failures else "[red]FAIL[/red]"
        console.print(f"  {mark} {result.id} {result.latency_ms:>7.0f} ms  {result.question[:70]}")
        if result.failures:
            console.print(f"       {'; '.join(result.failures)[:160]}")

    try:
        outcome = evaluate_with_gate(
            registry=registry,
            index_store=assistant.index_store(),
            encoders=assistant.encoders(),
            products=products,
            documents=documents,
            policy_facts=assistant.policy_facts(),
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=settings.mlflow_artifacts_dir,
            candidate=prompt,
            max_cases=max_cases,
            log=console.print,
            on_case=on_case if verbose else None,
        )
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    report, decision = outcome.report, outcome.decision
    table = Table(
        title=f"prompt v{report.prompt_version} ({report.prompt_name}) vs production "
        f"{outcome.production_label} - {report.n_cases} cases, index {report.index_version}"
    )
    for column in ("metric", "candidate", "production", "threshold", "max regression", "passed"):
        table.add_column(column, justify="right" if column != "metric" else "left")

    def fmt(value) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3f}"

    for row in outcome.comparison_rows():
        table.add_row(
            row["metric"],
            fmt(row["candidate"]),
            fmt(row["incumbent"]),
            row["floor"],
            row["tolerance"],
            "[green]yes[/green]" if row["passed"] else "[red]NO[/red]",
        )
    console.print(table)
    extra = {
        k: report.metrics[k] for k in ("tokens_per_second", "guard_removal_rate", "latency_p50_ms")
    }
    console.print(
        "also: "
        + ", ".join(f"{k} {fmt(v)}" for k, v in extra.items())
        + f"; MLflow run {report.mlflow_run_id}"
    )
    if decision.passed:
        console.print(f"[green]gate passed[/green]: v{report.prompt_version} may be promoted")
        if promote:
            template = registry.load(report.prompt_version)
            registry.set_production(
                template, reason="passed the eval gate (retail evals run --promote)", actor="cli"
            )
            console.print(f"production -> v{template.version} ({template.name})")
    else:
        console.print("[red]gate refused[/red]:")
        for reason in decision.reasons:
            console.print(f"  - {reason}")
    sys.exit(0 if decision.passed else 1)


@evals.command("prompts")
def evals_prompts() -> None:
    """Registered prompt versions and the production alias."""
    registry = _assistant(_settings_for(None)).registry()
    table = Table(title=f"prompt retail-assistant: production v{registry.production() or '-'}")
    for column in ("version", "file", "aliases", "negative control", "description"):
        table.add_column(column)
    for v in registry.versions():
        table.add_row(
            v.version,
            v.name,
            ", ".join(v.aliases),
            "yes" if v.negative_control else "",
            v.description[:70],
        )
    console.print(table)


if __name__ == "__main__":
    main()


# -- simulation ---------------------------------------------------------------------------------


@main.command()
@click.option(
    "--scenario",
    required=True,
    type=click.Choice(list(SCENARIOS)),
)
@click.option("--days", type=click.IntRange(min=2), default=None, help="Days to simulate.")
@click.option(
    "--scale", type=click.Choice(["tiny", "small", "default"]), default="tiny", show_default=True
)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--policy",
    type=click.Choice(["targeted", "nightly"]),
    default="targeted",
    show_default=True,
    help="targeted: the platform's own retraining; nightly: every model also retrains nightly.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
def simulate(scenario, days, scale, seed, policy, out) -> None:
    """Advance a platform one simulated day at a time: feeds land, the daemon's night runs,
    customers use the serving app over HTTP, labels arrive late. Writes OUT/timeline.json,
    OUT/timeline.png and OUT/report.md (its platform lives in OUT/home)."""
    from retail_assets.simulation.simulate import check_out
    from retail_assets.simulation.simulate import simulate as run_simulation

    chosen = SCENARIOS[scenario]
    days = days or chosen.default_days
    if days < chosen.min_days:
        raise click.BadParameter(
            f"{scenario} needs at least {chosen.min_days} days", param_hint="--days"
        )
    try:
        check_out(Path(out))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--out") from exc
    timeline = run_simulation(
        scenario, days, out, scale=scale, seed=seed, policy=policy,
        progress=lambda line: console.print(line, highlight=False),
    )  # fmt: skip
    failed = [e for e in timeline["expectations"] if not e["passed"]]
    for e in timeline["expectations"]:
        mark = "[green]pass[/green]" if e["passed"] else "[red]FAIL[/red]"
        console.print(f"{mark} {e['name']}: {e['evidence']}", highlight=False)
    console.print(f"report: {Path(out) / 'report.md'}")
    if failed:
        raise SystemExit(1)
