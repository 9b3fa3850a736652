"""Fraud after a new pattern: how soon does a retrain catch it, and at what cost in precision?

    uv run python benchmarks/bench_fraud_recovery.py [--scale tiny] [--seed 42] [--rate 0.10]
                                                     [--fresh-days 28]

The generator makes a world in which a new fraud pattern (digital goods from the victim's own
device, `FraudPatternChange`) starts on CHANGE at `--rate` of payments. The fraud model is
trained as the platform trains it (`fraud_family.build_training_set` and `train`), with only
the payments before the training day and the labels known by then:

* the champion: trained the day the pattern starts;
* for each retrain day CHANGE + d (d = 7, 14, 21, 28, or `--retrain-days`), three training
  sets: matured windows only (`fresh_fraud_days = 0`, the platform before the fresh window);
  plus the frauds already known from the last `--fresh-days` on every build
  (`fresh_when = "always"`); and the platform's default, the fresh window only when the recent
  known-fraud test finds a rise (`fresh_when = "rise"`).

Each model scores the 7 days after its training day (features replayed from every earlier
payment, as serving computes them) at its own threshold, against the eventual labels: recall
overall and on the new pattern, and precision. The champion scores the same days: it is the
baseline each retrain must beat. Then the weeks pooled per training set. With `--rate 0` (no
new pattern) it measures what the fresh window costs in ordinary times.

Each model's log loss on the week is printed twice: against the eventual labels, and against
the labels known the day after the week (what the live canary's loss sees), with the mean
probability served.

Then the live canary's view of the platform's retrain against the champion: the retrain serves
the customers of one hash fifth from its retrain day, the champion the rest, and the canary is
looked at 7, 14 and 21 days later, on the labels known then. Twice: as the canary judged before
(log loss with every payment not reported yet counted as genuine, Mann-Whitney U), and as it
judges now (`monitoring/canary.py`: label-delay weighted log loss on the payments old enough to
count, Welch t). Against the truth: each arm's log loss on the same payments against their
eventual labels.

Each retrain also goes through the promotion gate against the champion, as the platform runs
it (the family's evaluation on the retrain's own test window, `decide`), twice: with the
noise-aware rules (FPR gap and per-segment ROC AUC decided on 95 % bootstrap intervals) and
with the same rules on point estimates. A retrain that learns the pattern but never passes the
gate never serves.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from datetime import date, datetime, timedelta

import numpy as np
import polars as pl

from retail_assets.core import sequential
from retail_assets.models.fraud.family import PaymentFraudFamily
from retail_assets.models.fraud.training_set import CUSTOMERS, TRANSACTIONS, scoring_frame
from retail_assets.models.lifecycle.gate import decide
from retail_assets.monitoring.canary import ReportingDelay, delay_weighted_log_loss
from retail_assets.sources.synthetic import GeneratorConfig, Knobs, generate
from retail_assets.sources.synthetic.config import FraudPatternChange

CHANGE = date(2026, 9, 1)
RETRAIN_DAYS = (7, 14, 21, 28)
SCORED_DAYS = 7
CANARY_LOOK_DAYS = (7, 14, 21)
CANARY_SHARE = 5  # one customer in 5 is served by the challenger
NEW_PATTERN = "digital_goods"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time())


def transactions(feeds: dict[str, pl.DataFrame], before: date, labels_by: date) -> pl.DataFrame:
    """`marts.transaction_features` as the warehouse holds it on `labels_by`: the payments
    before `before`, the labels that had landed by `labels_by`."""
    labels = feeds["fraud_labels"].filter(pl.col("label_available_at") <= _midnight(labels_by))
    return (
        feeds["payments"]
        .filter(pl.col("event_ts") < _midnight(before))
        .rename({"event_ts": "transaction_ts"})
        .with_columns(
            pl.col("transaction_ts").dt.date().alias("transaction_date"),
            pl.col("channel").str.to_lowercase(),
            pl.col("payment_method").str.to_lowercase(),
        )
        .join(
            labels.select(
                "transaction_id", "is_fraud", "fraud_type", "label_source", "label_available_at"
            ),
            on="transaction_id",
            how="left",
        )
    )


def customers(feeds: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return feeds["customers"].select("customer_id", "segment", "region", "signup_date")


def score_week(family, model, feeds, start: date) -> dict[str, float | int | None]:
    """Recall (overall, new pattern) and precision at the model's threshold over the
    `SCORED_DAYS` from `start`, against the eventual labels."""
    end = start + timedelta(days=SCORED_DAYS)
    history = transactions(feeds, end, end)
    week = (history["transaction_ts"] >= _midnight(start)).alias("score")
    frame = scoring_frame(history, customers(feeds), model.extras["encodings"], week)
    probability = family.predict(model, frame)["probability"]
    flagged = probability >= model.extras["threshold"]
    truth = (
        frame.select("transaction_id")
        .join(
            feeds["fraud_labels"].select(
                "transaction_id", "is_fraud", "fraud_type", "label_available_at"
            ),
            on="transaction_id",
            how="left",
        )
        .with_columns(pl.col("is_fraud").fill_null(False))
    )
    fraud = truth["is_fraud"].to_numpy()
    # The canary's view: labels as known the day after the week (a fraud not reported yet
    # counts as genuine), and its loss (log loss, probabilities clipped at 1e-6).
    known_by = _midnight(end + timedelta(days=1))
    known = (
        truth["is_fraud"] & (truth["label_available_at"] <= known_by).fill_null(False)
    ).to_numpy()
    clipped = np.clip(probability, 1e-6, 1 - 1e-6)

    def log_loss(y: np.ndarray) -> float:
        return round(float(-np.mean(np.where(y, np.log(clipped), np.log(1 - clipped)))), 4)

    new = (truth["fraud_type"] == NEW_PATTERN).fill_null(False).to_numpy() & fraud

    def ratio(num: int, den: int) -> float | None:
        return round(num / den, 3) if den else None

    return {
        "frauds": int(fraud.sum()),
        "new_pattern": int(new.sum()),
        "recall": ratio(int((flagged & fraud).sum()), int(fraud.sum())),
        "recall_new": ratio(int((flagged & new).sum()), int(new.sum())),
        "precision": ratio(int((flagged & fraud).sum()), int(flagged.sum())),
        "alerts": int(flagged.sum()),
        "mean_probability": round(float(probability.mean()), 4),
        "log_loss": log_loss(fraud),
        "log_loss_known": log_loss(known),
    }


def scores(family, model, feeds, start: date, days: int) -> pl.DataFrame:
    """transaction_id, customer_id, transaction_ts, probability over `days` from `start`."""
    end = start + timedelta(days=days)
    history = transactions(feeds, end, end)
    window = (history["transaction_ts"] >= _midnight(start)).alias("score")
    frame = scoring_frame(history, customers(feeds), model.extras["encodings"], window)
    return frame.select("transaction_id", "customer_id", "transaction_ts").with_columns(
        pl.Series("probability", family.predict(model, frame)["probability"])
    )


def canary_looks(feeds, start: date, champion, challenger) -> list[dict]:
    """The canary's looks at `CANARY_LOOK_DAYS` after `start`: `champion` and `challenger`
    are (family, model); each customer is served by one arm (a hash fifth by the challenger)."""
    days = max(CANARY_LOOK_DAYS)
    served = (
        scores(*champion, feeds, start, days)
        .join(
            scores(*challenger, feeds, start, days).select(
                "transaction_id", pl.col("probability").alias("p_challenger")
            ),
            on="transaction_id",
        )
        .with_columns(
            (pl.col("customer_id").hash(7) % CANARY_SHARE == 0).alias("challenger"),
        )
        .with_columns(
            pl.when(pl.col("challenger"))
            .then(pl.col("p_challenger"))
            .otherwise(pl.col("probability"))
            .alias("p")
        )
        .join(
            feeds["fraud_labels"].select("transaction_id", "is_fraud", "label_available_at"),
            on="transaction_id",
            how="left",
        )
        .with_columns(pl.col("is_fraud").fill_null(False))
    )
    looks = []
    for after in CANARY_LOOK_DAYS:
        now = _midnight(start + timedelta(days=after))
        rows = served.filter(pl.col("transaction_ts") < now)
        arm = rows["challenger"].to_numpy()
        p = np.clip(rows["p"].to_numpy(), 1e-6, 1 - 1e-6)
        eventual = rows["is_fraud"].to_numpy()
        reported = (rows["is_fraud"] & (rows["label_available_at"] <= now)).to_numpy()
        age = ((now - rows["transaction_ts"]).dt.total_seconds() / 86400).to_numpy()

        truth = -np.where(eventual, np.log(p), np.log(1 - p))
        known = -np.where(reported, np.log(p), np.log(1 - p))
        before = sequential.decide(known[~arm], known[arm], look=after)
        delay = ReportingDelay.measure(transactions(feeds, now.date(), now.date()), now)
        weighted, counted = delay_weighted_log_loss(p, reported, age, delay)
        tested_looks = max(1, after - int(np.ceil(delay.min_age_days())))
        now_look = sequential.decide(
            weighted[counted & ~arm], weighted[counted & arm], look=tested_looks, statistic="mean"
        )
        looks.append(
            {
                "look": f"+{after} d",
                "payments (challenger)": f"{arm.size} ({int(arm.sum())})",
                "eventual log loss champion / challenger": (
                    f"{truth[~arm].mean():.4f} / {truth[arm].mean():.4f}"
                ),
                "before: known-label log loss, rank test": (
                    f"{known[~arm].mean():.4f} / {known[arm].mean():.4f}: {before.action} "
                    f"(p harm {before.p_harm:.2g})"
                ),
                "now: counted from age": f"{delay.min_age_days():.1f} d",
                "now: delay-weighted log loss, Welch t": (
                    f"{weighted[counted & ~arm].mean():.4f} / "
                    f"{weighted[counted & arm].mean():.4f} on {int(counted.sum())}: "
                    f"{now_look.action} (look {tested_looks}, p harm {now_look.p_harm}, "
                    f"p ok {now_look.p_noninferior})"
                    if counted.any()
                    else "none old enough yet"
                ),
            }
        )
    return looks


def trained(fresh_days: int, feeds, day: date, when: str = "rise"):
    family = PaymentFraudFamily(fresh_fraud_days=fresh_days, fresh_when=when)
    sources = {TRANSACTIONS: transactions(feeds, day, day), CUSTOMERS: customers(feeds)}
    training_set = family.build_training_set(sources)
    return family, family.train(training_set), training_set


def gate_verdicts(family, model, training_set, champion) -> dict[str, str]:
    """The gate's verdict on this retrain against the champion, noise-aware and on point
    estimates: "pass" or the failed checks."""
    test = training_set.split("test")
    champion_scores = family.predict(champion, test)
    champion_scores["threshold"] = np.array([champion.extras["threshold"]])
    evaluation = family.evaluate(
        training_set,
        {"challenger": family.predict(model, test), "champion": champion_scores},
        model,
    )
    verdicts = {}
    for label, rules in (
        ("noise-aware", family.gate_rules),
        ("point estimates", [dataclasses.replace(r, noise_aware=False) for r in family.gate_rules]),
    ):
        result = decide(
            evaluation, rules, parity_passed=True, bundle_problems=[], has_champion=True
        )
        verdicts[label] = (
            "pass"
            if result.passed
            else "refused: "
            + "; ".join(
                f"{c.metric or c.rule} {c.scope} {c.value:.3f} vs {c.threshold:.3f}"
                for c in result.checks
                if not c.passed and c.value is not None
            )
        )
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="tiny")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rate", type=float, default=0.10)
    parser.add_argument("--fresh-days", type=int, default=28)
    parser.add_argument(
        "--retrain-days",
        default=",".join(map(str, RETRAIN_DAYS)),
        help="days after the change to retrain on, comma-separated",
    )
    args = parser.parse_args()
    retrain_days = [int(d) for d in args.retrain_days.split(",")]

    started = time.perf_counter()
    end = CHANGE + timedelta(days=max(retrain_days) + max(SCORED_DAYS, *CANARY_LOOK_DAYS) + 1)
    change = FraudPatternChange(CHANGE, new_pattern_rate=args.rate)
    feeds = generate(
        GeneratorConfig(
            scale=args.scale,
            seed=args.seed,
            knobs=Knobs(fraud_pattern_change=change),
            end_date=end,
        )
    ).feeds
    print(
        f"{args.scale} world, seed {args.seed}, new pattern at {args.rate:.0%} of payments from "
        f"{CHANGE}; generated in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    champion_family, champion, _ = trained(args.fresh_days, feeds, CHANGE)
    before = score_week(champion_family, champion, feeds, CHANGE - timedelta(days=SCORED_DAYS))
    print(f"champion (trained {CHANGE}) on the week before the change: {before}", flush=True)

    header = (
        "| retrain day | training set | fresh frauds | scored week | frauds (new) | recall "
        "| recall on the new pattern | precision | alerts | mean probability | log loss "
        "| log loss, labels known a day after | gate (noise-aware) | gate (point estimates) |"
    )
    print("\n" + header + "\n" + "| --- " * 14 + "|")
    pooled: dict[str, list[int]] = {}
    platform: dict[int, tuple] = {}
    for offset in retrain_days:
        day = CHANGE + timedelta(days=offset)
        rows = [("champion (trained on the change day)", champion_family, champion, None)]
        for label, fresh, when in (
            ("matured windows only", 0, "rise"),
            (f"fresh {args.fresh_days} d always", args.fresh_days, "always"),
            (f"fresh {args.fresh_days} d on a rise (platform)", args.fresh_days, "rise"),
        ):
            family, model, training_set = trained(fresh, feeds, day, when)
            rows.append((label, family, model, training_set))
            platform[offset] = (family, model)
        for label, family, model, training_set in rows:
            s = score_week(family, model, feeds, day)
            info = training_set.info if training_set is not None else {}
            gate = (
                gate_verdicts(family, model, training_set, champion)
                if training_set is not None
                else {"noise-aware": "-", "point estimates": "-"}
            )
            total = pooled.setdefault(label, [0, 0, 0, 0, 0])
            total[0] += s["frauds"]
            total[1] += round((s["recall"] or 0) * s["frauds"])
            total[2] += s["new_pattern"]
            total[3] += round((s["recall_new"] or 0) * s["new_pattern"])
            total[4] += s["alerts"]
            print(
                f"| +{offset} d | {label} | {info.get('fresh_frauds', '-')} | {day}.. | "
                f"{s['frauds']} ({s['new_pattern']}) | {s['recall']} | {s['recall_new']} | "
                f"{s['precision']} | {s['alerts']} | {s['mean_probability']} | {s['log_loss']} "
                f"| {s['log_loss_known']} | {gate['noise-aware']} "
                f"| {gate['point estimates']} |",
                flush=True,
            )
    print("\nPooled over the scored weeks:\n")
    print("| training set | frauds | caught | recall | new-pattern recall | alerts | precision |")
    print("| --- " * 7 + "|")
    for label, (frauds, caught, new, caught_new, alerts) in pooled.items():
        print(
            f"| {label} | {frauds} | {caught} | {caught / frauds if frauds else 0:.3f} | "
            f"{f'{caught_new / new:.3f}' if new else '-'} | {alerts} | "
            f"{caught / alerts if alerts else 0:.3f} |"
        )
    print("\nThe canary of the platform's retrain (challenger) against the champion:\n")
    for offset, challenger in platform.items():
        looks = canary_looks(
            feeds, CHANGE + timedelta(days=offset), (champion_family, champion), challenger
        )
        if offset == retrain_days[0]:
            print("| retrain | " + " | ".join(looks[0]) + " |")
            print("| --- " * (len(looks[0]) + 1) + "|")
        for look in looks:
            print(f"| +{offset} d | " + " | ".join(map(str, look.values())) + " |", flush=True)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
