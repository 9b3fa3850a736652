"""Search assets (group `search`)."""

import dagster as dg

from retail_assets.search.encoder import FP32_FILE, INT8_FILE, publish_encoder
from retail_assets.settings import Settings


class SearchStoreResource(dg.ConfigurableResource):
    """Where search artefacts live (encoder versions, embeddings, index versions)."""

    root: str


@dg.asset(group_name="search", kinds={"onnx", "pytorch"})
def product_text_encoder(
    context: dg.AssetExecutionContext, search_store: SearchStoreResource
) -> dg.MaterializeResult:
    """all-MiniLM-L6-v2 exported to ONNX (fp32 and int8 per-channel) with its tokenizer, so
    serving embeds queries without PyTorch. Versioned by the hash of the exported graph."""
    from pathlib import Path

    manifest = publish_encoder(Path(search_store.root) / "encoder")
    context.log.info(f"published text encoder {manifest['version']}")
    return dg.MaterializeResult(
        metadata={
            "version": manifest["version"],
            "serving_file": manifest["serving_file"],
            **{k: round(v, 6) for k, v in manifest["agreement"].items()},
            "files": f"{FP32_FILE}, {INT8_FILE}, tokenizer.json",
        }
    )


assets = [product_text_encoder]
asset_checks: list = []


def resources(settings: Settings) -> dict:
    return {"search_store": SearchStoreResource(root=str(settings.search_dir))}
