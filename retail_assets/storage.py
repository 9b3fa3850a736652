"""Where the platform keeps its run history and its registries: embedded files, or PostgreSQL.

By default the Dagster instance (runs, event logs, schedules and sensor ticks) and MLflow
(tracking, the model registry, the prompt registry) live in SQLite files under
`RETAIL_HOME`: nothing to install, one process at a time. A team that runs the webserver,
the daemon and several run workers against one instance outgrows SQLite (one writer; the
event log is one file per run). `RETAIL_POSTGRES_URL` moves both to a PostgreSQL server
with no other change:

    RETAIL_POSTGRES_URL=postgresql://retail:secret@db.internal:5432/retail

names the server and a database name prefix (`retail` above, the default when the URL has
no path): Dagster gets the database `<prefix>_dagster` and MLflow `<prefix>_mlflow`, each
created on first use when missing. MLflow's artifacts (model files) stay in
`RETAIL_HOME/mlflow-artifacts`; `MLFLOW_TRACKING_URI`, when set, still wins for MLflow.

The password never lands in `dagster.yaml`: the file names an environment variable
(`RETAIL_DAGSTER_POSTGRES_URL`) that the platform sets from `RETAIL_POSTGRES_URL` in every
process it starts, and Dagster's own processes inherit it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

POSTGRES_ENV = "RETAIL_POSTGRES_URL"
DAGSTER_URL_ENV = "RETAIL_DAGSTER_POSTGRES_URL"
DEFAULT_PREFIX = "retail"
PURPOSES = ("dagster", "mlflow")
# The first line of every dagster.yaml the platform writes: a file without it is the user's,
# and is left alone.
MARKER = "# Written by retail_assets/storage.py from the environment; edits are overwritten."
# The embedded instance's settings; what earlier versions wrote (without the marker) is exactly
# this, and is still the platform's own.
LEGACY_YAML = "telemetry:\n  enabled: false\nauto_materialize:\n  use_sensors: true\n"

_ensured: set[str] = set()


def validate_server_url(url: str) -> str:
    """`url` if it names a PostgreSQL server, else a ValueError naming the variable."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
        raise ValueError(
            f"{POSTGRES_ENV} must be a PostgreSQL URL such as "
            f"postgresql://user:password@host:5432/retail; got {_redact(url)!r}"
        )
    return url


def database_name(server_url: str, purpose: str) -> str:
    """The name of the database for `purpose` ("dagster" or "mlflow"): `<prefix>_<purpose>`."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}; got {purpose!r}")
    return f"{urlsplit(server_url).path.strip('/') or DEFAULT_PREFIX}_{purpose}"


def database_url(server_url: str, purpose: str) -> str:
    """The URL of the database for `purpose` on the server."""
    parts = urlsplit(server_url)
    name = database_name(server_url, purpose)
    # psycopg2 named: SQLAlchemy 2.1 defaults `postgresql://` to psycopg 3, which is not installed.
    return urlunsplit(("postgresql+psycopg2", parts.netloc, f"/{name}", parts.query, ""))


def ensure_databases(server_url: str) -> None:
    """Create the platform's databases on the server when missing (once per process)."""
    if server_url in _ensured:
        return
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(server_url)
    names = [database_name(server_url, purpose) for purpose in PURPOSES]
    admin = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    try:
        connection = psycopg2.connect(admin, connect_timeout=10)
    except psycopg2.OperationalError as exc:
        raise ValueError(
            f"{POSTGRES_ENV}: cannot connect to {_redact(server_url)}: {str(exc).strip()}"
        ) from None
    connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
    try:
        with connection.cursor() as cursor:
            for name in names:
                cursor.execute("select 1 from pg_database where datname = %s", (name,))
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg2.Error as exc:
        raise ValueError(
            f"{POSTGRES_ENV}: could not create the platform's databases on "
            f"{_redact(server_url)}: {str(exc).strip()} (the user needs CREATEDB, or create "
            f"{', '.join(names)} beforehand)"
        ) from None
    finally:
        connection.close()
    _ensured.add(server_url)


def dagster_yaml(server_url: str | None) -> str:
    """The instance configuration: SQLite under DAGSTER_HOME, or PostgreSQL storage."""
    # Declared running so that automation conditions are evaluated by the daemon as soon as
    # `retail ui` starts it; without this the sensor starts stopped.
    text = f"{MARKER}\n{LEGACY_YAML}"
    if server_url:
        text += f"storage:\n  postgres:\n    postgres_url:\n      env: {DAGSTER_URL_ENV}\n"
    return text


def configure_instance(dagster_home: Path, server_url: str | None) -> None:
    """Write DAGSTER_HOME/dagster.yaml for this storage (unless the file is the user's own)
    and, with PostgreSQL, create the databases and export the URL the file refers to."""
    if server_url:
        ensure_databases(server_url)
        os.environ[DAGSTER_URL_ENV] = database_url(server_url, "dagster")
    path = dagster_home / "dagster.yaml"
    wanted = dagster_yaml(server_url)
    if path.exists():
        current = path.read_text()
        if current == wanted:
            return
        if not current.startswith(MARKER) and current != LEGACY_YAML:
            if server_url:
                raise ValueError(
                    f"{POSTGRES_ENV} is set but {path} is not the platform's (no marker line); "
                    "configure its storage yourself or remove the file"
                )
            return
    path.write_text(wanted)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
