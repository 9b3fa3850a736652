"""Synthetic retail data: every raw feed of the platform, with known ground truth.

    from retail_assets.sources.synthetic import GeneratorConfig, Knobs, generate

    result = generate(GeneratorConfig(scale="tiny", seed=42, knobs=Knobs()))
    result.feeds["sales"]        # polars frames, one per contract in contracts.FEEDS
    result.ground_truth          # JSON-serialisable parameters that produced them

The same configuration always produces identical frames. ``Knobs`` inject drift (a demand
shift, a new fraud pattern); ``inject_faults`` damages a generated frame the way real
exports get damaged, for testing the quality checks.
"""

from retail_assets.sources.synthetic.config import (
    DEFAULT_END_DATE,
    SCALE_CONFIGS,
    DemandShift,
    FraudPatternChange,
    GeneratorConfig,
    Knobs,
    ScaleConfig,
)
from retail_assets.sources.synthetic.faults import FAULT_KINDS, inject_faults
from retail_assets.sources.synthetic.generate import GenerationResult, generate

__all__ = [
    "DEFAULT_END_DATE",
    "FAULT_KINDS",
    "SCALE_CONFIGS",
    "DemandShift",
    "FraudPatternChange",
    "GenerationResult",
    "GeneratorConfig",
    "Knobs",
    "ScaleConfig",
    "generate",
    "inject_faults",
]
