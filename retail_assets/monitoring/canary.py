"""Progressive delivery: the canary's fate decided by live data.

A challenger that passed the offline gate serves a sticky share of entities (the promotion
asset starts the canary). Each monitoring run takes the predictions serving logged for the
champion and the challenger since the canary started, joins what has happened since (fraud
labels as known now, realised sales), turns each prediction into a loss, and asks the
sequential test (`core/sequential.py`) to promote, extend or roll back. Every look is recorded
in the decision log with the test, the data and the confidence; a promotion moves the serving
pointer and the MLflow aliases, a rollback retires the challenger (serving drops it at its next
poll, with no failed request: the slot swaps by reference).

Losses (lower is better, one per prediction):
* fraud: log loss of the served probability against the eventual label, estimated from the
  labels known now with label-delay weights (`fraud_losses`), compared on the mean (Welch t);
* demand: absolute error of the median forecast against realised sales, divided by the
  series' mean sales over the window so large and small series weigh alike.

The search index's canary is decided on a rate instead: click-through per logged search (a
click in the same session on a returned SKU within ATTRIBUTION_MINUTES), by the same design's
two-proportion version (`sequential.decide_rates`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from retail_assets.core import clock, sequential
from retail_assets.core.store import ArtifactStore
from retail_assets.models.fraud.training_set import WindowConfig

# Probabilities are clipped before the log so that one confident mistake costs a bounded loss.
_EPS = 1e-6


@dataclass
class CanaryLook:
    model: str
    challenger: str
    champion: str
    look: sequential.Look
    data: dict[str, Any]

    def evidence(self) -> dict[str, Any]:
        return {"test": self.look.as_dict(), "data": self.data}


def logged_rows(log: pl.DataFrame, model: str, champion: str, challenger: str, since: datetime):
    """The champion's and the challenger's logged predictions since `since` (the canary's
    start); log timestamps are UTC whatever zone name the warehouse gives them."""
    since_utc = since.astimezone(UTC).replace(tzinfo=None) if since.tzinfo else since
    ts = pl.col("ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return log.filter(
        (pl.col("model") == model)
        & (ts >= since_utc)
        & (
            ((pl.col("arm") == "champion") & (pl.col("version") == champion))
            | ((pl.col("arm") == "challenger") & (pl.col("version") == challenger))
        )
    )


# -- fraud: losses while the labels are still arriving ---------------------------------------
#
# A fraud's label arrives when it is reported: investigations within days, chargebacks weeks
# later, up to the dispute window. Counting every payment without a label as genuine punishes
# the arm that flags frauds nobody has reported yet: a retrain that learnt a new pattern looks
# worse than the champion that misses it (`benchmarks/bench_fraud_recovery.py`: at +21 d, log
# loss 0.089 against the champion's 0.039 on the labels known a day after the week, 0.140
# against 0.397 on the eventual ones). So each payment's loss is weighted by the share of its
# label that has had time to arrive (inverse probability of censoring weighting):
#
#     loss = g + r / F(age) * (f - g),    g = -log(1 - p),  f = -log(p)
#
# with r = 1 for a payment reported as fraud by now and F(age) the share of frauds reported
# within that age, measured on matured payments (older than the dispute window, so every
# label is in). Its expectation is the payment's log loss against its eventual label when,
# at a given age, being reported yet does not depend on the score. Payments younger than the
# age by which MIN_REPORTED_SHARE of the frauds are reported are left out: their weights would
# make the estimate noisy (a weight of 1 / F), and they carry little of any fraud's label.

# The dispute window: a payment this old has its final label (the training set's maturity).
LABEL_MATURITY_DAYS = WindowConfig().label_maturity_days
# Payments count once half of the frauds of their age are reported (a weight of at most 2):
# the generator's chargebacks arrive after 18 days at the median, investigations after 4,
# so this is about two weeks after the payment (measured by `bench_fraud_recovery.py`).
MIN_REPORTED_SHARE = 0.5
# The reporting delays are read from the matured frauds of this many days before the dispute
# window: recent enough to follow a change in how fast frauds are reported.
DELAY_HISTORY_DAYS = 120
# Fewer matured frauds than this: no delay curve to trust, so only matured payments count.
MIN_MATURED_FRAUDS = 30


@dataclass(frozen=True)
class ReportingDelay:
    """How fast fraud labels arrive: the sorted delays (days) of matured frauds."""

    delays: np.ndarray

    @classmethod
    def measure(cls, transactions: pl.DataFrame, now: datetime) -> ReportingDelay:
        matured = pl.lit(now) - pl.duration(days=LABEL_MATURITY_DAYS)
        oldest = matured - pl.duration(days=DELAY_HISTORY_DAYS)
        frauds = transactions.filter(
            pl.col("is_fraud").fill_null(False)
            & (pl.col("transaction_ts") < matured)
            & (pl.col("transaction_ts") >= oldest)
            & (pl.col("label_available_at") <= now)
        )
        days = (pl.col("label_available_at") - pl.col("transaction_ts")).dt.total_seconds() / 86400
        return cls(np.sort(frauds.select(days.alias("d"))["d"].to_numpy()))

    @property
    def measured(self) -> bool:
        return self.delays.size >= MIN_MATURED_FRAUDS

    def reported_share(self, age_days: np.ndarray) -> np.ndarray:
        """F(age): the share of frauds reported within `age_days` (1 from the dispute window
        on; without enough matured frauds, 0 before it)."""
        age = np.asarray(age_days, dtype=float)
        if not self.measured:
            return np.where(age >= LABEL_MATURITY_DAYS, 1.0, 0.0)
        share = np.searchsorted(self.delays, age, side="right") / self.delays.size
        return np.where(age >= LABEL_MATURITY_DAYS, 1.0, share)

    def min_age_days(self) -> float:
        """The youngest age at which a payment counts."""
        if not self.measured:
            return float(LABEL_MATURITY_DAYS)
        index = int(np.ceil(MIN_REPORTED_SHARE * self.delays.size)) - 1
        return float(min(self.delays[max(index, 0)], LABEL_MATURITY_DAYS))

    def summary(self) -> dict[str, Any]:
        return {
            "matured_frauds": int(self.delays.size),
            "median_delay_days": round(float(np.median(self.delays)), 1)
            if self.delays.size
            else None,
            "counted_from_age_days": round(self.min_age_days(), 1),
        }


def delay_weighted_log_loss(
    p: np.ndarray, reported: np.ndarray, age_days: np.ndarray, delay: ReportingDelay
) -> tuple[np.ndarray, np.ndarray]:
    """(loss, counted): the label-delay weighted log loss per payment (see above) and which
    payments are old enough to count."""
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    share = delay.reported_share(age_days)
    counted = share >= MIN_REPORTED_SHARE
    genuine, fraud = -np.log(1 - p), -np.log(p)
    weight = np.where(counted & reported, 1.0 / np.maximum(share, MIN_REPORTED_SHARE), 0.0)
    return genuine + weight * (fraud - genuine), counted


def fraud_losses(
    rows: pl.DataFrame,
    transactions: pl.DataFrame,
    now: datetime,
    delay: ReportingDelay | None = None,
) -> pl.DataFrame:
    """arm, loss per logged payment that the payments mart knows and that is old enough to
    count: its label-delay weighted log loss (see above; `delay` measured from `transactions`
    unless given)."""
    probability = [json.loads(o)["probability"] for o in rows["output"].to_list()]
    served = rows.select("arm", pl.col("entity_id").alias("transaction_id")).with_columns(
        pl.Series("p", probability, dtype=pl.Float64)
    )
    labels = transactions.select(
        "transaction_id",
        (pl.col("is_fraud").fill_null(False) & (pl.col("label_available_at") <= now)).alias(
            "reported"
        ),
        ((pl.lit(now) - pl.col("transaction_ts")).dt.total_seconds() / 86400).alias("age"),
    )
    joined = served.join(labels, on="transaction_id", how="inner")
    loss, counted = delay_weighted_log_loss(
        joined["p"].to_numpy(),
        joined["reported"].to_numpy(),
        joined["age"].to_numpy(),
        delay or ReportingDelay.measure(transactions, now),
    )
    return (
        joined.select("arm")
        .with_columns(pl.Series("loss", loss), pl.Series("_counted", counted))
        .filter(pl.col("_counted"))
        .drop("_counted")
    )


def demand_losses(rows: pl.DataFrame, daily: pl.DataFrame) -> pl.DataFrame:
    """arm, loss per logged (series, target date) whose sales have landed."""
    records = []
    for arm, entity, features, output in rows.select(
        "arm", "entity_id", "features", "output"
    ).iter_rows():
        dates = json.loads(features).get("dates") or []
        outputs = json.loads(output)
        p50 = outputs.get("p50") or outputs.get("prediction") or next(iter(outputs.values()))
        store_id, _, sku = entity.partition(":")
        records.extend(
            (arm, store_id, sku, day, float(value)) for day, value in zip(dates, p50, strict=False)
        )
    if not records:
        return pl.DataFrame(schema={"arm": pl.String, "loss": pl.Float64})
    forecasts = pl.DataFrame(
        records, schema=["arm", "store_id", "sku", "date", "forecast"], orient="row"
    ).with_columns(pl.col("date").str.to_date())
    actual = daily.select("store_id", "sku", "date", pl.col("demand_quantity").alias("actual"))
    joined = forecasts.join(actual, on=["store_id", "sku", "date"], how="inner")
    scale = joined.group_by("store_id", "sku").agg(pl.col("actual").mean().alias("_level"))
    return (
        joined.join(scale, on=["store_id", "sku"])
        .with_columns(
            (
                (pl.col("forecast") - pl.col("actual")).abs() / pl.col("_level").clip(1.0, None)
            ).alias("loss")
        )
        .select("arm", "loss")
    )


@dataclass(frozen=True)
class LooksTaken:
    """The looks already recorded for a challenger (since it became challenger): `tested`
    ones had enough data to spend alpha; `waiting` ones had not."""

    tested: int = 0
    waiting: int = 0


def looks_taken(store: ArtifactStore, challenger: str) -> LooksTaken:
    """A look without enough data (the fraud canary waits about two weeks for labels) spends
    no alpha and uses none of the test's K looks; only looks that tested count towards K."""
    entries = store.log.entries(store.artifact) if store.log else []
    tested = waiting = 0
    for entry in entries:
        started = entry.get("action") in ("canary_started", "canary")  # models', search's
        if started and entry.get("version") == challenger:
            tested = waiting = 0
        elif entry.get("action") == "canary_look" and entry.get("version") == challenger:
            test = entry.get("evidence", {}).get("test", {})
            if test.get("alpha_this_look", 1.0) > 0:
                tested += 1
            else:
                waiting += 1
    return LooksTaken(tested, waiting)


def _next_look(taken: LooksTaken, decide: Callable[[int], sequential.Look]) -> sequential.Look:
    """The test's next look; a canary that has waited MAX_WAITING_LOOKS without enough data
    is rolled back (it is not getting the traffic or the labels to be judged)."""
    look = decide(taken.tested + 1)
    waited = taken.waiting + 1
    waiting = look.action == sequential.EXTEND and look.alpha_this_look == 0.0
    if waiting and waited >= sequential.MAX_WAITING_LOOKS:
        reason = f"{look.reason}; {waited} looks without enough data: rolled back"
        return dataclasses.replace(look, action=sequential.ROLLBACK, reason=reason)
    return look


def running_canary(store: ArtifactStore) -> str | None:
    """Why a retrain of the store's model must wait: its canary is running and undecided (None:
    none runs). A new challenger would replace it before its sequential test decides; the
    test decides within its bound (MAX_LOOKS looks that tested, MAX_WAITING_LOOKS that
    waited), so waiting never starves the model."""
    roles = store.roles()
    since = canary_since(roles)
    if since is None:
        return None
    return (
        f"the canary of v{roles.challenger.version} (since {since:%Y-%m-%d %H:%M}) has not "
        "been decided; a retrain now would replace it before its sequential test decides"
    )


def canary_since(roles) -> datetime | None:
    """When the running canary started (None: no canary running)."""
    if roles.rollout.mode != "canary" or roles.champion is None or roles.challenger is None:
        return None
    pointer = roles.challenger
    return datetime.fromisoformat(pointer.since) if pointer.since else None


def look_at_canary(
    store: ArtifactStore,
    roles,
    model: str,
    losses: pl.DataFrame,
    data: dict[str, Any],
    statistic: str = "rank",
    champion_degraded: bool = False,
) -> CanaryLook | None:
    """The next look at the running canary of `roles` (read once by the caller; None: no
    canary running); `statistic`: the sequential test's ("rank" or "mean");
    `champion_degraded`: the last look promotes a challenger that showed no harm."""
    if roles.rollout.mode != "canary" or roles.challenger is None or roles.champion is None:
        return None
    challenger, champion = roles.challenger.version, roles.champion.version
    champion_losses = losses.filter(pl.col("arm") == "champion")["loss"].to_numpy()
    challenger_losses = losses.filter(pl.col("arm") == "challenger")["loss"].to_numpy()
    look = _next_look(
        looks_taken(store, challenger),
        lambda k: sequential.decide(
            champion_losses,
            challenger_losses,
            k,
            statistic=statistic,
            champion_degraded=champion_degraded,
        ),
    )
    return CanaryLook(model, challenger, champion, look, data)


def act(
    store: ArtifactStore,
    look: CanaryLook,
    install: Callable[..., dict[str, Any]],
    after_rollback: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Record the look and carry out its decision: `install(version, action=, reason=, actor=,
    evidence=)` makes the challenger the champion (a model's also moves the MLflow aliases;
    an index's is `store.promote`); `after_rollback` follows a rollback (the aliases)."""
    evidence = look.evidence()
    store.record(
        "canary_look",
        look.challenger,
        reason=f"look {look.look.look}/{look.look.max_looks}: {look.look.reason}",
        actor="canary_test",
        evidence=evidence,
    )
    if look.look.action == sequential.PROMOTE:
        return install(
            look.challenger,
            action="promote",
            reason=f"canary passed the sequential test: {look.look.reason}",
            actor="canary_test",
            evidence=evidence,
        )
    if look.look.action == sequential.ROLLBACK:
        record = store.retire_challenger(
            reason=f"canary rolled back by the sequential test: {look.look.reason}",
            actor="canary_test",
            action="canary_rolled_back",
            evidence=evidence,
        )
        if after_rollback is not None:
            after_rollback()
        return record
    return {"action": "canary_extended", "version": look.challenger, "reason": look.look.reason}


# -- search: click-through ----------------------------------------------------------------------

# A click on a returned SKU in the same session up to this long after the search counts for
# that search: long enough to read a product page and come back, short enough that a later,
# unrelated visit to the same product is not credited to this search.
ATTRIBUTION_MINUTES = 30


def search_clicks(rows: pl.DataFrame, clickstream: pl.DataFrame) -> pl.DataFrame:
    """arm, version, clicked per logged search with a session: whether the session clicked
    one of the SKUs the search returned within ATTRIBUTION_MINUTES after it (the
    clickstream's `session_id` is the id the shop sent to /v1/search)."""
    if rows.is_empty():
        return pl.DataFrame(schema={"arm": pl.String, "version": pl.String, "clicked": pl.Boolean})
    searches = rows.filter(pl.col("entity_id") != "").select(
        "request_id",
        "arm",
        "version",
        pl.col("entity_id").alias("session_id"),
        pl.col("ts").dt.convert_time_zone("UTC").dt.replace_time_zone(None).alias("searched_at"),
        pl.col("output").str.json_decode(pl.Struct({"skus": pl.List(pl.String)})).alias("_out"),
    )
    returned = searches.with_columns(pl.col("_out").struct.field("skus").alias("sku")).explode(
        "sku"
    )
    clicks = clickstream.filter(pl.col("event_type") == "click").select(
        "session_id", "sku", pl.col("event_ts").cast(pl.Datetime("us")).alias("clicked_at")
    )
    window = pl.duration(minutes=ATTRIBUTION_MINUTES)
    credited = (
        returned.join(clicks, on=["session_id", "sku"], how="inner")
        .filter(
            (pl.col("clicked_at") >= pl.col("searched_at").cast(pl.Datetime("us")))
            & (pl.col("clicked_at") <= pl.col("searched_at").cast(pl.Datetime("us")) + window)
        )
        .select("request_id")
        .unique()
        .with_columns(pl.lit(True).alias("clicked"))
    )
    return (
        searches.select("request_id", "arm", "version")
        .join(credited, on="request_id", how="left")
        .with_columns(pl.col("clicked").fill_null(False))
        .select("arm", "version", "clicked")
    )


def look_at_click_canary(
    store: ArtifactStore,
    roles,
    clicks: pl.DataFrame,
    data: dict[str, Any],
    model: str = "search",
) -> CanaryLook | None:
    """The next look at a canary decided on click-through per arm (`clicks`: arm, clicked; the
    search index's, and the recommender's), None when none runs or it has not served its
    minimum time yet."""
    since = canary_since(roles)
    if since is None:
        return None
    if (clock.now() - since).total_seconds() < roles.rollout.min_seconds:
        return None
    challenger, champion = roles.challenger.version, roles.champion.version

    def arm(name: str) -> tuple[int, int]:
        clicked = clicks.filter(pl.col("arm") == name)["clicked"]
        return int(clicked.sum()), clicked.len()

    look = _next_look(
        looks_taken(store, challenger),
        lambda k: sequential.decide_rates(arm("champion"), arm("challenger"), k),
    )
    return CanaryLook(model, challenger, champion, look, data)
