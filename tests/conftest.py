"""Shared fixtures: one tiny platform, materialized once per test session through the same
code path as `retail materialize`, in a private RETAIL_HOME."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from retail_assets import settings as retail_settings
from retail_assets.settings import Settings


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


class ServingServer:
    """The serving app under uvicorn in a background thread, on a free local port."""

    def __init__(self, settings: Settings, **overrides):
        import dataclasses
        import socket
        import threading

        import uvicorn

        from serving.app import create_app
        from serving.clock import PaymentClock
        from serving.config import ServingConfig

        # The tiny world ends on the generator's fixed end date, weeks before today: tests
        # send its payments on the replay clock (the fraud state's as-of time).
        overrides.setdefault("payment_clock", PaymentClock(mode="replay"))
        config = dataclasses.replace(
            ServingConfig.from_settings(settings),
            admin_token="test-admin-token",
            poll_seconds=0.5,
            log_flush_seconds=0.5,
            **overrides,
        )
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(config)
        self.state = self.app.state.serving
        self.admin = {"authorization": "Bearer test-admin-token"}
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> ServingServer:
        import time

        import httpx

        self._thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("serving app did not become ready within 30 s")

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture
def serving_server():
    """Factory: `with serving_server(settings) as server:` runs the app for real over HTTP."""
    return ServingServer


def pytest_sessionstart(session):
    """The dbt manifest the dbt assets are built from (entry points prepare it, never an
    import): parse once if the project changed since the last parse."""
    from retail_assets.transform.project import prepare_dbt_project

    prepare_dbt_project()
