"""What a user wants to know after a run, read from the artifact stores and the decision log
(no Dagster): per versioned artifact, what serves now, the last gated decision and its
verdict, and the headline metric against the strongest baseline or the incumbent.

Gated decisions carry `evidence.headline` = {metric, value, compared_with, compared_value,
higher_is_better}; every domain's promotion writes it, so this summary knows no domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retail_assets.artifacts import Artifacts
from retail_assets.core.decisions import DecisionLog

GATED = frozenset({"promote", "refuse", "canary", "challenger", "rollback", "manual_promote"})


@dataclass
class ArtifactSummary:
    artifact: str
    champion: str | None
    decision: str
    verdict: str
    headline: str


def headline(
    metric: str,
    value: Any,
    compared_with: str | None,
    compared_value: Any,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """The evidence a domain records for the summary."""
    return {
        "metric": metric,
        "value": value,
        "compared_with": compared_with,
        "compared_value": compared_value,
        "higher_is_better": higher_is_better,
    }


def _headline_text(entry: dict[str, Any]) -> str:
    line = (entry.get("evidence") or {}).get("headline")
    if not line or line.get("value") is None:
        return "-"
    text = f"{line['metric']} {line['value']:.4g}"
    other = line.get("compared_value")
    if line.get("compared_with") and other is not None:
        better = (
            (line["value"] > other)
            if line.get("higher_is_better", True)
            else (line["value"] < other)
        )
        text += f" vs {line['compared_with']} {other:.4g} ({'better' if better else 'not better'})"
    return text


def _verdict(entry: dict[str, Any]) -> str:
    gate = (entry.get("evidence") or {}).get("gate")
    if gate is None:
        return entry.get("reason", "")[:80]
    failed = [row for row in gate if not row.get("passed")]
    if not failed:
        return f"gate passed ({len(gate)} checks)"
    first = failed[0]
    return f"gate refused: {first['rule']} ({first['scope']}){' +' + str(len(failed) - 1) if len(failed) > 1 else ''}"


def summarize(artifacts: Artifacts, log: DecisionLog | None = None) -> list[ArtifactSummary]:
    log = log or artifacts.log
    latest: dict[str, dict[str, Any]] = {}
    champions: dict[str, str | None] = {}
    for entry in log.entries():
        champions[entry["artifact"]] = entry.get("champion_after")
        if entry["action"] in GATED:
            latest[entry["artifact"]] = entry
    out = []
    for artifact in sorted(set(latest) | {a for a in champions if not a.startswith("features/")}):
        entry = latest.get(artifact)
        out.append(
            ArtifactSummary(
                artifact=artifact,
                champion=champions.get(artifact),
                decision=f"{entry['action']} v{entry.get('version')} by {entry.get('actor')}"
                if entry
                else "-",
                verdict=_verdict(entry) if entry else "-",
                headline=_headline_text(entry) if entry else "-",
            )
        )
    return out
