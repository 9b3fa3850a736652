"""The dbt project and its preparation: the manifest the dbt assets are built from.

Nothing parses dbt when a module is imported. Entry points prepare the project first
(`retail materialize|up|ui` and the test session through `prepare_dbt_project`; `.ci/run`
through `dagster-dbt project prepare-and-package --file retail_assets/transform/project.py`);
`dagster dev` prepares it through dagster-dbt's `prepare_if_dev`. `prepare_dbt_project` parses
only when the manifest is missing or older than a project file, with the dbt executable of
this environment (not whatever `dbt` is on PATH, which a service started without the venv's
`bin` lacks).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

from retail_assets.settings import DBT_PROJECT_DIR

WAREHOUSE_ENV_VAR = "RETAIL_WAREHOUSE"


def dbt_executable() -> str:
    return str(Path(sys.executable).with_name("dbt"))


def _newest_source_mtime(project_dir: Path) -> float:
    candidates = [project_dir / "dbt_project.yml", project_dir / "profiles.yml"]
    for folder in ("models", "macros", "tests", "seeds", "snapshots"):
        candidates += [p for p in (project_dir / folder).rglob("*") if p.is_file()]
    return max((p.stat().st_mtime for p in candidates if p.exists()), default=0.0)


def prepare_dbt_project() -> Path:
    """Make sure the manifest is current (`dbt parse` when it is missing or older than any
    project file); returns its path."""
    manifest = dbt_project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _newest_source_mtime(
        Path(dbt_project.project_dir)
    ):
        return manifest
    env = {
        **os.environ,
        # Parsing never opens the warehouse, but the profile names it.
        WAREHOUSE_ENV_VAR: os.environ.get(WAREHOUSE_ENV_VAR, "unused-at-parse.duckdb"),
    }
    result = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--quiet",
            "--project-dir",
            str(dbt_project.project_dir),
            "--profiles-dir",
            str(dbt_project.profiles_dir),
            "--target-path",
            str(dbt_project.target_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or not manifest.exists():
        raise RuntimeError(
            f"dbt parse failed for {dbt_project.project_dir}:\n{result.stdout}\n{result.stderr}"
        )
    return manifest


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
# Under `dagster dev` only: dagster-dbt's own preparation (parse on every code reload).
dbt_project.prepare_if_dev()
