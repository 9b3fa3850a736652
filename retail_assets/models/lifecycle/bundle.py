"""Model bundles: the directory contract between the pipeline and serving, and the checks that
decide whether a directory may serve.

    bundles/<model>/versions/<version>/   model.onnx, signature.json, metrics.json,
                                          reference.json, model_card.md, model_card.json,
                                          mlflow.json (+ explain.onnx for reason codes)
    bundles/<model>/ROLES.json            champion / challenger pointers and the rollout

The folder is a core `ArtifactStore` (see `retail_assets/artifacts.py`): versions are written
whole and renamed into place, and `validate_bundle` (files, schema, onnxruntime load,
self-test) is its validator, run before any pointer names a version. This module is runtime
only (numpy, polars, onnxruntime): serving imports it to load bundles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import polars as pl

BUNDLE_FILES = (
    "model.onnx",
    "signature.json",
    "metrics.json",
    "reference.json",
    "model_card.md",
    "model_card.json",
    "mlflow.json",
)
# Serving compares the bundle's outputs on its self-test rows with what the training code
# predicted for them: float64 ONNX tree ensembles reproduce LightGBM to ~1e-15, so anything
# above 1e-6 means a different or damaged model.
SELF_TEST_TOLERANCE = 1e-6
# Optional reason-code graph; its contributions (float32) must add up to the model's raw score.
EXPLAIN_FILE = "explain.onnx"
EXPLAIN_TOLERANCE = 1e-3


def session(model: Any) -> ort.InferenceSession:
    """A single-threaded onnxruntime session (serving runs many requests, one core each)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])


def feature_reference(frame: pl.DataFrame, columns: list[str]) -> dict[str, dict[str, Any]]:
    """Training-time distribution of each feature (for drift checks and input guardrails)."""
    quantiles = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
    summary: dict[str, dict[str, Any]] = {}
    for column in columns:
        values = frame[column].cast(pl.Float64).to_numpy()
        present = values[~np.isnan(values)]
        entry: dict[str, Any] = {
            "count": int(values.size),
            "null_share": float(1 - present.size / values.size) if values.size else 0.0,
        }
        if present.size:
            qs = np.quantile(present, quantiles)
            entry.update(
                {
                    "mean": float(present.mean()),
                    "std": float(present.std()),
                    "quantiles": {
                        f"q{int(q * 100):02d}": float(v) for q, v in zip(quantiles, qs, strict=True)
                    },
                }
            )
            edges = np.unique(np.quantile(present, np.linspace(0, 1, 11)))
            if edges.size > 1:
                counts, _ = np.histogram(present, bins=edges)
                entry["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
        summary[column] = entry
    return summary


class LoadedBundle:
    """A bundle opened for inference: onnxruntime session plus its signature."""

    def __init__(self, path: Path):
        self.path = path
        self.signature = json.loads((path / "signature.json").read_text())
        self.metrics = json.loads((path / "metrics.json").read_text())
        self.session = session((path / "model.onnx").read_bytes())
        self.feature_names = [f["name"] for f in self.signature["features"]]
        self.output_names = [o.name for o in self.session.get_outputs()]
        explain = self.signature.get("explain")
        self.explainer = session((path / explain["file"]).read_bytes()) if explain else None

    def contributions(self, features: np.ndarray) -> np.ndarray:
        """[n, n_features + 1] raw-score contributions (last column: bias) from explain.onnx."""
        if self.explainer is None:
            raise LookupError(f"bundle {self.path} has no explainer")
        (result,) = self.explainer.run(
            None, {self.signature["input"]["name"]: features.astype(np.float64)}
        )
        return result

    def predict_matrix(self, features: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(
            None, {self.signature["input"]["name"]: features.astype(np.float64)}
        )
        return dict(zip(self.output_names, outputs, strict=True))

    def predict_frame(self, frame: pl.DataFrame) -> dict[str, np.ndarray]:
        missing = [name for name in self.feature_names if name not in frame.columns]
        if missing:
            raise KeyError(f"frame lacks the bundle's features: {', '.join(missing)}")
        matrix = frame.select([pl.col(n).cast(pl.Float64) for n in self.feature_names]).to_numpy()
        return self.predict_matrix(matrix)


def load_checked_bundle(path: Path) -> tuple[LoadedBundle | None, list[str]]:
    """The bundle in this directory, loaded and self-tested, with every reason it is not
    servable (no bundle unless that list is empty)."""
    problems: list[str] = []
    if not path.is_dir():
        return None, [f"{path} does not exist"]
    for filename in BUNDLE_FILES:
        file = path / filename
        if not file.exists() or file.stat().st_size == 0:
            problems.append(f"{filename} missing or empty")
    if problems:
        return None, problems
    try:
        signature = json.loads((path / "signature.json").read_text())
        reference = json.loads((path / "reference.json").read_text())
        json.loads((path / "metrics.json").read_text())
        json.loads((path / "model_card.json").read_text())
        lineage = json.loads((path / "mlflow.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return None, [f"unreadable JSON: {exc}"]
    for key in ("model", "version", "input", "features", "outputs"):
        if key not in signature:
            problems.append(f"signature.json lacks '{key}'")
    if str(lineage.get("version")) != path.name:
        problems.append(
            f"mlflow.json version {lineage.get('version')!r} does not match directory {path.name!r}"
        )
    if problems:
        return None, problems
    explain = signature.get("explain")
    if explain and not (path / explain.get("file", "")).is_file():
        return None, [f"signature names explainer {explain.get('file')!r}, which is missing"]
    try:
        bundle = LoadedBundle(path)
    except Exception as exc:  # onnxruntime raises its own exception types for corrupt graphs
        return None, [f"model.onnx or its explainer does not load in onnxruntime: {exc}"]
    (model_input,) = bundle.session.get_inputs()
    if model_input.shape[-1] != len(bundle.feature_names):
        problems.append(
            f"model.onnx takes {model_input.shape[-1]} features, signature lists {len(bundle.feature_names)}"
        )
    if set(bundle.output_names) != set(signature["outputs"]):
        problems.append(
            f"model.onnx outputs {bundle.output_names}, signature lists {sorted(signature['outputs'])}"
        )
    self_test = reference.get("self_test")
    if not self_test:
        problems.append("reference.json has no self_test rows")
    if problems:
        return None, problems
    rows = np.array(self_test["features"], dtype=np.float64)
    actual = bundle.predict_matrix(rows)
    for output, expected in self_test["expected"].items():
        diff = float(np.max(np.abs(actual[output] - np.array(expected, dtype=np.float64))))
        if not diff <= SELF_TEST_TOLERANCE:
            problems.append(
                f"self-test output '{output}' differs from training-time prediction by {diff:.3g}"
            )
    if bundle.explainer is not None:
        probability = np.clip(actual[explain["explains"]], 1e-12, 1 - 1e-12)
        raw = np.log(probability / (1 - probability))
        diff = float(np.max(np.abs(bundle.contributions(rows).sum(axis=1) - raw)))
        if not diff <= EXPLAIN_TOLERANCE:
            problems.append(f"explainer contributions miss the raw score by {diff:.3g}")
    return (None if problems else bundle), problems


def validate_bundle(path: Path) -> list[str]:
    """Every reason this directory is not a servable bundle (empty list = valid)."""
    return load_checked_bundle(path)[1]
