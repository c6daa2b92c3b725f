"""What every step of a cycle shares: the run's store, bus and backends, its cancellation,
its progress counters and outcome, and the progress records it sends to a callback."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from looper_engine.errors import UserError
from looper_engine.evaluation.experiment import ArmSpec, ExperimentPlan, ExperimentSpec

if TYPE_CHECKING:
    from looper_engine.agent.episode import Episode
    from looper_engine.evaluation.cycle.backends import BackendPool
    from looper_engine.events import EventBus
    from looper_engine.models.base import Backend
    from looper_engine.store.db import Store
    from looper_engine.store.writer import StoreWriter

Phase = Literal["eval", "day", "teacher", "candidate", "incumbent"]


class ExperimentStopped(UserError):
    """The experiment cannot go on (a model backend failed); what finished is recorded."""


class ExperimentCancelled(Exception):
    """Cancelled by the user; what finished is recorded and a rerun continues from there."""


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


class Arm:
    """An arm at run time: its spec and model."""

    def __init__(self, spec: ArmSpec, model: str, *, teacher_of: str | None = None) -> None:
        self.spec = spec
        self.model = model
        self.name = teacher_of or spec.name
        self.teacher = teacher_of is not None


@dataclass(frozen=True)
class Round:
    """One arm, seed, cycle and phase: the cells measured together."""

    arm: Arm
    seed: int
    cycle: int
    phase: Phase


@dataclass
class CycleContext:
    """A running experiment, as the day, the night and the gate see it."""

    plan: ExperimentPlan
    store: Store
    writer: StoreWriter
    bus: EventBus
    backends: BackendPool
    adapters_dir: Path
    scratch: Path
    cancelled: threading.Event
    episodes: set[Episode]
    outcome: ExperimentOutcome
    on_progress: ProgressCallback | None = None
    ray_executor: Any = None
    done: int = 0
    total: int = 0
    #: The training rows of earlier nights, by (arm, seed, cycle): what replay and ewc look back at.
    history_rows: dict[tuple[str, int, int], list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def spec(self) -> ExperimentSpec:
        return self.plan.spec

    @property
    def exp_id(self) -> str:
        return self.plan.exp_id

    def check_cancel(self) -> None:
        if self.cancelled.is_set():
            raise ExperimentCancelled()

    def progress(self, **fields: Any) -> None:
        if self.on_progress is not None:
            self.on_progress(CycleProgress(exp_id=self.exp_id, done=self.done, total=self.total, **fields))

    def tick(self, where: Round, task_id: str, resolved: bool, how: Literal["ran", "reused", "recorded"]) -> None:
        """One cell is done."""
        self.done += 1
        self.progress(kind="cell", arm=where.arm.name, seed=where.seed, cycle=where.cycle, phase=where.phase,
                      task_id=task_id, resolved=resolved, how=how)

    def skip_units(self, n: int) -> None:
        """`n` planned units will not be visited: keep the progress total honest."""
        self.total = max(self.done, self.total - n)

    async def backend(self, arm: Arm, adapter: str | None) -> Backend:
        if adapter is None and not arm.model.startswith("mlx:"):
            return await self.backends.checked(arm.model)
        return await self.backends.use_adapter(arm.model, adapter)


__all__ = [
    "Arm",
    "CycleContext",
    "CycleProgress",
    "ExperimentCancelled",
    "ExperimentOutcome",
    "ExperimentStopped",
    "Phase",
    "ProgressCallback",
    "Round",
]
