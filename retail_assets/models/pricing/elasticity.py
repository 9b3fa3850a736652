"""Price elasticity per category from within-item price variation: a Poisson regression with
store x SKU and category x day fixed effects, shrunk towards the pooled slope.

Why not let the trees learn it. Prices move rarely and mostly with promotions, while a SKU's
level, its season and its store move units far more; a tree ensemble splits on those first and
spends few splits on price, so its price response comes out flat (measured in
docs/benchmarks.md: elasticities about -0.4 where the truth was -1.3 to -2.9), and an
optimizer trusting it prices up until a guardrail stops it. Economists estimate the slope
from variation *within* an item instead: with a fixed effect per store x SKU (its level) and
per category x day (season, events, weekday), what is left to explain units is the item's own
price against its usual, the competitor's price and the promotion flag. That is the
pseudo-Poisson regression with high-dimensional fixed effects (PPML), solved here by
alternating the closed-form fixed-effect updates with Newton steps on the few slopes.

Sparse categories: each category's slope is shrunk towards the precision-weighted pooled slope
(empirical Bayes, DerSimonian-Laird between-category variance), so a category with little
price variation borrows from the others instead of reporting noise. Signs are then clipped to
economics (own price never raises units, a dearer competitor never lowers them), which the
response model's monotone constraints also require.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from retail_assets.models.pricing.response import price_terms

log = logging.getLogger(__name__)

# The slopes, in the order of the design matrix.
COVARIATES = ("log_price_ratio", "log_competitor_ratio", "on_promotion")
# Newton steps stop when no slope moves more than this (log units per log price).
TOLERANCE = 1e-6
MAX_ITERATIONS = 100
# Alternating-projection sweeps that remove the fixed effects from the covariates per Newton
# step (the step only needs the direction; the standard errors use four times as many).
DEMEAN_SWEEPS = 5
# Fewer sales days with units than this and there is nothing to estimate from.
MIN_ROWS = 30
# A category gets its own slope only with at least this many SKUs: each SKU's chain-wide price
# history is one independent price experiment, and clustered standard errors from fewer
# clusters are unreliable (they understate the noise, and with one SKU they are zero).
MIN_CLUSTERS = 10
MAX_ABS_SLOPE = 8.0


@dataclass(frozen=True)
class CategorySlopes:
    own_price: float
    competitor: float
    promotion: float
    own_price_se: float
    rows: int

    @property
    def regular_move(self) -> float:
        """d log units / d log price when our price moves and the competitor's does not:
        log_price_ratio rises and log_competitor_ratio falls by the same amount."""
        return self.own_price - self.competitor


@dataclass(frozen=True)
class Elasticities:
    """Shrunk, sign-clipped slopes per category, and the pooled ones for unknown categories."""

    by_category: dict[str, CategorySlopes]
    pooled: CategorySlopes
    between_category_sd: float

    def as_dict(self) -> dict:
        return {
            "by_category": {k: asdict(v) for k, v in self.by_category.items()},
            "pooled": asdict(self.pooled),
            "between_category_sd": self.between_category_sd,
        }

    @classmethod
    def from_dict(cls, doc: dict) -> Elasticities:
        return cls(
            {k: CategorySlopes(**v) for k, v in doc["by_category"].items()},
            CategorySlopes(**doc["pooled"]),
            float(doc["between_category_sd"]),
        )

    def slopes(self, category: str) -> CategorySlopes:
        return self.by_category.get(category, self.pooled)


def _codes(frame: pl.DataFrame, *columns: str) -> np.ndarray:
    return frame.select(pl.struct(columns).rank("dense").cast(pl.Int64) - 1).to_series().to_numpy()


def fit_fixed_effects_poisson(
    y: np.ndarray,
    x: np.ndarray,
    slope_group: np.ndarray,
    groups: list[np.ndarray],
    cluster: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Slopes [slope group, covariate] and their cluster-robust standard errors of
    log E[y] = x . b[slope_group] + one fixed effect per level of each `groups` array.

    Each row's slopes are its slope group's (a category's), so the Hessian is block diagonal
    and each Newton step solves one small system per group. Rows of levels with no units must
    be dropped first (their effect is minus infinity). Standard errors are clustered by
    `cluster` (a code per row, each cluster inside one slope group): a SKU's price is set
    chain-wide and holds for weeks, so its days are not independent evidence, and an
    unclustered error would trust a category of three SKUs as if it had thousands of
    independent prices (and shrink it too little)."""
    n_slopes, k = int(slope_group.max()) + 1, x.shape[1]
    b = np.zeros((n_slopes, k))
    effects = [np.zeros(int(g.max()) + 1) for g in groups]
    totals = [np.bincount(g, weights=y) for g in groups]
    pairs = [(i, j) for i in range(k) for j in range(i, k)]

    def blocks(mu: np.ndarray, within: np.ndarray) -> np.ndarray:
        h = np.empty((n_slopes, k, k))
        for i, j in pairs:
            h[:, i, j] = h[:, j, i] = np.bincount(
                slope_group, weights=mu * within[:, i] * within[:, j], minlength=n_slopes
            )
        return h + 1e-9 * np.eye(k)

    def fit_effects(xb: np.ndarray) -> np.ndarray:
        for i, g in enumerate(groups):
            others = np.zeros_like(y)
            for j, h in enumerate(groups):
                if j != i:
                    others += effects[j][h]
            expected = np.bincount(g, weights=np.exp(xb + others), minlength=len(totals[i]))
            effects[i] = np.log(totals[i]) - np.log(expected)
        return np.exp(xb + sum(effects[j][h] for j, h in enumerate(groups)))

    converged = False
    for _ in range(MAX_ITERATIONS):
        mu = fit_effects(np.einsum("nk,nk->n", x, b[slope_group]))
        # The slopes' Newton step with the fixed effects profiled out (their information is
        # in the covariates' variation *within* items, days and category-weeks): the
        # Hessian of the profile likelihood uses x minus its mu-weighted fixed-effect fit.
        within = _within(x, mu, groups, DEMEAN_SWEEPS)
        gradient = np.stack(
            [
                np.bincount(slope_group, weights=(y - mu) * within[:, i], minlength=n_slopes)
                for i in range(k)
            ],
            axis=1,
        )
        step = np.linalg.solve(blocks(mu, within), gradient[..., None])[..., 0]
        b = b + np.clip(step, -1.0, 1.0)
        if np.max(np.abs(step)) < TOLERANCE:
            converged = True
            break
    if not converged:
        log.warning("elasticity regression stopped after %d Newton steps", MAX_ITERATIONS)
    mu = fit_effects(np.einsum("nk,nk->n", x, b[slope_group]))
    within = _within(x, mu, groups, 4 * DEMEAN_SWEEPS)
    hessian = blocks(mu, within)
    bread = np.linalg.inv(hessian)
    # Sandwich: bread H^-1 per slope group, meat the sum over clusters of the outer product of
    # each cluster's score.
    n_clusters = int(cluster.max()) + 1
    scores = np.stack(
        [
            np.bincount(cluster, weights=(y - mu) * within[:, i], minlength=n_clusters)
            for i in range(k)
        ],
        axis=1,
    )
    cluster_group = np.zeros(n_clusters, dtype=np.int64)
    cluster_group[cluster] = slope_group
    meat = np.zeros((n_slopes, k, k))
    np.add.at(meat, cluster_group, scores[:, :, None] * scores[:, None, :])
    robust = np.diagonal(bread @ meat @ bread, axis1=1, axis2=2)
    # Never below the model-based error (overdispersed Poisson): with few clusters, or a slope
    # whose covariate never moved within an item (bread huge, meat zero), the sandwich alone
    # would claim a precision the data do not have.
    dof = max(len(y) - b.size - sum(map(len, effects)), 1)
    dispersion = max(float(np.sum((y - mu) ** 2 / mu) / dof), 1.0)
    model_based = np.diagonal(bread, axis1=1, axis2=2) * dispersion
    return b, np.sqrt(np.maximum(np.maximum(robust, model_based), 0.0))


def _within(x: np.ndarray, mu: np.ndarray, groups: list[np.ndarray], sweeps: int) -> np.ndarray:
    """x minus its mu-weighted projection on the fixed effects (alternating projections)."""
    within = x.copy()
    weights = [np.bincount(g, weights=mu) for g in groups]
    for _ in range(sweeps):
        for g, w in zip(groups, weights, strict=True):
            for c in range(x.shape[1]):
                mean = np.bincount(g, weights=mu * within[:, c], minlength=len(w)) / np.maximum(
                    w, 1e-300
                )
                within[:, c] -= mean[g]
    return within


def design(rows: pl.DataFrame) -> pl.DataFrame:
    """COVARIATES of sales rows (unit_price, regular_price, list_price, competitor_min_price,
    on_promotion): the response model's own price terms (`response.price_terms`)."""
    return rows.with_columns(
        *price_terms(pl.col("unit_price"), pl.col("regular_price")),
        pl.col("on_promotion").cast(pl.Float64),
    )


def estimate(rows: pl.DataFrame) -> Elasticities:
    """Elasticities from sales rows (date, store_id, sku, category, units, unit_price,
    regular_price, list_price, competitor_min_price, on_promotion): `response.sales_rows`.

    Two fits with the same fixed effects: one slope for all categories (the pooled slope,
    what a category without enough evidence gets), and one per category, kept only for a
    category with at least MIN_CLUSTERS SKUs and then shrunk towards the pooled slope by its
    clustered standard error against the spread between categories."""
    frame = design(rows).filter(
        # Items and days that sold nothing carry no information on the slopes (and their
        # fixed effect would be minus infinity).
        pl.col("units").sum().over("store_id", "sku") > 0,
        pl.col("units").sum().over("category", "date") > 0,
    )
    if frame.filter(pl.col("units") > 0).height < MIN_ROWS:
        raise ValueError(
            f"fewer than {MIN_ROWS} sales days with units: cannot estimate price elasticity"
        )
    frame = frame.with_columns(pl.col("date").dt.truncate("1w").alias("_week"))
    categories = sorted(frame["category"].unique().to_list())
    category_code = frame["category"].replace_strict(
        {c: i for i, c in enumerate(categories)}, return_dtype=pl.Int64
    )
    y = frame["units"].to_numpy().astype(np.float64)
    x = frame.select(COVARIATES).to_numpy().astype(np.float64)
    # Fixed effects: the item's level, its category's season (per week), and the chain's day
    # (weekday, events). Per category and day would absorb all of a price's variation when a
    # category has one SKU: prices are set chain-wide per SKU and day.
    effects = [
        _codes(frame, "store_id", "sku"),
        _codes(frame, "category", "_week"),
        _codes(frame, "date"),
    ]
    sku = _codes(frame, "category", "sku")
    pooled_b, pooled_se = fit_fixed_effects_poisson(
        y, x, np.zeros(len(y), dtype=np.int64), effects, sku
    )
    codes = category_code.to_numpy()
    rows_per = np.bincount(codes, minlength=len(categories))
    skus = dict(frame.group_by("category").agg(pl.col("sku").n_unique()).iter_rows())
    own = np.array([skus[c] >= MIN_CLUSTERS for c in categories])
    # Categories with too few SKUs share one slope group in the per-category fit (they take
    # the pooled slope anyway): a category with one SKU has its price variation absorbed by
    # the fixed effects, and its own slope would run away instead of converging.
    group_of = np.where(own, np.cumsum(own) - 1, own.sum())
    b_fit, se_fit = fit_fixed_effects_poisson(y, x, group_of[codes], effects, sku)
    b, se = b_fit[group_of], np.maximum(se_fit[group_of], 1e-6)
    # A slope beyond MAX_ABS_SLOPE is no elasticity a shelf has shown: treat it as not
    # identified (its category takes the pooled slope).
    own &= np.all(np.isfinite(b) & (np.abs(b) <= MAX_ABS_SLOPE), axis=1)
    tau = _between_category_sd(b[own], se[own]) if own.sum() >= 2 else np.zeros(x.shape[1])
    shrunk = np.where(own[:, None], _shrink(b, se, pooled_b[0], tau), pooled_b[0])
    pooled = _slopes(pooled_b[0], float(pooled_se[0, 0]), len(y))
    by_category = {
        c: _slopes(shrunk[i], float(se[i, 0]) if own[i] else pooled.own_price_se, int(rows_per[i]))
        for i, c in enumerate(categories)
    }
    return Elasticities(by_category, pooled, float(tau[0]))


def _between_category_sd(b: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Per slope, the spread of the true slopes between categories (DerSimonian-Laird)."""
    w = 1 / se**2
    fixed = (w * b).sum(axis=0) / w.sum(axis=0)
    q = (w * (b - fixed) ** 2).sum(axis=0)
    c = w.sum(axis=0) - (w**2).sum(axis=0) / w.sum(axis=0)
    return np.sqrt(np.maximum((q - (len(b) - 1)) / np.maximum(c, 1e-12), 0.0))


def _shrink(b: np.ndarray, se: np.ndarray, pooled: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Posterior means: each category's slope pulled towards the pooled one by its noise."""
    weight = tau**2 / (tau**2 + se**2)
    return weight * b + (1 - weight) * pooled


def _slopes(b: np.ndarray, own_se: float, rows: int) -> CategorySlopes:
    return CategorySlopes(
        own_price=float(min(b[0], 0.0)),
        competitor=float(max(b[1], 0.0)),
        promotion=float(b[2]),
        own_price_se=float(own_se),
        rows=rows,
    )
