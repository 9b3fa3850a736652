"""Assistant assets (group `assistant`):

    marts/dim_products, staging/stg_policy_documents, product_text_encoder
        -> assistant_rag_index            (check: assistant_index_is_fresh)
    assistant_prompt_versions
    assistant_rag_index, assistant_prompt_versions
        -> assistant_eval_report          (blocking check: assistant_eval_passes_gate)
        -> assistant_prompt_promotion

The eval report runs the retail benchmark (evals/) for a candidate prompt version through the
real assistant and the configured LLM; the gate compares it with the version serving uses
(MLflow alias `production`); the promotion moves the alias and the serving pointer only when
the blocking check passed.
"""

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from retail_assets.settings import Settings

INDEX_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=48), warn_window=timedelta(hours=30)
)
MIN_COVERAGE = 0.99
MAX_STALE_PRICES = 0.01
# The tiny test scale runs a stratified sample of the benchmark (each case costs an LLM call).
TINY_EVAL_CASES = 27
PRODUCTS = dg.AssetIn(key=["marts", "dim_products"])
DOCUMENTS = dg.AssetIn(key=["staging", "stg_policy_documents"])


class AssistantResource(dg.ConfigurableResource):
    """Where the assistant's artefacts live and which services it talks to."""

    root: str
    search_root: str
    tracking_uri: str
    artifact_root: str
    promotion_log: str
    landing_dir: str
    eval_max_cases: int | None = None
    """Default case limit of `assistant_eval_report` (None = the whole benchmark)."""

    def index_store(self):
        from retail_assets.assistant.index import RagIndexStore

        return RagIndexStore(Path(self.root) / "index")

    def registry(self):
        from retail_assets.assistant.prompts import PromptRegistry

        return PromptRegistry(
            self.tracking_uri, Path(self.root) / "prompts", Path(self.promotion_log)
        )

    def policy_facts(self) -> dict[str, Any] | None:
        path = Path(self.landing_dir) / "ground_truth.json"
        if not path.exists():
            return None
        return json.loads(path.read_text()).get("policy_facts")


def _md(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    from retail_assets.models.lifecycle.reporting import markdown_table

    return markdown_table(rows, columns)


@dg.asset(
    group_name="assistant",
    ins={"dim_products": PRODUCTS, "stg_policy_documents": DOCUMENTS},
    deps=["product_text_encoder"],
    io_manager_key="artifact_io_manager",
    kinds={"llamaindex", "onnx"},
    freshness_policy=INDEX_FRESHNESS,
)
def assistant_rag_index(
    context: dg.AssetExecutionContext,
    assistant: AssistantResource,
    dim_products: pl.DataFrame,
    stg_policy_documents: pl.DataFrame,
) -> dict[str, Any]:
    """The shopping assistant's RAG index: a llama-index vector index over every active
    catalog SKU (title, attributes, sizes, price, sanitised description) and every section of
    the policy and FAQ documents, embedded with the ONNX MiniLM text encoder.

    Versioned as `<encoder>-<content hash>` and published atomically under
    `$RETAIL_ASSISTANT_DIR/index` (a new version only when the catalog, the documents or the
    encoder changed). Instruction-like text found in descriptions is stripped and listed.
    Serving hot-swaps to the new version on its next poll."""
    from retail_assets.assistant.documents import active_products, build_nodes

    started = time.perf_counter()
    nodes = build_nodes(dim_products, stg_policy_documents)
    products = active_products(dim_products)
    manifest, built = assistant.index_store().publish(
        nodes, products.select("sku", "title", "list_price"), Path(assistant.search_root)
    )
    seconds = time.perf_counter() - started
    flagged = manifest.get("flagged_nodes", {})
    context.log.info(
        f"RAG index {manifest['version']} ({'built' if built else 'unchanged, re-published'})"
    )
    context.add_output_metadata(
        {
            "version": manifest["version"],
            "built": built,
            "dagster/row_count": manifest["nodes"],
            "products": manifest["products"],
            "document_sections": manifest["document_sections"],
            "documents": ", ".join(manifest["documents"]),
            "encoder": f"{manifest['encoder']['folder']} ({manifest['encoder']['file']})",
            "seconds": round(seconds, 2),
            "flagged_descriptions": dg.MetadataValue.md(
                _md(
                    [
                        {"node": node, "removed_text": flag["text"][:120]}
                        for node, flags in flagged.items()
                        for flag in flags
                    ]
                )
            ),
            "path": str(assistant.index_store().version_dir(manifest["version"])),
        }
    )
    return {
        "version": manifest["version"],
        "products": manifest["products"],
        "document_sections": manifest["document_sections"],
    }


@dg.asset_check(
    asset=assistant_rag_index,
    additional_ins={"dim_products": PRODUCTS},
    description=(
        f"Freshness of the published index against the catalog: at least {MIN_COVERAGE:.0%} of "
        f"the active SKUs in marts/dim_products are indexed and at most {MAX_STALE_PRICES:.0%} "
        "of indexed SKUs carry a list price that differs from the catalog's."
    ),
)
def assistant_index_is_fresh(
    assistant: AssistantResource, assistant_rag_index: dict[str, Any], dim_products: pl.DataFrame
) -> dg.AssetCheckResult:
    from retail_assets.assistant.index import PRODUCTS_FILE

    store = assistant.index_store()
    version = store.current()
    if version is None:
        return dg.AssetCheckResult(passed=False, description="no RAG index is published")
    indexed = pl.read_parquet(store.version_dir(version) / PRODUCTS_FILE)
    metrics = index_freshness(indexed, dim_products)
    examples = metrics.pop("examples")
    passed = (
        metrics["active_sku_coverage"] >= MIN_COVERAGE
        and metrics["stale_price_share"] <= MAX_STALE_PRICES
    )
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"index {version}: {metrics['active_sku_coverage']:.1%} of {metrics['active_skus']} "
            f"active SKUs indexed, {metrics['stale_price_share']:.1%} of indexed SKUs with a "
            f"stale price ({metrics['stale_prices']}), {metrics['not_in_catalog']} indexed SKUs "
            "no longer active"
        ),
        metadata={
            "index_version": version,
            **metrics,
            "stale_examples": dg.MetadataValue.md(_md(examples)),
        },
    )


def index_freshness(indexed: pl.DataFrame, dim_products: pl.DataFrame) -> dict[str, Any]:
    """Share of active catalog SKUs present in the index, and share of indexed SKUs whose
    indexed list price differs from the catalog's (or that are no longer active)."""
    active = dim_products
    if "is_active" in active.columns:
        active = active.filter(pl.col("is_active").fill_null(False))
    active = active.select("sku", pl.col("list_price").alias("catalog_price"))
    joined = indexed.select("sku", pl.col("list_price").alias("indexed_price")).join(
        active, on="sku", how="left"
    )
    stale = joined.filter(
        pl.col("catalog_price").is_null()
        | ((pl.col("indexed_price") - pl.col("catalog_price")).abs() > 0.005)
    )
    covered = active.join(indexed.select("sku"), on="sku", how="semi").height
    return {
        "active_skus": active.height,
        "indexed_skus": indexed.height,
        "active_sku_coverage": covered / active.height if active.height else 1.0,
        "stale_prices": stale.height,
        "stale_price_share": stale.height / indexed.height if indexed.height else 0.0,
        "not_in_catalog": int(stale["catalog_price"].is_null().sum()),
        "examples": stale.head(10).to_dicts(),
    }


@dg.asset(group_name="assistant", io_manager_key="artifact_io_manager", kinds={"mlflow"})
def assistant_prompt_versions(
    context: dg.AssetExecutionContext, assistant: AssistantResource
) -> list[dict[str, Any]]:
    """The assistant's prompt templates (`evals/prompts/*.toml`) registered in the MLflow
    Prompt Registry as versions of the prompt `retail-assistant`: a file whose content is not
    registered yet becomes a new version. Negative controls (deliberately bad prompts) are
    registered only when evaluated by name. Serving uses the version with alias `production`
    (its pointer file is re-synced here if the alias was moved outside the gate)."""
    from retail_assets.assistant.prompts import read_pointer

    registry = assistant.registry()
    synced = registry.sync()
    versions = registry.versions()
    # MLflow's alias is the source of truth: if it was moved outside the gate (MLflow UI, API),
    # the serving pointer follows it here.
    production = registry.production()
    pointer = read_pointer(Path(assistant.root) / "prompts")
    if production and (pointer is None or pointer.version != production):
        registry.write_pointer(registry.load(production))
        context.log.info(f"serving pointer re-synced to production v{production}")
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
            "versions": dg.MetadataValue.md(_md(rows)),
            "newest_candidate": registry.newest_candidate(versions) or "none",
            "production": production or "none",
            "files": ", ".join(t.name for t in synced),
        }
    )
    return rows


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
    """The retail assistant benchmark (evals/: 80+ deterministic cases built from the catalog
    and the policy facts - discovery, attributes, prices, sizing, policies, comparisons,
    products we do not sell, prompt injections in messages and in product descriptions) run
    for a candidate prompt version through the real assistant: published RAG index, local LLM
    (or the configured endpoint) and the grounding guard. Metrics (recall@5, hallucination
    before and after the guard, factual accuracy, refusal accuracy, injection resistance,
    p50/p95 latency) are logged to MLflow (experiment `assistant-evals`, one run per prompt
    version) and compared with the production prompt by the gate."""
    from evals.session import evaluate_with_gate

    started = time.perf_counter()
    outcome = evaluate_with_gate(
        registry=assistant.registry(),
        index_store=assistant.index_store(),
        search_root=Path(assistant.search_root),
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
    metrics_rows = outcome.comparison_rows()
    yield dg.Output(
        outcome,
        metadata={
            "candidate": f"v{report.prompt_version} ({report.prompt_name})",
            "production": outcome.production_label,
            "decision": "passes gate" if decision.promote else "refused",
            "reasons": dg.MetadataValue.md(
                "\n".join(f"- {r}" for r in decision.reasons) or "all rules passed"
            ),
            "cases": report.n_cases,
            "suite": f"{outcome.suite_size} cases, fingerprint {report.suite_fingerprint}",
            "index_version": report.index_version,
            "model": f"{report.backend}: {report.model}",
            "mlflow_run_id": report.mlflow_run_id or "",
            "metrics": dg.MetadataValue.md(_md(metrics_rows)),
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
        passed=decision.promote,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"prompt v{report.prompt_version} ({report.prompt_name}) vs production "
            f"{outcome.production_label}: "
            + ("passes every rule" if decision.promote else "; ".join(decision.reasons))
        ),
        metadata={"gate": dg.MetadataValue.md(_md([c.__dict__ for c in decision.checks]))},
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
    """Moves the MLflow alias `production` of prompt `retail-assistant` to the candidate that
    passed the eval gate, and publishes it to serving (`$RETAIL_ASSISTANT_DIR/prompts/
    PRODUCTION.json`, swapped in on serving's next poll). Runs only when the blocking check
    `assistant_eval_passes_gate` passed; every promotion is appended to the promotion log."""
    registry = assistant.registry()
    report = outcome.report
    template = registry.load(report.prompt_version)
    before = registry.production()
    if before == template.version:
        # Re-evaluated and still passing: nothing moves; the serving pointer is re-written so
        # a lost or stale pointer heals.
        registry.write_pointer(template)
        record = {"action": "unchanged", "version": template.version}
    else:
        record = registry.set_production(
            template,
            reason=(
                "passed the eval gate"
                + ("" if outcome.production_version else " (first production prompt)")
            ),
            actor="assistant_eval_gate",
            details={
                "mlflow_run_id": report.mlflow_run_id,
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
            "pointer": str(Path(assistant.root) / "prompts" / "PRODUCTION.json"),
        }
    )
    return record


assets = [
    assistant_rag_index,
    assistant_prompt_versions,
    assistant_eval_report,
    assistant_prompt_promotion,
]
asset_checks = [assistant_index_is_fresh]


def resources(settings: Settings) -> dict:
    return {
        "assistant": AssistantResource(
            root=str(settings.assistant_dir),
            search_root=str(settings.search_dir),
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=str(settings.mlflow_artifacts_dir),
            promotion_log=str(settings.promotion_log_path),
            landing_dir=str(settings.landing_dir),
            eval_max_cases=TINY_EVAL_CASES if settings.scale == "tiny" else None,
        )
    }
