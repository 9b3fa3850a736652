"""Serving configuration, read once from the environment (through the platform settings).

The enabled domains come from `RETAIL_DOMAINS`, else from the record the pipeline writes
(`$RETAIL_HOME/domains.json`), else every domain: serving never reads the landing zone (see
`retail_assets/domains.py`). They are read once, at start-up; restart serving after enabling a
domain (its routes are registered when the app is built).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from retail_assets.artifacts import Artifacts
from retail_assets.core import clock
from retail_assets.domains import DOMAIN_NAMES, serving_domains
from retail_assets.models.pricing.breaker import (
    DEFAULT_MIN_CHANGES,
    DEFAULT_SIGMAS,
    DEFAULT_WINDOW,
    BreakerSettings,
)
from retail_assets.models.recommend.rules import MAX_PER_CATEGORY
from retail_assets.settings import Settings, get_settings
from serving.clock import DEFAULT_MAX_AGE, DEFAULT_MAX_AHEAD, PaymentClock

log = logging.getLogger("retail.serving")


def _seconds(var: str, default: timedelta) -> timedelta:
    value = os.environ.get(var)
    if not value:
        return default
    try:
        return timedelta(seconds=float(value))
    except ValueError:
        raise ValueError(f"{var} must be a number of seconds; got {value!r}") from None


def _number(var: str, default, kind):
    value = os.environ.get(var)
    if not value:
        return default
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"{var} must be a {kind.__name__}; got {value!r}") from None


def _cap(value: str | None) -> int | None:
    if not value:
        return MAX_PER_CATEGORY
    try:
        cap = int(value)
    except ValueError:
        raise ValueError(
            f"RETAIL_RECOMMEND_MAX_PER_CATEGORY must be a whole number (0: no cap); got {value!r}"
        ) from None
    if cap < 0:
        raise ValueError(f"RETAIL_RECOMMEND_MAX_PER_CATEGORY must be >= 0; got {cap}")
    return cap or None


@dataclass(frozen=True)
class ServingConfig:
    artifacts: Artifacts
    search_dir: Path
    assistant_dir: Path
    prediction_log_dir: Path
    admin_token: str | None
    poll_seconds: float
    log_flush_seconds: float
    log_buffer_rows: int
    max_body_bytes: int
    payment_clock: PaymentClock = field(default_factory=PaymentClock)
    domains: tuple[str, ...] = DOMAIN_NAMES
    """The domains this deployment serves (`retail_assets/domains.py`): `/ready` waits only for
    their models, feature tables and extensions, and only their extensions are loaded."""
    domains_source: str = "every domain"
    recommend_max_per_category: int | None = MAX_PER_CATEGORY
    """The diversity cap of recommendations (`models/recommend/rules.py`); None: no cap.
    `RETAIL_RECOMMEND_MAX_PER_CATEGORY` (0 turns it off); a request may set its own."""
    redis_url: str | None = None
    """`RETAIL_REDIS_URL`: the fraud velocity state and the pricing breaker live in Redis,
    shared by every worker (`serving/redis_state.py`); unset, in the process (one worker)."""
    redis_prefix: str = "retail"
    """`RETAIL_REDIS_PREFIX`: the key prefix, so deployments can share one Redis server."""
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    """The pricing circuit breaker (`models/pricing/breaker.py`):
    `RETAIL_PRICING_BREAKER_WINDOW`, `_MIN_CHANGES`, `_SIGMAS`."""

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ServingConfig:
        settings = settings or get_settings()
        # A malformed RETAIL_NOW fails here, naming it, not as a 500 on every logged request;
        # a set one freezes serving's clock (every prediction logged at that instant): say so.
        now = clock.now()
        if os.environ.get(clock.CLOCK_ENV, "").strip():
            log.warning(
                "%s=%s: serving logs every prediction at this fixed time (the platform's "
                "clock for simulations); unset it for live traffic",
                clock.CLOCK_ENV,
                now.isoformat(),
            )
        domains, domains_source = serving_domains(settings)
        return cls(
            artifacts=Artifacts.from_settings(settings),
            search_dir=settings.search_dir,
            assistant_dir=settings.assistant_dir,
            prediction_log_dir=settings.prediction_log_dir,
            admin_token=os.environ.get("RETAIL_ADMIN_TOKEN") or None,
            poll_seconds=float(os.environ.get("RETAIL_SERVING_POLL_SECONDS", "5")),
            log_flush_seconds=float(os.environ.get("RETAIL_PREDICTION_LOG_FLUSH_SECONDS", "0.5")),
            log_buffer_rows=int(os.environ.get("RETAIL_PREDICTION_LOG_BUFFER_ROWS", "5000")),
            max_body_bytes=int(os.environ.get("RETAIL_SERVING_MAX_BODY_BYTES", str(1 << 20))),
            payment_clock=PaymentClock(
                mode=os.environ.get("RETAIL_SERVING_CLOCK", "wall"),
                max_age=_seconds("RETAIL_PAYMENT_MAX_AGE_SECONDS", DEFAULT_MAX_AGE),
                max_ahead=_seconds("RETAIL_PAYMENT_MAX_AHEAD_SECONDS", DEFAULT_MAX_AHEAD),
            ),
            domains=domains,
            domains_source=domains_source,
            recommend_max_per_category=_cap(os.environ.get("RETAIL_RECOMMEND_MAX_PER_CATEGORY")),
            redis_url=os.environ.get("RETAIL_REDIS_URL") or None,
            redis_prefix=os.environ.get("RETAIL_REDIS_PREFIX") or "retail",
            breaker=BreakerSettings(
                window=_number("RETAIL_PRICING_BREAKER_WINDOW", DEFAULT_WINDOW, int),
                min_changes=_number("RETAIL_PRICING_BREAKER_MIN_CHANGES", DEFAULT_MIN_CHANGES, int),
                sigmas=_number("RETAIL_PRICING_BREAKER_SIGMAS", DEFAULT_SIGMAS, float),
            ),
        )
