"""Configuration of the generator: data scales, the run configuration and the drift knobs."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from retail_assets.settings import Settings

# A fixed end date keeps the output identical from one day to the next; the window runs back
# from it so that "the last two years" always means the same days.
DEFAULT_END_DATE = date(2026, 10, 31)


@dataclass(frozen=True)
class ScaleConfig:
    """How much data to generate. Row counts of the big feeds follow from these numbers."""

    name: str
    n_stores: int
    n_skus: int
    n_days: int
    n_customers: int
    n_payments: int
    n_sessions: int

    def __post_init__(self) -> None:
        if self.n_stores < 2:
            raise ValueError("n_stores must be at least 2 (one online store plus a physical one)")
        for name in ("n_customers", "n_payments", "n_sessions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive")
        if self.n_skus < 10:
            raise ValueError("n_skus must be at least 10 (new and discontinued SKUs need room)")
        if self.n_days < 120:
            raise ValueError("n_days must be at least 120 so that a season and its events fit")


SCALE_CONFIGS: dict[str, ScaleConfig] = {
    s.name: s
    for s in (
        ScaleConfig(
            "tiny",
            n_stores=3,
            n_skus=30,
            n_days=500,
            n_customers=1_500,
            # Enough payments (~600 labelled frauds) that a fraud model's test window holds a
            # few dozen frauds; fewer makes every model comparison a coin flip.
            n_payments=60_000,
            n_sessions=2_000,
        ),
        ScaleConfig(
            "small",
            n_stores=8,
            n_skus=150,
            n_days=730,
            n_customers=3_000,
            n_payments=60_000,
            n_sessions=12_000,
        ),
        ScaleConfig(
            "default",
            n_stores=20,
            n_skus=500,
            n_days=730,
            n_customers=20_000,
            n_payments=750_000,
            n_sessions=90_000,
        ),
        ScaleConfig(
            "large",
            n_stores=50,
            n_skus=2_000,
            n_days=730,
            n_customers=200_000,
            n_payments=7_500_000,
            n_sessions=900_000,
        ),
    )
}


@dataclass(frozen=True)
class DemandShift:
    """From ``start`` on, expected demand is multiplied by ``factor`` (for some departments).

    Replenishment is not told about the shift, so stock levels only catch up as the planner's
    demand estimate adapts, as with a real unexpected change.
    """

    start: date
    factor: float
    departments: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.factor > 0:
            raise ValueError(f"DemandShift.factor must be positive; got {self.factor}")


@dataclass(frozen=True)
class FraudPatternChange:
    """From ``start`` on, fraud changes in a way the existing features do not anticipate.

    ``new_pattern`` adds digital-goods fraud: mid-value gift-card purchases from the victim's own
    device and a domestic IP, so device and geography signals stay quiet. ``new_pattern_rate``
    is its share of all transactions after ``start``. ``mix_multipliers`` scales the rate of the
    existing patterns after ``start`` (e.g. ``{"card_testing": 3.0}``).
    """

    start: date
    new_pattern: bool = True
    new_pattern_rate: float = 0.006
    mix_multipliers: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.new_pattern_rate < 0.2:
            raise ValueError("FraudPatternChange.new_pattern_rate must be in [0, 0.2)")
        for pattern, multiplier in (self.mix_multipliers or {}).items():
            if multiplier < 0:
                raise ValueError(f"mix multiplier for {pattern!r} must be >= 0")


@dataclass(frozen=True)
class Knobs:
    """Optional drift injected into otherwise stationary data; None means no drift."""

    demand_shift: DemandShift | None = None
    fraud_pattern_change: FraudPatternChange | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class GeneratorConfig:
    """One generation run: scale (a name in SCALE_CONFIGS or a custom ScaleConfig), seed,
    drift knobs and the last day of the window (the window is ``n_days`` long up to it)."""

    scale: str | ScaleConfig = "default"
    seed: int = 42
    knobs: Knobs = field(default_factory=Knobs)
    end_date: date = DEFAULT_END_DATE
    # Share of payment transactions that are fraud, before any FraudPatternChange adds to it.
    fraud_rate: float = 0.01
    # Range the realised rate must fall in; the generator hits the target closely, the range
    # is what downstream checks (and the tests) hold it to.
    fraud_rate_range: tuple[float, float] = (0.005, 0.02)

    def __post_init__(self) -> None:
        if isinstance(self.scale, str) and self.scale not in SCALE_CONFIGS:
            raise ValueError(f"scale must be one of {', '.join(SCALE_CONFIGS)}; got {self.scale!r}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer; got {self.seed}")
        low, high = self.fraud_rate_range
        if not 0 < low <= self.fraud_rate <= high < 0.5:
            raise ValueError(
                f"fraud_rate {self.fraud_rate} must lie inside fraud_rate_range "
                f"{self.fraud_rate_range} (and the range inside (0, 0.5))"
            )

    @classmethod
    def from_settings(cls, settings: Settings, knobs: Knobs | None = None) -> GeneratorConfig:
        return cls(scale=settings.scale, seed=settings.seed, knobs=knobs or Knobs())

    @property
    def scale_config(self) -> ScaleConfig:
        return self.scale if isinstance(self.scale, ScaleConfig) else SCALE_CONFIGS[self.scale]

    @property
    def start_date(self) -> date:
        return self.end_date - timedelta(days=self.scale_config.n_days - 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale_config.name,
            "scale_config": asdict(self.scale_config),
            "seed": self.seed,
            "start_date": self.start_date.isoformat(),
            "end_date": self.end_date.isoformat(),
            "n_days": self.scale_config.n_days,
            "fraud_rate": self.fraud_rate,
            "fraud_rate_range": list(self.fraud_rate_range),
            "knobs": self.knobs.to_dict(),
        }


def substream(seed: int, *keys: str | int) -> np.random.Generator:
    """An independent random stream for one part of the data.

    Keys are names (hashed with CRC32, which unlike ``hash`` is stable across processes), so
    adding draws to one feed never reshuffles another.
    """
    words = [seed]
    for key in keys:
        words.append(zlib.crc32(key.encode()) if isinstance(key, str) else int(key))
    return np.random.default_rng(words)


def jsonable(value: Any) -> Any:
    """Dates to ISO strings, numpy scalars to Python, tuples to lists: ready for json.dumps."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value
