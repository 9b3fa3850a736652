"""Dynamic pricing as a model family of the shared lifecycle: the demand response model
(category elasticities as an offset, monotone LightGBM on top) goes through the same training
set -> model -> evaluation -> ONNX bundle -> promotion chain as demand, fraud and
recommendations, and the gate judges the *prices* it would set, not only its forecasts.

Evaluation on the last HOLDOUT_DAYS (never seen in training):
- units WAPE of the response model vs a recent store x SKU x weekday x promotion profile
  (the strongest simple forecast of a day's units) and the champion;
- the policy: on up to POLICY_ROWS held-out regular-price days (store x SKU x day, no
  promotion, a known cost), the optimizer's price under the guardrails. Every price is
  checked against every guardrail. When the generator's ground truth is known (a synthetic
  home: `landing/ground_truth.json`), each policy's true margin is computed (`truth.py`) for
  the recommended prices, the current shelf prices (keep today's regular price: the decision
  a pricing run actually faces), the catalog list prices and the true optimum inside the same
  guardrails: the uplift over current and list prices, the share of the achievable uplift
  captured, per category, and the estimated vs true elasticity. The gate compares with the
  current prices: list prices may lie outside what the guardrails allow from today's price,
  so beating them is not always possible, and not the question.

On a retailer's own data there is no ground truth: the uplift rules are then reported as not
measured and the gate rests on zero violations and the forecast; the live canary (same
progressive delivery as every model) and the circuit breaker judge the prices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import numpy as np
import onnx
import polars as pl

from retail_assets.models.lifecycle.spec import Evaluation, MetricRule, TrainedModel, TrainingSet
from retail_assets.models.lifecycle.tiers import model_to_onnx
from retail_assets.models.pricing.guardrails import (
    Guardrails,
    PriceContext,
    decide,
    feasible_range,
    violations,
)
from retail_assets.models.pricing.optimizer import Objective, recommend_prices
from retail_assets.models.pricing.response import (
    FEATURES,
    Vocabulary,
    at_prices,
    baselines,
    features,
    sales_rows,
)
from retail_assets.models.pricing.train import OUTPUT, ResponseConfig, fit_response, matrix, wape
from retail_assets.models.pricing.truth import TrueResponse, compare, uplift_captured

SOURCES = {"sales": "marts/fct_daily_sales", "products": "marts/dim_products"}
HOLDOUT_DAYS = 28  # test window: four full weeks, every weekday four times
VALIDATION_DAYS = 28
TRAIN_DAYS = 365  # a full year: every season's price and promotion pattern once
# Held-out regular-price days priced by the policy evaluation. Only days that sold are drawn:
# a day without sales has zero true margin under every price (`truth.py` scales the units
# sold), so it cannot tell policies apart. 5,000 such days sell about 16,000 units at the
# default scale, a few hundred per category, and price in seconds.
POLICY_ROWS = 5000
# The breaker's reference distribution of price changes is drawn from every regular-price day
# of the validation window (serving prices SKUs whether they sold yesterday or not).
REFERENCE_ROWS = 2000
# A category's own reference needs this many validation days; else the overall one is used.
MIN_REFERENCE_CATEGORY_ROWS = 20
# The gate's uplift floor: the recommended prices must earn more true margin than the current
# prices, by at least 0.1 % (below that the difference is within the sample's noise).
MIN_MARGIN_UPLIFT = 0.001
# No category may clearly lose more than 3 % of its true margin against current prices (the
# 95 % upper bound of its change below -3 %): a category is a buyer's P&L line, and a loss
# above 3 % would show against its ordinary week-to-week swings (measured at the default
# scale: the median absolute week-over-week change of a category's gross margin is 5.2 %)
# within a few weeks.
CATEGORY_MARGIN_TOLERANCE = 0.03
# z of a one-sided 95 % bound.
ONE_SIDED_95 = 1.645
# A category's margin change is gated only when its priced rows sold at least this many units:
# the true margin of a row scales its units sold, so with fewer a handful of rows decide the
# category's number.
MIN_CATEGORY_UNITS = 200
# Pricing policies without a model, judged like the recommended prices (see `_judge`): the
# uplift of the model's prices must beat the better of them.
SIMPLE_POLICIES = ("max_increase", "match_competitor")
# The profile baseline's window: the last eight weeks before the test window.
PROFILE_DAYS = 56

TruthLoader = Callable[[], dict[str, Any] | None]


def _landing_truth() -> dict[str, Any] | None:
    from retail_assets.settings import get_settings
    from retail_assets.sources.landing_zone import LandingZone

    return LandingZone(get_settings().landing_dir).ground_truth()


class PricingFamily:
    """Demand response for pricing: units of a SKU in a store on a day as a function of its
    own price (category elasticity offset + monotone LightGBM), with the optimizer and the
    guardrails evaluated as the pricing policy they produce.

    Gate thresholds: at least one held-out regular-price day with a unit cost to price (no
    cost, no margin floor: such data cannot be priced); zero guardrail violations; margin uplift over current prices of at least
    MIN_MARGIN_UPLIFT (0.1 %) overall, more than the better simple policy (every price up as
    far as the guardrails allow, or matched to the competitor inside them), and no category
    clearly losing more than CATEGORY_MARGIN_TOLERANCE (3 %) of its margin (the 95 % upper
    bound of its change below -3 %; categories whose priced rows sold at least
    MIN_CATEGORY_UNITS), when the truth is known; units WAPE better than the recent store x
    SKU x weekday x promotion profile (a model that cannot forecast units must not set
    prices: the shuffled-label control fails here) and at most 10 % (relative) worse than the
    champion's.
    """

    name = "pricing"
    source_assets = tuple(tuple(key.split("/")) for key in SOURCES.values())
    intended_use = (
        "Recommending regular shelf prices per SKU and store (POST /v1/price, "
        "/v1/price:batch): the price maximizing expected margin (or a revenue/margin mix) "
        "inside the guardrails, with the trace of the rules that bound it."
    )
    limitations = (
        "Elasticities are estimated per category from past price variation (regular price "
        "changes and promotion depths) within each store x SKU; a category whose prices never "
        "moved borrows the pooled slope. Competitor reactions to our price are not modelled "
        "(their price is held). On data without ground truth, the policy's uplift is judged "
        "live, not offline."
    )
    monitoring = (
        "Offline: units WAPE against a recent profile and the champion, and on synthetic data "
        "the true margin of the recommended prices vs current and list prices and the true "
        "optimum. Live: "
        "the circuit breaker compares each version's recent price changes with the reference "
        "recorded at training and falls back when they deviate or a guardrail is violated."
    )

    def __init__(
        self,
        *,
        rails: Guardrails | None = None,
        objective: Objective | None = None,
        config: ResponseConfig | None = None,
        truth: TruthLoader = _landing_truth,
        wape_tolerance: float = 0.10,
    ):
        self.rails = rails or Guardrails()
        self.objective = objective or Objective()
        self.config = config or ResponseConfig()
        self.truth = truth
        self.output_meanings = {
            OUTPUT: "Expected units of the SKU in the store on the day at the features' price."
        }
        self.description = (
            "Dynamic pricing: a demand response model (category price elasticities from "
            "within-item price variation as an offset, LightGBM Poisson monotone in own and "
            "competitor price on top) and the margin-maximizing price inside the guardrails."
        )
        self.gate_rules = (
            MetricRule(
                metric="priced_rows",
                higher_is_better=True,
                absolute=1.0,
                per_segment=False,
            ),
            MetricRule(
                metric="guardrail_violations",
                higher_is_better=False,
                absolute=0.0,
                per_segment=False,
            ),
            MetricRule(
                metric="margin_uplift",
                higher_is_better=True,
                absolute=MIN_MARGIN_UPLIFT,
                beat_baseline=SIMPLE_POLICIES,
                per_segment=False,
                required=False,
            ),
            MetricRule(
                metric="margin_change_upper_95",
                higher_is_better=True,
                absolute=-CATEGORY_MARGIN_TOLERANCE,
                per_segment=True,
                min_segment_support=MIN_CATEGORY_UNITS,
                required=False,
            ),
            MetricRule(
                metric="wape",
                higher_is_better=False,
                beat_baseline="recent_profile",
                per_segment=False,
            ),
            MetricRule(
                metric="wape",
                higher_is_better=False,
                champion_tolerance=wape_tolerance,
                tolerance_kind="relative",
                per_segment=False,
            ),
        )

    # -- training set ---------------------------------------------------------------------

    def build_training_set(self, sources: dict[str, pl.DataFrame]) -> TrainingSet:
        missing = [key for key in SOURCES.values() if key not in sources]
        if missing:
            raise ValueError(f"pricing training set needs {missing}, got {sorted(sources)}")
        rows = sales_rows(sources[SOURCES["sales"]], sources[SOURCES["products"]])
        if rows.height == 0:
            raise ValueError(
                "marts.fct_daily_sales has no active, in-stock days with a price: nothing to "
                "learn a price response from"
            )
        rows = with_week_ago_price(rows)
        test_start = rows["date"].max() - timedelta(days=HOLDOUT_DAYS - 1)
        valid_start = test_start - timedelta(days=VALIDATION_DAYS)
        train_start = valid_start - timedelta(days=TRAIN_DAYS)
        rows = rows.filter(pl.col("date") >= train_start).with_columns(
            pl.when(pl.col("date") >= test_start)
            .then(pl.lit("test"))
            .when(pl.col("date") >= valid_start)
            .then(pl.lit("validation"))
            .otherwise(pl.lit("train"))
            .alias("split")
        )
        train = rows.filter(pl.col("split") == "train")
        if train.height == 0:
            raise ValueError(
                f"pricing needs sales before {valid_start} to train on; the history starts "
                f"{rows['date'].min()}"
            )
        vocabulary = Vocabulary.of(train)
        frame = features(rows, baselines(train), vocabulary).sort(
            "split", "date", "store_id", "sku"
        )
        truth = self.truth()
        day = lambda d: str(d)  # noqa: E731
        return TrainingSet(
            frame=frame,
            feature_columns=list(FEATURES),
            target_column="units",
            entity_columns=["store_id", "sku"],
            segment_columns=["category"],
            windows={
                "train": {"start": day(train["date"].min()), "end": day(train["date"].max())},
                "validation": {
                    "start": day(valid_start),
                    "end": day(test_start - timedelta(days=1)),
                },
                "test": {"start": day(test_start), "end": day(rows["date"].max())},
            },
            encodings={"category_code": vocabulary.categories, "store_code": vocabulary.stores},
            info={
                "true_response": (asdict(TrueResponse.from_ground_truth(truth)) if truth else None),
                "guardrails": asdict(self.rails),
                "objective": asdict(self.objective),
            },
        )

    # -- training ---------------------------------------------------------------------------

    def train(
        self, training_set: TrainingSet, shuffle_labels_seed: int | None = None
    ) -> TrainedModel:
        model = fit_response(
            training_set.split("train"),
            training_set.split("validation"),
            training_set.encodings["category_code"],
            self.config,
            shuffle_labels_seed,
        )
        # What serving compares its live price changes with (the circuit breaker): the
        # policy's changes on the validation window's regular-price days.
        sample = policy_rows(training_set.split("validation"), REFERENCE_ROWS, sold_only=False)
        recs = self.price(model.outputs, sample)
        changes = np.log(
            np.array([r.decision.price for r in recs]) / sample["regular_price"].to_numpy()
        )
        model.extras.update(
            {
                "price_change_reference": change_reference(changes, sample["category"].to_list()),
                "guardrails": asdict(self.rails),
                "objective": asdict(self.objective),
            }
        )
        return model

    def predict(self, model: TrainedModel, frame: pl.DataFrame) -> dict[str, np.ndarray]:
        return model.outputs(matrix(frame))

    # -- the policy -------------------------------------------------------------------------

    def price(self, outputs: Callable[[np.ndarray], dict[str, np.ndarray]], rows: pl.DataFrame):
        """Recommendations for featurized rows, with `outputs(feature matrix)` the response
        model (the trained model's or a bundle's)."""
        return reprice(outputs, matrix(rows), contexts(rows), rows, self.rails, self.objective)

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(
        self,
        training_set: TrainingSet,
        predictions: dict[str, dict[str, np.ndarray]],
        model: TrainedModel,
    ) -> Evaluation:
        test = training_set.split("test")
        actual = test["units"].to_numpy()
        forecasts = {name: out[OUTPUT] for name, out in predictions.items()}
        forecasts["recent_profile"] = recent_profile(training_set)
        overall = {name: {"wape": wape(f, actual)} for name, f in forecasts.items()}
        by_segment: dict[str, list[dict[str, Any]]] = {"category": []}
        categories = test["category"].to_numpy()
        for name, forecast in forecasts.items():
            for category in sorted(set(categories)):
                rows = categories == category
                by_segment["category"].append(
                    {
                        "segment": str(category),
                        "predictor": name,
                        "n": int(rows.sum()),
                        "support": int(rows.sum()),
                        "wape": wape(forecast[rows], actual[rows]),
                    }
                )
        notes = []
        sample = policy_rows(test, POLICY_ROWS, sold_only=True)
        recs = self.price(model.outputs, sample)
        prices = np.array([r.decision.price for r in recs])
        ctxs = contexts(sample)
        broken = sum(bool(violations(self.rails, c, p)) for c, p in zip(ctxs, prices, strict=True))
        changes = np.log(prices / sample["regular_price"].to_numpy())
        overall["challenger"].update(
            {
                "guardrail_violations": float(broken),
                "priced_rows": float(len(recs)),
                "mean_price_change": float(changes.mean()) if len(changes) else 0.0,
                "share_bound_by_a_rule": float(np.mean([bool(r.decision.bound_by) for r in recs]))
                if recs
                else 0.0,
            }
        )
        truth_doc = training_set.info.get("true_response")
        explanations: list[dict[str, Any]] = []
        if truth_doc and len(recs):
            truth = TrueResponse(truth_doc["elasticity"], truth_doc["cross_elasticity"])
            policy = self._judge(sample, prices, ctxs, truth)
            explanations = elasticity_table(model, truth)
            overall["challenger"].update(
                {
                    **policy["overall"],
                    "elasticity_mae": float(
                        np.mean([abs(r["estimated"] - r["true"]) for r in explanations])
                    )
                    if explanations
                    else float("nan"),
                }
            )
            by_segment["category"] += policy["by_category"]
            overall.update(policy["simple_policies"])
        else:
            notes.append(
                "no ground truth (a retailer's own data): the prices' margin uplift is not "
                "measured offline; the canary and the circuit breaker judge them live"
            )
        elasticities = model.extras.get("elasticities", {}).get("by_category", {})
        importance = [
            {"feature": f"elasticity[{c}]", "gain": s["own_price"] - s["competitor"]}
            for c, s in sorted(elasticities.items())
        ]
        return Evaluation(
            primary_metric="margin_uplift" if truth_doc else "wape",
            higher_is_better={
                "wape": False,
                "guardrail_violations": False,
                "margin_uplift": True,
                "uplift_captured": True,
                "margin_change": True,
                "margin_change_upper_95": True,
                "margin_change_vs_list": True,
                "margin_uplift_vs_list": True,
                "optimum_margin_uplift": True,
                "elasticity_mae": False,
                "priced_rows": True,
                "mean_price_change": True,
                "share_bound_by_a_rule": False,
            },
            overall=overall,
            by_segment=by_segment,
            bias_audit={},
            feature_importance=importance,
            explanations=explanations,
            test_window=training_set.windows["test"],
            notes=[
                f"{len(recs)} held-out regular-price days priced under {asdict(self.rails)}",
                *notes,
            ],
        )

    def _judge(
        self,
        sample: pl.DataFrame,
        prices: np.ndarray,
        ctxs: list[PriceContext],
        truth: TrueResponse,
    ) -> dict[str, Any]:
        """True margin of the recommended prices vs current and list prices and the true optimum inside
        the same guardrails; per category; estimated vs true elasticity."""
        ranges = [feasible_range(self.rails, c) for c in ctxs]
        low = np.array([r[0] for r in ranges])
        high = np.array([r[1] for r in ranges])
        rows = sample.with_columns(pl.col("regular_price").alias("unit_price"))
        current = rows["regular_price"].to_numpy()
        policies = {
            "current": current,
            "list": rows["list_price"].to_numpy(),
            "recommended": prices,
            "optimum": truth.optimum(rows, low, high),
            # Simple policies a pricing team runs without a model, through the same guardrails
            # (bounds and price endings) as the model's prices.
            "max_increase": np.array(
                [decide(self.rails, c, c.current_price * 10).price for c in ctxs]
            ),
            "match_competitor": np.array(
                [decide(self.rails, c, c.competitor_price or c.current_price).price for c in ctxs]
            ),
        }
        table = compare(rows, policies, truth)
        margin = table.pivot(on="policy", index="category", values="margin")
        change = margin.with_columns(
            (pl.col("recommended") / pl.col("current") - 1).alias("change"),
            *((pl.col(p) / pl.col("current") - 1).alias(f"change_{p}") for p in SIMPLE_POLICIES),
            (pl.col("recommended") / pl.col("list") - 1).alias("change_vs_list"),
        )
        total = change.filter(pl.col("category") == "all").row(0, named=True)
        counts = {
            r["category"]: r
            for r in sample.group_by("category")
            .agg(pl.len().alias("rows"), pl.col("units").sum())
            .iter_rows(named=True)
        }
        upper = margin_change_upper_bounds(rows, prices, truth)
        by_category = [
            {
                "segment": str(r["category"]),
                "predictor": "challenger",
                "n": counts[r["category"]]["rows"],
                "support": int(counts[r["category"]]["units"]),
                "margin_change": r["change"],
                "margin_change_upper_95": upper[r["category"]],
                "margin_change_vs_list": r["change_vs_list"],
            }
            for r in change.filter(pl.col("category") != "all").iter_rows(named=True)
        ]
        return {
            "overall": {
                "margin_uplift": total["change"],
                "margin_change": total["change"],
                "margin_change_upper_95": upper["all"],
                "margin_uplift_vs_list": total["change_vs_list"],
                "uplift_captured": uplift_captured(table, "recommended", "current", "optimum"),
                "optimum_margin_uplift": total["optimum"] / total["current"] - 1,
            },
            "by_category": by_category,
            "simple_policies": {
                p: {"margin_uplift": total[f"change_{p}"]} for p in SIMPLE_POLICIES
            },
        }

    # -- export -----------------------------------------------------------------------------

    def to_onnx(self, model: TrainedModel) -> onnx.ModelProto:
        return model_to_onnx(model, doc_string=f"{self.name}: {self.description}")

    def explainer_to_onnx(self, model: TrainedModel) -> None:
        return None


def with_week_ago_price(rows: pl.DataFrame) -> pl.DataFrame:
    """`regular_price_week_ago`: the store x SKU's regular price seven days before (null when
    that day is not in the rows): what the weekly change limit compares with."""
    week_ago = rows.select(
        "store_id",
        "sku",
        (pl.col("date") + timedelta(days=7)).alias("date"),
        pl.col("regular_price").alias("regular_price_week_ago"),
    )
    return rows.join(week_ago, on=["store_id", "sku", "date"], how="left")


def policy_rows(frame: pl.DataFrame, limit: int, sold_only: bool) -> pl.DataFrame:
    """Regular-price days (no promotion) with a cost: the decisions a pricing run makes, a
    deterministic sample of at most `limit` (of the days that sold, with `sold_only`)."""
    rows = frame.filter(
        pl.col("on_promotion") == 0,
        pl.col("unit_cost") > 0,
        pl.col("regular_price") > 0,
        (pl.col("units") > 0) if sold_only else pl.lit(True),
    )
    return rows.sample(min(limit, rows.height), seed=0) if rows.height > limit else rows


def contexts(rows: pl.DataFrame) -> list[PriceContext]:
    return [
        PriceContext(
            cost=r["unit_cost"],
            current_price=r["regular_price"],
            price_week_ago=r.get("regular_price_week_ago"),
            competitor_price=r["competitor_min_price"],
        )
        for r in rows.select(
            "unit_cost",
            "regular_price",
            pl.col("regular_price_week_ago")
            if "regular_price_week_ago" in rows.columns
            else pl.lit(None, pl.Float64).alias("regular_price_week_ago"),
            "competitor_min_price",
        ).iter_rows(named=True)
    ]


def reprice(
    outputs: Callable[[np.ndarray], dict[str, np.ndarray]],
    x: np.ndarray,
    ctxs: list[PriceContext],
    rows: pl.DataFrame,
    rails: Guardrails,
    objective: Objective,
):
    """The optimizer over feature rows `x` with the response `outputs` (one model call per
    batch of candidate prices)."""
    list_price = rows["list_price"].to_numpy().astype(np.float64)
    competitor = rows["competitor_min_price"].cast(pl.Float64).fill_null(np.nan).to_numpy()

    def units_at(prices: np.ndarray) -> np.ndarray:
        repriced = at_prices(x, prices, list_price, competitor)
        return outputs(repriced)[OUTPUT].reshape(prices.shape)

    return recommend_prices(units_at, ctxs, rails, objective)


def change_reference(changes: np.ndarray, categories: list[str]) -> dict[str, Any]:
    """The distribution of log price changes (recommended / current) the breaker compares
    live changes with: overall and per category (a category's prices move together, so
    live traffic concentrated on one category is judged against that category's moves)."""
    if not len(changes):
        return {"n": 0, "mean": 0.0, "std": 0.0, "by_category": {}}

    def summary(values: np.ndarray) -> dict[str, float]:
        return {"n": len(values), "mean": float(np.mean(values)), "std": float(np.std(values))}

    labels = np.array(categories, dtype=object)
    return {
        **summary(changes),
        "q05": float(np.quantile(changes, 0.05)),
        "q50": float(np.quantile(changes, 0.5)),
        "q95": float(np.quantile(changes, 0.95)),
        "by_category": {
            str(c): summary(changes[labels == c])
            for c in sorted(set(categories))
            if (labels == c).sum() >= MIN_REFERENCE_CATEGORY_ROWS
        },
    }


def margin_change_upper_bounds(
    rows: pl.DataFrame, prices: np.ndarray, truth: TrueResponse
) -> dict[str, float]:
    """Per category (and "all"), the one-sided 95 % upper bound of the true margin change of
    `prices` against the current prices: the ratio estimator sum(new) / sum(current) - 1 with
    its delta-method standard error over the rows (independent store x SKU days). A category
    fails the gate only when even this bound is below the tolerance, i.e. when it clearly
    loses margin, not when a few rows' noise says so."""
    cost = rows["unit_cost"].to_numpy()
    current = rows["regular_price"].to_numpy()
    new = truth.units(rows, prices) * (prices - cost)
    old = truth.units(rows, current) * (current - cost)
    categories = rows["category"].to_numpy()
    out = {}
    for name in [*sorted(set(categories)), "all"]:
        mask = np.ones(len(rows), bool) if name == "all" else categories == name
        total_old = float(old[mask].sum())
        if total_old <= 0:
            out[name] = float("nan")
            continue
        ratio = float(new[mask].sum()) / total_old
        se = float(np.sqrt(np.sum((new[mask] - ratio * old[mask]) ** 2))) / total_old
        out[name] = ratio - 1 + ONE_SIDED_95 * se
    return out


def elasticity_table(model: TrainedModel, truth: TrueResponse) -> list[dict[str, Any]]:
    """Per category, the model's elasticity for a regular-price move (own slope minus
    competitor slope: the competitor's price held) vs the truth's."""
    estimated = model.extras.get("elasticities", {}).get("by_category", {})
    return [
        {
            "category": category,
            "estimated": slopes["own_price"] - slopes["competitor"],
            "true": truth.elasticity[category] - truth.cross_elasticity,
            "rows": slopes["rows"],
        }
        for category, slopes in sorted(estimated.items())
        if category in truth.elasticity
    ]


def recent_profile(training_set: TrainingSet) -> np.ndarray:
    """The strongest simple forecast of a test day's units: the store x SKU's mean units on the
    same weekday with the same promotion flag over the last PROFILE_DAYS before the test
    window, falling back to its mean over those days, then to its shrunk baseline."""
    test = training_set.split("test")
    start = test["date"].min() - timedelta(days=PROFILE_DAYS)
    history = training_set.frame.filter(pl.col("split") != "test", pl.col("date") >= start)
    keys = ["store_id", "sku", "day_of_week", "on_promotion"]
    profile = history.group_by(keys).agg(pl.col("units").mean().alias("_profile"))
    level = history.group_by("store_id", "sku").agg(pl.col("units").mean().alias("_level"))
    return (
        test.join(profile, on=keys, how="left")
        .join(level, on=["store_id", "sku"], how="left")
        .select(pl.coalesce("_profile", "_level", pl.col("log_baseline").exp()))
        .to_series()
        .to_numpy()
    )


pricing_family = PricingFamily()
