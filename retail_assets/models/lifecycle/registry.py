"""The MLflow side of the lifecycle: tracking runs, registered versions and aliases.

Tracking and registry live in one SQLite file under RETAIL_HOME (MLflow 3 refuses the plain
file store); artifacts go to a local directory. Versions move through aliases, not stages:
`challenger` is the newest candidate, `champion` is what serving loads.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import lightgbm as lgb

from retail_assets.models.lifecycle.spec import (
    Evaluation,
    ModelVersionRef,
    TrainedModel,
    TrainingSet,
)

CHAMPION = "champion"
CHALLENGER = "challenger"

# MLflow infers the pip environment of logged models by default, which is slow and reaches
# for the network; the serving path loads ONNX bundles, so a fixed list is enough.
_PIP_REQUIREMENTS = ["lightgbm", "numpy", "pandas", "scikit-learn"]


def _mlflow():
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return mlflow


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    else:
        out[prefix] = value


class ModelRegistry:
    def __init__(self, tracking_uri: str, artifact_root: Path):
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root)

    @contextmanager
    def _active(self):
        mlflow = _mlflow()
        previous = os.environ.get("MLFLOW_TRACKING_URI")
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            yield mlflow
        finally:
            if previous is not None:
                mlflow.set_tracking_uri(previous)

    @property
    def client(self):
        from mlflow import MlflowClient

        _mlflow()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def _experiment_id(self, mlflow, name: str) -> str:
        experiment = mlflow.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = self.artifact_root / name
        location.mkdir(parents=True, exist_ok=True)
        return mlflow.create_experiment(name, artifact_location=location.as_uri())

    def register(
        self,
        name: str,
        model: TrainedModel,
        training_set: TrainingSet,
        tags: dict[str, str] | None = None,
    ) -> ModelVersionRef:
        """Log a training run (params, validation metrics, data windows, every booster) and
        register the model (its primary booster; a routed model's ONNX graph) as a new
        version of `name` with alias `challenger`."""
        with self._active() as mlflow:
            experiment_id = self._experiment_id(mlflow, name)
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{name}-training") as run:
                params: dict[str, Any] = {}
                _flatten("", model.params, params)
                mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
                windows: dict[str, Any] = {}
                _flatten("window", training_set.windows, windows)
                mlflow.log_params({k: str(v) for k, v in windows.items()})
                mlflow.log_metrics(
                    {f"validation_{k}": float(v) for k, v in model.validation_metrics.items()}
                )
                for split in ("train", "validation", "test"):
                    mlflow.log_metric(f"rows_{split}", training_set.split(split).height)
                mlflow.set_tags({"retail.model": name, **(tags or {})})
                with tempfile.TemporaryDirectory() as tmp:
                    folder = Path(tmp)
                    (folder / "trained_model.json").write_text(
                        json.dumps(_describe(model), indent=2, default=str)
                    )
                    (folder / "training_set.json").write_text(
                        json.dumps(
                            {
                                "features": training_set.feature_columns,
                                "target": training_set.target_column,
                                "windows": training_set.windows,
                                "encodings": training_set.encodings,
                                "info": training_set.info,
                            },
                            indent=2,
                            default=str,
                        )
                    )
                    _write_boosters(model, folder / "boosters")
                    mlflow.log_artifacts(str(folder))
                if model.route is None and not model.raw_offsets:
                    info = mlflow.lightgbm.log_model(
                        model.boosters[model.primary_output],
                        name="model",
                        registered_model_name=name,
                        pip_requirements=_PIP_REQUIREMENTS,
                    )
                else:  # a routed model, or trees on an offset, is one ONNX graph, not one booster
                    from retail_assets.models.lifecycle.tiers import model_to_onnx

                    info = mlflow.onnx.log_model(
                        model_to_onnx(model),
                        name="model",
                        registered_model_name=name,
                        pip_requirements=["onnxruntime", "numpy"],
                    )
                version = str(info.registered_model_version)
                ref = ModelVersionRef(
                    name=name,
                    version=version,
                    run_id=run.info.run_id,
                    artifact_uri=run.info.artifact_uri,
                )
        self.client.set_registered_model_alias(name, CHALLENGER, version)
        return ref

    def register_onnx(
        self,
        name: str,
        onnx_model: Any,
        training_set: TrainingSet,
        params: dict[str, Any],
        tags: dict[str, str] | None = None,
    ) -> ModelVersionRef:
        """Register a model that exists only as an ONNX graph (a baseline served as the
        champion) as a new version of `name`, with its parameters and data windows."""
        with self._active() as mlflow:
            experiment_id = self._experiment_id(mlflow, name)
            with mlflow.start_run(experiment_id=experiment_id, run_name=f"{name}-baseline") as run:
                flat: dict[str, Any] = {}
                _flatten("", params, flat)
                _flatten("window", training_set.windows, flat)
                mlflow.log_params({k: str(v)[:500] for k, v in flat.items()})
                mlflow.set_tags({"retail.model": name, **(tags or {})})
                info = mlflow.onnx.log_model(
                    onnx_model,
                    name="model",
                    registered_model_name=name,
                    pip_requirements=["onnxruntime", "numpy"],
                )
                version = str(info.registered_model_version)
                return ModelVersionRef(
                    name=name,
                    version=version,
                    run_id=run.info.run_id,
                    artifact_uri=run.info.artifact_uri,
                )

    def log_evaluation(
        self, ref: ModelVersionRef, evaluation: Evaluation, extra: dict[str, float] | None = None
    ) -> None:
        """Test-window metrics of the challenger go onto its training run."""
        with self._active() as mlflow, mlflow.start_run(run_id=ref.run_id):
            metrics = {f"test_{k}": v for k, v in evaluation.overall.get("challenger", {}).items()}
            metrics.update(extra or {})
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None})
            mlflow.log_dict(_evaluation_dict(evaluation), "evaluation.json")

    def alias_version(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        with suppress(MlflowException):
            self.client.delete_registered_model_alias(name, alias)

    def versions(self, name: str) -> list[dict[str, Any]]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name='{name}'")
        except MlflowException:
            return []
        return sorted(
            (
                {
                    "version": str(v.version),
                    "aliases": sorted(v.aliases),
                    "run_id": v.run_id,
                    "created": v.creation_timestamp,
                }
                for v in found
            ),
            key=lambda v: int(v["version"]),
        )

    def run_id(self, name: str, version: str) -> str:
        return self.client.get_model_version(name, version).run_id

    def load_model(self, name: str, version: str) -> TrainedModel:
        """A registered version as the trained model (every booster, routing and interval
        calibration), from its run's artifacts."""
        with self._active() as mlflow, tempfile.TemporaryDirectory() as tmp:
            run_id = self.run_id(name, version)
            local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, dst_path=tmp))
            description = json.loads((local / "trained_model.json").read_text())
            return _load(description, local / "boosters")


def _write_boosters(model: TrainedModel, folder: Path) -> None:
    """Boosters as LightGBM text, one file per output; a routed model's parts in subfolders."""
    folder.mkdir(parents=True)
    for output, booster in model.boosters.items():
        (folder / f"{output}.txt").write_text(booster.model_to_string())
    for part_name, part in model.parts.items():
        _write_boosters(part, folder / part_name)


def _load(description: dict[str, Any], folder: Path) -> TrainedModel:
    return TrainedModel(
        boosters={
            output: lgb.Booster(model_str=(folder / f"{output}.txt").read_text())
            for output in description["outputs"]
        },
        feature_columns=description["feature_columns"],
        params=description["params"],
        validation_metrics=description["validation_metrics"],
        extras=description["extras"],
        output_transforms=description["output_transforms"],
        sorted_output_groups=description["sorted_output_groups"],
        interval_calibration=description.get("interval_calibration"),
        raw_offsets=description.get("raw_offsets") or {},
        parts={
            part_name: _load(part, folder / part_name)
            for part_name, part in description.get("parts", {}).items()
        },
        route=description.get("route"),
    )


def _describe(model: TrainedModel) -> dict[str, Any]:
    return {
        "outputs": list(model.boosters),
        "feature_columns": model.feature_columns,
        "params": model.params,
        "validation_metrics": model.validation_metrics,
        "extras": model.extras,
        "output_transforms": model.output_transforms,
        "sorted_output_groups": model.sorted_output_groups,
        "interval_calibration": model.interval_calibration,
        "raw_offsets": model.raw_offsets,
        "route": model.route,
        "parts": {name: _describe(part) for name, part in model.parts.items()},
    }


def _evaluation_dict(evaluation: Evaluation) -> dict[str, Any]:
    from dataclasses import asdict

    return json.loads(json.dumps(asdict(evaluation), default=str))
