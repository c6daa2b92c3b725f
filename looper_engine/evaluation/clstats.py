"""Intervals for the continual-learning metrics, and the simulation that decides whether an
interval can be trusted at an experiment's size.

The CL metrics (ACC, forgetting, transfer, AULC, CL-F1 ...) are functions of the whole accuracy
matrix, so their uncertainty comes from the tasks behind each chunk: the unit is again the task,
resampled (or left out) within its chunk, each keeping every measurement it has (every stage,
every seed, its zero-shot score). Three methods are computed from the same per-task scores:

- `bootstrap`: the percentile stratified cluster bootstrap (tasks resampled within chunks).
  With 4 tasks a chunk it is too narrow: a resample of m tasks varies (m-1)/m as much as a new
  sample would, and the percentile interval inherits it.
- `rescaled-bootstrap`: the same resamples, spread by sqrt(m/(m-1)) around the estimate
  (Rao & Wu's rescaling for stratified samples).
- `jackknife`: the stratified delete-one-task jackknife variance, with Student's t on
  (tasks - chunks) degrees of freedom.

No method is right at every size: forgetting takes a maximum over stages and is biased upward
at few tasks, and CL-F1 is a ratio. So the method is chosen per design and per metric by
`cl_coverage`: it simulates the experiment's own shape (its chunk sizes and seeds) under a set
of learning scenarios with Beta-distributed task difficulty, and keeps, per metric, the
narrowest method whose worst coverage over the scenarios is at least `MIN_COVERAGE`. Where none
reaches it the metric gets no interval, and the report says "too few tasks per chunk for an
interval" instead of printing a misleading one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from pydantic import BaseModel

from looper_engine.evaluation.stats import t_quantile

#: The CL metrics with an interval, in report order.
CL_KEYS: tuple[str, ...] = (
    "acc",
    "forgetting",
    "forward_transfer",
    "backward_transfer",
    "aulc",
    "cl_plasticity",
    "cl_stability",
    "cl_f_beta",
)
METHODS: tuple[str, ...] = ("bootstrap", "rescaled-bootstrap", "jackknife")
#: An interval is shown only where simulation finds it covers at least this often at 95%.
MIN_COVERAGE = 0.93
#: The largest array a coverage simulation builds at once (elements), to bound its memory.
BATCH_ELEMENTS = 2_000_000
#: Task difficulty in the simulations: success probabilities ~ Beta(0.6, 0.9), mean 0.4, most
#: tasks either easy or hard, as agent tasks are.
TASK_PRIOR = (0.6, 0.9)


def summarize_batch(a: np.ndarray, z: np.ndarray, beta: float = 1.0) -> dict[str, np.ndarray]:
    """Every CL metric of a batch of accuracy matrices at once.

    `a` has shape (..., N, N) with NaN where a cell was not measured (only j > i + 1), `z`
    shape (..., N). The formulas are `metrics.py`'s (same 0-based indices, forgetting per
    Chaudhry et al.), vectorised over the leading axes; metrics that need two chunks are NaN for
    one."""
    n = a.shape[-1]
    diag = np.diagonal(a, axis1=-2, axis2=-1)
    last = a[..., n - 1, :]
    out: dict[str, np.ndarray] = {"acc": last.mean(axis=-1)}
    plasticity = diag.mean(axis=-1)
    running = np.cumsum(diag, axis=-1) / np.arange(1, n + 1)
    out["aulc"] = running.mean(axis=-1)
    out["cl_plasticity"] = plasticity
    nan = np.full(a.shape[:-2], np.nan)
    if n < 2:
        for key in ("forgetting", "forward_transfer", "backward_transfer", "cl_stability", "cl_f_beta"):
            out[key] = nan
        return out
    gaps = []
    for j in range(n - 1):
        best = np.max(a[..., j : n - 1, j], axis=-1)
        gaps.append(best - a[..., n - 1, j])
    forgetting = np.mean(np.stack(gaps, axis=-1), axis=-1)
    out["forgetting"] = forgetting
    nxt = np.stack([a[..., i, i + 1] for i in range(n - 1)], axis=-1)
    out["forward_transfer"] = (nxt - z[..., 1:]).mean(axis=-1)
    out["backward_transfer"] = (last[..., : n - 1] - diag[..., : n - 1]).mean(axis=-1)
    stability = 1.0 - forgetting
    out["cl_stability"] = stability
    b2 = beta * beta
    denom = b2 * plasticity + stability
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(denom == 0, 0.0, (1 + b2) * plasticity * stability / np.where(denom == 0, 1.0, denom))
    out["cl_f_beta"] = f
    return out


class ChunkScores(BaseModel):
    """Per-task scores of one chunk: stage[i][t] = task t's mean over seeds after learning
    through chunk i (None where not measured), zero[t] its zero-shot mean."""

    stage: list[list[float | None]]
    zero: list[float]


def _arrays(chunks: Sequence[ChunkScores]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (np.array([[np.nan if v is None else v for v in row] for row in c.stage], dtype=float),
         np.array(c.zero, dtype=float))
        for c in chunks
    ]


def _matrices(per_chunk: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Stack chunk means into (..., N, N) matrices and (..., N) zero-shot rows. Each entry of
    `per_chunk` holds arrays of shape (..., N, m_j) and (..., m_j)."""
    cols = [s.mean(axis=-1) for s, _ in per_chunk]  # each (..., N)
    a = np.stack(cols, axis=-1)  # (..., N stages, N chunks)
    z = np.stack([zz.mean(axis=-1) for _, zz in per_chunk], axis=-1)
    return a, z


Arrays = list[tuple[np.ndarray, np.ndarray]]


def interval_samples(
    chunks: Sequence[ChunkScores], *, resamples: int, seed: int = 0, methods: Sequence[str] = METHODS
) -> tuple[dict[str, float], dict[str, dict[str, tuple[float, float]]]]:
    """The point value of every metric and its interval by each method:
    ({key: value}, {method: {key: (lo, hi)}}). NaN where a metric or an interval is undefined."""
    point, ivs = _all_intervals(_arrays(chunks), resamples, np.random.default_rng(seed), methods)
    return (
        {k: float(v) for k, v in point.items()},
        {m: {k: (float(lo), float(hi)) for k, (lo, hi) in d.items()} for m, d in ivs.items()},
    )


def _all_intervals(
    arrays: Arrays, resamples: int, rng: np.random.Generator, methods: Sequence[str] = METHODS
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """Point values and each method's interval; any leading axes of the arrays (simulated
    experiments) are kept."""
    a, z = _matrices(arrays)
    point = summarize_batch(a, z)
    boot = _bootstrap(arrays, resamples, rng) if {"bootstrap", "rescaled-bootstrap"} & set(methods) else {}
    jack = _jackknife(arrays) if "jackknife" in methods else {}
    sizes = np.array([s.shape[-1] for s, _ in arrays], dtype=float)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {m: {} for m in methods}
    for key in CL_KEYS:
        theta = point[key]
        if "bootstrap" in methods:
            out["bootstrap"][key] = _percentile(boot[key])
        if "rescaled-bootstrap" in methods:
            out["rescaled-bootstrap"][key] = _rescaled(theta, boot[key], sizes)
        if "jackknife" in methods:
            out["jackknife"][key] = _jack_interval(theta, jack[key], sizes)
    return point, out


def _bootstrap(arrays: Arrays, resamples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The metrics of `resamples` stratified resamples of the tasks, on a last axis."""
    resampled = []
    for s, zz in arrays:
        m = s.shape[-1]
        idx = rng.integers(0, m, size=(resamples, m))
        # s[..., N, m] -> [..., N, B, m] -> [..., B, N, m]
        resampled.append((np.moveaxis(s[..., idx], -2, -3), zz[..., idx]))
    a, z = _matrices(resampled)
    return summarize_batch(a, z)


def _jackknife(arrays: Arrays) -> dict[str, list[np.ndarray]]:
    """Per chunk h, the metrics with each of its tasks left out in turn, on a last axis of m_h."""
    out: dict[str, list[np.ndarray]] = {k: [] for k in CL_KEYS}
    for h, (s, zz) in enumerate(arrays):
        m = s.shape[-1]
        if m < 2:
            for k in CL_KEYS:
                out[k].append(np.full((*s.shape[:-2], 1), np.nan))
            continue
        keep = ~np.eye(m, dtype=bool)  # row r leaves task r out
        left_s = np.stack([s[..., keep[r]] for r in range(m)], axis=-3)  # (..., m, N, m-1)
        left_z = np.stack([zz[..., keep[r]] for r in range(m)], axis=-2)  # (..., m, m-1)
        parts = []
        for g, (s2, z2) in enumerate(arrays):
            if g == h:
                parts.append((left_s, left_z))
            else:
                parts.append((np.broadcast_to(s2[..., None, :, :], (*s2.shape[:-2], m, *s2.shape[-2:])),
                              np.broadcast_to(z2[..., None, :], (*z2.shape[:-1], m, z2.shape[-1]))))
        a, z = _matrices(parts)
        vals = summarize_batch(a, z)
        for k in CL_KEYS:
            out[k].append(vals[k])
    return out


def _percentile(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The metrics are defined on every resample (each chunk keeps all m of its slots), so no NaN.
    lo, hi = np.quantile(samples, [0.025, 0.975], axis=-1)
    return np.asarray(lo), np.asarray(hi)


def _rescaled(theta: np.ndarray, samples: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.any(sizes < 2):
        nan = np.full(np.shape(theta), np.nan)
        return nan, nan
    # Chunks of different sizes: the rescaling of the smallest is the conservative one.
    scale = math.sqrt(sizes.min() / (sizes.min() - 1))
    theta = np.asarray(theta)
    return _percentile(theta[..., None] + scale * (samples - theta[..., None]))


def _jack_interval(theta: np.ndarray, leave_out: list[np.ndarray],
                   sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if np.any(sizes < 2):
        nan = np.full(np.shape(theta), np.nan)
        return nan, nan
    var = np.zeros(np.shape(theta))
    for vals, m in zip(leave_out, sizes, strict=True):
        var = var + (m - 1) / m * ((vals - vals.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
    df = int(sizes.sum() - len(sizes))
    half = t_quantile(0.975, max(1, df)) * np.sqrt(var)
    return theta - half, theta + half


# --- is an interval trustworthy at this size? ----------------------------------------------------


def _scenarios(n: int) -> list[np.ndarray]:
    """Learning scenarios as coefficients c[i][j]: after learning through chunk i, a task of
    chunk j succeeds with p + c(1 - p) for c >= 0 and p(1 + c) for c < 0 (p its zero-shot
    probability), so the expected matrix is known exactly. Nothing changes; it learns and
    keeps it; it learns and forgets; it gets worse."""
    static = np.zeros((n, n))
    learns = np.zeros((n, n))
    forgets = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if j <= i:
                learns[i, j] = 0.5
                forgets[i, j] = 0.6 * 0.6 ** (i - j)
            elif j == i + 1:
                learns[i, j] = 0.15
                forgets[i, j] = 0.1
    hurts = -0.5 * (np.tril(np.ones((n, n))) + np.eye(n, k=1))
    return [static, learns, forgets, hurts]


def _shift(p: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    return np.where(np.asarray(c) >= 0, p + c * (1 - np.asarray(p)), p * (1 + np.asarray(c)))


@lru_cache(maxsize=64)
def cl_coverage(
    chunk_sizes: tuple[int, ...],
    seeds: int,
    *,
    methods: tuple[str, ...] = ("jackknife",),
    sims: int = 3000,
    resamples: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, tuple[float, float]]]:
    """Simulated coverage of the nominal 95% intervals at this design:
    {method: {key: (worst coverage over the scenarios, mean width)}}.

    Each simulated experiment draws every task's zero-shot probability from TASK_PRIOR, its
    zero-shot outcome and every stage's outcome independently per seed, and checks whether
    each method's interval holds the metric of the expected matrix (the population of tasks,
    not the tasks drawn)."""
    n = len(chunk_sizes)
    rng = np.random.default_rng(seed)
    a_prior, b_prior = TASK_PRIOR
    pbar = a_prior / (a_prior + b_prior)
    worst: dict[str, dict[str, float]] = {m: {} for m in methods}
    widths: dict[str, dict[str, list[float]]] = {m: {k: [] for k in CL_KEYS} for m in methods}
    # Simulated experiments go through in batches that keep the largest array (a resample or a
    # leave-one-out copy of every chunk) near BATCH_ELEMENTS, whatever the chunk sizes.
    widest = max(chunk_sizes) * (resamples if {"bootstrap", "rescaled-bootstrap"} & set(methods) else max(chunk_sizes))
    batch = max(1, min(sims, BATCH_ELEMENTS // max(1, n * widest)))
    for coef in _scenarios(n):
        truth_a = _shift(np.full((n, n), pbar), coef)
        truth = {k: float(v) for k, v in summarize_batch(truth_a, np.full(n, pbar)).items()}
        hits: dict[str, dict[str, list[np.ndarray]]] = {m: {k: [] for k in CL_KEYS} for m in methods}
        spans: dict[str, dict[str, list[np.ndarray]]] = {m: {k: [] for k in CL_KEYS} for m in methods}
        for start in range(0, sims, batch):
            size = min(batch, sims - start)
            arrays: Arrays = []
            for j, m in enumerate(chunk_sizes):
                p = rng.beta(a_prior, b_prior, size=(size, m))
                zero = (rng.random((size, seeds, m)) < p[:, None, :]).mean(axis=1)
                q = _shift(p[:, None, :], coef[:, j][None, :, None])  # (size, N, m)
                stage = (rng.random((size, seeds, n, m)) < q[:, None]).mean(axis=1)
                arrays.append((stage, zero))
            _, ivs = _all_intervals(arrays, resamples, rng, methods)
            for method in methods:
                for key in CL_KEYS:
                    t = truth[key]
                    if math.isnan(t):
                        continue
                    lo, hi = ivs[method][key]
                    hits[method][key].append(~np.isnan(lo) & ~np.isnan(hi) & (lo - 1e-12 <= t) & (t <= hi + 1e-12))
                    spans[method][key].append(hi - lo)
        for method in methods:
            for key in CL_KEYS:
                if not hits[method][key]:
                    continue
                ok = np.concatenate(hits[method][key])
                worst[method][key] = min(worst[method].get(key, 1.0), float(ok.mean()))
                w = np.concatenate(spans[method][key])
                w = w[~np.isnan(w)]
                widths[method][key].append(float(w.mean()) if w.size else math.inf)
    return {
        method: {key: (worst[method][key], float(np.mean(widths[method][key]))) for key in worst[method]}
        for method in methods
    }


def interval_method(chunk_sizes: Sequence[int], seeds: int) -> dict[str, str | None]:
    """Per metric, the interval method to show at this design ("jackknife": it covered best at
    every size bench/stats_calibration.py checks), or None where its simulated coverage falls
    below MIN_COVERAGE in any scenario (the report then shows no interval)."""
    # Fewer simulated experiments for large chunks: the cost grows with the tasks squared, and
    # coverage there sits near nominal, far from the threshold, so 800 decide it as well.
    sims = max(800, min(3000, 72_000 // max(1, sum(chunk_sizes))))
    cov = cl_coverage(tuple(chunk_sizes), max(1, seeds), sims=sims)["jackknife"]
    return {key: ("jackknife" if key in cov and cov[key][0] >= MIN_COVERAGE else None) for key in CL_KEYS}


__all__ = [
    "CL_KEYS",
    "METHODS",
    "MIN_COVERAGE",
    "TASK_PRIOR",
    "ChunkScores",
    "cl_coverage",
    "interval_method",
    "interval_samples",
    "summarize_batch",
]
