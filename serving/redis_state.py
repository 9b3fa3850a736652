"""Serving's state between requests in Redis (`RETAIL_REDIS_URL`), shared by every worker: the
fraud velocity state, and the pricing circuit breaker's windows and open breakers (at the end).

Why. In one process the state lives in memory (`FraudFeatureState`); a second worker would keep
its own copy and see only the payments it scored, so a card paying through two workers would
get velocity counts of about half the truth. With `RETAIL_REDIS_URL` every worker reads and
writes one state in Redis instead.

One payment, one atomic step. `FOLD` is a Lua script: in a single Redis call it reads what the
payment's features need (its card's, customer's and device's payments in [t - 7 days, t), its
shipping address's cards in that week, the number and running total of its customer's earlier
payments and the first use of its device) and folds the payment in. Redis runs a script
without interleaving any other command, so two workers scoring payments of the same card can
never both miss each other (no read-modify-write race), and the payments are folded in one
global order, as if one process had received them in that order.

Exactly the in-process features. Python computes the features from what the script returns
with the same function the in-process state and the training replay use
(`retail_assets.models.fraud.online.feature_values`), so the definition exists once. Sums stay
bit-identical: amounts travel as `repr(float)` strings (which round-trip), the script adds a
customer's amounts in time order with IEEE doubles as Python does and returns the total with
17 significant digits, and payments at the same instant keep their arrival order (a global
sequence number in every member). `tests/test_redis_state.py` sends interleaved payments of
the same cards through two workers and compares every feature with one in-process state.

Versions. Each published feature-set version gets its own key space
(`<prefix>:fraud:<version>:`). The first worker to load a version copies the published tables
in (under a lock; the others wait for its `ready` key), exactly as `from_frames` rebuilds the
in-process state; the versions before the previous one are then deleted.

Forgetting. A key's payments older than the latest payment minus 7 days are dropped when the
key is touched (the in-process state prunes every 5,000 payments). Only a payment arriving
more than a week late could notice the difference, and the serving clock refuses those.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any

import polars as pl
import redis

from retail_assets.models.fraud.online import (
    HORIZON,
    _Series,
    feature_values,
    from_micros,
    model_inputs,
    to_micros,
)
from retail_assets.models.pricing.breaker import BreakerSettings, ChangeWindow

log = logging.getLogger("retail.serving")

PREFIX = "retail"
"""The default key prefix (`RETAIL_REDIS_PREFIX`): deployments sharing a server set their own."""
_HORIZON_US = HORIZON // timedelta(microseconds=1)
SEPARATOR = "\x1e"  # ASCII record separator: never in an id (ids have no control characters)
_ENTITY_KEYS = {"card": "c", "customer": "u", "device": "d", "address": "a"}
# How long a worker waits for another to finish loading a version before giving up (the
# default-scale state loads in seconds; a slot retries a failed load on its next poll).
LOAD_TIMEOUT_SECONDS = 300.0
# Versions kept: the current one and the one before it (a worker still on it converges within
# one poll interval).
KEEP_VERSIONS = 2

FOLD = """
-- KEYS: 1 card, 2 customer, 3 device (recent payments), 4 address (recent cards),
--       5 customer history, 6 customer running total, 7 customer devices, 8 sequence, 9 as_of
-- ARGV: 1 t, 2 amount, 3 encoded card, 4 device, 5 t - 7 days, 6 7 days (decimal strings;
--       times in microseconds since 1970)
local t, tstr, amount, lo = tonumber(ARGV[1]), ARGV[1], ARGV[2], ARGV[5]
local tag = string.format('%016d', redis.call('INCR', KEYS[8]))
-- Each key's window as one string, t1 RS value1 RS t2 RS value2 ... (RS: the ASCII record
-- separator): one reply for Python to split, not a reply per payment.
local function flat(rows)
  local parts = {}
  for i, m in ipairs(rows) do
    local ts, value = string.match(m, '^[^|]*|([^|]*)|(.*)$')
    parts[2 * i - 1], parts[2 * i] = ts, value
  end
  return table.concat(parts, string.char(30))
end
local out = {}
for i = 1, 4 do
  if KEYS[i] ~= '' then
    out[i] = flat(redis.call('ZRANGEBYSCORE', KEYS[i], lo, '(' .. tstr))
  else
    out[i] = ''
  end
end
local function fold(rows)
  local s = 0
  for _, m in ipairs(rows) do
    s = s + tonumber(string.match(m, '^[^|]*|[^|]*|(.*)$'))
  end
  return s
end
local count, total, first = 0, '0', ''
if KEYS[5] ~= '' then
  local agg = redis.call('HMGET', KEYS[6], 'n', 'total', 'last')
  if agg[3] and tonumber(agg[3]) < t then
    count, total = tonumber(agg[1]), agg[2]
  elseif agg[3] then
    local rows = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', '(' .. tstr)
    count, total = #rows, string.format('%.17g', fold(rows))
  end
  if ARGV[4] ~= '' then
    first = redis.call('HGET', KEYS[7], ARGV[4]) or ''
  end
end
-- fold the payment in
local member = tag .. '|' .. tstr .. '|' .. amount
local latest = tonumber(redis.call('GET', KEYS[9]) or tstr)
if t > latest then
  latest = t
end
redis.call('SET', KEYS[9], string.format('%.0f', latest))
local cutoff = '(' .. string.format('%.0f', latest - tonumber(ARGV[6]))
for i = 1, 3 do
  if KEYS[i] ~= '' then
    redis.call('ZADD', KEYS[i], tstr, member)
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', cutoff)
  end
end
if KEYS[4] ~= '' then
  redis.call('ZADD', KEYS[4], tstr, tag .. '|' .. tstr .. '|' .. ARGV[3])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', cutoff)
end
if KEYS[5] ~= '' then
  redis.call('ZADD', KEYS[5], tstr, member)
  local agg = redis.call('HMGET', KEYS[6], 'n', 'total', 'last')
  if not agg[3] or tonumber(agg[3]) <= t then
    local s = (tonumber(agg[2]) or 0) + tonumber(amount)
    redis.call('HSET', KEYS[6], 'n', (tonumber(agg[1]) or 0) + 1,
               'total', string.format('%.17g', s), 'last', tstr)
  else
    local rows = redis.call('ZRANGE', KEYS[5], 0, -1)
    redis.call('HSET', KEYS[6], 'n', #rows, 'total', string.format('%.17g', fold(rows)))
  end
  if ARGV[4] ~= '' then
    local f = redis.call('HGET', KEYS[7], ARGV[4])
    if not f or t < tonumber(f) then
      redis.call('HSET', KEYS[7], ARGV[4], tstr)
    end
  end
end
return {out[1], out[2], out[3], out[4], count, total, first, string.format('%.0f', latest)}
"""


def redis_client(url: str) -> redis.Redis:
    """A client for `url`, checked with a PING; the error names the variable, not the
    password."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        safe = url.split("@")[-1]
        raise RuntimeError(f"RETAIL_REDIS_URL: cannot reach Redis at {safe}: {exc}") from exc
    return client


def _epoch_day(day: Any) -> int | None:
    return None if day is None else (day - datetime(1970, 1, 1).date()).days


def _card(value: str | None) -> str:
    """Cards in the address sets: '' is no card, '=' + id a card (an id may be empty)."""
    return "" if value is None else "=" + value


def _series(joined: str, card: bool = False) -> _Series | None:
    """The `_Series` of one key's window (`t RS value RS t RS value ...`, see `FOLD`)."""
    if not joined:
        return None
    parts = joined.split(SEPARATOR)
    ts = list(map(int, parts[0::2]))
    if card:
        return _Series(ts, [value[1:] if value else None for value in parts[1::2]])
    return _Series(ts, list(map(float, parts[1::2])))


class RedisFraudFeatures:
    """`FraudFeatures` with its state in Redis: the same `features_and_observe` and `as_of`."""

    def __init__(
        self,
        client: redis.Redis,
        version: str,
        tables: dict[str, pl.DataFrame],
        prefix: str = PREFIX,
    ):
        self.version = version
        self.client = client
        self.root = f"{prefix}:fraud"
        self.space = f"{self.root}:{version}:"
        # Segment, region and signup day are the published table's, read-only: every worker
        # holds them in memory.
        self.customers: dict[str, tuple[str | None, str | None, int | None]] = {
            cid: (segment, region, _epoch_day(signup))
            for cid, segment, region, signup in tables["customers"]
            .select("customer_id", "segment", "region", "signup_date")
            .iter_rows()
        }
        self._fold = client.register_script(FOLD)
        self._ensure_loaded(tables)

    def key(self, kind: str, name: str | None) -> str:
        return "" if name is None else f"{self.space}{kind}:{name}"

    @property
    def as_of(self) -> datetime | None:
        """Time of the latest payment any worker has folded in."""
        value = self.client.get(self.space + "as_of")
        return None if value is None else from_micros(int(value))

    def features_and_observe(self, payment: dict[str, Any]) -> tuple[dict[str, Any], datetime]:
        """Features of `payment` from the payments before it, then fold it in, and the state's
        as-of time after it: one script call."""
        t = to_micros(payment["transaction_ts"])
        card, customer_id = payment.get("card_id"), payment.get("customer_id")
        device, address = payment.get("device_id"), payment.get("shipping_address_id")
        amount = payment.get("amount")
        amount = None if amount is None else float(amount)
        cards, customers, devices, addresses, count, total, first, latest = self._fold(
            keys=[
                self.key("c", card),
                self.key("u", customer_id),
                self.key("d", device),
                self.key("a", address),
                self.key("h", customer_id),
                self.key("g", customer_id),
                self.key("v", customer_id),
                self.space + "seq",
                self.space + "as_of",
            ],
            args=[
                t,
                repr(float(payment["amount"])),
                _card(card),
                device or "",
                t - _HORIZON_US,
                _HORIZON_US,
            ],
        )
        attributes = self.customers.get(customer_id) if customer_id is not None else None
        segment, region, signup_day = attributes or (None, None, None)
        history = (int(first) if first else None, int(count), float(total), signup_day)
        values = feature_values(
            t,
            card,
            amount,
            payment.get("billing_country"),
            payment.get("ip_country"),
            payment.get("shipping_country"),
            (_series(cards), _series(customers), _series(devices)),
            address,
            _series(addresses, card=True),
            history,
        )
        return model_inputs(payment, values, segment, region), from_micros(int(latest))

    # -- loading a published version ----------------------------------------------------------

    def _ensure_loaded(self, tables: dict[str, pl.DataFrame]) -> None:
        ready = self.space + "ready"
        if self.client.exists(ready):
            return
        lock = self.client.lock(self.space + "loading", timeout=LOAD_TIMEOUT_SECONDS)
        deadline = time.monotonic() + LOAD_TIMEOUT_SECONDS
        while not self.client.exists(ready):
            if lock.acquire(blocking=False):
                try:
                    if not self.client.exists(ready):
                        self._load(tables)
                        self.client.set(ready, str(os.getpid()))
                        self._forget_old_versions()
                finally:
                    lock.release()
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"fraud feature state {self.version}: another worker did not finish "
                    f"loading it into Redis within {LOAD_TIMEOUT_SECONDS:.0f} s"
                )
            time.sleep(0.1)

    def _load(self, tables: dict[str, pl.DataFrame]) -> None:
        """Copy the published state in, as `FraudFeatureState.from_frames` rebuilds it."""
        started = time.perf_counter()
        pipe = self.client.pipeline(transaction=False)
        events = (
            tables["events"]
            .with_columns((pl.col("ts").dt.epoch("us")).alias("_t"))
            .sort("_t", maintain_order=True)
        )
        sequence = 0
        for (entity, key), part in events.group_by("entity", "key", maintain_order=True):
            if key is None:
                continue
            address = entity == "address"
            values = part["card_id"] if address else part["amount"]
            members = {}
            for t, value in zip(part["_t"].to_list(), values.to_list(), strict=True):
                sequence += 1
                encoded = _card(value) if address else repr(float(value))
                members[f"{sequence:016d}|{t}|{encoded}"] = t
            pipe.zadd(self.key(_ENTITY_KEYS[entity], key), members)
        payments = (
            tables["customer_payments"]
            .with_columns(pl.col("ts").dt.epoch("us").alias("_t"))
            .sort("_t", maintain_order=True)
        )
        latest = [int(f["_t"].max()) for f in (events, payments) if f.height]
        for (cid,), part in payments.group_by("customer_id", maintain_order=True):
            if cid is None:
                continue
            ts, amounts = part["_t"].to_list(), part["amount"].to_list()
            members = {}
            for t, amount in zip(ts, amounts, strict=True):
                sequence += 1
                members[f"{sequence:016d}|{t}|{float(amount)!r}"] = t
            pipe.zadd(self.key("h", cid), members)
            total = list(accumulate(amounts, initial=0.0))[-1]
            pipe.hset(
                self.key("g", cid),
                mapping={"n": len(ts), "total": repr(float(total)), "last": max(ts)},
            )
        devices = tables["devices"].with_columns(pl.col("first_use").dt.epoch("us").alias("_f"))
        for (cid,), part in devices.group_by("customer_id", maintain_order=True):
            if cid is not None:
                pipe.hset(
                    self.key("v", cid),
                    mapping=dict(
                        zip(part["device_id"].to_list(), part["_f"].to_list(), strict=True)
                    ),
                )
        pipe.set(self.space + "seq", sequence)
        if latest:
            pipe.set(self.space + "as_of", max(latest))
        pipe.execute()
        log.info(
            "fraud feature state %s loaded into Redis: %d payments in %.1f s",
            self.version,
            sequence,
            time.perf_counter() - started,
        )

    def _forget_old_versions(self) -> None:
        versions = f"{self.root}:versions"
        self.client.zadd(versions, {self.version: time.time()})
        stale = self.client.zrange(versions, 0, -(KEEP_VERSIONS + 1))
        for version in stale:
            for batch in _batched(self.client.scan_iter(f"{self.root}:{version}:*", count=1000)):
                self.client.unlink(*batch)
            self.client.zrem(versions, version)


def _batched(keys, size: int = 500):
    batch = []
    for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- the pricing circuit breaker ----------------------------------------------------------------

WINDOW = """
-- KEYS: 1 order (zset: store x SKU -> sequence), 2 scores (hash: store x SKU -> standardized
--       change), 3 sequence
-- ARGV: 1 store x SKU, 2 standardized change, 3 window size
local seq = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
local window = tonumber(ARGV[3])
if n > window then
  local old = redis.call('ZRANGE', KEYS[1], 0, n - window - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - window - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
  n = window
end
local total = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do
  total = total + tonumber(v)
end
return {n, string.format('%.17g', total), seq}
"""


class RedisChangeWindow(ChangeWindow):
    """The breaker's window of one pricing version, shared by every worker: each store x SKU's
    latest standardized change, the oldest dropped beyond the window, in one script call. The
    decision (`ChangeWindow._judge`) is the in-process one."""

    def __init__(
        self,
        reference: dict[str, Any],
        settings: BreakerSettings,
        breakers: RedisBreakers,
        version: str,
    ):
        super().__init__(reference, settings)
        self.client = breakers.client
        self.space = breakers.window_space(version)
        self._push = breakers.window_script

    def push(self, key: Any, score: float) -> tuple[int, float]:
        name = "|".join(map(str, key)) if isinstance(key, tuple) else str(key)
        n, total, sequence = self._push(
            keys=[self.space + "order", self.space + "scores", self.space + "seq"],
            args=[name, repr(float(score)), self.settings.window],
        )
        self.observed = int(sequence)
        return int(n), float(total)

    def size(self) -> int:
        return int(self.client.zcard(self.space + "order"))


class RedisBreakers:
    """Which pricing versions' breakers are open, shared by every worker: the worker whose
    window trips first opens it (HSETNX: exactly one records it and moves the pointer); the
    others see it on their next check."""

    def __init__(self, client: redis.Redis, prefix: str = PREFIX):
        self.client = client
        self.prefix = prefix
        self.open_key = f"{prefix}:pricing:open"
        self.window_script = client.register_script(WINDOW)

    def window_space(self, version: str) -> str:
        return f"{self.prefix}:pricing:{version}:"

    def try_open(self, version: str, event: dict[str, Any]) -> bool:
        """True when this call opened it; False when another worker already had."""
        return bool(self.client.hsetnx(self.open_key, version, json.dumps(event)))

    def opened(self) -> dict[str, dict[str, Any]]:
        return {v: json.loads(e) for v, e in self.client.hgetall(self.open_key).items()}

    def close(self, version: str) -> None:
        space = self.window_space(version)
        self.client.hdel(self.open_key, version)
        self.client.delete(space + "order", space + "scores", space + "seq")
