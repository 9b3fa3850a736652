"""Serving start-up: time to import the app, time until `/ready`, resident memory once ready,
and whether the training stack was loaded.

    uv run python benchmarks/bench_startup.py --home /tmp/retail-bench-startup [--scale tiny]
                                              [--runs 3] [--checkout PATH]

Materializes the platform at --home if needed. `--checkout` runs the same measurements with
another checkout's virtualenv and code (e.g. a worktree of an earlier commit) against a home
materialized by that checkout, so before/after figures come from one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import free_port, start, stop

TRAINING_STACK = ("dagster", "lightgbm", "sklearn", "mlflow", "torch", "transformers")
IMPORT_PROBE = f"""
import json, sys, time
t = time.perf_counter()
import serving.app
seconds = time.perf_counter() - t
print(json.dumps({{"import_s": seconds,
                  "training_stack": sorted(m for m in {TRAINING_STACK!r} if m in sys.modules),
                  "modules": len(sys.modules)}}))
"""


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn runs in the `retail` process)."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def measure(checkout: Path, home: Path, scale: str) -> dict:
    python = checkout / ".venv" / "bin" / "python"
    env = {**os.environ, "RETAIL_HOME": str(home), "RETAIL_SCALE": scale}
    probe = subprocess.run(
        [str(python), "-c", IMPORT_PROBE],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    imported = json.loads(probe.stdout.strip().splitlines()[-1])
    port = free_port()
    log = home / "logs" / f"bench-startup-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    process = start(
        [str(checkout / ".venv" / "bin" / "retail"), "serve", "--port", str(port)], env, log
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"not ready within 180 s; see {log}")
        ready_s = time.perf_counter() - started
        time.sleep(1.0)
        memory = rss_mib(process.pid)
    finally:
        stop(process)
    return {**imported, "ready_s": ready_s, "rss_mib": memory}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/retail-bench-startup"))
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--checkout", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args()
    if args.checkout == Path(__file__).resolve().parents[1]:
        from bench_serving import ensure_platform

        ensure_platform(args.home.resolve(), args.scale)
    runs = [
        measure(args.checkout.resolve(), args.home.resolve(), args.scale) for _ in range(args.runs)
    ]
    print(f"checkout {args.checkout} home {args.home} ({args.scale}), {args.runs} runs")
    for key in ("import_s", "ready_s", "rss_mib"):
        values = [r[key] for r in runs]
        print(
            f"  {key:10} median {statistics.median(values):8.2f}  runs {[round(v, 2) for v in values]}"
        )
    print(
        f"  training stack imported by `import serving.app`: {runs[0]['training_stack'] or 'none'}"
    )
    print(f"  modules after import: {runs[0]['modules']}")


if __name__ == "__main__":
    sys.exit(main())
