"""ULB / Worldline credit card fraud, stratified sample (5,412 real transactions).

Source: ``ulb_creditcard_fraud_sample/creditcard_sample.csv`` (see its SOURCE.md): all 492
frauds of the full Kaggle "creditcardfraud" data plus 4,920 random legitimate transactions,
shuffled. Features are anonymous PCA components, so this dataset has its own schema instead of
the ``payments`` / ``fraud_labels`` contracts (no customer, card, device, channel or country).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import polars as pl

from retail_assets.sources.real._csv import read_records, resolve_dataset_file

DATASET = "ulb_creditcard_fraud_sample"
FOLDER = "ulb_creditcard_fraud_sample"
FILE_NAME = "creditcard_sample.csv"

# The fraud prior of the FULL dataset, not of this file. SOURCE.md: "9.1% fraud here vs 0.172%
# (492 / 284,807) in the full data" - the sample keeps every fraud but only 4,920 of the
# 284,315 legitimate transactions, so precision, PR-AUC and alert rates measured on it must be
# reweighted (or non-fraud resampled) to this prior before they say anything about production.
CREDITCARD_TRUE_FRAUD_RATE = 492 / 284_807

PCA_COLUMNS = tuple(f"V{i}" for i in range(1, 29))
HEADER = ("Time", *PCA_COLUMNS, "Amount", "Class")

SCHEMA: dict[str, pl.DataType] = {
    "time_s": pl.Float64(),
    **{name.lower(): pl.Float64() for name in PCA_COLUMNS},
    "amount": pl.Float64(),
    "is_fraud": pl.Boolean(),
}


def load_creditcard_fraud(path: Path | str | None = None) -> pl.DataFrame:
    """Load the fraud sample: ``time_s``, ``v1``..``v28``, ``amount`` (EUR), ``is_fraud``.

    ``time_s`` is seconds since the first transaction of the full two-day dataset. Rows are
    sorted by ``time_s`` (stable, so ties keep file order) because the file is shuffled and
    any time-based split needs time order. The label balance is artificial (9.09% fraud);
    see ``CREDITCARD_TRUE_FRAUD_RATE`` for the real prior. Duplicated rows (19, all fraud,
    also present in the full data) are kept.

    Every field is validated (numbers must be plain decimals, ``Amount`` >= 0, ``Time`` >= 0,
    ``Class`` 0 or 1); problems raise ``RealDataFormatError`` with file, line and column.
    """
    return _read(path).drop("line")


def _read(path: Path | str | None) -> pl.DataFrame:
    """The validated sample, sorted by time, with each record's physical ``line``."""
    csv_path = resolve_dataset_file(DATASET, FOLDER, FILE_NAME, path)
    columns: dict[str, list] = {name: [] for name in SCHEMA}
    lines: list[int] = []
    for record in read_records(csv_path, HEADER):
        lines.append(record.line)
        time_s = record.number("Time")
        if time_s < 0:
            raise record.error("Time", f"expected seconds >= 0, got {time_s}")
        amount = record.number("Amount")
        if amount < 0:
            raise record.error("Amount", f"expected an amount >= 0, got {amount}")
        columns["time_s"].append(time_s)
        for name in PCA_COLUMNS:
            columns[name.lower()].append(record.number(name))
        columns["amount"].append(amount)
        columns["is_fraud"].append(record.choice("Class", {"0": False, "1": True}))
    frame = pl.DataFrame(columns, schema=SCHEMA).with_columns(
        pl.Series("line", lines, dtype=pl.Int32)
    )
    return frame.sort("time_s", maintain_order=True)


# --- files for `retail land` ----------------------------------------------------------------

NOMINAL_START = datetime(2013, 9, 1)
"""The data gives seconds since its first transaction, "two days in September 2013"
(SOURCE.md), not a date: ``event_ts`` = this nominal midnight + ``Time``. Only the order and
the spacing of the transactions are real."""
LABEL_DELAY_DAYS = 60
"""The data does not say when each label became known; every label is dated at the end of a
60-day dispute window after its transaction (the contract: legitimate once the dispute
window closes), the latest a chargeback usually arrives."""


def derive_landing_files(out_dir: Path | str, path: Path | str | None = None) -> dict[str, Path]:
    """Write the sample as ``payments.csv`` and ``fraud_labels.csv`` for `retail land` (with
    ``benchmarks/landing/ulb_creditcard_fraud_sample/<feed>.yaml``) and return them.

    The file has a time offset, 28 anonymous PCA components, an amount and a label; the
    ``payments`` contract wants ids, channel, countries and basket fields. What the data has:

    - ``transaction_id`` ``ULB-<line>`` (the record's physical line in the CSV, so a payment
      can be found in the source); ``event_ts`` = ``NOMINAL_START`` + ``Time`` seconds;
      ``amount`` = ``Amount`` (EUR, the currency is set in ``payments.yaml``).
    - ``customer_id``, ``card_id``, ``device_id``: the data has no identities (anonymised), so
      each transaction gets its own (``anon-customer-<line>`` ...): every card is seen once,
      and velocity features see no history - the truth as far as the data tells it. One shared
      placeholder id would instead make all 5,412 payments one card's history.
    - ``is_fraud`` = ``Class`` = 1, ``label_available_at`` = ``event_ts`` +
      ``LABEL_DELAY_DAYS``; ``fraud_labels.yaml`` sets ``label_source``.

    Placeholders for the required fields the data lacks (channel, item count, department,
    payment method, countries) are constants in ``payments.yaml``, where they can be read.
    V1..V28 have no place in the payments contract and are not landed: the platform's fraud
    features are computed from raw payment fields, so only the amount and time carry over.
    """
    frame = _read(path)
    ts = (pl.lit(NOMINAL_START) + pl.duration(microseconds=(pl.col("time_s") * 1e6).round())).cast(
        pl.Datetime("us")
    )
    line = pl.col("line").cast(pl.String)
    rows = frame.with_columns(transaction_id=pl.format("ULB-{}", line), event_ts=ts).sort(
        "event_ts", "transaction_id"
    )
    payments = rows.select(
        "transaction_id",
        "event_ts",
        pl.format("anon-customer-{}", line).alias("customer_id"),
        pl.format("anon-card-{}", line).alias("card_id"),
        pl.format("anon-device-{}", line).alias("device_id"),
        "amount",
    )
    labels = rows.select(
        "transaction_id",
        "is_fraud",
        (pl.col("event_ts") + pl.duration(days=LABEL_DELAY_DAYS)).alias("label_available_at"),
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"payments": out / "payments.csv", "fraud_labels": out / "fraud_labels.csv"}
    payments.write_csv(files["payments"])
    labels.write_csv(files["fraud_labels"])
    return files
