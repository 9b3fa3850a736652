"""Loaders for real public retail datasets (kept outside the repo, see ``RETAIL_REAL_DATA_DIR``).

One module per dataset; each validates every field of its CSV and raises
``RealDataFormatError`` (file, line, column) on anything that does not match its SOURCE.md,
or ``RealDataMissingError`` when the dataset is not where the settings point.

- ``walmart``: ``load_walmart_store_sales``, ``walmart_as_raw_feeds``
- ``online_retail``: ``load_online_retail_lines``, ``load_online_retail`` (raw feeds)
- ``amazon``: ``load_amazon_catalog`` (``products`` feed)
- ``creditcard``: ``load_creditcard_fraud``, ``CREDITCARD_TRUE_FRAUD_RATE``
- ``registry``: ``REAL_DATASETS``, ``real_dataset_path``
- ``landing``: each dataset's ``derive_landing_files`` and the mappings in
  ``benchmarks/landing/<dataset>/``, to land it with `retail land` (``docs/real_data.md``;
  ``python -m retail_assets.sources.real derive DATASET OUT_DIR [--land]``)
"""

from retail_assets.sources.real.amazon import load_amazon_catalog
from retail_assets.sources.real.creditcard import CREDITCARD_TRUE_FRAUD_RATE, load_creditcard_fraud
from retail_assets.sources.real.errors import (
    REAL_DATA_ENV_VAR,
    RealDataFormatError,
    RealDataMissingError,
)
from retail_assets.sources.real.online_retail import (
    load_online_retail,
    load_online_retail_lines,
    online_retail_as_raw_feeds,
    online_retail_exclusions,
)
from retail_assets.sources.real.registry import REAL_DATASETS, RealDataset, real_dataset_path
from retail_assets.sources.real.walmart import load_walmart_store_sales, walmart_as_raw_feeds

__all__ = [
    "CREDITCARD_TRUE_FRAUD_RATE",
    "REAL_DATASETS",
    "REAL_DATA_ENV_VAR",
    "RealDataFormatError",
    "RealDataMissingError",
    "RealDataset",
    "load_amazon_catalog",
    "load_creditcard_fraud",
    "load_online_retail",
    "load_online_retail_lines",
    "load_walmart_store_sales",
    "online_retail_as_raw_feeds",
    "online_retail_exclusions",
    "real_dataset_path",
    "walmart_as_raw_feeds",
]
