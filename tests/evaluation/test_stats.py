"""Intervals, the exact paired test and the power estimate, against scipy and textbook values,
with the task as the unit: seeds are repeated measures of a task, never extra tasks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps
from scipy.stats import binomtest

from looper_engine.errors import UserError
from looper_engine.evaluation.stats import (
    bootstrap_mean_interval,
    design_label,
    min_detectable_effect,
    paired_comparison,
    rate,
    sign_flip_tails,
    t_quantile,
    task_rate,
    wilson_interval,
)


def test_wilson_matches_textbook_values() -> None:
    lo, hi = wilson_interval(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    # 0/10: the upper bound is z^2 / (n + z^2) = 3.8415 / 13.8415
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(1.959964**2 / (10 + 1.959964**2), abs=1e-6)


def test_wilson_matches_scipy_wilson() -> None:
    for k, n in [(3, 15), (4, 15), (50, 100), (1, 273)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_without_trials_knows_nothing() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(UserError):
        wilson_interval(5, 4)


def test_rate_carries_k_n_and_interval() -> None:
    r = rate(4, 15)
    assert (r.k, r.n) == (4, 15)
    assert r.rate == pytest.approx(4 / 15)
    assert r.lo < r.rate < r.hi
    assert "4/15" in str(r)


def one_seed(outcomes: list[bool]) -> dict[str, list[bool]]:
    return {f"t{i:03d}": [x] for i, x in enumerate(outcomes)}


def scipy_sign_flip(d: np.ndarray, alternative: str) -> float:
    """scipy's exact paired permutation test of the mean per-task difference."""
    res = sps.permutation_test(
        (d,), lambda x: np.mean(x), permutation_type="samples", alternative=alternative, n_resamples=np.inf
    )
    return float(res.pvalue)


def test_one_seed_a_task_is_mcnemars_exact_test() -> None:
    base = [True, True, True, False, True, False, True, True]
    arm = [False, False, True, True, False, False, False, True]
    c = paired_comparison(one_seed(base), one_seed(arm))
    # lost: positions 0, 1, 4, 6 (b = 4); gained: position 3 (c = 1)
    # two-sided p = 2 * (C(5,0) + C(5,1)) / 2^5 = 0.375; p_worse = P(X >= 4 | Bin(5, 1/2)) = 6/32
    assert (c.worse, c.better, c.same, c.n_tasks) == (4, 1, 3, 8)
    assert c.p_value == pytest.approx(0.375)
    assert c.p_value == pytest.approx(binomtest(4, 5, 0.5).pvalue)
    assert c.p_worse == pytest.approx(6 / 32)
    assert c.p_worse == pytest.approx(binomtest(1, 5, 0.5, alternative="less").pvalue)
    assert (c.base_rate, c.arm_rate, c.diff) == (6 / 8, 3 / 8, -3 / 8)


def test_mcnemar_agrees_with_scipy_on_many_tables() -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(1, 120))
        base = list(rng.random(n) < rng.random())
        arm = list(rng.random(n) < rng.random())
        c = paired_comparison(one_seed(base), one_seed(arm), detectable=False)
        lost, gained = c.worse, c.better
        if lost + gained == 0:
            assert c.p_value == 1.0 and c.p_worse == 1.0
            continue
        assert c.p_value == pytest.approx(binomtest(gained, lost + gained, 0.5).pvalue, rel=1e-9)
        assert c.p_worse == pytest.approx(binomtest(gained, lost + gained, 0.5, alternative="less").pvalue, rel=1e-9)
        assert c.p_better == pytest.approx(
            binomtest(gained, lost + gained, 0.5, alternative="greater").pvalue, rel=1e-9
        )


def test_a_hand_worked_table_with_unequal_seeds() -> None:
    # Task a: base 1/1, arm 0/2 -> d = -1;  b: base 0/1, arm 1/2 -> +1/2;  c: base 0/1, arm 2/2 -> +1.
    # On the lattice of 1/2: d = -2, +1, +2, sum t = +1. The 8 sign flips of (2, 1, 2) give
    # sums 5, 3, 1, 1, -1, -1, -3, -5: P(|T| >= 1) = 1, P(T <= 1) = 6/8, P(T >= 1) = 4/8.
    base = {"a": [True], "b": [False], "c": [False]}
    arm = {"a": [False, False], "b": [True, False], "c": [True, True]}
    c = paired_comparison(base, arm)
    assert (c.p_value, c.p_worse, c.p_better) == (1.0, 0.75, 0.5)
    assert c.diff == pytest.approx(0.5 / 3) and c.arm_rate == pytest.approx(0.5)
    assert (c.base_seeds, c.arm_seeds) == ([1], [2])
    assert c.design == "3 tasks x 2 seeds (base 1 seed)"
    d = np.array([-1.0, 0.5, 1.0])
    assert c.p_worse == pytest.approx(scipy_sign_flip(d, "less"))
    assert c.p_better == pytest.approx(scipy_sign_flip(d, "greater"))


def test_unequal_seed_counts_agree_with_scipys_exact_permutation_test() -> None:
    rng = np.random.default_rng(11)
    for _ in range(25):
        n = int(rng.integers(2, 11))
        base: dict[str, list[bool]] = {}
        arm: dict[str, list[bool]] = {}
        for i in range(n):
            p = rng.random()
            base[f"t{i}"] = list(rng.random(int(rng.integers(1, 4))) < p)
            arm[f"t{i}"] = list(rng.random(int(rng.integers(1, 5))) < min(1.0, p + 0.2))
        arm["only-in-the-arm"] = [True]  # a task the base never measured does not count
        c = paired_comparison(base, arm, detectable=False)
        assert c.n_tasks == n
        d = np.array([np.mean(arm[t]) - np.mean(base[t]) for t in sorted(base)])
        assert c.diff == pytest.approx(d.mean())
        assert c.p_value == pytest.approx(scipy_sign_flip(d, "two-sided"), rel=1e-9)
        assert c.p_worse == pytest.approx(scipy_sign_flip(d, "less"), rel=1e-9)
        assert c.p_better == pytest.approx(scipy_sign_flip(d, "greater"), rel=1e-9)


def test_seeds_are_not_tasks() -> None:
    # 4 tasks x 3 seeds, the arm wins every seed of every task: counted as 12 pairs this would be
    # p = 2 * 0.5**12; with the task as the unit it is 2 * 0.5**4 = 0.125, not significant.
    base = {f"t{i}": [False] * 3 for i in range(4)}
    arm = {f"t{i}": [True] * 3 for i in range(4)}
    c = paired_comparison(base, arm)
    assert c.p_value == 0.125 and c.n_tasks == 4 and c.design == "4 tasks x 3 seeds"
    assert c.min_detectable is None  # 4 tasks cannot reach p < 0.05 at all


def test_extreme_tables_report_their_true_tails() -> None:
    # 30 tasks, all lost: the one-sided p is 2**-30 (about 9.3e-10), computed as its own tail.
    c = paired_comparison(one_seed([True] * 30), one_seed([False] * 30))
    assert c.p_worse == 2.0**-30 and c.p_worse == pytest.approx(9.3e-10, rel=0.01)
    assert c.p_worse == pytest.approx(binomtest(0, 30, 0.5, alternative="less").pvalue, rel=1e-12)
    assert c.p_value == 2.0**-29 and c.p_better == 1.0
    assert c.diff_hi < 0 and c.diff_lo >= -1.0
    # 200 tasks, all lost: 2**-200 is far below any Monte Carlo floor, and not 0.
    c = paired_comparison(one_seed([True] * 200), one_seed([False] * 200))
    assert c.p_worse == 2.0**-200 > 0.0
    # Nothing differs: p = 1, and the interval is not a point.
    c = paired_comparison(one_seed([True, False] * 5), one_seed([True, False] * 5))
    assert c.p_value == c.p_worse == c.p_better == 1.0
    assert c.diff_lo < 0 < c.diff_hi


def test_sign_flip_tails_by_hand() -> None:
    # magnitudes 1, 1, 2 observed as +1, +1, +2 (t = 4): of 8 flips only one reaches 4.
    assert sign_flip_tails([1, 1, 2]) == (0.25, 1.0, 0.125)
    assert sign_flip_tails([0, 0]) == (1.0, 1.0, 1.0)


def test_the_difference_interval_holds_the_difference_and_narrows_with_tasks() -> None:
    rng = np.random.default_rng(3)
    widths = []
    for n in (10, 40, 160):
        base = {f"t{i}": list(rng.random(3) < 0.4) for i in range(n)}
        arm = {f"t{i}": list(rng.random(3) < 0.6) for i in range(n)}
        c = paired_comparison(base, arm)
        assert c.diff_lo <= c.diff <= c.diff_hi
        widths.append(c.diff_hi - c.diff_lo)
    assert widths[0] > widths[1] > widths[2]
    # The t-interval on per-task differences: mean +- t(0.975, n-1) * sqrt((SS + 0.5) / n) / sqrt(n).
    base = one_seed([False, False, True, False])
    arm = one_seed([True, False, True, True])
    c = paired_comparison(base, arm)
    d = np.array([1.0, 0.0, 0.0, 1.0])
    half = sps.t.ppf(0.975, 3) * np.sqrt((((d - d.mean()) ** 2).sum() + 0.5) / 4) / 2
    assert (c.diff_lo, c.diff_hi) == pytest.approx((d.mean() - half, min(1.0, d.mean() + half)))


def test_paired_comparison_rejects_what_it_cannot_compare() -> None:
    with pytest.raises(UserError, match="at least one task"):
        paired_comparison({"a": [True]}, {"b": [True]})
    with pytest.raises(UserError, match="no outcome"):
        paired_comparison({"a": []}, {"a": [True]})
    with pytest.raises(UserError):
        paired_comparison({"a": [True]}, {"a": [True]}, confidence=1.5)


def test_min_detectable_shrinks_with_tasks_and_needs_enough_of_them() -> None:
    assert min_detectable_effect(5, 1, 1) is None  # 2**-4 > 0.05: no outcome is significant
    small = min_detectable_effect(24, 3, 3)
    large = min_detectable_effect(96, 3, 3)
    assert small is not None and large is not None and large < small < 0.6
    # A deterministic base (every seed the same) carries less information than a stochastic one.
    repeats = min_detectable_effect(24, 3, 3, base_repeats=True)
    assert repeats is not None and repeats > small
    assert min_detectable_effect(24, 3, 3, worse=True) is not None
    with pytest.raises(UserError):
        min_detectable_effect(0)


def test_t_quantiles_match_scipy() -> None:
    for df, p in itertools.product((1, 2, 3, 5, 10, 23, 56), (0.6, 0.8, 0.975, 0.995)):
        assert t_quantile(p, df) == pytest.approx(sps.t.ppf(p, df), abs=1e-8)
        assert t_quantile(1 - p, df) == pytest.approx(sps.t.ppf(1 - p, df), abs=1e-8)


def test_task_rate_is_wilson_with_one_seed_and_task_level_with_more() -> None:
    one = task_rate(one_seed([True, False, False, True, False]))
    ci = binomtest(2, 5).proportion_ci(confidence_level=0.95, method="wilson")
    assert (one.rate, one.lo, one.hi) == pytest.approx((0.4, ci.low, ci.high))
    assert one.method == "wilson" and one.design == "5 tasks x 1 seed"
    # Seeds that always agree carry one outcome's information: the interval is the tasks' Wilson,
    # not the narrower one of 15 outcomes.
    same = task_rate({f"t{i}": [x] * 3 for i, x in enumerate([True, False, False, True, False])})
    assert same.rate == 0.4 and (same.lo, same.hi) == pytest.approx((ci.low, ci.high))
    assert same.design == "5 tasks x 3 seeds" and (same.k, same.n) == (6, 15)
    # A rate of 0 does not collapse to a point.
    zero = task_rate({f"t{i}": [False] * 3 for i in range(10)})
    assert zero.lo == 0.0 and zero.hi == pytest.approx(wilson_interval(0, 10)[1])
    # The rate is the mean of per-task rates, whatever each task's seed count.
    mixed = task_rate({"a": [True], "b": [False, True, True, True]})
    assert mixed.rate == pytest.approx((1.0 + 0.75) / 2) and mixed.seeds == [1, 4]


def test_design_labels_say_tasks_then_seeds() -> None:
    assert design_label(57, [3]) == "57 tasks x 3 seeds"
    assert design_label(1, [1]) == "1 task x 1 seed"
    assert design_label(6, [1, 3]) == "6 tasks x 1-3 seeds"


def test_bootstrap_mean_rejects_empty_input() -> None:
    with pytest.raises(UserError):
        bootstrap_mean_interval([])
    assert bootstrap_mean_interval([1.0, 2.0, 3.0], seed=3) == bootstrap_mean_interval([1.0, 2.0, 3.0], seed=3)
