"""The model lifecycle end to end through real Dagster runs on tiny data: train, register in
MLflow, evaluate, export to ONNX, gate, publish the bundle; refusal of a worse challenger;
rollback; a broken bundle never replacing a good one."""

import json

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from retail_assets.artifacts import Artifacts
from retail_assets.core.store import ArtifactInvalidError
from retail_assets.models.lifecycle.bundle import validate_bundle

MODELS = ("demand", "fraud", "recommend")


def _services(settings):
    from retail_assets.models.lifecycle.operations import lifecycle_for

    return lifecycle_for(settings)


def _store(settings, model: str):
    return Artifacts.from_settings(settings).model(model)


def _decisions(settings, model: str) -> list[dict]:
    return Artifacts.from_settings(settings).log.entries(f"model/{model}")


def _materialize_model(settings, model: str, run_config: dict | None = None):
    from retail_assets.runner import materialize_platform

    return materialize_platform(settings, selection=f"key:{model}_model+", run_config=run_config)


@pytest.mark.parametrize("model", MODELS)
def test_platform_run_registers_promotes_and_publishes_a_servable_bundle(tiny_platform, model):
    """The full tiny run trained the model, registered version 1 in MLflow as champion,
    published its bundle for serving, and that bundle runs in a bare onnxruntime session with
    the same predictions LightGBM gives (self-test rows and a fresh test-window sample)."""
    settings, summary = tiny_platform
    for step in ("training_set", "model", "evaluation", "onnx", "promotion"):
        assert f"{model}_{step}" in summary.materialized
    services = _services(settings)
    assert services.champion(model) == "1"
    assert _store(settings, model).champion() == "1"
    folder = _store(settings, model).version_dir("1")
    assert validate_bundle(folder) == []

    signature = json.loads((folder / "signature.json").read_text())
    reference = json.loads((folder / "reference.json").read_text())
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    rows = np.array(reference["self_test"]["features"], dtype=np.float64)
    outputs = dict(
        zip(
            [o.name for o in session.get_outputs()],
            session.run(None, {"features": rows}),
            strict=True,
        )
    )
    registered = services.registry.load_model(model, "1")
    assert set(outputs) == set(signature["outputs"]) == set(registered.output_names)
    expected = registered.outputs(rows)
    for name in registered.output_names:
        assert np.max(np.abs(outputs[name] - expected[name])) < 1e-5
    entries = _decisions(settings, model)
    assert entries[0]["action"] == "promote" and entries[0]["champion_after"] == "1"


def test_challenger_trained_on_shuffled_labels_is_refused_and_champion_stays(platform_copy):
    """A negative-control challenger (training labels permuted) is registered as version 2 but
    refused by the gate; the reasons name the failing metric and segment; champion, serving
    pointer and MLflow aliases are unchanged and the refusal is in the promotion log."""
    settings = platform_copy
    summary = _materialize_model(
        settings, "demand", {"ops": {"demand_model": {"config": {"shuffle_labels_seed": 7}}}}
    )
    assert "demand_promotion" in summary.materialized, summary.failures
    services = _services(settings)
    assert services.champion("demand") == "1"
    assert services.registry.alias_version("demand", "challenger") == "2"
    assert _store(settings, "demand").champion() == "1"
    # Refused but servable: offered to serving as the challenger for shadow/canary traffic.
    assert _store(settings, "demand").challenger() == "2"
    refusal = [e for e in _decisions(settings, "demand") if e["action"] == "refuse"][-1]
    assert refusal["action"] == "refuse" and refusal["version"] == "2"
    assert "wape" in refusal["reason"]
    assert "category=" in refusal["reason"] or "store_region=" in refusal["reason"]


def test_rollback_restores_the_previous_champion_and_a_broken_bundle_is_never_published(
    platform_copy,
):
    """Retraining on the same data yields v2, which passes the gate and starts as a canary;
    promoted by hand over v1. A corrupted v1 bundle cannot be promoted back by hand (pointer
    stays on v2); once repaired, `retail models rollback` restores v1 as champion in MLflow
    and for serving, and both steps are logged."""
    from retail_assets.cli import main

    settings = platform_copy
    summary = _materialize_model(settings, "demand")
    assert summary.success, summary.failures
    services = _services(settings)
    assert services.champion("demand") == "1" and _store(settings, "demand").challenger() == "2"
    services.manual_promote("demand", "2", reason="test: canary accepted by hand")
    assert services.champion("demand") == "2"

    store = _store(settings, "demand")
    onnx_path = store.version_dir("1") / "model.onnx"
    good = onnx_path.read_bytes()
    onnx_path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArtifactInvalidError, match=r"model\.onnx"):
        services.manual_promote("demand", "1", reason="test: corrupted bundle")
    runner = CliRunner()
    refused = runner.invoke(main, ["models", "rollback", "demand", "--reason", "test"])
    assert refused.exit_code != 0 and "invalid" in refused.output
    assert store.champion() == "2" and services.registry.alias_version("demand", "champion") == "2"

    onnx_path.write_bytes(good)
    result = runner.invoke(
        main, ["models", "rollback", "demand", "--reason", "forecast bias after holiday"]
    )
    assert result.exit_code == 0, result.output
    assert "v2 -> v1" in result.output
    assert services.registry.alias_version("demand", "champion") == "1"
    assert store.champion() == "1"
    last = _decisions(settings, "demand")[-1]
    assert last["action"] == "rollback" and last["evidence"]["rolled_back_from"] == "2"
    assert last["reason"] == "forecast bias after holiday"

    listing = runner.invoke(main, ["models", "list", "demand"])
    assert listing.exit_code == 0 and "champion v1" in listing.output


def test_when_no_trained_model_beats_the_best_baseline_the_baseline_is_served(
    platform_copy, serving_server
):
    """A first deployment (no champion) whose trained demand model cannot beat the strongest
    simple forecast (a negative control trained on permuted labels): the model is refused,
    the best baseline is registered as its own version, gated, promoted with a reason that
    says so, and served over HTTP like any model - never the worse model, never nothing."""
    import httpx

    from retail_assets.models.demand.evaluate import baseline_sources
    from retail_assets.models.lifecycle.bundle import LoadedBundle

    settings = platform_copy
    store = _store(settings, "demand")
    store.roles_path.unlink()  # as if no demand model had ever been promoted
    summary = _materialize_model(
        settings, "demand", {"ops": {"demand_model": {"config": {"shuffle_labels_seed": 7}}}}
    )
    assert "demand_promotion" in summary.materialized, summary.failures
    decisions = _decisions(settings, "demand")
    refused, promoted = decisions[-3], decisions[-1]
    assert (refused["action"], refused["version"]) == ("refuse", "2")
    assert "the best of" in refused["reason"]
    assert promoted["action"] == "promote" and promoted["version"] == "3"
    baseline = promoted["evidence"]["baseline"]
    sources = baseline_sources()
    assert baseline in sources
    assert f"no trained model beat the best simple forecast ({baseline})" in promoted["reason"]
    assert store.champion() == "3"

    bundle = LoadedBundle(store.version_dir("3"))
    assert validate_bundle(store.version_dir("3")) == []
    features = bundle.feature_names
    rows = np.array(
        json.loads((store.version_dir("3") / "reference.json").read_text())["self_test"]["features"]
    )
    first = rows[:, features.index(sources[baseline][0])]
    outputs = bundle.predict_matrix(rows)
    known = ~np.isnan(first)
    closed = rows[:, features.index("is_open")] == 0
    np.testing.assert_allclose(outputs["mean"][known & ~closed], first[known & ~closed])
    assert (outputs["mean"][closed] == 0).all()  # a planned-closed store sells nothing
    assert (outputs["p10"] <= outputs["p50"]).all() and (outputs["p50"] <= outputs["p90"]).all()

    with serving_server(settings) as server:
        response = httpx.post(
            f"{server.url}/v1/forecast", json={"store_id": "S001", "sku": "SKU-00004"}
        )
    assert response.status_code == 200, response.text
    assert response.json()["forecasts"][0]["model"]["version"] == "3"
