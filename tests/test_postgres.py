"""The platform on a real PostgreSQL server, chosen by `RETAIL_POSTGRES_URL` alone: the same
code runs the whole tiny platform, and the Dagster instance (runs, event logs, schedules) and
MLflow (models and prompts) end up in the server's databases, with no SQLite file left behind.

The server: `RETAIL_TEST_POSTGRES_URL` (default postgresql://retail:retail@127.0.0.1:5432,
what `.ci/run` starts). Absent outside CI, the tests skip saying so; in CI they fail.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest

from retail_assets import settings as retail_settings
from retail_assets.storage import DEFAULT_PREFIX, PURPOSES, database_name, database_url


@pytest.fixture
def server_url(postgres_server, postgres_connect):
    """A database prefix of its own on the test server, dropped afterwards."""
    url = f"{postgres_server}/{DEFAULT_PREFIX}_test_{uuid.uuid4().hex[:8]}"
    yield url
    connection = postgres_connect("postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        for purpose in PURPOSES:
            cursor.execute(f'drop database if exists "{database_name(url, purpose)}" with (force)')
    connection.close()


def _rows(connect, url: str, query: str) -> list[tuple]:
    connection = connect(urlsplit(url).path.strip("/"))
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return cursor.fetchall()
    finally:
        connection.close()


def test_the_platform_runs_on_postgres_by_configuration_alone(
    server_url, postgres_connect, tmp_path
):
    """A full tiny run with `RETAIL_POSTGRES_URL` set: the run, its materializations and check
    results are rows in the Dagster database, the registered models and prompts in the
    MLflow database; the home holds neither SQLite history nor mlflow.db."""
    import dagster as dg
    from mlflow import MlflowClient

    from retail_assets.runner import instance_for, materialize_platform
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    settings = retail_settings.settings_for_home(tmp_path / "home", "tiny", server_url)
    try:
        assert settings.postgres_url == server_url
        instance = instance_for(settings)
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"

        land_synthetic_feeds(LandingZone(settings.landing_dir), scale="tiny", seed=settings.seed)
        summary = materialize_platform(settings)
        assert summary.success, f"{summary.failures} {summary.failed_checks}"

        dagster_db = database_url(server_url, "dagster")
        runs = _rows(postgres_connect, dagster_db, "select run_id, status from runs")
        assert (summary.run_id, "SUCCESS") in runs
        events = dict(
            _rows(
                postgres_connect,
                dagster_db,
                "select dagster_event_type, count(*) from event_logs where run_id = "
                f"'{summary.run_id}' group by dagster_event_type",
            )
        )
        assert events["ASSET_MATERIALIZATION"] == len(summary.materialized)
        assert events["ASSET_CHECK_EVALUATION"] == len(summary.checks) > 0
        # The instance reads back what the server holds.
        record = instance.get_latest_materialization_event(dg.AssetKey("fraud_model"))
        assert record is not None and record.run_id == summary.run_id

        mlflow_db = database_url(server_url, "mlflow")
        assert settings.mlflow_tracking_uri == mlflow_db
        names = {
            name
            for (name,) in _rows(postgres_connect, mlflow_db, "select name from registered_models")
        }
        # The models, and the assistant's prompt (MLflow's prompt registry).
        assert {"demand", "fraud", "pricing", "recommend", "retail-assistant"} <= names, names
        client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
        assert client.get_model_version_by_alias("fraud", "champion").version
        assert _rows(postgres_connect, mlflow_db, "select count(*) from model_versions")[0][
            0
        ] >= len(names)

        home = settings.home
        assert not (home / "mlflow.db").exists()
        assert not list(settings.dagster_home.rglob("*.db")), list(
            settings.dagster_home.rglob("*.db")
        )
    finally:
        retail_settings.settings_for_home(tmp_path / "after", "tiny")


def test_a_bad_postgres_url_is_refused_naming_the_variable(monkeypatch, tmp_path):
    """A URL that is not PostgreSQL's, or a server that cannot be reached, is an error that
    names `RETAIL_POSTGRES_URL` and hides the password."""
    monkeypatch.setenv("RETAIL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RETAIL_POSTGRES_URL", "mysql://u:secret@db/x")
    with pytest.raises(ValueError, match="RETAIL_POSTGRES_URL must be a PostgreSQL URL") as bad:
        retail_settings.get_settings()
    assert "secret" not in str(bad.value)

    monkeypatch.setenv("RETAIL_POSTGRES_URL", "postgresql://u:secret@127.0.0.1:1/x")
    settings = retail_settings.get_settings()
    with pytest.raises(ValueError, match="RETAIL_POSTGRES_URL: cannot connect to") as down:
        settings.ensure_dirs()
    assert "secret" not in str(down.value) and "u:***@127.0.0.1:1" in str(down.value)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("RETAIL_POSTGRES_URL", "mysql://u:secret@db/x", "must be a PostgreSQL URL"),
        ("RETAIL_POSTGRES_URL", "postgresql://u:secret@127.0.0.1:1/x", "cannot connect to"),
        ("RETAIL_SCALE", "huge", "must be one of tiny"),
    ],
)
def test_the_cli_names_a_bad_variable_without_a_traceback(
    monkeypatch, tmp_path, variable, value, message
):
    from click.testing import CliRunner

    from retail_assets.cli import main

    monkeypatch.setenv("RETAIL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(variable, value)
    result = CliRunner().invoke(main, ["serve"])
    assert result.exit_code == 1
    assert f"{variable}" in result.output and message in result.output, result.output
    assert "Traceback" not in result.output and "secret" not in result.output
