"""One evaluation session, shared by the Dagster asset `assistant_eval_report` and the CLI
(`retail evals run`): build the benchmark, evaluate the candidate prompt, find (or measure) the
production prompt's metrics on the same cases, index and model, apply the gate, log to MLflow,
and record the verdict in the decision log (`evaluated`, with the gate table). The prompt
promotion trusts only that record: a prompt is promoted only if the latest evaluation of that
exact version passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from evals.cases import EvalSuite, build_suite
from evals.checks import Truth
from evals.gate import RULES, comparison_rows, decide
from evals.prompt_files import prompt_templates
from evals.runner import (
    METRICS,
    EvalReport,
    eval_assistant,
    find_report_metrics,
    log_report,
    run_suite,
)
from retail_assets.assistant.index import load_champion
from retail_assets.assistant.llm import LLMBackend, backend_from_env
from retail_assets.assistant.prompts import PromptRegistry, PromptTemplate
from retail_assets.core.gate import GateResult
from retail_assets.core.store import ArtifactStore
from retail_assets.summary import headline

EVALUATED = "evaluated"


@dataclass
class EvalOutcome:
    report: EvalReport
    production_version: str | None
    production_metrics: dict[str, float] | None
    production_source: str  # "none", "mlflow run <id>", "measured now"
    decision: GateResult
    suite_size: int

    @property
    def production_label(self) -> str:
        if not self.production_version:
            return "none (first production prompt)"
        return f"v{self.production_version} ({self.production_source})"

    @property
    def gated_metrics(self) -> set[str]:
        return {rule.metric for rule in RULES} | set(METRICS)

    def comparison_rows(self) -> list[dict[str, Any]]:
        return comparison_rows(self.report.metrics, self.production_metrics, self.decision)

    def category_table(self) -> str:
        from retail_assets.core.markdown import markdown_table

        rows = [
            {
                "category": category,
                "cases": int(values["cases"]),
                "recall_at_5": values["recall_at_5"],
                "factual_accuracy": values["factual_accuracy"],
                "model_hallucination_rate": values["model_hallucination_rate"],
                "system_hallucination_rate": values["system_hallucination_rate"],
                "refusal_accuracy": values["refusal_accuracy"],
                "p50_ms": values["latency_p50_ms"],
            }
            for category, values in self.report.by_category.items()
        ]
        return markdown_table(rows)

    def failures_table(self) -> str:
        from retail_assets.core.markdown import markdown_table

        rows = [
            {
                "case": r.id,
                "question": r.question[:70],
                "failures": "; ".join(r.failures)[:140],
                "model_claims_unsupported": "; ".join(r.model_unsupported)[:100],
            }
            for r in self.report.results
            if r.failures or r.model_unsupported
        ]
        return markdown_table(rows[:40])


def build_eval_suite(
    products: pl.DataFrame,
    policy_facts: dict[str, Any] | None,
    max_cases: int | None,
    seed: int = 7,
) -> tuple[EvalSuite, int]:
    suite = build_suite(products, policy_facts, seed=seed)
    return suite.select(max_cases), len(suite.cases)


def evaluate_prompt(
    prompt: PromptTemplate,
    *,
    index_store: ArtifactStore,
    encoders: ArtifactStore,
    suite: EvalSuite,
    truth: Truth,
    backend: LLMBackend,
    on_case: Callable | None = None,
) -> EvalReport:
    # A fresh copy of the published index per evaluation: the suite's test-only products are
    # inserted into it in memory.
    index = load_champion(index_store, encoders, threads=1)
    return run_suite(eval_assistant(index, prompt, backend, suite), suite, truth, on_case)


def evaluate_with_gate(
    *,
    registry: PromptRegistry,
    index_store: ArtifactStore,
    encoders: ArtifactStore,
    products: pl.DataFrame,
    documents: pl.DataFrame,
    policy_facts: dict[str, Any] | None,
    tracking_uri: str,
    artifact_root: Path,
    candidate: str | None = None,
    max_cases: int | None = None,
    seed: int = 7,
    backend: LLMBackend | None = None,
    log: Callable[[str], None] = print,
    on_case: Callable | None = None,
    tags: dict[str, str] | None = None,
) -> EvalOutcome:
    backend = backend or backend_from_env()
    prompt = registry.resolve(candidate, prompt_templates())
    suite, total = build_eval_suite(products, policy_facts, max_cases, seed)
    truth = Truth.build(products, documents, suite.fixture_products)
    log(
        f"evaluating prompt v{prompt.version} ({prompt.name}) on {len(suite.cases)} of {total} "
        f"cases with {backend.name}: {backend.model}"
    )
    report = evaluate_prompt(
        prompt,
        index_store=index_store,
        encoders=encoders,
        suite=suite,
        truth=truth,
        backend=backend,
        on_case=on_case,
    )
    production_version = registry.production()
    production_metrics = None
    source = "none"
    if production_version and production_version != prompt.version:
        production_metrics = find_report_metrics(
            tracking_uri,
            production_version,
            report.suite_fingerprint,
            report.index_version,
            report.model,
            report.code_version,
        )
        source = "logged run on the same cases"
        if production_metrics is None:
            log(f"measuring production prompt v{production_version} on the same cases")
            production_report = evaluate_prompt(
                registry.load(production_version),
                index_store=index_store,
                encoders=encoders,
                suite=suite,
                truth=truth,
                backend=backend,
            )
            log_report(
                production_report,
                tracking_uri,
                artifact_root,
                tags={**(tags or {}), "retail.eval_role": "production"},
            )
            production_metrics = production_report.metrics
            source = "measured now on the same cases"
    elif production_version == prompt.version:
        source = "is the candidate"
    decision = decide(report.metrics, production_metrics, negative_control=prompt.negative_control)
    log_report(
        report,
        tracking_uri,
        artifact_root,
        tags={
            **(tags or {}),
            "retail.eval_role": "candidate",
            "retail.gate": "passed" if decision.passed else "refused",
            "retail.gate_reasons": "; ".join(decision.reasons)[:4000],
            "retail.production_version": production_version or "none",
        },
    )
    record_verdict(registry.store, prompt, report, decision, production_version, production_metrics)
    return EvalOutcome(
        report=report,
        production_version=production_version,
        production_metrics=production_metrics,
        production_source=source,
        decision=decision,
        suite_size=total,
    )


def record_verdict(
    store: ArtifactStore,
    prompt: PromptTemplate,
    report: EvalReport,
    decision: GateResult,
    production_version: str | None,
    production_metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The gate's verdict on this exact prompt version (and content), in the decision log."""
    return store.record(
        EVALUATED,
        str(prompt.version),
        reason=(
            "passed the eval gate" if decision.passed else "refused: " + "; ".join(decision.reasons)
        ),
        actor="assistant_eval_gate",
        evidence={
            "passed": decision.passed,
            "prompt_sha": prompt.sha,
            "prompt_file": prompt.name,
            "production_version": production_version,
            "mlflow_run_id": report.mlflow_run_id,
            "cases": report.n_cases,
            "suite_fingerprint": report.suite_fingerprint,
            "index_version": report.index_version,
            "model": report.model,
            "gate": decision.table(),
            "headline": headline(
                "factual_accuracy",
                report.metrics.get("factual_accuracy"),
                f"production v{production_version}" if production_metrics else None,
                (production_metrics or {}).get("factual_accuracy"),
            ),
        },
    )


def latest_verdict(store: ArtifactStore, version: str) -> dict[str, Any] | None:
    """The most recent `evaluated` decision for this prompt version, if any."""
    for entry in reversed(store.log.entries(store.artifact, {EVALUATED}) if store.log else []):
        if str(entry.get("version")) == str(version):
            return entry
    return None
