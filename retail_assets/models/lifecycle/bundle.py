"""Model bundles: the directory contract between the pipeline and serving.

    bundles/<model>/versions/<version>/   model.onnx, signature.json, metrics.json,
                                          reference.json, model_card.md, model_card.json,
                                          mlflow.json
    bundles/<model>/CHAMPION.json         {"version": ..., "published_at": ...}
    bundles/<model>/CHALLENGER.json       the refused-but-valid candidate serving may shadow
                                          or canary (absent when there is none)

Version directories are written to a temporary name and renamed into place; the champion
pointer is replaced with an atomic rename, and only after the bundle it points to has passed
`validate_bundle` (files, schema, onnxruntime load, self-test). A broken bundle therefore never
replaces a good one, and serving only ever sees complete directories.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from retail_assets.atomic_files import atomic_write

BUNDLE_FILES = (
    "model.onnx",
    "signature.json",
    "metrics.json",
    "reference.json",
    "model_card.md",
    "model_card.json",
    "mlflow.json",
)
POINTER = "CHAMPION.json"
CHALLENGER_POINTER = "CHALLENGER.json"
SELF_TEST_TOLERANCE = 1e-6
# Optional reason-code graph; its contributions (float32) must add up to the model's raw score.
EXPLAIN_FILE = "explain.onnx"
EXPLAIN_TOLERANCE = 1e-3
_SAFE_NAME = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


def check_name(value: str, what: str = "model name") -> str:
    """Names become path components: refuse anything that could escape the bundle root."""
    if not value or not set(value.lower()) <= _SAFE_NAME or value.startswith("-"):
        raise ValueError(f"invalid {what} {value!r}: use letters, digits, '_' or '-'")
    return value


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


class BundleStore:
    def __init__(self, root: Path | str):
        self.root = Path(root)

    def model_dir(self, name: str) -> Path:
        return self.root / check_name(name)

    def version_dir(self, name: str, version: str) -> Path:
        return self.model_dir(name) / "versions" / check_name(str(version), "version")

    def write(self, name: str, version: str, files: dict[str, bytes]) -> Path:
        """Write a complete version directory atomically (replacing an earlier write of it)."""
        missing = [f for f in BUNDLE_FILES if f not in files]
        if missing:
            raise ValueError(f"bundle {name} v{version} is missing {', '.join(missing)}")
        final = self.version_dir(name, version)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
        try:
            for filename, data in files.items():
                (staging / filename).write_bytes(data)
            if final.exists():
                retired = final.with_name(f".{final.name}.retired")
                shutil.rmtree(retired, ignore_errors=True)
                os.replace(final, retired)
                os.replace(staging, final)
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return final

    def _read_pointer(self, name: str, filename: str) -> str | None:
        pointer = self.model_dir(name) / filename
        if not pointer.exists():
            return None
        return str(json.loads(pointer.read_text())["version"])

    def _publish(self, name: str, version: str, filename: str) -> None:
        problems = validate_bundle(self.version_dir(name, version))
        if problems:
            raise BundleInvalidError(name, version, problems)
        pointer = {"version": str(version), "published_at": datetime.now(UTC).isoformat()}
        atomic_write(self.model_dir(name) / filename, json.dumps(pointer).encode())

    def champion(self, name: str) -> str | None:
        return self._read_pointer(name, POINTER)

    def challenger(self, name: str) -> str | None:
        return self._read_pointer(name, CHALLENGER_POINTER)

    def publish_champion(self, name: str, version: str) -> None:
        """Point serving at `version`, refusing a bundle that does not validate."""
        self._publish(name, version, POINTER)

    def publish_challenger(self, name: str, version: str) -> None:
        """Offer `version` to serving for shadow or canary traffic (validated like a champion)."""
        self._publish(name, version, CHALLENGER_POINTER)

    def clear_challenger(self, name: str) -> None:
        (self.model_dir(name) / CHALLENGER_POINTER).unlink(missing_ok=True)

    def versions(self, name: str) -> list[str]:
        folder = self.model_dir(name) / "versions"
        if not folder.exists():
            return []
        return sorted(
            (p.name for p in folder.iterdir() if not p.name.startswith(".")), key=_version_key
        )

    def load(self, name: str, version: str) -> LoadedBundle:
        return LoadedBundle(self.version_dir(name, version))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (10**9, version)


class BundleInvalidError(ValueError):
    def __init__(self, name: str, version: str, problems: list[str]):
        self.problems = problems
        super().__init__(f"bundle {name} v{version} is invalid: " + "; ".join(problems))


class LoadedBundle:
    """A bundle opened for inference: onnxruntime session plus its signature."""

    def __init__(self, path: Path):
        from retail_assets.models.lifecycle.onnx_export import session

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
