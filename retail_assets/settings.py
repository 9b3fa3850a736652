"""One place that reads configuration from the environment.

Every path the platform writes to lives under ``RETAIL_HOME`` (default ``.retail`` in the
project root), so deleting that directory resets the platform. Nothing here needs a server;
`RETAIL_POSTGRES_URL` moves the Dagster instance and MLflow to one (`storage.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from retail_assets.core import clock

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
SCALES = ("tiny", "small", "default", "large")


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    home: Path
    dagster_home: Path
    warehouse_path: Path
    landing_dir: Path
    real_data_dir: Path
    scale: str
    seed: int
    domains: tuple[str, ...] | None = None
    """`RETAIL_DOMAINS`: the domains to run, set explicitly (None: derived from the landed
    feeds, see `retail_assets/domains.py`)."""
    postgres_url: str | None = None
    """`RETAIL_POSTGRES_URL`: the PostgreSQL server that holds the Dagster instance and MLflow
    (None: SQLite files under the home; see `retail_assets/storage.py`)."""
    demand_grain: str = "day"
    """`RETAIL_DEMAND_GRAIN`: the period of the sales feed, `day` or `week` (weekly sales are
    dated on the last day of their week). Season length, lags and horizons follow from it
    (`retail_assets/models/demand/grain.py`); the dbt marts read the same variable."""
    parallel_steps: int = 1
    """`RETAIL_PARALLEL_STEPS`: steps a run executes at once. 1 (the default): one after
    another in the run's process; N > 1: Dagster's multiprocess executor, N steps in their own
    processes (independent branches, e.g. fraud, demand and search, train at once); the
    warehouse's lock (`warehouse/lock.py`) keeps DuckDB to one writer."""

    @property
    def mlflow_tracking_uri(self) -> str:
        """`MLFLOW_TRACKING_URI` when set, else the MLflow database on `RETAIL_POSTGRES_URL`'s
        server, else SQLite under the home."""
        if "MLFLOW_TRACKING_URI" in os.environ:
            return os.environ["MLFLOW_TRACKING_URI"]
        if self.postgres_url:
            from retail_assets.storage import database_url, ensure_databases

            ensure_databases(self.postgres_url)
            return database_url(self.postgres_url, "mlflow")
        return f"sqlite:///{self.home / 'mlflow.db'}"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlflow-artifacts"

    @property
    def bundles_dir(self) -> Path:
        """Where promoted model bundles are published for serving."""
        return _path("RETAIL_BUNDLES_DIR", self.home / "bundles")

    @property
    def decision_log_path(self) -> Path:
        """The one append-only log of every publish, promotion, refusal and rollback."""
        return self.home / "decisions.jsonl"

    @property
    def monitoring_dir(self) -> Path:
        """Monitoring reports per model (drift, live performance, the verdict)."""
        return self.home / "monitoring"

    @property
    def online_features_dir(self) -> Path:
        """Published online feature tables (one folder per model, versions + CURRENT)."""
        return _path("RETAIL_ONLINE_FEATURES_DIR", self.home / "online_features")

    @property
    def prediction_log_dir(self) -> Path:
        """Serving's prediction log: date-partitioned Parquet the pipeline ingests."""
        return _path("RETAIL_PREDICTION_LOG_DIR", self.home / "prediction_logs")

    @property
    def search_dir(self) -> Path:
        """Text encoder, product embeddings and versioned search indices."""
        return _path("RETAIL_SEARCH_DIR", self.home / "search")

    @property
    def assistant_dir(self) -> Path:
        """RAG indices and assistant artefacts."""
        return _path("RETAIL_ASSISTANT_DIR", self.home / "assistant")

    @property
    def domains_record_path(self) -> Path:
        """The enabled domains as the pipeline last resolved them (read by serving, which never
        reads the landing zone; see `retail_assets/domains.py`)."""
        return self.home / "domains.json"

    @property
    def asset_storage_dir(self) -> Path:
        """Pickled non-tabular asset values (training sets, evaluations, decisions)."""
        return self.home / "assets"

    def ensure_dirs(self) -> None:
        from retail_assets.storage import configure_instance

        for directory in (self.home, self.dagster_home, self.landing_dir):
            directory.mkdir(parents=True, exist_ok=True)
        configure_instance(self.dagster_home, self.postgres_url)


def project_file() -> Path:
    """`RETAIL_PROJECT_FILE`, default `retail.toml` in the working directory: a deployment's
    choices kept with its code rather than in its environment, e.g.

        [retail]
        domains = ["demand"]     # or "all"; absent: derived from the landed feeds
        demand_grain = "week"    # "day" (default) or "week"

    An environment variable (`RETAIL_DOMAINS`, `RETAIL_DEMAND_GRAIN`) wins over the file."""
    return Path(os.environ.get("RETAIL_PROJECT_FILE", "retail.toml")).expanduser()


def _project_setting(name: str):
    """One key of the project file's `[retail]` table (None when the file or key is absent);
    an unreadable file or an unknown key is an error naming the file."""
    import tomllib

    path = project_file()
    if not path.is_file():
        return None
    try:
        table = tomllib.loads(path.read_text()).get("retail", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"project file {path}: {exc}") from exc
    unknown = sorted(set(table) - {"domains", "demand_grain"})
    if unknown:
        raise ValueError(
            f"project file {path}: unknown key(s) {', '.join(unknown)} in [retail]; "
            "known: domains, demand_grain"
        )
    return table.get(name)


def explicit_domains() -> tuple[str, ...] | None:
    """`RETAIL_DOMAINS=demand,fraud` (or `all`), else `domains` in the project file: the
    domains to run whatever has landed (neither: derived from the landed feeds). Unknown names
    are an error naming the known ones."""
    from retail_assets.domains import DOMAIN_NAMES

    text = os.environ.get("RETAIL_DOMAINS", "").strip()
    source = "RETAIL_DOMAINS"
    if text:
        names = [name.strip() for name in text.split(",") if name.strip()]
    else:
        value = _project_setting("domains")
        if value is None:
            return None
        source = f"domains in {project_file()}"
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f'{source} must be a list of domain names or "all"')
    if names == ["all"]:
        return DOMAIN_NAMES
    unknown = [name for name in names if name not in DOMAIN_NAMES]
    if unknown:
        raise ValueError(
            f"{source} names unknown domain(s) {', '.join(unknown)}; "
            f"known: {', '.join(DOMAIN_NAMES)}"
        )
    return tuple(name for name in DOMAIN_NAMES if name in names)


def get_settings() -> Settings:
    """Read settings from the environment (call again after changing it, e.g. in tests)."""
    clock.now()  # a malformed RETAIL_NOW is named now, not when a check or a request reads it
    home = _path("RETAIL_HOME", PROJECT_ROOT / ".retail")
    scale = os.environ.get("RETAIL_SCALE", "default")
    if scale not in SCALES:
        raise ValueError(f"RETAIL_SCALE must be one of {', '.join(SCALES)}; got {scale!r}")
    seed_text = os.environ.get("RETAIL_SEED", "42")
    try:
        seed = int(seed_text)
    except ValueError:
        raise ValueError(f"RETAIL_SEED must be an integer; got {seed_text!r}") from None
    return Settings(
        home=home,
        dagster_home=_path("DAGSTER_HOME", home / "dagster"),
        warehouse_path=_path("RETAIL_WAREHOUSE", home / "warehouse.duckdb"),
        landing_dir=_path("RETAIL_LANDING_DIR", home / "landing"),
        real_data_dir=_path(
            "RETAIL_REAL_DATA_DIR", PROJECT_ROOT.parent / "shared" / "data" / "real"
        ),
        scale=scale,
        seed=seed,
        domains=explicit_domains(),
        postgres_url=_postgres_url(),
        demand_grain=_demand_grain(),
        parallel_steps=_parallel_steps(),
    )


def _parallel_steps() -> int:
    text = os.environ.get("RETAIL_PARALLEL_STEPS", "1").strip() or "1"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"RETAIL_PARALLEL_STEPS must be a whole number >= 1; got {text!r}")
    return value


def _postgres_url() -> str | None:
    from retail_assets.storage import POSTGRES_ENV, validate_server_url

    value = os.environ.get(POSTGRES_ENV, "").strip()
    return validate_server_url(value) if value else None


def _demand_grain() -> str:
    grain = os.environ.get("RETAIL_DEMAND_GRAIN", "").strip()
    source = "RETAIL_DEMAND_GRAIN"
    if not grain:
        grain = _project_setting("demand_grain") or "day"
        source = f"demand_grain in {project_file()}"
    if grain not in ("day", "week"):
        raise ValueError(f"{source} must be day or week; got {grain!r}")
    return grain


# Variables that move one path away from its place under RETAIL_HOME.
PATH_OVERRIDES = (
    "DAGSTER_HOME",
    "RETAIL_WAREHOUSE",
    "RETAIL_LANDING_DIR",
    "RETAIL_BUNDLES_DIR",
    "RETAIL_ONLINE_FEATURES_DIR",
    "RETAIL_PREDICTION_LOG_DIR",
    "RETAIL_SEARCH_DIR",
    "RETAIL_ASSISTANT_DIR",
    "MLFLOW_TRACKING_URI",
)


def settings_for_home(home: Path, scale: str, postgres_url: str | None = None) -> Settings:
    """Point every path at `home` in this process's environment (what Dagster, dbt and child
    processes read), dropping per-path overrides; for tests and benchmarks. The Dagster
    instance and MLflow live under `home` too unless `postgres_url` names a server (a
    `RETAIL_POSTGRES_URL` of the shell is dropped: homes would share its databases)."""
    from retail_assets.storage import POSTGRES_ENV

    os.environ["RETAIL_HOME"] = str(home)
    os.environ["RETAIL_SCALE"] = scale
    for var in PATH_OVERRIDES:
        os.environ.pop(var, None)
    if postgres_url:
        os.environ[POSTGRES_ENV] = postgres_url
    else:
        os.environ.pop(POSTGRES_ENV, None)
    settings = get_settings()
    settings.ensure_dirs()
    os.environ["DAGSTER_HOME"] = str(settings.dagster_home)
    return settings
