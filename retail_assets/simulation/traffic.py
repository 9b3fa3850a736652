"""One simulated day of customer traffic, sent to the serving app over HTTP, and the world's
answer to what was served.

The simulator is the oracle: it knows what really happened that day (the world's sales,
which payments were fraud, the shoppers' tastes, the true price response), so it scores what
serving answered, per model version and arm, independently of the platform's own monitoring
(which is what the simulation tests):

* forecast: every store x SKU for the day -> WAPE against the day's units sold;
* fraud: the day's payments in time order -> recall and precision at serving's decision,
  against the world's labels (known to the simulator at once; the platform sees them only
  when `label_available_at` passes);
* recommendations: customers who visit that day -> the generator's shoppers respond to the
  lists (`Shoppers.respond`) -> click-through rate; their clicks, carts and purchases join the
  world's clickstream, which lands the next night, so the platform's own monitoring and the
  recommender's canary judge the lists serving logged on what customers did with them;
* prices: every store x SKU -> each price checked against the bundle's guardrails, and its
  true margin (`models/pricing/truth.TrueResponse`: the world's elasticities) against the
  margin of today's regular price on the day's units;
* search: the titles of a few products (new ones first) -> found in the top 5;
* assistant: one question -> answered.
Every response status is counted: a 5xx is a failure of the platform whatever the route.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from datetime import time as dtime
from typing import Any

import httpx
import numpy as np
import polars as pl

from retail_assets.core import clock
from retail_assets.simulation.world import World

# The day's traffic, on the platform's clock (`core/clock.py`): serving logs it at this
# simulated time, and the customers' responses follow it.
TRAFFIC = dtime(12, 0)
MAX_RECOMMEND_CUSTOMERS = 40
SEARCH_QUERIES = 6
FRAUD_BATCH = 500
ASSISTANT_QUESTION = "What is your return policy for shoes?"
PAYMENT_FIELDS = (
    "transaction_id", "customer_id", "card_id", "device_id", "channel", "amount",
    "n_items", "top_department", "payment_method", "billing_country", "shipping_country",
    "ip_country", "shipping_address_id",
)  # fmt: skip


@dataclass
class DayTraffic:
    """What one day of traffic returned: per route the requests, 5xx and latencies; per
    model and (version, arm) the oracle's metrics."""

    requests: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    server_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    client_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    metrics: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "server_errors": dict(self.server_errors),
            "client_errors": dict(self.client_errors),
            "latency_p95_ms": {
                route: round(float(np.percentile(values, 95)), 2)
                for route, values in self.latency_ms.items()
                if values
            },
            "metrics": self.metrics,
            "checks": self.checks,
        }


class Client:
    """httpx with the day's bookkeeping: every call counted by route and status."""

    def __init__(self, url: str, traffic: DayTraffic):
        self.http = httpx.Client(base_url=url, timeout=120)
        self.traffic = traffic

    def call(self, route: str, method: str, path: str, **kwargs) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError:
            self.traffic.requests[route] += 1
            self.traffic.server_errors[route] += 1
            return None
        self.traffic.latency_ms[route].append((time.perf_counter() - started) * 1000)
        self.traffic.requests[route] += 1
        if response.status_code >= 500:
            self.traffic.server_errors[route] += 1
        elif response.status_code >= 400:
            self.traffic.client_errors[route] += 1
            self.traffic.checks.setdefault("first_client_error", f"{route}: {response.text[:400]}")
        return response

    def close(self) -> None:
        self.http.close()


def _by_arm(rows: list[dict[str, Any]], keys=("version", "arm")) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        out[tuple(row[k] for k in keys)].append(row)
    return out


BASELINE_WEEKS = 4  # the recent profile: the same weekday over the last four weeks
SEASON_DAYS = 364  # last year's same weekday


def baseline_forecasts(world: World, day: date) -> dict[str, dict[tuple[str, str], float]]:
    """The strongest simple forecasts for `day` from the sales before it: the recent profile
    (mean of the same weekday over the last BASELINE_WEEKS weeks) and last year's same
    weekday scaled by the year-over-year level of the last 28 days."""
    sales = world.feeds["sales"].filter(pl.col("date") < day)
    keys = ["store_id", "sku"]
    weeks = [day - timedelta(days=7 * k) for k in range(1, BASELINE_WEEKS + 1)]
    profile = (
        sales.filter(pl.col("date").is_in(weeks))
        .group_by(keys)
        .agg((pl.col("units_sold").sum() / BASELINE_WEEKS).alias("p"))
    )
    last_year = day - timedelta(days=SEASON_DAYS)
    recent = sales.filter(pl.col("date") >= day - timedelta(days=28))["units_sold"].sum()
    before = sales.filter(
        (pl.col("date") < last_year) & (pl.col("date") >= last_year - timedelta(days=28))
    )["units_sold"].sum()
    scale = recent / before if before else 1.0
    seasonal = sales.filter(pl.col("date") == last_year).select(
        *keys, (pl.col("units_sold") * scale).alias("p")
    )
    return {
        "recent_profile": {(r[0], r[1]): r[2] for r in profile.iter_rows()},
        "last_year_scaled": {(r[0], r[1]): r[2] for r in seasonal.iter_rows()},
    }


def _wape_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for (version, arm), group in _by_arm(rows).items():
        error, actual = sum(r["error"] for r in group), sum(r["actual"] for r in group)
        out.append(
            {
                "version": version,
                "arm": arm,
                "series": len(group),
                "error_sum": round(error, 3),
                "actual_sum": actual,
                "wape": round(error / actual, 4) if actual else None,
            }
        )
    return out


def forecasts(client: Client, world: World, day: date, out: DayTraffic) -> None:
    """Every store x SKU for `day`; the oracle's WAPE per version and arm, and the simple
    baselines' on the same series (arm `baseline`), so the model is judged against them."""
    products = world.feeds_through(day)["products"]["sku"].to_list()
    stores = world.feeds["stores"]["store_id"].to_list()
    response = client.call(
        "forecast", "POST", "/v1/forecast", json={"store_id": stores, "sku": products, "horizon": 1}
    )
    if response is None or response.status_code != 200:
        return
    sold = world.day_of("sales", day).select("store_id", "sku", "units_sold")
    actual = {(r["store_id"], r["sku"]): r["units_sold"] for r in sold.iter_rows(named=True)}
    baselines = baseline_forecasts(world, day)
    rows = []
    for series in response.json()["forecasts"]:
        mean = next((d["mean"] for d in series["days"] if d["date"] == day.isoformat()), None)
        if mean is None:
            continue
        key = (series["store_id"], series["sku"])
        truth = actual.get(key, 0)
        rows.append(
            {
                "version": series["model"]["version"],
                "arm": series["model"]["arm"],
                "sku": series["sku"],
                "error": abs(mean - truth),
                "actual": truth,
            }
        )
        for name, predictions in baselines.items():
            rows.append(
                {
                    "version": name,
                    "arm": "baseline",
                    "sku": series["sku"],
                    "error": abs(predictions.get(key, 0.0) - truth),
                    "actual": truth,
                }
            )
    served = [r for r in rows if r["arm"] != "baseline"]
    out.checks["forecast_series"] = len(served)
    out.checks["forecast_skus"] = sorted({r["sku"] for r in served})
    out.metrics["demand"] = _wape_rows(rows)


def payments(client: Client, world: World, day: date, out: DayTraffic) -> None:
    todays = world.day_of("payments", day).sort("event_ts")
    labels = world.feeds["fraud_labels"].select("transaction_id", "is_fraud")
    todays = todays.join(labels, on="transaction_id", how="left")
    rows = []
    for start in range(0, todays.height, FRAUD_BATCH):
        chunk = todays.slice(start, FRAUD_BATCH)
        body = [
            {
                **{k: v for k, v in r.items() if k in PAYMENT_FIELDS and v is not None},
                "transaction_ts": r["event_ts"].isoformat(),
            }
            for r in chunk.iter_rows(named=True)
        ]
        response = client.call("fraud", "POST", "/v1/fraud/score:batch", json={"payments": body})
        if response is None or response.status_code != 200:
            continue
        for result, truth in zip(
            response.json()["results"], chunk["is_fraud"].to_list(), strict=True
        ):
            rows.append(
                {
                    "version": result["model"]["version"],
                    "arm": result["model"]["arm"],
                    "flagged": result["decision"] != "approve",
                    "fraud": bool(truth),
                }
            )
    metrics = []
    for (version, arm), group in _by_arm(rows).items():
        frauds = sum(r["fraud"] for r in group)
        flagged = sum(r["flagged"] for r in group)
        caught = sum(r["fraud"] and r["flagged"] for r in group)
        metrics.append(
            {
                "version": version,
                "arm": arm,
                "payments": len(group),
                "frauds": frauds,
                "caught": caught,
                "flagged": flagged,
                "recall": round(caught / frauds, 4) if frauds else None,
                "precision": round(caught / flagged, 4) if flagged else None,
            }
        )
    out.metrics["fraud"] = metrics


def recommendations(client: Client, world: World, day: date, shoppers, out: DayTraffic) -> None:
    visits = (
        world.day_of("clickstream", day)
        .drop_nulls("customer_id")
        .select("customer_id", "session_id")
        .unique("customer_id", keep="first")
        .sort("customer_id")
        .head(MAX_RECOMMEND_CUSTOMERS)
    )
    served = []
    for visit in visits.iter_rows(named=True):
        response = client.call(
            "recommend",
            "POST",
            "/v1/recommendations",
            json={"customer_id": visit["customer_id"], "k": 10},
        )
        if response is None or response.status_code != 200:
            continue
        body = response.json()
        served.append(
            {
                "request_id": f"{day}-{visit['customer_id']}",
                # The time serving logged the list at (the platform's clock, simulated).
                "ts": clock.now_naive(),
                "customer_id": visit["customer_id"],
                "session_id": visit["session_id"],
                "skus": [item["sku"] for item in body["items"]],
                "version": body["model"]["version"],
                "arm": body["model"]["arm"],
            }
        )
    if not served:
        return
    frame = pl.DataFrame(served).with_columns(pl.col("ts").cast(pl.Datetime("us")))
    salt = int(day.toordinal())
    events = shoppers.respond(frame.drop("version", "arm"), salt=salt)
    world.add_responses("clickstream", events)
    clicked = set()
    if events.height and "event_type" in events.columns:
        clicks = events.filter(pl.col("event_type") == "click")
        # Events carry the session or customer of the list they answer.
        clicked = set(clicks["customer_id"].drop_nulls().to_list())
    metrics = []
    for (version, arm), group in _by_arm(served).items():
        hits = sum(r["customer_id"] in clicked for r in group)
        metrics.append(
            {
                "version": version,
                "arm": arm,
                "lists": len(group),
                "ctr": round(hits / len(group), 4),
            }
        )
    out.metrics["recommend"] = metrics


def prices(
    client: Client, world: World, day: date, state: pl.DataFrame, truth, rails, out: DayTraffic
) -> None:
    """Every store x SKU priced; guardrails checked by the oracle; true margin on the day's
    units at the served price against today's regular price."""
    from retail_assets.models.pricing.guardrails import PriceContext, violations

    priced = state.filter(pl.col("unit_cost").is_not_null() & pl.col("regular_price").is_not_null())
    if priced.height == 0:
        return
    items = [{"store_id": r["store_id"], "sku": r["sku"]} for r in priced.iter_rows(named=True)]
    response = client.call("price", "POST", "/v1/price:batch", json={"items": items})
    if response is None or response.status_code != 200:
        return
    answers = response.json()["prices"]
    sold = world.day_of("sales", day).select("store_id", "sku", "units_sold")
    units = {(r["store_id"], r["sku"]): r["units_sold"] for r in sold.iter_rows(named=True)}
    rows, broken = [], 0
    for row, answer in zip(priced.iter_rows(named=True), answers, strict=True):
        ctx = PriceContext(
            cost=row["unit_cost"],
            current_price=row["regular_price"],
            price_week_ago=row.get("regular_price_week_ago"),
            competitor_price=row.get("competitor_min_price"),
        )
        price = float(answer["price"])
        if rails is not None and violations(rails, ctx, price):
            broken += 1
        base = units.get((row["store_id"], row["sku"]), 0)
        elasticity = truth.effective(pl.Series([row["category"]]))[0] if truth else -2.0
        p0 = row["regular_price"]
        true_units = base * (price / p0) ** elasticity if p0 > 0 else 0.0
        rows.append(
            {
                "version": answer["model"]["version"],
                "arm": answer["model"]["arm"],
                "margin": (price - row["unit_cost"]) * true_units,
                "margin_today": (p0 - row["unit_cost"]) * base,
                "fallback": answer.get("fallback"),
            }
        )
    out.checks["prices_outside_guardrails"] = broken
    out.checks["prices_served"] = len(rows)
    metrics = []
    for (version, arm), group in _by_arm(rows).items():
        today = sum(r["margin_today"] for r in group)
        metrics.append(
            {
                "version": version,
                "arm": arm,
                "prices": len(group),
                "fallbacks": sum(r["fallback"] is not None for r in group),
                "margin_vs_today": round(sum(r["margin"] for r in group) / today - 1, 4)
                if today > 0
                else None,
            }
        )
    out.metrics["pricing"] = metrics


def searches(client: Client, world: World, day: date, new_skus: list[str], out: DayTraffic) -> None:
    products = world.feeds_through(day)["products"]
    chosen = products.filter(pl.col("sku").is_in(new_skus)).head(SEARCH_QUERIES)
    if chosen.height < SEARCH_QUERIES:
        rest = products.filter(~pl.col("sku").is_in(new_skus)).sort("sku")
        chosen = pl.concat([chosen, rest.head(SEARCH_QUERIES - chosen.height)])
    found, new_found = 0, 0
    for row in chosen.iter_rows(named=True):
        response = client.call("search", "GET", "/v1/search", params={"q": row["title"], "k": 5})
        if response is None or response.status_code != 200:
            continue
        hit = row["sku"] in [r["sku"] for r in response.json()["results"]]
        found += hit
        new_found += hit and row["sku"] in new_skus
    out.metrics["search"] = [
        {
            "version": "index",
            "arm": "live",
            "queries": chosen.height,
            "recall_at_5": round(found / max(chosen.height, 1), 4),
        }
    ]
    out.checks["new_skus_found_by_search"] = new_found
    out.checks["new_skus_searched"] = sum(sku in new_skus for sku in chosen["sku"])


def assistant(client: Client, out: DayTraffic) -> None:
    response = client.call(
        "assistant", "POST", "/v1/assistant/chat", json={"message": ASSISTANT_QUESTION}
    )
    if response is not None and response.status_code == 200:
        out.checks["assistant_prompt_version"] = response.json().get("prompt_version")


def new_sku_answers(
    client: Client, day: date, world: World, new_skus: list[str], out: DayTraffic
) -> None:
    """A launched SKU must be forecastable, recommendable (reachable as a candidate) and
    searchable the day it lands."""
    stores = world.feeds["stores"]["store_id"].to_list()
    response = client.call(
        "forecast",
        "POST",
        "/v1/forecast",
        json={"store_id": stores[0], "sku": new_skus, "horizon": 7},
    )
    forecastable = []
    if response is not None and response.status_code == 200:
        forecastable = [s["sku"] for s in response.json()["forecasts"] if s["days"]]
    # Recommendable: shown next to the existing product closest to it (by the search index,
    # i.e. content), before anyone engaged with it; and its own page gets a list.
    recommended, pages = 0, 0
    titles = dict(world.feeds["products"].select("sku", "title").iter_rows())
    for sku in new_skus:
        page = client.call(
            "recommend", "POST", "/v1/recommendations", json={"current_sku": sku, "k": 10}
        )
        pages += page is not None and page.status_code == 200 and bool(page.json()["items"])
        found = client.call("search", "GET", "/v1/search", params={"q": titles[sku], "k": 10})
        if found is None or found.status_code != 200:
            continue
        neighbour = next(
            (r["sku"] for r in found.json()["results"] if r["sku"] not in new_skus), None
        )
        if neighbour is None:
            continue
        reply = client.call(
            "recommend", "POST", "/v1/recommendations", json={"current_sku": neighbour, "k": 20}
        )
        if reply is not None and reply.status_code == 200:
            recommended += sku in {i["sku"] for i in reply.json()["items"]}
    out.checks["new_sku_pages_with_recommendations"] = pages
    out.checks["new_skus"] = len(new_skus)
    out.checks["new_skus_forecastable"] = sum(s in forecastable for s in new_skus)
    out.checks["new_skus_recommended"] = recommended
