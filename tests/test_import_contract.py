"""Serving loads runtimes only: the core, onnxruntime, tokenizers, usearch, llama-cpp and
Litestar, never the training stack. Checked in a fresh interpreter that builds the app and
loads every artifact of the tiny platform (bundles, feature tables, search index, RAG index,
prompt), then inspects `sys.modules`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

TRAINING_STACK = (
    "dagster",
    "dagster_dbt",
    "dbt",
    "lightgbm",
    "sklearn",
    "mlflow",
    "torch",
    "transformers",
    "sentence_transformers",
    "onnxmltools",
    "skl2onnx",
)

SCRIPT = """
import json, sys, time
started = time.perf_counter()
from serving.app import create_app
imported = time.perf_counter() - started
app = create_app()
serving = app.state.serving
serving.refresh()
print(json.dumps({
    "import_seconds": imported,
    "missing": serving.missing(),
    "problems": serving.problems(),
    "loaded": sorted({name.split(".")[0] for name in sys.modules}),
}))
"""


def test_the_serving_app_loads_every_artifact_without_the_training_stack(tiny_platform):
    settings, _ = tiny_platform
    env = {**os.environ, "RETAIL_HOME": str(settings.home), "RETAIL_SCALE": "tiny"}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["missing"] == [], report
    leaked = sorted(set(report["loaded"]) & set(TRAINING_STACK))
    assert leaked == [], f"serving imported the training stack: {leaked}"
