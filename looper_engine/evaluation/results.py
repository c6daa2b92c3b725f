"""An experiment's results, read back from the store: per arm the accuracy matrix a[i][j], the
continual-learning summary, episode metrics, base against arm on the same tasks, the flip
table, repeat errors, pass@k over seeds, and every night's training curve and gate verdict.

The task is the unit of every interval and test; seeds are repeated measures of a task.
Rates are means over tasks of each task's share of resolved seeds, with `task_rate`'s interval.
The CL metrics' intervals are the stratified jackknife over tasks (`clstats`), shown only where
simulation at this experiment's own size finds they cover; elsewhere the metric carries the
note "too few tasks per chunk for an interval". Base against arm is `paired_comparison` on the
tasks both measured, each task's seeds pooled into one per-task rate.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from looper_engine.errors import UserError
from looper_engine.evaluation.clstats import ChunkScores, interval_method, interval_samples
from looper_engine.evaluation.experiment import ZERO_SHOT
from looper_engine.evaluation.metrics import (
    EpisodeOutcome,
    Measure,
    loop_alarms_per_episode,
    pass_at_k,
    repeat_error_rate,
    steps_to_resolve,
    tokens_to_resolve,
    tool_calls_per_resolve,
    tool_use_efficiency,
)
from looper_engine.evaluation.power import DesignPower, comparison_designs, design_power
from looper_engine.evaluation.stats import (
    PairedComparison,
    Rate,
    TaskRate,
    design_label,
    paired_comparison,
    task_rate,
)
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
#: What a CL metric shows where no interval method covers at this experiment's size.
NO_INTERVAL = "too few tasks per chunk for an interval"


class MetricValue(BaseModel):
    value: float | None
    lo: float | None = None
    hi: float | None = None
    n: int = 0
    n_tasks: int = 0
    seeds: list[int] = Field(default_factory=list)
    method: str = ""
    #: why there is no interval, or why the value is out of its usual range
    note: str = ""

    def __str__(self) -> str:
        if self.value is None:
            return "—"
        ci = f" [{self.lo:+.2f}, {self.hi:+.2f}]" if self.lo is not None and self.hi is not None else ""
        mark = "†" if self.lo is None and self.note else ""
        return f"{self.value:+.2f}{ci}{mark}"


class Comparison(PairedComparison):
    """Base (zero-shot) against an arm's final stage on the tasks both measured."""

    scope: str
    base: TaskRate
    arm: TaskRate


class Flip(BaseModel):
    """One task, base (zero-shot) against the arm's final stage, compared by per-task rate."""

    task_id: str
    chunk: int
    base_k: int
    base_n: int
    arm_k: int
    arm_n: int
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
    #: False when the frozen set was too small for the gate to reject anything.
    testable: bool = True
    skipped: str = ""
    notes: list[str] = Field(default_factory=list)
    curve: list[dict[str, Any]] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    memory: int = 0
    seconds: float = 0.0


class EpisodeMetrics(BaseModel):
    resolve_rate: TaskRate
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
    heldout: list[TaskRate | None] = Field(default_factory=list, description="held-out rate after each cycle")
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
    zero_shot_heldout: TaskRate | None = None
    arms: list[ArmResults]
    scripted: bool = False
    counts: dict[str, int] = Field(default_factory=dict)
    #: the design's simulated power (`looper experiment power`), None when it cannot be simulated
    power: DesignPower | None = None
    #: each distinct machine setup (BLAS, mlx, cores) the experiment's nights trained on
    environments: list[dict[str, str]] = Field(default_factory=list)
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


def _per_task(cells: list[CellRow]) -> dict[str, list[bool]]:
    out: dict[str, list[bool]] = defaultdict(list)
    for c in cells:
        out[c.task_id].append(c.resolved)
    return dict(out)


def cl_summary(
    arm_cells: list[CellRow],
    zero_cells: list[CellRow],
    chunks: list[list[str]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, MetricValue]:
    """The CL metrics of the arm's matrix, each with its interval where one can be trusted at
    this size (see `clstats`), else with the note NO_INTERVAL. CL-F1 outside [0, 1] is noted."""
    n = len(chunks)
    stage = _scores(arm_cells)
    zero = _scores(zero_cells, ("task_id",))
    seeds = sorted({len(v) for v in _per_task([c for c in arm_cells if c.cycle == n - 1 and c.chunk >= 0]).values()})
    scores = [
        ChunkScores(
            stage=[[stage.get((i, t)) if j <= i + 1 else None for t in chunks[j]] for i in range(n)],
            zero=[zero.get((t,), 0.0) for t in chunks[j]],
        )
        for j in range(n)
    ]
    point, intervals = interval_samples(scores, resamples=resamples, seed=seed, methods=("jackknife",))
    methods = interval_method([len(c) for c in chunks], max(seeds) if seeds else 1)
    n_tasks = sum(len(c) for c in chunks)
    n_obs = sum(1 for c in arm_cells if c.cycle == n - 1 and c.chunk >= 0)
    out: dict[str, MetricValue] = {}
    for key, _ in CL_METRICS:
        v = point.get(key)
        value = None if v is None or math.isnan(v) else v
        mv = MetricValue(value=value, n=n_obs, n_tasks=n_tasks, seeds=seeds)
        method = methods.get(key)
        if value is not None and method is not None:
            lo, hi = intervals[method][key]
            if not (math.isnan(lo) or math.isnan(hi)):
                mv.lo, mv.hi, mv.method = lo, hi, method
        if value is not None and mv.lo is None:
            mv.note = NO_INTERVAL
        out[key] = mv
    f1 = out.get("cl_f_beta")
    if f1 is not None and f1.value is not None and not 0.0 <= f1.value <= 1.0:
        forgetting = out["forgetting"].value
        why = (
            f"forgetting is negative ({forgetting:+.2f}: chunks scored higher at the end than right after "
            f"they were learned), so stability 1 - F exceeds 1 and CL-F1 is no longer bounded by 1"
            if forgetting is not None and forgetting < 0
            else "a harmonic mean of plasticity and stability outside [0, 1]"
        )
        f1.note = (f1.note + "; " if f1.note else "") + f"CL-F1 = {f1.value:.2f} is outside [0, 1]: {why}"
    return out


def _comparison(scope: str, base_cells: list[CellRow], arm_cells: list[CellRow]) -> Comparison | None:
    base = _per_task(base_cells)
    arm = _per_task(arm_cells)
    tasks = sorted(set(base) & set(arm))
    if not tasks:
        return None
    res = paired_comparison({t: base[t] for t in tasks}, {t: arm[t] for t in tasks})
    return Comparison(
        **res.model_dump(),
        scope=scope,
        base=task_rate({t: base[t] for t in tasks}),
        arm=task_rate({t: arm[t] for t in tasks}),
    )


def _flips(base_cells: list[CellRow], arm_cells: list[CellRow], chunk_of: dict[str, int]) -> list[Flip]:
    base = _per_task(base_cells)
    arm = _per_task(arm_cells)
    out = []
    for task in sorted(set(base) & set(arm), key=lambda t: (chunk_of.get(t, 10**6), t)):
        bk, bn = sum(base[task]), len(base[task])
        ak, an = sum(arm[task]), len(arm[task])
        # Compare rates, not counts: the two sides may have run different numbers of seeds.
        b_rate, a_rate = bk * an, ak * bn  # bk/bn against ak/an without rounding
        if a_rate > b_rate:
            change = "fixed"
        elif a_rate < b_rate:
            change = "broken"
        elif ak == an:
            change = "same (solved)"
        elif ak == 0:
            change = "same (unsolved)"
        else:
            change = "same (mixed)"
        out.append(Flip(task_id=task, chunk=chunk_of.get(task, -1), base_k=bk, base_n=bn, arm_k=ak, arm_n=an,
                        change=change))
    return out


def results_power(spec: dict[str, Any], n_stream: int, n_heldout: int) -> DesignPower | None:
    """The design's power figures for a recorded experiment (None without a stream)."""
    if not n_stream:
        return None
    return design_power(comparison_designs(spec, n_stream, n_heldout))


async def load_results(
    store: Store, exp_id: str, *, resamples: int = BOOTSTRAP_RESAMPLES, with_power: bool = True
) -> ExperimentResults:
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
    gate_alpha = float(spec.get("gate", {}).get("alpha", 0.05))
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
            result.summary = cl_summary(evals, zero_stream, chunks, resamples=resamples)
        for i in range(n):
            got = _per_task([c for c in evals if c.chunk == -1 and c.cycle == i])
            result.heldout.append(task_rate(got) if got else None)
        final = [c for c in evals if c.cycle == n - 1]
        if final:
            outs = _outcomes(final)
            result.episodes = EpisodeMetrics(
                resolve_rate=task_rate(_per_task(final)),
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
                    testable=bool(v.get("testable", _testable(int(v.get("n", 0) or 0), gate_alpha))),
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
        zero_shot_heldout=task_rate(_per_task(zero_held)) if zero_held else None,
        arms=arms,
        scripted=scripted,
        counts=await experiment_counts(store, exp.id),
        power=results_power(spec, sum(len(c) for c in chunks), len(heldout)) if with_power else None,
        environments=_environments(candidates.values()),
        sandbox_note=await _sandbox_note(store, [c.episode_id for c in cells]),
    )


def _testable(n: int, alpha: float) -> bool:
    """Whether a gate on n frozen tasks could reject at all (for verdicts recorded before the
    gate said so itself)."""
    from looper_engine.evaluation.metrics import smallest_gate_p

    return n == 0 or smallest_gate_p(n) < alpha


def _environments(candidates: Any) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []
    for cand in candidates:
        env = cand.data_stats.get("environment") if isinstance(cand.data_stats, dict) else None
        if isinstance(env, dict) and env not in seen:
            seen.append({str(k): str(v) for k, v in env.items()})
    return seen


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


def fmt_rate(r: Rate | TaskRate | None, *, design: bool = True) -> str:
    """A rate with its interval; a task-level rate says how many tasks and seeds it rests on."""
    if r is None or r.rate is None:
        return "—"
    if isinstance(r, TaskRate):
        return f"{r.rate:.0%} [{r.lo:.0%}, {r.hi:.0%}]" + (f" ({r.design})" if design else "")
    return f"{r.k}/{r.n} = {r.rate:.0%} [{r.lo:.0%}, {r.hi:.0%}]"


def fmt_detectable(c: PairedComparison) -> str:
    """The smallest increase and decrease this comparison detects, or why it cannot."""
    if c.min_detectable is None and c.min_detectable_worse is None:
        return "none at this size"
    up = "—" if c.min_detectable is None else f"+{c.min_detectable:.0%}"
    down = "—" if c.min_detectable_worse is None else f"−{c.min_detectable_worse:.0%}"
    return f"{up} / {down}"


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
    "NO_INTERVAL",
    "cl_summary",
    "design_label",
    "tue_with_interval",
    "fmt_detectable",
    "fmt_measure",
    "fmt_rate",
    "load_results",
    "resolve_experiment",
]
