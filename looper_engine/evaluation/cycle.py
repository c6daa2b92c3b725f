"""The day/night cycle of an experiment.

For every seed (one independent learning line) the base model is first evaluated zero-shot
on every chunk (z[j]) and on the held-out set. Then, for cycle i = 0 .. N-1 and every arm:

- **day**: the arm, as it is now, runs the tasks of chunk i (and its teacher, if it has one);
  every step is recorded like any other run.
- **night**: a learning arm consolidates the day into a *candidate*: an adapter trained with
  its strategy, a refreshed rule set, new memories. The candidate is evaluated on the frozen
  set (every task learned so far) and the regression gate compares it, task by task, with the
  arm as it was (exact one-sided McNemar); it is adopted only if it does not lose.
- **evaluate**: the arm as adopted runs chunks 0..i (a[i][j], j <= i), chunk i+1 (a[i][i+1],
  which forward transfer needs) and the held-out set.

Static arms (base, framework) have no day or night: their state never changes.

A measurement is identified by its conditions: the model, the adapter's content hash, the
exact system prompt the task gets (rules and retrieved memories included) and the agent
config (seed included). Conditions measured once are never measured again: the cell reuses
the episode (`reused`). This is what makes a static arm cost one pass over the stream, a
rejected candidate cost nothing more, and a day cost nothing when the previous evaluation
already ran that chunk under the same conditions.

Every finished unit (a cell, a candidate, a night) is one row written in one transaction, so
a killed experiment, run again, skips all that is recorded and redoes only what was in
flight (an interrupted episode, an unfinished training). With deterministic models (greedy
decoding, seeded samplers, seeded training) the results equal those of an uninterrupted run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from looper_engine.agent.episode import Episode, EpisodeResult, new_episode_id
from looper_engine.agent.prompts import build_system_prompt
from looper_engine.agent.runner import new_run_id
from looper_engine.config import AgentConfig
from looper_engine.errors import UserError
from looper_engine.evaluation.experiment import ArmSpec, ExperimentPlan
from looper_engine.evaluation.metrics import regression_gate
from looper_engine.evaluation.skills import (
    MemoryEntry,
    digest_episode,
    extract_rules,
    memory_section,
    remember,
    retrieve,
    rules_section,
)
from looper_engine.events import EventBus, RunFinished, RunStarted, TrainProgress
from looper_engine.models.base import Backend
from looper_engine.runtime.doctor import environment
from looper_engine.runtime.mlx_threads import to_mlx_thread
from looper_engine.store.db import Store
from looper_engine.store.experiments import (
    CandidateRow,
    CellRow,
    NightRow,
    add_pending,
    claim_experiment,
    drop_pending,
    find_cell,
    find_measurement,
    get_candidate,
    get_cells,
    get_night,
    pending_episodes,
    record_candidate,
    record_cell,
    record_night,
    set_experiment_status,
    tool_call_count,
)
from looper_engine.store.writer import StoreWriter

Phase = Literal["eval", "day", "teacher", "candidate", "incumbent"]


class ExperimentStopped(UserError):
    """The experiment cannot go on (a model backend failed); what finished is recorded."""


class ExperimentCancelled(Exception):
    """Cancelled by the user; what finished is recorded and a rerun continues from there."""


# --- progress ---------------------------------------------------------------------------------


class CycleProgress(BaseModel):
    """What the experiment is doing, for a progress view. Plain data, sent to a callback."""

    kind: Literal["plan", "cell", "train", "night", "finished"]
    exp_id: str
    arm: str = ""
    seed: int = 0
    cycle: int = -1
    phase: str = ""
    task_id: str = ""
    resolved: bool | None = None
    how: Literal["ran", "reused", "recorded", ""] = ""
    done: int = 0
    total: int = 0
    message: str = ""
    iteration: int | None = None
    iterations: int | None = None
    train_loss: float | None = None
    val_loss: float | None = None


ProgressCallback = Callable[[CycleProgress], None]


class ExperimentOutcome(BaseModel):
    exp_id: str
    status: Literal["finished", "cancelled"]
    ran: int = 0
    reused: int = 0
    recorded: int = 0
    trained: int = 0
    seconds: float = 0.0


async def _all_or_none(coros: list[Any]) -> list[Any]:
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


# --- arm state --------------------------------------------------------------------------------


class ArmState(BaseModel):
    """What an arm has learned so far: the conditions its next episodes run under."""

    adapter: str | None = None
    adapter_hash: str = ""
    routes: dict[str, str] = Field(default_factory=dict)
    route_hashes: dict[str, str] = Field(default_factory=dict)
    adapters: list[str] = Field(default_factory=list, description="adopted adapters, oldest first")
    rules: list[str] = Field(default_factory=list)
    rules_how: str = ""
    memory: list[MemoryEntry] = Field(default_factory=list)
    version: int = 0

    def adapter_for(self, family: str) -> tuple[str | None, str]:
        if self.routes:
            from looper_engine.consolidation.strategies import DEFAULT_FAMILY

            if family in self.routes:
                return self.routes[family], self.route_hashes.get(family, "")
            if DEFAULT_FAMILY in self.routes:
                return self.routes[DEFAULT_FAMILY], self.route_hashes.get(DEFAULT_FAMILY, "")
            return None, ""
        return self.adapter, self.adapter_hash


def adapter_hash(folder: str | Path) -> str:
    """Content hash of an adapter folder's weights and config: the same training gives the
    same hash, so a retrained adapter matches measurements of the one it replaces."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapters.safetensors"):
        path = Path(folder) / name
        if name == "adapter_config.json":
            # The config records absolute paths and timestamps; only the LoRA shape matters.
            cfg = json.loads(path.read_text())
            data = json.dumps(
                {k: cfg.get(k) for k in ("fine_tune_type", "num_layers", "lora_parameters")}, sort_keys=True
            ).encode()
        else:
            data = path.read_bytes()
        digest.update(data)
    return digest.hexdigest()[:20]


def fingerprint(model: str, adapter: str, system_prompt: str, config: AgentConfig) -> str:
    data = json.dumps(
        {"model": model, "adapter": adapter, "prompt": system_prompt, "config": config.model_dump()},
        sort_keys=True,
    )
    return hashlib.sha256(data.encode()).hexdigest()[:24]


# --- backends ---------------------------------------------------------------------------------


class BackendPool:
    """One backend per model (an MLX model is loaded once; adapters are swapped in)."""

    def __init__(self, adapters_dir: Path | None = None) -> None:
        self.adapters_dir = adapters_dir
        self._backends: dict[str, Backend] = {}
        self._checked: set[str] = set()
        self._loaded: dict[str, str | None] = {}

    @staticmethod
    def base_spec(spec: str) -> str:
        """The model without an adapter: `mlx:PATH@ADAPTER` -> `mlx:PATH`."""
        if spec.startswith("mlx:") and "@" in spec:
            return spec.rsplit("@", 1)[0]
        return spec

    def initial_adapter(self, spec: str) -> Path | None:
        """The adapter an `mlx:PATH@ADAPTER` spec starts from."""
        if spec.startswith("mlx:") and "@" in spec:
            from looper_engine.models.mlx_backend import resolve_adapter

            return resolve_adapter(spec.rsplit("@", 1)[1], self.adapters_dir)
        return None

    def get(self, spec: str) -> Backend:
        from looper_engine.models.registry import create_backend

        key = self.base_spec(spec)
        if key not in self._backends:
            self._backends[key] = create_backend(key, adapters_dir=self.adapters_dir)
            self._loaded[key] = None
        return self._backends[key]

    async def checked(self, spec: str) -> Backend:
        backend = self.get(spec)
        key = self.base_spec(spec)
        if key not in self._checked:
            await backend.check()
            self.initial_adapter(spec)
            self._checked.add(key)
        return backend

    async def use_adapter(self, spec: str, adapter: str | None) -> Backend:
        """The backend for `spec`, with `adapter` (None: the base model) in place."""
        backend = await self.checked(spec)
        key = self.base_spec(spec)
        if self._loaded.get(key) != adapter:
            load = getattr(backend, "load_adapter", None)
            if load is None:
                raise UserError(f"{key} cannot load adapters; the adapter layer needs an mlx: model")
            await load(adapter)
            self._loaded[key] = adapter
        return backend

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()


# --- the runner -------------------------------------------------------------------------------


class _Arm:
    """An arm at run time: its spec and model."""

    def __init__(self, spec: ArmSpec, model: str, *, teacher_of: str | None = None) -> None:
        self.spec = spec
        self.model = model
        self.name = teacher_of or spec.name
        self.teacher = teacher_of is not None


class ExperimentRunner:
    """Run (or continue) an experiment. Construct, then `await run()`.

    Episodes' events go to `bus` (a new one by default); a StoreWriter on that bus records them
    (`writer`, or one made here). Progress goes to `on_progress` as CycleProgress records.
    With `ray` (a Ray address: auto, local, ray://HOST:PORT, HOST:PORT) the episodes run on Ray
    workers and their events are published here once each finishes (evaluation/distributed.py)."""

    def __init__(
        self,
        plan: ExperimentPlan,
        db_path: Path,
        *,
        adapters_dir: Path = Path("adapters"),
        bus: EventBus | None = None,
        writer: StoreWriter | None = None,
        backends: BackendPool | None = None,
        on_progress: ProgressCallback | None = None,
        ray: str | None = None,
    ) -> None:
        self.plan = plan
        self.spec = plan.spec
        self.exp_id = plan.exp_id
        self.db_path = Path(db_path)
        # Absolute, because arm states record adapter paths and a rerun may start elsewhere.
        self.adapters_dir = Path(adapters_dir).absolute()
        self.bus = bus or EventBus()
        self._writer = writer
        self._own_writer = writer is None
        self.backends = backends or BackendPool(self.adapters_dir)
        self._own_backends = backends is None
        self.on_progress = on_progress
        self.store: Store | None = None
        self._cancel = threading.Event()
        self._episodes: set[Episode] = set()
        self._outcome = ExperimentOutcome(exp_id=self.exp_id, status="finished")
        self._done = 0
        self._total = 0
        self._history_rows: dict[tuple[str, int, int], list[dict[str, Any]]] = {}
        self._scratch: Path | None = None
        self._order: dict[str, int] = {}
        self.ray_address = ray
        #: The Ray executor while a `ray` run is on (its `workers` say where each episode ran).
        self.ray_executor: Any = None

    # -- control ---------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop soon: episodes in flight are cancelled (and not recorded), training stops."""
        self._cancel.set()
        for ep in list(self._episodes):
            ep.control.cancel()
        if self.ray_executor is not None:
            self.ray_executor.cancel_all()

    def _check_cancel(self) -> None:
        if self._cancel.is_set():
            raise ExperimentCancelled()

    def _progress(self, **fields: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(CycleProgress(exp_id=self.exp_id, done=self._done, total=self._total, **fields))

    # -- the whole run ---------------------------------------------------------------------

    async def run(self) -> ExperimentOutcome:
        started = time.monotonic()
        if self.ray_address is not None and self.ray_executor is None:
            from looper_engine.evaluation.distributed import RayExecutor

            # Before the store is touched: an unreachable cluster runs nothing.
            self.ray_executor = RayExecutor(self.ray_address).start()
        try:
            return await self._run_with_store(started)
        finally:
            if self.ray_executor is not None:
                self.ray_executor.close()

    async def _run_with_store(self, started: float) -> ExperimentOutcome:
        store = await Store.open(self.db_path)
        self.store = store
        writer_store: Store | None = None
        try:
            await claim_experiment(
                store, self.exp_id, self.spec.spec_hash(), self.spec.model_dump(mode="json"), self.plan.path
            )
            if self._writer is None:
                # The writer gets its own connection: its transactions and ours never interleave.
                writer_store = await Store.open(self.db_path)
                self._writer = StoreWriter(writer_store, self.bus).start()
            self._scratch = Path(tempfile.mkdtemp(prefix="looper-exp-"))
            self._total = self._planned_units()
            self._progress(kind="plan", message=f"{self.plan.n_chunks} chunks, {len(self.spec.arms)} arms")
            try:
                await self._run_all()
            except ExperimentCancelled:
                self._outcome.status = "cancelled"
                await set_experiment_status(store, self.exp_id, "cancelled")
            except BaseException:
                await set_experiment_status(store, self.exp_id, "stopped")
                raise
            else:
                await set_experiment_status(store, self.exp_id, "finished")
                self._progress(kind="finished", message="finished")
        finally:
            if self._own_writer and self._writer is not None:
                await self._writer.close()
            if writer_store is not None:
                await writer_store.close()
            if self._own_backends:
                await self.backends.aclose()
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
            await store.close()
            self.store = None
        self._outcome.seconds = time.monotonic() - started
        return self._outcome

    def _planned_units(self) -> int:
        n = self.plan.n_chunks
        sizes = [len(c) for c in self.plan.chunks]
        held = len(self.plan.heldout)
        per_seed = sum(sizes) + held
        for arm in self.spec.arms:
            for i in range(n):
                evals = sum(sizes[: min(i + 2, n)]) + held
                if arm.learns:
                    seen = sum(sizes[: i + 1])
                    teacher = sizes[i] if arm.teacher else 0
                    per_seed += sizes[i] + teacher + 2 * seen + evals
                else:
                    per_seed += evals
        return per_seed * len(self.spec.seeds)

    async def _run_all(self) -> None:
        spec = self.spec
        zero = _Arm(spec.zero_shot_arm(), spec.model)
        states: dict[tuple[str, int], ArmState] = {}
        for seed in spec.seeds:
            items = [(j, t) for j in range(self.plan.n_chunks) for t in self.plan.chunks[j]]
            items += [(-1, t) for t in self.plan.heldout]
            await self._cells(zero, seed, 0, "eval", items, ArmState())
        for cycle in range(self.plan.n_chunks):
            for arm_spec in spec.arms:
                arm = _Arm(arm_spec, spec.arm_model(arm_spec))
                for seed in spec.seeds:
                    key = (arm.name, seed)
                    state = states[key] if key in states else await self._initial_state(arm)
                    if arm_spec.learns:
                        chunk = [(cycle, t) for t in self.plan.chunks[cycle]]
                        await self._cells(arm, seed, cycle, "day", chunk, state)
                        if arm_spec.teacher:
                            teacher = _Arm(arm_spec, arm_spec.teacher, teacher_of=arm.name)
                            await self._cells(teacher, seed, cycle, "teacher", chunk, ArmState())
                        state = await self._night(arm, seed, cycle, state)
                    last = min(cycle + 1, self.plan.n_chunks - 1)
                    items = [(j, t) for j in range(last + 1) for t in self.plan.chunks[j]]
                    items += [(-1, t) for t in self.plan.heldout]
                    await self._cells(arm, seed, cycle, "eval", items, state)
                    states[key] = state

    async def _initial_state(self, arm: _Arm) -> ArmState:
        adapter = self.backends.initial_adapter(arm.model)
        if adapter is None:
            return ArmState()
        h = await asyncio.to_thread(adapter_hash, adapter)
        return ArmState(adapter=str(adapter), adapter_hash=h)

    # -- conditions ------------------------------------------------------------------------

    def _conditions(self, arm: _Arm, state: ArmState, seed: int, task_id: str) -> tuple[AgentConfig, str, str | None, str]:
        """The config, system prompt, adapter and fingerprint `task_id` runs under."""
        info = self.plan.tasks[task_id]
        config = arm.spec.agent_config(self.spec.limits, seed, self.spec.agent)
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
        return config, prompt, adapter, fp

    # -- cells -----------------------------------------------------------------------------

    async def _cells(
        self,
        arm: _Arm,
        seed: int,
        cycle: int,
        phase: Phase,
        items: list[tuple[int, str]],
        state: ArmState,
    ) -> dict[str, CellRow]:
        """Measure each (chunk, task) of `items` for this arm state: recorded cells are read back,
        conditions measured before are reused, the rest are run (concurrently, per adapter)."""
        assert self.store is not None
        store = self.store
        out: dict[str, CellRow] = {}
        todo: list[tuple[int, str, AgentConfig, str, str | None, str]] = []
        for chunk, task_id in items:
            self._check_cancel()
            cell = await find_cell(store, self.exp_id, arm.name, seed, cycle, phase, chunk, task_id)
            if cell is not None:
                out[task_id] = cell
                self._outcome.recorded += 1
                self._tick(arm, seed, cycle, phase, task_id, cell.resolved, "recorded")
                continue
            config, prompt, adapter, fp = self._conditions(arm, state, seed, task_id)
            earlier = await find_measurement(store, self.exp_id, fp, task_id, seed)
            if earlier is not None:
                cell = earlier.model_copy(
                    update={
                        "arm": arm.name,
                        "seed": seed,
                        "cycle": cycle,
                        "phase": phase,
                        "chunk": chunk,
                        "reused": True,
                        "created_at": time.time(),
                    }
                )
                await record_cell(store, cell)
                out[task_id] = cell
                self._outcome.reused += 1
                self._tick(arm, seed, cycle, phase, task_id, cell.resolved, "reused")
                continue
            recovered = await self._recover(arm, seed, cycle, phase, chunk, task_id, fp)
            if recovered is not None:
                out[task_id] = recovered
                continue
            todo.append((chunk, task_id, config, prompt, adapter, fp))
        # One adapter at a time in the model; within an adapter, `concurrency` episodes at once.
        groups: dict[str | None, list[tuple[int, str, AgentConfig, str, str | None, str]]] = {}
        for item in todo:
            groups.setdefault(item[4], []).append(item)
        for adapter, group in groups.items():
            self._check_cancel()
            backend = await self._backend(arm, adapter)
            run_id = new_run_id()
            self.bus.publish(
                RunStarted(
                    run_id=run_id,
                    suite=self.spec.stream.source,
                    model=backend.spec,
                    model_label=backend.label,
                    scripted=backend.scripted,
                    task_ids=[g[1] for g in group],
                    concurrency=self.spec.limits.concurrency,
                    config=group[0][2].model_dump(),
                    name=f"{self.exp_id}: {arm.name} seed {seed} cycle {cycle} {phase}",
                )
            )
            sem = asyncio.Semaphore(self.spec.limits.concurrency)

            async def one(item: tuple[int, str, AgentConfig, str, str | None, str], _b: Backend = backend,
                          _run: str = run_id, _sem: asyncio.Semaphore = sem) -> CellRow:
                async with _sem:
                    return await self._measure(arm, seed, cycle, phase, item, _b, _run)

            status: Literal["finished", "cancelled", "errored"] = "errored"
            cells: list[CellRow] = []
            try:
                cells = await _all_or_none([one(item) for item in group])
                status = "finished"
            except ExperimentCancelled:
                status = "cancelled"
                raise
            finally:
                self.bus.publish(
                    RunFinished(
                        run_id=run_id,
                        status=status,
                        resolved=sum(c.resolved for c in cells),
                        total=len(group),
                    )
                )
            for cell in cells:
                out[cell.task_id] = cell
        return out

    async def _backend(self, arm: _Arm, adapter: str | None) -> Backend:
        if adapter is None and not arm.model.startswith("mlx:"):
            return await self.backends.checked(arm.model)
        return await self.backends.use_adapter(arm.model, adapter)

    async def _measure(
        self,
        arm: _Arm,
        seed: int,
        cycle: int,
        phase: Phase,
        item: tuple[int, str, AgentConfig, str, str | None, str],
        backend: Backend,
        run_id: str,
    ) -> CellRow:
        assert self.store is not None and self._writer is not None and self._scratch is not None
        chunk, task_id, config, prompt, _adapter, fp = item
        self._check_cancel()
        async with self.plan.source.materialize(task_id, self._scratch / "swe") as task:
            if self.ray_executor is not None:
                # On a Ray worker; its events are published on self.bus when it is done.
                episode_id = new_episode_id()
                await add_pending(self.store, self.exp_id, fp, task_id, seed, episode_id)
                result: EpisodeResult = await self.ray_executor.run_episode(
                    task, model=BackendPool.base_spec(arm.model), adapter=_adapter, adapters_dir=self.adapters_dir,
                    config=config, system_prompt=prompt, run_id=run_id, episode_id=episode_id, bus=self.bus,
                )
            else:
                ep = Episode(task, backend, config, self.bus, run_id=run_id, system_prompt=prompt)
                await add_pending(self.store, self.exp_id, fp, task_id, seed, ep.id)
                self._episodes.add(ep)
                try:
                    result = await ep.run()
                finally:
                    self._episodes.discard(ep)
        # The cell may only point at an episode whose events are committed.
        await self._writer.flush()
        if result.status == "cancelled":
            raise ExperimentCancelled()
        if result.status not in ("resolved", "failed"):
            raise ExperimentStopped(
                f"{arm.name}: {task_id} could not be run ({result.reason}); "
                "fix the model and run the experiment again to continue"
            )
        cell = await self._cell_of(arm, seed, cycle, phase, chunk, task_id, fp, result.episode_id)
        assert cell is not None
        await record_cell(self.store, cell)
        self._outcome.ran += 1
        self._tick(arm, seed, cycle, phase, task_id, cell.resolved, "ran")
        return cell

    async def _cell_of(
        self, arm: _Arm, seed: int, cycle: int, phase: Phase, chunk: int, task_id: str, fp: str, episode_id: str
    ) -> CellRow | None:
        """The cell a finished episode measured, from its committed rows; None if it did not finish."""
        assert self.store is not None
        ep = await self.store.episode(episode_id)
        if ep is None or ep.id != episode_id or ep.status not in ("resolved", "failed"):
            return None
        score = await self.store.score(episode_id) or {}
        return CellRow(
            exp_id=self.exp_id,
            arm=arm.name,
            seed=seed,
            cycle=cycle,
            phase=phase,
            chunk=chunk,
            task_id=task_id,
            episode_id=episode_id,
            resolved=ep.resolved,
            fingerprint=fp,
            status=ep.status,
            steps=ep.steps,
            tokens=ep.prompt_tokens + ep.completion_tokens,
            tool_calls=await tool_call_count(self.store, episode_id),
            loop_alarms=ep.loop_alarms,
            duration_s=ep.duration_s,
            error_signature=str(score.get("error_signature") or ""),
        )

    async def _recover(
        self, arm: _Arm, seed: int, cycle: int, phase: Phase, chunk: int, task_id: str, fp: str
    ) -> CellRow | None:
        """An episode of these conditions that finished before the process stopped, whose cell
        was not recorded yet: its cell now. Unfinished ones are forgotten (and run again)."""
        assert self.store is not None
        for episode_id in await pending_episodes(self.store, self.exp_id, fp, task_id, seed):
            cell = await self._cell_of(arm, seed, cycle, phase, chunk, task_id, fp, episode_id)
            if cell is None:
                await drop_pending(self.store, self.exp_id, episode_id)
                continue
            await record_cell(self.store, cell)
            self._outcome.recorded += 1
            self._tick(arm, seed, cycle, phase, task_id, cell.resolved, "recorded")
            return cell
        return None

    def _tick(self, arm: _Arm, seed: int, cycle: int, phase: str, task_id: str, resolved: bool,
              how: Literal["ran", "reused", "recorded"]) -> None:
        self._done += 1
        self._progress(kind="cell", arm=arm.name, seed=seed, cycle=cycle, phase=phase, task_id=task_id,
                       resolved=resolved, how=how)

    # -- the night -------------------------------------------------------------------------

    async def _night(self, arm: _Arm, seed: int, cycle: int, state: ArmState) -> ArmState:
        assert self.store is not None
        store = self.store
        night = await get_night(store, self.exp_id, arm.name, seed, cycle)
        if night is not None:
            self._skip_night_units(cycle)
            return ArmState.model_validate(night.state)
        cand = await get_candidate(store, self.exp_id, arm.name, seed, cycle)
        if cand is None:
            self._check_cancel()
            cand = await self._make_candidate(arm, seed, cycle, state)
            await record_candidate(store, cand, self._adapter_record(arm, seed, cycle, cand))
        frozen = [(j, t) for j in range(cycle + 1) for t in self.plan.chunks[j]]
        if self.spec.gate.max_tasks is not None:
            frozen = frozen[: self.spec.gate.max_tasks]
        if cand.skipped:
            self._skip_night_units(cycle)
            verdict: dict[str, Any] = {"adopted": False, "reason": f"nothing to adopt: {cand.skipped}", "n": 0}
            await record_night(
                store,
                NightRow(exp_id=self.exp_id, arm=arm.name, seed=seed, cycle=cycle, adopted=False,
                         verdict=verdict, state=state.model_dump(mode="json")),
            )
            self._progress(kind="night", arm=arm.name, seed=seed, cycle=cycle, message=verdict["reason"])
            return state
        candidate = ArmState.model_validate(cand.state)
        cand_cells = await self._cells(arm, seed, cycle, "candidate", frozen, candidate)
        inc_cells = await self._cells(arm, seed, cycle, "incumbent", frozen, state)
        base = {t: [inc_cells[t].resolved] for _, t in frozen}
        new = {t: [cand_cells[t].resolved] for _, t in frozen}
        gate = regression_gate(base, new, alpha=self.spec.gate.alpha)
        adopted = gate.adopted or not self.spec.gate.enabled
        verdict = gate.model_dump()
        verdict["enabled"] = self.spec.gate.enabled
        verdict["frozen_tasks"] = len(frozen)
        if not self.spec.gate.enabled:
            verdict["reason"] = "adopted (gate off); the gate would have said: " + gate.reason
        verdict["adopted"] = adopted
        after = candidate if adopted else state
        await record_night(
            store,
            NightRow(exp_id=self.exp_id, arm=arm.name, seed=seed, cycle=cycle, adopted=adopted,
                     verdict=verdict, state=after.model_dump(mode="json")),
        )
        self._progress(kind="night", arm=arm.name, seed=seed, cycle=cycle, message=verdict["reason"])
        return after

    def _skip_night_units(self, cycle: int) -> None:
        # The night's gate cells will not be visited: keep the progress total honest.
        seen = sum(len(c) for c in self.plan.chunks[: cycle + 1])
        self._total = max(self._done, self._total - 2 * seen)

    async def _day_cells(self, arm: _Arm, seed: int, upto: int, phase: Phase) -> list[CellRow]:
        assert self.store is not None
        cells = await get_cells(self.store, self.exp_id, arm=arm.name, phase=phase)
        return sorted(
            (c for c in cells if c.seed == seed and c.cycle <= upto),
            key=lambda c: (c.cycle, self._task_order(c.task_id)),
        )

    def _task_order(self, task_id: str) -> int:
        if not self._order:
            self._order = {t: i for i, t in enumerate(t for chunk in self.plan.chunks for t in chunk)}
        return self._order.get(task_id, len(self._order))

    async def _make_candidate(self, arm: _Arm, seed: int, cycle: int, state: ArmState) -> CandidateRow:
        assert self.store is not None
        store = self.store
        started = time.monotonic()
        layers = arm.spec.layers
        new = state.model_copy(deep=True)
        notes: list[str] = []
        skipped: list[str] = []
        changed = False
        own = [c for c in await self._day_cells(arm, seed, cycle, "day") if c.cycle == cycle]
        teacher = [c for c in await self._day_cells(arm, seed, cycle, "teacher") if c.cycle == cycle]
        learned = [c.episode_id for c in own + teacher]
        curve: list[dict[str, Any]] = []
        data_stats: dict[str, Any] = {}
        if "adapter" in layers:
            trained, why, curve, data_stats = await self._train(arm, seed, cycle, state, new, own + teacher)
            if trained:
                changed = True
                self._outcome.trained += 1
                notes.append(
                    f"adapter ({arm.spec.strategy_name()}): {data_stats.get('train_samples', 0)} training and "
                    f"{data_stats.get('valid_samples', 0)} validation samples from "
                    f"{data_stats.get('episodes', 0)} episodes"
                    + (f" (its own and {arm.spec.teacher}'s)" if teacher else "")
                )
            else:
                skipped.append(f"adapter: {why}")
        if "prompt-skill" in layers or "memory" in layers:
            backend = await self._backend(arm, state.adapter_for("")[0] if not state.routes else None)
            digests = {}
            for c in await self._day_cells(arm, seed, cycle, "day"):
                digests[c.episode_id] = await digest_episode(
                    store, c.episode_id, self.plan.tasks[c.task_id].statement
                )
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
            exp_id=self.exp_id,
            arm=arm.name,
            seed=seed,
            cycle=cycle,
            skipped="" if changed else "; ".join(skipped) or "nothing learned",
            state=new.model_dump(mode="json") if changed else {},
            episodes=learned,
            curve=curve,
            data_stats=data_stats,
            notes=notes,
            seconds=time.monotonic() - started,
        )

    async def _rows_for(self, arm: _Arm, seed: int, cycle: int, episode_ids: list[str]) -> tuple[Any, list, list]:
        """Training rows (train, valid) from these episodes, made by the agent's own prompt
        builder (consolidation.synth). None when they hold nothing to learn."""
        from looper_engine.consolidation.synth import Selection, synthesize

        assert self.store is not None
        selection = Selection(episode_ids=episode_ids, resolved_only=arm.spec.learn_from == "resolved")
        data = await synthesize(self.store, selection, seed=seed)
        return data, [s.row_with_meta() for s in data.train], [s.row_with_meta() for s in data.valid]

    async def _train(
        self, arm: _Arm, seed: int, cycle: int, state: ArmState, new: ArmState, cells: list[CellRow]
    ) -> tuple[bool, str, list[dict[str, Any]], dict[str, Any]]:
        from looper_engine.consolidation.job import resolve_model_path
        from looper_engine.consolidation.strategies import get_strategy

        assert self.store is not None
        ids = [c.episode_id for c in cells if c.resolved or arm.spec.learn_from == "all"]
        if not ids:
            return False, "no resolved episodes to learn from", [], {}
        try:
            data, train_rows, valid_rows = await self._rows_for(arm, seed, cycle, ids)
        except UserError as exc:
            return False, str(exc), [], {}
        if not data.stats.format_ok:
            first = data.stats.format_problems[0]
            return False, f"format check failed ({first.episode_id} step {first.step}: {first.reason})", [], {}
        history: list[list[dict[str, Any]]] = []
        for earlier in range(cycle):
            rows = await self._history(arm, seed, earlier)
            if rows:
                history.append(rows)
        strategy = get_strategy(arm.spec.strategy_name(), **{"seed": seed, **arm.spec.strategy_options})
        previous = [Path(p) for p in (list(state.routes.values()) if state.routes else state.adapters)]
        out_dir = self.adapters_dir / self.exp_id / arm.name / f"s{seed}" / f"c{cycle}"
        if out_dir.exists():
            shutil.rmtree(out_dir)  # a night cut short: train it again from the start
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        train_cfg = self.spec.arm_train(arm.spec).model_copy(update={"seed": seed})
        model_path = resolve_model_path(BackendPool.base_spec(arm.model))
        loop = asyncio.get_running_loop()
        job_id = f"{self.exp_id}/{arm.name}/s{seed}/c{cycle}"

        def on_progress(job: str, info: Any) -> None:
            loop.call_soon_threadsafe(self._train_progress, job_id, arm, seed, cycle, info)

        try:
            outcome = await to_mlx_thread(
                strategy.consolidate,
                model_path,
                train_rows,
                history,
                previous,
                out_dir,
                train_cfg,
                valid_rows=valid_rows,
                on_progress=on_progress,
                cancel=self._cancel,
            )
        except UserError as exc:
            shutil.rmtree(out_dir, ignore_errors=True)
            return False, str(exc), [], {}
        if outcome.status == "cancelled":
            shutil.rmtree(out_dir, ignore_errors=True)
            raise ExperimentCancelled()
        curve = [
            {"job": name, **p.model_dump()} for name, res in outcome.results.items() for p in res.curve
        ]
        if outcome.routes:
            new.routes = {fam: str(p) for fam, p in outcome.routes.items()}
            new.route_hashes = {
                fam: await asyncio.to_thread(adapter_hash, p) for fam, p in outcome.routes.items()
            }
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
        return True, "", curve, stats

    async def _history(self, arm: _Arm, seed: int, cycle: int) -> list[dict[str, Any]]:
        """The training rows of an earlier night (what replay and ewc look back at)."""
        key = (arm.name, seed, cycle)
        if key not in self._history_rows:
            assert self.store is not None
            cand = await get_candidate(self.store, self.exp_id, arm.name, seed, cycle)
            rows: list[dict[str, Any]] = []
            if cand is not None and cand.data_stats:
                cells = [
                    c for c in await get_cells(self.store, self.exp_id, arm=arm.name)
                    if c.seed == seed and c.cycle == cycle and c.phase in ("day", "teacher")
                ]
                ids = [c.episode_id for c in cells if c.resolved or arm.spec.learn_from == "all"]
                try:
                    _, train_rows, valid_rows = await self._rows_for(arm, seed, cycle, ids)
                    rows = train_rows + valid_rows
                except UserError:
                    rows = []
            self._history_rows[key] = rows
        return self._history_rows[key]

    def _train_progress(self, job_id: str, arm: _Arm, seed: int, cycle: int, info: Any) -> None:
        self.bus.publish(info.to_event(job_id) if hasattr(info, "to_event") else TrainProgress(
            job_id=job_id, iteration=info.iteration, iterations=info.iterations))
        self._progress(kind="train", arm=arm.name, seed=seed, cycle=cycle, iteration=info.iteration,
                       iterations=info.iterations, train_loss=info.train_loss, val_loss=info.val_loss)

    def _adapter_record(self, arm: _Arm, seed: int, cycle: int, cand: CandidateRow) -> dict[str, Any] | None:
        if cand.skipped or "adapter" not in arm.spec.layers or not cand.data_stats:
            return None
        state = ArmState.model_validate(cand.state)
        path = state.adapter or (str(Path(next(iter(state.routes.values()))).parent) if state.routes else None)
        if path is None:
            return None
        from looper_engine.consolidation.job import resolve_model_path

        return {
            "id": f"{self.exp_id}.{arm.name}.s{seed}.c{cycle}",
            "parent_id": None,
            "strategy": arm.spec.strategy_name(),
            "base_model": str(resolve_model_path(BackendPool.base_spec(arm.model)).resolve()),
            "data_hash": str(cand.data_stats.get("data_hash", "")),
            "data_stats": json.dumps(cand.data_stats),
            "hyperparams": json.dumps(
                {
                    **self.spec.arm_train(arm.spec).model_dump(),
                    "seed": seed,
                    "strategy_options": arm.spec.strategy_options,
                }
            ),
            "curve": json.dumps(cand.curve),
            "metrics": json.dumps({"seconds": cand.seconds, "experiment": self.exp_id}),
            "path": path,
            "status": "ready",
            "created_at": time.time(),
        }


__all__ = [
    "ArmState",
    "BackendPool",
    "CycleProgress",
    "ExperimentCancelled",
    "ExperimentOutcome",
    "ExperimentRunner",
    "ExperimentStopped",
    "ProgressCallback",
    "adapter_hash",
    "fingerprint",
]
