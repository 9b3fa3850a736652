"""ULB / Worldline credit card fraud, stratified sample (5,412 real transactions).

Source: ``ulb_creditcard_fraud_sample/creditcard_sample.csv`` (see its SOURCE.md): all 492
frauds of the full Kaggle "creditcardfraud" data plus 4,920 random legitimate transactions,
shuffled. Features are anonymous PCA components, so this dataset has its own schema instead of
the ``payments`` / ``fraud_labels`` contracts (no customer, card, device, channel or country).
"""

from __future__ import annotations

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
    csv_path = resolve_dataset_file(DATASET, FOLDER, FILE_NAME, path)
    columns: dict[str, list] = {name: [] for name in SCHEMA}
    for record in read_records(csv_path, HEADER):
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
    return pl.DataFrame(columns, schema=SCHEMA).sort("time_s", maintain_order=True)
