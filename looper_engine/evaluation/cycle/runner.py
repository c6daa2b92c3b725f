"""`ExperimentRunner`: opens the store, then walks the seeds, cycles and arms, giving each
step (planning, the day, the night and its gate, the evaluation) to its own module."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from looper_engine.agent.episode import Episode
from looper_engine.evaluation.cycle.backends import BackendPool
from looper_engine.evaluation.cycle.context import (
    Arm,
    CycleContext,
    ExperimentCancelled,
    ExperimentOutcome,
    ProgressCallback,
    Round,
)
from looper_engine.evaluation.cycle.measure import measure_cells
from looper_engine.evaluation.cycle.night import run_night
from looper_engine.evaluation.cycle.plan import day_items, eval_items, planned_units, zero_shot_items
from looper_engine.evaluation.cycle.state import ArmState, adapter_hash
from looper_engine.evaluation.experiment import ExperimentPlan
from looper_engine.events import EventBus
from looper_engine.store.db import Store
from looper_engine.store.experiments import claim_experiment, set_experiment_status
from looper_engine.store.writer import StoreWriter


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
        self.ray_address = ray
        #: The Ray executor while a `ray` run is on (its `workers` say where each episode ran).
        self.ray_executor: Any = None

    def cancel(self) -> None:
        """Stop soon: episodes in flight are cancelled (and not recorded), training stops."""
        self._cancel.set()
        for ep in list(self._episodes):
            ep.control.cancel()
        if self.ray_executor is not None:
            self.ray_executor.cancel_all()

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
        scratch: Path | None = None
        try:
            await claim_experiment(
                store, self.exp_id, self.spec.spec_hash(), self.spec.model_dump(mode="json"), self.plan.path
            )
            if self._writer is None:
                # The writer gets its own connection: its transactions and ours never interleave.
                writer_store = await Store.open(self.db_path)
                self._writer = StoreWriter(writer_store, self.bus).start()
            scratch = Path(tempfile.mkdtemp(prefix="looper-exp-"))
            ctx = CycleContext(
                plan=self.plan,
                store=store,
                writer=self._writer,
                bus=self.bus,
                backends=self.backends,
                adapters_dir=self.adapters_dir,
                scratch=scratch,
                cancelled=self._cancel,
                episodes=self._episodes,
                outcome=self._outcome,
                on_progress=self.on_progress,
                ray_executor=self.ray_executor,
                total=planned_units(self.plan),
            )
            ctx.progress(kind="plan", message=f"{self.plan.n_chunks} chunks, {len(self.spec.arms)} arms")
            try:
                await self._run_all(ctx)
            except ExperimentCancelled:
                self._outcome.status = "cancelled"
                await set_experiment_status(store, self.exp_id, "cancelled")
            except BaseException:
                await set_experiment_status(store, self.exp_id, "stopped")
                raise
            else:
                await set_experiment_status(store, self.exp_id, "finished")
                ctx.progress(kind="finished", message="finished")
        finally:
            if self._own_writer and self._writer is not None:
                await self._writer.close()
            if writer_store is not None:
                await writer_store.close()
            if self._own_backends:
                await self.backends.aclose()
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            await store.close()
            self.store = None
        self._outcome.seconds = time.monotonic() - started
        return self._outcome

    async def _run_all(self, ctx: CycleContext) -> None:
        spec = self.spec
        zero = Arm(spec.zero_shot_arm(), spec.model)
        states: dict[tuple[str, int], ArmState] = {}
        for seed in spec.seeds:
            await measure_cells(ctx, Round(zero, seed, 0, "eval"), zero_shot_items(self.plan), ArmState())
        for cycle in range(self.plan.n_chunks):
            for arm_spec in spec.arms:
                arm = Arm(arm_spec, spec.arm_model(arm_spec))
                for seed in spec.seeds:
                    key = (arm.name, seed)
                    state = states[key] if key in states else await self._initial_state(arm)
                    if arm_spec.learns:
                        chunk = day_items(self.plan, cycle)
                        await measure_cells(ctx, Round(arm, seed, cycle, "day"), chunk, state)
                        if arm_spec.teacher:
                            teacher = Arm(arm_spec, arm_spec.teacher, teacher_of=arm.name)
                            await measure_cells(ctx, Round(teacher, seed, cycle, "teacher"), chunk, ArmState())
                        state = await run_night(ctx, arm, seed, cycle, state)
                    await measure_cells(ctx, Round(arm, seed, cycle, "eval"), eval_items(self.plan, cycle), state)
                    states[key] = state

    async def _initial_state(self, arm: Arm) -> ArmState:
        adapter = self.backends.initial_adapter(arm.model)
        if adapter is None:
            return ArmState()
        h = await asyncio.to_thread(adapter_hash, adapter)
        return ArmState(adapter=str(adapter), adapter_hash=h)


__all__ = ["ExperimentRunner"]
