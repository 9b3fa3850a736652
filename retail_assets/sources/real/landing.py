"""The shared real datasets through `retail land`: which feeds each one gives, from which file,
with which mapping.

Each dataset module has ``derive_landing_files(out_dir, path=None) -> {feed: file}``: the
files `retail land` takes for the feeds the raw file cannot give row for row (aggregations,
one row per key, parsed prices, ...), and the raw file itself where it can (Walmart's sales).
The mappings live in ``benchmarks/landing/<dataset>/<feed>.yaml``; they carry what is the same
for every row (constants such as a placeholder the contract requires), the renames and the
date formats. ``docs/real_data.md`` has the table of what lands and what cannot, and why.

    python -m retail_assets.sources.real derive DATASET OUT_DIR [--land]

writes the files and prints (or, with ``--land``, runs) one `retail land` command per feed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retail_assets.settings import PROJECT_ROOT
from retail_assets.sources.real import amazon, creditcard, online_retail, walmart

MAPPINGS_DIR = PROJECT_ROOT / "benchmarks" / "landing"

DERIVATIONS: dict[str, Callable[..., dict[str, Path]]] = {
    walmart.DATASET: walmart.derive_landing_files,
    online_retail.DATASET: online_retail.derive_landing_files,
    creditcard.DATASET: creditcard.derive_landing_files,
    amazon.DATASET: amazon.derive_landing_files,
}

# Environment the platform needs to use what landed (landing itself needs none).
ENVIRONMENT: dict[str, dict[str, str]] = {
    walmart.DATASET: {"RETAIL_DEMAND_GRAIN": "week"},  # one row per store and week
    # A catalog alone does not turn search on (retail_assets/domains.py): name it.
    amazon.DATASET: {"RETAIL_DOMAINS": "search"},
}


@dataclass(frozen=True)
class LandingStep:
    feed: str
    file: Path
    mapping: Path

    def command(self, retail: str = "retail") -> list[str]:
        return [retail, "land", self.feed, str(self.file), "--map", str(self.mapping)]


def mapping_path(dataset: str, feed: str) -> Path:
    return MAPPINGS_DIR / dataset / f"{feed}.yaml"


def landing_plan(
    dataset: str, out_dir: Path | str, path: Path | str | None = None
) -> list[LandingStep]:
    """Derive the dataset's files into ``out_dir`` and return one step per feed it lands."""
    if dataset not in DERIVATIONS:
        raise KeyError(f"unknown real dataset {dataset!r}; known: {', '.join(DERIVATIONS)}")
    files = DERIVATIONS[dataset](out_dir, path)
    steps = []
    for feed, file in files.items():
        mapping = mapping_path(dataset, feed)
        if not mapping.is_file():
            raise FileNotFoundError(f"no mapping for {dataset} {feed}: expected {mapping}")
        steps.append(LandingStep(feed, Path(file), mapping))
    return steps
