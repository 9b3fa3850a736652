"""Training/serving skew guard for fraud: the online feature state reproduces the mart."""

from datetime import timedelta

import polars as pl

from retail_assets.models.fraud.online import FraudFeatureState
from retail_assets.warehouse import WarehouseResource

FEATURES = [
    *(
        f"{e}_{k}_{w}"
        for e in ("card", "customer", "device")
        for w in ("1h", "24h", "7d")
        for k in ("txn_count", "amount")
    ),
    "is_first_device_use_for_customer",
    "ship_address_distinct_cards_7d",
    "is_billing_ip_country_mismatch",
    "is_billing_shipping_country_mismatch",
    "customer_prior_txn_count",
    "customer_prior_avg_amount",
    "amount_to_customer_avg_ratio",
    "customer_tenure_days",
    "hour_of_day",
    "day_of_week",
]


def test_replaying_payments_through_the_online_state_reproduces_the_mart(tiny_platform):
    """Build the state from every payment before the last 10 days, publish and reload it (as
    the pipeline and serving do), then score the last 10 days one payment at a time, folding
    each in after scoring, exactly as serving does. Every behavioural feature equals the value
    dbt computed in marts/transaction_features for that payment: zero training/serving skew."""
    settings, _ = tiny_platform
    warehouse = WarehouseResource(path=str(settings.warehouse_path))
    mart = warehouse.read_table("marts", "transaction_features")
    customers = warehouse.read_table("marts", "dim_customers")
    cut = mart["transaction_ts"].max() - timedelta(days=10)
    before = mart.filter(pl.col("transaction_ts") < cut)
    replay = mart.filter(pl.col("transaction_ts") >= cut).sort("transaction_ts", "transaction_id")
    assert replay.height > 500

    state = FraudFeatureState.from_frames(
        FraudFeatureState.from_history(before, customers).to_frames()
    )
    mismatches = []
    for row in replay.iter_rows(named=True):
        online = state.features(row)
        for name in FEATURES:
            expected, actual = row[name], online[name]
            same = (expected is None and actual is None) or (
                expected is not None
                and actual is not None
                and abs(float(expected) - float(actual)) < 1e-9
            )
            if not same:
                mismatches.append((row["transaction_id"], name, expected, actual))
        state.observe(row)
    assert not mismatches, f"{len(mismatches)} skewed values, e.g. {mismatches[:5]}"
