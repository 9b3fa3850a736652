"""Fraud features at authorisation time: the online side of `marts/transaction_features`.

Serving scores a payment the moment it arrives, so the behavioural features (velocity per card,
customer and device, first use of a device, cards per shipping address, the customer's prior
spend) must be computed from the payments seen so far. `FraudFeatureState` keeps exactly the
state those definitions need: the last 7 days of payments per entity and each customer's
lifetime totals and devices. The pipeline publishes it (`fraud_online_features`) as of the data
end; serving then folds in every payment it scores, so velocity is live, not a nightly snapshot.

The definitions mirror the mart's SQL one for one (strictly earlier payments; window bounds
inclusive; same-timestamp payments do not see each other; the current card counts towards the
cards-per-address total). `tests/test_fraud_online.py` replays the payment history through this
class and asserts every feature equals the mart's value, so training and serving cannot drift
apart silently.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
ENTITIES = ("card", "customer", "device")
HORIZON = timedelta(days=7)
EVENT_COLUMNS = [
    "transaction_ts",
    "customer_id",
    "card_id",
    "device_id",
    "amount",
    "shipping_address_id",
]


@dataclass
class _Series:
    """Timestamps (sorted) with a value per event, for one entity."""

    ts: list[datetime] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def add(self, ts: datetime, value: Any) -> None:
        at = bisect.bisect_right(self.ts, ts)
        self.ts.insert(at, ts)
        self.values.insert(at, value)

    def between(self, start: datetime, end: datetime) -> list[Any]:
        """Values with start <= ts < end."""
        lo = bisect.bisect_left(self.ts, start)
        hi = bisect.bisect_left(self.ts, end)
        return self.values[lo:hi]

    def prune(self, before: datetime) -> None:
        cut = bisect.bisect_left(self.ts, before)
        if cut:
            del self.ts[:cut], self.values[:cut]


@dataclass
class _Customer:
    segment: str | None = None
    region: str | None = None
    signup_date: date | None = None
    history: _Series = field(default_factory=_Series)  # every payment: (ts, amount)
    devices: dict[str, datetime] = field(default_factory=dict)  # device -> first use


class FraudFeatureState:
    def __init__(self) -> None:
        self.recent: dict[str, dict[str, _Series]] = {e: defaultdict(_Series) for e in ENTITIES}
        self.addresses: dict[str, _Series] = defaultdict(_Series)
        self.customers: dict[str, _Customer] = defaultdict(_Customer)
        self.as_of: datetime | None = None

    # -- building --------------------------------------------------------------------------

    @classmethod
    def from_history(cls, transactions: pl.DataFrame, customers: pl.DataFrame) -> FraudFeatureState:
        """State after every payment in `transactions` (mart columns) has been seen."""
        state = cls()
        for row in customers.select("customer_id", "segment", "region", "signup_date").iter_rows():
            customer = state.customers[row[0]]
            customer.segment, customer.region, customer.signup_date = row[1], row[2], row[3]
        ordered = transactions.select(EVENT_COLUMNS).sort("transaction_ts")
        for row in ordered.iter_rows(named=True):
            state.observe(row)
        if state.as_of is not None:
            state.prune(state.as_of)
        return state

    def observe(self, payment: dict[str, Any]) -> None:
        """Fold a payment into the state (after it has been scored)."""
        ts: datetime = payment["transaction_ts"]
        amount = float(payment["amount"])
        for entity in ENTITIES:
            key = payment.get(f"{entity}_id")
            if key is not None:
                self.recent[entity][key].add(ts, amount)
        address = payment.get("shipping_address_id")
        if address is not None:
            self.addresses[address].add(ts, payment.get("card_id"))
        customer_id = payment.get("customer_id")
        if customer_id is not None:
            customer = self.customers[customer_id]
            customer.history.add(ts, amount)
            device = payment.get("device_id")
            if device is not None and (
                device not in customer.devices or ts < customer.devices[device]
            ):
                customer.devices[device] = ts
        if self.as_of is None or ts > self.as_of:
            self.as_of = ts

    def prune(self, now: datetime) -> None:
        """Forget per-entity events that no window can reach any more."""
        horizon = now - HORIZON
        for by_key in (*self.recent.values(), self.addresses):
            for key in list(by_key):
                by_key[key].prune(horizon)
                if not by_key[key].ts:
                    del by_key[key]

    # -- features --------------------------------------------------------------------------

    def features(self, payment: dict[str, Any]) -> dict[str, Any]:
        """The mart's feature columns for one payment, from payments strictly before it."""
        ts: datetime = payment["transaction_ts"]
        out: dict[str, Any] = {
            "amount": payment.get("amount"),
            "n_items": payment.get("n_items"),
            "channel": payment.get("channel"),
            "payment_method": payment.get("payment_method"),
            "top_department": payment.get("top_department"),
            "hour_of_day": ts.hour,
            "day_of_week": ts.isoweekday(),
        }
        for entity in ENTITIES:
            key = payment.get(f"{entity}_id")
            series = self.recent[entity].get(key) if key is not None else None
            for label, width in WINDOWS.items():
                values = series.between(ts - width, ts) if series else []
                out[f"{entity}_txn_count_{label}"] = len(values)
                out[f"{entity}_amount_{label}"] = float(sum(values))
        address = payment.get("shipping_address_id")
        if address is None:
            out["ship_address_distinct_cards_7d"] = None
        else:
            series = self.addresses.get(address)
            cards = set(series.between(ts - HORIZON, ts)) if series else set()
            cards.add(payment.get("card_id"))
            out["ship_address_distinct_cards_7d"] = len(cards)

        billing = payment.get("billing_country")
        ip, shipping = payment.get("ip_country"), payment.get("shipping_country")
        out["is_billing_ip_country_mismatch"] = (
            None if billing is None or ip is None else billing != ip
        )
        out["is_billing_shipping_country_mismatch"] = (
            None if billing is None or shipping is None else billing != shipping
        )

        customer = self.customers.get(payment.get("customer_id"))
        prior = customer.history.between(datetime.min, ts) if customer else []
        out["customer_prior_txn_count"] = len(prior)
        out["customer_prior_avg_amount"] = sum(prior) / len(prior) if prior else None
        avg = out["customer_prior_avg_amount"]
        out["amount_to_customer_avg_ratio"] = (
            float(payment["amount"]) / avg if avg and payment.get("amount") is not None else None
        )
        device = payment.get("device_id")
        first_use = customer.devices.get(device) if customer and device is not None else None
        out["is_first_device_use_for_customer"] = first_use is None or first_use >= ts
        signup = customer.signup_date if customer else None
        out["customer_tenure_days"] = (ts.date() - signup).days if signup else None
        out["customer_segment"] = customer.segment if customer else None
        out["customer_region"] = customer.region if customer else None
        return out

    # -- publishing ------------------------------------------------------------------------

    def to_frames(self) -> dict[str, pl.DataFrame]:
        """The state as tables (published by the pipeline, loaded by serving)."""
        events = []
        for entity in ENTITIES:
            for key, series in self.recent[entity].items():
                events += [
                    (entity, key, t, v, None) for t, v in zip(series.ts, series.values, strict=True)
                ]
        for key, series in self.addresses.items():
            events += [
                ("address", key, t, None, c) for t, c in zip(series.ts, series.values, strict=True)
            ]
        history = [
            (cid, t, v)
            for cid, c in self.customers.items()
            for t, v in zip(c.history.ts, c.history.values, strict=True)
        ]
        return {
            "events": pl.DataFrame(
                events,
                schema={
                    "entity": pl.String,
                    "key": pl.String,
                    "ts": pl.Datetime("us"),
                    "amount": pl.Float64,
                    "card_id": pl.String,
                },
                orient="row",
            ),
            "customers": pl.DataFrame(
                [(cid, c.segment, c.region, c.signup_date) for cid, c in self.customers.items()],
                schema={
                    "customer_id": pl.String,
                    "segment": pl.String,
                    "region": pl.String,
                    "signup_date": pl.Date,
                },
                orient="row",
            ),
            "customer_payments": pl.DataFrame(
                history,
                schema={"customer_id": pl.String, "ts": pl.Datetime("us"), "amount": pl.Float64},
                orient="row",
            ),
            "devices": pl.DataFrame(
                [
                    (cid, d, first)
                    for cid, c in self.customers.items()
                    for d, first in c.devices.items()
                ],
                schema={
                    "customer_id": pl.String,
                    "device_id": pl.String,
                    "first_use": pl.Datetime("us"),
                },
                orient="row",
            ),
        }

    @classmethod
    def from_frames(cls, frames: dict[str, pl.DataFrame]) -> FraudFeatureState:
        """Rebuild the state `to_frames` published."""
        state = cls()
        for cid, segment, region, signup in frames["customers"].iter_rows():
            customer = state.customers[cid]
            customer.segment, customer.region, customer.signup_date = segment, region, signup
        for cid, ts, amount in frames["customer_payments"].sort("ts").iter_rows():
            history = state.customers[cid].history
            history.ts.append(ts)
            history.values.append(amount)
        for cid, device, first in frames["devices"].iter_rows():
            state.customers[cid].devices[device] = first
        for entity, key, ts, amount, card in frames["events"].sort("ts").iter_rows():
            series = state.addresses[key] if entity == "address" else state.recent[entity][key]
            series.ts.append(ts)
            series.values.append(card if entity == "address" else amount)
        latest = frames["customer_payments"]["ts"].max()
        state.as_of = latest
        return state
