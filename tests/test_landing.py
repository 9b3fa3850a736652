"""A retailer's own data, end to end through the `retail` command (issue 11).

The platform has to work for a retail team that brings its own exports, not only on the data it
generates. These tests play two such teams, each in its own fresh RETAIL_HOME, through the real
CLI in a subprocess (`retail land`, `retail materialize`), real Dagster runs and the serving app
over HTTP:

* a drugstore chain with daily store sales, its own column names and codes, a day-first date
  format, one store whose tills record sales value only, store formats the synthetic world does
  not have, a store of unknown size, a store calendar (a regional holiday, a planned closure)
  and a promotion plan reaching past the last sales day. It lands sales, products, stores and
  calendar (plus the two optional calendars) and must get the demand chain and nothing else, a
  ready serving app, and forecasts that follow the landed closure and plan;
* a payment processor that lands payments and fraud labels only and must get fraud scores.

The files are the tiny synthetic world's, renamed and re-coded the way a retailer's exports
differ, so the data has the structure the models need at a size a test can train on. Each
retailer is materialized once (module-scoped fixtures). The drugstore's first run is
`--select '+key:demand_promotion'` on its fresh warehouse: a documented selection that failed
there before dbt's tests were selected cautiously. The other tests are cheap: a bad file is
refused with file, line and column before anything is written, `retail generate` and
`retail up` leave a retailer's feeds alone, and a feed an enabled domain needs but nobody
landed fails the run with one readable line, not a stack trace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest

from retail_assets.settings import PATH_OVERRIDES, Settings, settings_for_home
from retail_assets.sources.landing_zone import LandingZone
from retail_assets.sources.synthetic import GeneratorConfig, generate
from retail_assets.warehouse import WarehouseResource

RETAIL = str(Path(sys.executable).with_name("retail"))
RUN_TIMEOUT = 1500  # seconds: a run takes a few minutes at these sizes


def _retail(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`retail ARGS` as a user runs it: a fresh process on RETAIL_HOME=home, tiny scale."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in PATH_OVERRIDES and k not in ("RETAIL_DOMAINS", "RETAIL_DEMAND_GRAIN")
    }
    environ.update(RETAIL_HOME=str(home), RETAIL_SCALE="tiny", COLUMNS="200", **env)
    return subprocess.run(
        [RETAIL, *args], env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@dataclass(frozen=True)
class Landing:
    feed: str
    file: Path
    mapping: Path | None = None

    def args(self) -> list[str]:
        mapping = ["--map", str(self.mapping)] if self.mapping else []
        return ["land", self.feed, str(self.file), *mapping]


def _file(folder: Path, feed: str, name: str, frame: pl.DataFrame, mapping: str) -> Landing:
    folder.mkdir(parents=True, exist_ok=True)
    frame.write_csv(folder / f"{name}.csv")
    (folder / f"{name}.yaml").write_text(mapping)
    return Landing(feed, folder / f"{name}.csv", folder / f"{name}.yaml")


# -- a drugstore chain's exports -----------------------------------------------------------------

STORE_IDS = {"S001": "WEB-1", "S002": "B-02", "S003": "B-03"}
FORMAT_CODES = {"online": "WEB", "hypermarket": "DRG", "supermarket": "EXP"}
# Sold loose by weight at one store: its tills record the value of the day's sales, not units.
VALUE_ONLY = ("B-03", "A00002")
UNKNOWN_SIZE_STORE = "B-03"


@dataclass(frozen=True)
class Drugstore:
    landings: list[Landing]
    sales_end: object
    closed: tuple[str, object]
    """(store, day): a planned closure in the forecast window."""
    regional_holiday: tuple[str, object, str]
    """(store, day, name): a holiday of that store's region only."""
    planned: tuple[str, object, object]
    """(article, first day, last day): a chain-wide promotion planned after the sales end."""


def write_drugstore(folder: Path) -> Drugstore:
    feeds = generate(GeneratorConfig(scale="tiny", seed=42)).feeds
    skus = sorted(feeds["products"]["sku"].to_list())
    articles = {sku: f"A{int(sku[-5:]):05d}" for sku in skus}
    sales_end = feeds["sales"]["date"].max()
    day_first = "%d/%m/%Y"

    stores = feeds["stores"].with_columns(pl.col("store_id").replace_strict(STORE_IDS))
    stores = stores.select(
        pl.col("store_id").alias("branch"),
        pl.col("store_name").alias("branch_name"),
        pl.col("region").alias("area"),
        pl.col("format").replace_strict(FORMAT_CODES).alias("type"),
        pl.col("city").alias("town"),
        pl.when(pl.col("store_id") == UNKNOWN_SIZE_STORE)
        .then(None)
        .otherwise(pl.col("size_sqm"))
        .alias("sqm"),
    )
    products = feeds["products"].filter(pl.col("sku").is_in(skus))
    products = products.select(
        pl.col("sku").replace_strict(articles).alias("article"),
        pl.col("department").alias("dept"),
        pl.col("category").alias("cat"),
        pl.col("subcategory").alias("subcat"),
        "brand",
        pl.col("title").alias("name"),
        pl.col("description").alias("text"),
        pl.col("list_price").alias("rrp"),
    )
    calendar = feeds["calendar"].select(
        pl.col("date").dt.strftime(day_first).alias("day"),
        pl.col("holiday_name").alias("public_holiday"),
        pl.col("event_name").alias("event"),
    )
    sales = feeds["sales"].filter(pl.col("sku").is_in(skus))
    sales = sales.with_columns(
        pl.col("store_id").replace_strict(STORE_IDS), pl.col("sku").replace_strict(articles)
    ).select(
        pl.col("date").dt.strftime(day_first).alias("day"),
        pl.col("store_id").alias("branch"),
        pl.col("sku").alias("article"),
        pl.when((pl.col("store_id") == VALUE_ONLY[0]) & (pl.col("sku") == VALUE_ONLY[1]))
        .then(None)
        .otherwise(pl.col("units_sold"))
        .alias("qty"),
        pl.col("sales_value").round(2).alias("turnover"),
        pl.col("unit_price").alias("avg_price"),
        pl.when(pl.col("on_promotion")).then(pl.lit("Y")).otherwise(pl.lit("N")).alias("promo"),
        pl.col("promo_discount_pct").alias("promo_off"),
        pl.col("stockout").cast(pl.Int8).alias("oos"),
    )

    closed = ("B-03", sales_end + timedelta(days=2))
    holiday = ("B-02", sales_end + timedelta(days=3), "Founders Day")
    store_calendar = feeds["store_calendar"].with_columns(
        pl.col("store_id").replace_strict(STORE_IDS)
    )
    is_closed = (pl.col("store_id") == closed[0]) & (pl.col("date") == closed[1])
    is_holiday = (pl.col("store_id") == holiday[0]) & (pl.col("date") == holiday[1])
    store_calendar = store_calendar.select(
        pl.col("store_id").alias("branch"),
        pl.col("date").alias("day"),
        pl.when(is_closed | ~pl.col("is_open"))
        .then(pl.lit("nein"))
        .otherwise(pl.lit("ja"))
        .alias("open"),
        pl.when(is_holiday)
        .then(pl.lit(holiday[2]))
        .otherwise(pl.col("holiday_name"))
        .alias("regional_holiday"),
        pl.col("school_holiday").alias("school_break"),
        pl.col("event_name").alias("local_event"),
    )

    article = articles[skus[3]]
    first, last = sales_end + timedelta(days=1), sales_end + timedelta(days=7)
    plan = feeds["promotion_plan"].filter(pl.col("sku").is_in(skus))
    plan = plan.with_columns(
        pl.col("store_id").replace_strict(STORE_IDS, default=None),
        pl.col("sku").replace_strict(articles),
    )
    # The planned promotion replaces whatever the plan held for the article in that week.
    plan = plan.filter(
        ~(
            (pl.col("sku") == article)
            & (pl.col("end_date") >= first)
            & (pl.col("start_date") <= last)
        )
    )
    list_price = products.filter(pl.col("article") == article)["rrp"][0]
    planned = pl.DataFrame(
        {
            "store_id": [None],
            "sku": [article],
            "start_date": [first],
            "end_date": [last],
            "planned_price": [round(list_price * 0.7, 2)],
            "discount_pct": [0.3],
            "promo_type": ["temporary_price_reduction"],
        },
        schema=plan.schema,
    )
    plan = pl.concat([plan, planned]).select(
        pl.col("store_id").alias("branch"),
        pl.col("sku").alias("article"),
        pl.col("start_date").alias("from"),
        pl.col("end_date").alias("to"),
        pl.col("planned_price").alias("price"),
        pl.col("discount_pct").alias("discount"),
        pl.col("promo_type").alias("mechanic"),
    )

    landings = [
        _file(
            folder,
            "stores",
            "branches",
            stores,
            "rename: {store_id: branch, store_name: branch_name, region: area, format: type,\n"
            "         city: town, size_sqm: sqm}\n"
            "values:\n"
            "  format: {WEB: online, DRG: drugstore, EXP: drugstore_express}\n",
        ),
        _file(
            folder,
            "products",
            "articles",
            products,
            "rename: {sku: article, department: dept, category: cat, subcategory: subcat,\n"
            "         title: name, description: text, list_price: rrp}\n"
            "constants:\n"
            '  attributes: "{}"\n',
        ),
        _file(
            folder,
            "calendar",
            "calendar",
            calendar,
            "rename: {date: day, holiday_name: public_holiday, event_name: event}\n"
            'date_format: "%d/%m/%Y"\n',
        ),
        _file(
            folder,
            "sales",
            "sales",
            sales,
            "rename: {date: day, store_id: branch, sku: article, units_sold: qty,\n"
            "         sales_value: turnover, unit_price: avg_price, on_promotion: promo,\n"
            "         promo_discount_pct: promo_off, stockout: oos}\n"
            'date_format: "%d/%m/%Y"\n',
        ),
        _file(
            folder,
            "store_calendar",
            "store_calendar",
            store_calendar,
            "rename: {store_id: branch, date: day, is_open: open,\n"
            "         holiday_name: regional_holiday, school_holiday: school_break,\n"
            "         event_name: local_event}\n"
            "values:\n"
            "  is_open: {ja: true, nein: false}\n",
        ),
        _file(
            folder,
            "promotion_plan",
            "promotions",
            plan,
            "rename: {store_id: branch, sku: article, start_date: from, end_date: to,\n"
            "         planned_price: price, discount_pct: discount, promo_type: mechanic}\n",
        ),
    ]
    return Drugstore(landings, sales_end, closed, holiday, (article, first, last))


# -- a payment processor's exports ---------------------------------------------------------------

CHANNEL_CODES = {"online": "ECOM", "in_store": "POS"}


def write_processor(folder: Path) -> list[Landing]:
    feeds = generate(GeneratorConfig(scale="tiny", seed=42)).feeds
    payments = feeds["payments"].select(
        pl.col("transaction_id").alias("txn_ref"),
        # ISO timestamps with an offset, as many APIs export them (landed in UTC).
        pl.col("event_ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+00:00").alias("created"),
        pl.col("customer_id").alias("account"),
        pl.col("card_id").alias("card_token"),
        pl.col("device_id").alias("device"),
        pl.col("channel").replace_strict(CHANNEL_CODES).alias("chan"),
        pl.col("store_id").alias("shop"),
        "amount",
        pl.col("n_items").alias("items"),
        pl.col("top_department").alias("dept"),
        pl.col("payment_method").alias("method"),
        pl.col("billing_country").alias("bill_cc"),
        pl.col("shipping_country").alias("ship_cc"),
        pl.col("ip_country").alias("ip_cc"),
        pl.col("shipping_address_id").alias("ship_addr"),
    )
    labels = feeds["fraud_labels"].select(
        pl.col("transaction_id").alias("txn_ref"),
        pl.when(pl.col("is_fraud")).then(pl.lit("yes")).otherwise(pl.lit("no")).alias("fraud"),
        pl.col("fraud_type").alias("kind"),
        pl.col("label_source").alias("how"),
        pl.col("label_available_at").dt.strftime("%Y-%m-%d %H:%M:%S%.6f").alias("known_at"),
    )
    return [
        _file(
            folder,
            "payments",
            "payments",
            payments,
            "rename: {transaction_id: txn_ref, event_ts: created, customer_id: account,\n"
            "         card_id: card_token, device_id: device, channel: chan, store_id: shop,\n"
            "         n_items: items, top_department: dept, payment_method: method,\n"
            "         billing_country: bill_cc, shipping_country: ship_cc, ip_country: ip_cc,\n"
            "         shipping_address_id: ship_addr}\n"
            "constants: {currency: USD}\n"
            "values:\n"
            "  channel: {ECOM: online, POS: in_store}\n",
        ),
        _file(
            folder,
            "fraud_labels",
            "chargebacks",
            labels,
            "rename: {transaction_id: txn_ref, is_fraud: fraud, fraud_type: kind,\n"
            "         label_source: how, label_available_at: known_at}\n",
        ),
    ]


# -- fixtures: one materialization per retailer --------------------------------------------------


@pytest.fixture(scope="module")
def restore_environment() -> Iterator[None]:
    """Serving reads the settings from this process's environment: put it back afterwards."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _settings(home: Path) -> Settings:
    os.environ.pop("RETAIL_DOMAINS", None)
    return settings_for_home(home, "tiny")


@dataclass
class Deployment:
    home: Path
    landed: list[str]
    """`retail land` output, per landing."""
    runs: list[str]
    """`retail materialize` output, per run."""

    @property
    def settings(self) -> Settings:
        return _settings(self.home)

    def domains_record(self) -> dict:
        return json.loads((self.home / "domains.json").read_text())


@pytest.fixture(scope="module")
def drugstore(tmp_path_factory, restore_environment) -> tuple[Drugstore, Deployment]:
    """The drugstore's files landed with `retail land`, then materialized: first the documented
    selection `+key:demand_promotion` on the fresh warehouse, then everything its domains need."""
    root = tmp_path_factory.mktemp("drugstore")
    data = write_drugstore(root / "exports")
    home = root / "home"
    landed = [_ok(_retail(home, *landing.args())) for landing in data.landings]
    runs = [
        _retail(home, "materialize", "--select", "+key:demand_promotion"),
        _retail(home, "materialize"),
    ]
    return data, Deployment(home, landed, [_ok(run) for run in runs])


@pytest.fixture(scope="module")
def processor(tmp_path_factory, restore_environment) -> Deployment:
    root = tmp_path_factory.mktemp("processor")
    landings = write_processor(root / "exports")
    home = root / "home"
    landed = [_ok(_retail(home, *landing.args())) for landing in landings]
    return Deployment(home, landed, [_ok(_retail(home, "materialize"))])


# -- the drugstore -------------------------------------------------------------------------------


def test_drugstore_files_land_with_their_own_names_codes_and_gaps(drugstore):
    """Every file lands through its mapping: sources recorded in the manifest, store formats in
    the retailer's own words, an unknown store size left null, units left null where the tills
    record value only, the day-first dates and ja/nein flags parsed."""
    data, deployment = drugstore
    zone = LandingZone(deployment.home / "landing")
    sources = zone.feed_sources()
    assert set(sources) == {landing.feed for landing in data.landings}
    for landing in data.landings:
        source = sources[landing.feed]
        assert source["kind"] == "file" and source["landed_by"] == "retail land"
        assert source["path"] == str(landing.file.resolve())
        assert source["mapping"] == str(landing.mapping.resolve())
    for output, landing in zip(deployment.landed, data.landings, strict=True):
        assert f"landed {landing.feed}: " in output

    stores = zone.read("stores")
    assert set(stores["format"]) == {"online", "drugstore", "drugstore_express"}
    assert stores.filter(pl.col("size_sqm").is_null())["store_id"].to_list() == [UNKNOWN_SIZE_STORE]
    sales = zone.read("sales")
    value_only = (pl.col("store_id") == VALUE_ONLY[0]) & (pl.col("sku") == VALUE_ONLY[1])
    assert sales.filter(value_only)["units_sold"].null_count() == sales.filter(value_only).height
    assert sales.filter(~value_only)["units_sold"].null_count() == 0
    assert sales["sales_value"].null_count() == 0 and sales["stockout"].any()
    assert sales["date"].max() == data.sales_end
    store_calendar = zone.read("store_calendar")
    store, day = data.closed
    assert not store_calendar.filter(pl.col("store_id") == store, pl.col("date") == day)["is_open"][
        0
    ]


def test_drugstore_gets_the_demand_domain_only(drugstore):
    """Sales, products, stores and calendar landed: demand is on and fraud, search and the
    assistant are off, in the command's output, in the record serving reads, and in what ran."""
    _, deployment = drugstore
    assert "demand: on (derived from the landed feeds)" in deployment.landed[-1]
    assert "fraud: off" in deployment.landed[-1]
    record = deployment.domains_record()
    assert record["domains"] == ["demand"]
    full_run = deployment.runs[-1]
    assert "domains on: demand; fraud off" in full_run
    assert "materialized demand_online_features" in full_run
    for other in ("fraud_model", "product_search_index", "assistant_rag_index"):
        assert other not in full_run
    # Feeds nobody landed load empty and pass their blocking checks with the reason.
    assert "raw/payments" in full_run and "empty (optional, not landed)" in full_run
    assert "0 failed" in full_run


def test_selected_demand_run_succeeds_on_a_fresh_warehouse(drugstore):
    """`retail materialize --select '+key:demand_promotion'` as the first run of a warehouse
    builds every model upstream of the promotion and its tests, trains, gates and finishes:
    dbt tests on models outside the selection are not run against tables that do not exist."""
    _, deployment = drugstore
    first = deployment.runs[0]
    assert "platform run succeeded" in first
    assert "materialized demand_promotion" in first
    assert "not materialized" not in first


def test_drugstore_calendar_layers_reach_the_marts(drugstore):
    """The store calendar's regional holiday and planned closure are facts of that store-day
    only, next to the chain calendar."""
    data, deployment = drugstore
    warehouse = WarehouseResource(path=str(deployment.home / "warehouse.duckdb"))
    days = warehouse.query(
        "select store_id, date, is_open, is_regional_holiday, regional_holiday_name "
        "from marts.dim_store_dates"
    )
    store, day, name = data.regional_holiday
    on_day = days.filter(pl.col("date") == day).sort("store_id")
    assert on_day.filter(pl.col("is_regional_holiday"))["store_id"].to_list() == [store]
    assert on_day.filter(pl.col("store_id") == store)["regional_holiday_name"][0] == name
    closed_store, closed_day = data.closed
    closed = days.filter(pl.col("date") == closed_day, ~pl.col("is_open"))["store_id"].to_list()
    assert closed == [closed_store]


def test_drugstore_serving_is_ready_and_forecasts_follow_the_landed_plan(drugstore, serving_server):
    """Serving waits only for the demand domain: /ready is true. A forecast for two stores and
    two articles comes back per day with ordered quantiles; the planned closure is forecast as
    no sales, and the article with a landed promotion is forecast at that plan."""
    data, deployment = drugstore
    article, first, last = data.planned
    closed_store, closed_day = data.closed
    other = "A00001"
    with serving_server(deployment.settings) as server:
        ready = httpx.get(f"{server.url}/ready")
        health = httpx.get(f"{server.url}/health").json()
        response = httpx.post(
            f"{server.url}/v1/forecast",
            json={"store_id": ["B-02", closed_store], "sku": [article, other], "horizon": 7},
        )
    assert ready.status_code == 200 and ready.json() == {"ready": True, "missing": []}
    assert health["domains"] == {
        "demand": "enabled",
        "fraud": "disabled",
        "search": "disabled",
        "recommend": "disabled",
        "pricing": "disabled",
        "assistant": "disabled",
    }
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["origin_date"] == str(data.sales_end)
    series = {(s["store_id"], s["sku"]): s for s in body["forecasts"]}
    assert set(series) == {(s, a) for s in ("B-02", closed_store) for a in (article, other)}
    for forecast in series.values():
        days = forecast["days"]
        assert [d["date"] for d in days] == [
            str(data.sales_end + timedelta(days=h)) for h in range(1, 8)
        ]
        assert all(0 <= d["p10"] <= d["p50"] <= d["p90"] for d in days)
        assert any(d["mean"] > 0 for d in days)
    for sku in (article, other):
        closed = {d["date"]: d for d in series[(closed_store, sku)]["days"]}[str(closed_day)]
        assert closed["mean"] == closed["p90"] == 0
    planned = series[("B-02", article)]["days"]
    assert all(d["plan_source"] == "landed plan" for d in planned)
    assert (first, last) == (
        data.sales_end + timedelta(days=1),
        data.sales_end + timedelta(days=7),
    )


# -- the payment processor -----------------------------------------------------------------------


def test_processor_gets_fraud_only_and_scores_payments(processor, serving_server):
    """Payments and chargebacks landed with the processor's own names and channel codes: fraud
    is the only domain; the run succeeds without customers, stores or sales; serving is ready
    and scores a payment with a decision and reason codes."""
    deployment = processor
    assert deployment.domains_record()["domains"] == ["fraud"]
    run = deployment.runs[0]
    assert "domains on: fraud; demand off" in run
    assert "materialized fraud_online_features" in run
    assert "demand_model" not in run
    payments = LandingZone(deployment.home / "landing").read("payments")
    assert set(payments["channel"]) == {"online", "in_store"}
    assert set(payments["currency"]) == {"USD"}

    with serving_server(deployment.settings) as server:
        ready = httpx.get(f"{server.url}/ready")
        as_of = server.state.fraud.as_of
        scored = httpx.post(
            f"{server.url}/v1/fraud/score",
            json={
                "transaction_id": "T-PROC-1",
                "transaction_ts": (as_of + timedelta(minutes=1)).isoformat(),
                "card_id": "CARD-PROC-1",
                "customer_id": payments["customer_id"][0],
                "device_id": "DEV-PROC-1",
                "amount": 420.0,
                "n_items": 1,
                "channel": "online",
                "payment_method": "credit",
                "top_department": payments["top_department"][0],
                "billing_country": "US",
                "ip_country": "US",
                "shipping_country": "US",
            },
        )
    assert ready.status_code == 200 and ready.json()["ready"] is True
    assert scored.status_code == 200, scored.text
    result = scored.json()
    assert 0 <= result["probability"] <= 1
    assert result["decision"] in ("approve", "review")
    assert result["model"]["name"] == "fraud" and result["model"]["arm"] == "champion"


# -- cheap: landing errors, never overwriting, a missing required feed ---------------------------


def test_a_bad_file_is_refused_naming_file_line_and_column_and_nothing_lands(tmp_path):
    """A sales export with a month-first date, a non-numeric quantity and a row without store:
    every problem is one line with the file, its line and the column; nothing is written."""
    home = tmp_path / "home"
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "sales.csv").write_text(
        "day,branch,article,qty\n"
        "31/10/2026,B-02,A00001,3\n"
        "10/31/2026,B-02,A00002,1\n"
        "30/10/2026,B-02,A00003,two\n"
        "30/10/2026,,A00004,5\n"
    )
    (folder / "sales.yaml").write_text(
        "rename: {date: day, store_id: branch, sku: article, units_sold: qty}\n"
        'date_format: "%d/%m/%Y"\n'
    )
    result = _retail(
        home, "land", "sales", str(folder / "sales.csv"), "--map", str(folder / "sales.yaml")
    )
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert errors[0] == "nothing landed: 3 problem(s) in sales.csv"
    assert "sales.csv line 3, column 'day': expected a date in format '%d/%m/%Y'" in errors[1]
    assert "'10/31/2026'" in errors[1]
    assert "sales.csv line 4, column 'qty': expected an integer" in result.stderr
    assert "'two'" in result.stderr
    assert "sales.csv line 5, column 'branch': empty value in required column" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (home / "landing" / "sales.parquet").exists()
    assert LandingZone(home / "landing").manifest() is None


def test_generate_and_up_never_overwrite_a_retailers_feed(tmp_path):
    """After `retail land stores`, `retail generate` refuses (naming the feed and --only), and
    `retail up` does not generate: the landed file is untouched and still the retailer's."""
    home = tmp_path / "home"
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "stores.csv").write_text(
        "store_id,region,format\nB-01,North,drugstore\nB-02,South,drugstore_express\n"
    )
    _ok(_retail(home, "land", "stores", str(folder / "stores.csv")))
    zone = LandingZone(home / "landing")
    before = zone.manifest()["feeds"]["stores"]["sha256"]

    refused = _retail(home, "generate")
    assert refused.returncode != 0
    assert "refusing to overwrite feeds landed from your own files: stores" in refused.stderr
    assert "--only" in refused.stderr
    # `up` runs on what landed and says so; with only stores it has no domain to run.
    up = _retail(home, "up", "--no-ui")
    assert "not generating synthetic feeds: the landing zone holds your own (stores" in up.stdout
    assert zone.manifest()["feeds"]["stores"]["sha256"] == before
    assert set(zone.feed_sources()) == {"stores"}
    assert zone.feed_sources()["stores"]["kind"] == "file"


def test_a_missing_required_feed_fails_with_one_readable_line(tmp_path):
    """RETAIL_DOMAINS=demand with only stores landed: each needed feed that did not land fails
    its raw asset with one line naming the asset, the feed and the `retail land` command, and
    the run log; the terminal shows no stack trace, the run log has the full one."""
    home = tmp_path / "home"
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "stores.csv").write_text("store_id,region,format\nB-01,North,drugstore\n")
    _ok(_retail(home, "land", "stores", str(folder / "stores.csv")))

    run = _retail(home, "materialize", "--select", "group:raw", RETAIL_DOMAINS="demand")
    assert run.returncode == 1
    terminal = run.stdout + run.stderr
    assert "Traceback" not in terminal
    failed = [line.strip() for line in run.stdout.splitlines() if line.strip().startswith("FAILED")]
    log = next(home.joinpath("logs").glob("run-*.log"))
    for feed in ("sales", "products", "calendar"):
        line = (
            f"FAILED raw/{feed}: feed '{feed}' has not landed but the enabled demand domain "
            f"needs it - land it with `retail land {feed} FILE` (full trace: {log})"
        )
        assert line in failed, failed
    assert not any("raw/stores" in line or "raw/payments" in line for line in failed)
    trace = log.read_text()
    assert "Stack Trace:" in trace and "raise RequiredFeedError" in trace


def test_a_project_file_sets_domains_and_grain_and_the_environment_wins(tmp_path, monkeypatch):
    """A deployment may keep its choices in `retail.toml` (`[retail]` domains and
    demand_grain); the environment variables override it, and a typo in the file is an error
    naming the file and the known keys or domains."""
    from retail_assets.settings import get_settings

    project = tmp_path / "retail.toml"
    project.write_text('[retail]\ndomains = ["demand"]\ndemand_grain = "week"\n')
    monkeypatch.setenv("RETAIL_PROJECT_FILE", str(project))
    monkeypatch.delenv("RETAIL_DOMAINS", raising=False)
    monkeypatch.delenv("RETAIL_DEMAND_GRAIN", raising=False)
    settings = get_settings()
    assert settings.domains == ("demand",) and settings.demand_grain == "week"

    monkeypatch.setenv("RETAIL_DOMAINS", "fraud")
    monkeypatch.setenv("RETAIL_DEMAND_GRAIN", "day")
    settings = get_settings()
    assert settings.domains == ("fraud",) and settings.demand_grain == "day"

    monkeypatch.delenv("RETAIL_DOMAINS")
    project.write_text('[retail]\ndomains = ["demand", "forecasting"]\n')
    with pytest.raises(ValueError, match=r"retail\.toml names unknown domain\(s\) forecasting"):
        get_settings()
    project.write_text('[retail]\ndomain = ["demand"]\n')
    with pytest.raises(ValueError, match=r"unknown key\(s\) domain in \[retail\]"):
        get_settings()
