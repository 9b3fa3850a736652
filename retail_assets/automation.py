"""What runs when, for the whole code location, in one place: freshness policies and
declarative automation conditions per asset group, the automation sensor, and the scheduled
retrains.

* New data materializes only what depends on it. `landed_feeds_sensor` loads the raw tables
  of the feeds that landed; from there every asset downstream is `eager` (it runs once its
  inputs updated) unless a blocking check upstream failed: a corrupt feed stops at its raw
  table and nothing downstream runs.
* The LLM eval suite reruns on a new RAG index or prompt version (content-versioned assets),
  not on every rebuild of the marts upstream of them (`on_new_content`).
* Models are not retrained on every new mart. A model's chain (train -> evaluate -> export ->
  gate) runs when monitoring asks for it (`monitoring_retrain_sensor`: drift or live
  degradation of exactly that model) and on its cadence, each candidate through the gate and
  a canary: fraud weekly on its rolling window (a schedule); demand in tiers, each tier's
  part model on its own cron (fast categories weekly, stable ones monthly) or when the
  categorical codes change, and the demand chain after any part retrained.
* Every asset has a freshness policy fitting its cadence, so the UI shows what is late.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from retail_assets.models.lifecycle.assets import (
    MAX_AGE_DAYS,
    RETRAIN_CRON,
    RETRAIN_ON_NEW_VERSION_OF,
    RUNS_AFTER,
)
from retail_assets.monitoring.assets import retrain_selection
from retail_assets.monitoring.canary import running_canary
from retail_assets.resources import ArtifactsResource


def _window(fail_hours: float, warn_hours: float) -> dg.FreshnessPolicy:
    return dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=fail_hours), warn_window=timedelta(hours=warn_hours)
    )


# Daily data: a day late warns, a day and a half fails (raw feeds keep their own policy).
DAILY = _window(48, 30)
# Weekly work (models retrain weekly at least, the search index and eval reports follow
# catalog and prompt changes): a week and a day fails.
WEEKLY = _window(8 * 24, 7 * 24 + 6)

FRESHNESS_BY_GROUP = {
    "staging": DAILY,
    "intermediate": DAILY,
    "marts": DAILY,
    "transform": DAILY,
    "serving": DAILY,  # online feature tables and the prediction log
    "monitoring": DAILY,
    "models": WEEKLY,
    "search": WEEKLY,
    "assistant": WEEKLY,
}

# Model-chain assets run as a chain (monitoring sensor, schedules), never one by one on an
# upstream change: re-gating an old model on a new training set would be meaningless.
CHAIN_STEPS = ("_model", "_evaluation", "_onnx", "_promotion")

# Assets fed by something outside Dagster (serving writes the prediction log): loaded daily,
# after which monitoring (eager) looks at the day's traffic.
DAILY_CRON = "0 2 * * *"
DAILY_CRON_ASSETS = {dg.AssetKey(["serving", "prediction_log"])}

EAGER = dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed()


def on_new_content(*versioned_deps: str) -> dg.AutomationCondition:
    """Eager, but triggered only by a new *data version* of the given dependencies (assets
    that version their output by content), not by every rebuild upstream of them. The LLM eval
    suite costs minutes at default scale: it reruns for a new RAG index or prompt version,
    not for a new day of sales that left the catalog the index holds as it was."""
    changed = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.data_version_changed()
    ).allow(dg.AssetSelection.assets(*versioned_deps))
    return (
        (dg.AutomationCondition.newly_missing() | changed).since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label(f"on new content of {', '.join(versioned_deps)}")


CONTENT_TRIGGERED = {
    dg.AssetKey("assistant_eval_report"): on_new_content(
        "assistant_rag_index", "assistant_prompt_versions"
    ),
}


def after(*keys: str) -> dg.AutomationCondition:
    """Runs once any of `keys` updated (or will, in the same tick), nothing it needs is
    missing or in progress, and no blocking check upstream failed: a model chain's next
    step."""
    return (
        dg.AutomationCondition.any_deps_updated()
        .allow(dg.AssetSelection.assets(*keys))
        .since_last_handled()
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label(f"after {', '.join(keys)}")


def tier_retrain(cron: str, membership: str) -> dg.AutomationCondition:
    """A tier's part model: on its cron once its inputs updated since the tick, or when its
    `membership` asset has a new data version (the categorical codes changed, so the part's
    trees would split on codes that now mean other values)."""
    codes_changed = dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.data_version_changed()
    ).allow(dg.AssetSelection.assets(membership))
    return (
        (
            dg.AutomationCondition.on_cron(cron)
            | (dg.AutomationCondition.newly_missing() | codes_changed).since_last_handled()
        )
        & ~dg.AutomationCondition.any_deps_missing()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label(f"on {cron} or new categorical codes")


def _is_chain_step(spec: dg.AssetSpec) -> bool:
    return spec.group_name == "models" and spec.key.path[-1].endswith(CHAIN_STEPS)


def apply_policies(spec: dg.AssetSpec) -> dg.AssetSpec:
    """Freshness by group where the asset has none of its own; eager automation for
    everything downstream of the raw tables except the model chains."""
    changes = {}
    metadata = spec.metadata or {}
    if spec.freshness_policy is None and MAX_AGE_DAYS in metadata:
        days = int(metadata[MAX_AGE_DAYS])
        changes["freshness_policy"] = _window(days * 24 + 24, days * 24)
    elif spec.freshness_policy is None and spec.group_name in FRESHNESS_BY_GROUP:
        changes["freshness_policy"] = FRESHNESS_BY_GROUP[spec.group_name]
    if spec.automation_condition is None:
        if RETRAIN_CRON in metadata:
            changes["automation_condition"] = tier_retrain(
                str(metadata[RETRAIN_CRON]), str(metadata[RETRAIN_ON_NEW_VERSION_OF])
            )
        elif RUNS_AFTER in metadata:
            changes["automation_condition"] = after(*metadata[RUNS_AFTER])
        elif spec.key in CONTENT_TRIGGERED:
            changes["automation_condition"] = CONTENT_TRIGGERED[spec.key]
        elif spec.key in DAILY_CRON_ASSETS:
            changes["automation_condition"] = dg.AutomationCondition.on_cron(DAILY_CRON)
        elif spec.group_name != "raw" and not _is_chain_step(spec):
            changes["automation_condition"] = EAGER
    return spec.replace_attributes(**changes) if changes else spec


automation_sensor = dg.AutomationConditionSensorDefinition(
    "default_automation_condition_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
    description=(
        "Evaluates every asset's automation condition: what depends on new data runs once its "
        "inputs updated and no blocking check upstream failed."
    ),
)


def retrain_schedule(model: str, cron: str) -> dg.ScheduleDefinition:
    job = dg.define_asset_job(f"{model}_retrain", selection=retrain_selection(model))

    @dg.schedule(
        name=f"{model}_weekly_retrain",
        job=job,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            f"Retrains {model} on its latest training set every week; the candidate goes through "
            "the promotion gate and a canary like any other. A week whose canary has not been "
            "decided is skipped: a new challenger would replace it before its test decides "
            "(the fraud canary waits about two weeks for labels)."
        ),
    )
    def _schedule(context: dg.ScheduleEvaluationContext, artifacts: ArtifactsResource):
        undecided = running_canary(artifacts.artifacts.model(model))
        if undecided:
            return dg.SkipReason(f"{model}: {undecided}")
        return dg.RunRequest()

    return _schedule


# Early Monday, after the weekend's data has landed: fraud (its window rolls daily), then the
# recommendation ranker (a week of new engagement). Demand retrains by tier instead: the cron
# of each tier's part model (models/demand/tiers.py).
SCHEDULES = [retrain_schedule("fraud", "0 3 * * 1"), retrain_schedule("recommend", "0 5 * * 1")]
