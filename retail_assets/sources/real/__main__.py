"""``python -m retail_assets.sources.real derive DATASET OUT_DIR [--land]``.

Writes the files a shared real dataset lands from and prints one `retail land` command per
feed; ``--land`` runs them (into ``RETAIL_HOME``). See ``retail_assets/sources/real/landing.py``
and ``docs/real_data.md``.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from retail_assets.sources.real.landing import DERIVATIONS, ENVIRONMENT, landing_plan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retail_assets.sources.real")
    commands = parser.add_subparsers(dest="command", required=True)
    derive = commands.add_parser("derive", help="write a dataset's landing files")
    derive.add_argument("dataset", choices=sorted(DERIVATIONS))
    derive.add_argument("out_dir", type=Path)
    derive.add_argument("--path", type=Path, help="the dataset's CSV or folder (default: settings)")
    derive.add_argument("--land", action="store_true", help="run the `retail land` commands")
    args = parser.parse_args(argv)

    steps = landing_plan(args.dataset, args.out_dir, args.path)
    retail = str(Path(sys.executable).parent / "retail")
    if not Path(retail).exists():
        retail = shutil.which("retail") or "retail"
    for name, value in ENVIRONMENT.get(args.dataset, {}).items():
        print(f"# then materialize with {name}={value}")
    for step in steps:
        print(shlex.join(["retail", *step.command()[1:]]))
        if args.land:
            done = subprocess.run(step.command(retail))
            if done.returncode != 0:
                return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
