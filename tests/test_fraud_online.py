"""The fraud features have one definition, `FraudFeatureState`: these tests prove it is
point-in-time correct and that serving and training get bit-identical features from it.

What the dbt tests on `marts/transaction_features` used to guarantee (velocity counts only
strictly earlier payments, window bounds, same-instant payments invisible to each other) is
proven here on the Python definition: on hand-built payments, by perturbing everything after a
cut-off, and against an independent recount with plain joins. The replay test then runs the
full history the way production does: the pipeline publishes the state part-way through the
history, serving reloads it and scores the remaining payments one request at a time, and every
feature of every training example after that point equals the training set's, exactly.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from retail_assets.models.fraud.online import (
    FEATURE_NAMES,
    FEATURES,
    FraudFeatureState,
    replay_features,
)

SIGNUP = date(2024, 1, 1)
START = datetime(2025, 3, 3, 10, 0)  # a Monday


def _payments(rows: list[dict]) -> pl.DataFrame:
    defaults = {
        "customer_id": "C1",
        "card_id": "K1",
        "device_id": "D1",
        "shipping_address_id": "A1",
        "billing_country": "US",
        "ip_country": "US",
        "shipping_country": "US",
    }
    return pl.DataFrame(
        [{**defaults, **row} for row in rows],
        schema={
            "transaction_id": pl.String,
            "transaction_ts": pl.Datetime("us"),
            "customer_id": pl.String,
            "card_id": pl.String,
            "device_id": pl.String,
            "amount": pl.Float64,
            "shipping_address_id": pl.String,
            "billing_country": pl.String,
            "ip_country": pl.String,
            "shipping_country": pl.String,
        },
    )


def _customers(ids) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": list(ids),
            "segment": "value",
            "region": "north",
            "signup_date": [SIGNUP] * len(ids),
        }
    )


def _random_history(n: int = 1500, seed: int = 7) -> pl.DataFrame:
    """Dense synthetic payments: few cards, customers, devices and addresses, whole-minute
    timestamps over three weeks (so same-instant payments and payments exactly one hour or one
    day apart occur), some payments without device or address, country mismatches."""
    rng = np.random.default_rng(seed)
    minutes = np.sort(rng.integers(0, 21 * 24 * 60, n))
    customer = rng.integers(0, 25, n)
    return _payments(
        [
            {
                "transaction_id": f"T{i:05d}",
                "transaction_ts": START + timedelta(minutes=int(m)),
                "customer_id": f"C{c}",
                "card_id": f"K{(c + int(rng.integers(0, 3))) % 30}",
                "device_id": None if rng.random() < 0.1 else f"D{int(rng.integers(0, 20))}",
                "amount": round(float(rng.lognormal(3, 1)), 2),
                "shipping_address_id": None if rng.random() < 0.3 else f"A{c % 8}",
                "billing_country": "US",
                "ip_country": str(rng.choice(["US", "RU"])),
                "shipping_country": str(rng.choice(["US", "GB"])),
            }
            for i, (m, c) in enumerate(zip(minutes, customer, strict=True))
        ]
    )


def test_a_payment_sees_only_strictly_earlier_payments_and_window_bounds_are_inclusive():
    """Same-instant payments do not see each other (neither counts, neither is the device's
    earlier use, neither card is on the address yet); a payment exactly one hour (or seven
    days) earlier is inside the 1-hour (7-day) window, one microsecond more is not; the own
    card counts towards the cards per address; the per-request path agrees with the replay."""
    one_hour = timedelta(hours=1)
    payments = _payments(
        [
            {"transaction_id": "p1", "transaction_ts": START, "amount": 10.0},
            {"transaction_id": "p2", "transaction_ts": START, "amount": 20.0, "card_id": "K2"},
            {"transaction_id": "p3", "transaction_ts": START + one_hour, "amount": 30.0},
            {
                "transaction_id": "p4",
                "transaction_ts": START + one_hour + timedelta(microseconds=1),
                "amount": 40.0,
                "ip_country": "RU",
            },
            {"transaction_id": "p5", "transaction_ts": START + timedelta(days=7), "amount": 5.0},
        ]
    )
    features = {
        row["transaction_id"]: row
        for row in replay_features(payments, _customers(["C1"])).iter_rows(named=True)
    }
    p1, p2, p3, p4, p5 = (features[f"p{i}"] for i in range(1, 6))
    assert p1["card_txn_count_7d"] == p1["customer_txn_count_7d"] == 0
    assert p1["customer_prior_avg_amount"] is None and p1["amount_to_customer_avg_ratio"] is None
    assert p1["is_first_device_use_for_customer"] and p1["ship_address_distinct_cards_7d"] == 1
    assert (p1["hour_of_day"], p1["day_of_week"]) == (10, 1)
    assert p1["customer_tenure_days"] == (START.date() - SIGNUP).days
    # p2 shares p1's instant: it sees nothing of p1.
    assert p2["customer_txn_count_1h"] == p2["device_txn_count_1h"] == 0
    assert p2["is_first_device_use_for_customer"] and p2["ship_address_distinct_cards_7d"] == 1
    # p3 is exactly one hour after p1 and p2: both are in its 1-hour window.
    assert (p3["card_txn_count_1h"], p3["card_amount_1h"]) == (1, 10.0)
    assert (p3["customer_txn_count_1h"], p3["customer_amount_1h"]) == (2, 30.0)
    assert p3["customer_prior_txn_count"] == 2 and p3["customer_prior_avg_amount"] == 15.0
    assert p3["amount_to_customer_avg_ratio"] == 2.0
    assert not p3["is_first_device_use_for_customer"]
    assert p3["ship_address_distinct_cards_7d"] == 2
    # p4 is one microsecond later: p1 has left the 1-hour window, p3 has not.
    assert (p4["card_txn_count_1h"], p4["card_amount_1h"]) == (1, 30.0)
    assert p4["card_txn_count_24h"] == 2 and p4["is_billing_ip_country_mismatch"]
    # p5 is exactly seven days after p1 and p2: both are still in its 7-day windows (so is
    # p2's card on the address), nothing is in its 24 hours.
    assert (p5["card_txn_count_7d"], p5["card_amount_7d"]) == (3, 80.0)
    assert p5["card_txn_count_24h"] == 0 and p5["ship_address_distinct_cards_7d"] == 2

    state = FraudFeatureState()
    state.load_customers(_customers(["C1"]))
    for row in payments.iter_rows(named=True):
        online = state.features(row)
        assert {name: online[name] for name in FEATURE_NAMES} == {
            name: features[row["transaction_id"]][name] for name in FEATURE_NAMES
        }
        state.observe(row)


def test_features_do_not_change_when_later_or_same_instant_payments_change():
    """No leakage: rewriting every payment after a cut-off (other amounts, cards, devices,
    addresses, some dropped) and adding payments at the cut-off instant itself and later for
    the same card, customer, device and address leaves the features of every payment up to the
    cut-off bit-identical; the later payments' features do change, so the edit reached them."""
    history = _random_history()
    cutoff = history["transaction_ts"][history.height // 2]
    at_cutoff = history.filter(pl.col("transaction_ts") == cutoff).row(0, named=True)
    later = history.filter(pl.col("transaction_ts") > cutoff)
    rng = np.random.default_rng(1)
    rewritten = later.with_columns(
        (pl.col("amount") * 3 + 1).alias("amount"),
        pl.Series("card_id", [f"K{int(k)}" for k in rng.integers(0, 30, later.height)]),
        pl.Series("device_id", [f"D{int(k)}" for k in rng.integers(0, 20, later.height)]),
        pl.Series("shipping_address_id", [f"A{int(k)}" for k in rng.integers(0, 8, later.height)]),
    ).filter(pl.int_range(pl.len()) % 5 != 0)
    injected = _payments(
        [
            # ids that sort first: the replay folds these in before the original payments
            # at the same instant, which still must not see them
            {**at_cutoff, "transaction_id": f"0X{i}", "transaction_ts": cutoff + delay}
            for i, delay in enumerate([timedelta(0), timedelta(0), timedelta(seconds=1)])
        ]
    )
    perturbed = pl.concat([history.filter(pl.col("transaction_ts") <= cutoff), rewritten, injected])

    customers = _customers([f"C{i}" for i in range(25)])
    before = replay_features(history, customers)
    after = replay_features(perturbed, customers)
    kept = history.filter(pl.col("transaction_ts") <= cutoff)["transaction_id"]
    assert kept.len() >= history.height // 2
    assert before.filter(pl.col("transaction_id").is_in(kept.implode())).equals(
        after.filter(pl.col("transaction_id").is_in(kept.implode()))
    )
    moved = before.join(after, on="transaction_id", suffix="_after").filter(
        ~pl.col("transaction_id").is_in(kept.implode())
    )
    assert (moved["card_amount_7d"] != moved["card_amount_7d_after"]).any()


def _recount(payments: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """Every feature recomputed from the definitions with plain joins, independently of
    `FraudFeatureState` (no bisection, no state, no replay order)."""
    p = payments.with_columns(pl.col("transaction_ts").alias("ts"))
    ids = p.select("transaction_id")
    out = ids
    windows = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
    for entity in ("card", "customer", "device"):
        key = f"{entity}_id"
        earlier = (
            p.select("transaction_id", "ts", key)
            .join(p.select(key, pl.col("ts").alias("ts_e"), pl.col("amount").alias("a_e")), on=key)
            .filter(pl.col("ts_e") < pl.col("ts"))
        )
        aggregates = []
        for label, width in windows.items():
            inside = pl.col("ts_e") >= pl.col("ts") - width
            aggregates += [
                inside.sum().cast(pl.Int64).alias(f"{entity}_txn_count_{label}"),
                pl.col("a_e").filter(inside).sum().alias(f"{entity}_amount_{label}"),
            ]
        counts = earlier.group_by("transaction_id").agg(aggregates)
        out = out.join(counts, on="transaction_id", how="left")
    zero = [pl.col(c).fill_null(0) for c in out.columns if c != "transaction_id"]
    out = out.with_columns(zero)

    prior = (
        p.select("transaction_id", "ts", "customer_id", "amount")
        .join(
            p.select("customer_id", pl.col("ts").alias("ts_e"), pl.col("amount").alias("a_e")),
            on="customer_id",
        )
        .filter(pl.col("ts_e") < pl.col("ts"))
        .group_by("transaction_id")
        .agg(
            pl.len().cast(pl.Int64).alias("customer_prior_txn_count"),
            pl.col("a_e").mean().alias("customer_prior_avg_amount"),
        )
    )
    device_seen = (
        p.select("transaction_id", "ts", "customer_id", "device_id")
        .join(
            p.select("customer_id", "device_id", pl.col("ts").alias("ts_e")),
            on=["customer_id", "device_id"],
        )
        .filter(pl.col("ts_e") < pl.col("ts"))
        .select("transaction_id")
        .unique()
        .with_columns(pl.lit(False).alias("is_first_device_use_for_customer"))
    )
    address_cards = (
        pl.concat(
            [
                p.select("transaction_id", "ts", "shipping_address_id")
                .join(
                    p.select("shipping_address_id", pl.col("ts").alias("ts_e"), pl.col("card_id")),
                    on="shipping_address_id",
                )
                .filter(
                    (pl.col("ts_e") < pl.col("ts"))
                    & (pl.col("ts_e") >= pl.col("ts") - timedelta(days=7))
                )
                .select("transaction_id", "card_id"),
                p.filter(pl.col("shipping_address_id").is_not_null()).select(
                    "transaction_id", "card_id"
                ),
            ]
        )
        .group_by("transaction_id")
        .agg(pl.col("card_id").n_unique().alias("ship_address_distinct_cards_7d"))
    )
    signup = customers.select("customer_id", "signup_date")
    row_wise = p.join(signup, on="customer_id", how="left").select(
        "transaction_id",
        (pl.col("billing_country") != pl.col("ip_country")).alias("is_billing_ip_country_mismatch"),
        (pl.col("billing_country") != pl.col("shipping_country")).alias(
            "is_billing_shipping_country_mismatch"
        ),
        pl.col("ts").dt.hour().cast(pl.Int64).alias("hour_of_day"),
        pl.col("ts").dt.weekday().cast(pl.Int64).alias("day_of_week"),
        (pl.col("ts").dt.date() - pl.col("signup_date"))
        .dt.total_days()
        .alias("customer_tenure_days"),
        "amount",
    )
    return (
        out.join(prior, on="transaction_id", how="left")
        .join(device_seen, on="transaction_id", how="left")
        .join(address_cards, on="transaction_id", how="left")
        .join(row_wise, on="transaction_id", how="left")
        .with_columns(
            pl.col("customer_prior_txn_count").fill_null(0),
            pl.col("is_first_device_use_for_customer").fill_null(True),
            (pl.col("amount") / pl.col("customer_prior_avg_amount")).alias(
                "amount_to_customer_avg_ratio"
            ),
        )
    )


def test_replayed_features_equal_an_independent_recount_of_earlier_payments():
    """Every feature of every payment equals a recount from the definitions with plain joins
    (the check the dbt test `assert_transaction_velocity_uses_only_earlier_payments` made, for
    every feature). Counts and flags are exact; sums and averages agree to 1e-9 relative,
    since the recount adds the same amounts in another order."""
    history = _random_history()
    customers = _customers([f"C{i}" for i in range(25)])
    replayed = replay_features(history, customers)
    expected = _recount(history, customers)
    joined = replayed.join(expected, on="transaction_id", suffix="_recount")
    assert joined.height == history.height
    problems = []
    for name, dtype in FEATURES.items():
        got = joined[name].cast(pl.Float64).to_numpy()
        want = joined[f"{name}_recount"].cast(pl.Float64).to_numpy()
        both_missing = np.isnan(got) & np.isnan(want)
        if dtype == pl.Float64:
            same = both_missing | np.isclose(got, want, rtol=1e-9, atol=0)
        else:
            same = both_missing | (got == want)
        if not same.all():
            problems.append(f"{name}: {int((~same).sum())} payments differ")
    assert not problems, problems
    # The fixture exercises what the definitions are about.
    assert joined["card_txn_count_1h"].max() >= 2
    assert joined["ship_address_distinct_cards_7d"].max() >= 3
    assert joined["is_first_device_use_for_customer"].sum() > 0
    assert joined["customer_prior_avg_amount"].null_count() > 0


def _canonical(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """Published tables in a fixed row order (stable: a series keeps its own order)."""
    return {name: f.sort(f.columns[:2], maintain_order=True) for name, f in frames.items()}


def test_the_state_built_in_bulk_equals_the_state_built_payment_by_payment():
    """`from_history` (polars group-bys) leaves exactly the state that folding every payment in
    with `observe` and pruning leaves, and publishing then reloading it changes nothing."""
    history = _random_history()
    customers = _customers([f"C{i}" for i in range(20)])  # some payers are unknown customers
    one_by_one = FraudFeatureState()
    one_by_one.load_customers(customers)
    for row in history.sort("transaction_ts", "transaction_id").iter_rows(named=True):
        one_by_one.observe(row)
    one_by_one.prune(one_by_one.as_of)
    bulk = FraudFeatureState.from_history(history, customers)
    assert bulk.as_of == one_by_one.as_of == history["transaction_ts"].max()
    published = _canonical(bulk.to_frames())
    expected = _canonical(one_by_one.to_frames())
    for name, frame in expected.items():
        assert published[name].equals(frame), name
    reloaded = FraudFeatureState.from_frames(bulk.to_frames())
    assert reloaded.as_of == bulk.as_of
    for name, frame in _canonical(reloaded.to_frames()).items():
        assert frame.equals(published[name]), name


def test_a_late_payment_is_folded_in_at_its_own_time():
    """Serving accepts payments up to a week late: one arriving after a later payment is placed
    in time order, so the next payment's windows and the customer's running total count it."""
    state = FraudFeatureState()
    state.load_customers(_customers(["C1"]))
    base = {"customer_id": "C1", "card_id": "K1", "device_id": "D1", "shipping_address_id": "A1"}
    state.observe({**base, "transaction_ts": START + timedelta(minutes=30), "amount": 30.0})
    state.observe({**base, "transaction_ts": START, "amount": 10.0, "card_id": "K2"})
    assert state.as_of == START + timedelta(minutes=30)
    after = state.features({**base, "transaction_ts": START + timedelta(minutes=45), "amount": 1})
    assert after["customer_txn_count_1h"] == 2 and after["customer_amount_1h"] == 40.0
    assert after["customer_prior_avg_amount"] == 20.0
    assert after["ship_address_distinct_cards_7d"] == 2
    between = state.features({**base, "transaction_ts": START + timedelta(minutes=10), "amount": 1})
    assert between["customer_txn_count_1h"] == 1 and between["customer_prior_txn_count"] == 1


def test_the_online_module_imports_without_the_training_stack():
    """Serving imports the feature definition; it must not drag in LightGBM, scikit-learn,
    Dagster or MLflow."""
    heavy = ("lightgbm", "sklearn", "dagster", "mlflow", "onnx")
    code = (
        "import sys; import retail_assets.models.fraud.online; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"


@pytest.fixture(scope="module")
def platform_data(tiny_platform):
    from retail_assets.models.fraud import fraud_family
    from retail_assets.models.fraud.training_set import CUSTOMERS, TRANSACTIONS
    from retail_assets.warehouse import WarehouseResource

    settings, _ = tiny_platform
    warehouse = WarehouseResource(path=str(settings.warehouse_path))
    mart = warehouse.read_table("marts", "transaction_features")
    customers = warehouse.read_table("marts", "dim_customers")
    training_set = fraud_family.build_training_set({TRANSACTIONS: mart, CUSTOMERS: customers})
    return mart, customers, training_set


@pytest.mark.parametrize("cut", ["before_train", "inside_validation"])
def test_serving_a_published_state_reproduces_the_training_set_exactly(platform_data, cut):
    """The full-history proof. The state is published after part of the history (before the
    train window, or in the middle of the validation window), reloaded as serving loads it, and
    fed every later payment one request at a time (features, then observe). Every training,
    validation and test example after the cut gets exactly the feature vector the training set
    holds for it (bit for bit, categorical codes included): training and serving share one
    definition and cannot drift."""
    from retail_assets.models.fraud.training_set import prepare_features

    mart, customers, training_set = platform_data
    windows = training_set.windows
    # Where the pipeline publishes: a few days before the train window (every example is then
    # served), or mid-validation at noon (a day of payments split between the published state
    # and the served requests).
    at = {
        "before_train": datetime.fromisoformat(windows["train"]["start"]) - timedelta(days=3),
        "inside_validation": datetime.fromisoformat(windows["validation"]["start"])
        + timedelta(days=5, hours=12),
    }[cut]
    published = FraudFeatureState.from_history(
        mart.filter(pl.col("transaction_ts") < at), customers
    )
    state = FraudFeatureState.from_frames(published.to_frames())
    examples = training_set.frame.filter(pl.col("transaction_ts") >= at)
    wanted = set(examples["transaction_id"].to_list())
    served = []
    remaining = mart.filter(pl.col("transaction_ts") >= at).sort("transaction_ts", "transaction_id")
    for payment in remaining.iter_rows(named=True):
        if payment["transaction_id"] in wanted:
            served.append({"transaction_id": payment["transaction_id"], **state.features(payment)})
        state.observe(payment)
    assert len(served) == examples.height > 0
    served_frame = prepare_features(
        pl.DataFrame(served, infer_schema_length=None), training_set.encodings
    )
    served_frame = examples.select("transaction_id").join(
        served_frame, on="transaction_id", how="left", maintain_order="left"
    )
    np.testing.assert_array_equal(
        training_set.features(served_frame), training_set.features(examples), strict=True
    )
