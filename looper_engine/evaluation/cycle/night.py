"""The night of a learning arm: the day consolidated into a candidate (an adapter trained with
the arm's strategy, a refreshed rule set, new memories), the candidate put to the gate, and
the night recorded with the state the next cycle starts from."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looper_engine.errors import UserError
from looper_engine.evaluation.cycle.backends import BackendPool
from looper_engine.evaluation.cycle.context import Arm, CycleContext, ExperimentCancelled, Phase
from looper_engine.evaluation.cycle.gate import Verdict, adopted_unmeasured, nothing_to_adopt, run_gate
from looper_engine.evaluation.cycle.plan import frozen_items, gate_units, task_positions
from looper_engine.evaluation.cycle.state import ArmState, adapter_hash
from looper_engine.evaluation.skills import digest_episode, extract_rules, remember
from looper_engine.events import TrainProgress
from looper_engine.runtime.doctor import environment
from looper_engine.runtime.mlx_threads import to_mlx_thread
from looper_engine.store.experiments import (
    CandidateRow,
    CellRow,
    NightRow,
    get_candidate,
    get_cells,
    get_night,
    record_candidate,
    record_night,
)


@dataclass(frozen=True)
class TrainingRows:
    """Training rows made from some episodes: the synthesized data set and its rows."""

    data: Any
    train: list[dict[str, Any]]
    valid: list[dict[str, Any]]


@dataclass(frozen=True)
class AdapterTraining:
    """What the adapter layer of a night gave: trained or not (and why not), the loss curve
    and the statistics of the data it was trained on."""

    trained: bool
    why: str = ""
    curve: list[dict[str, Any]] = field(default_factory=list)
    data_stats: dict[str, Any] = field(default_factory=dict)


async def run_night(ctx: CycleContext, arm: Arm, seed: int, cycle: int, state: ArmState) -> ArmState:
    """The night after `cycle`'s day: the state the arm goes on with (the candidate if adopted)."""
    store = ctx.store
    night = await get_night(store, ctx.exp_id, arm.name, seed, cycle)
    if night is not None:
        ctx.skip_units(gate_units(ctx.plan, cycle))
        return ArmState.model_validate(night.state)
    cand = await get_candidate(store, ctx.exp_id, arm.name, seed, cycle)
    if cand is None:
        ctx.check_cancel()
        cand = await make_candidate(ctx, arm, seed, cycle, state)
        await record_candidate(store, cand, adapter_record(ctx, arm, seed, cycle, cand))
    frozen = frozen_items(ctx.plan, cycle)
    verdict: Verdict
    gate = ctx.spec.gate
    if cand.skipped:
        # The gate's cells will not be visited.
        ctx.skip_units(gate_units(ctx.plan, cycle))
        verdict, after = nothing_to_adopt(cand.skipped), state
    elif not gate.enabled and not gate.measure:
        ctx.skip_units(gate_units(ctx.plan, cycle))
        verdict, after = adopted_unmeasured(), ArmState.model_validate(cand.state)
    else:
        candidate = ArmState.model_validate(cand.state)
        verdict = await run_gate(ctx, arm, seed, cycle, frozen, candidate, state)
        after = candidate if verdict.adopted else state
    await record_night(
        store,
        NightRow(exp_id=ctx.exp_id, arm=arm.name, seed=seed, cycle=cycle, adopted=verdict.adopted,
                 verdict=verdict.record, state=after.model_dump(mode="json")),
    )
    ctx.progress(kind="night", arm=arm.name, seed=seed, cycle=cycle, message=verdict.reason)
    return after


async def make_candidate(ctx: CycleContext, arm: Arm, seed: int, cycle: int, state: ArmState) -> CandidateRow:
    """Consolidate the day into a candidate state, layer by layer."""
    store = ctx.store
    started = time.monotonic()
    layers = arm.spec.layers
    new = state.model_copy(deep=True)
    notes: list[str] = []
    skipped: list[str] = []
    changed = False
    own = [c for c in await _day_cells(ctx, arm, seed, cycle, "day") if c.cycle == cycle]
    teacher = [c for c in await _day_cells(ctx, arm, seed, cycle, "teacher") if c.cycle == cycle]
    learned = [c.episode_id for c in own + teacher]
    training = AdapterTraining(trained=False)
    if "adapter" in layers:
        training = await _train(ctx, arm, seed, cycle, state, new, own + teacher)
        if training.trained:
            changed = True
            ctx.outcome.trained += 1
            stats = training.data_stats
            notes.append(
                f"adapter ({arm.spec.strategy_name()}): {stats.get('train_samples', 0)} training and "
                f"{stats.get('valid_samples', 0)} validation samples from "
                f"{stats.get('episodes', 0)} episodes"
                + (f" (its own and {arm.spec.teacher}'s)" if teacher else "")
            )
        else:
            skipped.append(f"adapter: {training.why}")
    if "prompt-skill" in layers or "memory" in layers:
        backend = await ctx.backend(arm, state.adapter_for("")[0] if not state.routes else None)
        digests = {}
        for c in await _day_cells(ctx, arm, seed, cycle, "day"):
            digests[c.episode_id] = await digest_episode(store, c.episode_id, ctx.plan.tasks[c.task_id].statement)
        if "prompt-skill" in layers:
            everything = list(digests.values())
            rules, how = await extract_rules(
                everything, state.rules, backend=backend, extractor=arm.spec.extractor,
                max_rules=arm.spec.rules, seed=seed,
            )
            new.rules, new.rules_how = rules, how
            notes.append(f"prompt skills: {len(rules)} rules ({how})")
            changed = True
        if "memory" in layers:
            added = 0
            for c in own:
                entry = await remember(digests[c.episode_id], backend=backend,
                                       extractor=arm.spec.extractor, seed=seed)
                new.memory.append(entry)
                added += 1
            notes.append(f"memory: {added} new episodes, {len(new.memory)} in all")
            changed = True
    notes.extend(skipped)
    new.version = state.version + 1
    return CandidateRow(
        exp_id=ctx.exp_id,
        arm=arm.name,
        seed=seed,
        cycle=cycle,
        skipped="" if changed else "; ".join(skipped) or "nothing learned",
        state=new.model_dump(mode="json") if changed else {},
        episodes=learned,
        curve=training.curve,
        data_stats=training.data_stats,
        notes=notes,
        seconds=time.monotonic() - started,
    )


async def _day_cells(ctx: CycleContext, arm: Arm, seed: int, upto: int, phase: Phase) -> list[CellRow]:
    """The arm's cells of `phase` up to cycle `upto`, in the order they were run."""
    cells = await get_cells(ctx.store, ctx.exp_id, arm=arm.name, phase=phase)
    order = task_positions(ctx.plan)
    return sorted(
        (c for c in cells if c.seed == seed and c.cycle <= upto),
        key=lambda c: (c.cycle, order.get(c.task_id, len(order))),
    )


async def _rows_for(ctx: CycleContext, arm: Arm, seed: int, episode_ids: list[str]) -> TrainingRows:
    """Training rows (train, valid) from these episodes, made by the agent's own prompt
    builder (consolidation.synth)."""
    from looper_engine.consolidation.synth import Selection, synthesize

    selection = Selection(episode_ids=episode_ids, resolved_only=arm.spec.learn_from == "resolved")
    data = await synthesize(ctx.store, selection, seed=seed)
    return TrainingRows(
        data=data, train=[s.row_with_meta() for s in data.train], valid=[s.row_with_meta() for s in data.valid]
    )


async def _train(
    ctx: CycleContext, arm: Arm, seed: int, cycle: int, state: ArmState, new: ArmState, cells: list[CellRow]
) -> AdapterTraining:
    """Train the night's adapter with the arm's strategy; on success `new` points at it."""
    from looper_engine.consolidation.job import resolve_model_path
    from looper_engine.consolidation.strategies import get_strategy

    ids = [c.episode_id for c in cells if c.resolved or arm.spec.learn_from == "all"]
    if not ids:
        return AdapterTraining(trained=False, why="no resolved episodes to learn from")
    try:
        rows = await _rows_for(ctx, arm, seed, ids)
    except UserError as exc:
        return AdapterTraining(trained=False, why=str(exc))
    data = rows.data
    if not data.stats.format_ok:
        first = data.stats.format_problems[0]
        return AdapterTraining(
            trained=False, why=f"format check failed ({first.episode_id} step {first.step}: {first.reason})"
        )
    history: list[list[dict[str, Any]]] = []
    for earlier in range(cycle):
        earlier_rows = await _history(ctx, arm, seed, earlier)
        if earlier_rows:
            history.append(earlier_rows)
    strategy = get_strategy(arm.spec.strategy_name(), **{"seed": seed, **arm.spec.strategy_options})
    previous = [Path(p) for p in (list(state.routes.values()) if state.routes else state.adapters)]
    out_dir = ctx.adapters_dir / ctx.exp_id / arm.name / f"s{seed}" / f"c{cycle}"
    if out_dir.exists():
        shutil.rmtree(out_dir)  # a night cut short: train it again from the start
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    train_cfg = ctx.spec.arm_train(arm.spec).model_copy(update={"seed": seed})
    model_path = resolve_model_path(BackendPool.base_spec(arm.model))
    loop = asyncio.get_running_loop()
    job_id = f"{ctx.exp_id}/{arm.name}/s{seed}/c{cycle}"

    def on_progress(job: str, info: Any) -> None:
        loop.call_soon_threadsafe(_train_progress, ctx, job_id, arm, seed, cycle, info)

    try:
        outcome = await to_mlx_thread(
            strategy.consolidate,
            model_path,
            rows.train,
            history,
            previous,
            out_dir,
            train_cfg,
            valid_rows=rows.valid,
            on_progress=on_progress,
            cancel=ctx.cancelled,
        )
    except UserError as exc:
        shutil.rmtree(out_dir, ignore_errors=True)
        return AdapterTraining(trained=False, why=str(exc))
    if outcome.status == "cancelled":
        shutil.rmtree(out_dir, ignore_errors=True)
        raise ExperimentCancelled()
    curve = [{"job": name, **p.model_dump()} for name, res in outcome.results.items() for p in res.curve]
    if outcome.routes:
        new.routes = {fam: str(p) for fam, p in outcome.routes.items()}
        new.route_hashes = {fam: await asyncio.to_thread(adapter_hash, p) for fam, p in outcome.routes.items()}
        new.adapter, new.adapter_hash = None, ""
    else:
        assert outcome.adapter_dir is not None
        new.adapter = str(outcome.adapter_dir)
        new.adapter_hash = await asyncio.to_thread(adapter_hash, outcome.adapter_dir)
        new.adapters = [*state.adapters, new.adapter]
    stats = data.stats.model_dump(exclude={"format_problems"})
    stats["data_hash"] = data.data_hash
    stats["strategy_notes"] = outcome.notes
    stats["environment"] = environment()
    return AdapterTraining(trained=True, curve=curve, data_stats=stats)


async def _history(ctx: CycleContext, arm: Arm, seed: int, cycle: int) -> list[dict[str, Any]]:
    """The training rows of an earlier night (what replay and ewc look back at)."""
    key = (arm.name, seed, cycle)
    if key not in ctx.history_rows:
        cand = await get_candidate(ctx.store, ctx.exp_id, arm.name, seed, cycle)
        rows: list[dict[str, Any]] = []
        if cand is not None and cand.data_stats:
            cells = [
                c for c in await get_cells(ctx.store, ctx.exp_id, arm=arm.name)
                if c.seed == seed and c.cycle == cycle and c.phase in ("day", "teacher")
            ]
            ids = [c.episode_id for c in cells if c.resolved or arm.spec.learn_from == "all"]
            try:
                earlier = await _rows_for(ctx, arm, seed, ids)
                rows = earlier.train + earlier.valid
            except UserError:
                rows = []
        ctx.history_rows[key] = rows
    return ctx.history_rows[key]


def _train_progress(ctx: CycleContext, job_id: str, arm: Arm, seed: int, cycle: int, info: Any) -> None:
    ctx.bus.publish(info.to_event(job_id) if hasattr(info, "to_event") else TrainProgress(
        job_id=job_id, iteration=info.iteration, iterations=info.iterations))
    ctx.progress(kind="train", arm=arm.name, seed=seed, cycle=cycle, iteration=info.iteration,
                 iterations=info.iterations, train_loss=info.train_loss, val_loss=info.val_loss)


def adapter_record(ctx: CycleContext, arm: Arm, seed: int, cycle: int, cand: CandidateRow) -> dict[str, Any] | None:
    """The adapter registry's row for the candidate's adapter; None when it has none."""
    if cand.skipped or "adapter" not in arm.spec.layers or not cand.data_stats:
        return None
    state = ArmState.model_validate(cand.state)
    path = state.adapter or (str(Path(next(iter(state.routes.values()))).parent) if state.routes else None)
    if path is None:
        return None
    from looper_engine.consolidation.job import resolve_model_path

    return {
        "id": f"{ctx.exp_id}.{arm.name}.s{seed}.c{cycle}",
        "parent_id": None,
        "strategy": arm.spec.strategy_name(),
        "base_model": str(resolve_model_path(BackendPool.base_spec(arm.model)).resolve()),
        "data_hash": str(cand.data_stats.get("data_hash", "")),
        "data_stats": json.dumps(cand.data_stats),
        "hyperparams": json.dumps(
            {
                **ctx.spec.arm_train(arm.spec).model_dump(),
                "seed": seed,
                "strategy_options": arm.spec.strategy_options,
            }
        ),
        "curve": json.dumps(cand.curve),
        "metrics": json.dumps({"seconds": cand.seconds, "experiment": ctx.exp_id}),
        "path": path,
        "status": "ready",
        "created_at": time.time(),
    }


__all__ = ["AdapterTraining", "TrainingRows", "adapter_record", "make_candidate", "run_night"]
