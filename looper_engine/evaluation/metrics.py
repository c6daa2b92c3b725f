"""Continual-learning and episode metrics.

The CL metrics follow SWE-Bench-CL. They read an accuracy matrix `a` with one row per
learning stage and one column per chunk (a chunk is a task or a group of tasks):
`a[i][j]` is the success rate on chunk j after learning through chunk i. Indices here are
0-based, so with N chunks the final stage is row N-1; the docstrings write the formulas in the
same 0-based form. Only the lower triangle and the first superdiagonal are ever needed
(`a[i][j]` for j <= i+1): entries further right may be None (not measured). `z[j]` is the
base model's zero-shot success rate on chunk j.

Every rate an experiment reports comes with its n and an interval, because 4/15 against 3/15
is not a result.
"""

from __future__ import annotations

import numbers
import statistics
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from looper_engine.errors import UserError
from looper_engine.evaluation.stats import (
    Outcomes,
    Rate,
    bootstrap_mean_interval,
    paired_comparison,
    rate,
)
from looper_engine.events import EpisodeFinished

Matrix = Sequence[Sequence[float | None]]


# --- the accuracy matrix --------------------------------------------------------------------


def _check_matrix(a: Matrix) -> int:
    """Validate shape and the entries the metrics read; return N."""
    if not a:
        raise UserError("the accuracy matrix is empty")
    n = len(a)
    for i, row in enumerate(a):
        if len(row) != n:
            raise UserError(f"the accuracy matrix must be {n}x{n}: row {i} has {len(row)} entries")
        for j, v in enumerate(row):
            if v is None:
                if j <= i + 1:
                    raise UserError(
                        f"the accuracy matrix has no value at a[{i}][{j}], which the metrics need"
                    )
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v <= 1.0:
                raise UserError(f"a[{i}][{j}] must be a rate in [0, 1], got {v!r}")
    return n


def _get(a: Matrix, i: int, j: int) -> float:
    v = a[i][j]
    assert v is not None  # _check_matrix guarantees it for j <= i + 1
    return float(v)


def _needs_two(n: int, what: str) -> None:
    if n < 2:
        raise UserError(f"{what} needs at least 2 chunks, got {n}")


def _check_zero_shot(z: Sequence[float], n: int) -> None:
    if len(z) != n:
        raise UserError(f"zero-shot rates must have one entry per chunk: {n} chunks, {len(z)} rates")
    for j, v in enumerate(z):
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0.0 <= v <= 1.0:
            raise UserError(f"z[{j}] must be a rate in [0, 1], got {v!r}")


def acc(a: Matrix) -> float:
    """ACC = (1/N) * sum_j a[N-1][j]: mean final success over all chunks."""
    n = _check_matrix(a)
    return sum(_get(a, n - 1, j) for j in range(n)) / n


def forgetting(a: Matrix) -> float:
    """F = (1/(N-1)) * sum_{j<N-1} ( max_{j<=k<N-1} a[k][j] - a[N-1][j] ).

    The SWE-Bench-CL paper prints the max over 1 <= k <= j, but a[k][j] is only measured once
    chunk j has been learned (k >= j), so this follows Chaudhry et al. (2018): the best score
    chunk j ever had before the final stage, minus its final score.
    """
    n = _check_matrix(a)
    _needs_two(n, "forgetting")
    last = n - 1
    total = 0.0
    for j in range(last):
        best = max(_get(a, k, j) for k in range(j, last))
        total += best - _get(a, last, j)
    return total / (n - 1)


def forward_transfer(a: Matrix, z: Sequence[float]) -> float:
    """FT = (1/(N-1)) * sum_{i<N-1} ( a[i][i+1] - z[i+1] ): how much learning through chunk i
    helps on the next, not yet learned chunk, against the base model's zero-shot score."""
    n = _check_matrix(a)
    _check_zero_shot(z, n)
    _needs_two(n, "forward transfer")
    return sum(_get(a, i, i + 1) - float(z[i + 1]) for i in range(n - 1)) / (n - 1)


def backward_transfer(a: Matrix) -> float:
    """BWT = (1/(N-1)) * sum_{i<N-1} ( a[N-1][i] - a[i][i] ): final score on each earlier chunk
    minus its score right after it was learned (negative means forgetting)."""
    n = _check_matrix(a)
    _needs_two(n, "backward transfer")
    return sum(_get(a, n - 1, i) - _get(a, i, i) for i in range(n - 1)) / (n - 1)


def aulc(a: Matrix) -> float:
    """AULC = (1/N) * sum_i (1/(i+1)) * sum_{k<=i} a[k][k]: area under the learning curve of
    just-learned scores, each point the running mean of the diagonal."""
    n = _check_matrix(a)
    running = 0.0
    total = 0.0
    for i in range(n):
        running += _get(a, i, i)
        total += running / (i + 1)
    return total / n


def cl_plasticity(a: Matrix) -> float:
    """CL-P = (1/N) * sum_i a[i][i]: how well each chunk is done right after learning it."""
    n = _check_matrix(a)
    return sum(_get(a, i, i) for i in range(n)) / n


def cl_stability(a: Matrix) -> float:
    """CL-S = 1 - F."""
    return 1.0 - forgetting(a)


def cl_f_beta(a: Matrix, beta: float = 1.0) -> float:
    """CL-F_beta = (1 + b^2) P S / (b^2 P + S), the weighted harmonic mean of plasticity and
    stability (beta > 1 weighs stability more). 0 when both are 0."""
    if beta <= 0:
        raise UserError(f"beta must be positive, got {beta}")
    p = cl_plasticity(a)
    s = cl_stability(a)
    b2 = beta * beta
    denom = b2 * p + s
    return 0.0 if denom == 0 else (1 + b2) * p * s / denom


def summarize_matrix(a: Matrix, z: Sequence[float] | None = None, beta: float = 1.0) -> dict[str, Any]:
    """All CL metrics of one accuracy matrix. Metrics that need two chunks (F, FT, BWT, CL-S,
    CL-F) are None for a single chunk; FT is None without zero-shot rates."""
    n = _check_matrix(a)
    if z is not None:
        _check_zero_shot(z, n)
    two = n >= 2
    return {
        "n_chunks": n,
        "acc": acc(a),
        "forgetting": forgetting(a) if two else None,
        "forward_transfer": forward_transfer(a, z) if two and z is not None else None,
        "backward_transfer": backward_transfer(a) if two else None,
        "aulc": aulc(a),
        "cl_plasticity": cl_plasticity(a),
        "cl_stability": cl_stability(a) if two else None,
        "cl_f_beta": cl_f_beta(a, beta) if two else None,
        "beta": beta,
    }


def tool_use_efficiency(times_success: Sequence[float], times_all: Sequence[float]) -> float | None:
    """TUE = median(time | success) / median(time | all). Below 1: successful episodes are
    faster than typical. None when there are no successes (nothing to measure), or the median
    of all times is 0."""
    if not times_all:
        raise UserError("tool-use efficiency needs the times of all episodes, got none")
    if len(times_success) > len(times_all):
        raise UserError("there are more successful episode times than episode times")
    if not times_success:
        return None
    med_all = statistics.median(times_all)
    if med_all == 0:
        return None
    return statistics.median(times_success) / med_all


# --- episodes -------------------------------------------------------------------------------


class EpisodeOutcome(BaseModel):
    """What the episode metrics read of one finished episode (an EpisodeFinished event plus
    the count of executed tool calls)."""

    resolved: bool
    steps: int = Field(ge=0)
    tokens: int = Field(ge=0)  # prompt + completion over the whole episode
    tool_calls: int = Field(ge=0)
    loop_alarms: int = Field(0, ge=0)
    duration_s: float = Field(0.0, ge=0)
    task_id: str = ""
    error_signature: str = ""

    @classmethod
    def from_event(cls, finished: EpisodeFinished, tool_calls: int, task_id: str = "") -> EpisodeOutcome:
        """From a stored episode's EpisodeFinished and its count of ToolResult events."""
        return cls(
            resolved=finished.resolved,
            steps=finished.steps,
            tokens=finished.prompt_tokens + finished.completion_tokens,
            tool_calls=tool_calls,
            loop_alarms=finished.loop_alarms,
            duration_s=finished.duration_s,
            task_id=task_id,
            error_signature=finished.error_signature,
        )


class Measure(BaseModel):
    """A per-episode quantity summarised over n episodes: mean, median and a 95% bootstrap
    interval of the mean (None when n < 2)."""

    n: int
    mean: float | None
    median: float | None
    lo: float | None = None
    hi: float | None = None

    def __str__(self) -> str:
        if self.mean is None:
            return "n=0"
        ci = f" [{self.lo:.1f}, {self.hi:.1f}]" if self.lo is not None and self.hi is not None else ""
        return f"{self.mean:.1f}{ci} (median {self.median:.1f}, n={self.n})"


def _measure(values: Sequence[float], seed: int = 0) -> Measure:
    if not values:
        return Measure(n=0, mean=None, median=None)
    mean = statistics.fmean(values)
    lo = hi = None
    if len(values) >= 2:
        lo, hi = bootstrap_mean_interval(values, n_resamples=2000, seed=seed)
    return Measure(n=len(values), mean=mean, median=float(statistics.median(values)), lo=lo, hi=hi)


def resolve_rate(episodes: Sequence[EpisodeOutcome]) -> Rate:
    """Resolved episodes / all episodes, with a Wilson interval."""
    return rate(sum(1 for e in episodes if e.resolved), len(episodes))


def steps_to_resolve(episodes: Sequence[EpisodeOutcome]) -> Measure:
    """Steps taken by resolved episodes (failures are not counted: they say nothing about the
    cost of a resolution, and the resolve rate already counts them)."""
    return _measure([e.steps for e in episodes if e.resolved])


def tokens_to_resolve(episodes: Sequence[EpisodeOutcome]) -> Measure:
    """Tokens (prompt + completion) spent by resolved episodes."""
    return _measure([e.tokens for e in episodes if e.resolved])


def tool_calls_per_resolve(episodes: Sequence[EpisodeOutcome]) -> Measure:
    """Executed tool calls in resolved episodes."""
    return _measure([e.tool_calls for e in episodes if e.resolved])


def loop_alarms_per_episode(episodes: Sequence[EpisodeOutcome]) -> Measure:
    """Loop alarms per episode, over all episodes."""
    return _measure([e.loop_alarms for e in episodes])


def repeat_error_rate(attempts: Sequence[tuple[Hashable, int, bool, str]]) -> Rate:
    """Share of tasks that fail again with the same error signature as their previous failure.

    `attempts` are (task_id, epoch, resolved, error_signature). Per task, attempts are taken in
    epoch order. A task counts (in n) once it has a failed attempt followed by a later attempt;
    it counts as a repeat (in k) if any later attempt fails with the signature of the most
    recent earlier failure (resolved attempts in between do not reset it). An empty signature
    is unknown and never matches.
    """
    by_task: dict[Hashable, list[tuple[int, int, bool, str]]] = defaultdict(list)
    for order, item in enumerate(attempts):
        if len(item) != 4:
            raise UserError("each attempt must be (task_id, epoch, resolved, error_signature)")
        task_id, epoch, resolved, signature = item
        by_task[task_id].append((epoch, order, bool(resolved), signature or ""))
    k = n = 0
    for runs in by_task.values():
        runs.sort()
        last_failure: str | None = None
        eligible = repeated = False
        for _epoch, _order, resolved, signature in runs:
            if last_failure is not None:
                eligible = True
                if not resolved and signature and signature == last_failure:
                    repeated = True
            if not resolved:
                last_failure = signature
        n += eligible
        k += repeated
    return rate(k, n)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)
    (Chen et al. 2021), computed as a product to stay exact in floating point."""
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise UserError(f"pass@k needs n >= 1, 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


# --- adoption gate --------------------------------------------------------------------------


class GateVerdict(BaseModel):
    """Whether a candidate (a new adapter, prompt, or framework setting) may replace the base."""

    adopted: bool
    reason: str
    b: int  # frozen tasks the candidate does worse on (lost)
    c: int  # frozen tasks the candidate does better on (gained)
    p_value: float  # one-sided exact sign-flip test (McNemar with one outcome per task), H1: candidate worse
    n: int
    base_rate: float | None
    candidate_rate: float | None
    #: False when the frozen set is too small for any outcome to reach p < alpha.
    testable: bool = True
    smallest_p: float = 0.0


def smallest_gate_p(n_tasks: int) -> float:
    """The smallest one-sided p the gate's exact test can reach on n frozen tasks (all lost)."""
    return 0.5**n_tasks


def smallest_testable_frozen_set(alpha: float) -> int:
    """The fewest frozen tasks on which the gate can reject at `alpha` (0.5**n < alpha)."""
    n = 1
    while smallest_gate_p(n) >= alpha:
        n += 1
    return n


def regression_gate(base: Outcomes, candidate: Outcomes, alpha: float = 0.05) -> GateVerdict:
    """Adopt the candidate unless it is significantly worse than the base on the frozen set.

    `base` and `candidate` map each frozen task to its outcomes. The test is `paired_comparison`'s
    exact sign-flip test, one-sided (p_worse); with one outcome per task it is McNemar's exact
    test, p = P(X >= b), X ~ Bin(b + c, 1/2), b = tasks lost, c = tasks gained. One-sided
    because the gate only guards against regressions; a candidate that is merely not better is
    adopted (the experiment decides whether it helps, the gate only stops damage). A frozen set
    so small that even losing every task cannot reach p < alpha is adopted *untested*, and the
    verdict says so rather than calling it a pass.
    """
    if not 0.0 < alpha < 1.0:
        raise UserError(f"alpha must be in (0, 1), got {alpha}")
    if not base:
        raise UserError("the regression gate needs at least one frozen task")
    if set(base) != set(candidate):
        raise UserError(
            f"the gate's outcomes must cover the same tasks, got {len(base)} and {len(candidate)}"
        )
    res = paired_comparison(base, candidate, confidence=1.0 - alpha, detectable=False)
    p = res.p_worse
    lost, gained = res.worse, res.better
    floor = smallest_gate_p(res.n_tasks)
    testable = floor < alpha
    worse = lost > gained and p < alpha
    if worse:
        reason = (
            f"rejected: worse on the frozen set ({lost} tasks lost, {gained} gained, "
            f"one-sided exact p={p:.3g} < {alpha})"
        )
    elif not testable:
        reason = (
            f"adopted untested: {res.n_tasks} frozen tasks cannot reach p < {alpha} "
            f"(the smallest possible p is {floor:.3g}; {lost} lost, {gained} gained)"
        )
    elif lost + gained == 0:
        reason = f"adopted: same outcome on all {res.n_tasks} frozen tasks"
    else:
        reason = f"adopted: no significant regression ({lost} lost, {gained} gained, p={p:.3g} >= {alpha})"
    return GateVerdict(
        adopted=not worse,
        reason=reason,
        b=lost,
        c=gained,
        p_value=p,
        n=res.n_tasks,
        base_rate=res.base_rate,
        candidate_rate=res.arm_rate,
        testable=testable,
        smallest_p=floor,
    )


__all__ = [
    "EpisodeOutcome",
    "GateVerdict",
    "Matrix",
    "Measure",
    "acc",
    "aulc",
    "backward_transfer",
    "cl_f_beta",
    "cl_plasticity",
    "cl_stability",
    "forgetting",
    "forward_transfer",
    "loop_alarms_per_episode",
    "pass_at_k",
    "regression_gate",
    "smallest_gate_p",
    "smallest_testable_frozen_set",
    "repeat_error_rate",
    "resolve_rate",
    "steps_to_resolve",
    "summarize_matrix",
    "tokens_to_resolve",
    "tool_calls_per_resolve",
    "tool_use_efficiency",
]
