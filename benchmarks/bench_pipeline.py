"""Time the data pipeline per stage: synthetic generation, raw load (+ blocking checks), and
the dbt build (models + tests), at the given scales.

    uv run python benchmarks/bench_pipeline.py --scales small default

Target (issue 2): `default` scale, raw load through marts, under 60 s on 2 cores.
Each scale runs in a fresh temporary RETAIL_HOME through the same runner as `retail
materialize`, so Dagster overhead is included.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 60.0


def bench_scale(scale: str, seed: int) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix=f"retail-bench-{scale}-"))
    os.environ["RETAIL_HOME"] = str(home)
    os.environ["RETAIL_SCALE"] = scale
    os.environ.pop("DAGSTER_HOME", None)
    from retail_assets.runner import materialize_platform
    from retail_assets.settings import get_settings
    from retail_assets.sources.landing_zone import LandingZone
    from retail_assets.sources.synthetic_landing import land_synthetic_feeds

    settings = get_settings()
    settings.ensure_dirs()
    try:
        started = time.perf_counter()
        manifest = land_synthetic_feeds(LandingZone(settings.landing_dir), scale=scale, seed=seed)
        generate_s = time.perf_counter() - started
        raw_rows = sum(e["control_total"] for e in manifest["feeds"].values())

        raw = materialize_platform(settings, selection="group:raw")
        assert raw.success, raw.failures
        transform = materialize_platform(
            settings, selection="group:staging or group:intermediate or group:marts"
        )
        assert transform.success, transform.failures
        mart_rows = sum(rows or 0 for key, rows in transform.materialized.items())
        return {
            "raw_rows": raw_rows,
            "generate_s": generate_s,
            "raw_load_s": raw.seconds,
            "dbt_build_s": transform.seconds,
            "dbt_rows_written": mart_rows,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["small", "default"])
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    print(
        f"{'scale':<8} {'raw rows':>12} {'generate':>10} {'rows/s':>12} {'raw load':>10} "
        f"{'rows/s':>12} {'dbt build':>10} {'rows/s':>12} {'raw->marts':>11}"
    )
    for scale in args.scales:
        r = bench_scale(scale, args.seed)
        raw_to_marts = r["raw_load_s"] + r["dbt_build_s"]
        verdict = ""
        if scale == "default":
            verdict = "  PASS" if raw_to_marts < TARGET_SECONDS else "  FAIL"
            verdict += f" (target < {TARGET_SECONDS:.0f} s)"
        print(
            f"{scale:<8} {r['raw_rows']:>12,} {r['generate_s']:>9.1f}s {r['raw_rows'] / r['generate_s']:>12,.0f} "
            f"{r['raw_load_s']:>9.1f}s {r['raw_rows'] / r['raw_load_s']:>12,.0f} "
            f"{r['dbt_build_s']:>9.1f}s {r['raw_rows'] / r['dbt_build_s']:>12,.0f} "
            f"{raw_to_marts:>10.1f}s{verdict}"
        )


if __name__ == "__main__":
    main()
