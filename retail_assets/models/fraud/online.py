"""Fraud features at authorisation time: the ONE definition of the payment fraud features.

Why here and not in SQL. Serving scores a payment the moment it arrives, so the behavioural
features (velocity per card, customer and device, first use of a device, cards per shipping
address, the customer's prior spend) must be computed from the payments seen so far, one
request at a time. `FraudFeatureState` keeps exactly the state those definitions need: the
payments of the last 7 days (`HORIZON`, the longest window; `prune` drops older ones) per card,
customer, device and shipping address, and each customer's lifetime payments and devices. The training set does not get these features from anywhere
else: `replay_features` replays the whole payment history through this class, computing each
payment's features from the payments strictly before it and then folding it in, which is what
serving does per request. A feature that is changed here is changed for training and serving
at once; `marts/transaction_features` only carries the payment rows and their labels.

Definitions (t = the payment's timestamp, naive UTC):

* `<entity>_txn_count_<w>` / `<entity>_amount_<w>` (entity card, customer, device; w 1h, 24h,
  7d): number and total amount of the entity's payments with t - w <= ts < t. The lower bound
  is inclusive (a payment exactly one hour earlier is in the 1-hour window); the upper bound is
  strict, so a payment never sees itself nor a payment at the same instant (two authorisations
  in the same microsecond cannot be ordered reliably, so neither may see the other).
* `ship_address_distinct_cards_7d`: distinct cards used at the shipping address with
  t - 7d <= ts < t, plus this payment's own card (it is known at authorisation, and "the 4th
  card on this address this week" is the signal); NULL without an address (in store).
* `is_first_device_use_for_customer`: no payment of this customer from this device before t.
* `customer_prior_txn_count`, `customer_prior_avg_amount`: the customer's payments before t
  (average NULL without history); `amount_to_customer_avg_ratio` = amount / that average
  (NULL when the average is NULL or 0).
* `customer_tenure_days`: UTC day of the payment minus the signup date.
* `hour_of_day` (UTC), `day_of_week` (ISO, Monday = 1), `is_billing_ip_country_mismatch`,
  `is_billing_shipping_country_mismatch` (NULL when either country is missing).

Exactness. Training and serving must not merely agree to a tolerance: the replay test
(`tests/test_fraud_online.py`) publishes the state part-way through the history, reloads it
as serving does and demands bit-identical features for every later training row. Every sum is
therefore taken in one fixed order: window sums add the window's payments in time order, and a
customer's prior total is a running sum over the customer's whole history in time order, which
`from_frames` recomputes in the same order. Payments at the same instant are replayed in
transaction-id order, and published tables keep that order.

Speed. Timestamps are held as integer microseconds (cheap comparisons and bisection), payments
arrive in time order so every append is O(1) (a late payment from serving is inserted in
place), a window is a few bisections and a slice, and each payment's state is looked up once
for both its features and its folding in. `replay_features` builds the state for the history
before the first payment it must score in bulk with polars (sorts and list slices, no Python
step per payment) and replays one payment at a time only from there; `from_history` is all
bulk. `tests/test_fraud_online.py` proves the bulk-built state equals the one built payment by
payment. Imports stay light (stdlib, polars): serving imports this module without the training
stack.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import accumulate
from typing import Any

import polars as pl

WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
ENTITIES = ("card", "customer", "device")
# The longest window: older per-entity events can never be reached again and are forgotten.
HORIZON = timedelta(days=7)
# What the state needs of a payment to fold it in (`observe`, `from_history`).
EVENT_COLUMNS = [
    "transaction_ts",
    "customer_id",
    "card_id",
    "device_id",
    "amount",
    "shipping_address_id",
]
# What `replay_features` needs of a payment to compute its features as well.
REPLAY_COLUMNS = [
    "transaction_id",
    *EVENT_COLUMNS,
    "billing_country",
    "ip_country",
    "shipping_country",
]
CUSTOMER_COLUMNS = ["customer_id", "segment", "region", "signup_date"]

VELOCITY_FEATURES = [
    f"{entity}_{kind}_{window}"
    for entity in ENTITIES
    for window in WINDOWS
    for kind in ("txn_count", "amount")
]
# Every feature this module computes, in the order the model takes them, with its type.
FEATURES: dict[str, pl.DataType] = {
    **{name: (pl.Int32() if "_txn_count_" in name else pl.Float64()) for name in VELOCITY_FEATURES},
    "is_first_device_use_for_customer": pl.Boolean(),
    "ship_address_distinct_cards_7d": pl.Int32(),
    "is_billing_ip_country_mismatch": pl.Boolean(),
    "is_billing_shipping_country_mismatch": pl.Boolean(),
    "customer_prior_txn_count": pl.Int32(),
    "customer_prior_avg_amount": pl.Float64(),
    "amount_to_customer_avg_ratio": pl.Float64(),
    "hour_of_day": pl.Int8(),
    "day_of_week": pl.Int8(),
    "customer_tenure_days": pl.Int32(),
}
FEATURE_NAMES = list(FEATURES)

_EPOCH = datetime(1970, 1, 1)
_EPOCH_DAY = date(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)
_HOUR_US = 3_600_000_000
_DAY_US = 24 * _HOUR_US
_WINDOW_US = tuple(width // _MICROSECOND for width in WINDOWS.values())
_WIDEST_US = max(_WINDOW_US)
_HORIZON_US = HORIZON // _MICROSECOND
_EMPTY_VELOCITY = (0, 0.0) * len(WINDOWS)


def to_micros(ts: datetime) -> int:
    """Microseconds since 1970-01-01 (naive timestamps are UTC)."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return (ts - _EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _epoch_day(day: date | None) -> int | None:
    return None if day is None else (day - _EPOCH_DAY).days


class _Series:
    """One entity's recent payments: timestamps (sorted) and a value per payment."""

    __slots__ = ("ts", "values")

    def __init__(self, ts: list[int] | None = None, values: list[Any] | None = None) -> None:
        self.ts: list[int] = ts if ts is not None else []
        self.values: list[Any] = values if values is not None else []

    def add(self, t: int, value: Any) -> None:
        """Append (payments arrive in time order); nothing is dropped here, see `prune`."""
        ts = self.ts
        if not ts or t >= ts[-1]:
            ts.append(t)
            self.values.append(value)
        else:  # a late payment (serving accepts them up to a week old): keep time order
            at = bisect_right(ts, t)
            ts.insert(at, t)
            self.values.insert(at, value)

    def prune(self, before: int) -> None:
        cut = bisect_left(self.ts, before)
        if cut:
            del self.ts[:cut], self.values[:cut]


class _Customer:
    """A customer's attributes, lifetime payments (with a running total) and devices."""

    __slots__ = (
        "amounts",
        "devices",
        "region",
        "segment",
        "signup_date",
        "signup_day",
        "totals",
        "ts",
    )

    def __init__(self) -> None:
        self.segment: str | None = None
        self.region: str | None = None
        self.signup_date: date | None = None
        self.signup_day: int | None = None
        self.ts: list[int] = []
        self.amounts: list[float] = []
        self.totals: list[float] = [0.0]  # totals[k] = sum of the first k amounts, in order
        self.devices: dict[str, int] = {}  # device -> first use

    def add(self, t: int, amount: float) -> None:
        ts = self.ts
        if not ts or t >= ts[-1]:
            ts.append(t)
            self.amounts.append(amount)
            self.totals.append(self.totals[-1] + amount)
        else:
            at = bisect_right(ts, t)
            ts.insert(at, t)
            self.amounts.insert(at, amount)
            del self.totals[at + 1 :]
            running = accumulate(self.amounts[at:], initial=self.totals[at])
            next(running)
            self.totals.extend(running)

    def set_history(self, ts: list[int], amounts: list[float]) -> None:
        self.ts, self.amounts = ts, amounts
        self.totals = list(accumulate(amounts, initial=0.0))


class _CustomerTable(dict):
    """customer_id -> _Customer, created on first use (a payment of an unknown customer)."""

    def __missing__(self, key: str) -> _Customer:
        customer = self[key] = _Customer()
        return customer


CustomerHistory = tuple[int | None, int, float, int | None]
"""What a payment's customer features need of the customer's history before `t`: the first use
of this device (microseconds, None: never), the number and the running total (summed in time
order) of earlier payments, and the signup day (days since 1970-01-01, None: unknown)."""


def feature_values(
    t: int,
    card: str | None,
    amount: float | None,
    billing: str | None,
    ip: str | None,
    shipping: str | None,
    velocity_series: tuple[_Series | None, _Series | None, _Series | None],
    address: str | None,
    address_series: _Series | None,
    history: CustomerHistory,
) -> list[Any]:
    """The `FEATURES` of a payment at `t` (microseconds), in their order, from its card's,
    customer's and device's recent payments (`_Series`, any that reach back to t - 7d), its
    shipping address's recent cards and its customer's history. The one definition: the
    in-process state and the Redis-backed one (`serving/redis_state.py`) both call it."""
    out: list[Any] = []
    for series in velocity_series:
        if series is not None:
            ts = series.ts
            end = bisect_left(ts, t)
            # Windows are nested: nothing in the widest one means nothing in any.
            widest = bisect_left(ts, t - _WIDEST_US, 0, end)
            if widest < end:
                values = series.values
                for width in _WINDOW_US:
                    start = bisect_left(ts, t - width, widest, end)
                    out.append(end - start)
                    out.append(float(sum(values[start:end])))
                continue
        out.extend(_EMPTY_VELOCITY)

    first_use, prior_count, prior_total, signup_day = history
    out.append(first_use is None or first_use >= t)
    prior_avg = prior_total / prior_count if prior_count else None
    tenure = None if signup_day is None else t // _DAY_US - signup_day

    if address is None:
        out.append(None)
    elif address_series is None:
        out.append(1)
    else:
        end = bisect_left(address_series.ts, t)
        start = bisect_left(address_series.ts, t - _HORIZON_US, 0, end)
        cards = set(address_series.values[start:end])
        cards.add(card)
        out.append(len(cards))

    out.append(None if billing is None or ip is None else billing != ip)
    out.append(None if billing is None or shipping is None else billing != shipping)
    out.append(prior_count)
    out.append(prior_avg)
    out.append(amount / prior_avg if prior_avg and amount is not None else None)
    out.append(t // _HOUR_US % 24)
    out.append((t // _DAY_US + 3) % 7 + 1)  # 1970-01-01 was a Thursday (ISO 4)
    out.append(tenure)
    return out


def model_inputs(
    payment: dict[str, Any], values: list[Any], segment: str | None, region: str | None
) -> dict[str, Any]:
    """A request's model inputs: the raw fields the model reads, the `FEATURES` (`values`)
    and the customer's segment and region."""
    return {
        "amount": payment.get("amount"),
        "n_items": payment.get("n_items"),
        "channel": payment.get("channel"),
        "payment_method": payment.get("payment_method"),
        "top_department": payment.get("top_department"),
        **dict(zip(FEATURE_NAMES, values, strict=True)),
        "customer_segment": segment,
        "customer_region": region,
    }


class FraudFeatureState:
    """The payments a fraud feature can reach, as of the latest one seen (`as_of`).

    Serving: `features(payment)` then `observe(payment)` per request. Training:
    `replay_features`. Publishing: `from_history` -> `to_frames` -> `from_frames`."""

    def __init__(self) -> None:
        self.recent: dict[str, dict[str, _Series]] = {e: {} for e in ENTITIES}
        self.addresses: dict[str, _Series] = {}
        self.customers: dict[str, _Customer] = _CustomerTable()
        self._as_of: int | None = None

    @property
    def as_of(self) -> datetime | None:
        """Time of the latest payment seen."""
        return None if self._as_of is None else from_micros(self._as_of)

    # -- building --------------------------------------------------------------------------

    @classmethod
    def from_history(cls, transactions: pl.DataFrame, customers: pl.DataFrame) -> FraudFeatureState:
        """State after every payment in `transactions` (mart columns) has been seen."""
        state = cls()
        state.load_customers(customers)
        state._load_history(_ordered(transactions, EVENT_COLUMNS))
        return state

    def load_customers(self, customers: pl.DataFrame) -> None:
        """Segment, region and signup date per customer (from `marts/dim_customers`)."""
        for cid, segment, region, signup in customers.select(CUSTOMER_COLUMNS).iter_rows():
            customer = self.customers[cid]
            customer.segment, customer.region = segment, region
            customer.signup_date, customer.signup_day = signup, _epoch_day(signup)

    def _load_history(self, history: pl.DataFrame) -> None:
        """Bulk `observe` of every payment in `history` (ordered, with `_t` in microseconds),
        leaving the state `prune` would leave at the last payment: the same state as folding
        the payments in one at a time, without a Python step per payment."""
        if history.height == 0:
            return
        if self._as_of is not None:
            raise ValueError("bulk history loads only into a state that has seen no payment")
        as_of = self._as_of = history["_t"].max()
        known = history.filter(pl.col("customer_id").is_not_null())
        for cid, ts, amounts in _runs(known, "customer_id", "_t", "amount"):
            self.customers[cid].set_history(ts, amounts)
        first_uses = (
            known.filter(pl.col("device_id").is_not_null())
            .group_by("customer_id", "device_id", maintain_order=True)
            .agg(pl.col("_t").min())
        )
        for cid, devices, firsts in _runs(first_uses, "customer_id", "device_id", "_t"):
            self.customers[cid].devices = dict(zip(devices, firsts, strict=True))
        recent = history.filter(pl.col("_t") >= as_of - _HORIZON_US)
        for entity in ENTITIES:
            self.recent[entity] = _group_series(recent, f"{entity}_id", "amount")
        self.addresses = _group_series(recent, "shipping_address_id", "card_id")

    def observe(self, payment: dict[str, Any]) -> None:
        """Fold a payment into the state (after it has been scored)."""
        card, customer_id = payment.get("card_id"), payment.get("customer_id")
        device, address = payment.get("device_id"), payment.get("shipping_address_id")
        self._observe(
            to_micros(payment["transaction_ts"]),
            card,
            customer_id,
            device,
            address,
            float(payment["amount"]),
            self._lookup(card, customer_id, device, address),
        )

    def _lookup(
        self, card: str | None, customer_id: str | None, device: str | None, address: str | None
    ) -> tuple[_Series | None, _Series | None, _Series | None, _Series | None, _Customer | None]:
        """The state a payment touches: its card's, customer's, device's and address's recent
        payments and the customer (None where there is none yet). Looked up once per payment
        and shared by `_features` and `_observe`."""
        recent = self.recent
        return (
            recent["card"].get(card),
            recent["customer"].get(customer_id),
            recent["device"].get(device),
            self.addresses.get(address),
            self.customers.get(customer_id),
        )

    def _observe(
        self,
        t: int,
        card: str | None,
        customer_id: str | None,
        device: str | None,
        address: str | None,
        amount: float,
        found: tuple,
    ) -> None:
        card_series, customer_series, device_series, address_series, customer = found
        recent = self.recent
        for series, by_key, key in (
            (card_series, recent["card"], card),
            (customer_series, recent["customer"], customer_id),
            (device_series, recent["device"], device),
        ):
            if series is not None:
                series.add(t, amount)
            elif key is not None:
                by_key[key] = _Series([t], [amount])
        if address_series is not None:
            address_series.add(t, card)
        elif address is not None:
            self.addresses[address] = _Series([t], [card])
        if customer_id is not None:
            if customer is None:
                customer = self.customers[customer_id]
            customer.add(t, amount)
            if device is not None:
                first = customer.devices.get(device)
                if first is None or t < first:
                    customer.devices[device] = t
        if self._as_of is None or t > self._as_of:
            self._as_of = t

    def prune(self, now: datetime) -> None:
        """Forget per-entity events that no window can reach any more."""
        horizon = to_micros(now) - _HORIZON_US
        for by_key in (*self.recent.values(), self.addresses):
            for key in list(by_key):
                by_key[key].prune(horizon)
                if not by_key[key].ts:
                    del by_key[key]

    # -- features --------------------------------------------------------------------------

    def features(self, payment: dict[str, Any]) -> dict[str, Any]:
        """Every model input for one payment, from payments strictly before it: the raw fields
        the model reads, the `FEATURES` and the customer's segment and region."""
        card, customer_id = payment.get("card_id"), payment.get("customer_id")
        device, address = payment.get("device_id"), payment.get("shipping_address_id")
        found = self._lookup(card, customer_id, device, address)
        amount = payment.get("amount")
        values = self._features(
            to_micros(payment["transaction_ts"]),
            card,
            device,
            address,
            None if amount is None else float(amount),
            payment.get("billing_country"),
            payment.get("ip_country"),
            payment.get("shipping_country"),
            found,
        )
        customer = found[-1]
        return model_inputs(
            payment,
            values,
            customer.segment if customer else None,
            customer.region if customer else None,
        )

    @staticmethod
    def _features(
        t: int,
        card: str | None,
        device: str | None,
        address: str | None,
        amount: float | None,
        billing: str | None,
        ip: str | None,
        shipping: str | None,
        found: tuple,
    ) -> list[Any]:
        """The `FEATURES` of a payment at `t` (microseconds), in their order; `found` is
        `_lookup` of its card, customer, device and address."""
        card_series, customer_series, device_series, address_series, customer = found
        if customer is None:
            history = (None, 0, 0.0, None)
        else:
            prior_count = bisect_left(customer.ts, t)
            history = (
                customer.devices.get(device),
                prior_count,
                customer.totals[prior_count],
                customer.signup_day,
            )
        return feature_values(
            t,
            card,
            amount,
            billing,
            ip,
            shipping,
            (card_series, customer_series, device_series),
            address,
            address_series,
            history,
        )

    # -- publishing ------------------------------------------------------------------------

    def to_frames(self) -> dict[str, pl.DataFrame]:
        """The state as tables (published by the pipeline, loaded by serving). Rows keep each
        series' order, so `from_frames` rebuilds the running totals bit for bit."""
        entity, key, ts, amount, card = [], [], [], [], []
        for name in ENTITIES:
            for k, series in self.recent[name].items():
                n = len(series.ts)
                entity += [name] * n
                key += [k] * n
                ts += series.ts
                amount += series.values
                card += [None] * n
        for k, series in self.addresses.items():
            n = len(series.ts)
            entity += ["address"] * n
            key += [k] * n
            ts += series.ts
            amount += [None] * n
            card += series.values
        customers = self.customers.values()
        ids = list(self.customers)
        payment_ids = [cid for cid, c in self.customers.items() for _ in c.ts]
        device_rows = [
            (cid, d, f) for cid, c in self.customers.items() for d, f in c.devices.items()
        ]
        return {
            "events": pl.DataFrame(
                {"entity": entity, "key": key, "ts": ts, "amount": amount, "card_id": card},
                schema={
                    "entity": pl.String,
                    "key": pl.String,
                    "ts": pl.Int64,
                    "amount": pl.Float64,
                    "card_id": pl.String,
                },
            ).with_columns(_datetime("ts")),
            "customers": pl.DataFrame(
                {
                    "customer_id": ids,
                    "segment": [c.segment for c in customers],
                    "region": [c.region for c in customers],
                    "signup_date": [c.signup_date for c in customers],
                },
                schema={
                    "customer_id": pl.String,
                    "segment": pl.String,
                    "region": pl.String,
                    "signup_date": pl.Date,
                },
            ),
            "customer_payments": pl.DataFrame(
                {
                    "customer_id": payment_ids,
                    "ts": [t for c in customers for t in c.ts],
                    "amount": [a for c in customers for a in c.amounts],
                },
                schema={"customer_id": pl.String, "ts": pl.Int64, "amount": pl.Float64},
            ).with_columns(_datetime("ts")),
            "devices": pl.DataFrame(
                device_rows,
                schema={"customer_id": pl.String, "device_id": pl.String, "first_use": pl.Int64},
                orient="row",
            ).with_columns(_datetime("first_use")),
        }

    @classmethod
    def from_frames(cls, frames: dict[str, pl.DataFrame]) -> FraudFeatureState:
        """Rebuild the state `to_frames` published."""
        state = cls()
        state.load_customers(frames["customers"])
        payments = _with_micros(frames["customer_payments"], "ts")
        # Stable sorts keep same-instant payments in their published order.
        ordered = payments.sort("ts", maintain_order=True)
        for cid, ts, amounts in _runs(ordered, "customer_id", "ts", "amount"):
            state.customers[cid].set_history(ts, amounts)
        devices = _with_micros(frames["devices"], "first_use")
        for cid, names, firsts in _runs(devices, "customer_id", "device_id", "first_use"):
            state.customers[cid].devices = dict(zip(names, firsts, strict=True))
        events = _with_micros(frames["events"], "ts").sort("ts", maintain_order=True)
        for name, part in events.group_by("entity", maintain_order=True):
            value = "card_id" if name[0] == "address" else "amount"
            series = _group_series(part, "key", value, ts="ts")
            if name[0] == "address":
                state.addresses = series
            else:
                state.recent[name[0]] = series
        latest = [frame["ts"].max() for frame in (payments, events) if frame.height]
        state._as_of = max(latest) if latest else None
        return state


def replay_features(
    transactions: pl.DataFrame,
    customers: pl.DataFrame,
    score: pl.Series | None = None,
) -> pl.DataFrame:
    """The `FEATURES` of payments, each from the payments strictly before it, by replaying the
    history through `FraudFeatureState` exactly as serving scores and folds in each request.

    `transactions`: the payment history (`REPLAY_COLUMNS`; every payment counts as history).
    `score`: a boolean per row of `transactions` (default: every row) - which payments to
    return features for. Returns transaction_id and the `FEATURES` of those payments, in the
    order of `transactions`. Payments are replayed in (transaction_ts, transaction_id) order;
    the history before the first scored payment is loaded in bulk."""
    missing = [c for c in REPLAY_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValueError(f"replay_features: transactions lack column(s) {', '.join(missing)}")
    if score is not None and score.len() != transactions.height:
        raise ValueError(
            f"replay_features: score has {score.len()} values for {transactions.height} payments"
        )
    flags = (
        pl.repeat(True, transactions.height, eager=True)
        if score is None
        else score.cast(pl.Boolean).fill_null(False)
    )
    ordered = _ordered(
        transactions.select(REPLAY_COLUMNS).with_columns(
            flags.alias("_score"), pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row")
        ),
        [*REPLAY_COLUMNS, "_score", "_row"],
    )
    state = FraudFeatureState()
    state.load_customers(customers)
    positions = ordered.with_row_index("_i").filter(pl.col("_score"))["_i"]
    if positions.len() == 0:
        return _features_frame([], [])
    first, last = int(positions[0]), int(positions[-1])
    state._load_history(ordered.slice(0, first))

    span = ordered.slice(first, last - first + 1)
    columns = [
        span[c].to_list()
        for c in (
            "_t",
            "card_id",
            "customer_id",
            "device_id",
            "shipping_address_id",
            "amount",
            "billing_country",
            "ip_country",
            "shipping_country",
            "_score",
            "transaction_id",
            "_row",
        )
    ]
    lookup, compute, observe = state._lookup, state._features, state._observe
    rows, ids, order = [], [], []
    for t, card, cid, device, address, amount, billing, ip, ship, wanted, tid, row in zip(
        *columns, strict=True
    ):
        found = lookup(card, cid, device, address)
        if wanted:
            rows.append(compute(t, card, device, address, amount, billing, ip, ship, found))
            ids.append(tid)
            order.append(row)
        observe(t, card, cid, device, address, amount, found)
    frame = _features_frame(rows, ids).with_columns(pl.Series("_row", order, dtype=pl.UInt32))
    return frame.sort("_row").drop("_row")


def _ordered(transactions: pl.DataFrame, columns: Iterable[str]) -> pl.DataFrame:
    """Payments in replay order, (transaction_ts, transaction_id), with `_t` in microseconds."""
    columns = list(columns)
    missing = [c for c in EVENT_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValueError(f"payments lack column(s) {', '.join(missing)}")
    if transactions["transaction_ts"].null_count():
        raise ValueError("payments with a NULL transaction_ts cannot be placed in time")
    keys = ["_t", "transaction_id"] if "transaction_id" in transactions.columns else ["_t"]
    return (
        transactions.select(list(dict.fromkeys([*columns, *keys[1:]])))
        .with_columns(
            _micros(pl.col("transaction_ts")).alias("_t"), pl.col("amount").cast(pl.Float64)
        )
        .sort(keys, maintain_order=True)
    )


def _features_frame(rows: list[list[Any]], ids: list[str]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=FEATURES, orient="row").insert_column(
        0, pl.Series("transaction_id", ids, dtype=pl.String)
    )


def _group_series(frame: pl.DataFrame, key: str, value: str, ts: str = "_t") -> dict[str, _Series]:
    """key -> _Series of (ts in microseconds, value), rows in frame order."""
    return {k: _Series(times, values) for k, times, values in _runs(frame, key, ts, value)}


def _runs(
    frame: pl.DataFrame, key: str, first: str, second: str
) -> Iterator[tuple[Any, list[Any], list[Any]]]:
    """(key, its `first` values, its `second` values) per non-null key, each key's rows in frame
    order: one stable sort and two flat column conversions, then list slices (much cheaper than
    a group-by into list columns at hundreds of thousands of payments)."""
    rows = frame.select(key, first, second).filter(pl.col(key).is_not_null())
    # Any order of the keys will do; integer codes sort several times faster than strings.
    order = pl.col(key).cast(pl.Categorical).to_physical() if rows.schema[key] == pl.String else key
    rows = rows.sort(order, maintain_order=True)
    firsts, seconds = rows[first].to_list(), rows[second].to_list()
    at = 0
    for length, value in rows[key].rle().struct.unnest().iter_rows():
        yield value, firsts[at : at + length], seconds[at : at + length]
        at += length


def _micros(expr: pl.Expr) -> pl.Expr:
    return expr.dt.cast_time_unit("us").dt.replace_time_zone(None).cast(pl.Int64)


def _with_micros(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    """`column` as Int64 microseconds, whether published as a datetime or as integers."""
    if frame.schema[column] == pl.Int64:
        return frame
    return frame.with_columns(_micros(pl.col(column)).alias(column))


def _datetime(column: str) -> pl.Expr:
    return pl.col(column).cast(pl.Datetime("us"))
