"""Shared fixtures: one tiny platform, materialized once per test session through the same
code path as `retail materialize`, in a private RETAIL_HOME."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from retail_assets.settings import Settings, get_settings


def settings_for_home(home: Path, scale: str = "tiny") -> Settings:
    """Point every RETAIL_* path at `home` (the process environment is what Dagster sees)."""
    os.environ["RETAIL_HOME"] = str(home)
    os.environ["RETAIL_SCALE"] = scale
    for var in ("DAGSTER_HOME", "RETAIL_WAREHOUSE", "RETAIL_LANDING_DIR", "MLFLOW_TRACKING_URI"):
        os.environ.pop(var, None)
    settings = get_settings()
    settings.ensure_dirs()
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return settings


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
