"""Land the synthetic generator's feeds (with optional drift knobs and faults)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from retail_assets.sources.landing_zone import LandingZone


def land_synthetic_feeds(
    zone: LandingZone,
    *,
    scale: str,
    seed: int,
    knobs: Any = None,
    faults: Mapping[str, Sequence[str]] | None = None,
    feeds: Sequence[str] | None = None,
    end_date: date | None = None,
) -> dict[str, Any]:
    """Generate every feed at `scale` from `seed` and land it; `feeds` limits which are landed
    (e.g. only a corrupted sales feed on top of a good landing zone); `end_date` moves the
    world's last day (the next day's landing is the same world one day longer)."""
    from retail_assets.sources.synthetic import GeneratorConfig, Knobs, generate
    from retail_assets.sources.synthetic.config import DEFAULT_END_DATE

    config = GeneratorConfig(
        scale=scale, seed=seed, knobs=knobs or Knobs(), end_date=end_date or DEFAULT_END_DATE
    )
    result = generate(config)
    selected = {name: frame for name, frame in result.feeds.items() if not feeds or name in feeds}
    return zone.write(
        selected,
        source={"kind": "synthetic", "scale": scale, "seed": seed},
        ground_truth=result.ground_truth,
        faults=faults,
        fault_seed=seed,
    )
