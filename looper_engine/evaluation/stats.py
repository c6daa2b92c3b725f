"""Small-sample statistics for comparing agents, with the task as the unit.

An experiment runs each task under several seeds. The seeds of one task are repeated measures
of that task, not new tasks: what generalises is the population of tasks, so every interval,
test and power figure here is computed on per-task summaries (a task's mean over its seeds).
Counting (task, seed) pairs as independent would claim n = tasks x seeds and give p < 0.05
several times too often when nothing differs.

- `task_rate`: a success rate over tasks, with an interval that accounts for the seeds.
- `paired_comparison`: base against arm on the same tasks; the one place a paired p-value is
  computed (results, report, results screen, CLI and the regression gate all call it).
- `min_detectable_effect`: the smallest difference a comparison of that size detects
  (simulated, see `power`).

Everything is deterministic and needs only the standard library and numpy, so experiment
reports can be reproduced from the stored outcomes alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
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




# --- Student's t, exactly, for integer degrees of freedom --------------------------------------


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with integer `df`, by the closed-form finite series
    (Abramowitz & Stegun 26.7.3-4), exact up to rounding."""
    if df < 1:
        raise UserError(f"degrees of freedom must be at least 1, got {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    s = math.sin(theta)
    if df % 2 == 1:
        total = term = 1.0
        for i in range(1, (df - 1) // 2):
            term *= c2 * (2 * i) / (2 * i + 1)
            total += term
        a = 2.0 / math.pi * (theta + (s * math.cos(theta) * total if df > 1 else 0.0))
    else:
        total = term = 1.0
        for i in range(1, df // 2):
            term *= c2 * (2 * i - 1) / (2 * i)
            total += term
        a = s * total
    return 0.5 + math.copysign(a / 2, t)


@lru_cache(maxsize=512)
def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with integer `df` (bisection on `t_cdf`)."""
    if not 0.0 < p < 1.0:
        raise UserError(f"a quantile needs 0 < p < 1, got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return (lo + hi) / 2


# --- per-task outcomes -------------------------------------------------------------------------

Outcomes = Mapping[str, Sequence[bool]]


def _check_outcomes(outcomes: Outcomes, what: str) -> None:
    for task, seeds in outcomes.items():
        if len(seeds) == 0:
            raise UserError(f"{what}: task {task!r} has no outcome")


def seed_counts(outcomes: Outcomes, tasks: Sequence[str] | None = None) -> list[int]:
    """The distinct numbers of seeds per task, ascending (one entry when every task has the same)."""
    keys = outcomes.keys() if tasks is None else tasks
    return sorted({len(outcomes[t]) for t in keys})


def design_label(n_tasks: int, seeds: Sequence[int]) -> str:
    """How many tasks and seeds a figure rests on: "57 tasks x 3 seeds", "6 tasks x 1-3 seeds"."""
    tasks = f"{n_tasks} task" + ("" if n_tasks == 1 else "s")
    if not seeds:
        return tasks
    lo, hi = min(seeds), max(seeds)
    k = str(lo) if lo == hi else f"{lo}-{hi}"
    return f"{tasks} x {k} seed" + ("" if k == "1" else "s")


class TaskRate(BaseModel):
    """A success rate over tasks: the mean over tasks of each task's share of resolved seeds,
    with an interval whose unit is the task. `k` of `n` are the outcomes behind it."""

    rate: float | None
    lo: float
    hi: float
    n_tasks: int = Field(ge=0)
    seeds: list[int] = Field(default_factory=list, description="distinct seed counts per task")
    k: int = Field(0, ge=0)
    n: int = Field(0, ge=0)
    method: str = ""

    @property
    def design(self) -> str:
        return design_label(self.n_tasks, self.seeds)

    def __str__(self) -> str:
        if self.rate is None:
            return "—"
        return f"{self.rate:.0%} [{self.lo:.0%}, {self.hi:.0%}] ({self.design})"


def task_rate(outcomes: Outcomes, confidence: float = 0.95) -> TaskRate:
    """The rate over tasks with a task-level interval.

    One outcome per task: the Wilson interval of k/n (the tasks are the trials). With seeds:
    the Wilson interval at the effective number of tasks, n_eff = r(1-r) / Var(mean), where
    Var(mean) is the sample variance of the per-task rates over the number of tasks (Korn &
    Graubard's effective sample size, with their correction for a variance estimated from
    n_tasks - 1 degrees of freedom). n_eff is held between the number of tasks (tasks whose
    seeds always agree carry one outcome's information each) and the number of outcomes (seeds
    that vary like independent tasks); at a rate of 0 or 1 it is the number of tasks, so
    the interval does not collapse to a point. Its coverage is checked in bench/stats_calibration.py.
    """
    _check_confidence(confidence)
    _check_outcomes(outcomes, "a rate")
    n_tasks = len(outcomes)
    seeds = seed_counts(outcomes)
    k = sum(sum(map(bool, v)) for v in outcomes.values())
    n = sum(len(v) for v in outcomes.values())
    if n_tasks == 0:
        return TaskRate(rate=None, lo=0.0, hi=1.0, n_tasks=0, seeds=[], k=0, n=0, method="none")
    means = np.array([sum(map(bool, v)) / len(v) for v in outcomes.values()], dtype=float)
    r = float(means.mean())
    if seeds == [1]:
        lo, hi = wilson_interval(k, n, confidence)
        return TaskRate(rate=r, lo=lo, hi=hi, n_tasks=n_tasks, seeds=seeds, k=k, n=n, method="wilson")
    var_mean = float(means.var(ddof=1)) / n_tasks if n_tasks > 1 else 0.0
    if var_mean > 0 and 0.0 < r < 1.0:
        # Korn & Graubard's degrees-of-freedom correction: the variance is estimated from
        # n_tasks - 1 degrees of freedom, so n_eff shrinks by (z / t)^2.
        shrink = (_z(0.5 + confidence / 2) / t_quantile(0.5 + confidence / 2, n_tasks - 1)) ** 2
        n_eff = min(float(n), max(float(n_tasks), shrink * r * (1 - r) / var_mean))
    else:
        n_eff = float(n_tasks)
    lo, hi = _wilson_float(r, n_eff, confidence)
    return TaskRate(rate=r, lo=lo, hi=hi, n_tasks=n_tasks, seeds=seeds, k=k, n=n, method="wilson-effective-n")


def _wilson_float(p: float, n: float, confidence: float) -> tuple[float, float]:
    z = _z(0.5 + confidence / 2)
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(max(0.0, p * (1.0 - p)) / n + z2 / (4.0 * n * n))
    lo = 0.0 if p <= 0.0 else max(0.0, center - half)
    hi = 1.0 if p >= 1.0 else min(1.0, center + half)
    return (lo, hi)


# --- the exact sign-flip test --------------------------------------------------------------------


def sign_flip_distribution(abs_diffs: Sequence[int]) -> tuple[int, np.ndarray]:
    """The null distribution of T = sum(s_i * d_i) with independent fair signs s_i = ±1, for
    integer magnitudes d_i >= 0 (their order does not matter).

    Returns (offset, pmf): pmf[x] = P(T = x - offset). Tasks with the same magnitude v add
    v * (2X - c), X ~ Binomial(c, 1/2), so the distribution is one convolution per distinct
    magnitude, computed exactly (binomial coefficients over 2**c as correctly rounded floats;
    a convolution only adds positive terms, so even a tail of 2**-60 keeps its relative precision).
    """
    groups: dict[int, int] = {}
    for d in abs_diffs:
        if d < 0:
            raise UserError(f"sign-flip magnitudes must be >= 0, got {d}")
        if d:
            groups[d] = groups.get(d, 0) + 1
    return _grouped_distribution(tuple(sorted(groups.items())))


@lru_cache(maxsize=8192)
def _grouped_distribution(groups: tuple[tuple[int, int], ...]) -> tuple[int, np.ndarray]:
    """`sign_flip_distribution` of (magnitude, count) groups, with its cumulative sums:
    the pmf and P(T <= x) share one array layout."""
    pmf = np.ones(1)
    for v, c in groups:
        part = np.zeros(2 * v * c + 1)
        denom = 2**c
        for x in range(c + 1):
            part[2 * v * x] = math.comb(c, x) / denom
        pmf = np.convolve(pmf, part)
    return sum(v * c for v, c in groups), pmf


@lru_cache(maxsize=8192)
def _tail_sums(groups: tuple[tuple[int, int], ...]) -> tuple[int, np.ndarray, np.ndarray]:
    """(offset, P(T <= x - offset), P(T >= x - offset)), each tail summed on its own."""
    offset, pmf = _grouped_distribution(groups)
    return offset, np.cumsum(pmf), np.cumsum(pmf[::-1])[::-1]


def sign_flip_pvalues(diffs: np.ndarray) -> np.ndarray:
    """Two-sided exact sign-flip p of every row of an integer array (simulated experiments x
    tasks) at once: rows with the same magnitudes share one null distribution."""
    diffs = np.asarray(diffs, dtype=np.int64)
    mags = np.abs(diffs)
    t = np.abs(diffs.sum(axis=1))
    top = int(mags.max()) if mags.size else 0
    counts = np.stack([(mags == v).sum(axis=1) for v in range(1, top + 1)], axis=1) if top else \
        np.zeros((len(diffs), 0), dtype=np.int64)
    keys, inverse = np.unique(counts, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    out = np.ones(len(diffs))
    for g, key in enumerate(keys):
        rows = np.flatnonzero(inverse == g)
        groups = tuple((v + 1, int(c)) for v, c in enumerate(key) if c)
        offset, lower, upper = _tail_sums(groups)
        a = t[rows]
        nz = a > 0
        if not nz.any():
            continue
        idx = rows[nz]
        aa = a[nz]
        out[idx] = np.minimum(1.0, lower[offset - aa] + upper[offset + aa])
    return out


def sign_flip_tails(diffs: Sequence[int]) -> tuple[float, float, float]:
    """Exact sign-flip test of "the per-task differences are symmetric about 0" on integer
    differences: (two-sided p, P(T <= t), P(T >= t)) for the observed sum t. Each tail is
    summed on its own (never 1 minus the other), so an extreme table keeps its true p."""
    t = int(sum(diffs))
    offset, pmf = sign_flip_distribution([abs(int(d)) for d in diffs])
    idx = t + offset
    lower = float(pmf[: idx + 1].sum())
    upper = float(pmf[idx:].sum())
    a = abs(t)
    if a == 0:
        two = 1.0
    else:
        two = float(pmf[: offset - a + 1].sum() + pmf[offset + a :].sum())
    return min(1.0, two), min(1.0, lower), min(1.0, upper)


# --- paired comparison -----------------------------------------------------------------------------


class PairedComparison(BaseModel):
    """Base against arm on the tasks both measured; every figure is over tasks.

    `diff` = arm_rate - base_rate = the mean per-task difference; `p_value` is two-sided and
    `p_worse` one-sided ("the arm is worse"), both from the exact sign-flip test;
    `min_detectable` is the smallest increase, and `min_detectable_worse` the smallest
    decrease, that a comparison of this many tasks and seeds detects with probability `power`
    at the two-sided level 1 - `confidence` (None where none is detectable).
    """

    n_tasks: int
    base_seeds: list[int] = Field(default_factory=list)
    arm_seeds: list[int] = Field(default_factory=list)
    base_rate: float | None
    arm_rate: float | None
    diff: float
    diff_lo: float
    diff_hi: float
    p_value: float
    p_worse: float
    p_better: float
    min_detectable: float | None
    min_detectable_worse: float | None = None
    #: tasks the arm did better on (higher per-task rate), worse on, and the same.
    better: int = 0
    worse: int = 0
    same: int = 0
    confidence: float = 0.95
    power: float = 0.8
    test: str = "exact sign-flip test on per-task differences"
    interval: str = "t-interval on per-task differences"

    @property
    def design(self) -> str:
        """"24 tasks x 3 seeds", with the base's seeds named when they differ from the arm's."""
        label = design_label(self.n_tasks, self.arm_seeds)
        if self.base_seeds and self.base_seeds != self.arm_seeds:
            label += f" (base {design_label(self.n_tasks, self.base_seeds).split(' x ')[-1]})"
        return label


def _lattice(pairs: Sequence[tuple[int, int]]) -> int:
    """The common denominator of every per-task difference a/k_arm - b/k_base."""
    out = 1
    for kb, ka in pairs:
        out = math.lcm(out, kb * ka)
    return out


def paired_comparison(
    base: Outcomes, arm: Outcomes, *, confidence: float = 0.95, power: float = 0.8, detectable: bool = True
) -> PairedComparison:
    """Base against arm, paired by task, with the task as the unit.

    `base` and `arm` map a task id to the outcomes of its seeds; the seed counts may differ
    between the arms and between tasks. A task counts when both have at least one outcome.
    Each task gives one difference d_i = mean(arm seeds) - mean(base seeds).

    The test is the exact sign-flip (permutation) test of the d_i: under "no difference" each
    task's difference is as likely to have either sign, so the 2**n sign assignments are equally
    likely. The d_i are multiples of 1/(k_base * k_arm), so the null distribution of their sum is
    a small convolution computed exactly, not sampled: a Monte Carlo p cannot go below
    1/resamples, the exact one reports 30 tasks all lost as 2**-30 (about 1e-9). With one seed
    per task the d_i are -1, 0, 1 and the test is McNemar's exact test: only discordant tasks
    count, each a fair coin.

    The interval is a t-interval on the d_i (n_tasks - 1 degrees of freedom) whose sum of
    squares gets half a discordant task's worth (0.5) added, clipped to [-1, 1]. Chosen by
    simulation (bench/stats_calibration.py; Beta task probabilities, deterministic and
    stochastic bases, 1 and 3 seeds, 4 to 57 tasks): the percentile bootstrap over tasks
    covers 65-93% where 95% is claimed (it is too narrow at small n), the plain t-interval
    collapses to a point when every task agrees (83% at 4 tasks), and the adjusted t-interval
    covers at least 95% at every size while widening large-n intervals by under 5%.

    `detectable=False` leaves min_detectable out (None), for callers that only test (the gate).
    """
    _check_confidence(confidence)
    if not 0.0 < power < 1.0:
        raise UserError(f"power must be in (0, 1), got {power}")
    _check_outcomes(base, "the base")
    _check_outcomes(arm, "the arm")
    tasks = sorted(set(base) & set(arm))
    n = len(tasks)
    if n == 0:
        raise UserError("a paired comparison needs at least one task measured by both")
    kb = [len(base[t]) for t in tasks]
    ka = [len(arm[t]) for t in tasks]
    sb = [sum(map(bool, base[t])) for t in tasks]
    sa = [sum(map(bool, arm[t])) for t in tasks]
    lattice = _lattice(list(zip(kb, ka, strict=True)))
    ints = [(a * (lattice // k_a)) - (b * (lattice // k_b)) for a, b, k_a, k_b in zip(sa, sb, ka, kb, strict=True)]
    p_two, p_lower, p_upper = sign_flip_tails(ints)
    d = np.array(ints, dtype=float) / lattice
    base_rate = float(np.mean([b / k for b, k in zip(sb, kb, strict=True)]))
    arm_rate = float(np.mean([a / k for a, k in zip(sa, ka, strict=True)]))
    diff = float(d.mean())
    lo, hi = _diff_interval(d, confidence)
    alpha = 1.0 - confidence
    # The design behind the figure: the usual seed count of each side, and whether a side's
    # seeds always agreed (a deterministic model gives every seed the same outcome).
    k_base, k_arm = _usual(kb), _usual(ka)
    repeats_b = k_base > 1 and all(b in (0, k) for b, k in zip(sb, kb, strict=True))
    repeats_a = k_arm > 1 and all(a in (0, k) for a, k in zip(sa, ka, strict=True))
    design = dict(base_repeats=repeats_b, arm_repeats=repeats_a, alpha=alpha, power=power)
    up = min_detectable_effect(n, k_base, k_arm, **design) if detectable else None
    down = min_detectable_effect(n, k_base, k_arm, worse=True, **design) if detectable else None
    return PairedComparison(
        n_tasks=n,
        base_seeds=sorted(set(kb)),
        arm_seeds=sorted(set(ka)),
        base_rate=base_rate,
        arm_rate=arm_rate,
        diff=diff,
        diff_lo=lo,
        diff_hi=hi,
        p_value=p_two,
        p_worse=p_lower,
        p_better=p_upper,
        min_detectable=up,
        min_detectable_worse=down,
        better=sum(1 for x in ints if x > 0),
        worse=sum(1 for x in ints if x < 0),
        same=sum(1 for x in ints if x == 0),
        confidence=confidence,
        power=power,
    )


def _usual(counts: Sequence[int]) -> int:
    """The most common seed count (the larger on a tie)."""
    tally: dict[int, int] = {}
    for k in counts:
        tally[k] = tally.get(k, 0) + 1
    return max(tally, key=lambda k: (tally[k], k))


#: What the interval's sum of squares gets added: half a discordant task (see paired_comparison).
PSEUDO_SS = 0.5


def _diff_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        return (-1.0, 1.0)
    ss = float(((d - mean) ** 2).sum()) + PSEUDO_SS
    se = math.sqrt(ss / n / n)  # ss / (n - 1 + 1) is the variance, over n for the mean's
    half = t_quantile(0.5 + confidence / 2, n - 1) * se
    return (max(-1.0, mean - half), min(1.0, mean + half))


def min_detectable_effect(
    n_tasks: int,
    base_seeds: int = 1,
    arm_seeds: int = 1,
    *,
    base_repeats: bool = False,
    arm_repeats: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    worse: bool = False,
) -> float | None:
    """The smallest mean per-task difference (an increase, or a decrease with `worse`) that the
    two-sided exact sign-flip test at `alpha` detects with probability `power` on `n_tasks`
    tasks with these seeds; None when no difference is. A side "repeats" when all its seeds give
    the same outcome (a model at temperature 0 that learns nothing).

    Found by simulating the design (`power.simulated_min_detectable`: task probabilities from
    Beta(0.6, 0.9), the exact test itself, bisection on the effect), not by a normal formula:
    Connor's formula, even with the task as the unit, promised 80% where the exact test on
    discrete per-task differences has 60-73% (bench/stats_calibration.py). The exact test cannot
    go below 2**(1 - n) two-sided, so below about 6 tasks nothing is detectable at 0.05.
    """
    if n_tasks < 1:
        raise UserError(f"n_tasks must be at least 1, got {n_tasks}")
    if not 0.0 < alpha < 1.0 or not 0.0 < power < 1.0:
        raise UserError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    if n_tasks < 2 or 2.0 ** (1 - n_tasks) > alpha:
        return None
    from looper_engine.evaluation.power import simulated_min_detectable

    return simulated_min_detectable(
        n_tasks, base_seeds, arm_seeds, base_repeats, arm_repeats, alpha=alpha, power=power, worse=worse
    )
