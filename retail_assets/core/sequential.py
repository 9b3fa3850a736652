"""A sequential champion/challenger test that stays valid however often it is checked.

A canary is looked at again and again as traffic and labels accrue. Testing at level alpha on
every look would roll back (or promote) far more often than alpha by chance. This design
spends alpha across a fixed maximum number of looks: look k may use `alpha * (k/K)^2 -
alpha * ((k-1)/K)^2` (the power-family spending function with rho = 2, which keeps early looks
strict), and by the union bound the chance of any wrong decision over all K looks is at most
alpha, whatever the looks' timing or the correlation between them. Each look runs two
one-sided Mann-Whitney U tests from scipy on per-prediction losses (lower is better; the arms
see disjoint entities, so the samples are independent):

* **harm**: challenger losses are stochastically larger than the champion's -> roll back;
* **non-inferiority**: challenger losses are smaller than the champion's inflated by the
  margin -> promote.

Neither, and looks remain: extend. The last look without a promotion rolls back (no evidence
that the challenger is at least as good is not a reason to serve it).

`statistic="mean"` runs the same two one-sided tests as Welch t tests on the mean loss instead.
A rank test asks which arm's typical prediction costs less; where nearly every prediction is of
one kind and the decision rests on the rare other (fraud: 99 % of payments are genuine), nearly
every pair it compares is genuine against genuine, so it would judge the arms on how low they
score genuine payments. The mean weighs each prediction by its cost, and it is the statistic a
weighted (unbiased) loss estimate supports (`monitoring/canary.py`'s label-delay weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

PROMOTE, EXTEND, ROLLBACK = "promote", "extend", "rollback"
# Family-wise error over all looks: at most 5 % of canaries get a decision the data do not
# support (a good challenger rolled back, or a worse one promoted).
ALPHA = 0.05
# Looks a canary may take before it must end; at one look per monitoring run (daily), about
# two weeks.
MAX_LOOKS = 14
# The challenger may be up to 2 % worse (losses inflated by 2 %) and still count as "at least
# as good": closer than that is within the run-to-run noise of retraining.
MARGIN = 0.02
# Fewer losses than this in either arm: the look does not spend alpha (extend), nor use one of
# the MAX_LOOKS (`monitoring/canary.py` counts only looks that tested).
MIN_PER_ARM = 50
# ... but a canary that has waited this many looks (a month of daily looks) without enough
# data is rolled back: it is not getting the traffic or the labels to be judged. A month is
# twice the wait of the slowest canary by design (fraud: about two weeks until half the frauds
# of a payment's age are reported).
MAX_WAITING_LOOKS = 30


@dataclass(frozen=True)
class Look:
    action: str
    look: int
    max_looks: int
    n_champion: int
    n_challenger: int
    alpha_this_look: float
    alpha_spent: float
    p_harm: float | None
    p_noninferior: float | None
    mean_loss_champion: float | None
    mean_loss_challenger: float | None
    reason: str
    statistic: str = "Mann-Whitney U on per-prediction loss"

    @property
    def test(self) -> str:
        return (
            f"group-sequential one-sided {self.statistic}, alpha {ALPHA} "
            f"spent as alpha*(k/K)^2 over K={self.max_looks} looks (union bound), margin "
            f"{MARGIN:.0%}"
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "test": self.test}


def spending(look: int, max_looks: int = MAX_LOOKS, alpha: float = ALPHA) -> float:
    """Alpha this look may use (power family, rho = 2)."""
    k = min(look, max_looks)
    return alpha * ((k / max_looks) ** 2 - ((k - 1) / max_looks) ** 2)


def decide(
    champion_losses: np.ndarray,
    challenger_losses: np.ndarray,
    look: int,
    max_looks: int = MAX_LOOKS,
    margin: float = MARGIN,
    statistic: str = "rank",
    champion_degraded: bool = False,
) -> Look:
    """Promote, extend or roll back the challenger at look `look` (1-based); `statistic`:
    "rank" (Mann-Whitney U) or "mean" (Welch t).

    The last look without evidence either way keeps the champion, unless `champion_degraded`
    (monitoring found the champion's live performance significantly below its own offline
    evaluation): then keeping it is no longer the safe choice, and a challenger that passed
    the offline gate and showed no harm in K looks is promoted. Harm still rolls back at any
    look."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(STATISTICS)}, got {statistic!r}")
    named = STATISTICS[statistic]
    champion = np.asarray(champion_losses, dtype=float)
    challenger = np.asarray(challenger_losses, dtype=float)
    champion, challenger = champion[~np.isnan(champion)], challenger[~np.isnan(challenger)]
    level = spending(look, max_looks)
    spent = ALPHA * (min(look, max_looks) / max_looks) ** 2
    means = (
        float(champion.mean()) if champion.size else None,
        float(challenger.mean()) if challenger.size else None,
    )
    last = look >= max_looks
    if min(champion.size, challenger.size) < MIN_PER_ARM:
        action = ROLLBACK if last else EXTEND
        why = (
            f"{champion.size} champion and {challenger.size} challenger losses (need "
            f"{MIN_PER_ARM} each)" + ("; last look: rolled back" if last else "")
        )
        return Look(action, look, max_looks, champion.size, challenger.size, 0.0,
                    spent, None, None, *means, why, named)  # fmt: skip
    p_harm, p_ok = _one_sided(statistic, challenger, champion, margin)
    if p_harm < level:
        action, why = ROLLBACK, f"challenger worse (p={p_harm:.2g} < {level:.3g})"
    elif p_ok < level:
        action, why = PROMOTE, f"challenger at least as good (p={p_ok:.2g} < {level:.3g})"
    elif last and champion_degraded:
        action, why = (
            PROMOTE,
            f"last of {max_looks} looks: no evidence of harm (p harm {p_harm:.2g}), and the "
            "champion is degraded live",
        )
    elif last:
        action, why = ROLLBACK, f"last of {max_looks} looks without evidence it is as good"
    else:
        action, why = EXTEND, f"no decision yet (p harm {p_harm:.2g}, p ok {p_ok:.2g})"
    return Look(action, look, max_looks, champion.size, challenger.size, level, spent,
                p_harm, p_ok, *means, why, named)  # fmt: skip


STATISTICS = {
    "rank": "Mann-Whitney U on per-prediction loss",
    "mean": "Welch t on mean per-prediction loss",
}


def _one_sided(
    statistic: str, challenger: np.ndarray, champion: np.ndarray, margin: float
) -> tuple[float, float]:
    """p values of harm (challenger worse) and non-inferiority (challenger better than the
    champion's losses inflated by `margin`)."""
    if statistic == "mean":

        def test(a, b, alternative):
            if np.ptp(a) == 0 and np.ptp(b) == 0:  # no variance: the means decide outright
                return 0.0 if (a[0] > b[0]) == (alternative == "greater") and a[0] != b[0] else 1.0
            return stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue
    else:

        def test(a, b, alternative):
            return stats.mannwhitneyu(a, b, alternative=alternative).pvalue

    return (
        float(test(challenger, champion, "greater")),
        float(test(challenger, champion * (1 + margin), "less")),
    )


RATE_TEST = "two-proportion z test on a rate (e.g. click-through)"


def decide_rates(
    champion: tuple[int, int],
    challenger: tuple[int, int],
    look: int,
    max_looks: int = MAX_LOOKS,
    margin: float = MARGIN,
) -> Look:
    """The same sequential design for a rate (higher is better, e.g. click-through):
    `(successes, trials)` per arm. Rank tests on 0/1 outcomes are all ties and a multiplied
    loss makes a tie look like a win, so each look runs two one-sided two-proportion z tests
    (scipy's normal; unpooled variance):

    * harm: the challenger's rate is below the champion's -> roll back;
    * non-inferiority: the challenger's rate is above the champion's minus `margin` of it
      (2 %: 10 % CTR against 10.2 % is "as good") -> promote.
    The look's "losses" reported are 1 - rate."""
    (s0, n0), (s1, n1) = champion, challenger
    level = spending(look, max_looks)
    spent = ALPHA * (min(look, max_looks) / max_looks) ** 2
    last = look >= max_looks
    r0, r1 = (s0 / n0 if n0 else None), (s1 / n1 if n1 else None)
    means = (None if r0 is None else 1 - r0, None if r1 is None else 1 - r1)
    if min(n0, n1) < MIN_PER_ARM:
        action = ROLLBACK if last else EXTEND
        why = f"{n0} champion and {n1} challenger trials (need {MIN_PER_ARM} each)" + (
            "; last look: rolled back" if last else ""
        )
        return Look(action, look, max_looks, n0, n1, 0.0, spent, None, None, *means, why, RATE_TEST)
    # A rate of exactly 0 or 1 has no variance: add half a success and failure (Agresti-Caffo
    # style) so the z statistic stays finite.
    a0, a1 = (s0 + 0.5) / (n0 + 1), (s1 + 0.5) / (n1 + 1)
    se = float(np.sqrt(a0 * (1 - a0) / (n0 + 1) + a1 * (1 - a1) / (n1 + 1)))
    p_harm = float(stats.norm.sf((a0 - a1) / se))
    p_ok = float(stats.norm.sf((a1 - a0 * (1 - margin)) / se))
    if p_harm < level:
        action, why = (
            ROLLBACK,
            f"challenger rate lower ({r1:.3f} vs {r0:.3f}, p={p_harm:.2g} < {level:.3g})",
        )
    elif p_ok < level:
        action, why = (
            PROMOTE,
            f"challenger rate at least as good ({r1:.3f} vs {r0:.3f}, p={p_ok:.2g} < {level:.3g})",
        )
    elif last:
        action, why = ROLLBACK, f"last of {max_looks} looks without evidence it is as good"
    else:
        action, why = (
            EXTEND,
            f"no decision yet ({r1:.3f} vs {r0:.3f}; p harm {p_harm:.2g}, p ok {p_ok:.2g})",
        )
    return Look(action, look, max_looks, n0, n1, level, spent, p_harm, p_ok, *means, why, RATE_TEST)
