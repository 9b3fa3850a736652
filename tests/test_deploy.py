"""`deploy/`, checked offline as far as it can be: the Dagster instance file loads with
Dagster's own config schema (and, on a real PostgreSQL, becomes a working instance); the
serving manifests probe routes the app has, on the port it listens on, with a command the CLI
accepts; the Helm values and the image point at the code location this project defines."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from retail_assets.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def _instance_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster" / "dagster.yaml", home / "dagster.yaml")
    return home


def test_the_instance_file_loads_with_dagsters_config_schema(tmp_path):
    """deploy/dagster/dagster.yaml passes Dagster's instance schema."""
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(_instance_home(tmp_path)))
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "RETAIL_DAGSTER_POSTGRES_URL"}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_the_instance_file_makes_a_working_instance_on_postgres(
    postgres_server, tmp_path, monkeypatch
):
    """On a real PostgreSQL the file becomes an instance with PostgreSQL storage and the
    queued run coordinator, which can store and read a run."""
    import dagster as dg

    from retail_assets.storage import database_url, ensure_databases

    server = f"{postgres_server}/retail_deploytest"
    ensure_databases(server)
    monkeypatch.setenv("RETAIL_DAGSTER_POSTGRES_URL", database_url(server, "dagster"))
    instance = dg.DagsterInstance.from_config(str(_instance_home(tmp_path)))
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"

        @dg.asset
        def ping() -> int:
            return 1

        result = dg.materialize([ping], instance=instance)
        assert instance.get_run_by_id(result.run_id).is_success
    finally:
        instance.dispose()


def _documents(path: Path) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text()) if doc}


def test_the_serving_manifests_probe_routes_the_app_has():
    """Readiness on /ready and liveness on /health, both routes of the serving app, on the
    container port `retail serve` is told to listen on; the Service and the autoscaler point
    at the Deployment."""
    from click.testing import CliRunner

    from retail_assets.cli import main
    from serving.app import create_app

    docs = _documents(DEPLOY / "k8s" / "serving.yaml")
    deployment = docs["Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    routes = {route.path for route in create_app().routes}
    assert {"/ready", "/health"} <= routes

    command = container["command"]
    assert command[:2] == ["retail", "serve"]
    port = int(command[command.index("--port") + 1])
    assert container["ports"][0]["containerPort"] == port
    serve = main.get_command(None, "serve")
    assert {"--host", "--port"} <= {opt for p in serve.params for opt in p.opts}
    assert CliRunner().invoke(main, ["serve", "--help"]).exit_code == 0

    name = deployment["metadata"]["name"]
    assert docs["Service"]["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == name


def test_the_helm_values_and_the_image_run_this_code_location():
    """The user-code deployment serves the module workspace.yaml loads; the image's default
    command is the manifests' serving command, and everything it copies exists."""
    values = yaml.safe_load((DEPLOY / "helm" / "dagster-values.yaml").read_text())
    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]["module_name"]
    deployment = values["dagster-user-deployments"]["deployments"][0]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == module
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["postgresql"]["postgresqlDatabase"] == "retail_dagster"

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, flags=re.M):
        for name in source.split():
            assert (PROJECT_ROOT / name).exists(), f"deploy/Dockerfile copies missing {name}"
    cmd = re.search(r"^CMD (\[.+\])$", dockerfile, flags=re.M).group(1)
    serving = _documents(DEPLOY / "k8s" / "serving.yaml")["Deployment"]
    assert yaml.safe_load(cmd) == serving["spec"]["template"]["spec"]["containers"][0]["command"]
