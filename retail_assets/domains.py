"""Domains: the parts of the platform a deployment runs, and the feeds each one needs.

A retailer with daily store sales wants demand forecasts and has no card payments; a payment
processor wants fraud scores and has no store sales. Each domain states the feeds it *needs*
(they must land with rows, or the domain cannot run) and the feeds it *can use* (read when they
landed, an empty table of the contract's schema when not). A feed that no enabled domain needs
is optional: absent or empty, it loads as an empty table and its blocking checks pass with the
reason (`retail_assets/raw/`).

Which domains are on, in this order:

1. `RETAIL_DOMAINS=demand,fraud`, or `domains = [...]` in the project file `retail.toml`
   (`retail_assets/settings.py`, `project_file`): exactly those, whatever
   landed. A feed one of them needs that has not landed (or landed empty) then fails the run,
   naming the feed, the domain and the command that lands it.
2. Otherwise derived from the landing manifest: a domain is on when every feed it needs has
   landed with rows (control total > 0). Search needs just the catalog, which a demand
   retailer lands as context for the forecasts: with demand on, search is on only when an
   online shop's clickstream landed too (`Domain.quiet_with`, `Domain.shown_by`); a demand
   retailer without one who wants search names it (`RETAIL_DOMAINS=demand,search`). A
   retailer who lands a catalog (and policies) without sales gets search.
3. No manifest at all (a fresh install): every domain, because the raw assets fill an empty
   landing zone with the synthetic generator.

Serving never reads the landing zone (it may run on another machine with only the published
artifacts). The pipeline writes what it resolved to `$RETAIL_HOME/domains.json` (`retail land`,
`retail generate` and every materialization), and serving reads, at start-up: `RETAIL_DOMAINS`
if set, else that record, else every domain (a deployment from before the record existed). A
record rather than `RETAIL_DOMAINS` alone, so a retailer who lands their own data does not also
have to configure serving: what the pipeline was asked to build is what serving waits for.

No Dagster import here: serving reads this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retail_assets.online_features import (
    DEMAND_FEATURE_SET,
    FRAUD_FEATURE_SET,
    PRICING_FEATURE_SET,
    RECOMMEND_FEATURE_SET,
)

if TYPE_CHECKING:
    from retail_assets.settings import Settings


def _model_chain(model: str) -> tuple[str, ...]:
    """The asset keys of one model family's lifecycle (models/lifecycle/assets.py)."""
    return tuple(
        f"{model}_{step}"
        for step in ("training_set", "model", "evaluation", "onnx", "promotion", "monitoring")
    )


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    needs: tuple[str, ...]
    """Feeds that must land with rows for the domain to run."""
    uses: tuple[str, ...] = ()
    """Optional feeds the domain reads when they landed (empty tables when not)."""
    quiet_with: tuple[str, ...] = ()
    """Domains for which this domain's needs are only context: when one of them is on,
    deriving the domains from the landed feeds leaves this one off unless one of `shown_by`
    landed too."""
    shown_by: tuple[str, ...] = ()
    """Feeds that show the retailer runs the domain even next to a `quiet_with` domain. Not
    needed to run it (`RETAIL_DOMAINS` turns it on without them)."""
    asset_keys: tuple[str, ...] = ()
    """The domain's own Dagster assets (user strings); everything upstream runs with them."""
    asset_groups: tuple[str, ...] = ()
    """Dagster asset groups that belong to the domain as a whole."""
    models: tuple[str, ...] = ()
    """Serving: model slots (bundles) that must have a champion."""
    feature_sets: tuple[str, ...] = ()
    """Serving: online feature tables that must be loaded."""
    extensions: tuple[str, ...] = ()
    """Serving: extensions (`serving/extensions.py`) the domain needs."""
    artifacts: tuple[str, ...] = ()
    """Decision-log artifact names (or `prefix/`) of the domain, for the run summary."""

    def owns_artifact(self, artifact: str) -> bool:
        return any(
            artifact.startswith(name) if name.endswith("/") else artifact == name
            for name in self.artifacts
        )


# The prediction log is what the served models answered; it is ingested with either model.
_PREDICTION_LOG = "serving/prediction_log"

DOMAINS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain(
            "demand",
            "daily store x SKU demand forecasts (POST /v1/forecast)",
            needs=("sales", "products", "stores", "calendar"),
            uses=("competitor_prices", "customers", "clickstream", "payments", "inventory"),
            asset_keys=(*_model_chain("demand"), "demand_online_features", _PREDICTION_LOG),
            models=("demand",),
            feature_sets=(DEMAND_FEATURE_SET,),
            artifacts=(
                "model/demand",
                f"features/{DEMAND_FEATURE_SET}",
                "monitoring/demand",
            ),
        ),
        Domain(
            "fraud",
            "payment fraud scores (POST /v1/fraud/score)",
            needs=("payments", "fraud_labels"),
            uses=("customers", "stores"),
            asset_keys=(*_model_chain("fraud"), "fraud_online_features", _PREDICTION_LOG),
            models=("fraud",),
            feature_sets=(FRAUD_FEATURE_SET,),
            artifacts=("model/fraud", f"features/{FRAUD_FEATURE_SET}", "monitoring/fraud"),
        ),
        Domain(
            "search",
            "semantic product search (GET /v1/search)",
            needs=("products",),
            uses=("sales",),
            # The catalog is context for demand forecasts; an online shop's events show search.
            quiet_with=("demand",),
            shown_by=("clickstream",),
            asset_groups=("search",),
            extensions=("search",),
            artifacts=("search/",),
        ),
        Domain(
            "recommend",
            "recommendations with CTR feedback (POST /v1/recommendations)",
            needs=("clickstream", "products", "customers"),
            uses=("inventory",),
            asset_keys=(
                *_model_chain("recommend"),
                "recommend_online_features",
                _PREDICTION_LOG,
            ),
            models=("recommend",),
            feature_sets=(RECOMMEND_FEATURE_SET,),
            artifacts=(
                "model/recommend",
                f"features/{RECOMMEND_FEATURE_SET}",
                "monitoring/recommend",
            ),
        ),
        Domain(
            "pricing",
            "price recommendations inside guardrails with a circuit breaker (POST /v1/price)",
            needs=("sales", "products", "stores", "calendar"),
            uses=("competitor_prices",),
            # Store sales are the demand domain's; a retailer who wants prices names it or
            # lands competitor prices (the sign of a pricing team).
            quiet_with=("demand",),
            shown_by=("competitor_prices",),
            asset_keys=(
                *_model_chain("pricing"),
                "pricing_online_features",
                _PREDICTION_LOG,
            ),
            models=("pricing",),
            feature_sets=(PRICING_FEATURE_SET,),
            artifacts=("model/pricing", f"features/{PRICING_FEATURE_SET}"),
        ),
        Domain(
            "assistant",
            "the shopping assistant and its eval gate (POST /v1/assistant/chat)",
            needs=("products", "policy_documents"),
            uses=("sales",),
            # The assistant group holds the RAG index and the eval suite's assets (evals/).
            asset_groups=("assistant",),
            asset_keys=("assistant_monitoring", _PREDICTION_LOG),
            extensions=("assistant",),
            artifacts=("assistant/",),
        ),
    )
}
DOMAIN_NAMES: tuple[str, ...] = tuple(DOMAINS)


def land_command(feed: str) -> str:
    return f"retail land {feed} FILE"


class RequiredFeedError(FileNotFoundError):
    """A feed an enabled domain needs has not landed, or landed without rows."""

    def __init__(self, feed: str, domains: Iterable[str], problem: str = "has not landed"):
        self.feed = feed
        self.domains = tuple(domains)
        self.problem = problem
        names = " and ".join(self.domains)
        plural = "s" if len(self.domains) > 1 else ""
        super().__init__(
            f"feed '{feed}' {problem} but the enabled {names} domain{plural} need{'' if plural else 's'} "
            f"it: land it with `{land_command(feed)}`"
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self):
        return (type(self), (self.feed, self.domains, self.problem))


def landed_rows(manifest: Mapping[str, Any] | None) -> dict[str, int]:
    """Rows per landed feed (the producer's control total)."""
    if not manifest:
        return {}
    return {
        feed: int(entry.get("control_total") or 0)
        for feed, entry in (manifest.get("feeds") or {}).items()
    }


@dataclass(frozen=True)
class Resolution:
    """Which domains are on, why, and what the others lack."""

    enabled: tuple[str, ...]
    how: str
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per domain, the feeds that have not landed with rows: for a domain that is off, what
    would turn it on (`needs` and `shown_by`); for one set on explicitly, the needed feeds its
    run will fail on."""

    @property
    def disabled(self) -> tuple[str, ...]:
        return tuple(name for name in DOMAIN_NAMES if name not in self.enabled)

    def needed_by(self, feed: str) -> tuple[str, ...]:
        """The enabled domains that need `feed`."""
        return tuple(name for name in self.enabled if feed in DOMAINS[name].needs)

    def describe(self) -> list[str]:
        """One line per domain: on (and why) or off (and what would turn it on)."""
        lines = []
        for name in DOMAIN_NAMES:
            lacking = self.missing.get(name, ())
            if name in self.enabled:
                state = f"on ({self.how})"
                if lacking:
                    state += f"; MISSING {', '.join(lacking)}: " + "; ".join(
                        f"`{land_command(f)}`" for f in lacking
                    )
            elif self.how == "RETAIL_DOMAINS":
                state = "off (not in RETAIL_DOMAINS)"
            elif lacking:
                needed = [feed for feed in lacking if feed in DOMAINS[name].needs]
                state = f"off: land {' or '.join(lacking) if not needed else ', '.join(lacking)}"
                state += " (`retail land FEED FILE`)"
                if not needed:
                    state += " or name it in RETAIL_DOMAINS (it runs on what landed)"
            else:
                state = f"off ({self.how})"
            lines.append(f"{name}: {state}")
        return lines


def resolve(
    manifest: Mapping[str, Any] | None, explicit: Iterable[str] | None = None
) -> Resolution:
    """The enabled domains for a landing manifest (see the module docstring for the order)."""
    rows = landed_rows(manifest)

    def lacking(feeds: Iterable[str]) -> tuple[str, ...]:
        return tuple(feed for feed in feeds if rows.get(feed, 0) <= 0)

    needs = {name: lacking(domain.needs) for name, domain in DOMAINS.items()}

    def shown(domain: Domain) -> tuple[str, ...]:
        """The feeds that would show the domain, when a domain it is quiet with is on."""
        quiet = any(not needs[other] for other in domain.quiet_with)
        unshown = lacking(domain.shown_by)
        return unshown if quiet and len(unshown) == len(domain.shown_by) else ()

    to_turn_on = {name: needs[name] + shown(domain) for name, domain in DOMAINS.items()}
    if explicit is not None:
        chosen = set(explicit)
        enabled = tuple(name for name in DOMAIN_NAMES if name in chosen)
        missing = {
            name: needs[name] if name in chosen else to_turn_on[name] for name in DOMAIN_NAMES
        }
        return Resolution(enabled, "RETAIL_DOMAINS", {k: v for k, v in missing.items() if v})
    if manifest is None:
        return Resolution(
            DOMAIN_NAMES, "nothing landed yet: the synthetic generator lands every feed", {}
        )
    enabled = tuple(name for name in DOMAIN_NAMES if not to_turn_on[name])
    missing = {name: feeds for name, feeds in to_turn_on.items() if feeds}
    return Resolution(enabled, "derived from the landed feeds", missing)


def resolve_for(settings: Settings) -> Resolution:
    """The enabled domains of a deployment: `RETAIL_DOMAINS`, else its landing manifest."""
    from retail_assets.sources.landing_zone import LandingZone

    return resolve(LandingZone(settings.landing_dir).manifest(), settings.domains)


def asset_keys(domains: Iterable[str]) -> set[str]:
    return {key for name in domains for key in DOMAINS[name].asset_keys}


def asset_groups(domains: Iterable[str]) -> set[str]:
    return {group for name in domains for group in DOMAINS[name].asset_groups}


def owns_artifact(domains: Iterable[str], artifact: str) -> bool:
    return any(DOMAINS[name].owns_artifact(artifact) for name in domains)


# -- the record serving reads -------------------------------------------------------------------


def write_record(settings: Settings, resolution: Resolution) -> Path:
    """`$RETAIL_HOME/domains.json`: what the pipeline resolved, for serving."""
    from retail_assets.atomic_files import atomic_write

    path = settings.domains_record_path
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "domains": list(resolution.enabled),
        "how": resolution.how,
        "missing": {name: list(feeds) for name, feeds in resolution.missing.items()},
        "written_at": datetime.now(UTC).isoformat(),
    }
    atomic_write(path, json.dumps(record, indent=2).encode())
    return path


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable domains record {path}: {exc}") from exc
    unknown = [name for name in record.get("domains", []) if name not in DOMAINS]
    if unknown:
        raise ValueError(f"domains record {path} names unknown domain(s) {', '.join(unknown)}")
    return record


def serving_domains(settings: Settings) -> tuple[tuple[str, ...], str]:
    """The domains serving requires, and where that came from: `RETAIL_DOMAINS`, else the
    record the pipeline wrote, else every domain."""
    if settings.domains is not None:
        return settings.domains, "RETAIL_DOMAINS"
    record = read_record(settings.domains_record_path)
    if record is not None:
        chosen = set(record["domains"])
        return (
            tuple(name for name in DOMAIN_NAMES if name in chosen),
            f"{settings.domains_record_path} ({record.get('how', 'written by the pipeline')})",
        )
    return DOMAIN_NAMES, "every domain (no domains record yet)"
