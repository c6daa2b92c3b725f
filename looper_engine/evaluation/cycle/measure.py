"""Measuring cells, for the day, the evaluations and the gate.

A cell is one task measured under one arm state. Its conditions (model, adapter hash, the
exact system prompt, the agent config) have a fingerprint; a cell already recorded is read
back, one whose conditions were measured before reuses that episode, one whose episode
finished before the process stopped is recovered, and the rest are run: one adapter at a
time in the model, `concurrency` episodes at once within it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Literal

from looper_engine.agent.episode import Episode, EpisodeResult, new_episode_id
from looper_engine.agent.prompts import build_system_prompt
from looper_engine.agent.runner import new_run_id
from looper_engine.config import AgentConfig
from looper_engine.evaluation.cycle.backends import BackendPool
from looper_engine.evaluation.cycle.context import CycleContext, ExperimentCancelled, ExperimentStopped, Round
from looper_engine.evaluation.cycle.plan import Item
from looper_engine.evaluation.cycle.state import ArmState, fingerprint
from looper_engine.evaluation.skills import memory_section, retrieve, rules_section
from looper_engine.events import RunFinished, RunStarted
from looper_engine.models.base import Backend
from looper_engine.store.experiments import (
    CellRow,
    add_pending,
    drop_pending,
    find_cell,
    find_measurement,
    pending_episodes,
    record_cell,
    tool_call_count,
)


@dataclass(frozen=True)
class Conditions:
    """What a task runs under: the agent config, the system prompt, the adapter (None: the
    base model) and the fingerprint that identifies them all."""

    config: AgentConfig
    prompt: str
    adapter: str | None
    fingerprint: str


@dataclass(frozen=True)
class ToRun:
    """A cell with no measurement to read back, reuse or recover: its episode must run."""

    chunk: int
    task_id: str
    conditions: Conditions


def conditions(ctx: CycleContext, where: Round, state: ArmState, task_id: str) -> Conditions:
    """The config, system prompt, adapter and fingerprint `task_id` runs under."""
    arm = where.arm
    info = ctx.plan.tasks[task_id]
    config = arm.spec.agent_config(ctx.spec.limits, where.seed, ctx.spec.agent)
    parts = [build_system_prompt(config)]
    if not arm.teacher:
        layers = arm.spec.layers
        if "prompt-skill" in layers and state.rules:
            parts.append(rules_section(state.rules))
        if "memory" in layers and state.memory:
            parts.append(memory_section(retrieve(state.memory, info.statement, arm.spec.memory_k)))
    prompt = "\n\n".join(parts)
    adapter, a_hash = state.adapter_for(info.family)
    fp = fingerprint(BackendPool.base_spec(arm.model), a_hash, prompt, config)
    return Conditions(config=config, prompt=prompt, adapter=adapter, fingerprint=fp)


async def measure_cells(ctx: CycleContext, where: Round, items: list[Item], state: ArmState) -> dict[str, CellRow]:
    """Measure each (chunk, task) of `items` for this arm state: recorded cells are read back,
    conditions measured before are reused, the rest are run (concurrently, per adapter)."""
    store = ctx.store
    out: dict[str, CellRow] = {}
    todo: list[ToRun] = []
    for chunk, task_id in items:
        ctx.check_cancel()
        cell = await find_cell(store, ctx.exp_id, where.arm.name, where.seed, where.cycle, where.phase, chunk, task_id)
        if cell is not None:
            out[task_id] = cell
            ctx.outcome.recorded += 1
            ctx.tick(where, task_id, cell.resolved, "recorded")
            continue
        cond = conditions(ctx, where, state, task_id)
        earlier = await find_measurement(store, ctx.exp_id, cond.fingerprint, task_id, where.seed)
        if earlier is not None:
            cell = earlier.model_copy(
                update={
                    "arm": where.arm.name,
                    "seed": where.seed,
                    "cycle": where.cycle,
                    "phase": where.phase,
                    "chunk": chunk,
                    "reused": True,
                    "created_at": time.time(),
                }
            )
            await record_cell(store, cell)
            out[task_id] = cell
            ctx.outcome.reused += 1
            ctx.tick(where, task_id, cell.resolved, "reused")
            continue
        recovered = await _recover(ctx, where, chunk, task_id, cond.fingerprint)
        if recovered is not None:
            out[task_id] = recovered
            continue
        todo.append(ToRun(chunk=chunk, task_id=task_id, conditions=cond))
    # One adapter at a time in the model; within an adapter, `concurrency` episodes at once.
    groups: dict[str | None, list[ToRun]] = {}
    for item in todo:
        groups.setdefault(item.conditions.adapter, []).append(item)
    for adapter, group in groups.items():
        for cell in await _run_group(ctx, where, adapter, group):
            out[cell.task_id] = cell
    return out


async def _run_group(ctx: CycleContext, where: Round, adapter: str | None, group: list[ToRun]) -> list[CellRow]:
    """Run the episodes of one adapter as one run (its RunStarted and RunFinished on the bus)."""
    ctx.check_cancel()
    backend = await ctx.backend(where.arm, adapter)
    run_id = new_run_id()
    ctx.bus.publish(
        RunStarted(
            run_id=run_id,
            suite=ctx.spec.stream.source,
            model=backend.spec,
            model_label=backend.label,
            scripted=backend.scripted,
            task_ids=[g.task_id for g in group],
            concurrency=ctx.spec.limits.concurrency,
            config=group[0].conditions.config.model_dump(),
            name=f"{ctx.exp_id}: {where.arm.name} seed {where.seed} cycle {where.cycle} {where.phase}",
        )
    )
    sem = asyncio.Semaphore(ctx.spec.limits.concurrency)

    async def one(item: ToRun) -> CellRow:
        async with sem:
            return await _measure(ctx, where, item, backend, run_id)

    status: Literal["finished", "cancelled", "errored"] = "errored"
    cells: list[CellRow] = []
    try:
        cells = await all_or_none([one(item) for item in group])
        status = "finished"
    except ExperimentCancelled:
        status = "cancelled"
        raise
    finally:
        ctx.bus.publish(
            RunFinished(
                run_id=run_id,
                status=status,
                resolved=sum(c.resolved for c in cells),
                total=len(group),
            )
        )
    return cells


async def all_or_none(coros: list[Any]) -> list[Any]:
    """Like gather, but the first failure cancels the others (and is raised once they stop):
    no episode keeps running, unrecorded, after the experiment has stopped."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception()), None)
        if failed is not None:
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failed.exception()  # type: ignore[misc]
        return [t.result() for t in tasks]
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _measure(ctx: CycleContext, where: Round, item: ToRun, backend: Backend, run_id: str) -> CellRow:
    arm = where.arm
    cond = item.conditions
    ctx.check_cancel()
    async with ctx.plan.source.materialize(item.task_id, ctx.scratch / "swe") as task:
        if ctx.ray_executor is not None:
            # On a Ray worker; its events are published on ctx.bus when it is done.
            episode_id = new_episode_id()
            await add_pending(ctx.store, ctx.exp_id, cond.fingerprint, item.task_id, where.seed, episode_id)
            result: EpisodeResult = await ctx.ray_executor.run_episode(
                task, model=BackendPool.base_spec(arm.model), adapter=cond.adapter, adapters_dir=ctx.adapters_dir,
                config=cond.config, system_prompt=cond.prompt, run_id=run_id, episode_id=episode_id, bus=ctx.bus,
            )
        else:
            ep = Episode(task, backend, cond.config, ctx.bus, run_id=run_id, system_prompt=cond.prompt)
            await add_pending(ctx.store, ctx.exp_id, cond.fingerprint, item.task_id, where.seed, ep.id)
            ctx.episodes.add(ep)
            try:
                result = await ep.run()
            finally:
                ctx.episodes.discard(ep)
    # The cell may only point at an episode whose events are committed.
    await ctx.writer.flush()
    if result.status == "cancelled":
        raise ExperimentCancelled()
    if result.status not in ("resolved", "failed"):
        raise ExperimentStopped(
            f"{arm.name}: {item.task_id} could not be run ({result.reason}); "
            "fix the model and run the experiment again to continue"
        )
    cell = await _cell_of(ctx, where, item.chunk, item.task_id, cond.fingerprint, result.episode_id)
    if cell is None:
        # Its events were flushed; a store that cannot read them back is not to be trusted.
        raise ExperimentStopped(
            f"{arm.name}: episode {result.episode_id} of {item.task_id} finished but its row in "
            f"{ctx.store.path} does not say so; run the experiment again to continue"
        )
    await record_cell(ctx.store, cell)
    ctx.outcome.ran += 1
    ctx.tick(where, item.task_id, cell.resolved, "ran")
    return cell


async def _cell_of(
    ctx: CycleContext, where: Round, chunk: int, task_id: str, fp: str, episode_id: str
) -> CellRow | None:
    """The cell a finished episode measured, from its committed rows; None if it did not finish."""
    store = ctx.store
    ep = await store.episode(episode_id)
    if ep is None or ep.id != episode_id or ep.status not in ("resolved", "failed"):
        return None
    score = await store.score(episode_id) or {}
    return CellRow(
        exp_id=ctx.exp_id,
        arm=where.arm.name,
        seed=where.seed,
        cycle=where.cycle,
        phase=where.phase,
        chunk=chunk,
        task_id=task_id,
        episode_id=episode_id,
        resolved=ep.resolved,
        fingerprint=fp,
        status=ep.status,
        steps=ep.steps,
        tokens=ep.prompt_tokens + ep.completion_tokens,
        tool_calls=await tool_call_count(store, episode_id),
        loop_alarms=ep.loop_alarms,
        duration_s=ep.duration_s,
        error_signature=str(score.get("error_signature") or ""),
    )


async def _recover(ctx: CycleContext, where: Round, chunk: int, task_id: str, fp: str) -> CellRow | None:
    """An episode of these conditions that finished before the process stopped, whose cell
    was not recorded yet: its cell now. Unfinished ones are forgotten (and run again)."""
    for episode_id in await pending_episodes(ctx.store, ctx.exp_id, fp, task_id, where.seed):
        cell = await _cell_of(ctx, where, chunk, task_id, fp, episode_id)
        if cell is None:
            await drop_pending(ctx.store, ctx.exp_id, episode_id)
            continue
        await record_cell(ctx.store, cell)
        ctx.outcome.recorded += 1
        ctx.tick(where, task_id, cell.resolved, "recorded")
        return cell
    return None


__all__ = ["Conditions", "ToRun", "all_or_none", "conditions", "measure_cells"]
