"""Small-sample statistics for comparing agents: intervals for rates and differences, the exact
paired test, and a power estimate.

Everything here is deterministic (bootstraps take a seed) and needs only the standard library
and numpy, so experiment reports can be reproduced from the stored outcomes alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, Field

from looper_engine.errors import UserError


def _z(p: float) -> float:
    return NormalDist().inv_cdf(p)


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise UserError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial rate.

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point
    at 0/n or n/n, which matters at the task counts an agent experiment can afford.
    With no trials nothing is known, so the interval is the whole of [0, 1].
    """
    _check_confidence(confidence)
    if n < 0 or successes < 0 or successes > n:
        raise UserError(f"a rate needs 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return (0.0, 1.0)
    z = _z(0.5 + confidence / 2)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # At 0/n and n/n the bound is exactly 0 or 1; the formula leaves rounding dust there.
    lo = 0.0 if successes == 0 else max(0.0, center - half)
    hi = 1.0 if successes == n else min(1.0, center + half)
    return (lo, hi)


class Rate(BaseModel):
    """k successes out of n, with a Wilson interval."""

    k: int = Field(ge=0)
    n: int = Field(ge=0)
    rate: float | None  # None when n == 0: there is no rate to report
    lo: float
    hi: float

    def __str__(self) -> str:
        if self.rate is None:
            return f"{self.k}/{self.n}"
        return f"{self.k}/{self.n} = {self.rate:.1%} [{self.lo:.1%}, {self.hi:.1%}]"


def rate(k: int, n: int, confidence: float = 0.95) -> Rate:
    lo, hi = wilson_interval(k, n, confidence)
    return Rate(k=k, n=n, rate=(k / n if n else None), lo=lo, hi=hi)


def bootstrap_diff_interval(
    a: Sequence[float],
    b: Sequence[float],
    paired: bool,
    n_resamples: int = 10000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval for mean(b) - mean(a).

    Paired: `a[i]` and `b[i]` are the same task under two conditions, and the pairs are
    resampled together (which keeps the task-difficulty correlation and narrows the interval).
    Unpaired: each sample is resampled on its own.
    """
    _check_confidence(confidence)
    if not a or not b:
        raise UserError("a bootstrap interval needs two non-empty samples")
    if n_resamples < 1:
        raise UserError(f"n_resamples must be at least 1, got {n_resamples}")
    xa = np.asarray(a, dtype=float)
    xb = np.asarray(b, dtype=float)
    rng = np.random.default_rng(seed)
    if paired:
        if len(xa) != len(xb):
            raise UserError(f"paired samples must have the same length, got {len(xa)} and {len(xb)}")
        idx = rng.integers(0, len(xa), size=(n_resamples, len(xa)))
        diffs = (xb[idx] - xa[idx]).mean(axis=1)
    else:
        ia = rng.integers(0, len(xa), size=(n_resamples, len(xa)))
        ib = rng.integers(0, len(xb), size=(n_resamples, len(xb)))
        diffs = xb[ib].mean(axis=1) - xa[ia].mean(axis=1)
    tail = (1.0 - confidence) / 2
    lo, hi = np.quantile(diffs, [tail, 1.0 - tail])
    return (float(lo), float(hi))


def bootstrap_mean_interval(
    x: Sequence[float], n_resamples: int = 10000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval for mean(x)."""
    _check_confidence(confidence)
    if not x:
        raise UserError("a bootstrap interval needs a non-empty sample")
    if n_resamples < 1:
        raise UserError(f"n_resamples must be at least 1, got {n_resamples}")
    xs = np.asarray(x, dtype=float)
    rng = np.random.default_rng(seed)
    means = xs[rng.integers(0, len(xs), size=(n_resamples, len(xs)))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return (float(lo), float(hi))


class McNemarResult(BaseModel):
    """Exact McNemar test on paired outcomes (the same tasks under base and arm)."""

    n: int  # pairs
    b: int  # base succeeded, arm failed
    c: int  # arm succeeded, base failed
    p_value: float  # two-sided, exact
    base_rate: float | None
    arm_rate: float | None


def _binom_half_lower_tail(k: int, m: int) -> float:
    """P(X <= k) for X ~ Binomial(m, 1/2), exactly (integer sums, one rounding at the end)."""
    if k < 0:
        return 0.0
    return sum(math.comb(m, i) for i in range(min(k, m) + 1)) / 2**m


def _check_paired(base: Sequence[bool], arm: Sequence[bool]) -> None:
    if len(base) != len(arm):
        raise UserError(f"paired outcomes must cover the same tasks, got {len(base)} and {len(arm)}")


def mcnemar_exact(base: Sequence[bool], arm: Sequence[bool]) -> McNemarResult:
    """Exact McNemar test: only the discordant pairs carry information.

    b = tasks only the base solved, c = tasks only the arm solved. Under the null each
    discordant task is a fair coin, so p = min(1, 2 * P(X <= min(b, c))), X ~ Bin(b + c, 1/2);
    p = 1 when there are no discordant pairs.
    """
    _check_paired(base, arm)
    b = sum(1 for x, y in zip(base, arm, strict=True) if x and not y)
    c = sum(1 for x, y in zip(base, arm, strict=True) if y and not x)
    m = b + c
    p = 1.0 if m == 0 else min(1.0, 2.0 * _binom_half_lower_tail(min(b, c), m))
    n = len(base)
    return McNemarResult(
        n=n,
        b=b,
        c=c,
        p_value=p,
        base_rate=(sum(map(bool, base)) / n if n else None),
        arm_rate=(sum(map(bool, arm)) / n if n else None),
    )


def mcnemar_one_sided_worse(b: int, c: int) -> float:
    """One-sided exact p for "the arm is worse than the base": P(X >= b), X ~ Bin(b + c, 1/2)."""
    m = b + c
    if m == 0:
        return 1.0
    return 1.0 - _binom_half_lower_tail(b - 1, m)


def _n_required(p1: float, d: float, za: float, zb: float, paired: bool) -> float:
    p2 = p1 + d
    if paired:
        # Connor (1987): psi is the discordant-pair probability. With outcomes assumed
        # independent given their rates, psi = p1(1-p2) + p2(1-p1); psi - d^2 is then
        # p1(1-p1) + p2(1-p2) >= 0.
        psi = p1 * (1 - p2) + p2 * (1 - p1)
        return (za * math.sqrt(psi) + zb * math.sqrt(max(0.0, psi - d * d))) ** 2 / (d * d)
    # Two independent proportions, normal approximation without continuity correction (Fleiss).
    pbar = (p1 + p2) / 2
    return (za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))) ** 2 / (
        d * d
    )


def min_detectable_difference(
    n: int, p_base: float, alpha: float = 0.05, power: float = 0.8, paired: bool = True
) -> float:
    """Smallest change in success rate from `p_base` that a two-sided test at level `alpha`
    detects with probability `power` on `n` tasks (per arm when unpaired).

    Approximations: unpaired uses the normal two-proportion formula without continuity
    correction (Fleiss); paired uses Connor's (1987) sample-size formula for McNemar's test
    with the discordance psi taken as if the two arms' outcomes were independent given their
    rates. Real arms are positively correlated (easy tasks stay easy), which lowers psi, so the
    paired figure is conservative. The change is taken towards the side of p_base with more
    room (the formulas are symmetric under p -> 1 - p). Returns `math.inf` when even the
    largest possible change is not detectable.
    """
    if n < 1:
        raise UserError(f"n must be at least 1, got {n}")
    if not 0.0 <= p_base <= 1.0:
        raise UserError(f"p_base must be a rate in [0, 1], got {p_base}")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise UserError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    p1 = p_base if p_base <= 0.5 else 1.0 - p_base
    za = _z(1 - alpha / 2)
    zb = _z(power)
    room = 1.0 - p1

    def detectable(d: float) -> bool:
        return _n_required(p1, d, za, zb, paired) <= n

    # The required n is not monotone in d everywhere near the boundary, so scan coarsely for
    # the first detectable step, then refine between it and the step before.
    steps = 1000
    prev = 0.0
    for i in range(1, steps + 1):
        d = room * i / steps
        if detectable(d):
            lo, hi = prev, d
            for _ in range(60):
                mid = (lo + hi) / 2
                if mid > 0 and detectable(mid):
                    hi = mid
                else:
                    lo = mid
            return hi
        prev = d
    return math.inf
