"""The core every versioned artifact shares (no Dagster, no training stack): the artifact store
with its role pointers and decision log, the gate, and the serving slot."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import numpy as np
import pytest

from retail_assets.core.decisions import DecisionLog
from retail_assets.core.gate import (
    CANDIDATE,
    INCUMBENT,
    Rule,
    Scorecard,
    evaluate,
    precondition,
)
from retail_assets.core.slot import Slot
from retail_assets.core.store import (
    ArtifactInvalidError,
    ArtifactStore,
    RoleError,
    Rollout,
    check_name,
)


def _validator(folder):
    text = (folder / "payload.txt").read_text() if (folder / "payload.txt").exists() else ""
    return [] if text.startswith("ok") else [f"payload is {text!r}"]


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(
        tmp_path / "thing", "test/thing", DecisionLog(tmp_path / "decisions.jsonl"), _validator
    )


def test_a_version_is_published_whole_and_a_failed_staging_leaves_nothing(store):
    """`write` stages then renames; an exception while staging removes the staging folder
    and publishes nothing."""
    store.write("1", {"payload.txt": b"ok one"})
    with pytest.raises(RuntimeError), store.staging() as staged:
        (staged / "payload.txt").write_text("half")
        raise RuntimeError("producer crashed")
    assert store.versions() == ["1"]
    assert [p.name for p in store.versions_dir.iterdir()] == ["1"]


def test_an_invalid_version_never_becomes_champion_and_the_good_one_keeps_serving(store):
    store.write("1", {"payload.txt": b"ok"})
    store.promote("1", reason="first", actor="test")
    store.write("2", {"payload.txt": b"broken"})
    with pytest.raises(ArtifactInvalidError, match="payload is 'broken'"):
        store.promote("2", reason="try", actor="test")
    assert store.champion() == "1"


def test_promotion_rollback_and_the_decision_log_agree(store, tmp_path):
    """Each pointer change is one log entry with before/after; rollback reinstates the
    champion the current one replaced, and a second rollback has nowhere to go."""
    for version in ("1", "2"):
        store.write(version, {"payload.txt": b"ok"})
    store.promote("1", reason="first", actor="gate")
    store.offer("2", reason="candidate", actor="gate", rollout=Rollout("canary", 0.2))
    assert store.roles().rollout == Rollout("canary", 0.2)
    store.promote("2", reason="canary won", actor="gate")
    roles = store.roles()
    assert (roles.version("champion"), roles.challenger) == ("2", None)
    assert roles.rollout == Rollout("off", 0.2)  # stopped, share kept for the next challenger
    entry = store.rollback(reason="live precision dropped", actor="operator")
    assert entry["champion_before"] == "2" and entry["champion_after"] == "1"
    with pytest.raises(RoleError, match="nothing to roll back to"):
        store.rollback(reason="again", actor="operator")
    log = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert [e["action"] for e in log] == ["promote", "challenger", "promote", "rollback"]
    assert all(e["artifact"] == "test/thing" for e in log)


def test_concurrent_writers_never_lose_each_others_pointer_changes(store):
    """A challenger offer and a rollout change racing on the same roles file both land."""
    for version in ("1", "2"):
        store.write(version, {"payload.txt": b"ok"})
    store.promote("1", reason="first", actor="t")
    barrier = threading.Barrier(2)

    def offer():
        barrier.wait()
        store.offer("2", reason="c", actor="t")

    def rollout():
        barrier.wait()
        store.set_rollout(Rollout("shadow"), reason="r", actor="t")

    threads = [threading.Thread(target=offer), threading.Thread(target=rollout)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    roles = store.roles()
    assert roles.version("challenger") == "2" and roles.rollout.mode == "shadow"


def test_prune_keeps_the_roles_and_the_rollback_target(store):
    for version in ("1", "2", "3", "4", "5", "6"):
        store.write(version, {"payload.txt": b"ok"})
    store.promote("1", reason="", actor="t")
    store.promote("2", reason="", actor="t")
    store.keep = 2
    store.prune()
    assert set(store.versions()) == {"1", "2", "5", "6"}


@pytest.mark.parametrize("bad", ["..", "../etc", "a/b", "", "-rf", ".hidden"])
def test_names_that_could_escape_the_store_are_refused(bad):
    with pytest.raises(ValueError):
        check_name(bad)


def _card(candidate, incumbent=None, **baselines):
    overall = {CANDIDATE: candidate, **baselines}
    if incumbent is not None:
        overall[INCUMBENT] = incumbent
    return Scorecard(overall)


def test_the_gate_requires_beating_the_best_baseline_not_the_weakest():
    rule = Rule("wape", higher_is_better=False, beat=("seasonal_naive", "profile"), margin=0.05)
    card = _card({"wape": 0.40}, seasonal_naive={"wape": 0.60}, profile={"wape": 0.41})
    result = evaluate([rule], card)
    assert not result.passed
    (check,) = result.checks
    assert check.threshold == pytest.approx(0.41 * 0.95)
    assert "best baseline profile" in check.detail
    assert evaluate([rule], _card({"wape": 0.38}, profile={"wape": 0.41})).passed


def test_the_gate_holds_floors_and_incumbent_tolerance_overall_and_per_segment():
    rule = Rule("auc", True, floor=0.7, tolerance=0.01, per_segment=True, min_support=50)
    segments = {
        "region": [
            {"segment": "north", "predictor": CANDIDATE, "support": 100, "auc": 0.80},
            {"segment": "north", "predictor": INCUMBENT, "support": 100, "auc": 0.85},
            {"segment": "tiny", "predictor": CANDIDATE, "support": 10, "auc": 0.10},
        ]
    }
    card = Scorecard({CANDIDATE: {"auc": 0.84}, INCUMBENT: {"auc": 0.845}}, segments)
    result = evaluate([rule], card)
    failed = [(c.scope, c.rule) for c in result.checks if not c.passed]
    assert failed == [("region=north", "auc no worse than the incumbent by more than 0.01")]
    assert all(c.scope != "region=tiny" for c in result.checks)  # below min support


def test_a_noise_aware_rule_refuses_only_breaches_its_interval_shows():
    """A point estimate past the limit passes when the 95 % interval reaches back within it
    (the window cannot tell), and fails when the whole interval is beyond; the check says
    which. Without an interval the point estimate decides, as for any rule."""
    gap = Rule("fpr_gap", False, floor=0.02, noise_aware=True)
    auc = Rule("auc", True, tolerance=0.005, per_segment=True, min_support=20, noise_aware=True)

    def card(gap_ci, north_diff_ci):
        north = {"segment": "north", "predictor": CANDIDATE, "support": 30, "auc": 0.90}
        if north_diff_ci:
            north["auc_minus_incumbent_ci_low"], north["auc_minus_incumbent_ci_high"] = (
                north_diff_ci
            )
        candidate = {"fpr_gap": 0.03, "auc": 0.95}
        if gap_ci:
            candidate["fpr_gap_ci_low"], candidate["fpr_gap_ci_high"] = gap_ci
        segments = {
            "region": [
                north,
                {"segment": "north", "predictor": INCUMBENT, "support": 30, "auc": 0.92},
            ]
        }
        return Scorecard({CANDIDATE: candidate, INCUMBENT: {"auc": 0.95}}, segments)

    noisy = evaluate([gap, auc], card((0.012, 0.041), (-0.06, 0.01)))
    assert noisy.passed
    assert all("within the window's noise" in c.detail for c in noisy.checks if c.value in
               (0.03, 0.90))  # fmt: skip
    shown = evaluate([gap, auc], card((0.024, 0.041), (-0.06, -0.01)))
    assert [c.scope for c in shown.checks if not c.passed] == ["overall", "region=north"]
    assert evaluate([gap, auc], card(None, None)).reasons == [
        "fpr_gap <= 0.02 failed for overall: 0.03 vs 0.02",
        "auc no worse than the incumbent by more than 0.005 failed for region=north: 0.9 vs 0.915",
    ]


def test_relative_tolerance_with_slack_and_unmeasured_optional_metrics():
    latency = Rule("p95_ms", False, floor=15000, tolerance=0.5, relative=True, slack=1000)
    optional = Rule("injection_resistance", True, floor=0.9, required=False)
    card = _card({"p95_ms": 2900}, incumbent={"p95_ms": 1200})
    result = evaluate([latency, optional], card)
    limits = {c.rule: c.threshold for c in result.checks}
    assert limits["p95_ms no worse than the incumbent by more than 50% + 1000"] == 2800
    assert not result.passed
    assert [c.detail for c in result.checks if c.metric == "injection_resistance"] == [
        "not measured"
    ]


def test_preconditions_and_a_missing_incumbent_fail_the_gate_with_reasons():
    result = evaluate(
        [Rule("auc", True, floor=0.5)],
        _card({"auc": 0.9}),
        preconditions=[precondition("onnx_parity", False, "max diff 0.2")],
        expect_incumbent=True,
    )
    assert not result.passed
    assert result.reasons == [
        "onnx_parity failed for overall: max diff 0.2",
        "incumbent_comparison failed for overall: the incumbent could not be scored on this data",
    ]
    assert result.table()[0] == {
        "rule": "onnx_parity",
        "scope": "overall",
        "value": None,
        "threshold": None,
        "passed": False,
        "detail": "max diff 0.2",
    }


def test_a_slot_swaps_only_to_versions_that_load_and_retries_a_refusal_after_a_rebuild(store):
    loads = []

    def load(folder, version):
        loads.append(version)
        text = (folder / "payload.txt").read_text()
        if "crash" in text:
            raise ValueError("self-test failed")
        return text

    slot = Slot("thing", store, load)
    assert slot.refresh() == [] and slot.problems == ["nothing published yet"]
    store.write("1", {"payload.txt": b"ok v1"})
    store.promote("1", reason="", actor="t")
    assert slot.refresh() == ["thing: champion v- -> v1"]
    assert slot.champion.value == "ok v1"

    store.write("2", {"payload.txt": b"ok but crash at load"})
    store.promote("2", reason="", actor="t")  # the store's validator passes; loading fails
    slot.refresh()
    slot.refresh()
    assert slot.champion.version == "1"
    assert slot.problems == ["champion v2 refused: self-test failed; still serving v1"]
    assert loads.count("2") == 1  # not retried while the files are unchanged

    store.write("2", {"payload.txt": b"ok fixed"})
    assert slot.refresh() == ["thing: champion v1 -> v2"]
    assert slot.champion.value == "ok fixed" and slot.problems == []


# -- the sequential canary test ---------------------------------------------------------------


def _canary(rng, scale_challenger: float, per_look: int = 80, max_looks: int = 14):
    """Run one canary look by look on gamma losses; returns (action, look)."""
    from retail_assets.core.sequential import EXTEND, decide

    champion, challenger = np.empty(0), np.empty(0)
    for look in range(1, max_looks + 1):
        champion = np.concatenate([champion, rng.gamma(2.0, 1.0, per_look)])
        challenger = np.concatenate([challenger, rng.gamma(2.0, scale_challenger, per_look)])
        result = decide(champion, challenger, look, max_looks)
        if result.action != EXTEND:
            return result.action, look
    raise AssertionError("the last look must decide")


def test_sequential_canary_rarely_rolls_back_an_equal_challenger_however_often_it_looks():
    """A/A: 300 canaries, each looked at 14 times. Rolling back an equally good challenger is
    the wrong decision; its rate must stay within alpha (5 %) plus sampling slack, while a test
    at 5 % on every look would do it far more often."""
    from retail_assets.core.sequential import ALPHA, ROLLBACK

    rng = np.random.default_rng(7)
    outcomes = [_canary(rng, 1.0) for _ in range(300)]
    false_rollbacks = sum(action == ROLLBACK and look < 14 for action, look in outcomes)
    assert false_rollbacks / 300 <= ALPHA + 0.03


def test_sequential_canary_promotes_a_better_challenger_and_rolls_back_a_worse_one():
    from retail_assets.core.sequential import PROMOTE, ROLLBACK

    rng = np.random.default_rng(11)
    better = [_canary(rng, 0.8) for _ in range(40)]
    worse = [_canary(rng, 1.25) for _ in range(40)]
    assert sum(a == PROMOTE for a, _ in better) >= 38
    assert sum(a == ROLLBACK for a, _ in worse) >= 38
    assert np.median([look for _, look in worse]) < 14, "harm is caught before the last look"


def test_sequential_canary_extends_without_enough_data_and_spends_no_alpha():
    from retail_assets.core.sequential import EXTEND, decide

    result = decide(np.ones(10), np.ones(10), look=3)
    assert result.action == EXTEND and result.alpha_this_look == 0.0
    assert "need 50 each" in result.reason


def _rate_canary(rng, rate_champion: float, rate_challenger: float, per_look: int = 400):
    """One click-through canary, look by look on Bernoulli outcomes; returns (action, look)."""
    from retail_assets.core.sequential import EXTEND, MAX_LOOKS, decide_rates

    s0 = s1 = n = 0
    for look in range(1, MAX_LOOKS + 1):
        n += per_look
        s0 += int(rng.binomial(per_look, rate_champion))
        s1 += int(rng.binomial(per_look, rate_challenger))
        result = decide_rates((s0, n), (s1, n), look)
        if result.action != EXTEND:
            return result.action, look
    raise AssertionError("the last look must decide")


def test_click_through_canary_keeps_its_error_rate_and_decides_real_differences():
    """Rates (click-through) use the two-proportion version of the same design: an equal
    challenger is rarely rolled back before the last look (within alpha), one with a clearly
    higher click-through is promoted, a lower one rolled back; 0/1 outcomes with a margin
    do not count ties as wins (a rank test on losses would promote an equal arm at once)."""
    from retail_assets.core.sequential import ALPHA, PROMOTE, ROLLBACK, decide_rates

    rng = np.random.default_rng(3)
    equal = [_rate_canary(rng, 0.10, 0.10) for _ in range(200)]
    assert sum(a == ROLLBACK and look < 14 for a, look in equal) / 200 <= ALPHA + 0.03
    better = [_rate_canary(rng, 0.10, 0.13) for _ in range(30)]
    worse = [_rate_canary(rng, 0.10, 0.07) for _ in range(30)]
    assert sum(a == PROMOTE for a, _ in better) >= 28
    assert sum(a == ROLLBACK for a, _ in worse) >= 28
    first = decide_rates((100, 1000), (100, 1000), look=1)
    assert first.action == "extend" and "two-proportion" in first.test


def test_the_mean_statistic_keeps_alpha_and_finds_a_better_and_a_worse_challenger():
    """The Welch-t version of the sequential test: A/A canaries are rarely rolled back before
    the last look, and a 20 % better or 25 % worse challenger is found."""
    from retail_assets.core.sequential import ALPHA, EXTEND, PROMOTE, ROLLBACK, decide

    def canary(rng, scale, per_look=80):
        champion, challenger = np.empty(0), np.empty(0)
        for look in range(1, 15):
            champion = np.concatenate([champion, rng.gamma(2.0, 1.0, per_look)])
            challenger = np.concatenate([challenger, rng.gamma(2.0, scale, per_look)])
            result = decide(champion, challenger, look, statistic="mean")
            if result.action != EXTEND:
                return result.action, look
        raise AssertionError("the last look must decide")

    rng = np.random.default_rng(5)
    same = [canary(rng, 1.0) for _ in range(300)]
    assert sum(a == ROLLBACK and k < 14 for a, k in same) / 300 <= ALPHA + 0.03
    assert sum(a == PROMOTE for a, _ in (canary(rng, 0.8) for _ in range(40))) >= 38
    assert sum(a == ROLLBACK for a, _ in (canary(rng, 1.25) for _ in range(40))) >= 38
    with pytest.raises(ValueError, match="statistic must be one of"):
        decide(np.ones(60), np.ones(60), 1, statistic="median")


def test_on_rare_costly_events_the_mean_judges_the_cost_where_the_rank_test_judges_the_common_case():
    """Fraud-like log losses: 98 % genuine payments, 2 % frauds. The challenger scores genuine
    payments a little higher (0.02 against 0.01) and catches the frauds (0.6 against 0.05).
    Its mean log loss is far lower; the rank test, comparing mostly genuine against genuine,
    calls it worse. The mean statistic promotes it, the rank statistic rolls it back."""
    from retail_assets.core.sequential import PROMOTE, ROLLBACK, decide

    n, frauds = 5000, 100

    def losses(p_genuine, p_fraud):
        return np.concatenate(
            [np.full(n - frauds, -np.log(1 - p_genuine)), np.full(frauds, -np.log(p_fraud))]
        )

    champion, challenger = losses(0.01, 0.05), losses(0.02, 0.6)
    assert challenger.mean() < champion.mean()
    assert decide(champion, challenger, 14, statistic="mean").action == PROMOTE
    assert decide(champion, challenger, 14, statistic="rank").action == ROLLBACK


def test_the_last_look_promotes_a_harmless_challenger_only_when_the_champion_is_degraded():
    """No evidence either way at the last look keeps a healthy champion; when monitoring found
    the champion degraded live, keeping it is not the safe choice and the challenger that
    showed no harm is promoted. Harm rolls back either way."""
    from retail_assets.core.sequential import PROMOTE, ROLLBACK, decide

    rng = np.random.default_rng(3)
    champion, same = rng.gamma(2.0, 1.0, 60), rng.gamma(2.0, 1.0, 60)
    assert decide(champion, same, 14, statistic="mean").action == ROLLBACK
    promoted = decide(champion, same, 14, statistic="mean", champion_degraded=True)
    assert promoted.action == PROMOTE and "champion is degraded live" in promoted.reason
    worse = rng.gamma(2.0, 3.0, 60)
    assert decide(champion, worse, 14, statistic="mean", champion_degraded=True).action == ROLLBACK
    assert decide(champion, same, 5, statistic="mean", champion_degraded=True).action == "extend"


def test_decisions_role_pointers_and_the_prediction_log_read_one_clock(
    store, tmp_path, monkeypatch
):
    """With `RETAIL_NOW` set (a simulated day), a decision, the pointer it moves and a logged
    prediction all carry that time, so a canary's start and the predictions it judges (and a
    list and the clicks on it) compare; unset, all read the wall clock; a bad value is named."""
    import polars as pl

    from retail_assets.core import clock
    from retail_assets.settings import get_settings
    from serving.prediction_log import PredictionLogger

    monkeypatch.setenv("RETAIL_NOW", "2027-01-15T12:00:00")
    store.write("1", {"payload.txt": b"ok"})
    entry = store.promote("1", reason="first", actor="gate")
    assert entry["at"].startswith("2027-01-15T12:00:00")
    assert store.roles().champion.since.startswith("2027-01-15T12:00:00")
    logger = PredictionLogger(tmp_path / "log", flush_seconds=60)
    logger.log(model="fraud", version="1", arm="champion", entity_id="t1", features={},
               output={"probability": 0.1}, latency_ms=1.0, request_id="r1")  # fmt: skip
    logger.close()
    parts = list((tmp_path / "log").glob("date=*/part-*.parquet"))
    assert [p.parent.name for p in parts] == ["date=2027-01-15"]
    logged = pl.read_parquet(parts[0])["ts"].dt.replace_time_zone(None).to_list()
    assert [str(t) for t in logged] == ["2027-01-15 12:00:00"]

    monkeypatch.delenv("RETAIL_NOW")
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 60
    monkeypatch.setenv("RETAIL_NOW", "next tuesday")
    with pytest.raises(ValueError, match="RETAIL_NOW must be an ISO timestamp"):
        clock.now()
    with pytest.raises(ValueError, match="RETAIL_NOW must be an ISO timestamp"):
        get_settings()  # every command and `retail serve` stop at start, naming it
