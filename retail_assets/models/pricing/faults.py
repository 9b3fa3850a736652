"""A deliberately broken pricing model, to prove the circuit breaker (tests, the load
benchmark, the simulation's `bad_model_promoted` scenario): a copy of a real bundle whose
elasticity offset is inverted, so predicted units *rise* with the price.

The copy is a complete, self-consistent bundle (its self-test is recomputed), exactly what a
bad training run could publish: nothing a bundle check can catch, only its prices. The
optimizer, believing demand grows with price, pushes every price to the top of what the
guardrails allow; the breaker must see that and fall back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from retail_assets.models.lifecycle.bundle import session

OFFSET_TABLE_SUFFIX = "_table"


def inverted_elasticity_bundle(bundle_dir: Path, version: str) -> dict[str, bytes]:
    """The files of a new bundle `version`: `bundle_dir`'s with every offset slope negated."""
    graph = onnx.load((bundle_dir / "model.onnx").as_posix())
    flipped = 0
    for init in graph.graph.initializer:
        if "_offset_" in init.name and init.name.endswith(OFFSET_TABLE_SUFFIX):
            init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))
            flipped += 1
    if not flipped:
        raise ValueError(f"{bundle_dir} has no elasticity offset to invert")
    model_bytes = graph.SerializeToString()
    files = {p.name: p.read_bytes() for p in bundle_dir.iterdir() if p.is_file()}
    files["model.onnx"] = model_bytes
    reference = json.loads(files["reference.json"])
    rows = np.array(reference["self_test"]["features"], dtype=np.float64)
    sess = session(model_bytes)
    names = [o.name for o in sess.get_outputs()]
    outputs = dict(zip(names, sess.run(None, {"features": rows}), strict=True))
    reference["self_test"]["expected"] = {k: v.tolist() for k, v in outputs.items()}
    files["reference.json"] = json.dumps(reference, indent=2).encode()
    for name in ("signature.json", "mlflow.json", "metrics.json"):
        doc = json.loads(files[name])
        doc["version"] = version
        if name == "signature.json":
            doc.setdefault("extras", {})["fault"] = "inverted elasticity (deliberately broken)"
        files[name] = json.dumps(doc, indent=2).encode()
    return files
