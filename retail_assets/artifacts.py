"""Every versioned artifact of a deployment as a core `ArtifactStore`: where it lives, what
validates it and its name in the one decision log. Dagster resources, the `retail` command
and the serving app all get their stores here, so they agree on all three.

Validators are imported when a store is first used, from runtime modules only (onnxruntime,
usearch, polars), so serving can build every store without the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from retail_assets.core.decisions import DecisionLog
from retail_assets.core.store import ArtifactStore, check_name
from retail_assets.settings import Settings


def _validate_bundle(folder: Path) -> list[str]:
    from retail_assets.models.lifecycle.bundle import validate_bundle

    return validate_bundle(folder)


def _validate_feature_set(folder: Path) -> list[str]:
    from retail_assets.online_features.store import validate_feature_set

    return validate_feature_set(folder)


def _validate_encoder(folder: Path) -> list[str]:
    from retail_assets.search.encoder_store import validate_encoder

    return validate_encoder(folder)


def _validate_search_index(folder: Path) -> list[str]:
    from retail_assets.search.index import validate_index_version

    return validate_index_version(folder)


def _validate_rag_index(folder: Path) -> list[str]:
    from retail_assets.assistant.index import validate_rag_index

    return validate_rag_index(folder)


def _validate_prompt(folder: Path) -> list[str]:
    from retail_assets.assistant.prompts import validate_prompt_version

    return validate_prompt_version(folder)


@dataclass(frozen=True)
class Artifacts:
    """The stores of one deployment. Built from settings (`from_settings`) or from the same
    paths held by a Dagster resource."""

    bundles_dir: Path
    online_features_dir: Path
    search_dir: Path
    assistant_dir: Path
    decision_log_path: Path
    monitoring_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Artifacts:
        return cls(
            bundles_dir=settings.bundles_dir,
            online_features_dir=settings.online_features_dir,
            search_dir=settings.search_dir,
            assistant_dir=settings.assistant_dir,
            decision_log_path=settings.decision_log_path,
            monitoring_dir=settings.monitoring_dir,
        )

    @property
    def log(self) -> DecisionLog:
        return DecisionLog(self.decision_log_path)

    def model(self, name: str) -> ArtifactStore:
        """Serving bundles of one model (`model/<name>`): champion, challenger, rollout."""
        return ArtifactStore(
            Path(self.bundles_dir) / check_name(name, "model name"),
            f"model/{name}",
            self.log,
            _validate_bundle,
        )

    def models(self) -> list[str]:
        """Model names that have a bundle folder."""
        root = Path(self.bundles_dir)
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []

    def features(self, name: str) -> ArtifactStore:
        """An online feature table serving joins into requests (`features/<name>`)."""
        return ArtifactStore(
            Path(self.online_features_dir) / check_name(name, "feature set"),
            f"features/{name}",
            self.log,
            _validate_feature_set,
        )

    def monitoring(self, name: str) -> ArtifactStore:
        """Monitoring reports of one model (`monitoring/<name>`), one version per evaluation,
        newest last; the decisions they lead to go to the shared decision log."""
        root = self.monitoring_dir or Path(self.decision_log_path).parent / "monitoring"
        return ArtifactStore(
            Path(root) / check_name(name, "model name"), f"monitoring/{name}", self.log, keep=60
        )

    # -- search (validators: retail_assets/search/) ------------------------------------------

    def search_encoder(self) -> ArtifactStore:
        """The ONNX text encoder (`search/encoder`): champion = the encoder in use."""
        return ArtifactStore(
            Path(self.search_dir) / "encoder", "search/encoder", self.log, _validate_encoder
        )

    def search_index(self) -> ArtifactStore:
        """Versioned HNSW indices (`search/index`): champion = live, challenger = canary."""
        return ArtifactStore(
            Path(self.search_dir) / "indexes", "search/index", self.log, _validate_search_index
        )

    def search_embeddings(self, encoder_key: str) -> ArtifactStore:
        """Product embedding snapshots for one encoder (`search/embeddings/<key>`), reused by
        content hash across index builds."""
        return ArtifactStore(
            Path(self.search_dir) / "embeddings" / check_name(encoder_key, "encoder key"),
            f"search/embeddings/{encoder_key}",
            self.log,
        )

    # -- assistant (validators: retail_assets/assistant/) -------------------------------------

    def rag_index(self) -> ArtifactStore:
        """The llama-index RAG index (`assistant/rag_index`): champion = the index in use."""
        return ArtifactStore(
            Path(self.assistant_dir) / "index", "assistant/rag_index", self.log, _validate_rag_index
        )

    def prompts(self) -> ArtifactStore:
        """Prompt versions (`assistant/prompt`): champion = production (MLflow's `production`
        alias mirrors it)."""
        return ArtifactStore(
            Path(self.assistant_dir) / "prompts", "assistant/prompt", self.log, _validate_prompt
        )
