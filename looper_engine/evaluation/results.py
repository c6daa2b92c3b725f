"""An experiment's results, read back from the store: per arm the accuracy matrix a[i][j], the
continual-learning summary, episode metrics, base against arm on the same tasks, the flip
table, repeat errors, pass@k over seeds, and every night's training curve and gate verdict.

Every rate has its n and a 95% interval. The CL metrics' intervals are a stratified cluster
bootstrap: tasks are resampled with replacement within their chunk, each task keeping all its
measurements (every stage, every seed, its zero-shot score), and the metric is recomputed
from the resampled matrix. Base against arm pairs each (task, seed) of the final stage with
the zero-shot reference's: exact McNemar, a paired bootstrap interval of the difference, and
the smallest difference this n could detect (80% power, alpha 0.05).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from looper_engine.errors import UserError
from looper_engine.evaluation.experiment import ZERO_SHOT
from looper_engine.evaluation.metrics import (
    EpisodeOutcome,
    Measure,
    loop_alarms_per_episode,
    paired_difference,
    pass_at_k,
    repeat_error_rate,
    resolve_rate,
    steps_to_resolve,
    summarize_matrix,
    tokens_to_resolve,
    tool_calls_per_resolve,
    tool_use_efficiency,
)
from looper_engine.evaluation.stats import Rate, min_detectable_difference, rate
from looper_engine.store.db import Store
from looper_engine.store.experiments import (
    CellRow,
    ExperimentRow,
    get_candidates,
    get_cells,
    get_experiment,
    get_nights,
    list_experiments,
)

#: The summary metrics, in report order, with their display names.
CL_METRICS: tuple[tuple[str, str], ...] = (
    ("acc", "ACC"),
    ("forgetting", "Forgetting"),
    ("forward_transfer", "FT"),
    ("backward_transfer", "BWT"),
    ("aulc", "AULC"),
    ("cl_plasticity", "CL-P"),
    ("cl_stability", "CL-S"),
    ("cl_f_beta", "CL-F1"),
)
BOOTSTRAP_RESAMPLES = 2000


class MetricValue(BaseModel):
    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 0

    def __str__(self) -> str:
        if self.value is None:
            return "—"
        ci = f" [{self.lo:+.2f}, {self.hi:+.2f}]" if self.lo is not None and self.hi is not None else ""
        return f"{self.value:+.2f}{ci}"


class Comparison(BaseModel):
    """Base (zero-shot) against an arm on the same (task, seed) pairs."""

    scope: str
    n: int
    base: Rate
    arm: Rate
    diff: float
    diff_lo: float
    diff_hi: float
    b: int
    c: int
    p_value: float
    min_detectable: float | None


class Flip(BaseModel):
    task_id: str
    chunk: int
    base_k: int
    arm_k: int
    n: int
    change: Literal["fixed", "broken", "same (solved)", "same (unsolved)", "same (mixed)"]


class NightResult(BaseModel):
    seed: int
    cycle: int
    adopted: bool
    reason: str
    n: int = 0
    b: int = 0
    c: int = 0
    p_value: float | None = None
    base_rate: float | None = None
    candidate_rate: float | None = None
    skipped: str = ""
    notes: list[str] = Field(default_factory=list)
    curve: list[dict[str, Any]] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    memory: int = 0
    seconds: float = 0.0


class EpisodeMetrics(BaseModel):
    resolve_rate: Rate
    steps_to_resolve: Measure
    tokens_to_resolve: Measure
    tool_calls_per_resolve: Measure
    loop_alarms_per_episode: Measure
    tool_use_efficiency: MetricValue


def tue_with_interval(resolved: list[bool], times: list[float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = 0) -> MetricValue:
    """TUE with a percentile bootstrap interval over episodes (resamples without a success,
    where TUE is undefined, are left out)."""
    value = tool_use_efficiency([t for t, r in zip(times, resolved, strict=True) if r], times)
    out = MetricValue(value=value, n=len(times))
    if value is None or resamples <= 0 or len(times) < 2:
        return out
    rng = np.random.default_rng(seed)
    t = np.asarray(times, dtype=float)
    ok = np.asarray(resolved, dtype=bool)
    idx = rng.integers(0, len(t), size=(resamples, len(t)))
    ratios = []
    for row in idx:
        good = t[row][ok[row]]
        med_all = float(np.median(t[row]))
        if good.size and med_all > 0:
            ratios.append(float(np.median(good)) / med_all)
    if ratios:
        lo, hi = np.quantile(ratios, [0.025, 0.975])
        out.lo, out.hi = float(lo), float(hi)
    return out


class ArmResults(BaseModel):
    arm: str
    kind: str
    model: str
    #: a[i][j]: resolved share of chunk j's tasks (all seeds) after learning through chunk i.
    matrix: list[list[float | None]]
    #: (resolved, measured) behind each a[i][j].
    counts: list[list[tuple[int, int] | None]]
    complete: bool
    summary: dict[str, MetricValue] = Field(default_factory=dict)
    heldout: list[Rate | None] = Field(default_factory=list, description="held-out rate after each cycle")
    episodes: EpisodeMetrics | None = None
    vs_base: list[Comparison] = Field(default_factory=list)
    flips: list[Flip] = Field(default_factory=list)
    repeat_errors: Rate | None = None
    pass_at: dict[int, float] = Field(default_factory=dict)
    pass_tasks: int = 0
    nights: list[NightResult] = Field(default_factory=list)


class ExperimentResults(BaseModel):
    exp_id: str
    status: str
    description: str = ""
    model: str
    seeds: list[int]
    chunks: list[list[str]]
    heldout: list[str]
    zero_shot: list[float | None]
    zero_shot_counts: list[tuple[int, int] | None]
    zero_shot_heldout: Rate | None = None
    arms: list[ArmResults]
    scripted: bool = False
    counts: dict[str, int] = Field(default_factory=dict)
    #: a line when sandboxed and unsandboxed episodes are mixed in these results ('' otherwise)
    sandbox_note: str = ""

    def arm(self, name: str) -> ArmResults:
        for a in self.arms:
            if a.arm == name:
                return a
        raise UserError(f"experiment {self.exp_id!r} has no arm {name!r}")


# --- reading ----------------------------------------------------------------------------------


async def resolve_experiment(store: Store, name: str) -> ExperimentRow:
    """The experiment called `name` (or the newest one when `name` is empty); UserError if none."""
    experiments = await list_experiments(store)
    if not experiments:
        raise UserError(f"no experiments in {store.path} (run `looper experiment run FILE` first)")
    if not name:
        return experiments[0]
    exp = await get_experiment(store, name)
    if exp is None:
        known = ", ".join(e.id for e in experiments[:10])
        raise UserError(f"no experiment {name!r} in {store.path} (known: {known})")
    for e in experiments:
        if e.id == exp.id:
            return e
    return exp


def _chunk_of(chunks: list[list[str]]) -> dict[str, int]:
    return {t: j for j, chunk in enumerate(chunks) for t in chunk}


def _outcomes(cells: list[CellRow]) -> list[EpisodeOutcome]:
    return [
        EpisodeOutcome(
            resolved=c.resolved,
            steps=c.steps,
            tokens=c.tokens,
            tool_calls=c.tool_calls,
            loop_alarms=c.loop_alarms,
            duration_s=c.duration_s,
            task_id=c.task_id,
            error_signature=c.error_signature,
        )
        for c in cells
    ]


def _matrix(
    cells: list[CellRow], chunks: list[list[str]]
) -> tuple[list[list[float | None]], list[list[tuple[int, int] | None]], bool]:
    n = len(chunks)
    chunk_of = _chunk_of(chunks)
    tally: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    for c in cells:
        j = chunk_of.get(c.task_id)
        if j is None or c.chunk < 0:
            continue
        t = tally[(c.cycle, j)]
        t[0] += int(c.resolved)
        t[1] += 1
    expected = {j: len(chunks[j]) for j in range(n)}
    matrix: list[list[float | None]] = [[None] * n for _ in range(n)]
    counts: list[list[tuple[int, int] | None]] = [[None] * n for _ in range(n)]
    complete = True
    for i in range(n):
        for j in range(n):
            k_n = tally.get((i, j))
            if k_n is not None and k_n[1]:
                matrix[i][j] = k_n[0] / k_n[1]
                counts[i][j] = (k_n[0], k_n[1])
            if j <= i + 1 and (k_n is None or k_n[1] < expected[j]):
                complete = False
    return matrix, counts, complete


def _scores(cells: list[CellRow], key: tuple[str, ...] = ("cycle", "task_id")) -> dict[tuple[Any, ...], float]:
    """Mean resolved over seeds per key."""
    acc: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for c in cells:
        acc[tuple(getattr(c, k) for k in key)].append(int(c.resolved))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def bootstrap_summary(
    arm_cells: list[CellRow],
    zero_cells: list[CellRow],
    chunks: list[list[str]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, MetricValue]:
    """The CL metrics of the arm's matrix, each with a stratified cluster-bootstrap interval."""
    n = len(chunks)
    stage = _scores(arm_cells)
    zero = _scores(zero_cells, ("task_id",))
    z = [float(np.mean([zero.get((t,), 0.0) for t in chunks[j]])) for j in range(n)]
    matrix, _, _ = _matrix(arm_cells, chunks)
    point = summarize_matrix(matrix, z)
    n_obs = sum(1 for c in arm_cells if c.cycle == n - 1 and c.chunk >= 0)
    out = {key: MetricValue(value=point.get(key), n=n_obs) for key, _ in CL_METRICS}
    if resamples <= 0:
        return out
    rng = np.random.default_rng(seed)
    # S[j]: (stages, tasks of chunk j) with NaN where a stage did not measure the chunk.
    per_chunk = []
    for j in range(n):
        s = np.array(
            [[stage.get((i, t), np.nan) for t in chunks[j]] for i in range(n)], dtype=float
        )
        zj = np.array([zero.get((t,), 0.0) for t in chunks[j]], dtype=float)
        idx = rng.integers(0, len(chunks[j]), size=(resamples, len(chunks[j])))
        per_chunk.append((s[:, idx].mean(axis=2), zj[idx].mean(axis=1)))  # (stages, B), (B,)
    samples: dict[str, list[float]] = defaultdict(list)
    for b in range(resamples):
        mat: list[list[float | None]] = [
            [None if math.isnan(per_chunk[j][0][i, b]) else float(per_chunk[j][0][i, b]) for j in range(n)]
            for i in range(n)
        ]
        zb = [float(per_chunk[j][1][b]) for j in range(n)]
        summary = summarize_matrix(mat, zb)
        for key, _ in CL_METRICS:
            if summary.get(key) is not None:
                samples[key].append(float(summary[key]))
    for key, _ in CL_METRICS:
        vals = samples.get(key)
        if vals and out[key].value is not None:
            lo, hi = np.quantile(vals, [0.025, 0.975])
            out[key].lo, out[key].hi = float(lo), float(hi)
    return out


def _comparison(scope: str, base_cells: list[CellRow], arm_cells: list[CellRow]) -> Comparison | None:
    base = {(c.task_id, c.seed): c.resolved for c in base_cells}
    arm = {(c.task_id, c.seed): c.resolved for c in arm_cells}
    keys = sorted(set(base) & set(arm))
    if not keys:
        return None
    b = [base[k] for k in keys]
    a = [arm[k] for k in keys]
    res = paired_difference(b, a)
    p_base = sum(b) / len(b)
    mdd = min_detectable_difference(len(keys), p_base)
    return Comparison(
        scope=scope,
        n=res["n"],
        base=res["base"],
        arm=res["arm"],
        diff=res["diff"],
        diff_lo=res["diff_lo"],
        diff_hi=res["diff_hi"],
        b=res["b"],
        c=res["c"],
        p_value=res["p_value"],
        min_detectable=None if math.isinf(mdd) else mdd,
    )


def _flips(base_cells: list[CellRow], arm_cells: list[CellRow], chunk_of: dict[str, int]) -> list[Flip]:
    base: dict[str, list[bool]] = defaultdict(list)
    arm: dict[str, list[bool]] = defaultdict(list)
    for c in base_cells:
        base[c.task_id].append(c.resolved)
    for c in arm_cells:
        arm[c.task_id].append(c.resolved)
    out = []
    for task in sorted(set(base) & set(arm), key=lambda t: (chunk_of.get(t, 10**6), t)):
        bk, ak, n = sum(base[task]), sum(arm[task]), min(len(base[task]), len(arm[task]))
        if ak > bk:
            change = "fixed"
        elif ak < bk:
            change = "broken"
        elif ak == n:
            change = "same (solved)"
        elif ak == 0:
            change = "same (unsolved)"
        else:
            change = "same (mixed)"
        out.append(Flip(task_id=task, chunk=chunk_of.get(task, -1), base_k=bk, arm_k=ak, n=n, change=change))
    return out


async def load_results(store: Store, exp_id: str, *, resamples: int = BOOTSTRAP_RESAMPLES) -> ExperimentResults:
    """Everything the report and the results screen show, computed from the recorded cells."""
    from looper_engine.store.experiments import experiment_counts

    exp = await resolve_experiment(store, exp_id)
    spec = exp.spec
    cells = await get_cells(store, exp.id)
    nights = await get_nights(store, exp.id)
    candidates = {(c.arm, c.seed, c.cycle): c for c in await get_candidates(store, exp.id)}
    # The chunks as recorded: the spec file may have changed since, the cells have not.
    chunks = _recorded_chunks(cells)
    heldout = sorted({c.task_id for c in cells if c.chunk == -1})
    chunk_of = _chunk_of(chunks)
    n = len(chunks)
    zero_eval = [c for c in cells if c.arm == ZERO_SHOT and c.phase == "eval"]
    zero_stream = [c for c in zero_eval if c.chunk >= 0]
    zero_held = [c for c in zero_eval if c.chunk == -1]
    z: list[float | None] = []
    z_counts: list[tuple[int, int] | None] = []
    for j in range(n):
        got = [c.resolved for c in zero_stream if c.chunk == j]
        z.append(sum(got) / len(got) if got else None)
        z_counts.append((sum(got), len(got)) if got else None)
    arms: list[ArmResults] = []
    scripted = spec.get("model", "").startswith("scripted:")
    for arm_spec in spec.get("arms", []):
        name = arm_spec["name"]
        model = arm_spec.get("model") or spec.get("model", "")
        scripted = scripted or model.startswith("scripted:")
        mine = [c for c in cells if c.arm == name]
        evals = [c for c in mine if c.phase == "eval"]
        matrix, counts, complete = _matrix(evals, chunks)
        result = ArmResults(
            arm=name, kind=arm_spec.get("kind", "base"), model=model, matrix=matrix, counts=counts, complete=complete
        )
        if complete and n and all(v is not None for v in z):
            result.summary = bootstrap_summary(evals, zero_stream, chunks, resamples=resamples)
        for i in range(n):
            got = [c.resolved for c in evals if c.chunk == -1 and c.cycle == i]
            result.heldout.append(rate(sum(got), len(got)) if got else None)
        final = [c for c in evals if c.cycle == n - 1]
        if final:
            outs = _outcomes(final)
            result.episodes = EpisodeMetrics(
                resolve_rate=resolve_rate(outs),
                steps_to_resolve=steps_to_resolve(outs),
                tokens_to_resolve=tokens_to_resolve(outs),
                tool_calls_per_resolve=tool_calls_per_resolve(outs),
                loop_alarms_per_episode=loop_alarms_per_episode(outs),
                tool_use_efficiency=tue_with_interval(
                    [o.resolved for o in outs], [o.duration_s for o in outs], resamples=resamples
                ),
            )
            final_stream = [c for c in final if c.chunk >= 0]
            final_held = [c for c in final if c.chunk == -1]
            for scope, base_cells, arm_cells in (
                ("stream", zero_stream, final_stream),
                ("held-out", zero_held, final_held),
            ):
                comp = _comparison(scope, base_cells, arm_cells)
                if comp is not None:
                    result.vs_base.append(comp)
            result.flips = _flips(zero_eval, final, chunk_of)
            by_task: dict[str, list[bool]] = defaultdict(list)
            for c in final:
                by_task[c.task_id].append(c.resolved)
            k = min(len(v) for v in by_task.values())
            if k >= 1:
                for kk in sorted({1, k}):
                    result.pass_at[kk] = float(
                        np.mean([pass_at_k(len(v), sum(v), kk) for v in by_task.values()])
                    )
                result.pass_tasks = len(by_task)
        attempts = [((c.task_id, c.seed), c.cycle, c.resolved, c.error_signature) for c in evals]
        if attempts:
            result.repeat_errors = repeat_error_rate(attempts)
        for night in (x for x in nights if x.arm == name):
            v = night.verdict
            cand = candidates.get((name, night.seed, night.cycle))
            cstate = cand.state if cand is not None else {}
            result.nights.append(
                NightResult(
                    seed=night.seed,
                    cycle=night.cycle,
                    adopted=night.adopted,
                    reason=str(v.get("reason", "")),
                    n=int(v.get("n", 0) or 0),
                    b=int(v.get("b", 0) or 0),
                    c=int(v.get("c", 0) or 0),
                    p_value=v.get("p_value"),
                    base_rate=v.get("base_rate"),
                    candidate_rate=v.get("candidate_rate"),
                    skipped=cand.skipped if cand is not None else "",
                    notes=cand.notes if cand is not None else [],
                    curve=cand.curve if cand is not None else [],
                    rules=list(cstate.get("rules", [])),
                    memory=len(cstate.get("memory", [])),
                    seconds=cand.seconds if cand is not None else 0.0,
                )
            )
        arms.append(result)
    return ExperimentResults(
        exp_id=exp.id,
        status=exp.status,
        description=str(spec.get("description", "")),
        model=str(spec.get("model", "")),
        seeds=list(spec.get("seeds", [])),
        chunks=chunks,
        heldout=heldout,
        zero_shot=z,
        zero_shot_counts=z_counts,
        zero_shot_heldout=rate(sum(c.resolved for c in zero_held), len(zero_held)) if zero_held else None,
        arms=arms,
        scripted=scripted,
        counts=await experiment_counts(store, exp.id),
        sandbox_note=await _sandbox_note(store, [c.episode_id for c in cells]),
    )


async def _sandbox_note(store: Store, episode_ids: list[str]) -> str:
    from looper_engine.sandbox import recorded_kind, sandbox_note

    ids = sorted(set(episode_ids))
    configs: list[str] = []
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        rows = await store._fetch(f"SELECT config FROM episodes WHERE id IN ({','.join('?' * len(part))})", tuple(part))
        configs += [r["config"] for r in rows]
    return sandbox_note([recorded_kind(json.loads(c)) for c in configs])


def _recorded_chunks(cells: list[CellRow]) -> list[list[str]]:
    by_chunk: dict[int, list[str]] = defaultdict(list)
    # Creation order is stream order: the zero-shot pass runs the stream first, in order.
    for c in sorted(cells, key=lambda c: (c.chunk, c.created_at)):
        if c.chunk >= 0 and c.task_id not in by_chunk[c.chunk]:
            by_chunk[c.chunk].append(c.task_id)
    return [by_chunk[j] for j in range(max(by_chunk) + 1)] if by_chunk else []


def fmt_rate(r: Rate | None) -> str:
    if r is None or r.rate is None:
        return "—"
    return f"{r.k}/{r.n} = {r.rate:.0%} [{r.lo:.0%}, {r.hi:.0%}]"


def fmt_measure(m: Measure) -> str:
    if m.mean is None:
        return "— (n=0)"
    ci = f" [{m.lo:.1f}, {m.hi:.1f}]" if m.lo is not None and m.hi is not None else ""
    return f"{m.mean:.1f}{ci} (median {m.median:.1f}, n={m.n})"


__all__ = [
    "CL_METRICS",
    "ArmResults",
    "Comparison",
    "EpisodeMetrics",
    "ExperimentResults",
    "Flip",
    "MetricValue",
    "NightResult",
    "bootstrap_summary",
    "tue_with_interval",
    "fmt_measure",
    "fmt_rate",
    "load_results",
    "resolve_experiment",
]
