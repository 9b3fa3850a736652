"""Shared fixtures: one tiny platform, materialized once per test session through the same
code path as `retail materialize`, in a private RETAIL_HOME."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from retail_assets import settings as retail_settings
from retail_assets.settings import Settings
from serving.embedded import EmbeddedServer


def settings_for_home(home: Path, scale: str = "tiny") -> Settings:
    """Every RETAIL_* path under `home`, tiny scale unless told otherwise."""
    return retail_settings.settings_for_home(home, scale)


@pytest.fixture(scope="session")
def tiny_platform(tmp_path_factory):
    """A tiny-scale platform with every asset materialized once: (settings, run summary)."""
    from retail_assets.runner import materialize_platform
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    settings = settings_for_home(tmp_path_factory.mktemp("retail_home"))
    land_synthetic_feeds(LandingZone(settings.landing_dir), scale="tiny", seed=settings.seed)
    summary = materialize_platform(settings)
    assert summary.success, f"tiny platform run failed: {summary.failures} {summary.failed_checks}"
    return settings, summary


@pytest.fixture
def platform_copy(tiny_platform, tmp_path) -> Iterator[Settings]:
    """A private copy of the materialized tiny platform that a test may break."""
    settings, _ = tiny_platform
    home = tmp_path / "home"
    shutil.copytree(settings.home, home)
    copied = settings_for_home(home)
    yield copied
    settings_for_home(settings.home)


# The PostgreSQL server of the tests that need one (what `.ci/run` starts).
POSTGRES_SERVER = os.environ.get(
    "RETAIL_TEST_POSTGRES_URL", "postgresql://retail:retail@127.0.0.1:5432"
)


def _postgres_connect(database: str):
    """A psycopg2 connection to `database` on the test server."""
    import psycopg2

    parts = urlsplit(POSTGRES_SERVER)
    return psycopg2.connect(
        urlunsplit(("postgresql", parts.netloc, f"/{database}", "", "")), connect_timeout=5
    )


@pytest.fixture
def postgres_server() -> str:
    """The test PostgreSQL server's URL; absent, the test skips saying how to start one, or
    fails in CI (where `.ci/run` starts it)."""
    import psycopg2

    try:
        _postgres_connect("postgres").close()
    except psycopg2.OperationalError as exc:
        _server_absent(
            f"no PostgreSQL server at {POSTGRES_SERVER} ({str(exc).strip()[:120]})",
            "pg_ctlcluster 15 main start",
            "RETAIL_TEST_POSTGRES_URL",
        )
    return POSTGRES_SERVER.rstrip("/")


def _server_absent(reason: str, start: str, variable: str) -> None:
    """A test server is absent: fail in CI (`.ci/run` starts every one), else skip saying how
    to start it or where to point the tests."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: .ci/run starts one")
    pytest.skip(f"{reason}; start one ({start}) or set {variable}")


@pytest.fixture
def postgres_connect(postgres_server):
    """`connect(database)`: a psycopg2 connection to a database on the test server."""
    return _postgres_connect


# The Redis server of the tests that need one (what `.ci/run` starts); database 15 is theirs.
REDIS_SERVER = os.environ.get("RETAIL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_url() -> str:
    """The test Redis server's URL, emptied; absent, the test skips saying how to start one,
    or fails in CI (where `.ci/run` starts it)."""
    import redis

    client = redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        _server_absent(
            f"no Redis server at {REDIS_SERVER} ({exc})",
            "redis-server --daemonize yes",
            "RETAIL_TEST_REDIS_URL",
        )
    finally:
        client.close()
    return REDIS_SERVER


class ServingServer(EmbeddedServer):
    """The serving app for real over HTTP (`serving/embedded.py`), with the tests' admin
    token."""

    def __init__(self, settings: Settings, **overrides):
        super().__init__(settings, admin_token="test-admin-token", **overrides)


@pytest.fixture
def serving_server():
    """Factory: `with serving_server(settings) as server:` runs the app for real over HTTP."""
    return ServingServer


def pytest_sessionstart(session):
    """The dbt manifest the dbt assets are built from (entry points prepare it, never an
    import): parse once if the project changed since the last parse."""
    from retail_assets.transform.project import prepare_dbt_project

    prepare_dbt_project()


def canary_running(artifacts, model: str, versions: tuple[str, ...] = ("1", "2")):
    """The model's store with v1 champion and v2 in canary (bundles are not what the tests
    using it are about: every version is valid), for tests of who waits for a canary."""
    from retail_assets.core.store import ArtifactStore, Rollout

    bundles = artifacts.model(model)
    store = ArtifactStore(bundles.root, bundles.artifact, bundles.log, lambda _: [])
    for version in versions:
        store.write(version, {"model.onnx": b"x"})
    store.promote("1", reason="first", actor="gate")
    store.offer("2", reason="weekly", actor="gate", rollout=Rollout("canary", 0.2),
                action="canary_started")  # fmt: skip
    return store
