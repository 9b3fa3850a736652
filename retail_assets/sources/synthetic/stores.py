"""Stores: one online store plus physical stores of several formats across four regions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from retail_assets.sources.contracts import STORES
from retail_assets.sources.synthetic.config import substream
from retail_assets.sources.synthetic.documents import RETAILER

FORMATS = ("hypermarket", "supermarket", "express", "online")
REGIONS = ("North", "South", "East", "West")
ONLINE_REGION = "National"
# Physical formats in the order stores open, so small store counts still mix formats.
_FORMAT_ROTATION = (
    "hypermarket",
    "supermarket",
    "express",
    "supermarket",
    "hypermarket",
    "supermarket",
    "express",
)
CITIES = {
    "North": ("Minneapolis", "Chicago", "Milwaukee", "Detroit", "Madison", "Fargo", "Des Moines"),
    "South": ("Atlanta", "Dallas", "Houston", "Nashville", "Charlotte", "Miami", "Austin"),
    "East": (
        "Boston",
        "New York",
        "Philadelphia",
        "Baltimore",
        "Pittsburgh",
        "Richmond",
        "Hartford",
    ),
    "West": ("Seattle", "Portland", "Denver", "San Diego", "Sacramento", "Phoenix", "Boise"),
}
_NAME_SUFFIX = {"hypermarket": "Superstore", "supermarket": "Market", "express": "Express"}
_DISTRICTS = ("Downtown", "Northgate", "Riverside", "Eastfield", "Westlake", "Southpoint")
SIZE_SQM = {"hypermarket": (8000, 14000), "supermarket": (2000, 4500), "express": (250, 700)}
# Relative sales volume of an average SKU by format (a supermarket is 1).
FORMAT_VOLUME = {"hypermarket": 1.7, "supermarket": 1.0, "express": 0.45, "online": 1.4}


@dataclass(frozen=True)
class Stores:
    frame: pl.DataFrame
    store_ids: list[str]
    format: np.ndarray  # index into FORMATS
    region: list[str]
    volume: np.ndarray  # sales volume multiplier per store

    @property
    def n(self) -> int:
        return len(self.store_ids)

    @property
    def online(self) -> int:
        return int(np.flatnonzero(self.format == FORMATS.index("online"))[0])

    @property
    def physical(self) -> np.ndarray:
        return np.flatnonzero(self.format != FORMATS.index("online"))


def build_stores(seed: int, n_stores: int, start: date) -> Stores:
    rng = substream(seed, "stores")
    rows = [
        {
            "store_id": "S001",
            "store_name": f"{RETAILER} Online",
            "region": ONLINE_REGION,
            "format": "online",
            "city": "Columbus",  # fulfilment centre
            "opened_date": start - timedelta(days=int(rng.integers(1500, 3000))),
            "size_sqm": 0.0,
        }
    ]
    used_names: set[str] = set()
    for i in range(1, n_stores):
        fmt = _FORMAT_ROTATION[(i - 1) % len(_FORMAT_ROTATION)]
        region = REGIONS[(i - 1) % len(REGIONS)]
        city = CITIES[region][int(rng.integers(len(CITIES[region])))]
        name = f"{RETAILER} {city} {_NAME_SUFFIX[fmt]}"
        while name in used_names:
            district = _DISTRICTS[int(rng.integers(len(_DISTRICTS)))]
            name = f"{RETAILER} {city} {district} {_NAME_SUFFIX[fmt]}"
        used_names.add(name)
        rows.append(
            {
                "store_id": f"S{i + 1:03d}",
                "store_name": name,
                "region": region,
                "format": fmt,
                "city": city,
                "opened_date": start - timedelta(days=int(rng.integers(200, 6000))),
                "size_sqm": float(round(rng.uniform(*SIZE_SQM[fmt]), -1)),
            }
        )
    formats = np.array([FORMATS.index(r["format"]) for r in rows], dtype=np.int8)
    volume = np.array([FORMAT_VOLUME[r["format"]] for r in rows]) * np.exp(
        rng.normal(0, 0.15, n_stores)
    )
    return Stores(
        frame=STORES.conform(pl.DataFrame(rows)),
        store_ids=[r["store_id"] for r in rows],
        format=formats,
        region=[r["region"] for r in rows],
        volume=volume,
    )
