"""Pricing policies judged against the generator's truth on a held-out period.

The synthetic world's demand (`sources/synthetic/sales.py`) is multiplicative: expected units
of a SKU in a store on a day scale with (unit price / list price) ** e(category) and with
(competitor price / our regular price) ** COMPETITOR_CROSS_ELASTICITY. Moving our regular
price from p0 to p therefore scales expected units by (p / p0) ** (e - cross), whatever else
drives that day. So for each held-out row (the price actually charged p0, the units sold, the
unit cost c), any policy's price p gets

    true units(p) = units sold x (p / p0) ** (e - cross),   true margin = (p - c) x true units

and policies are compared on the same rows: the recommended prices, the list prices, and the
true optimum inside the same guardrails (constant elasticity E = e - cross < -1 makes margin
peak at p* = c x E / (1 + E); the guardrails' range clamps it). The share of the achievable
uplift captured is (recommended - list) / (optimum - list) of total true margin. Units sold
stand in for the day's expected units: a per-row multiplier common to every policy, so the
comparison is fair row by row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class TrueResponse:
    elasticity: dict[str, float]
    cross_elasticity: float

    @classmethod
    def from_ground_truth(cls, truth: dict) -> TrueResponse:
        demand = truth["demand"]
        return cls(
            {k: float(v) for k, v in demand["elasticity_by_category"].items()},
            float(demand["competitor_cross_elasticity"]),
        )

    def effective(self, categories: pl.Series) -> np.ndarray:
        """e - cross per row: the elasticity a regular-price move meets."""
        own = categories.replace_strict(self.elasticity, default=None, return_dtype=pl.Float64)
        if own.null_count():
            missing = sorted(set(categories.filter(own.is_null()).to_list()))
            raise ValueError(f"no true elasticity for categories {missing}")
        return own.to_numpy() - self.cross_elasticity

    def units(self, rows: pl.DataFrame, price: np.ndarray) -> np.ndarray:
        """True expected units at `price` for rows with units, unit_price, category."""
        e = self.effective(rows["category"])
        return rows["units"].to_numpy() * (price / rows["unit_price"].to_numpy()) ** e

    def optimum(self, rows: pl.DataFrame, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """The margin-maximizing price per row inside [low, high]."""
        e = self.effective(rows["category"])
        cost = rows["unit_cost"].to_numpy()
        free = np.where(e < -1, cost * e / (1 + e), high)
        return np.clip(free, low, high)


def compare(
    rows: pl.DataFrame, policies: dict[str, np.ndarray], truth: TrueResponse
) -> pl.DataFrame:
    """policy, category, true units, revenue and margin summed over `rows` per policy (price
    per row) and category, plus the overall rows (category "all")."""
    cost = rows["unit_cost"].to_numpy()
    parts = []
    for name, price in policies.items():
        units = truth.units(rows, price)
        parts.append(
            rows.select("category").with_columns(
                pl.lit(name).alias("policy"),
                pl.Series("units", units),
                pl.Series("revenue", units * price),
                pl.Series("margin", units * (price - cost)),
            )
        )
    frame = pl.concat(parts)
    sums = [pl.col(c).sum() for c in ("units", "revenue", "margin")]
    by_category = frame.group_by("policy", "category").agg(sums)
    overall = frame.group_by("policy").agg(sums).with_columns(pl.lit("all").alias("category"))
    return pl.concat([by_category, overall.select(by_category.columns)]).sort("policy", "category")


def uplift_captured(table: pl.DataFrame, recommended: str, reference: str, optimum: str) -> float:
    """(recommended - reference) / (optimum - reference) of the overall true margin."""
    margin = dict(table.filter(pl.col("category") == "all").select("policy", "margin").iter_rows())
    achievable = margin[optimum] - margin[reference]
    return (margin[recommended] - margin[reference]) / achievable if achievable > 0 else 0.0
