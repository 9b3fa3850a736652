"""The real public datasets the platform knows how to load, and where they live.

Each dataset sits in its own folder under ``settings.real_data_dir`` (``RETAIL_REAL_DATA_DIR``,
default ``/work/shared/data/real``) with a ``SOURCE.md`` describing provenance, license and
caveats. The data is never copied into the repository.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retail_assets.sources.real import amazon, creditcard, online_retail, walmart
from retail_assets.sources.real._csv import resolve_dataset_file


@dataclass(frozen=True)
class RealDataset:
    name: str
    folder: str
    file_name: str
    loader: Callable[..., Any]
    description: str


REAL_DATASETS: dict[str, RealDataset] = {
    d.name: d
    for d in (
        RealDataset(
            name=walmart.DATASET,
            folder=walmart.FOLDER,
            file_name=walmart.FILE_NAME,
            loader=walmart.load_walmart_store_sales,
            description="Walmart weekly sales, 45 stores x 143 weeks (2010-02-05..2012-10-26)",
        ),
        RealDataset(
            name=online_retail.DATASET,
            folder=online_retail.FOLDER,
            file_name=online_retail.FILE_NAME,
            loader=online_retail.load_online_retail,
            description="UCI Online Retail, random 20,000-line sample (UK online, 2010-2011)",
        ),
        RealDataset(
            name=amazon.DATASET,
            folder=amazon.FOLDER,
            file_name=amazon.FILE_NAME,
            loader=amazon.load_amazon_catalog,
            description="Amazon India product catalog, 1,351 products with text (INR)",
        ),
        RealDataset(
            name=creditcard.DATASET,
            folder=creditcard.FOLDER,
            file_name=creditcard.FILE_NAME,
            loader=creditcard.load_creditcard_fraud,
            description="ULB credit card fraud, 5,412 transactions incl. all 492 frauds",
        ),
    )
}


def real_dataset_path(name: str) -> Path:
    """Path of the dataset's CSV under ``settings.real_data_dir``.

    Raises ``KeyError`` for an unknown name and ``RealDataMissingError`` (naming the dataset,
    the expected path and ``RETAIL_REAL_DATA_DIR``) when the file is not there.
    """
    if name not in REAL_DATASETS:
        raise KeyError(f"unknown real dataset {name!r}; known: {', '.join(REAL_DATASETS)}")
    dataset = REAL_DATASETS[name]
    return resolve_dataset_file(dataset.name, dataset.folder, dataset.file_name)
