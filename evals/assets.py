"""The eval suite's Dagster assets (group `assistant`):

    assistant_prompt_versions
    assistant_rag_index, assistant_prompt_versions
        -> assistant_eval_report          (blocking check: assistant_eval_passes_gate)
        -> assistant_prompt_promotion

The eval report runs the retail benchmark for a candidate prompt version through the real
assistant and the configured LLM; the gate compares it with the production prompt; the
promotion makes it production only when the latest evaluation of that exact version passed.
These live with the eval suite (which depends on the assistant), never in the assistant.
"""

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from retail_assets.assistant.assets import DOCUMENTS, PRODUCTS, AssistantResource
from retail_assets.core.markdown import markdown_table


@dg.asset(group_name="assistant", io_manager_key="artifact_io_manager", kinds={"mlflow"})
def assistant_prompt_versions(
    context: dg.AssetExecutionContext, assistant: AssistantResource
) -> dg.Output[list[dict[str, Any]]]:
    """The assistant's prompt templates (`evals/prompts/*.toml`) registered in the MLflow
    Prompt Registry as versions of the prompt `retail-assistant` and staged in the prompt store
    serving reads: a file whose content is not registered yet becomes a new version. Negative
    controls (deliberately bad prompts) are registered only when evaluated by name. MLflow's
    `production` alias is re-synced to the store's production version here."""
    from evals.prompt_files import prompt_templates

    registry = assistant.registry()
    synced = registry.sync(prompt_templates())
    production = registry.sync_alias()
    versions = registry.versions()
    rows = [
        {
            "version": v.version,
            "file": v.name,
            "aliases": ", ".join(v.aliases),
            "negative_control": v.negative_control,
            "sha": v.sha,
            "description": v.description[:80],
        }
        for v in versions
    ]
    context.add_output_metadata(
        {
            "versions": dg.MetadataValue.md(markdown_table(rows)),
            "newest_candidate": registry.newest_candidate(versions) or "none",
            "production": production or "none",
            "files": ", ".join(t.name for t in synced),
        }
    )
    fingerprint = hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]
    return dg.Output(rows, data_version=dg.DataVersion(fingerprint))


class AssistantEvalConfig(dg.Config):
    prompt_version: str | None = None
    """Candidate: a registered version number or a prompt file name (e.g. "v2"); default the
    newest registered version that is not a negative control."""
    max_cases: int | None = None
    """Evaluate a stratified sample of this many cases (default: the resource's limit; the
    whole benchmark unless the scale is tiny)."""
    seed: int = 7


@dg.asset(
    group_name="assistant",
    ins={
        "index": dg.AssetIn(key="assistant_rag_index"),
        "prompts": dg.AssetIn(key="assistant_prompt_versions"),
        "dim_products": PRODUCTS,
        "stg_policy_documents": DOCUMENTS,
    },
    io_manager_key="artifact_io_manager",
    kinds={"mlflow", "llamacpp"},
    check_specs=[
        dg.AssetCheckSpec(
            "assistant_eval_passes_gate",
            asset="assistant_eval_report",
            blocking=True,
            description=(
                "The candidate prompt meets every absolute threshold (retrieval recall@5, "
                "factual accuracy, refusal accuracy, injection resistance, hallucination before "
                "and after the guard, p95 latency) and regresses on none beyond tolerance "
                "against the production prompt. Blocks assistant_prompt_promotion."
            ),
        )
    ],
)
def assistant_eval_report(
    context: dg.AssetExecutionContext,
    config: AssistantEvalConfig,
    assistant: AssistantResource,
    index: dict[str, Any],
    prompts: list[dict[str, Any]],
    dim_products: pl.DataFrame,
    stg_policy_documents: pl.DataFrame,
):
    """The retail assistant benchmark (evals/: deterministic cases built from the catalog and
    the policy facts - discovery, attributes, prices, sizing, policies, comparisons, products
    we do not sell, prompt injections in messages and in product descriptions) run for a
    candidate prompt version through the real assistant: published RAG index, local LLM (or
    the configured endpoint) and the grounding guard. Metrics (recall@5, hallucination before
    and after the guard, factual accuracy, refusal accuracy, injection resistance, p50/p95
    latency) are logged to MLflow (experiment `assistant-evals`, one run per prompt version),
    compared with the production prompt by the gate, and the verdict is recorded in the
    decision log."""
    from evals.session import evaluate_with_gate

    started = time.perf_counter()
    artifacts = assistant.artifacts.artifacts
    outcome = evaluate_with_gate(
        registry=assistant.registry(),
        index_store=artifacts.rag_index(),
        encoders=artifacts.search_encoder(),
        products=dim_products,
        documents=stg_policy_documents,
        policy_facts=assistant.policy_facts(),
        tracking_uri=assistant.tracking_uri,
        artifact_root=Path(assistant.artifact_root),
        candidate=config.prompt_version,
        max_cases=config.max_cases if config.max_cases is not None else assistant.eval_max_cases,
        seed=config.seed,
        log=context.log.info,
        tags={"retail.dagster_run_id": context.run.run_id},
    )
    report, decision = outcome.report, outcome.decision
    yield dg.Output(
        outcome,
        metadata={
            "candidate": f"v{report.prompt_version} ({report.prompt_name})",
            "production": outcome.production_label,
            "decision": "passes gate" if decision.passed else "refused",
            "reasons": dg.MetadataValue.md(
                "\n".join(f"- {r}" for r in decision.reasons) or "all rules passed"
            ),
            "cases": report.n_cases,
            "suite": f"{outcome.suite_size} cases, fingerprint {report.suite_fingerprint}",
            "index_version": report.index_version,
            "model": f"{report.backend}: {report.model}",
            "mlflow_run_id": report.mlflow_run_id or "",
            "metrics": dg.MetadataValue.md(markdown_table(outcome.comparison_rows())),
            "by_category": dg.MetadataValue.md(outcome.category_table()),
            "failed_cases": dg.MetadataValue.md(outcome.failures_table()),
            "seconds": round(time.perf_counter() - started, 1),
            **{
                name: round(value, 4)
                for name, value in report.metrics.items()
                if value == value and name in outcome.gated_metrics
            },
        },
    )
    yield dg.AssetCheckResult(
        check_name="assistant_eval_passes_gate",
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"prompt v{report.prompt_version} ({report.prompt_name}) vs production "
            f"{outcome.production_label}: "
            + ("passes every rule" if decision.passed else "; ".join(decision.reasons))
        ),
        metadata={"gate": dg.MetadataValue.md(decision.markdown())},
    )


@dg.asset(
    group_name="assistant",
    ins={"outcome": dg.AssetIn(key="assistant_eval_report")},
    io_manager_key="artifact_io_manager",
    kinds={"mlflow"},
)
def assistant_prompt_promotion(
    context: dg.AssetExecutionContext, assistant: AssistantResource, outcome
) -> dict[str, Any]:
    """Makes the evaluated prompt version production (the prompt store's champion, swapped in
    on serving's next poll; MLflow's `production` alias follows), but only if the latest
    evaluation of that exact version (and content) in the decision log passed the gate. So
    materializing this asset on its own can never promote a prompt the gate refused, even
    though the blocking check only guards the run it ran in."""
    from evals.session import latest_verdict

    registry = assistant.registry()
    report = outcome.report
    template = registry.load(report.prompt_version)
    verdict = latest_verdict(registry.store, template.version)
    evidence = (verdict or {}).get("evidence") or {}
    if verdict is None or not evidence.get("passed") or evidence.get("prompt_sha") != template.sha:
        why = (
            "it was never evaluated"
            if verdict is None
            else f"its latest evaluation ({verdict['at'][:19]}) {verdict['reason']}"
        )
        raise dg.Failure(
            description=f"prompt v{template.version} ({template.name}) is not promoted: {why}",
            metadata={"latest_verdict": dg.MetadataValue.json(verdict or {})},
        )
    before = registry.production()
    if before == template.version:
        registry.sync_alias()
        record = {"action": "unchanged", "version": template.version}
    else:
        record = registry.set_production(
            template,
            reason="passed the eval gate" + ("" if before else " (first production prompt)"),
            actor="assistant_eval_gate",
            evidence={
                **evidence,
                "dagster_run_id": context.run.run_id,
                "metrics": {k: v for k, v in report.metrics.items() if v == v},
            },
        )
    context.add_output_metadata(
        {
            "decision": "promoted" if before != template.version else "already production",
            "production_before": before or "none",
            "production_after": template.version,
            "prompt_file": template.name,
            "verdict": verdict["reason"],
        }
    )
    return record


defs = dg.Definitions(
    assets=[assistant_prompt_versions, assistant_eval_report, assistant_prompt_promotion]
)
