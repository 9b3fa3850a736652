"""One raw asset per feed contract: the feed as it landed, loaded into ``raw.<feed>``.

The raw tables keep the data exactly as received (plus ``_feed_row``, the row's position in
the landed file, so every quality problem can name its row). Typing, renaming and
deduplication happen in dbt staging, after the blocking checks in ``raw/checks.py`` pass.

Not every retailer has every feed (`retail_assets/domains.py`). A feed that has not landed, or
landed without rows, fails loudly when an enabled domain needs it (naming the feed, the domain
and `retail land`); otherwise it is optional and loads as an empty table of the contract's
schema, with the reason in the materialization's `optional_feed` metadata, which the blocking
checks read to pass it.
"""

from datetime import timedelta

import dagster as dg
import polars as pl

from retail_assets.domains import RequiredFeedError, resolve
from retail_assets.resources import LandingZoneResource
from retail_assets.settings import explicit_domains
from retail_assets.sources.contracts import FEEDS, FeedContract

FEED_ROW_COLUMN = "_feed_row"
OPTIONAL_FEED_METADATA = "optional_feed"
OPTIONAL_FEED_REASON = "optional feed not landed: no enabled domain needs it"

# Feeds land daily; a raw table older than a day means a source system stopped delivering.
RAW_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(hours=36), warn_window=timedelta(hours=26)
)


def _markdown_preview(frame: pl.DataFrame, rows: int = 5) -> str:
    head = frame.head(rows)
    header = "| " + " | ".join(head.columns) + " |"
    rule = "| " + " | ".join("---" for _ in head.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in head.iter_rows()]
    return "\n".join([header, rule, *body])


def build_raw_feed_asset(contract: FeedContract) -> dg.AssetsDefinition:
    @dg.asset(
        name=contract.name,
        key_prefix="raw",
        group_name="raw",
        description=(
            f"{contract.description}\n\nLoaded as landed from the `{contract.name}` feed; "
            f"contract key: {', '.join(contract.key)}."
        ),
        io_manager_key="warehouse_io_manager",
        freshness_policy=RAW_FRESHNESS,
        kinds={"duckdb", "polars"},
        metadata={
            "contract_columns": dg.TableSchema(
                columns=[
                    dg.TableColumn(
                        c.name,
                        str(c.dtype),
                        description=c.description,
                        constraints=dg.TableColumnConstraints(nullable=c.nullable),
                    )
                    for c in contract.columns
                ]
            )
        },
    )
    def raw_feed(context: dg.AssetExecutionContext, landing_zone: LandingZoneResource):
        zone = landing_zone.ensure_landed(context.log)
        manifest = zone.manifest() or {"feeds": {}}
        entry = manifest["feeds"].get(contract.name)
        if entry is None or not entry.get("control_total"):
            return _not_landed(context, contract, manifest, entry)
        frame = zone.read(contract.name)
        frame = _with_feed_row(frame)
        source = zone.feed_sources().get(contract.name, {})
        return dg.Output(
            frame,
            metadata={
                "control_total": entry["control_total"],
                "landed_rows": frame.height,
                "landed_at": entry["landed_at"],
                "file_sha256": entry["sha256"],
                "source": dg.MetadataValue.json(source),
                "preview": dg.MetadataValue.md(_markdown_preview(frame)),
            },
        )

    return raw_feed


def _with_feed_row(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_row_index(FEED_ROW_COLUMN, offset=1).with_columns(
        pl.col(FEED_ROW_COLUMN).cast(pl.Int64)
    )


def _not_landed(
    context: dg.AssetExecutionContext,
    contract: FeedContract,
    manifest: dict,
    entry: dict | None,
) -> dg.Output:
    """A feed that has not landed (or landed without rows): an error when an enabled domain
    needs it, else an empty table of the contract's schema."""
    problem = "has not landed" if entry is None else "landed without rows"
    needed_by = resolve(manifest, explicit_domains()).needed_by(contract.name)
    if needed_by:
        raise RequiredFeedError(contract.name, needed_by, problem)
    context.log.info(f"{contract.name}: {OPTIONAL_FEED_REASON} ({problem})")
    frame = _with_feed_row(contract.empty_frame())
    return dg.Output(
        frame,
        metadata={
            "control_total": 0,
            "landed_rows": 0,
            OPTIONAL_FEED_METADATA: f"{OPTIONAL_FEED_REASON} ({problem})",
        },
    )


raw_feed_assets = [build_raw_feed_asset(contract) for contract in FEEDS.values()]
