"""Assistant assets (group `assistant`):

    marts/dim_products, staging/stg_policy_documents, product_text_encoder
        -> assistant_rag_index            (check: assistant_index_is_fresh)

The prompt versions, the eval report with its blocking gate and the prompt promotion are the
eval suite's assets (`evals/assets.py`): the eval suite depends on the assistant, never the
other way round.
"""

import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from retail_assets.core.store import ArtifactStore
from retail_assets.resources import ArtifactsResource
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
    """Where the assistant's artefacts live (the artifact stores) and which services it talks
    to (the MLflow prompt registry, the landing zone's policy facts)."""

    tracking_uri: str
    artifact_root: str
    landing_dir: str
    artifacts: ArtifactsResource
    eval_max_cases: int | None = None
    """Default case limit of `assistant_eval_report` (None = the whole benchmark)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> "AssistantResource":
        return cls(
            tracking_uri=settings.mlflow_tracking_uri,
            artifact_root=str(settings.mlflow_artifacts_dir),
            landing_dir=str(settings.landing_dir),
            artifacts=ArtifactsResource.from_settings(settings),
            eval_max_cases=TINY_EVAL_CASES if settings.scale == "tiny" else None,
        )

    def index_store(self) -> ArtifactStore:
        return self.artifacts.artifacts.rag_index()

    def encoders(self) -> ArtifactStore:
        return self.artifacts.artifacts.search_encoder()

    def registry(self):
        from retail_assets.assistant.prompts import PromptRegistry

        return PromptRegistry(self.tracking_uri, self.artifacts.artifacts.prompts())

    def policy_facts(self) -> dict[str, Any] | None:
        path = Path(self.landing_dir) / "ground_truth.json"
        if not path.exists():
            return None
        return json.loads(path.read_text()).get("policy_facts")


def _md(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    from retail_assets.core.markdown import markdown_table

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
) -> dg.Output[dict[str, Any]]:
    """The shopping assistant's RAG index: a llama-index vector index over every active
    catalog SKU (title, attributes, sizes, price, sanitised description) and every section of
    the policy and FAQ documents, embedded with the ONNX MiniLM text encoder.

    Versioned as `<encoder>-<content hash>` and published atomically under
    `$RETAIL_ASSISTANT_DIR/index` (a new version only when the catalog, the documents or the
    encoder changed). Instruction-like text found in descriptions is stripped and listed.
    Serving hot-swaps to the new version on its next poll."""
    from retail_assets.assistant.documents import active_products, build_nodes
    from retail_assets.assistant.index import publish_rag_index

    started = time.perf_counter()
    nodes = build_nodes(dim_products, stg_policy_documents)
    products = active_products(dim_products)
    manifest, built = publish_rag_index(
        assistant.index_store(),
        assistant.encoders(),
        nodes,
        products.select("sku", "title", "list_price"),
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
    # The data version is the content version: the eval suite reruns on a new index, not on
    # every rebuild of the marts it was built from (see retail_assets/automation.py).
    return dg.Output(
        {
            "version": manifest["version"],
            "products": manifest["products"],
            "document_sections": manifest["document_sections"],
        },
        data_version=dg.DataVersion(manifest["version"]),
    )


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
    version = store.champion()
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


assets = [assistant_rag_index]
asset_checks = [assistant_index_is_fresh]


defs = dg.Definitions(assets=assets, asset_checks=asset_checks)
