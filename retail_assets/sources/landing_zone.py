"""The landing zone: where source systems drop feed files for the raw assets to load.

Each feed is one Parquet file. A ``_manifest.json`` written last (after every feed file is in
place) records, per feed, the producer's control total (the number of rows it meant to send),
the file checksum and where the data came from (``source``: ``{"kind": "synthetic", ...}`` from
the generator, ``{"kind": "file", "path": ..., "landed_by": "retail land"}`` from a retailer's
own file). The raw assets compare what they load against those control totals, the way a
retailer's ETL checks vendor feeds.

Format of ``_manifest.json`` (any producer may write it, e.g. with ``LandingZone.write``)::

    {
      "landed_at": "2026-05-01T06:00:00+00:00",     # the last landing
      "source": {"kind": "file", ...},              # the last landing's source
      "feeds": {
        "sales": {
          "file": "sales.parquet",                  # next to the manifest
          "control_total": 1234,                    # rows the producer sent
          "sha256": "...",                          # of the file
          "faults": [],                             # injected faults (generator only)
          "landed_at": "2026-05-01T06:00:00+00:00",
          "source": {"kind": "file", "path": "/data/sales.csv", "mapping": "/data/sales.yaml",
                     "landed_by": "retail land"}
        }
      }
    }

A feed landed again with the same bytes keeps its entry and landing time: nothing new landed,
so the sensor loads nothing and nothing downstream reruns (tomorrow's drop of an unchanged
catalog costs nothing).

A feed entry without its own ``source`` (manifests written before feeds recorded one) has the
manifest's ``source``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from retail_assets.atomic_files import atomic_write
from retail_assets.sources.contracts import FEEDS

MANIFEST_NAME = "_manifest.json"
SYNTHETIC_KIND = "synthetic"
GROUND_TRUTH_NAME = "ground_truth.json"
QUARANTINE_DIR = "quarantine"
QUARANTINE_REPORT = "report.json"


class FeedNotLandedError(FileNotFoundError):
    """A raw asset asked for a feed that is not in the landing zone."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LandingZone:
    def __init__(self, directory: Path | str):
        self.directory = Path(directory)

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST_NAME

    def feed_path(self, feed: str) -> Path:
        if feed not in FEEDS:
            raise ValueError(f"unknown feed {feed!r}; known feeds: {', '.join(FEEDS)}")
        return self.directory / f"{feed}.parquet"

    def manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.exists():
            return None
        return json.loads(self.manifest_path.read_text())

    def ground_truth(self) -> dict[str, Any] | None:
        path = self.directory / GROUND_TRUTH_NAME
        return json.loads(path.read_text()) if path.exists() else None

    def feed_sources(self) -> dict[str, dict[str, Any]]:
        """Where each landed feed came from (its own ``source``, else the manifest's)."""
        manifest = self.manifest()
        if manifest is None:
            return {}
        default = manifest.get("source") or {}
        return {feed: entry.get("source") or default for feed, entry in manifest["feeds"].items()}

    def user_feeds(self) -> list[str]:
        """Feeds not landed by the synthetic generator (a retailer's own data): generating
        synthetic feeds must never overwrite them."""
        return sorted(
            feed
            for feed, source in self.feed_sources().items()
            if source.get("kind") != SYNTHETIC_KIND
        )

    def remove(self, feeds: Sequence[str]) -> dict[str, Any] | None:
        """Take feeds out of the landing zone (manifest entry first, then the file)."""
        manifest = self.manifest()
        if manifest is None:
            return None
        gone = [feed for feed in feeds if feed in manifest["feeds"]]
        for feed in gone:
            del manifest["feeds"][feed]
        atomic_write(self.manifest_path, json.dumps(manifest, indent=2).encode())
        for feed in gone:
            self.feed_path(feed).unlink(missing_ok=True)
        return manifest

    def feed_entry(self, feed: str) -> dict[str, Any]:
        manifest = self.manifest()
        if manifest is None or feed not in manifest["feeds"]:
            raise FeedNotLandedError(
                f"feed '{feed}' has not landed in {self.directory} (no manifest entry); "
                f"land it with `retail land {feed} FILE` (or `retail generate` for synthetic data)"
            )
        return manifest["feeds"][feed]

    @property
    def quarantine_dir(self) -> Path:
        return self.directory / QUARANTINE_DIR

    def quarantine(self, feed: str, failures: Sequence[Mapping[str, Any]]) -> Path | None:
        """Keep a copy of a landed feed that failed its blocking checks, with a report of what
        failed, under `quarantine/<feed>/<landed_at>/` (idempotent per landing). The landing
        zone itself is left alone: the next drop of that feed replaces it as usual, and the
        copy is what a data engineer inspects or sends back to the producer."""
        manifest = self.manifest()
        entry = (manifest or {"feeds": {}})["feeds"].get(feed)
        if entry is None:
            return None
        stamp = entry["landed_at"].replace(":", "").replace("+", "Z")
        folder = self.quarantine_dir / feed / stamp
        folder.mkdir(parents=True, exist_ok=True)
        source = self.directory / entry["file"]
        copy = folder / entry["file"]
        if source.exists() and not copy.exists():
            atomic_write(copy, source.read_bytes())
        report = {
            "feed": feed,
            "landed_at": entry["landed_at"],
            "sha256": entry.get("sha256"),
            "control_total": entry.get("control_total"),
            "source": entry.get("source") or (manifest or {}).get("source"),
            "faults_injected": entry.get("faults", []),
            "failed_checks": [dict(f) for f in failures],
            "what_happened": (
                "the raw table's blocking checks failed: nothing downstream (staging, marts, "
                "training sets, models, online features) was rebuilt from this landing"
            ),
        }
        atomic_write(folder / QUARANTINE_REPORT, json.dumps(report, indent=2).encode())
        return folder

    def quarantined(self, feed: str | None = None) -> list[dict[str, Any]]:
        """Every quarantine report (of one feed), oldest landing first."""
        pattern = f"{feed or '*'}/*/{QUARANTINE_REPORT}"
        reports = [json.loads(p.read_text()) for p in self.quarantine_dir.glob(pattern)]
        return sorted(reports, key=lambda r: (r["landed_at"], r["feed"]))

    def read(self, feed: str) -> pl.DataFrame:
        """The feed exactly as it landed (not conformed: the raw checks judge it)."""
        entry = self.feed_entry(feed)
        path = self.directory / entry["file"]
        if not path.exists():
            raise FeedNotLandedError(
                f"feed '{feed}': manifest lists {path} but the file is missing"
            )
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # polars raises several error types for unreadable files
            raise ValueError(f"feed '{feed}': cannot read {path}: {exc}") from exc

    def write(
        self,
        feeds: Mapping[str, pl.DataFrame],
        *,
        source: Mapping[str, Any],
        ground_truth: Mapping[str, Any] | None = None,
        faults: Mapping[str, Sequence[str]] | None = None,
        fault_seed: int = 0,
    ) -> dict[str, Any]:
        """Land feeds (optionally with injected faults) and then the manifest.

        Control totals are the row counts of the feeds as produced, before faults are injected,
        so duplicated or dropped rows in transit show up as a control-total mismatch.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        faults = dict(faults or {})
        unknown = sorted(set(faults) - set(feeds))
        if unknown:
            raise ValueError(f"faults requested for feeds not being landed: {', '.join(unknown)}")
        previous = self.manifest() or {"feeds": {}}
        entries: dict[str, Any] = dict(previous.get("feeds", {}))
        landed_at = datetime.now(UTC).isoformat()
        for name, frame in feeds.items():
            path = self.feed_path(name)
            control_total = frame.height
            if faults.get(name):
                from retail_assets.sources.synthetic import inject_faults

                frame = inject_faults(frame, name, faults[name], seed=fault_seed)
            tmp = path.with_name(f".{path.name}.tmp")
            frame.write_parquet(tmp)
            digest = _sha256(tmp)
            before = entries.get(name)
            if before and before.get("sha256") == digest and path.exists():
                # The same bytes again (an unchanged catalog in tomorrow's drop): nothing new
                # landed, so the feed keeps its landing time and nothing downstream reruns.
                tmp.unlink()
                continue
            os.replace(tmp, path)
            entries[name] = {
                "file": path.name,
                "control_total": control_total,
                "sha256": digest,
                "faults": list(faults.get(name, [])),
                "landed_at": landed_at,
                "source": dict(source),
            }
        manifest = {
            "landed_at": landed_at,
            "source": dict(source),
            "feeds": entries,
        }
        if ground_truth is not None:
            atomic_write(
                self.directory / GROUND_TRUTH_NAME,
                json.dumps(ground_truth, indent=2, default=str).encode(),
            )
        atomic_write(self.manifest_path, json.dumps(manifest, indent=2).encode())
        return manifest
