"""Monitoring assets (one per model), their checks, and the sensor that turns a verdict into a
retraining run of exactly that model.

    demand_training_set, marts/fct_daily_sales, marts/dim_products
                                    (+ after demand_promotion) -> demand_monitoring
    marts/transaction_features, marts/dim_customers (+ after fraud_promotion) -> fraud_monitoring

Each materialization evaluates the champion (`monitors.py`), publishes the report as a version
of the `monitoring/<model>` store, records a decision (`drift_detected`, `live_degraded`) when
the report calls for a retrain, and shows drift and live metrics as metadata with a plot of
the reports over time. `monitoring_retrain_sensor` reads the newest report of each model and
requests a run of that model's chain (`<model>_model` and what follows it in group `models`),
keyed by the report, so one report never retrains twice and one model's drift never retrains
another.
"""

import base64
import io
import json
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl

from retail_assets.artifacts import Artifacts
from retail_assets.core import clock
from retail_assets.core.markdown import markdown_table
from retail_assets.core.store import ArtifactStore
from retail_assets.models.lifecycle.resource import LifecycleResource
from retail_assets.models.lifecycle.spec import TrainingSet
from retail_assets.models.lifecycle.tiers import Tiering
from retail_assets.monitoring import canary, feedback, skew
from retail_assets.monitoring.drift import PSI_DRIFT, WINDOW_DAYS
from retail_assets.monitoring.monitors import (
    ModelReport,
    monitor_demand,
    monitor_fraud,
    monitoring_since,
)
from retail_assets.resources import ArtifactsResource

MONITORED_MODELS = ("demand", "fraud", "recommend")
# Whether a drift no retrain has answered yet retrains the model while a canary runs whose
# challenger was not trained for monitoring (a scheduled retrain from before the drift); the
# new challenger replaces that canary. The challenger of a retrain monitoring asked for is
# never replaced by a later drift (its canary would starve), and live degradation alone
# always waits for the canary's verdict.
# * demand: yes. The scheduled challenger was trained on the world the drift says is gone, and
#   the next day's sales judge a new canary at once. Found by `retail simulate supply_shock`:
#   Electronics' +32 % was found two days after the shock, and its retrain waited ten days for
#   the canary of a weekly challenger (which the next weekly retrain replaced anyway).
# * fraud: no. Its canary's verdict needs labels that arrive over weeks (about two here), and
#   a changing fraud mix raises a new drift signature every few days: yielding to each, 31
#   fraud canaries in 42 simulated days were replaced before a verdict.
# * recommend: no drift to answer (its monitor judges click-through only).
DRIFT_REPLACES_CANARY = {"demand": True, "fraud": False, "recommend": False}
REPORT_FILE = "report.json"
# Reports shown in the plot of each monitoring asset.
PLOT_REPORTS = 30


def publish_report(artifacts: Artifacts, report: ModelReport) -> tuple[str, dict[str, Any] | None]:
    """Store the report as a new version of `monitoring/<model>`; when it calls for a retrain,
    append the decision with its evidence. Returns (report version, decision or None)."""
    store = artifacts.monitoring(report.model)
    # After the newest: pruning drops old reports, so counting them would reuse a number (and
    # the retrain sensor, which requests once per report version, would go quiet).
    version = f"{int(max(store.versions(), default='0')) + 1:05d}"
    document = report.as_dict()
    store.write(version, {REPORT_FILE: json.dumps(document, indent=2, default=str).encode()})
    store.prune()
    decision = None
    if report.actions:
        decision = store.record(
            "live_degraded" if report.degraded and not report.drifted else "drift_detected",
            version,
            reason="; ".join(report.reasons()),
            actor="monitoring",
            evidence={
                "model": report.model,
                "champion": report.version,
                "actions": report.actions,
                "windows": report.windows,
                "live": report.live,
                "offline": report.offline,
            },
        )
    return version, decision


def latest_report(store: ArtifactStore) -> tuple[str, dict[str, Any]] | None:
    versions = store.versions()
    if not versions:
        return None
    version = max(versions)
    return version, json.loads((store.version_dir(version) / REPORT_FILE).read_text())


def report_history(store: ArtifactStore, limit: int = PLOT_REPORTS) -> list[dict[str, Any]]:
    out = []
    for version in sorted(store.versions())[-limit:]:
        path = store.version_dir(version) / REPORT_FILE
        if path.exists():
            out.append({"version": version, **json.loads(path.read_text())})
    return out


def _plot(history: list[dict[str, Any]], live_metric: str) -> str:
    """Markdown with an embedded PNG: the largest PSI and the live metric per report."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(1, len(history) + 1))
    psi = [
        max((d["psi"] or 0.0 for d in h["feature_drift"] if d["segment"] == "overall"), default=0)
        for h in history
    ]
    live = [h.get("live", {}).get(live_metric) for h in history]
    figure, left = plt.subplots(figsize=(7, 3), dpi=90)
    left.plot(xs, psi, marker="o", color="tab:blue", label="largest feature PSI")
    left.axhline(PSI_DRIFT, color="tab:blue", linestyle=":", linewidth=1)
    left.set_xlabel("report")
    left.set_ylabel("PSI", color="tab:blue")
    right = left.twinx()
    right.plot(
        xs, [v if v is not None else float("nan") for v in live], marker="s", color="tab:red"
    )
    right.set_ylabel(f"live {live_metric}", color="tab:red")
    for x, h in zip(xs, history, strict=True):
        if h.get("actions"):
            left.axvline(x, color="tab:orange", alpha=0.4)
    left.set_title("drift and live performance (orange: retrain requested)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f"![monitoring](data:image/png;base64,{encoded})"


def _metadata(report: ModelReport, version: str, store: ArtifactStore, live_metric: str):
    drift_rows = sorted(
        (d for d in report.feature_drift if d.psi is not None),
        key=lambda d: (not d.drifted, -(d.psi or 0)),
    )[:15]
    return {
        "report_version": version,
        "champion": report.version or "none",
        "verdict": ", ".join(report.actions) or "no action",
        "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in report.reasons()) or "none"),
        "windows": dg.MetadataValue.json(report.windows),
        "feature_drift": dg.MetadataValue.md(
            markdown_table([d.as_dict() for d in drift_rows]) if drift_rows else "nothing tested"
        ),
        "level_drift": dg.MetadataValue.md(
            markdown_table([d.as_dict() for d in report.level_drift])
            if report.level_drift
            else "not applicable"
        ),
        "live": dg.MetadataValue.json(json.loads(json.dumps(report.live, default=str))),
        "offline": dg.MetadataValue.json(json.loads(json.dumps(report.offline, default=str))),
        "notes": dg.MetadataValue.md("\n".join(f"- {n}" for n in report.notes) or "none"),
        "plot": dg.MetadataValue.md(_plot(report_history(store), live_metric)),
    }


def _checks(model: str, report: ModelReport) -> list[dg.AssetCheckResult]:
    drift_reasons = [r for r in report.reasons() if r != report.degradation]
    return [
        dg.AssetCheckResult(
            check_name="no_unexpected_drift",
            passed=not report.drifted,
            severity=dg.AssetCheckSeverity.WARN,
            description="; ".join(drift_reasons) or "no feature or level drift beyond the season",
            metadata={"drifted_features": ", ".join(d.feature for d in report.drifted_features)},
        ),
        dg.AssetCheckResult(
            check_name="live_performance_holds",
            passed=not report.degraded,
            severity=dg.AssetCheckSeverity.WARN,
            description=report.degradation or "; ".join(report.notes) or "within margin",
        ),
    ]


def _check_specs(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        dg.AssetCheckSpec(
            "no_unexpected_drift",
            asset=asset,
            description=(
                "No feature (overall) drifted against both the same weeks a year earlier and "
                "the weeks just before (PSI >= 0.25 and test p < 0.001), and no seasonally "
                "adjusted level change of 25 % or more (Wilcoxon p < 0.001)."
            ),
        ),
        dg.AssetCheckSpec(
            "live_performance_holds",
            asset=asset,
            description=(
                "The champion's live metric since its test window is within margin of its "
                "offline evaluation (see `monitors.py` for the margins and tests)."
            ),
        ),
    ]


def champion_degraded(monitoring: ArtifactStore, champion: str) -> bool:
    """Whether the newest monitoring report found this champion degraded live."""
    latest = latest_report(monitoring)
    return bool(latest and latest[1].get("degraded") and latest[1].get("version") == champion)


def _canary(
    context,
    lifecycle,
    store: ArtifactStore,
    monitoring: ArtifactStore,
    model: str,
    log: pl.DataFrame,
    losses_of,
    statistic: str = "rank",
    data: dict[str, Any] | None = None,
):
    """Look at the running canary (if any) and act on the sequential test's decision
    (`statistic`: the test's, `data`: more evidence for the decision log; `monitoring`: the
    model's reports, whose newest says whether the champion is degraded)."""
    roles = store.roles()
    since = canary.canary_since(roles)
    if since is None:
        return None
    rows = canary.logged_rows(log, model, roles.champion.version, roles.challenger.version, since)
    losses = losses_of(rows)
    degraded = champion_degraded(monitoring, roles.champion.version)
    look = canary.look_at_canary(
        store,
        roles,
        model,
        losses,
        {
            "predictions_logged": rows.height,
            "losses": losses.height,
            "champion_degraded": degraded,
            **(data or {}),
        },
        statistic=statistic,
        champion_degraded=degraded,
    )
    _act_on_look(context, lifecycle, store, model, look)
    return look


def _act_on_look(context, lifecycle, store: ArtifactStore, model: str, look) -> None:
    """Carry out a model canary's look (promote: the serving pointer and MLflow aliases move;
    roll back: the aliases follow), whatever test decided it."""
    if look is None:
        return
    models = lifecycle.lifecycle()
    record = canary.act(
        store,
        look,
        install=lambda version, **why: models.install_champion(model, version, **why),
        after_rollback=lambda: models.sync_aliases(model),
    )
    context.log.info(f"{model} canary v{look.challenger}: {record['action']}")


def _finish(
    context,
    artifacts: Artifacts,
    report: ModelReport,
    live_metric: str,
    look: canary.CanaryLook | None = None,
    extra_metadata: dict[str, Any] | None = None,
    checks: tuple[str, ...] | None = None,
):
    """Publish the report, then yield the output with its metadata and the checks (`checks`:
    only these names, for an asset that declares fewer)."""
    version, decision = publish_report(artifacts, report)
    if decision is not None:
        context.log.warning(f"{report.model}: {decision['reason']}")
    metadata = _metadata(report, version, artifacts.monitoring(report.model), live_metric)
    metadata.update(extra_metadata or {})
    metadata["canary"] = dg.MetadataValue.json(
        {"challenger": look.challenger, **look.look.as_dict()} if look else {"running": False}
    )
    yield dg.Output(report.as_dict(), metadata=metadata)
    yield from (
        result
        for result in _checks(report.model, report)
        if checks is None or result.check_name in checks
    )


@dg.asset(
    group_name="monitoring",
    ins={
        "training_set": dg.AssetIn(key="demand_training_set"),
        "fct_daily_sales": dg.AssetIn(key=["marts", "fct_daily_sales"]),
        "dim_products": dg.AssetIn(key=["marts", "dim_products"]),
        "prediction_log": dg.AssetIn(key=["serving", "prediction_log"]),
    },
    deps=["demand_promotion"],  # monitors the champion the gate left serving
    io_manager_key="artifact_io_manager",
    check_specs=_check_specs("demand_monitoring"),
    kinds={"scipy"},
)
def demand_monitoring(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    lifecycle: LifecycleResource,
    training_set: TrainingSet,
    fct_daily_sales: pl.DataFrame,
    dim_products: pl.DataFrame,
    prediction_log: pl.DataFrame,
):
    """Demand drift and live accuracy of the serving champion: seasonally adjusted sales level
    per series (overall, per department and category) and feature drift against the same
    weeks a year earlier and the weeks just before; live WAPE on days after the champion's
    test window against its offline WAPE. A verdict of `retrain` is recorded in the decision
    log and picked up by `monitoring_retrain_sensor`."""
    store = artifacts.artifacts.model("demand")
    daily = fct_daily_sales.select("date", "store_id", "sku", "demand_quantity").join(
        dim_products.select("sku", "department", "category"), on="sku", how="left"
    )
    look = _canary(
        context,
        lifecycle,
        store,
        artifacts.artifacts.monitoring("demand"),
        "demand",
        prediction_log,
        lambda rows: canary.demand_losses(rows, daily),
    )
    champion = store.champion()
    report = monitor_demand(
        daily,
        training_set.frame,
        training_set.feature_columns,
        store.version_dir(champion) if champion else None,
        champion,
    )
    yield from _finish(context, artifacts.artifacts, report, "wape", look)


@dg.asset(
    group_name="monitoring",
    ins={
        "transaction_features": dg.AssetIn(key=["marts", "transaction_features"]),
        "dim_customers": dg.AssetIn(key=["marts", "dim_customers"]),
        "prediction_log": dg.AssetIn(key=["serving", "prediction_log"]),
    },
    deps=["fraud_promotion"],  # monitors the champion the gate left serving
    io_manager_key="artifact_io_manager",
    check_specs=[
        *_check_specs("fraud_monitoring"),
        dg.AssetCheckSpec(
            "no_training_serving_skew",
            asset="fraud_monitoring",
            description=(
                "Every feature serving logged equals its offline recomputation (the training "
                "code replaying the history plus the logged requests) for at least 99 % of "
                "the logged payments; a failure names the features and an example."
            ),
        ),
    ],
    kinds={"scipy"},
)
def fraud_monitoring(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    lifecycle: LifecycleResource,
    transaction_features: pl.DataFrame,
    dim_customers: pl.DataFrame,
    prediction_log: pl.DataFrame,
):
    """Fraud drift and live detection of the serving champion: features of recent payments
    (replayed through the online feature state) against the same weeks a year earlier and the
    weeks just before; live recall, precision, ROC and PR AUC on payments after the champion's
    test window whose labels have arrived, with a one-sided Fisher test of the recall drop. A
    verdict of `retrain` is recorded in the decision log and picked up by
    `monitoring_retrain_sensor`."""
    store = artifacts.artifacts.model("fraud")
    now = transaction_features["transaction_ts"].max()
    # The reporting delay weights the canary's losses: measured only while a canary runs.
    running = canary.canary_since(store.roles()) is not None
    delay = canary.ReportingDelay.measure(transaction_features, now) if running else None
    # The running canary first: its look may promote the challenger, and the champion that
    # results is the one compared with its predecessor below.
    look = _canary(
        context,
        lifecycle,
        store,
        artifacts.artifacts.monitoring("fraud"),
        "fraud",
        prediction_log,
        lambda rows: canary.fraud_losses(rows, transaction_features, now, delay),
        statistic="mean",
        data={"label_delay": delay.summary()} if delay else None,
    )
    champion = store.champion()
    previous = store.rollback_target()
    # One replay of the history (plus the requests serving logged) for drift, live metrics
    # and the skew check.
    replayed = skew.replay(
        transaction_features, dim_customers, prediction_log, monitoring_since(transaction_features)
    )
    report = monitor_fraud(
        transaction_features,
        dim_customers,
        store.version_dir(champion) if champion else None,
        champion,
        previous=(previous, store.version_dir(previous))
        if previous and store.has(previous)
        else None,
        features=replayed.features,
    )
    if report.rollback_to:
        record = lifecycle.lifecycle().rollback(
            "fraud", reason=f"automatic rollback: {report.degradation}", actor="monitoring"
        )
        context.log.warning(
            f"fraud: rolled back v{record['rolled_back_from']} -> v{record['version']}"
        )
    report.skew = skew.fraud_skew(replayed)
    skewed = [row for row in report.skew if row["skewed"]]
    yield from _finish(context, artifacts.artifacts, report, "recall_at_threshold", look)
    compared = max((row["compared"] for row in report.skew), default=0)
    yield dg.AssetCheckResult(
        check_name="no_training_serving_skew",
        passed=not skewed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "skew in "
            + "; ".join(
                f"{row['feature']} ({row['mismatches']} of {row['compared']} payments, e.g. "
                f"{row['example']})"
                for row in skewed
            )
            if skewed
            else f"{compared} logged payments: every feature equals its offline recomputation"
        ),
        metadata={
            "skewed_features": ", ".join(row["feature"] for row in skewed),
            "compared_payments": compared,
        },
    )


# Click-through per index version over this many days of logged searches (metadata).
CTR_WINDOW_DAYS = 7


def search_ctr(clicks: pl.DataFrame) -> pl.DataFrame:
    return (
        clicks.group_by("version", "arm")
        .agg(pl.len().alias("searches"), pl.col("clicked").mean().alias("click_through"))
        .sort("version", "arm")
    )


@dg.asset(
    group_name="monitoring",
    ins={
        "prediction_log": dg.AssetIn(key=["serving", "prediction_log"]),
        "stg_clickstream": dg.AssetIn(key=["staging", "stg_clickstream"]),
    },
    deps=["search_index_promotion"],  # looks at the canary the rollout gate started
    io_manager_key="artifact_io_manager",
    kinds={"scipy"},
)
def search_monitoring(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    prediction_log: pl.DataFrame,
    stg_clickstream: pl.DataFrame,
) -> dg.Output:
    """Search in production: click-through per index version and arm (a search counts as
    clicked when its session clicked one of the SKUs it returned within 30 minutes), and the
    canary's fate decided by it: once the candidate has served its minimum time, each run is
    one look of the group-sequential two-proportion test (`core/sequential.py`): promote when
    its click-through is at least the live index's (2 % margin), roll back when it is lower,
    else extend. Every look and decision goes to the decision log with the data."""
    store = artifacts.artifacts.search_index()
    roles = store.roles()
    since = canary.canary_since(roles)
    look, record = None, None
    if since is not None:
        rows = canary.logged_rows(
            prediction_log, "search", roles.champion.version, roles.challenger.version, since
        )
        clicks = canary.search_clicks(rows, stg_clickstream)
        look = canary.look_at_click_canary(
            store,
            roles,
            clicks,
            {"searches_logged": rows.height, "searches_with_session": clicks.height},
        )
        if look is not None:
            record = canary.act(
                store, look, install=lambda version, **why: store.promote(version, **why)
            )
            context.log.info(f"search canary {look.challenger}: {record['action']}")
    recent = prediction_log.filter(
        (pl.col("model") == "search")
        & (pl.col("ts") >= pl.col("ts").max() - pl.duration(days=CTR_WINDOW_DAYS))
    )
    ctr = search_ctr(canary.search_clicks(recent, stg_clickstream))
    output = {
        "live": store.champion(),
        "candidate": store.challenger(),
        "click_through": ctr.to_dicts(),
        "canary": {"challenger": look.challenger, **look.look.as_dict()} if look else None,
        "action": record["action"] if record else None,
    }
    return dg.Output(
        output,
        metadata={
            "live": output["live"] or "-",
            "candidate": output["candidate"] or "-",
            "action": output["action"] or "none",
            "click_through": dg.MetadataValue.md(
                markdown_table(ctr.to_dicts()) if ctr.height else "no logged searches"
            ),
            "canary": dg.MetadataValue.json(output["canary"] or {"running": False}),
        },
    )


@dg.asset(
    group_name="monitoring",
    ins={
        "prediction_log": dg.AssetIn(key=["serving", "prediction_log"]),
        "stg_clickstream": dg.AssetIn(key=["staging", "stg_clickstream"]),
    },
    deps=["recommend_promotion"],  # monitors the champion the gate left serving
    io_manager_key="artifact_io_manager",
    check_specs=[
        dg.AssetCheckSpec(
            "live_performance_holds",
            asset="recommend_monitoring",
            description=(
                "The champion's click-through over the last week has not fallen 20 % or more "
                "below its own over the three weeks before (one-sided Fisher p < 0.01, at "
                "least 200 lists each; `monitoring/feedback.py`)."
            ),
        )
    ],
    kinds={"scipy"},
)
def recommend_monitoring(
    context: dg.AssetExecutionContext,
    artifacts: ArtifactsResource,
    lifecycle: LifecycleResource,
    prediction_log: pl.DataFrame,
    stg_clickstream: pl.DataFrame,
):
    """Recommendations in production: every list serving logged joined to the clicks, adds to
    cart and purchases of the same customer or session on its SKUs within a day; CTR,
    add-to-cart and conversion per model version and arm. A running canary is decided on
    click-through per arm (the same sequential two-proportion test as search); a CTR drop of
    the champion against its own earlier weeks is recorded and retrains the ranker
    (`monitoring_retrain_sensor`)."""
    store = artifacts.artifacts.model("recommend")
    outcomes = feedback.recommendation_outcomes(prediction_log, stg_clickstream)
    roles = store.roles()
    since = canary.canary_since(roles)
    look = None
    if since is not None:
        rows = canary.logged_rows(
            prediction_log, "recommend", roles.champion.version, roles.challenger.version, since
        )
        clicks = feedback.recommendation_outcomes(rows, stg_clickstream)
        look = canary.look_at_click_canary(
            store, roles, clicks, {"lists_logged": clicks.height}, model="recommend"
        )
        _act_on_look(context, lifecycle, store, "recommend", look)
    champion = store.champion()
    offline = {}
    if champion and store.has(champion):
        card = store.version_dir(champion) / "metrics.json"
        if card.exists():  # the offline test metrics of the champion (overall)
            overall = json.loads(card.read_text()).get("evaluation", {}).get("overall", {})
            offline = overall.get("challenger", {})
    latest = [t for t in (outcomes["ts"].max(), stg_clickstream["event_ts"].max()) if t]
    report = feedback.monitor_recommend(
        outcomes, champion, max(latest, default=None) or clock.now_naive(), offline
    )
    table = feedback.ctr_table(outcomes)
    yield from _finish(
        context,
        artifacts.artifacts,
        report,
        "recent_ctr",
        look,
        extra_metadata={
            "ctr_by_version_arm": dg.MetadataValue.md(
                markdown_table(table.to_dicts()) if table.height else "no logged recommendations"
            )
        },
        checks=("live_performance_holds",),
    )


# A model's chain after its training set: train, evaluate, export, gate.
RETRAIN_STEPS = ("model", "evaluation", "onnx", "promotion")


def assistant_production_metrics(log: pl.DataFrame) -> pl.DataFrame:
    """Per prompt version: answers, decline rate, share of answers whose draft had claims
    removed (hallucinations caught), removed claims and injection flags per answer, latency."""
    rows = log.filter(pl.col("model") == "assistant")
    if rows.height == 0:
        return pl.DataFrame()
    parsed = rows.with_columns(
        pl.col("output").str.json_decode(
            pl.Struct(
                {
                    "declined": pl.Boolean,
                    "removed_claims": pl.Int64,
                    "injection_flags": pl.Int64,
                }
            )
        )
    ).unnest("output")
    return (
        parsed.group_by(pl.col("version").alias("prompt_version"))
        .agg(
            pl.len().alias("answers"),
            pl.col("declined").mean().alias("decline_rate"),
            (pl.col("removed_claims") > 0).mean().alias("answers_with_removed_claims"),
            pl.col("removed_claims").mean().alias("removed_claims_per_answer"),
            (pl.col("injection_flags") > 0).mean().alias("injection_flag_rate"),
            pl.col("latency_ms").quantile(0.5).alias("latency_p50_ms"),
            pl.col("latency_ms").quantile(0.95).alias("latency_p95_ms"),
        )
        .sort("prompt_version")
    )


@dg.asset(
    group_name="monitoring",
    ins={"prediction_log": dg.AssetIn(key=["serving", "prediction_log"])},
    io_manager_key="artifact_io_manager",
    kinds={"polars"},
)
def assistant_monitoring(prediction_log: pl.DataFrame) -> dg.Output:
    """The shopping assistant in production, per prompt version, from serving's log: answers,
    decline rate, share of answers whose draft had unsupported claims removed by the guard
    (hallucinations caught), injection flags and latency p50/p95. The same counters are on
    serving's `/metrics` (`retail_assistant_*`)."""
    table = assistant_production_metrics(prediction_log)
    return dg.Output(
        table.to_dicts(),
        metadata={
            "by_prompt_version": dg.MetadataValue.md(
                markdown_table(table.to_dicts()) if table.height else "no assistant traffic yet"
            ),
            "answers": int(table["answers"].sum()) if table.height else 0,
        },
    )


BREAKER_EVENTS = frozenset({"breaker_opened", "breaker_closed"})


def pricing_production_metrics(log: pl.DataFrame) -> pl.DataFrame:
    """Per pricing model version and arm: prices served, mean change against the current
    price, share held by a guardrail, and share answered by a fallback (breaker open)."""
    rows = log.filter(pl.col("model") == "pricing")
    if rows.height == 0:
        return pl.DataFrame()
    parsed = rows.with_columns(
        pl.col("features")
        .str.json_decode(pl.Struct({"current_price": pl.Float64}))
        .struct.field("current_price"),
        pl.col("output").str.json_decode(
            pl.Struct({"price": pl.Float64, "bound_by": pl.List(pl.String)})
        ),
    ).with_columns(
        pl.col("output").struct.field("price").alias("price"),
        pl.col("output").struct.field("bound_by").list.len().alias("rules"),
    )
    return (
        parsed.group_by("version", "arm")
        .agg(
            pl.len().alias("prices"),
            (pl.col("price") / pl.col("current_price") - 1).mean().alias("mean_change"),
            (pl.col("rules") > 0).mean().alias("share_held_by_a_guardrail"),
            pl.col("fallback").is_not_null().mean().alias("fallback_share"),
            pl.col("ts").max().alias("last_price_at"),
        )
        .sort("version", "arm")
    )


@dg.asset(
    group_name="monitoring",
    ins={"prediction_log": dg.AssetIn(key=["serving", "prediction_log"])},
    deps=["pricing_promotion"],
    io_manager_key="artifact_io_manager",
    kinds={"polars"},
    check_specs=[
        dg.AssetCheckSpec(
            "no_open_breaker",
            asset="pricing_monitoring",
            description=(
                "No pricing model version's circuit breaker is open (serving opens it when a "
                "version's price changes leave its reference distribution or a guardrail is "
                "violated; an admin closes it)."
            ),
        )
    ],
)
def pricing_monitoring(
    context: dg.AssetExecutionContext, artifacts: ArtifactsResource, prediction_log: pl.DataFrame
):
    """Prices in production, per model version and arm from serving's log: prices served, mean
    change, share held by a guardrail, share answered by a fallback; and every circuit-breaker
    event (opened, closed, and the pointer moves it made) from the decision log, with its
    evidence. The check fails while a breaker is open."""
    store = artifacts.artifacts.model("pricing")
    table = pricing_production_metrics(prediction_log)
    events = [
        e
        for e in (store.log.entries(store.artifact) if store.log else [])
        if e["action"] in BREAKER_EVENTS or e.get("actor") == "circuit_breaker"
    ]
    last: dict[str, str] = {}
    for e in events:
        if e["action"] in BREAKER_EVENTS:
            last[str(e.get("version"))] = e["action"]
    open_versions = sorted(v for v, action in last.items() if action == "breaker_opened")
    rows = [
        {
            "at": e["at"],
            "action": e["action"],
            "version": e.get("version"),
            "actor": e.get("actor"),
            "reason": e.get("reason", "")[:160],
        }
        for e in events[-20:]
    ]
    yield dg.Output(
        {"production": table.to_dicts(), "open_breakers": open_versions},
        metadata={
            "by_version_arm": dg.MetadataValue.md(
                markdown_table(table.to_dicts()) if table.height else "no prices served yet"
            ),
            "breaker_events": dg.MetadataValue.md(
                markdown_table(rows) if rows else "the circuit breaker never opened"
            ),
            "open_breakers": ", ".join(open_versions) or "none",
            "canary": "a running canary serves its share of store x SKUs; it is decided on "
            "realized margin once sales respond to served prices",
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_open_breaker",
        passed=not open_versions,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"breaker open for v{', v'.join(open_versions)}" if open_versions else "all closed"
        ),
    )


def _tiering(model: str) -> Tiering | None:
    from retail_assets.models.definitions import MODEL_FAMILIES

    return next((getattr(f, "tiering", None) for f in MODEL_FAMILIES if f.name == model), None)


def retrain_keys(model: str, tiers: list[str] | None = None) -> list[str]:
    """The assets a retrain of `model` runs: its chain after the training set, and for a
    tiered model the part models of `tiers` (None: every tier) first."""
    tiering = _tiering(model)
    parts = (
        [f"{model}_{t.name}_tier_model" for t in tiering.tiers if tiers is None or t.name in tiers]
        if tiering
        else []
    )
    return [*parts, *(f"{model}_{step}" for step in RETRAIN_STEPS)]


def retrain_selection(model: str) -> dg.AssetSelection:
    return dg.AssetSelection.assets(*retrain_keys(model))


def tiers_to_retrain(
    report: dict[str, Any],
    memberships: dict[str, list[str]],
    column: str,
    parents: dict[str, dict[str, str]] | None = None,
) -> list[str] | None:
    """The tiers holding the values that drifted, when all that drifted is the level of some
    `column` segments (e.g. two categories) or of coarser segments over them (`parents`, e.g.
    a department: the tiers of its categories); None (every tier) when the problem is wider:
    the overall level, a feature, live accuracy, or a value no tier holds."""
    return tier_scope(report, memberships, column, parents)[0]


def tier_scope(
    report: dict[str, Any],
    memberships: dict[str, list[str]],
    column: str,
    parents: dict[str, dict[str, str]] | None = None,
) -> tuple[list[str] | None, str]:
    """`tiers_to_retrain` and why, in words, for the decision log."""
    if report.get("degraded"):
        return None, "every tier: live accuracy degraded"
    overall = sorted(
        {
            d["feature"]
            for d in report["feature_drift"]
            if d.get("drifted") and d.get("segment") == "overall"
        }
    )
    if overall:
        return None, f"every tier: feature(s) drifted overall ({', '.join(overall)})"
    tiers: dict[str, set[str]] = {}
    for drift in report.get("level_drift", []):
        if not drift.get("drifted"):
            continue
        segment = str(drift.get("segment", "overall"))
        segment_column, _, value = segment.partition("=")
        if segment_column == column:
            values = [value]
        elif segment_column in (parents or {}):
            values = [v for v, parent in parents[segment_column].items() if parent == value]
        else:
            return None, f"every tier: level drift in {segment}, wider than a {column}"
        for value in values:
            tier = next((t for t, held in memberships.items() if value in held), None)
            if tier is None:
                return None, f"every tier: {column}={value} drifted and no tier holds it"
            tiers.setdefault(tier, set()).add(segment)
    if not tiers:
        return None, "every tier: no level drift by segment"
    held = "; ".join(f"{t}: {', '.join(sorted(segs))}" for t, segs in sorted(tiers.items()))
    return sorted(tiers), f"the tiers holding the drifted segments ({held})"


def drift_signature(report: dict[str, Any]) -> list[str]:
    """What drifted that calls for a retrain, as sorted names: level segments, and features
    that drifted overall. A feature drifting only within a segment is reported, not acted on
    (`ModelReport.drifted_features`), so it is no new question: keyed by segment, per-department
    feature drift that flickers from day to day (found by `retail simulate`: competitor price
    features) asked for a retrain every night."""
    levels = [f"level:{d['segment']}" for d in report.get("level_drift", []) if d.get("drifted")]
    features = [
        f"feature:{d['feature']}"
        for d in report.get("feature_drift", [])
        if d.get("drifted") and d.get("segment", "overall") == "overall"
    ]
    return sorted(set(levels + features))


def answered_drift(asked: list[dict[str, Any]], report: dict[str, Any]) -> set[str]:
    """What the retrains requested within the drift window before this report (by the data's
    dates, `as_of`) were asked for."""
    now = str(report.get("as_of") or "")[:10]
    if not now:
        return set()
    since = (date.fromisoformat(now) - timedelta(days=WINDOW_DAYS)).isoformat()
    out: set[str] = set()
    for entry in asked:
        evidence = entry.get("evidence", {})
        when = str(evidence.get("as_of") or "")[:10]
        if when and since <= when <= now:
            out.update(evidence.get("drift") or [])
    return out


def latest_memberships(
    instance: dg.DagsterInstance, model: str
) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """Per tier, the values its newest membership materialization holds, and the coarser
    segments over them (both empty when the tiers were never computed)."""
    tiering = _tiering(model)
    if tiering is None:
        return {}, {}
    out, parents = {}, {}
    for tier in tiering.tiers:
        event = instance.get_latest_materialization_event(dg.AssetKey(f"{model}_{tier.name}_tier"))
        materialization = event.asset_materialization if event else None
        if materialization is None or tiering.column not in materialization.metadata:
            return {}, {}
        out[tier.name] = list(materialization.metadata[tiering.column].value)
        if "parents" in materialization.metadata:
            parents = dict(materialization.metadata["parents"].value)
    return out, parents


def answers_monitoring(roles, asked: list[dict[str, Any]]) -> bool:
    """Whether the running challenger came after monitoring's newest retrain request (so it
    is that request's answer; both times on the platform clock)."""
    if roles.challenger is None or not roles.challenger.since or not asked:
        return False
    since = datetime.fromisoformat(roles.challenger.since)
    return since >= datetime.fromisoformat(str(asked[-1]["at"]))


def _running_canary(artifacts: ArtifactsResource, model: str) -> str | None:
    return canary.running_canary(artifacts.artifacts.model(model))


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    target=retrain_selection("demand")
    | retrain_selection("fraud")
    | retrain_selection("recommend"),
    description=(
        "Requests a retraining run of exactly the model whose newest monitoring report calls "
        "for it (drift beyond the season or live performance below its offline evaluation), "
        "once per report and not again for a drift a retrain already answered, and records "
        "`retrain_requested` in the decision log. For a tiered "
        "model (demand) only the tiers holding the drifted categories retrain, when the "
        "drift is that narrow."
    ),
)
def monitoring_retrain_sensor(context: dg.SensorEvaluationContext, artifacts: ArtifactsResource):
    requests, waiting = [], []
    for model in MONITORED_MODELS:
        store = artifacts.artifacts.monitoring(model)
        latest = latest_report(store)
        if latest is None:
            continue
        version, report = latest
        if "retrain" not in report.get("actions", []):
            continue
        run_key = f"retrain-{model}-{version}"
        tiering = _tiering(model)
        tiers, scope, memberships = None, None, {}
        if tiering is not None:
            memberships, parents = latest_memberships(context.instance, model)
            tiers, scope = tier_scope(report, memberships, tiering.column, parents)
        asked = store.log.entries(f"monitoring/{model}", {"retrain_requested"})
        if any(e.get("evidence", {}).get("run_key") == run_key for e in asked):
            continue
        signature = drift_signature(report)
        unanswered = set(signature) - answered_drift(asked, report)
        # While a canary is undecided, live degradation waits for its verdict (a new challenger
        # would replace the canary before its test decides), and so does a new drift of a
        # model whose canary needs weeks of labels (`DRIFT_REPLACES_CANARY`). Once it ends,
        # what is still unanswered asks again.
        undecided = _running_canary(artifacts, model)
        replaces = (
            unanswered
            and DRIFT_REPLACES_CANARY[model]
            and not answers_monitoring(artifacts.artifacts.model(model).roles(), asked)
        )
        if undecided is not None and not replaces:
            waiting.append(f"{model}: {undecided}")
            continue
        if not report.get("degraded") and not unanswered:
            # Nothing drifted that a retrain in the drift window has not already answered: the
            # data stays drifted for the window's length, so every later report repeats it,
            # and retraining on one more day would learn nothing new (found by `retail
            # simulate`: demand retrained every night for one competitor-price shift). A new
            # drift, or live degradation, asks again.
            continue
        store.record(
            "retrain_requested",
            version,
            reason="; ".join(report["reasons"]),
            actor="monitoring_retrain_sensor",
            evidence={
                "run_key": run_key,
                "model": model,
                "champion": report.get("version"),
                "drift": signature,
                "as_of": report.get("as_of"),
                **(
                    {
                        "tiers": tiers or [t.name for t in tiering.tiers],
                        "tier_scope": scope,
                        # What each tier held when it was asked (tiers are re-scored nightly).
                        "tier_memberships": memberships,
                    }
                    if tiering
                    else {}
                ),
            },
        )
        requests.append(
            dg.RunRequest(
                run_key=run_key,
                asset_selection=[dg.AssetKey(k) for k in retrain_keys(model, tiers)],
                tags={"retail/trigger": "monitoring", "retail/model": model},
            )
        )
    if not requests:
        return dg.SkipReason(
            "no monitoring report calls for a retrain that was not requested"
            + (f" ({'; '.join(waiting)})" if waiting else "")
        )
    return requests


defs = dg.Definitions(
    assets=[
        demand_monitoring,
        fraud_monitoring,
        recommend_monitoring,
        search_monitoring,
        assistant_monitoring,
        pricing_monitoring,
    ],
    sensors=[monitoring_retrain_sensor],
)
