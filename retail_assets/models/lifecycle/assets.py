"""Turn a model family into its asset chain.

    <name>_training_set -> <name>_model -> <name>_evaluation -> <name>_onnx -> <name>_promotion

All in group `models`. The ONNX asset carries the blocking check `onnx_matches_lightgbm`, so a
bundle whose predictions drift from the trained model never reaches the promotion gate.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import polars as pl

from retail_assets.core.gate import GateResult
from retail_assets.core.markdown import markdown_table
from retail_assets.core.store import ArtifactStore, Rollout
from retail_assets.models.lifecycle.bundle import (
    EXPLAIN_FILE,
    LoadedBundle,
    feature_reference,
    validate_bundle,
)
from retail_assets.models.lifecycle.gate import decide, headline
from retail_assets.models.lifecycle.onnx_export import (
    INPUT_NAME,
    parity_with,
    single_row_latency_us,
)
from retail_assets.models.lifecycle.operations import Lifecycle
from retail_assets.models.lifecycle.reporting import (
    evaluation_as_dict,
    metrics_table,
    model_card,
    segment_table,
    windows_table,
)
from retail_assets.models.lifecycle.resource import LifecycleResource
from retail_assets.models.lifecycle.spec import (
    Evaluation,
    ModelFamily,
    ModelVersionRef,
    TrainedModel,
    TrainingSet,
)
from retail_assets.models.lifecycle.tiers import (
    Tiering,
    TierMembership,
    TierModel,
    compose,
    train_tier,
)

# onnxruntime must reproduce LightGBM to this max abs diff on every test row: float64 tree
# ensembles agree to ~1e-15, so 1e-5 only fails on a wrong graph, never on rounding.
PARITY_TOLERANCE = 1e-5
# Rows whose expected outputs the bundle carries, for serving's self-test at every load.
SELF_TEST_ROWS = 8


@dataclass
class RegisteredModel:
    model: TrainedModel
    ref: ModelVersionRef


@dataclass
class ExportedBundle:
    ref: ModelVersionRef
    path: str
    parity: dict[str, float]
    latency_us: dict[str, float]

    @property
    def parity_passed(self) -> bool:
        return bool(self.parity) and max(self.parity.values()) < PARITY_TOLERANCE


class ModelTrainingConfig(dg.Config):
    shuffle_labels_seed: int | None = None
    """Negative control: permute the training labels with this seed. The resulting challenger
    is meaningless and the promotion gate must refuse it."""


def _key_string(key: tuple[str, ...]) -> str:
    return "/".join(key)


def build_lifecycle_assets(family: ModelFamily) -> tuple[list[dg.AssetsDefinition], list]:
    name = family.name
    ins = {key[-1]: dg.AssetIn(key=list(key)) for key in family.source_assets}
    source_by_param = {key[-1]: _key_string(key) for key in family.source_assets}

    @dg.asset(
        name=f"{name}_training_set",
        group_name="models",
        ins=ins,
        io_manager_key="artifact_io_manager",
        kinds={"polars"},
        description=(
            f"{family.description}\n\nPoint-in-time correct training examples built from the "
            "feature marts, with time-ordered train / validation / test windows."
        ),
    )
    def training_set_asset(
        context: dg.AssetExecutionContext, **sources: pl.DataFrame
    ) -> TrainingSet:
        training_set = family.build_training_set(
            {source_by_param[k]: v for k, v in sources.items()}
        )
        context.add_output_metadata(
            {
                "windows": dg.MetadataValue.md(windows_table(training_set)),
                "dagster/row_count": training_set.frame.height,
                "features": len(training_set.feature_columns),
                "feature_list": dg.MetadataValue.md(
                    ", ".join(f"`{c}`" for c in training_set.feature_columns)
                ),
                "info": dg.MetadataValue.json(
                    json.loads(json.dumps(training_set.info, default=str))
                ),
            }
        )
        return training_set

    training_set_input = dg.AssetIn(key=f"{name}_training_set")
    tiering: Tiering | None = getattr(family, "tiering", None)
    tier_assets = build_tier_assets(family, tiering, training_set_input) if tiering else []
    part_ins = (
        {f"{t.name}_part": dg.AssetIn(key=f"{name}_{t.name}_tier_model") for t in tiering.tiers}
        if tiering
        else {}
    )
    # A tiered family's chain runs after any tier's part retrained (see automation.py).
    chain_after = (
        {
            "model": [f"{name}_{t.name}_tier_model" for t in tiering.tiers],
            "evaluation": [f"{name}_model"],
            "onnx": [f"{name}_evaluation"],
            "promotion": [f"{name}_onnx"],
        }
        if tiering
        else {}
    )

    def runs_after(step: str) -> dict[str, Any]:
        return {RUNS_AFTER: chain_after[step]} if step in chain_after else {}

    @dg.asset(
        name=f"{name}_model",
        group_name="models",
        io_manager_key="artifact_io_manager",
        ins={"training_set": training_set_input, **part_ins},
        kinds={"lightgbm", "mlflow"},
        metadata=runs_after("model"),
        description=(
            f"LightGBM {name} model trained on the training window, logged to MLflow and "
            "registered as a new version with alias `challenger`."
            + (
                f"\n\nTiered: the newest part model of every tier "
                f"({', '.join(t.name for t in tiering.tiers)}) composed into one routed model "
                f"(rows go to the part that learned their {tiering.column})."
                if tiering
                else ""
            )
        ),
    )
    def model_asset(
        context: dg.AssetExecutionContext,
        config: ModelTrainingConfig,
        lifecycle: LifecycleResource,
        training_set: TrainingSet,
        **parts: TierModel,
    ) -> RegisteredModel:
        if tiering is None:
            model = family.train(training_set, shuffle_labels_seed=config.shuffle_labels_seed)
        else:
            model = compose_tiers(family, tiering, training_set, parts, config.shuffle_labels_seed)
            context.add_output_metadata(
                {
                    "routing": dg.MetadataValue.md(
                        markdown_table(
                            [
                                {"value": v, "part": t}
                                for v, t in sorted(model.extras["routing"].items())
                            ]
                        )
                    ),
                    "parts": dg.MetadataValue.md(
                        markdown_table(list(model.extras["tiers"].values()))
                    ),
                }
            )
        tags = {"retail.dagster_run_id": context.run.run_id}
        if config.shuffle_labels_seed is not None:
            tags["retail.negative_control"] = f"shuffled labels, seed {config.shuffle_labels_seed}"
        ref = lifecycle.lifecycle().registry.register(name, model, training_set, tags=tags)
        context.add_output_metadata(
            {
                "mlflow_version": ref.version,
                "mlflow_run_id": ref.run_id,
                "outputs": ", ".join(model.output_names),
                "validation_metrics": dg.MetadataValue.md(
                    markdown_table(
                        [{"metric": k, "value": v} for k, v in model.validation_metrics.items()]
                    )
                ),
                "params": dg.MetadataValue.json(json.loads(json.dumps(model.params, default=str))),
                "negative_control": config.shuffle_labels_seed is not None,
            }
        )
        return RegisteredModel(model=model, ref=ref)

    @dg.asset(
        name=f"{name}_evaluation",
        group_name="models",
        metadata=runs_after("evaluation"),
        io_manager_key="artifact_io_manager",
        ins={"training_set": training_set_input, "registered": dg.AssetIn(key=f"{name}_model")},
        kinds={"mlflow"},
        description=(
            "Held-out test-window metrics of the challenger, overall and per segment, against "
            "honest baselines and the current champion; bias audit, feature importance and "
            "per-prediction explanations."
        ),
    )
    def evaluation_asset(
        context: dg.AssetExecutionContext,
        lifecycle: LifecycleResource,
        training_set: TrainingSet,
        registered: RegisteredModel,
    ) -> Evaluation:
        services = lifecycle.lifecycle()
        champion_version = services.champion(name)
        evaluation = evaluate_challenger(
            family, services.store(name), training_set, registered, champion_version
        )
        services.registry.log_evaluation(registered.ref, evaluation)
        context.add_output_metadata(
            {
                "mlflow_version": registered.ref.version,
                "champion_version": champion_version or "none",
                "test_window": dg.MetadataValue.json(evaluation.test_window),
                "metrics": dg.MetadataValue.md(metrics_table(evaluation)),
                "by_segment": dg.MetadataValue.md(segment_table(evaluation)),
                "bias_audit": dg.MetadataValue.json(
                    json.loads(json.dumps(evaluation.bias_audit, default=str))
                ),
                "top_features": dg.MetadataValue.md(
                    markdown_table(evaluation.feature_importance[:15])
                ),
                "explanations": dg.MetadataValue.md(markdown_table(evaluation.explanations[:20])),
                f"test_{evaluation.primary_metric}": evaluation.overall["challenger"].get(
                    evaluation.primary_metric
                ),
            }
        )
        return evaluation

    @dg.asset(
        name=f"{name}_onnx",
        group_name="models",
        metadata=runs_after("onnx"),
        io_manager_key="artifact_io_manager",
        ins={
            "training_set": training_set_input,
            "registered": dg.AssetIn(key=f"{name}_model"),
            "evaluation": dg.AssetIn(key=f"{name}_evaluation"),
        },
        kinds={"onnx"},
        check_specs=[
            dg.AssetCheckSpec(
                "onnx_matches_lightgbm",
                asset=f"{name}_onnx",
                blocking=True,
                description=(
                    f"onnxruntime reproduces LightGBM on every test-window row within "
                    f"{PARITY_TOLERANCE:g} (max abs diff); single-row latency recorded."
                ),
            )
        ],
        description=(
            "ONNX export of the challenger and its serving bundle (model.onnx, signature.json, "
            "metrics.json, reference.json, model card), written atomically to the bundle store."
        ),
    )
    def onnx_asset(
        context: dg.AssetExecutionContext,
        lifecycle: LifecycleResource,
        training_set: TrainingSet,
        registered: RegisteredModel,
        evaluation: Evaluation,
    ):
        services = lifecycle.lifecycle()
        model, ref = registered.model, registered.ref
        onnx_model = family.to_onnx(model)
        test_features = training_set.features(training_set.split("test"))
        diffs = parity_with(onnx_model, model.outputs(test_features), test_features)
        latency = single_row_latency_us(onnx_model, test_features[0]) if len(test_features) else {}
        files = _bundle_files(
            family, ref, model, training_set, evaluation, onnx_model, diffs, latency
        )
        path = services.store(name).write(ref.version, files)
        worst = max(diffs.values()) if diffs else float("nan")
        passed = bool(diffs) and worst < PARITY_TOLERANCE
        yield dg.Output(
            ExportedBundle(ref=ref, path=str(path), parity=diffs, latency_us=latency),
            metadata={
                "bundle": str(path),
                "mlflow_version": ref.version,
                "max_abs_diff": worst,
                "parity_rows": len(test_features),
                "latency_p50_us": latency.get("p50_us"),
                "latency_p99_us": latency.get("p99_us"),
            },
        )
        yield dg.AssetCheckResult(
            check_name="onnx_matches_lightgbm",
            passed=passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"max |onnx - lightgbm| = {worst:.3g} over {len(test_features)} test rows "
                f"(tolerance {PARITY_TOLERANCE:g}); single-row p50 {latency.get('p50_us', float('nan')):.1f} µs"
            ),
            metadata={
                **{f"max_abs_diff_{k}": v for k, v in diffs.items()},
                **{f"latency_{k}": v for k, v in latency.items()},
            },
        )

    @dg.asset(
        name=f"{name}_promotion",
        group_name="models",
        metadata=runs_after("promotion"),
        io_manager_key="artifact_io_manager",
        ins={
            "evaluation": dg.AssetIn(key=f"{name}_evaluation"),
            "exported": dg.AssetIn(key=f"{name}_onnx"),
            "training_set": training_set_input,
        },
        description=(
            "The promotion gate: the challenger becomes `champion` (serving pointer, MLflow "
            "alias following) only if it beats the strongest baselines, absolute thresholds "
            "hold, no segment regresses beyond tolerance against the champion, ONNX parity "
            "passed and the bundle is complete. When the trained model loses to the best simple "
            "forecast, that forecast is registered, gated and served as the champion instead "
            "(say so plainly, never serve the worse model). Every decision goes to the "
            "decision log with the gate's table."
        ),
    )
    def promotion_asset(
        context: dg.AssetExecutionContext,
        lifecycle: LifecycleResource,
        evaluation: Evaluation,
        exported: ExportedBundle,
        training_set: TrainingSet,
    ) -> dict[str, Any]:
        decision, record, champion_before = promote_or_refuse(
            lifecycle.lifecycle(), family, evaluation, exported, context.run.run_id, training_set
        )
        context.add_output_metadata(
            {
                "decision": record.get("action", "promote" if decision.passed else "refuse"),
                "served": record.get("reason", ""),
                "challenger_version": exported.ref.version,
                "champion_before": champion_before or "none",
                "champion_after": record["champion_after"] or "none",
                "reasons": dg.MetadataValue.md(
                    "\n".join(f"- {r}" for r in decision.reasons) or "all rules passed"
                ),
                "gate_checks": dg.MetadataValue.md(decision.markdown()),
                "metrics": dg.MetadataValue.md(metrics_table(evaluation)),
            }
        )
        return {
            **decision.as_dict(),
            "promote": decision.passed,
            "version": exported.ref.version,
            "champion_before": champion_before,
            "record": record,
        }

    return [
        training_set_asset,
        *tier_assets,
        model_asset,
        evaluation_asset,
        onnx_asset,
        promotion_asset,
    ], []


# Asset metadata naming the assets whose update starts this one (automation.py reads it).
RUNS_AFTER = "retail/runs_after"
# Asset metadata of a tier's part model: its retrain cron and how old it may get.
RETRAIN_CRON = "retail/retrain_cron"
MAX_AGE_DAYS = "retail/max_age_days"
RETRAIN_ON_NEW_VERSION_OF = "retail/retrain_on_new_version_of"


def build_tier_assets(
    family: ModelFamily, tiering: Tiering, training_set_input: dg.AssetIn
) -> list[dg.AssetsDefinition]:
    """`<name>_tiers` (one membership asset per tier, versioned by the categorical codes) and
    one part-model asset per tier, `<name>_<tier>_tier_model`, each with its own cadence."""
    name = family.name
    membership_key = {t.name: f"{name}_{t.name}_tier" for t in tiering.tiers}

    @dg.multi_asset(
        name=f"{name}_tiers",
        group_name="models",
        ins={
            "daily": dg.AssetIn(
                key=list(tiering.source), metadata={"columns": list(tiering.source_columns)}
            )
        },
        outs={
            membership_key[t.name]: dg.AssetOut(
                io_manager_key="artifact_io_manager",
                description=f"{tiering.description}\n\nThis tier ({t.name}, {t.cadence}): "
                f"{t.description}",
            )
            for t in tiering.tiers
        },
    )
    def tiers_asset(context: dg.AssetExecutionContext, daily: pl.DataFrame):
        memberships = {m.tier: m for m in tiering.assign(daily)}
        for tier in tiering.tiers:
            membership = memberships[tier.name]
            yield dg.Output(
                membership,
                output_name=membership_key[tier.name],
                data_version=dg.DataVersion(membership.codes_version()),
                metadata={
                    "values": len(membership.values),
                    tiering.column: dg.MetadataValue.json(membership.values),
                    "parents": dg.MetadataValue.json(membership.parents),
                    "evidence": dg.MetadataValue.md(
                        markdown_table(membership.evidence) if membership.evidence else "none"
                    ),
                    "cadence": f"{tier.cadence} ({tier.cron})",
                },
            )

    def part_asset(tier) -> dg.AssetsDefinition:
        @dg.asset(
            name=f"{name}_{tier.name}_tier_model",
            group_name="models",
            io_manager_key="artifact_io_manager",
            ins={
                "training_set": training_set_input,
                "membership": dg.AssetIn(key=membership_key[tier.name]),
            },
            kinds={"lightgbm"},
            metadata={
                RETRAIN_CRON: tier.cron,
                RETRAIN_ON_NEW_VERSION_OF: membership_key[tier.name],
                MAX_AGE_DAYS: tier.max_age_days,
            },
            description=(
                f"The {tier.name} tier's part of the {name} model, retrained {tier.cadence} "
                f"(`{tier.cron}`) on the rows of its {tiering.column} values only, or when the "
                f"categorical codes change. {tier.description}"
            ),
        )
        def part(training_set: TrainingSet, membership: TierMembership) -> dg.Output:
            trained = train_tier(membership, training_set, family.train)
            validation = trained.model.validation_metrics if trained.model else {}
            return dg.Output(
                trained,
                metadata={
                    "values": len(trained.values),
                    "rows": trained.rows,
                    tiering.column: dg.MetadataValue.json(trained.values),
                    "train_window": dg.MetadataValue.json(trained.windows.get("train", {})),
                    "validation": dg.MetadataValue.md(
                        markdown_table([{"metric": k, "value": v} for k, v in validation.items()])
                        if validation
                        else "empty tier: nothing to train"
                    ),
                },
            )

        return part

    return [tiers_asset, *(part_asset(t) for t in tiering.tiers)]


def compose_tiers(
    family: ModelFamily,
    tiering: Tiering,
    training_set: TrainingSet,
    parts: dict[str, TierModel],
    shuffle_labels_seed: int | None = None,
) -> TrainedModel:
    """The routed model of the stored tier parts; the negative control retrains every tier
    on shuffled labels (same tiers) instead."""
    by_tier = {part.tier: part for part in parts.values()}
    if shuffle_labels_seed is not None:
        by_tier = {
            tier: train_tier(
                TierMembership(tier, part.column, part.values, training_set.encodings),
                training_set,
                family.train,
                shuffle_labels_seed,
            )
            for tier, part in by_tier.items()
        }
    return compose(training_set, by_tier, tiering.column)


def evaluate_challenger(
    family: ModelFamily,
    store: ArtifactStore,
    training_set: TrainingSet,
    registered: RegisteredModel,
    champion_version: str | None,
) -> Evaluation:
    """The family's evaluation of the challenger on the test window, with the champion's
    bundle scored on the same rows (when there is another champion)."""
    test = training_set.split("test")
    predictions: dict[str, dict[str, np.ndarray]] = {
        "challenger": family.predict(registered.model, test)
    }
    notes = []
    if champion_version is not None and champion_version != registered.ref.version:
        try:
            bundle = LoadedBundle(store.version_dir(champion_version))
            champion_outputs = bundle.predict_frame(test)
            threshold = bundle.signature.get("decision_threshold")
            if threshold is not None:
                champion_outputs["threshold"] = np.array([threshold], dtype=np.float64)
            predictions["champion"] = champion_outputs
        except (FileNotFoundError, KeyError) as exc:
            notes.append(f"champion v{champion_version} could not be scored: {exc}")
    evaluation = family.evaluate(training_set, predictions, registered.model)
    evaluation.notes.extend(notes)
    if champion_version:
        evaluation.notes.append(f"champion compared: v{champion_version}")
    return evaluation


def promote_or_refuse(
    lifecycle: Lifecycle,
    family: ModelFamily,
    evaluation: Evaluation,
    exported: ExportedBundle,
    run_id: str,
    training_set: TrainingSet | None = None,
) -> tuple[GateResult, dict[str, Any], str | None]:
    """Apply the family's gate; promote the challenger or record the refusal (offering a
    servable refused bundle as challenger). Returns (gate result, decision record, champion
    before)."""
    name, ref = family.name, exported.ref
    champion_before = lifecycle.champion(name)
    has_champion = champion_before is not None and champion_before != ref.version
    decision = decide(
        evaluation,
        family.gate_rules,
        parity_passed=exported.parity_passed,
        bundle_problems=validate_bundle(Path(exported.path)),
        has_champion=has_champion,
    )
    evidence = {
        "mlflow_run_id": ref.run_id,
        "dagster_run_id": run_id,
        "metrics_challenger": evaluation.overall.get("challenger", {}),
        "metrics_champion": evaluation.overall.get("champion", {}),
        "gate": decision.table(),
        "headline": headline(evaluation),
    }
    if decision.passed and has_champion:
        # Never straight to 100 %: a canary share first; the sequential test on live traffic
        # (monitoring/canary.py) promotes it, keeps it going or rolls it back.
        store = lifecycle.store(name)
        rollout = canary_rollout(store)
        record = store.offer(
            ref.version,
            reason=f"passed every gate rule: canary on {rollout.share:.0%} of traffic until "
            "the sequential test on live data decides",
            actor="promotion_gate",
            rollout=rollout,
            action="canary_started",
            evidence=evidence,
        )
        lifecycle.sync_aliases(name)
    elif decision.passed:
        record = lifecycle.install_champion(
            name,
            ref.version,
            action="promote",
            reason="passed every gate rule (first champion: beats its baseline)",
            actor="promotion_gate",
            evidence=evidence,
        )
    else:
        record = lifecycle.record_refusal(name, ref.version, decision.reasons, evidence)
        # The best baseline is served when it is the better model (the challenger lost to it
        # overall), and on a first deployment whatever refused the challenger: a gated simple
        # forecast beats serving nothing.
        lost = _lost_to_baselines(decision)
        if training_set is not None and (lost or not has_champion):
            baseline = serve_best_baseline(
                lifecycle,
                family,
                training_set,
                evaluation,
                champion_before,
                run_id,
                why="no trained model beat the best simple forecast"
                if lost
                else "the trained model was refused (" + "; ".join(decision.reasons) + ") and "
                "nothing is served yet",
            )
            if baseline is not None:
                decision, record = baseline
    return decision, record, champion_before


# Share of traffic a challenger that passed the gate serves first (sticky by entity), unless
# the store's rollout names another share (`retail models` / the admin API set it): enough
# predictions for the sequential test within days at the tiny scale, small enough that a bad
# model harms one customer in five at most until the test rolls it back.
DEFAULT_CANARY_SHARE = 0.2


def canary_rollout(store: ArtifactStore) -> Rollout:
    configured = store.roles().rollout
    share = configured.share if configured.share > 0 else DEFAULT_CANARY_SHARE
    return Rollout("canary", share, configured.min_seconds)


def _lost_to_baselines(decision: GateResult) -> bool:
    """The challenger did not beat the best baseline overall (a loss in one segment alone
    refuses the challenger but does not make a baseline the better model)."""
    return any(
        not c.passed and c.scope == "overall" and " the best of " in c.rule for c in decision.checks
    )


def serve_best_baseline(
    lifecycle: Lifecycle,
    family: ModelFamily,
    training_set: TrainingSet,
    evaluation: Evaluation,
    champion: str | None,
    run_id: str,
    why: str = "no trained model beat the best simple forecast",
) -> tuple[GateResult, dict[str, Any]] | None:
    """When the trained model does not beat the best simple forecast (or, on a first
    deployment, is refused for any reason), that forecast is the better model: register it (ONNX graph of the baseline), bundle it, gate it like any
    candidate (floors and no regression against the champion; it does not have to beat
    itself) and promote it, saying so plainly. None when the family has no servable
    baselines or the current champion already beats the best baseline."""
    build = getattr(family, "baseline_champion", None)
    if build is None:
        return None
    baseline = build(training_set, evaluation)
    name = family.name
    metric = evaluation.primary_metric
    incumbent = evaluation.overall.get("champion", {}).get(metric)
    candidate = baseline.evaluation.overall["challenger"].get(metric)
    if champion is not None and incumbent is not None and candidate is not None:
        better = (
            candidate > incumbent
            if evaluation.higher_is_better.get(metric)
            else (candidate < incumbent)
        )
        if not better:
            return None  # the champion already beats the best baseline: it stays
    ref = lifecycle.registry.register_onnx(
        name,
        baseline.onnx_model,
        training_set,
        params={"baseline": baseline.name, **baseline.params},
        tags={"retail.baseline": baseline.name, "retail.dagster_run_id": run_id},
    )
    model = TrainedModel(
        boosters={},
        feature_columns=list(training_set.feature_columns),
        params={"baseline": baseline.name, **baseline.params},
        validation_metrics={},
        extras={"baseline": baseline.name},
    )
    test_features = training_set.features(training_set.split("test"))
    onnx_out = _onnx_outputs(baseline.onnx_model, test_features)
    expected = baseline.predict(test_features)
    diffs = {k: float(np.max(np.abs(onnx_out[k] - expected[k]))) for k in expected}
    files = _bundle_files(
        family,
        ref,
        model,
        training_set,
        baseline.evaluation,
        baseline.onnx_model,
        diffs,
        {},
        outputs_fn=baseline.predict,
    )
    path = lifecycle.store(name).write(ref.version, files)
    has_champion = champion is not None
    decision = decide(
        baseline.evaluation,
        [r for r in family.gate_rules if not r.beat_baseline],
        parity_passed=bool(diffs) and max(diffs.values()) < PARITY_TOLERANCE,
        bundle_problems=validate_bundle(path),
        has_champion=has_champion,
    )
    evidence = {
        "mlflow_run_id": ref.run_id,
        "dagster_run_id": run_id,
        "baseline": baseline.name,
        "metrics_challenger": baseline.evaluation.overall.get("challenger", {}),
        "metrics_champion": baseline.evaluation.overall.get("champion", {}),
        "gate": decision.table(),
        "headline": headline(baseline.evaluation),
    }
    if not decision.passed:
        return decision, lifecycle.record_refusal(name, ref.version, decision.reasons, evidence)
    reason = f"{why} ({baseline.name}); serving {baseline.name} itself as the champion"
    record = lifecycle.install_champion(
        name,
        ref.version,
        action="promote",
        reason=reason,
        actor="promotion_gate",
        evidence=evidence,
    )
    return decision, record


def _onnx_outputs(onnx_model, features: np.ndarray) -> dict[str, np.ndarray]:
    from retail_assets.models.lifecycle.bundle import session

    sess = session(onnx_model)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {INPUT_NAME: features}), strict=True))


def _encoding(training_set: TrainingSet, column: str) -> dict[str, Any]:
    """How a categorical feature is encoded: `<source>_code` = index of the source value in
    `categories`, -1 when unknown. Serving encodes raw request values with exactly this."""
    source = column.removesuffix("_code")
    categories = training_set.encodings.get(column) or training_set.encodings.get(source)
    if categories is None:
        return {}
    return {"source": source, "categories": categories}


def _bundle_files(
    family: ModelFamily,
    ref: ModelVersionRef,
    model: TrainedModel,
    training_set: TrainingSet,
    evaluation: Evaluation,
    onnx_model,
    diffs: dict[str, float],
    latency: dict[str, float],
    outputs_fn=None,
) -> dict[str, bytes]:
    """The bundle's files. `outputs_fn(features) -> outputs` is what the graph must reproduce
    (default: the model's LightGBM boosters)."""
    if outputs_fn is None:
        outputs_fn = model.outputs

    train = training_set.split("train")
    test = training_set.split("test")
    features = training_set.feature_columns
    reference = feature_reference(train, features)
    self_test_rows = training_set.features(test.head(SELF_TEST_ROWS))
    expected = outputs_fn(self_test_rows)
    test_outputs = outputs_fn(training_set.features(test))
    signature = {
        "model": ref.name,
        "version": ref.version,
        "created_at": datetime.now(UTC).isoformat(),
        "input": {"name": INPUT_NAME, "dtype": "float64", "shape": [None, len(features)]},
        "features": [
            {
                "name": column,
                "dtype": "float64",
                "min": reference[column].get("quantiles", {}).get("q00"),
                "max": reference[column].get("quantiles", {}).get("q100"),
                "null_share": reference[column]["null_share"],
                **_encoding(training_set, column),
            }
            for column in features
        ],
        "outputs": {
            output: {"dtype": "float64", "meaning": family.output_meanings.get(output, "")}
            for output in expected
        },
        "sorted_output_groups": model.sorted_output_groups,
        **(
            {"interval_calibration": model.interval_calibration}
            if model.interval_calibration
            else {}
        ),
        "entity_columns": training_set.entity_columns,
        "segment_columns": training_set.segment_columns,
        "training_windows": training_set.windows,
        **(
            {"decision_threshold": float(model.extras["threshold"])}
            if "threshold" in model.extras
            else {}
        ),
        "extras": json.loads(json.dumps(model.extras, default=str)),
    }
    reference_doc = {
        "features": reference,
        "predictions": {
            output: feature_reference(pl.DataFrame({output: values}), [output])[output]
            for output, values in test_outputs.items()
        },
        "self_test": {
            "features": self_test_rows.tolist(),
            "expected": {k: v.tolist() for k, v in expected.items()},
        },
    }
    metrics_doc = {
        "model": ref.name,
        "version": ref.version,
        "evaluation": evaluation_as_dict(evaluation),
        "validation": model.validation_metrics,
        "onnx_parity_max_abs_diff": diffs,
        "onnx_single_row_latency_us": latency,
    }
    lineage = [
        *(_key_string(k) for k in family.source_assets),
        f"{ref.name}_training_set",
        f"{ref.name}_model",
    ]
    card_md, card_json = model_card(
        family, ref, training_set, evaluation, diffs, latency, lineage, model.extras
    )
    mlflow_doc = {
        "name": ref.name,
        "version": ref.version,
        "run_id": ref.run_id,
        "artifact_uri": ref.artifact_uri,
    }

    def dump(doc: Any) -> bytes:
        return json.dumps(doc, indent=2, default=str).encode()

    explainer = family.explainer_to_onnx(model)
    if explainer is not None:
        signature["explain"] = {
            "file": EXPLAIN_FILE,
            "output": "contributions",
            "explains": model.primary_output,
            "units": "raw score (log-odds): contributions + bias sum to logit(output)",
        }
    return {
        **({EXPLAIN_FILE: explainer.SerializeToString()} if explainer is not None else {}),
        "model.onnx": onnx_model.SerializeToString(),
        "signature.json": dump(signature),
        "metrics.json": dump(metrics_doc),
        "reference.json": dump(reference_doc),
        "model_card.md": card_md.encode(),
        "model_card.json": dump(card_json),
        "mlflow.json": dump(mlflow_doc),
    }
