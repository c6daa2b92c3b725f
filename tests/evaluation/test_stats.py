"""Intervals, the exact paired test and the power estimate, against scipy and textbook values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from looper_engine.errors import UserError
from looper_engine.evaluation.stats import (
    bootstrap_diff_interval,
    bootstrap_mean_interval,
    mcnemar_exact,
    min_detectable_difference,
    rate,
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


def test_mcnemar_counts_discordant_pairs_and_matches_scipy() -> None:
    base = [True, True, True, False, True, False, True, True]
    arm = [False, False, True, True, False, False, False, True]
    res = mcnemar_exact(base, arm)
    # base-only: positions 0, 1, 4, 6 -> b = 4; arm-only: position 3 -> c = 1
    # p = 2 * (C(5,0) + C(5,1)) / 2^5 = 2 * 6 / 32 = 0.375
    assert (res.b, res.c, res.n) == (4, 1, 8)
    assert res.p_value == pytest.approx(0.375)
    assert res.p_value == pytest.approx(binomtest(4, 5, 0.5).pvalue)


def test_mcnemar_agrees_with_scipy_on_many_tables() -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(1, 120))
        base = list(rng.random(n) < rng.random())
        arm = list(rng.random(n) < rng.random())
        res = mcnemar_exact(base, arm)
        if res.b + res.c == 0:
            assert res.p_value == 1.0
        else:
            assert res.p_value == pytest.approx(binomtest(res.b, res.b + res.c, 0.5).pvalue, rel=1e-9)


def test_mcnemar_without_discordant_pairs_is_p_one() -> None:
    assert mcnemar_exact([True, False], [True, False]).p_value == 1.0
    with pytest.raises(UserError, match="same tasks"):
        mcnemar_exact([True], [True, False])


def test_bootstrap_covers_the_true_difference_on_a_large_sample() -> None:
    rng = np.random.default_rng(1)
    a = list((rng.random(3000) < 0.3).astype(float))
    b = list((rng.random(3000) < 0.5).astype(float))
    lo, hi = bootstrap_diff_interval(a, b, paired=False, n_resamples=4000)
    assert lo < 0.2 < hi
    assert hi - lo < 0.06  # a large sample gives a tight interval


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    a = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    b = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    first = bootstrap_diff_interval(a, b, paired=True, seed=3)
    assert bootstrap_diff_interval(a, b, paired=True, seed=3) == first
    assert bootstrap_diff_interval(a, b, paired=False, seed=3) != first


def test_pairing_narrows_the_interval_for_correlated_outcomes() -> None:
    rng = np.random.default_rng(2)
    easy = rng.random(200) < 0.5
    a = easy.astype(float)
    flips = rng.random(200) < 0.1
    b = np.where(flips, 1.0, a)  # the arm solves what the base did, plus some more
    paired = bootstrap_diff_interval(list(a), list(b), paired=True)
    unpaired = bootstrap_diff_interval(list(a), list(b), paired=False)
    assert paired[1] - paired[0] < unpaired[1] - unpaired[0]
    assert paired[0] > 0  # with pairing the improvement is clear


def test_bootstrap_rejects_empty_or_unpaired_input() -> None:
    with pytest.raises(UserError):
        bootstrap_diff_interval([], [1.0], paired=False)
    with pytest.raises(UserError, match="same length"):
        bootstrap_diff_interval([1.0], [1.0, 0.0], paired=True)
    with pytest.raises(UserError):
        bootstrap_mean_interval([])


def test_min_detectable_difference_inverts_the_sample_size_formulas() -> None:
    # Unpaired, 0.5 -> 0.6 (Fleiss, no continuity correction):
    # n = (1.96 * sqrt(2 * .55 * .45) + 0.8416 * sqrt(.25 + .24))^2 / .01 = 387.3 per arm
    assert min_detectable_difference(388, 0.5, paired=False) == pytest.approx(0.1, abs=0.001)
    # Paired (Connor), psi = .5 * .4 + .6 * .5 = .5:
    # n = (1.96 * sqrt(.5) + 0.8416 * sqrt(.5 - .01))^2 / .01 = 390.1
    assert min_detectable_difference(391, 0.5, paired=True) == pytest.approx(0.1, abs=0.001)


def test_min_detectable_difference_shrinks_with_n_and_is_symmetric() -> None:
    small = min_detectable_difference(15, 0.2)
    large = min_detectable_difference(273, 0.2)
    assert large < small < 1.0
    assert min_detectable_difference(50, 0.8) == pytest.approx(min_detectable_difference(50, 0.2))
    assert min_detectable_difference(1, 0.5) == math.inf
    with pytest.raises(UserError):
        min_detectable_difference(0, 0.5)
