"""Wide, random exploration of the HTTP API with schemathesis (every check), reporting its seed.

    uv run python benchmarks/fuzz_api.py [--home /tmp/retail-fuzz] [--scale tiny]
                                         [--seed N] [--max-examples 300] [--max-time SECONDS]

CI runs the same checks deterministically (`tests/test_serving_schema.py`); this script is
where new random inputs are tried. It materializes the platform at --home if needed, starts
`retail serve` (wall clock), runs `schemathesis run --checks all` with the project's config
and hooks (`tests/api_contract/`), and prints the seed first, so any failure it finds can be
replayed with `--seed`. A failure found here becomes an explicit test case.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path

from bench_serving import ADMIN_TOKEN, VENV_BIN, ensure_platform, wait_http
from harness import free_port, start, stop

CONTRACT = Path(__file__).resolve().parents[1] / "tests" / "api_contract"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path("/tmp/retail-fuzz"))
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one")
    parser.add_argument("--max-examples", type=int, default=300)
    parser.add_argument("--max-time", type=int, default=None, help="seconds for the whole run")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"seed: {seed}  (replay with --seed {seed})", flush=True)

    settings = ensure_platform(args.home.resolve(), args.scale)
    port = free_port()
    env = {
        **os.environ,
        "RETAIL_HOME": str(settings.home),
        "RETAIL_SCALE": args.scale,
        "RETAIL_ADMIN_TOKEN": ADMIN_TOKEN,
        "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '')}",
    }
    server = start(
        [str(VENV_BIN / "retail"), "serve", "--port", str(port)],
        env,
        settings.home / "fuzz-serve.log",
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/ready")
        command = [
            str(VENV_BIN / "schemathesis"),
            "--config-file",
            str(CONTRACT / "schemathesis.toml"),
            "run",
            f"http://127.0.0.1:{port}/schema/openapi.json",
            "--checks",
            "all",
            "--request-timeout",
            "60",
            "--seed",
            str(seed),
            "--max-examples",
            str(args.max_examples),
        ]
        if args.max_time:
            command += ["--max-time", str(args.max_time)]
        result = subprocess.run(
            command,
            env={**env, "SCHEMATHESIS_HOOKS": str(CONTRACT / "hooks.py")},
            check=False,
        )
    finally:
        stop(server)
    print(
        f"seed: {seed}  exit code: {result.returncode}  server log: {settings.home}/fuzz-serve.log"
    )
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
