"""The raw feed contracts: what each feed landing in the warehouse must look like.

Every source (the synthetic generator, the real-data loaders, a retailer's own export) writes
feeds that follow these contracts, and the raw assets check incoming files against them
(schema drift, nulls in required columns, duplicate keys). dbt staging models read the raw
tables by these column names.

This module is the single source of truth for the feeds. The dbt sources
(`dbt_project/models/staging/_sources.yml`) repeat it for dbt - columns, DuckDB types,
`not_null` on required columns, uniqueness of the key, the at-least-one-of rules - and
`tests/test_contracts.py` fails when the two disagree: change a feed here first, then the
sources file.

The contracts describe what real retailers can send, not what the synthetic generator happens
to produce: vocabularies that vary between retailers (store formats, customer segments, page
names, label sources) are open strings, and attributes that exports often lack are nullable
wherever the platform copes without them (staging derives what it can, e.g. calendar parts from
the date, a unit price from sales value / units). What the models cannot do without stays
required. Two feeds are optional by nature (`store_calendar`, `promotion_plan`): no domain
needs them, and when they have not landed every store follows the chain calendar and no
promotion is planned.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    nullable: bool = False
    description: str = ""


@dataclass(frozen=True)
class FeedContract:
    name: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    at_least_one_of: tuple[tuple[str, ...], ...] = ()
    """Groups of nullable columns of which every row must fill at least one (e.g. a sales row
    reports units, sales value or both). A row with every column of a group null breaks the
    contract."""

    def __post_init__(self) -> None:
        names = {c.name for c in self.columns}
        for group in self.at_least_one_of:
            unknown = [c for c in group if c not in names]
            if unknown or len(group) < 2:
                raise ValueError(f"feed '{self.name}': bad at_least_one_of group {group}")
            required = [c.name for c in self.columns if c.name in group and not c.nullable]
            if required:
                raise ValueError(
                    f"feed '{self.name}': at_least_one_of group {group} holds required "
                    f"column(s) {required}; the rule is for nullable columns"
                )

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]

    def empty_frame(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.schema)

    def conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Order and cast a producer's frame to the contract; raises naming missing columns."""
        missing = [c for c in self.column_names if c not in frame.columns]
        if missing:
            raise ValueError(f"feed '{self.name}' is missing column(s): {', '.join(missing)}")
        return frame.select([pl.col(c.name).cast(c.dtype) for c in self.columns])


def _c(name: str, dtype: pl.DataType, description: str, nullable: bool = False) -> Column:
    return Column(name, dtype, nullable, description)


TS = pl.Datetime("us")

PRODUCTS = FeedContract(
    name="products",
    description="Product catalog: one row per SKU with hierarchy, text, attributes, cost and price.",
    key=("sku",),
    columns=(
        _c("sku", pl.String, "Stock keeping unit id, e.g. SKU-00042"),
        _c("department", pl.String, "Top of the merchandise hierarchy"),
        _c("category", pl.String, "Second level of the hierarchy"),
        _c("subcategory", pl.String, "Third level of the hierarchy"),
        _c("brand", pl.String, "Brand name"),
        _c("title", pl.String, "Product title as shown on the product page"),
        _c("description", pl.String, "Natural-language product description"),
        _c("color", pl.String, "Main color", nullable=True),
        _c("material", pl.String, "Main material", nullable=True),
        _c("sizes", pl.String, "Comma-separated available sizes", nullable=True),
        _c("waterproof", pl.Boolean, "Waterproof / water resistant", nullable=True),
        _c("attributes", pl.String, "All attributes as a JSON object"),
        _c(
            "unit_cost",
            pl.Float64,
            "Cost of goods per unit (unknown in some real catalogs)",
            nullable=True,
        ),
        _c("list_price", pl.Float64, "Regular shelf price per unit"),
        _c(
            "launch_date",
            pl.Date,
            "First day the SKU is sold (unknown in some real catalogs)",
            nullable=True,
        ),
        _c(
            "discontinued_date", pl.Date, "Last day the SKU is sold, if discontinued", nullable=True
        ),
    ),
)

STORES = FeedContract(
    name="stores",
    description="Stores (including the online store) with region and format.",
    key=("store_id",),
    columns=(
        _c("store_id", pl.String, "Store id, e.g. S003"),
        _c(
            "store_name",
            pl.String,
            "Display name (null when the export has only ids)",
            nullable=True,
        ),
        _c(
            "region",
            pl.String,
            "Sales region; stores of a region share its regional holidays and school holidays",
        ),
        _c(
            "format",
            pl.String,
            "Store format in the retailer's own words, e.g. hypermarket, drugstore, online "
            "(any non-empty string; 'online' marks the online store)",
        ),
        _c("city", pl.String, "City (null when unknown)", nullable=True),
        _c("opened_date", pl.Date, "Opening date (null when unknown)", nullable=True),
        _c(
            "size_sqm",
            pl.Float64,
            "Selling area in square metres (0 for online; null when unknown)",
            nullable=True,
        ),
    ),
)

CUSTOMERS = FeedContract(
    name="customers",
    description="Loyalty customers with segment, region and signup date.",
    key=("customer_id",),
    columns=(
        _c("customer_id", pl.String, "Customer id, e.g. C000123"),
        _c(
            "segment",
            pl.String,
            "Customer segment in the retailer's own words, e.g. value | mainstream | premium "
            "(null when the export has none)",
            nullable=True,
        ),
        _c("region", pl.String, "Home region (null when unknown)", nullable=True),
        _c(
            "home_store_id",
            pl.String,
            "Store the customer shops at most (null when unknown)",
            nullable=True,
        ),
        _c("signup_date", pl.Date, "Loyalty signup date (null when unknown)", nullable=True),
    ),
)

CALENDAR = FeedContract(
    name="calendar",
    description=(
        "Chain-wide retail calendar with public holidays and trading events, published ahead "
        "of the sales (forecasts need the calendar of the days they forecast)."
    ),
    key=("date",),
    columns=(
        _c("date", pl.Date, "Calendar day"),
        _c(
            "day_of_week",
            pl.Int8,
            "ISO day of week, 1 = Monday (null: derived from date)",
            nullable=True,
        ),
        _c("week_of_year", pl.Int8, "ISO week number (null: derived from date)", nullable=True),
        _c("month", pl.Int8, "Month 1-12 (null: derived from date)", nullable=True),
        _c("year", pl.Int16, "Year (null: derived from date)", nullable=True),
        _c(
            "is_holiday",
            pl.Boolean,
            "Chain-wide public holiday (stores may trade differently; null: a day with a "
            "holiday_name is one)",
            nullable=True,
        ),
        _c("holiday_name", pl.String, "Public holiday name", nullable=True),
        _c(
            "event_name",
            pl.String,
            "Trading event: black_friday, cyber_monday, christmas_peak, back_to_school, mid_year_sale",
            nullable=True,
        ),
    ),
)

SALES = FeedContract(
    name="sales",
    description=(
        "Daily point-of-sale totals per store and SKU, including zero-sale days. Every row "
        "reports units sold, sales value or both."
    ),
    key=("date", "store_id", "sku"),
    at_least_one_of=(("units_sold", "sales_value"),),
    columns=(
        _c("date", pl.Date, "Trading day"),
        _c("store_id", pl.String, "Store id"),
        _c("sku", pl.String, "SKU"),
        _c(
            "units_sold",
            pl.Int32,
            "Units sold (net of same-day returns); null when the retailer reports sales value only",
            nullable=True,
        ),
        _c(
            "unit_price",
            pl.Float64,
            "Average selling price per unit that day (null when unknown)",
            nullable=True,
        ),
        _c(
            "on_promotion",
            pl.Boolean,
            "A promotion ran on this SKU that day (null when the feed does not record promotions)",
            nullable=True,
        ),
        _c(
            "promo_discount_pct",
            pl.Float64,
            "Promotion discount as a fraction of list price (null when not recorded)",
            nullable=True,
        ),
        _c(
            "stockout",
            pl.Boolean,
            "Shelf ran empty during the day (sales are censored; null when not recorded)",
            nullable=True,
        ),
        _c(
            "revenue",
            pl.Float64,
            "units_sold * unit_price (null when either is unknown)",
            nullable=True,
        ),
        _c(
            "sales_value",
            pl.Float64,
            "Sales value of the day in the feed's currency, net of returns and discounts, as the "
            "retailer reports it; null when the retailer reports units only",
            nullable=True,
        ),
    ),
)

INVENTORY = FeedContract(
    name="inventory",
    description="Weekly end-of-day inventory snapshot per store and SKU.",
    key=("snapshot_date", "store_id", "sku"),
    columns=(
        _c("snapshot_date", pl.Date, "Day of the snapshot (end of day)"),
        _c("store_id", pl.String, "Store id"),
        _c("sku", pl.String, "SKU"),
        _c("on_hand_units", pl.Int32, "Units on hand"),
        _c(
            "on_order_units",
            pl.Int32,
            "Units ordered, not yet received (null when not reported)",
            nullable=True,
        ),
    ),
)

COMPETITOR_PRICES = FeedContract(
    name="competitor_prices",
    description="Competitor shelf prices scraped per SKU (not every day is observed).",
    key=("date", "sku", "competitor"),
    columns=(
        _c("date", pl.Date, "Day the price was observed"),
        _c("sku", pl.String, "Our SKU the competitor item was matched to"),
        _c("competitor", pl.String, "Competitor name"),
        _c("competitor_price", pl.Float64, "Observed competitor price per unit"),
    ),
)

CLICKSTREAM = FeedContract(
    name="clickstream",
    description="Online events: impressions, clicks, add-to-cart and purchases per session.",
    key=("event_id",),
    columns=(
        _c("event_id", pl.String, "Unique event id"),
        _c("event_ts", TS, "Event timestamp (UTC)"),
        _c("session_id", pl.String, "Session id"),
        _c("customer_id", pl.String, "Logged-in customer, null when anonymous", nullable=True),
        _c("sku", pl.String, "SKU the event is about"),
        _c("event_type", pl.String, "impression | click | add_to_cart | purchase"),
        _c(
            "page", pl.String, "Page type, e.g. home | search | category | product | recommendation"
        ),
        _c("position", pl.Int16, "Slot position for impressions and clicks", nullable=True),
        _c("channel", pl.String, "Client, e.g. web | app"),
    ),
)

PAYMENTS = FeedContract(
    name="payments",
    description="Card payment authorisations (online and in store).",
    key=("transaction_id",),
    columns=(
        _c("transaction_id", pl.String, "Unique transaction id"),
        _c("event_ts", TS, "Authorisation timestamp (UTC)"),
        _c("customer_id", pl.String, "Customer account"),
        _c("card_id", pl.String, "Tokenised card id"),
        _c("device_id", pl.String, "Device fingerprint (online) or terminal id (in store)"),
        _c("channel", pl.String, "online | in_store"),
        _c("store_id", pl.String, "Store for in-store payments", nullable=True),
        _c("amount", pl.Float64, "Amount charged"),
        _c("currency", pl.String, "ISO currency"),
        _c("n_items", pl.Int16, "Items in the basket"),
        _c("top_department", pl.String, "Department with the largest share of the basket"),
        _c("payment_method", pl.String, "Payment method, e.g. credit | debit | prepaid"),
        _c("billing_country", pl.String, "Card billing country"),
        _c("shipping_country", pl.String, "Shipping country (online), else billing country"),
        _c("ip_country", pl.String, "Geolocated IP country (online), else store country"),
        _c("shipping_address_id", pl.String, "Hashed shipping address", nullable=True),
    ),
)

FRAUD_LABELS = FeedContract(
    name="fraud_labels",
    description=(
        "Outcome per transaction: fraud once a chargeback or investigation reports it, "
        "legitimate once the dispute window closes without one. Not known before label_available_at."
    ),
    key=("transaction_id",),
    columns=(
        _c("transaction_id", pl.String, "Transaction the label is about"),
        _c("is_fraud", pl.Boolean, "Confirmed fraud"),
        _c(
            "fraud_type", pl.String, "card_testing | account_takeover | resale | ...", nullable=True
        ),
        _c(
            "label_source",
            pl.String,
            "How the outcome became known, e.g. chargeback | investigation | dispute_window_closed",
        ),
        _c("label_available_at", TS, "When the label became known to the business"),
    ),
)

POLICY_DOCUMENTS = FeedContract(
    name="policy_documents",
    description="Customer-facing policies and FAQs (returns, shipping, sizing, warranty).",
    key=("doc_id",),
    columns=(
        _c("doc_id", pl.String, "Document id, e.g. policy-returns"),
        _c("doc_type", pl.String, "returns | shipping | sizing | warranty | faq | ..."),
        _c("title", pl.String, "Document title"),
        _c("body", pl.String, "Markdown body"),
        _c("effective_date", pl.Date, "Date from which the policy applies"),
        _c("version", pl.Int16, "Policy version"),
    ),
)

STORE_CALENDAR = FeedContract(
    name="store_calendar",
    description=(
        "Per-store calendar, published ahead like the chain calendar: planned opening, regional "
        "public holidays, school holidays and local events. Optional: a store-day without a row "
        "(or a retailer without the feed) follows the chain calendar: open, the chain's "
        "holidays and events, no school holiday."
    ),
    key=("store_id", "date"),
    columns=(
        _c("store_id", pl.String, "Store id"),
        _c("date", pl.Date, "Calendar day"),
        _c(
            "is_open",
            pl.Boolean,
            "The store is planned to trade that day (false: planned closure, e.g. a refit or a "
            "holiday the store closes on)",
        ),
        _c(
            "holiday_name",
            pl.String,
            "Regional public holiday observed at this store (on top of the chain calendar's)",
            nullable=True,
        ),
        _c(
            "school_holiday",
            pl.Boolean,
            "Schools in the store's area are on holiday (null when not reported)",
            nullable=True,
        ),
        _c(
            "event_name",
            pl.String,
            "Local trading event at this store, e.g. store_anniversary, local_festival",
            nullable=True,
        ),
    ),
)

PROMOTION_PLAN = FeedContract(
    name="promotion_plan",
    description=(
        "Planned promotions and prices per SKU over a date range, for all stores (store_id "
        "null) or one store (overriding the chain-wide row on the days both cover). Covers the "
        "days ahead that forecasts need and may also cover the past. Optional: days without a "
        "plan are regular-price days with no promotion planned."
    ),
    key=("store_id", "sku", "start_date"),
    columns=(
        _c(
            "store_id",
            pl.String,
            "Store the plan applies to; null = every store",
            nullable=True,
        ),
        _c("sku", pl.String, "SKU"),
        _c("start_date", pl.Date, "First day of the plan"),
        _c("end_date", pl.Date, "Last day of the plan (inclusive)"),
        _c(
            "planned_price",
            pl.Float64,
            "Planned selling price per unit (null: list price less discount_pct)",
            nullable=True,
        ),
        _c(
            "discount_pct",
            pl.Float64,
            "Planned discount as a fraction of the regular price, in [0, 1) (null: none)",
            nullable=True,
        ),
        _c(
            "promo_type",
            pl.String,
            "Promotion mechanic in the retailer's own words, e.g. temporary_price_reduction; "
            "'regular' plans a regular price without a promotion (e.g. a store opting out)",
            nullable=True,
        ),
    ),
)

FEEDS: dict[str, FeedContract] = {
    c.name: c
    for c in (
        PRODUCTS,
        STORES,
        CUSTOMERS,
        CALENDAR,
        SALES,
        INVENTORY,
        COMPETITOR_PRICES,
        CLICKSTREAM,
        PAYMENTS,
        FRAUD_LABELS,
        POLICY_DOCUMENTS,
        STORE_CALENDAR,
        PROMOTION_PLAN,
    )
}
